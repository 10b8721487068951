"""Every code block of README.md and docs/*.md runs, so the docs cannot drift from the code.

* ``python`` blocks run in order, one namespace per markdown file (a page reads as one
  session), in an empty working directory, with ``docs/`` on ``sys.path`` (for
  ``docs/make_figures.py``).  Warnings are errors while they run: a docs example that warns
  shows the reader something the page does not explain.
* ``bash`` blocks: every ``ardiff ...`` line must parse with the command's own parser
  (``ardiff.paper.cli.build_parser``); lines with ``--quick``, ``--dry-run`` or ``--help``
  (the cheap forms) are also run, offline, with ``--out`` in a temporary folder.  A
  ``python PATH`` line must name a file of the repository.  Install, lint, build and
  cluster lines are listed in ``NOT_RUN_HERE`` with the test that covers them instead.
* ``text`` blocks preceded by ``<!-- docs-test: output -->`` are the printed output of the
  ``python`` block before them; ``<!-- docs-test: output-of SCRIPT -->`` that of a script
  run from the repository root.  Every line shown must appear in the real output, in
  order; a line ``...`` stands for lines left out.

A block preceded by ``<!-- docs-test: skip REASON -->`` is not run (the reason is
required).  ``python tests/test_docs_code.py`` prints how many blocks run and how many are
skipped.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from ardiff.op import OPS

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^```[ \t]*$", re.S | re.M)
DIRECTIVE = re.compile(r"<!--\s*docs-test:\s*(?P<kind>[\w-]+)\s*(?P<arg>.*?)\s*-->\s*\Z", re.S)
SHELL = {"bash", "sh", "shell", "console"}
#: shell lines this test does not run, each with what checks it instead
NOT_RUN_HERE = {
    "pip": "installs: .ci/run installs the extras on a fresh machine",
    "mkdocs": "the site build: tests/test_docs.py builds it with --strict",
    "ruff": "lint: .ci/run runs it",
    "dask": "an external Dask cluster: tests/test_sweep.py runs a scheduler and a worker",
    "export": "an environment variable for Dask workers (sweeps.md), no command",
    "HYPOTHESIS_PROFILE=fuzz": "the fuzz profile: its test files run in the suite's ci profile",
}
CHEAP = ("--quick", "--dry-run", "--help")


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    body: str
    directive: tuple[str, str] | None  # (kind, argument) of a docs-test comment before it

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        before = text[:match.start()].rstrip()
        comment = before[before.rfind("<!--"):] if before.endswith("-->") else ""
        directive = DIRECTIVE.match(comment)
        found.append(Block(page, text[:match.start()].count("\n") + 1, match["lang"],
                           match["body"],
                           (directive["kind"], directive["arg"]) if directive else None))
    return found


ALL_BLOCKS = [block for page in PAGES for block in blocks_of(page)]


def skipped(block: Block) -> str | None:
    if block.directive and block.directive[0] == "skip":
        assert block.directive[1], f"{block.where}: a skipped block must give its reason"
        return block.directive[1]
    return None


def shown_lines_appear_in(shown: str, output: str, where: str) -> None:
    """Every line of `shown` is a line of `output`, in order; `...` skips lines."""
    actual = [line.rstrip() for line in output.splitlines()]
    position = 0
    for line in shown.splitlines():
        line = line.rstrip()
        if line.strip() == "...":
            continue
        try:
            position = actual.index(line, position) + 1
        except ValueError:
            pytest.fail(f"{where}: the docs show\n  {line!r}\nwhich the real output does not "
                        f"have at that place. Real output:\n{output}")


# -- python blocks ---------------------------------------------------------------------------
@pytest.mark.parametrize("page", [p for p in PAGES if any(b.lang == "python"
                                                          for b in blocks_of(p))],
                         ids=lambda p: p.name)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT / "docs"))
    # docs/ops.md defines an op: it leaves the table (whose completeness tests check every
    # entry) when the page is done
    ops_before = set(OPS)
    try:
        _run_page(page, {"__name__": "__docs__"})
    finally:
        for name in set(OPS) - ops_before:
            del OPS[name]


def _run_page(page: Path, namespace: dict) -> None:
    previous_output = None
    for block in blocks_of(page):
        if block.lang == "text" and block.directive and block.directive[0] == "output":
            assert previous_output is not None, f"{block.where}: no python block before it"
            shown_lines_appear_in(block.body, previous_output, block.where)
            continue
        if block.lang != "python" or skipped(block):
            continue
        printed = io.StringIO()
        with warnings.catch_warnings(), contextlib.redirect_stdout(printed):
            warnings.simplefilter("error")
            try:
                exec(compile(block.body, block.where, "exec"), namespace)  # noqa: S102
            except Exception as exc:  # name the block; the traceback shows the line
                raise AssertionError(f"{block.where}: the docs' code block fails") from exc
        previous_output = printed.getvalue()


# -- output of scripts -----------------------------------------------------------------------
SCRIPT_OUTPUTS = [b for b in ALL_BLOCKS if b.directive and b.directive[0] == "output-of"]


@pytest.mark.parametrize("block", SCRIPT_OUTPUTS, ids=lambda b: b.where)
def test_quoted_script_output_is_what_the_script_prints(block):
    command = shlex.split(block.directive[1])
    out = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, check=True).stdout
    shown_lines_appear_in(block.body, out, block.where)


# -- shell blocks ----------------------------------------------------------------------------
def shell_lines() -> list[tuple[Block, str]]:
    lines = []
    for block in ALL_BLOCKS:
        if block.lang not in SHELL or skipped(block):
            continue
        for raw in block.body.splitlines():
            line = raw.split(" #", 1)[0].strip().removeprefix("$ ")
            if line and not line.startswith("#"):
                lines.extend((block, part.strip()) for part in line.split("&&"))
    return lines


SHELL_LINES = shell_lines()
#: each distinct command once (README and docs/reproduce.md show some of the same lines)
UNIQUE_LINES = list({line: (block, line) for block, line in SHELL_LINES}.values())


def test_every_shell_line_is_checked_somewhere():
    for block, line in SHELL_LINES:
        first = line.split()[0]
        known = first in ("ardiff", "python", "python3") or first in NOT_RUN_HERE
        assert known, (f"{block.where}: `{line}` is neither run by this test nor listed in "
                       "NOT_RUN_HERE with what checks it")


@pytest.mark.parametrize("block, line", [(b, ln) for b, ln in UNIQUE_LINES
                                         if ln.startswith("ardiff ")],
                         ids=lambda v: v.where if isinstance(v, Block) else v)
def test_ardiff_command_lines_parse(block, line, tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    from ardiff.paper import cli

    argv = shlex.split(line)[1:]
    monkeypatch.chdir(tmp_path)  # relative paths in a line (examples/...) are the repo's
    argv = [str(ROOT / a) if (ROOT / a).exists() and not a.startswith("-") else a
            for a in argv]
    try:
        cli.build_parser().parse_args(argv)
    except SystemExit as exc:
        assert exc.code == 0 and "--help" in argv, f"{block.where}: `{line}` does not parse"
        return
    if not any(flag in argv for flag in CHEAP):
        return
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("ARDIFF_DATA", raising=False)
    if "--out" not in argv and argv[0] != "sweep":
        argv += ["--out", str(tmp_path / "out")]
    assert cli.main([*argv, "--no-progress"] if argv[0] != "sweep" else argv) == 0, \
        f"{block.where}: `{line}` fails"


@pytest.mark.parametrize("block, line", [(b, ln) for b, ln in UNIQUE_LINES
                                         if ln.split()[0] in ("python", "python3")],
                         ids=lambda v: v.where if isinstance(v, Block) else v)
def test_python_command_lines_name_real_files(block, line):
    args = shlex.split(line)[1:]
    if args[:1] == ["-m"]:
        assert args[1] in ("pytest", "mkdocs"), f"{block.where}: `{line}`"
        return
    assert (ROOT / args[0]).is_file(), f"{block.where}: `{line}` names no file of the repo"


def test_collector_sees_the_pages():
    # a change of the fence syntax must not silently leave every page without blocks
    python = [b for b in ALL_BLOCKS if b.lang == "python"]
    assert len(python) >= 20 and len(SHELL_LINES) >= 20
    assert any(b.directive and b.directive[0] == "output" for b in ALL_BLOCKS)


def test_a_wrong_quoted_line_fails():
    with pytest.raises(pytest.fail.Exception, match="does not have"):
        shown_lines_appear_in("a\n...\nc\nb", "a\nb\nc", "here")
    shown_lines_appear_in("a\n...\nc", "a\nb\nc", "here")


if __name__ == "__main__":
    python = [b for b in ALL_BLOCKS if b.lang == "python"]
    outputs = [b for b in ALL_BLOCKS if b.directive and b.directive[0] in ("output", "output-of")]
    ardiff_lines = [ln for _, ln in UNIQUE_LINES if ln.startswith("ardiff ")]
    print(f"python blocks: {sum(not skipped(b) for b in python)} run, "
          f"{sum(bool(skipped(b)) for b in python)} skipped")
    for block in ALL_BLOCKS:
        if skipped(block):
            print(f"  skipped {block.where}: {skipped(block)}")
    print(f"quoted outputs compared: {len(outputs)}")
    print(f"shell lines: {len(SHELL_LINES)} ({len(UNIQUE_LINES)} distinct); ardiff commands "
          f"parsed: {len(ardiff_lines)}, of which run: "
          f"{sum(any(f in ln.split() for f in CHEAP) for ln in ardiff_lines)}")
    sys.exit(os.EX_OK)
