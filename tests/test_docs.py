"""The documentation builds and says what the code does.

The site is built once with ``mkdocs build --strict`` (a broken link, a missing page or
an object mkdocstrings cannot find fails it), then the built HTML is read back:

* every public name of ``ardiff.__all__`` (and the op entry points ``ardiff.op.defop``,
  ``ardiff.Op``, ``ardiff.solvers.SolverOptions``) has a heading on the API page;
* every function and class rendered there shows its real signature: the same parameters
  with the same defaults as ``inspect.signature``, in the signature block and in the
  "default:" of its parameter list (a numpydoc type such as ``{"paper"}`` renders its
  first choice as the default, which is how a wrong default reached the page once);
* the generated op table groups the ops by the module that defines them;
* the code of "Adding an op" (docs/ops.md) runs.

The tests are skipped only where mkdocs is not installed; the ``test`` extra installs it.
"""

from __future__ import annotations

import ast
import html
import importlib
import inspect
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mkdocs", reason="the docs tests need mkdocs (the test extra)")

import ardiff  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT_S = 600

#: Public entry points that are not in ardiff.__all__ but must be on the API page.
ALSO_ON_API_PAGE = ["ardiff.op.defop", "ardiff.Op", "ardiff.solvers.SolverOptions",
                    "ardiff.testing.check_grads"]

#: Functions whose rendered defaults are checked by name (the ones that were wrong once,
#: or are the first a user reads); every other rendered object is checked as well.
KEY_FUNCTIONS = ["ardiff.relax", "ardiff.grad", "ardiff.testing.check_grads",
                 "ardiff.check_convexity", "ardiff.solve_triangular", "ardiff.compile",
                 "ardiff.backprop", "ardiff.op.defop"]


# -- building and reading the site ------------------------------------------------------------
@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, (
        f"mkdocs build --strict failed after {seconds:.0f} s:\n{proc.stderr[-6000:]}")
    return out


@dataclass
class Rendered:
    """One object as mkdocstrings rendered it."""

    id: str
    heading: str
    signature: str | None = None  # the signature block as text
    documented: dict = field(default_factory=dict)  # parameter -> "default:" text or None


HEADING = re.compile(r'<h(?P<level>[2-6]) id="(?P<id>[^"]+)" class="doc doc-heading">'
                     r"(?P<text>.*?)</h(?P=level)>", re.S)
SIGNATURE = re.compile(r'<div class="doc-signature highlight"><pre>(.*?)</pre>', re.S)
PARAMETERS = re.compile(r'<th class="field-name">Parameters:</th>(.*?)</table>', re.S)
ITEM = re.compile(r"<li>(.*?)</li>", re.S)
NAME = re.compile(r"<b><code>(.*?)</code></b>", re.S)
DEFAULT = re.compile(r"default:\s*<code>(.*?)</code>", re.S)


def text_of(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def read_objects(page: str) -> dict[str, Rendered]:
    """Every mkdocstrings heading of a built page, with what follows it up to the next."""
    found = {}
    matches = list(HEADING.finditer(page))
    for match, following in zip(matches, [*matches[1:], None]):
        body = page[match.end():following.start() if following else len(page)]
        heading = " ".join(text_of(match.group("text")).replace("\u00b6", "").split())
        obj = Rendered(match.group("id"), heading.split()[0] if heading else "")
        signature = SIGNATURE.search(body)
        if signature:
            obj.signature = text_of(signature.group(1))
        parameters = PARAMETERS.search(body)
        if parameters:
            for item in ITEM.findall(parameters.group(1)):
                name = NAME.search(item)
                if name:
                    default = DEFAULT.search(item.split("doc-md-description")[0])
                    obj.documented[text_of(name.group(1))] = (
                        text_of(default.group(1)).strip() if default else None)
        found[obj.id] = obj
    return found


@pytest.fixture(scope="module")
def api(site) -> dict[str, Rendered]:
    return read_objects((site / "api" / "index.html").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def rendered(site) -> dict[str, Rendered]:
    """Every object rendered on any page of the site."""
    found = {}
    for page in sorted(site.rglob("*.html")):
        found.update(read_objects(page.read_text(encoding="utf-8")))
    return found


def resolve(path: str):
    """The Python object at a dotted path (the longest importable module, then attributes)."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(path)


def find(api: dict[str, Rendered], public: str) -> Rendered | None:
    """The object rendered under a public name (its anchor, or the heading's text)."""
    return api.get(public) or next((o for o in api.values() if o.heading == public), None)


# -- comparing defaults -------------------------------------------------------------------------
def same_default(text: str, value, namespace: dict | None = None) -> bool:
    """Whether the source text of a rendered default denotes the signature's default.

    A default written as an expression of its module (`PAPER["eta"]`: the paper's
    protocol, defined once) is rendered as written and evaluated in `namespace`."""
    if repr(value) == "<factory>":  # a dataclass field's default_factory: any source text
        return True
    try:
        rendered = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        try:
            rendered = eval(text, {"np": np, "numpy": np, **(namespace or {})})
        except Exception:
            return text.rsplit(".", 1)[-1] == getattr(value, "__name__", repr(value))
    if isinstance(value, float) and isinstance(rendered, (int, float)):
        return float(rendered) == value or (np.isnan(value) and np.isnan(rendered))
    return type(rendered) is type(value) and rendered == value if not callable(value) \
        else rendered is value


def signature_defaults(obj) -> dict:
    """Parameter -> default (inspect.Parameter.empty for none), without *args/**kwargs
    and without the `self` of a method (mkdocstrings leaves it out)."""
    parameters = list(inspect.signature(obj).parameters.values())
    if parameters and parameters[0].name in ("self", "cls") and not isinstance(obj, type):
        parameters = parameters[1:]
    return {p.name: p.default for p in parameters
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def rendered_defaults(signature: str) -> dict:
    """Parameter -> default source text (None for none) of a rendered signature block."""
    parameters_and_return = " ".join(signature.split()).split("(", 1)[1]
    tree = ast.parse(f"def _({parameters_and_return}: pass")
    args = tree.body[0].args
    positional = [*args.posonlyargs, *args.args]
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    out = {a.arg: ast.unparse(d) if d is not None else None
           for a, d in zip(positional, defaults)}
    out.update({a.arg: ast.unparse(d) if d is not None else None
                for a, d in zip(args.kwonlyargs, args.kw_defaults)})
    return out


def describe(default) -> str:
    return "none" if default is inspect.Parameter.empty else repr(default)


def mismatches(obj: Rendered) -> list[str]:
    """What the rendered object says about parameters that its signature does not."""
    try:
        real = signature_defaults(resolve(obj.id))
    except (TypeError, ValueError):  # no introspectable signature (some builtins)
        return []
    module = inspect.getmodule(resolve(obj.id))
    namespace = vars(module) if module is not None else {}
    problems = []
    if obj.signature is not None and "(" in obj.signature:
        shown = rendered_defaults(obj.signature)
        if list(shown) != list(real):
            problems.append(f"parameters {list(shown)} rendered, {list(real)} in the code")
        for name, text in shown.items():
            if name not in real:
                continue
            if (text is None) != (real[name] is inspect.Parameter.empty):
                problems.append(f"{name}: rendered default {text}, signature "
                                f"{describe(real[name])}")
            elif text is not None and not same_default(text, real[name], namespace):
                problems.append(f"{name}: rendered default {text}, signature {real[name]!r}")
    for name, text in obj.documented.items():
        # "argnum, **options" in a docstring once rendered **options with argnum's default;
        # mkdocstrings' own "{}" / "()" for an empty **kwargs / *args is right
        if name.startswith("*") and text not in (None, "{}", "()"):
            problems.append(f"{name}: rendered default {text}, but it has none")
        name = name.lstrip("*")
        if name not in real:
            if name not in {p.lstrip("*") for p in inspect.signature(resolve(obj.id)).parameters}:
                problems.append(f"{name}: documented but not a parameter")
            continue
        default = real[name]
        if text is not None and (default is inspect.Parameter.empty
                                 or not same_default(text, default, namespace)):
            problems.append(f"{name}: parameter list says default {text}, signature "
                            f"{describe(default)}")
    return problems


def _signature_reader_selfcheck():
    shown = rendered_defaults('f(\n    a: int,\n    b: float = 1e-05,\n    *,\n'
                              '    c: str | None = None,\n    d: str = "x",\n) -> Result')
    assert shown == {"a": None, "b": "1e-05", "c": "None", "d": "'x'"}, shown


def test_signature_reader():
    """The reader of rendered signatures and defaults, on a known text."""
    _signature_reader_selfcheck()
    assert same_default("1e-05", 1e-5) and not same_default("1e-06", 1e-5)
    assert same_default("None", None) and not same_default('"paper"', None)
    assert same_default("np.float64", np.float64)


# -- the API page ------------------------------------------------------------------------------
@pytest.mark.parametrize("public", [f"ardiff.{name}" for name in ardiff.__all__]
                         + ALSO_ON_API_PAGE)
def test_public_name_is_on_the_api_page(api, public):
    obj = find(api, public)
    assert obj is not None, f"{public} has no heading on docs/api.md"
    if not public.endswith(".vjp"):
        assert resolve(obj.id) is resolve(public), (
            f"the heading {public} renders {obj.id}, a different object")


def test_vjp_is_make_vjp():
    """docs/api.md says ardiff.vjp is the same function as ardiff.make_vjp."""
    assert ardiff.vjp is ardiff.make_vjp


@pytest.mark.parametrize("public", KEY_FUNCTIONS)
def test_key_function_renders_its_signature(api, public):
    obj = find(api, public)
    assert obj is not None and obj.signature, f"{public}: no signature rendered"
    real = signature_defaults(resolve(public))
    shown = rendered_defaults(obj.signature)
    assert {k: v for k, v in real.items()}.keys() == shown.keys()
    assert not mismatches(obj), f"{public}: " + "; ".join(mismatches(obj))


def test_every_rendered_object_matches_its_signature(rendered):
    """On every page (the API page, and the nn/rules objects of the reproduction page)."""
    assert len(rendered) > 50
    problems = {obj.id: mismatches(obj) for obj in rendered.values()
                if obj.signature and callable(resolve(obj.id))}
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, "\n".join(f"{k}: {'; '.join(v)}" for k, v in problems.items())


def test_tables_wrap_their_cells(site):
    """The theme's nowrap cells pushed api.md's option table past the page (issue 24.8)."""
    css = (site / "css" / "extra.css").read_text(encoding="utf-8")
    assert re.search(r"\.wy-table-responsive table td[^{]*\{\s*white-space:\s*normal", css)
    assert 'href="../css/extra.css"' in (site / "api" / "index.html").read_text(encoding="utf-8")


def test_relax_renders_the_function_not_its_module(api):
    """`::: ardiff.relax` once rendered the solver module (same name as the function)."""
    obj = find(api, "ardiff.relax")
    assert obj.signature.startswith("relax(") and "preset" in obj.signature
    assert not any(key.startswith("ardiff.relax.") for key in api), "module members rendered"


# -- generated listings -------------------------------------------------------------------------
def op_table_rows(site: Path) -> dict[str, str]:
    page = (site / "ops" / "index.html").read_text(encoding="utf-8")
    table = page.split("elementary ops at the time this page was built", 1)[1]
    table = table[:table.index("</table>")]
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table, re.S):
        cells = re.findall(r"<td>(.*?)</td>", row, re.S)
        if len(cells) == 3:
            rows[text_of(cells[0]).strip()] = text_of(cells[1])
    return rows


def test_op_table_groups_ops_by_defining_module(site):
    rows = op_table_rows(site)
    elementwise = next(v for k, v in rows.items() if k.startswith("Elementwise"))
    names = {n.strip() for n in elementwise.split(",")}
    assert {"sin", "add", "tanh", "multiply", "exp", "where", "clip"} <= names
    reductions = next(v for k, v in rows.items() if k.startswith("Reductions"))
    assert "sum" in reductions and "sin" not in reductions
    assert any("dense" in v for k, v in rows.items() if "ardiff.nn" in k)
    assert "ops" not in rows and "other" not in rows, rows.keys()
    listed = [n.strip() for v in rows.values() for n in v.split(",")]
    assert len(set(listed)) == len(listed), "an op in two rows"
    page = text_of((site / "ops" / "index.html").read_text(encoding="utf-8"))
    count = int(re.search(r"(\d+) elementary ops at the time", page).group(1))
    assert len(listed) == count
    import ardiff.nn  # noqa: F401  (registers "dense")
    from ardiff.ops import OPS
    assert set(listed) <= set(OPS)


def test_numpy_listing_is_the_namespace(site):
    """The generated listing of docs/numpy.md names exactly what `ardiff.numpy` exports
    (its `__all__`, less the submodules), split by `WITHOUT_GRADIENT`."""
    import ardiff.numpy as anp
    import ardiff.numpy.linalg as alinalg

    page = (site / "numpy" / "index.html").read_text(encoding="utf-8")
    listing = {}
    for title, body in re.findall(r"<strong>(.*?)</strong>(.*?)</p>", page, re.S):
        listing[text_of(title)] = set(text_of(c) for c in re.findall(r"<code>(.*?)</code>", body))
    traced = next(v for k, v in listing.items() if k.startswith("Traced"))
    plain = next(v for k, v in listing.items() if k.startswith("On plain values"))
    linalg = next(v for k, v in listing.items() if "linalg" in k)
    fft = next(v for k, v in listing.items() if "numpy.fft" in k)
    assert fft == set(anp.fft.__all__)
    assert plain == set(anp.WITHOUT_GRADIENT)
    assert traced == set(anp.__all__) - set(anp.WITHOUT_GRADIENT) - {"fft", "linalg", "random"}
    assert linalg == set(alinalg.__all__)
    assert {"sin", "matmul", "stack"} <= traced and "concrete" not in traced


def code_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, re.S)


def test_adding_an_op_example_runs(tmp_path):
    """The 'Adding an op' example of docs/ops.md, in a fresh interpreter (it adds an op to
    the global table, which the other tests must not see)."""
    page = (ROOT / "docs" / "ops.md").read_text(encoding="utf-8")
    section = page.split("## Adding an op", 1)[1]
    blocks = code_blocks(section)
    assert blocks, "no python example under 'Adding an op'"
    for i, code in enumerate(blocks):
        proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, f"example {i} of 'Adding an op' failed:\n{proc.stderr}"


def test_solver_options_table_matches_the_defaults():
    """The option table at the top of docs/api.md against `SolverOptions` and the preset
    (read from the Markdown source: the table is hand-written, the values are not)."""
    from ardiff.solvers import PRESETS, SolverOptions

    page = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    table = re.findall(r"^\| `(\w+)` \| (.*?) \| (.*?) \|$", page, re.M)
    rows = {name: default for name, default, _ in table}
    meaning = {name: text for name, _, text in table}
    defaults = SolverOptions()
    for name in ("method", "schedule", "eta", "init", "tol", "record", "closed_form", "time"):
        shown = ast.literal_eval(rows[name].strip("`"))
        assert shown == getattr(defaults, name), f"{name}: docs/api.md says {shown!r}"
    assert defaults.max_iter is None and "depth" in rows["max_iter"]
    paper = PRESETS["paper"]
    assert (paper["schedule"], paper["eta"], paper["max_iter"], paper["init"],
            paper["closed_form"]) == ("parallel", 0.1, 100, "forward", True), \
        "update the preset row of docs/api.md"
    assert "parallel, eta 0.1, exactly 100 steps, forward init; computed in closed form" \
        in meaning["preset"]


SPHINX_ROLE = re.compile(r":(?:py:)?(?:func|meth|class|mod|attr|data|exc|obj|const):`")
RST_LITERAL = re.compile(r"(?<!`)``(?!`)[^`\n]+``(?!`)")


def docstrings(path: Path):
    """(line, text) of the module, class and function docstrings of a source file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            text = ast.get_docstring(node, clean=False)
            if text:
                yield getattr(node, "lineno", 1), text


def test_docstrings_are_markdown():
    """Docstrings are numpydoc sections with Markdown code spans, which mkdocstrings
    renders as written: no Sphinx roles (`:func:`), no RST literals (double backticks)."""
    found = []
    for path in sorted((ROOT / "ardiff").rglob("*.py")):
        for line, text in docstrings(path):
            for pattern in (SPHINX_ROLE, RST_LITERAL):
                for match in pattern.finditer(text):
                    found.append(f"{path.relative_to(ROOT)}:{line}: {match.group(0)!r}")
    assert not found, "write `name` (or [`name`][ardiff.name] for a link):\n" + "\n".join(found)


def test_renamed_modules_are_recorded_and_gone():
    """docs/api.md's table of renames is the record of the removed aliases: every
    module it lists as renamed is gone (its new home imports), and the package holds
    no other alias module."""
    import importlib

    page = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    renamed = re.findall(r"\| module `(ardiff[\w.]*)` \| `(ardiff[\w.]*)`", page)
    assert len(renamed) == 4, renamed
    for old, new in renamed:
        importlib.import_module(new)
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(old)
    assert not hasattr(ardiff, "DEPRECATED_MODULES")
