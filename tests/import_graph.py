"""The import graph of a package, read from its source with :mod:`ast`, and the
architecture checks that tests/test_architecture.py runs on it.

Nothing here imports the package it checks: every ``import`` and ``from ... import``
statement of every ``.py`` file under the package directory is parsed, at module
level and inside classes and functions, relative imports resolved against the
importing module's package.  Imports under ``if TYPE_CHECKING:`` are ignored;
``importlib.import_module("...")`` and ``__import__("...")`` with a literal name
count like an ``import`` statement.

What counts as an edge between two modules of the package:

* ``import pkg.a.b`` and ``from pkg.a import b`` (``b`` a submodule) import the
  module ``pkg.a.b``; the ``__init__`` modules of the packages above it are not
  edges (``import pkg.ops.linalg`` does not make an edge to ``pkg.ops``);
* ``from pkg.a import name`` (``name`` not a submodule) imports ``pkg.a``, the
  package's ``__init__`` if ``pkg.a`` is a package.

:func:`check_package` returns the violations of the layering rules as a list
(empty when the package is clean), so that a test can run it both on the real
package and on a synthetic one planted with a violation.  Run this file as a
script to print the violations and the function-level imports of ``ardiff/``.
"""

from __future__ import annotations

import ast
import dataclasses
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: The layer of the package root and of the deprecated alias modules: they may
#: import anything, and nothing inside the package may import them.
TOP = "top"

MODULE, CLASS, FUNCTION = "module", "class", "function"

#: Kinds of violation, in the order they are reported.
KINDS = ("unmapped", "unresolved", "cycle", "upward", "private", "lazy-import")


@dataclass(frozen=True)
class Import:
    """One module imported by one statement (a statement may give several)."""

    source: str  # importing module, e.g. "ardiff.ops.linalg"
    target: str  # imported module, absolute, e.g. "ardiff.graph" or "numpy.linalg"
    names: tuple[str, ...]  # names taken from target by ``from target import ...``; () else
    path: str  # the importing file, relative to the package's parent directory
    line: int
    scope: str  # MODULE, CLASS or FUNCTION: where the statement sits
    internal: bool  # target is a module of the checked package
    resolved: bool = True  # False: an internal target that no file of the package defines

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def describe(self) -> str:
        scope = "" if self.scope == MODULE else f", inside a {self.scope}"
        return f"{self.where} ({self.source} -> {self.target}{scope})"


@dataclass(frozen=True, order=True)
class Violation:
    kind: str  # one of KINDS
    message: str

    def __str__(self) -> str:
        return f"[{self.kind}] {self.message}"


@dataclass
class ModuleInfo:
    name: str
    path: Path  # relative to the package's parent directory
    is_package: bool


# -- reading the package --------------------------------------------------------------------


def find_modules(package_dir: Path) -> dict[str, ModuleInfo]:
    """Every module of the package in ``package_dir``, by dotted name."""
    package_dir = Path(package_dir)
    root = package_dir.name
    modules = {}
    for file in sorted(package_dir.rglob("*.py")):
        rel = file.relative_to(package_dir.parent)
        parts = list(rel.with_suffix("").parts)
        if not all(part.isidentifier() for part in parts):
            continue  # not importable (e.g. a script named with a dash)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        name = ".".join(parts)
        assert name == root or name.startswith(root + ".")
        modules[name] = ModuleInfo(name, rel, is_package)
    return modules


def read_deprecated_modules(package_dir: Path) -> dict[str, str]:
    """The ``DEPRECATED_MODULES`` dict literal of the package's ``__init__.py`` ({} if none)."""
    init = Path(package_dir) / "__init__.py"
    if not init.exists():
        return {}
    tree = ast.parse(init.read_text(encoding="utf-8"), filename=str(init))
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "DEPRECATED_MODULES" for t in targets):
            return dict(ast.literal_eval(value))
    return {}


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of attribute accesses on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def is_private(name: str) -> bool:
    """``_name`` and ``__name`` are private; dunder names such as ``__version__`` are not."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


class _ModuleReader(ast.NodeVisitor):
    """Collects the imports of one module, and its accesses ``module._name``."""

    def __init__(self, info: ModuleInfo, modules: Mapping[str, ModuleInfo], root: str):
        self.info = info
        self.modules = modules
        self.root = root
        self.package = info.name if info.is_package else info.name.rpartition(".")[0]
        self.scopes: list[str] = []
        self.imports: list[Import] = []
        self.bindings: dict[str, str] = {}  # local name -> internal module it is bound to
        self.attributes: list[tuple[str, int, str]] = []  # (dotted value, line, private attr)

    # scopes
    @property
    def scope(self) -> str:
        if FUNCTION in self.scopes:
            return FUNCTION
        return self.scopes[-1] if self.scopes else MODULE

    def _visit_in(self, scope: str, statements: Iterable[ast.AST]) -> None:
        self.scopes.append(scope)
        for statement in statements:
            self.visit(statement)
        self.scopes.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        # decorators, defaults and annotations are evaluated where the function is defined
        for child in [*node.decorator_list, node.args, node.returns]:
            if child is not None:
                self.visit(child)
        self._visit_in(FUNCTION, node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.visit(node.args)
        self._visit_in(FUNCTION, [node.body])

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for child in [*node.decorator_list, *node.bases, *node.keywords]:
            self.visit(child)
        self._visit_in(CLASS, node.body)

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for stmt in node.orelse:  # the body runs only for type checkers
                self.visit(stmt)
        else:
            self.generic_visit(node)

    # imports
    def _internal(self, module: str) -> bool:
        return module == self.root or module.startswith(self.root + ".")

    def _add(self, node: ast.AST, target: str, names: tuple[str, ...] = ()) -> None:
        internal = self._internal(target)
        self.imports.append(Import(
            source=self.info.name, target=target, names=names, path=self.info.path.as_posix(),
            line=node.lineno, scope=self.scope, internal=internal,
            resolved=not internal or target in self.modules))

    def _resolve_relative(self, level: int, module: str | None) -> str | None:
        base = self.package.split(".")
        if level - 1 >= len(base):
            return None  # beyond the top of the package
        base = base[: len(base) - (level - 1)]
        return ".".join(base + ([module] if module else []))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(node, alias.name)
            if self._internal(alias.name):
                if alias.asname:
                    self.bindings[alias.asname] = alias.name
                else:
                    self.bindings[alias.name.partition(".")[0]] = self.root

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self._resolve_relative(node.level, node.module)
            if base is None:
                self.imports.append(Import(
                    self.info.name, "." * node.level + (node.module or ""), (),
                    self.info.path.as_posix(), node.lineno, self.scope, True, False))
                return
        else:
            base = node.module or ""
        if not self._internal(base):
            self._add(node, base, tuple(alias.name for alias in node.names))
            return
        names = []
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            if submodule in self.modules:
                self._add(node, submodule)
                self.bindings[alias.asname or alias.name] = submodule
            else:
                names.append(alias.name)
        if names or not node.names:
            self._add(node, base, tuple(names))

    def visit_Call(self, node: ast.Call) -> None:
        func = _dotted(node.func)
        if (func in ("importlib.import_module", "import_module", "__import__")
                and node.args and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)):
            name = node.args[0].value
            level = len(name) - len(name.lstrip("."))
            if level:
                name = self._resolve_relative(level, name[level:] or None) or name
            self._add(node, name)
        self.generic_visit(node)

    # module._private
    def visit_Attribute(self, node: ast.Attribute) -> None:
        if is_private(node.attr):
            value = _dotted(node.value)
            if value is not None:
                self.attributes.append((value, node.lineno, node.attr))
        self.generic_visit(node)


@dataclass
class ImportGraph:
    root: str
    modules: dict[str, ModuleInfo]
    imports: list[Import]
    private_attributes: list[tuple[ModuleInfo, int, str, str]]  # (module, line, target, attr)

    @property
    def internal(self) -> list[Import]:
        """Imports of one module of the package by another (or by itself)."""
        return [imp for imp in self.imports if imp.internal and imp.resolved]


def build_import_graph(package_dir: Path) -> ImportGraph:
    """Parse every module of the package in ``package_dir`` (nothing is imported)."""
    package_dir = Path(package_dir)
    modules = find_modules(package_dir)
    imports: list[Import] = []
    private_attributes = []
    for info in modules.values():
        file = package_dir.parent / info.path
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
        reader = _ModuleReader(info, modules, package_dir.name)
        reader.visit(tree)
        imports.extend(reader.imports)
        for value, line, attr in reader.attributes:
            head, _, rest = value.partition(".")
            if head not in reader.bindings:
                continue
            target = ".".join(filter(None, [reader.bindings[head], rest]))
            if target in modules and target != info.name:
                private_attributes.append((info, line, target, attr))
    return ImportGraph(package_dir.name, modules, imports, private_attributes)


# -- layers -----------------------------------------------------------------------------------


def _matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str, layers: Sequence[Sequence[str]], root: str,
             top_modules: Iterable[str] = ()) -> int | str | None:
    """The layer (an index into ``layers``) of the entry whose prefix matches ``module``
    longest; TOP for the package root and the top modules (and their submodules); None
    when no entry covers the module."""
    if module == root:
        return TOP
    best: tuple[int, int | str] | None = None
    candidates = [(p, i) for i, entries in enumerate(layers) for p in entries]
    candidates += [(p, TOP) for p in top_modules]
    for prefix, layer in candidates:
        if _matches(module, prefix) and (best is None or len(prefix) > best[0]):
            best = (len(prefix), layer)
    return None if best is None else best[1]


def _check_layer_map(layers: Sequence[Sequence[str]]) -> None:
    seen: dict[str, int] = {}
    for i, entries in enumerate(layers):
        if isinstance(entries, str):
            raise TypeError(f"layer {i} must be a list of module prefixes, not a string")
        for prefix in entries:
            if prefix in seen:
                raise ValueError(f"{prefix} is in layer {seen[prefix]} and in layer {i}")
            seen[prefix] = i


# -- cycles -----------------------------------------------------------------------------------


def strongly_connected_components(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit on a long chain)."""
    nodes = sorted(set(edges) | {t for targets in edges.values() for t in targets})
    succ = {n: sorted(set(edges.get(n, ()))) for n in nodes}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for start in nodes:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            recurse = False
            for j in range(i, len(succ[node])):
                nxt = succ[node][j]
                if nxt not in index:
                    work.append((node, j + 1))
                    work.append((nxt, 0))
                    recurse = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if recurse:
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return components


def _shortest_cycle(start: str, succ: Mapping[str, Sequence[str]]) -> list[str]:
    """The shortest path start -> ... -> start (breadth first), as a list of modules."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in succ.get(node, ()):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return path[::-1] + [start]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    raise ValueError(f"{start} is on no cycle")


def _cycles(graph: ImportGraph) -> list[Violation]:
    by_edge: dict[tuple[str, str], list[Import]] = {}
    for imp in graph.internal:
        by_edge.setdefault((imp.source, imp.target), []).append(imp)
    succ: dict[str, list[str]] = {}
    for source, target in sorted(by_edge):
        succ.setdefault(source, []).append(target)
    violations = []
    for component in strongly_connected_components(succ):
        members = set(component)
        if len(component) == 1 and (component[0], component[0]) not in by_edge:
            continue
        cycle = _shortest_cycle(component[0], succ)
        steps = [f"{a} -> {b} ({by_edge[a, b][0].where})" for a, b in zip(cycle, cycle[1:])]
        inside = sorted((imp for (a, b), imps in by_edge.items()
                         if a in members and b in members for imp in imps),
                        key=lambda imp: (imp.path, imp.line, imp.target))
        lines = [f"import cycle among {len(component)} module(s): {', '.join(component)}",
                 "  a shortest cycle: " + "; ".join(steps),
                 f"  all {len(inside)} imports inside the group:"]
        lines += [f"    {imp.describe()}" for imp in inside]
        violations.append(Violation("cycle", "\n".join(lines)))
    return violations


# -- the checks -----------------------------------------------------------------------------------


def _allowlisted(module: str, allowlist: Iterable[str]) -> bool:
    return any(_matches(module, entry) for entry in allowlist)


def check_package(package_dir: Path, layers: Sequence[Sequence[str]], *,
                  lazy_allowlist: Iterable[str] = (),
                  top_modules: Iterable[str] | None = None,
                  exempt_imports: Iterable[tuple[str, str]] = (),
                  graph: ImportGraph | None = None) -> list[Violation]:
    """The architecture violations of the package in ``package_dir`` (a directory with an
    ``__init__.py``), sorted by kind then message; an empty list when it is clean.

    ``layers`` lists the layers bottom to top, each a list of module prefixes; a module
    belongs to the entry whose prefix matches it longest.  The package root, the modules
    of ``top_modules`` (default: the keys of ``DEPRECATED_MODULES`` in the package's
    ``__init__.py``) and their submodules are the top: they may import anything and
    nothing may import them.  ``lazy_allowlist`` lists the third-party modules (and
    their submodules) that may be imported inside a function; standard-library modules
    always may.  ``exempt_imports`` lists ``(importer, imported)`` module pairs whose
    imports *inside functions* are left out of every check (deprecated aliases that must
    reach upward until they are removed); a module-level import is never exempt.
    """
    package_dir = Path(package_dir)
    _check_layer_map(layers)
    if graph is None:
        graph = build_import_graph(package_dir)
    exempt = set(exempt_imports)
    if exempt:
        graph = dataclasses.replace(graph, imports=[
            imp for imp in graph.imports
            if not (imp.scope == FUNCTION and (imp.source, imp.target) in exempt)])
    root = graph.root
    if top_modules is None:
        top_modules = read_deprecated_modules(package_dir)
    top_modules = sorted(top_modules)
    lazy_allowlist = list(lazy_allowlist)
    layer = {name: layer_of(name, layers, root, top_modules) for name in graph.modules}
    violations: list[Violation] = []

    for name, info in graph.modules.items():
        if layer[name] is None:
            violations.append(Violation("unmapped", (
                f"{info.path.as_posix()}: module {name} is in no layer: add it (or a prefix "
                "of it) to LAYERS in tests/test_architecture.py")))

    for imp in graph.imports:
        if imp.internal and not imp.resolved:
            violations.append(Violation("unresolved", (
                f"{imp.describe()}: no module of the package is named {imp.target}")))

    violations += _cycles(graph)

    for imp in graph.internal:
        if imp.source == imp.target:
            continue
        src, dst = layer[imp.source], layer[imp.target]
        if src == TOP or src is None or dst is None:
            continue
        if dst == TOP:
            what = ("the package root" if imp.target == root
                    else "a deprecated alias module (DEPRECATED_MODULES)")
            violations.append(Violation("upward", (
                f"{imp.describe()}: {imp.target} is {what}, the top layer; nothing inside "
                "the package may import it (import from the module that defines the name)")))
        elif dst > src:
            violations.append(Violation("upward", (
                f"{imp.describe()}: layer {src} imports layer {dst}; imports must point "
                "down (or stay within a layer)")))

    for imp in graph.internal:
        if imp.source == imp.target:
            continue
        private_names = [n for n in imp.names if is_private(n)]
        if private_names:
            violations.append(Violation("private", (
                f"{imp.describe()}: imports private name(s) {', '.join(private_names)} from "
                "another module; make it public API of its home module (documented), or "
                "merge the two modules")))
        parts = imp.target.split(".")
        for i, part in enumerate(parts):
            if is_private(part):
                owner = ".".join(parts[:i])
                if not _matches(imp.source, owner):
                    violations.append(Violation("private", (
                        f"{imp.describe()}: {imp.target} is private to the package {owner}; "
                        f"import it through the public API of {owner}")))
                break

    for info, line, target, attr in graph.private_attributes:
        violations.append(Violation("private", (
            f"{info.path.as_posix()}:{line} ({info.name}): uses private name {attr} of "
            f"module {target}; make it public API of {target}, or merge the two modules")))

    for imp in graph.imports:
        if imp.internal or imp.scope != FUNCTION:
            continue
        top = imp.target.partition(".")[0]
        if top in sys.stdlib_module_names or top == "__future__":
            continue
        candidates = [f"{imp.target}.{n}" for n in imp.names] or [imp.target]
        if _allowlisted(imp.target, lazy_allowlist) or all(
                _allowlisted(c, lazy_allowlist) for c in candidates):
            continue
        shown = imp.target + (f" ({', '.join(imp.names)})" if imp.names else "")
        violations.append(Violation("lazy-import", (
            f"{imp.where} ({imp.source}): imports {shown} inside a function; import it at "
            "module level, or add it to LAZY_THIRD_PARTY in tests/test_architecture.py with "
            "the reason (optional dependency, or a measured import-time saving)")))

    order = {kind: i for i, kind in enumerate(KINDS)}
    return sorted(violations, key=lambda v: (order[v.kind], v.message))


def format_violations(violations: Sequence[Violation]) -> str:
    """One block per violation, for a failing test's message."""
    return f"{len(violations)} architecture violation(s):\n" + "\n".join(
        str(v) for v in violations)


if __name__ == "__main__":  # python tests/import_graph.py: report on ardiff/
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    from test_architecture import LAYERS, LAZY_THIRD_PARTY, PACKAGE_DIR

    graph = build_import_graph(PACKAGE_DIR)
    lazy = [imp for imp in graph.internal if imp.scope == FUNCTION]
    print(f"{len(graph.modules)} modules, {len(graph.internal)} internal imports, "
          f"{len(lazy)} of them inside functions:")
    for imp in sorted(lazy, key=lambda imp: (imp.path, imp.line)):
        print(f"  {imp.describe()}")
    found = check_package(PACKAGE_DIR, LAYERS, lazy_allowlist=LAZY_THIRD_PARTY, graph=graph)
    print(format_violations(found) if found else "no architecture violations")
