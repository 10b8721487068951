"""The architecture of ardiff, checked from its source (issue 10, point 7).

The package's import graph is read with ``ast`` (tests/import_graph.py; nothing is
imported), counting imports inside functions and classes like module-level ones and
ignoring those under ``if TYPE_CHECKING:``.  The test fails on

* an import cycle between ardiff modules;
* an upward import between the layers of LAYERS below (within a layer is fine), and
  any import of the package root or of a deprecated alias module from inside the
  package;
* a private name (``_name``) imported from, or used as an attribute of, another ardiff
  module, and a private module (``_mod``) imported from outside its own package;
* a module that no entry of LAYERS covers (keep the map complete);
* an ardiff import that names no module of the package;
* a third-party import inside a function, unless LAZY_THIRD_PARTY lists the package
  with the reason (an optional dependency, or a measured import-time saving).

The tests on synthetic packages below show that each check fails when it should.
Print the whole report with ``python tests/import_graph.py``.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from import_graph import (
    FUNCTION,
    KINDS,
    MODULE,
    TOP,
    build_import_graph,
    check_package,
    format_violations,
    layer_of,
    read_deprecated_modules,
    strongly_connected_components,
)

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "ardiff"

#: The layers, bottom to top: a module may import its own layer and the layers below.
#: Each entry is a module prefix; a module belongs to the entry matching it longest.
#: Above them all (not listed): the package root ``ardiff`` and the deprecated alias
#: modules of ``DEPRECATED_MODULES`` in ardiff/__init__.py, which nothing may import.
LAYERS = [
    ["ardiff.tree"],  # 0: containers of arrays (pytrees)
    ["ardiff.graph"],  # 1: the tape: nodes, parents, public unwrap
    ["ardiff.guards", "ardiff.op"],  # 2: Op, defop, the op table, unbroadcasting
    ["ardiff.ops"],  # 3: the op families
    ["ardiff.numpy", "ardiff.scipy", "ardiff.builtins"],  # 4: the user-facing namespaces
    ["ardiff.tracer"],  # 5: Tracer and dispatch
    ["ardiff.interchange", "ardiff.rules", "ardiff.recorder"],  # 6
    ["ardiff.solvers"],  # 7: seed/sweep, options, relax, backprop, triangular
    ["ardiff.convexity"],  # 8: analysis
    ["ardiff.transforms", "ardiff.forward", "ardiff.testing", "ardiff.test_util",
     "ardiff.named_args", "ardiff.strategies"],  # 9: grad ... make_vjp, jvp
    ["ardiff.codegen", "ardiff.compiled"],  # 10: compile
    ["ardiff.nn", "ardiff.plot", "ardiff.extend", "ardiff.misc",
     "ardiff.scipy.integrate"],  # 11: built on the transforms
    ["ardiff.paper"],  # 12: reproduction tooling (experiments, data, cli)
]

#: Third-party packages (and their submodules) that may be imported inside a function.
#: Standard-library modules always may; everything else is imported at module level.
LAZY_THIRD_PARTY = {
    "matplotlib": "optional (plot/cli extras); pyplot alone takes ~0.7 s to import",
    "tqdm": "optional (cli extra): progress bars of the reproduction tooling",
    "pooch": "optional: dataset download and cache of ardiff.paper",
    "threadpoolctl": "optional: limits BLAS threads in the cli",
    "hypothesis": "optional (test extra): only ardiff.strategies needs it",
    "scipy.stats": "slow: 0.6-1.3 s to import (python -X importtime), one bound needs it",
    "scipy.signal": "slow: 1.2 s of the 2.5 s `import ardiff` took (python -X importtime, "
                    "scipy.stats with it); only FFT-sized convolutions need it",
    "networkx": "slow: ~0.2 s of the ~0.8 s of `import ardiff` (python -X importtime); "
                "only graph interchange, plots and checks need it",
    "torch": "optional (bench extra): comparisons only",
    "autograd": "optional (bench extra): comparisons only",
    "dask": "optional: not a dependency of ardiff",
    "distributed": "optional: not a dependency of ardiff",
}



def check(package_dir: Path, **kwargs):
    return check_package(package_dir, LAYERS, lazy_allowlist=LAZY_THIRD_PARTY, **kwargs)


# -- the real package ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_graph():
    return build_import_graph(PACKAGE_DIR)


@pytest.fixture(scope="module")
def real_violations(real_graph):
    return check(PACKAGE_DIR, graph=real_graph)


@pytest.mark.parametrize("kind", KINDS)
def test_ardiff_architecture(real_violations, kind):
    found = [v for v in real_violations if v.kind == kind]
    assert not found, format_violations(found)


def test_real_graph_is_read(real_graph):
    """The reader sees the package: the root, the layers and some known imports."""
    graph = real_graph
    assert {"ardiff", "ardiff.graph", "ardiff.tracer", "ardiff.ops"} <= set(graph.modules)
    assert any(imp.source == "ardiff" and imp.target == "ardiff.graph"
               for imp in graph.internal)
    assert len(graph.internal) > 50


def test_the_package_has_no_deprecated_alias_left():
    """The aliases of 0.1.0 are removed (docs/api.md keeps the record of renames): no
    alias module, and no upward import exempted for one (there is no exemption list)."""
    assert read_deprecated_modules(PACKAGE_DIR) == {}


def test_layer_map_entries():
    """Longest prefix wins; the root is the top; unknown modules are in no layer."""
    assert layer_of("ardiff", LAYERS, "ardiff") == TOP
    assert layer_of("ardiff.ops.linalg", LAYERS, "ardiff") == 3
    assert layer_of("ardiff.op", LAYERS, "ardiff") == 2  # not a prefix of ardiff.ops
    assert layer_of("ardiff.numpy._shape", LAYERS, "ardiff") == 4
    assert layer_of("ardiff.paper.cli", LAYERS, "ardiff") == 12
    assert layer_of("ardiff.unknown", LAYERS, "ardiff") is None
    layers = [["pkg.a"], ["pkg.a.b"]]
    assert layer_of("pkg.a.b.c", layers, "pkg") == 1
    assert layer_of("pkg.a.c", layers, "pkg") == 0
    with pytest.raises(ValueError, match="pkg.a"):
        check_package(PACKAGE_DIR, [["pkg.a"], ["pkg.a"]])


# -- synthetic packages: each check fails when it should ---------------------------------------

CLEAN = {
    "__init__.py": """
        from . import numpy
        from .graph import Graph
        from .transforms import grad
        DEPRECATED_MODULES = {"ardiff.api": "ardiff.transforms"}
        __version__ = "0"
    """,
    "api.py": """
        from .transforms import grad  # a deprecated alias may import anything
    """,
    "tree.py": """
        import functools
        def flatten(x):
            return [x]
    """,
    "graph.py": """
        from typing import TYPE_CHECKING
        import numpy as np
        from .tree import flatten
        if TYPE_CHECKING:  # ignored: only type checkers run it
            from .transforms import grad
            from .op import _helper
        class Graph:
            pass
    """,
    "op.py": """
        from .graph import Graph
        from . import graph
        def helper():
            return graph.Graph
        def _helper():
            pass
    """,
    "ops/__init__.py": """
        from .elementwise import add
        from .reduce import total
    """,
    "ops/elementwise.py": """
        from ..op import helper
        def add(a, b):
            return helper()
    """,
    "ops/reduce.py": """
        from .elementwise import add
        def total(x):
            return add(x, x)
    """,
    "numpy/__init__.py": """
        from ._shape import reshape  # a private module of its own package
        from . import _shape, linalg
        from ..ops import add
        __all__ = ["reshape", "add"]
    """,
    "numpy/_shape.py": """
        from ..ops.reduce import total
        def reshape(x):
            return total(x)
    """,
    "numpy/linalg.py": """
        from ._shape import reshape  # a sibling private module
    """,
    "tracer.py": """
        from . import numpy as anp
        from .graph import __name__ as graph_name  # dunder names are not private
        def f():
            import json  # the standard library may be imported lazily
            from .ops import add  # a lazy import of a lower layer
    """,
    "solvers/__init__.py": """
        from .relax import relax
    """,
    "solvers/relax.py": """
        from ..graph import Graph
        from ..tracer import f
        def relax():
            import networkx as nx
            from scipy import stats
            from scipy.stats import binom
    """,
    "transforms.py": """
        import ardiff.solvers.relax
        from .solvers import relax
        from . import numpy as anp
    """,
    "plot.py": """
        import importlib
        def show():
            import matplotlib.pyplot as plt
            from matplotlib import colors
            return importlib.import_module("ardiff.graph")
    """,
}


def write_package(tmp_path: Path, files: dict[str, str]) -> Path:
    package = tmp_path / "ardiff"
    for name, text in files.items():
        file = package / name
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(textwrap.dedent(text).lstrip("\n"))
    return package


def planted(tmp_path: Path, **changes: str) -> Path:
    """The clean package with text appended to some files (``ops__reduce`` is ops/reduce.py,
    ``new__x`` creates x.py)."""
    files = dict(CLEAN)
    for key, text in changes.items():
        new = key.startswith("new__")
        name = key.removeprefix("new__").replace("__", "/") + ".py"
        files[name] = textwrap.dedent(text) if new else (
            textwrap.dedent(files[name]) + textwrap.dedent(text))
    return write_package(tmp_path, files)


def line_of(package: Path, name: str, text: str) -> str:
    """``ardiff/<name>:<line>`` of the (last) line of the file containing ``text``."""
    lines = (package / name).read_text().splitlines()
    number = max(i for i, line in enumerate(lines, 1) if text in line)
    return f"ardiff/{name}:{number}"


def kinds(violations) -> set[str]:
    return {v.kind for v in violations}


def test_clean_package_passes(tmp_path):
    package = write_package(tmp_path, CLEAN)
    assert check(package) == []


def test_synthetic_graph_edges(tmp_path):
    """Relative imports resolve against the package; ``from . import x`` imports the
    submodule x; ``from .mod import name`` imports mod; no edge to the __init__ chain;
    TYPE_CHECKING imports are not read."""
    graph = build_import_graph(write_package(tmp_path, CLEAN))
    edges = {(imp.source, imp.target, imp.scope) for imp in graph.internal}
    assert ("ardiff.ops.reduce", "ardiff.ops.elementwise", MODULE) in edges
    assert ("ardiff.numpy", "ardiff.numpy._shape", MODULE) in edges
    assert ("ardiff.numpy", "ardiff.numpy.linalg", MODULE) in edges
    assert ("ardiff.numpy", "ardiff.ops", MODULE) in edges
    assert ("ardiff.numpy._shape", "ardiff.ops.reduce", MODULE) in edges
    assert ("ardiff.tracer", "ardiff.numpy", MODULE) in edges
    assert ("ardiff.tracer", "ardiff.ops", FUNCTION) in edges
    assert ("ardiff.op", "ardiff.graph", MODULE) in edges
    assert ("ardiff.transforms", "ardiff.solvers.relax", MODULE) in edges
    assert ("ardiff.transforms", "ardiff.solvers", MODULE) not in edges  # relax: submodule
    assert ("ardiff.plot", "ardiff.graph", FUNCTION) in edges  # importlib.import_module
    assert not any(src == "ardiff.graph" and dst != "ardiff.tree" for src, dst, _ in edges)
    assert not any(dst == "ardiff.numpy" and src == "ardiff.numpy._shape" for src, dst, _ in edges)
    lazy = {(imp.source, imp.target) for imp in graph.imports
            if imp.scope == FUNCTION and not imp.internal}
    assert ("ardiff.solvers.relax", "networkx") in lazy
    assert ("ardiff.plot", "matplotlib.pyplot") in lazy


@pytest.mark.parametrize("where", ["module", "function"])
def test_cycle_is_reported(tmp_path, where):
    """A cycle within one layer (ops.elementwise <-> ops.reduce): only the cycle fails."""
    plant = ("from .reduce import total\n" if where == "module"
             else "def g():\n    from .reduce import total\n")
    package = planted(tmp_path, ops__elementwise=plant)
    found = check(package)
    assert kinds(found) == {"cycle"}, format_violations(found)
    (cycle,) = found
    assert "ardiff.ops.elementwise, ardiff.ops.reduce" in cycle.message
    assert line_of(package, "ops/elementwise.py", "from .reduce import total") in cycle.message
    assert line_of(package, "ops/reduce.py", "from .elementwise import add") in cycle.message


def test_long_cycle_and_self_import_are_reported(tmp_path):
    package = planted(tmp_path, tree="from . import tree\n",
                      graph="def g():\n    import ardiff.transforms\n")
    found = [v for v in check(package) if v.kind == "cycle"]
    messages = "\n".join(v.message for v in found)
    assert len(found) == 2, messages
    assert "module(s): ardiff.tree\n" in messages
    assert "ardiff.graph -> ardiff.transforms" in messages  # graph -> ... -> graph
    assert line_of(package, "graph.py", "import ardiff.transforms") in messages


@pytest.mark.parametrize("where", ["module", "function", "class"])
def test_upward_import_is_reported(tmp_path, where):
    """op (layer 2) importing plot (layer 11): no cycle, only the upward import fails."""
    plant = {"module": "from .plot import show\n",
             "function": "def g():\n    from .plot import show\n",
             "class": "class C:\n    from .plot import show\n"}[where]
    package = planted(tmp_path, op=plant)
    found = check(package)
    assert kinds(found) == {"upward"}, format_violations(found)
    (upward,) = found
    assert line_of(package, "op.py", "from .plot import show") in upward.message
    assert "ardiff.op -> ardiff.plot" in upward.message
    assert "layer 2 imports layer 11" in upward.message
    assert (f"inside a {where}" in upward.message) == (where != "module")


def test_upward_import_in_a_cycle_is_reported_twice(tmp_path):
    """graph (layer 1) importing solvers (layer 7), which imports graph back."""
    package = planted(tmp_path, graph="def g():\n    from .solvers import relax\n")
    found = check(package)
    assert kinds(found) == {"upward", "cycle"}, format_violations(found)
    where = line_of(package, "graph.py", "from .solvers import relax")
    assert all(where in v.message for v in found)


@pytest.mark.parametrize("plant", [
    "import ardiff\n",
    "from ardiff import grad\n",
    "def g():\n    from .. import graph\n    import ardiff.api\n",
    "from ..api import grad\n",
])
def test_import_of_the_top_is_reported(tmp_path, plant):
    """The root and the deprecated aliases are above every layer."""
    package = planted(tmp_path, new__nn__layers=plant)
    found = [v for v in check(package, top_modules={"ardiff.api"}) if v.kind == "upward"]
    assert len(found) == 1, format_violations(found)
    assert "ardiff/nn/layers.py:" in found[0].message
    assert "the top layer" in found[0].message


@pytest.mark.parametrize(("name", "plant", "expected"), [
    ("ops__elementwise", "from ..op import _helper\n", "private name(s) _helper"),
    ("ops__elementwise", "def g():\n    from ..op import helper, _helper\n",
     "private name(s) _helper"),
    ("ops__elementwise", "from .. import op\nop._helper()\n", "private name _helper"),
    ("ops__elementwise", "import ardiff.op\nardiff.op._helper()\n", "private name _helper"),
    ("transforms", "from .numpy._shape import reshape\n", "private to the package ardiff.numpy"),
    ("transforms", "from .numpy import _shape\n", "private to the package ardiff.numpy"),
    ("numpy__linalg", "from ._shape import _inner\n", "private name(s) _inner"),
])
def test_private_import_is_reported(tmp_path, name, plant, expected):
    package = planted(tmp_path, **{name: plant})
    found = check(package)
    assert kinds(found) == {"private"}, format_violations(found)
    (private,) = found
    assert expected in private.message
    assert f"ardiff/{name.replace('__', '/')}.py:" in private.message


@pytest.mark.parametrize(("plant", "expected"), [
    ("import yaml\n", "yaml"),
    ("from scipy import special\n", "scipy (special)"),
    ("from scipy.special import logsumexp\n", "scipy.special (logsumexp)"),
    ("import numpy as np\n", "numpy"),
])
def test_lazy_third_party_import_is_reported(tmp_path, plant, expected):
    package = planted(tmp_path, plot="def g():\n    " + plant)
    found = check(package)
    assert kinds(found) == {"lazy-import"}, format_violations(found)
    assert f"{line_of(package, 'plot.py', plant.strip())} (ardiff.plot): imports {expected} " \
        in found[0].message
    # the same import at module level is fine
    assert check(planted(tmp_path / "top", plot=plant)) == []


def test_unmapped_module_is_reported(tmp_path):
    package = planted(tmp_path, new__newthing="from .graph import Graph\n")
    found = check(package)
    assert kinds(found) == {"unmapped"}, format_violations(found)
    assert "ardiff/newthing.py: module ardiff.newthing is in no layer" in found[0].message
    assert "LAYERS" in found[0].message


@pytest.mark.parametrize("plant", ["from .nothing import x\n", "import ardiff.nothing\n",
                                   "from ...toofar import x\n"])
def test_unresolved_import_is_reported(tmp_path, plant):
    package = planted(tmp_path, solvers__relax=plant)
    found = check(package)
    assert kinds(found) == {"unresolved"}, format_violations(found)
    assert "ardiff/solvers/relax.py:" in found[0].message


def test_deprecated_alias_added_to_the_root(tmp_path):
    """A module listed in DEPRECATED_MODULES becomes the top: it may import anything."""
    files = dict(CLEAN)
    files["__init__.py"] = CLEAN["__init__.py"].replace(
        '"ardiff.transforms"}', '"ardiff.transforms", "ardiff.data": "ardiff.paper.data"}')
    files["data.py"] = "from .paper.data import load\n"
    files["paper/__init__.py"] = ""
    files["paper/data.py"] = "from ..transforms import grad\ndef load():\n    pass\n"
    package = write_package(tmp_path, files)
    assert read_deprecated_modules(package) == {"ardiff.api": "ardiff.transforms",
                                                "ardiff.data": "ardiff.paper.data"}
    assert check(package) == []
    (package / "paper" / "cli.py").write_text("from .. import data\n")
    found = check(package)
    assert kinds(found) == {"upward"} and "deprecated alias" in found[0].message


def _not_source(directory, names):
    return [n for n in names if not n.endswith(".py") and not Path(directory, n).is_dir()]


def test_plants_in_a_copy_of_the_real_package(tmp_path, real_violations):
    """A cycle, an upward import and a private import added to a copy of ardiff/ are
    reported (on top of whatever the real package reports already)."""
    copy = tmp_path / "ardiff"
    shutil.copytree(PACKAGE_DIR, copy, ignore=_not_source)
    before = set(real_violations)
    with open(copy / "tree.py", "a") as file:
        file.write("\n\ndef _planted():\n    from .graph import _planted_private\n"
                   "    from .solvers import relax\n")
    with open(copy / "graph.py", "a") as file:
        file.write("\nfrom .tree import flatten as _planted_flatten\n")
    new = [v for v in check(copy) if v not in before]
    where = {kind: [v for v in new if v.kind == kind] for kind in KINDS}
    assert any("ardiff.tree -> ardiff.graph" in v.message for v in where["cycle"])
    assert any("ardiff/tree.py:" in v.message and "ardiff.solvers" in v.message
               for v in where["upward"])
    assert any("_planted_private" in v.message for v in where["private"])


def test_strongly_connected_components():
    edges = {"a": ["b"], "b": ["c"], "c": ["a", "d"], "d": ["e"], "e": ["d"], "f": ["f"]}
    components = sorted(strongly_connected_components(edges))
    assert components == [["a", "b", "c"], ["d", "e"], ["f"]]
    chain = {str(i): [str(i + 1)] for i in range(5000)}  # no recursion limit
    assert len(strongly_connected_components(chain)) == 5001


def test_exempt_imports_cover_only_function_level_imports(tmp_path):
    """A deprecated alias may import upward inside a function, never at module level."""
    root = tmp_path / "ardiff"
    root.mkdir()
    (root / "__init__.py").write_text("from .graph import Graph\nfrom . import ops\n")
    (root / "graph.py").write_text("def old_alias():\n    from .ops import f\n    return f\n")
    (root / "ops.py").write_text("from .graph import old_alias\n\ndef f():\n    pass\n")
    layers = [["ardiff.graph"], ["ardiff.ops"]]
    exempt = [("ardiff.graph", "ardiff.ops")]
    assert check_package(root, layers, exempt_imports=exempt) == []
    assert {v.kind for v in check_package(root, layers)} >= {"cycle", "upward"}
    (root / "graph.py").write_text("from .ops import f\n")
    assert {v.kind for v in check_package(root, layers, exempt_imports=exempt)} >= {"upward"}
