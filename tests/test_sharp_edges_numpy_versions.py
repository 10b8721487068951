"""Catalogue of sharp edges, part 3: NumPy versions.

ardiff supports NumPy 1.26 and 2.x (CI runs the suite on both, see .ci/run).  It
must not rely on private or removed NumPy names: those break without warning on
the next release.  Checked statically (every attribute read off the ``numpy``
module in the package source) and dynamically (importing every module with all
warnings turned into errors).
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import numpy as np

import ardiff

PACKAGE = pathlib.Path(ardiff.__file__).parent

# Names removed in NumPy 2.0 (NEP 52) or deprecated since; none may be used.
REMOVED = {
    "float_", "complex_", "int0", "uint0", "bool8", "object0", "str0", "bytes0", "void0",
    "string_", "unicode_", "longfloat", "singlecomplex", "cfloat", "longcomplex", "clongfloat",
    "Inf", "Infinity", "NaN", "NINF", "PINF", "NZERO", "PZERO", "infty", "mat", "product",
    "cumproduct", "sometrue", "alltrue", "round_", "in1d", "row_stack", "trapz", "msort",
    "asfarray", "find_common_type", "cast", "source", "who", "deprecate", "safe_eval",
    "set_string_function", "issubclass_", "recfromcsv", "recfromtxt", "disp", "geterrobj",
    "seterrobj", "compat", "core", "matrixlib", "distutils", "byte_bounds", "lookfor",
    "add_newdoc_ufunc", "add_docstring", "fastCopyAndTranspose", "tracemalloc_domain",
}
NUMPY_ALIASES = {"np", "_np", "numpy"}


def _numpy_uses():
    """(file, line, name, kind) for every ``np.x`` read (kind "attr") and every numpy
    import (kind "import", dotted name)."""
    uses = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in NUMPY_ALIASES:
                uses.append((path, node.lineno, node.attr, "attr"))
            elif isinstance(node, ast.ImportFrom) and node.module \
                    and node.module.split(".")[0] == "numpy":
                uses.extend((path, node.lineno, f"{node.module}.{a.name}", "import")
                            for a in node.names)
            elif isinstance(node, ast.Import):
                uses.extend((path, node.lineno, a.name, "import") for a in node.names
                            if a.name.split(".")[0] == "numpy")
    return uses


def test_no_private_or_removed_numpy_names_in_the_package():
    uses = _numpy_uses()
    assert len(uses) > 100  # the scan does see the package's NumPy calls
    bad = []
    for path, line, name, _ in uses:
        parts = name.split(".")
        private = any(p.startswith("_") and not p.startswith("__") for p in parts)
        removed = any(p in REMOVED for p in parts)
        if private or removed:
            bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {name}")
    assert not bad, "private or removed NumPy names:\n" + "\n".join(bad)


def test_every_numpy_name_the_package_reads_exists():
    missing = []
    for path, line, name, kind in _numpy_uses():
        if kind == "import":  # checked by importing the package
            continue
        if not hasattr(np, name):
            missing.append(f"{path.relative_to(PACKAGE.parent)}:{line}: np.{name}")
    # np.linalg / np.random / ... submodules are attributes too, so anything missing here
    # would fail on this NumPy at call time
    assert not missing, "\n".join(missing)


def test_import_with_warnings_as_errors():
    """No DeprecationWarning (or any other warning) is raised importing any module."""
    code = (
        "import importlib, pkgutil, ardiff\n"
        "for m in pkgutil.walk_packages(ardiff.__path__, 'ardiff.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('imported', ardiff.__version__)\n"
    )
    done = subprocess.run([sys.executable, "-W", "error", "-c", code],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "imported" in done.stdout
