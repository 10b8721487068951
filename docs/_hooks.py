"""MkDocs hooks for the ardiff documentation (`hooks:` in mkdocs.yml).

* Pages that other parts of the project write (solvers, results, reproduction,
  sharp edges) are listed in the nav before they exist; a missing one is left out
  of the nav instead of failing `mkdocs build --strict`.  Any other missing page
  still fails the build.
* `<!-- ardiff:op-table -->` in a page is replaced by the table of elementary
  ops read from `ardiff.ops.OPS` at build time, grouped by the module that defines
  each op, and `<!-- ardiff:numpy-names -->` by the functions of `ardiff.numpy`
  (its `__all__` and `WITHOUT_GRADIENT`), so these lists never go stale.

Docstrings are numpydoc sections with Markdown code spans, which mkdocstrings renders
as they are; nothing here rewrites them.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import logging
import os

log = logging.getLogger("mkdocs.hooks.ardiff")

OPTIONAL_PAGES = {"solvers.md", "results.md", "reproduce.md", "sharp-edges.md"}
OP_TABLE_MARKER = "<!-- ardiff:op-table -->"
NUMPY_NAMES_MARKER = "<!-- ardiff:numpy-names -->"
# Names of ardiff.numpy.__all__ that are submodules, not functions.
NOT_FUNCTIONS = {"fft", "linalg", "random"}

#: Titles of the op-table rows, in table order, for the modules that define ops.  Every
#: other submodule of `ardiff.ops` that defines ops gets a row too, after these.
FAMILIES = {
    "ardiff.ops.elementwise": "Elementwise (ufuncs, operators, where, clip)",
    "ardiff.ops.reduce": "Reductions and scans",
    "ardiff.ops.linalg": "Linear algebra",
    "ardiff.ops.decompositions": "Matrix decompositions and functions",
    "ardiff.ops.shape": "Shape, indexing and casting",
    "ardiff.ops.special": "Special functions (ardiff.scipy.special)",
    "ardiff.ops.signal": "Signal processing (ardiff.scipy.signal)",
    "ardiff.ops.complex_parts": "Complex parts (real, imag, conj, angle)",
    "ardiff.ops.fft": "Discrete Fourier transforms (ardiff.numpy.fft)",
    "ardiff.nn.dense": "Neural-network layer (ardiff.nn.dense)",
    "ardiff.nn.conv": "Convolution layer (ardiff.nn.conv)",
    "ardiff.nn.pool": "Pooling layers (ardiff.nn.pool)",
}


def _prune(nav: list, docs_dir: str) -> list:
    """Drop optional nav entries whose page file does not exist (recursively)."""
    kept = []
    for entry in nav:
        if isinstance(entry, dict):
            (title, target), = entry.items()
            if isinstance(target, list):
                target = _prune(target, docs_dir)
                if not target:
                    continue
            elif (isinstance(target, str) and target in OPTIONAL_PAGES
                  and not os.path.exists(os.path.join(docs_dir, target))):
                log.info("nav: %s (%s) is not written yet; left out", title, target)
                continue
            kept.append({title: target})
        else:
            kept.append(entry)
    return kept


def on_config(config, **kwargs):
    """Prune the nav of optional pages that do not exist yet."""
    if config.get("nav"):
        config["nav"] = _prune(config["nav"], config["docs_dir"])
    return config


def _imported_names(module) -> set[str]:
    """The names a module binds by import statements (read from its source)."""
    names = set()
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def family_modules() -> list[str]:
    """The modules that may define ops: those of `FAMILIES` and every submodule of
    `ardiff.ops`."""
    import pkgutil

    import ardiff.ops

    found = [f"ardiff.ops.{m.name}" for m in pkgutil.iter_modules(ardiff.ops.__path__)
             if not m.name.startswith("_")]
    known = [name for name in FAMILIES if importlib.util.find_spec(name) is not None]
    return [*known, *sorted(set(found) - set(FAMILIES))]


def op_families() -> dict[str, list[str]]:
    """Op names grouped by the module that defines them.

    An op belongs to the module that holds it as a module attribute bound by its own
    code (its `defop` call), not by an import.  Ops defined anywhere else (a user's
    module, a test) are grouped under their forward function's module, at the end.
    """
    from ardiff.ops import OPS

    defined = {}
    for name in family_modules():
        module = importlib.import_module(name)
        imported = _imported_names(module)
        for attr, value in vars(module).items():
            if attr not in imported and getattr(value, "name", None) in OPS \
                    and OPS[value.name] is value:
                defined.setdefault(value.name, name)
    groups: dict[str, list[str]] = {}
    for name, op in sorted(OPS.items()):
        module = defined.get(name) or getattr(op.fwd, "__module__", None) or "other"
        groups.setdefault(module, []).append(name)
    return groups


def op_table_markdown() -> str:
    """Markdown table of the elementary ops in `ardiff.ops.OPS`, grouped by family."""
    from ardiff.ops import OPS

    groups = op_families()
    lines = [f"{len(OPS)} elementary ops at the time this page was built.", ""]
    lines += ["| family | ops | flagged `nonlinear` |", "| --- | --- | --- |"]
    order = family_modules()
    for key in [*order, *sorted(set(groups) - set(order))]:
        if key not in groups:
            continue
        names = ", ".join(f"`{name}`" for name in groups[key])
        flagged = ", ".join(f"`{name}`" for name in groups[key] if OPS[name].nonlinear)
        lines.append(f"| {FAMILIES.get(key, key)} | {names} | {flagged or 'none'} |")
    lines += ["", "Ops flagged `nonlinear` are those whose local derivative the `NoDerivative` "
              "rule (the paper's eq. 7) may replace by the identity during relaxation "
              "(see `ardiff.rules`)."]
    return "\n".join(lines)


def numpy_names_markdown() -> str:
    """The functions `ardiff.numpy` exports, split into traced ones and plain-value ones."""
    import ardiff.numpy as anp
    import ardiff.numpy.fft as afft
    import ardiff.numpy.linalg as alinalg

    plain = set(anp.WITHOUT_GRADIENT)
    traced = sorted(n for n in anp.__all__ if n not in plain and n not in NOT_FUNCTIONS)

    def codes(names) -> str:
        return ", ".join(f"`{n}`" for n in names)

    return "\n".join([
        f"**Traced, with gradients** ({len(traced)}): {codes(traced)}.", "",
        f"**`ardiff.numpy.linalg`**: {codes(sorted(alinalg.__all__))}.", "",
        f"**`ardiff.numpy.fft`**: {codes(sorted(afft.__all__))}.", "",
        f"**On plain values, no gradient** ({len(plain)}): {codes(sorted(plain))}.",
    ])


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    """Fill in the generated op table and namespace listing."""
    if OP_TABLE_MARKER in markdown:
        markdown = markdown.replace(OP_TABLE_MARKER, op_table_markdown())
    if NUMPY_NAMES_MARKER in markdown:
        markdown = markdown.replace(NUMPY_NAMES_MARKER, numpy_names_markdown())
    return markdown

