"""MkDocs hooks for the ardiff documentation (``hooks:`` in mkdocs.yml).

* Pages that other parts of the project write (solvers, results, reproduction,
  sharp edges) are listed in the nav before they exist; a missing one is left out
  of the nav instead of failing ``mkdocs build --strict``.  Any other missing page
  still fails the build.
* Docstrings use Sphinx cross-reference roles (``:func:`grad```), which
  mkdocstrings renders literally; the role prefix is dropped from the HTML so
  the name reads as code.
* ``<!-- ardiff:op-table -->`` in a page is replaced by the table of elementary
  ops read from ``ardiff.ops.OPS`` at build time, and ``<!-- ardiff:numpy-names -->``
  by the functions of ``ardiff.numpy``, so these lists never go stale.
"""

from __future__ import annotations

import logging
import os
import re

log = logging.getLogger("mkdocs.hooks.ardiff")

OPTIONAL_PAGES = {"solvers.md", "results.md", "reproduce.md", "sharp-edges.md"}
OP_TABLE_MARKER = "<!-- ardiff:op-table -->"
NUMPY_NAMES_MARKER = "<!-- ardiff:numpy-names -->"
# Helpers that live in the ardiff.numpy namespace but are not NumPy functions.
NOT_NUMPY = {"builtins_max", "concrete"}
SPHINX_ROLE = re.compile(r":(?:py:)?(?:func|meth|class|mod|attr|data|exc|obj|const):(<code>)")

FAMILIES = {
    "elementwise": "Elementwise (ufuncs, operators, where, clip)",
    "reduce": "Reductions and scans",
    "linalg": "Linear algebra",
    "shape": "Shape, indexing and casting",
    "special": "Special functions (ardiff.scipy.special)",
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


def _family(op) -> str:
    """The op-table family of an op: the module its VJP makers are written in."""
    makers = [f for f in (*op.vjps, op.vjp) if f is not None]
    module = getattr(makers[0], "__module__", "") if makers else ""
    return module.rsplit(".", 1)[-1]


def op_table_markdown() -> str:
    """Markdown table of the elementary ops in ``ardiff.ops.OPS``, grouped by family."""
    from ardiff.ops import OPS

    groups: dict[str, list] = {}
    for name, op in sorted(OPS.items()):
        groups.setdefault(_family(op), []).append((name, op))
    lines = [f"{len(OPS)} elementary ops at the time this page was built.", ""]
    lines += ["| family | ops | flagged `nonlinear` |", "| --- | --- | --- |"]
    for key in [*FAMILIES, *sorted(set(groups) - set(FAMILIES))]:
        if key not in groups:
            continue
        names = ", ".join(f"`{name}`" for name, _ in groups[key])
        flagged = ", ".join(f"`{name}`" for name, op in groups[key] if op.nonlinear) or "none"
        lines.append(f"| {FAMILIES.get(key, key)} | {names} | {flagged} |")
    lines += ["", "Ops flagged `nonlinear` are those whose local derivative the `NoDerivative` "
              "rule (the paper's eq. 7) may replace by the identity during relaxation "
              "(see `ardiff.rules`)."]
    return "\n".join(lines)


def numpy_names_markdown() -> str:
    """The functions ``ardiff.numpy`` defines, split into traced ones and plain-value ones."""
    import types

    import ardiff.numpy as anp
    import ardiff.numpy.linalg as alinalg

    def public(module) -> list[str]:
        return sorted(n for n, v in vars(module).items()
                      if not n.startswith("_") and n not in NOT_NUMPY and callable(v)
                      and not isinstance(v, (type, types.ModuleType)))

    plain = set(anp.WITHOUT_GRADIENT)
    traced = [n for n in public(anp) if n not in plain]

    def codes(names) -> str:
        return ", ".join(f"`{n}`" for n in names)

    return "\n".join([
        f"**Traced, with gradients** ({len(traced)}): {codes(traced)}.", "",
        f"**`ardiff.numpy.linalg`**: {codes(public(alinalg))}.", "",
        f"**On plain values, no gradient** ({len(plain)}): {codes(sorted(plain))}.",
    ])


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    """Fill in the generated op table and namespace listing."""
    if OP_TABLE_MARKER in markdown:
        markdown = markdown.replace(OP_TABLE_MARKER, op_table_markdown())
    if NUMPY_NAMES_MARKER in markdown:
        markdown = markdown.replace(NUMPY_NAMES_MARKER, numpy_names_markdown())
    return markdown


def on_page_content(html: str, page, config, files, **kwargs) -> str:
    """Drop Sphinx role prefixes (``:func:``) left in front of rendered code spans."""
    return SPHINX_ROLE.sub(r"\1", html)
