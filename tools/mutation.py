"""Mutation testing of the engine's core, one module at a time (issue 20, point 3).

mutmut (3.8; configured in setup.cfg's ``[mutmut]`` section) mutates one function at a
time and runs the tests that reach it.  Run on the whole package with the whole suite
it would take hours; this script runs it module by module, each with its own narrow
test selection (``TESTS`` below: the module's own tests and the property tests that
compare its results with an independent truth), and writes one report:

    python tools/mutation.py                       # every module of TESTS, at HEAD
    python tools/mutation.py ardiff/convexity.py   # one module
    python tools/mutation.py --list                # the table, nothing run

Each module runs in its own scratch copy of the repository (``--workdir``, default
``/tmp/ardiff-mutation/<module>``) holding the files of a commit (``--ref``, default
HEAD) or, with ``--working-tree``, the tracked and untracked files as they are now; so
other work in the tree does not leak into a measurement and the report names the
commit it measured.  The scratch copy's setup.cfg gets the module's ``only_mutate`` and
test selection; everything else comes from the checked-in ``[mutmut]`` section.

``--survivors`` reruns only the survivors of the previous run of a module (kept in its
scratch copy), after new tests were written: the earlier kills stand (tests were only
added) and the report says when and at which commit the survivors were rerun; a change
to the module itself needs a full run (mutmut renumbers its mutants).  ``--collect``
only rewrites the report from the scratch copies.  ``--max-children`` is passed to mutmut
(default 1: the CI machines and the developers' have few cores).  mutmut forks its own
workers; pytest-xdist, if installed, is switched off for them (setup.cfg).  The tests run
under the hypothesis profile ``mutation`` (tests/conftest.py: the ``ci`` examples without
shrinking): a mutant's first failing example kills it, while shrinking that example could
take minutes per mutant and end as a timeout.

The report (``--out``, default ``benchmarks/results/mutation/``) is ``report.json``
and ``report.md``: killed / survived / no tests / timeout / total and the score
(killed + timeout over total) per module, and every survivor with its diff.  Reasons
why the remaining survivors are equivalent live in ``survivors.md`` beside them,
written by hand.
"""

from __future__ import annotations

import argparse
import configparser
import datetime
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: module -> the tests mutmut runs against it (the ones that reach the module and
#: compare its results with an independent truth).  Keep each selection narrow: mutmut
#: runs, for every mutant, the tests of this list that executed the mutated function.
#: Entries starting with "-" are pytest options for that module (e.g. a --deselect).
TESTS: dict[str, list[str]] = {
    "ardiff/solvers/closed_form.py": [
        "tests/test_solver_references.py", "tests/test_closed_form.py",
    ],
    "ardiff/solvers/relaxation.py": [
        "tests/test_solver_references.py", "tests/test_relax.py",
        # steps_by_reach (max_iter="reach", the ReachWarning) and the one-sweep predicate
        "tests/test_reach.py", "tests/test_one_sweep.py",
        "--deselect=tests/test_reach.py::"
        "test_warning_fires_at_eight_hidden_layers_once_at_the_callers_line",
        # mutmut's trampoline adds a stack frame: a warning's frame is not the test's
        "--deselect=tests/test_relax.py::test_convergence_warning_points_at_the_callers_line",
        "--deselect=tests/test_relax.py::test_non_finite_warning_points_at_the_callers_line",
        "--deselect=tests/test_relax.py::test_non_finite_warning_of_grad_points_at_the_callers_line",
    ],
    "ardiff/solvers/triangular.py": [
        "tests/test_solver_references.py", "tests/test_triangular.py",
    ],
    "ardiff/convexity.py": [
        "tests/test_convexity_references.py", "tests/test_convexity.py",
        "tests/test_reach.py",  # the reach rows of the report (max_iter=, preset=)
    ],
    "ardiff/op.py": [
        "tests/test_op_contract.py", "tests/test_defop.py",
        # the tangent rules' declarations (jvp_maker, differentiable_positions)
        "tests/test_forward.py", "tests/test_forward_ops.py",
    ],
    "ardiff/solvers/units.py": [
        "tests/test_solver_references.py", "tests/test_units.py", "tests/test_units_nested.py",
    ],
    "ardiff/rules.py": [
        "tests/test_rules_references.py", "tests/test_rules.py",
    ],
    "ardiff/solvers/theory.py": [
        "tests/test_convexity_references.py", "tests/test_convexity.py",
        "tests/test_closed_form.py",
        "tests/test_reach.py",  # remaining_fractions, reach_depth, reach_shortfall
    ],
    "ardiff/solvers/plan.py": [
        "tests/test_plan_references.py", "tests/test_solver_references.py", "tests/test_relax.py",
        "tests/test_triangular.py",
    ],
    "ardiff/solvers/common.py": [
        "tests/test_common_references.py", "tests/test_solver_references.py",
        "tests/test_relax.py",
        # mutmut's trampoline adds a stack frame: a warning's frame is not the test's
        "--deselect=tests/test_relax.py::test_convergence_warning_points_at_the_callers_line",
        "--deselect=tests/test_relax.py::test_non_finite_warning_points_at_the_callers_line",
        "--deselect=tests/test_relax.py::test_non_finite_warning_of_grad_points_at_the_callers_line",
        "--deselect=tests/test_relax.py::"
        "test_traced_triangular_solve_warns_about_non_finite_gradients",
    ],
    "ardiff/solvers/residuals.py": [
        "tests/test_residuals.py", "tests/test_solver_references.py", "tests/test_relax.py",
    ],
    "ardiff/solvers/reverse.py": [
        "tests/test_reverse_sweeps.py", "tests/test_solver_references.py", "tests/test_relax.py",
        # mutmut's trampoline adds a stack frame: a warning's frame is not the test's
        "--deselect=tests/test_relax.py::test_non_finite_warning_points_at_the_callers_line",
        "--deselect=tests/test_relax.py::test_non_finite_warning_of_grad_points_at_the_callers_line",
        "--deselect=tests/test_relax.py::"
        "test_traced_triangular_solve_warns_about_non_finite_gradients",
    ],
    "ardiff/solvers/options.py": [
        "tests/test_solver_options.py", "tests/test_solver_references.py", "tests/test_relax.py",
    ],
    "ardiff/solvers/real_form.py": [
        "tests/test_real_form_references.py", "tests/test_triangular.py",
        "tests/test_complex.py",
        # reads docs/complex.md, which mutmut's copy does not have
        "--deselect=tests/test_complex.py::test_the_docs_page_examples_run",
    ],
    "ardiff/solvers/__init__.py": [  # solve_plan: the dispatch to each method's runner
        "tests/test_solver_references.py", "tests/test_one_sweep.py", "tests/test_triangular.py",
    ],
    "ardiff/solvers/result.py": [
        "tests/test_result.py", "tests/test_relax.py",
    ],
}

#: mutmut exit codes -> status (as in mutmut.stats.status_by_exit_code)
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests",
          34: "skipped", 36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout",
          255: "timeout", 37: "caught by type check", -11: "segfault", -9: "segfault",
          None: "not checked"}


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def populate(workdir: Path, ref: str | None) -> None:
    """Fill `workdir` with the repository's files at `ref` (None: the working tree)."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    if ref is not None:
        with tempfile.TemporaryFile() as archive:
            subprocess.run(["git", "archive", "--format=tar", ref], cwd=ROOT, check=True,
                           stdout=archive)
            archive.seek(0)
            with tarfile.open(fileobj=archive) as tar:
                tar.extractall(workdir, filter="data")
        return
    files = git("ls-files", "-co", "--exclude-standard", "-z").split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            target = workdir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def configure(workdir: Path, module: str, extra: list[str]) -> None:
    """Point the scratch copy's [mutmut] section at one module and its tests."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(workdir / "setup.cfg")
    ours = configparser.ConfigParser(interpolation=None)
    ours.read(ROOT / "setup.cfg")  # this checkout's [mutmut] section (a --ref may predate it)
    if parser.has_section("mutmut"):
        parser.remove_section("mutmut")
    parser.add_section("mutmut")
    for key, value in ours.items("mutmut"):
        parser.set("mutmut", key, value)
    parser.set("mutmut", "only_mutate", "\n" + module)
    extra = extra + [t for t in TESTS[module] if t.startswith("-")]
    if extra:  # e.g. --deselect of a test another change in the tree breaks for now
        args = parser.get("mutmut", "pytest_add_cli_args", fallback="")
        parser.set("mutmut", "pytest_add_cli_args", args + "\n" + "\n".join(extra))
    tests = [t for t in TESTS[module] if not t.startswith("-") and (workdir / t).exists()]
    parser.set("mutmut", "pytest_add_cli_args_test_selection", "\n" + "\n".join(tests))
    with open(workdir / "setup.cfg", "w") as f:
        parser.write(f)


def load_results(workdir: Path, module: str) -> dict[str, int | None]:
    meta = workdir / "mutants" / (module + ".meta")
    if not meta.exists():
        return {}
    return json.loads(meta.read_text())["exit_code_by_key"]


def diff_of(workdir: Path, name: str) -> str:
    shown = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=workdir,
                           capture_output=True, text=True)
    lines = shown.stdout.splitlines()
    return "\n".join(line for line in lines[1:] if not line.startswith(("---", "+++")))


def workdir_of(module: str, args: argparse.Namespace) -> Path:
    return Path(args.workdir) / module.replace("/", "_").removesuffix(".py")


def run_module(module: str, args: argparse.Namespace, commit: str) -> dict:
    """Run mutmut on one module in its scratch copy (or only collect, with --collect)."""
    workdir = workdir_of(module, args)
    record = workdir / "measurement.json"
    names: list[str] = []
    if args.collect:
        if not record.exists():
            sys.exit(f"no run of {module} in {workdir} to collect")
        return summarise(module, workdir, json.loads(record.read_text()))
    if args.survivors:
        previous = load_results(workdir, module)
        if not previous or not record.exists():
            sys.exit(f"no previous run of {module} in {workdir}: run it without --survivors")
        # mutmut resets every verdict when its pytest arguments change: keep the kills
        kept = workdir / "previous.json"
        if kept.exists():
            previous = merged_results(json.loads(kept.read_text()), previous)
        names = [k for k, v in previous.items() if STATUS.get(v, "suspicious")
                 not in ("killed", "timeout")]
        # the tests may have changed: bring the copy up to date, keep mutants/ and its cache
        keep, old = workdir / "mutants", json.loads(record.read_text())
        stash = Path(tempfile.mkdtemp()) / "mutants"
        shutil.move(keep, stash)
        populate(workdir, args.ref)
        shutil.move(stash, keep)
        kept.write_text(json.dumps(previous) + "\n")
        record.write_text(json.dumps(old, indent=1) + "\n")
        shutil.rmtree(keep / "tests", ignore_errors=True)  # mutmut copies them afresh
        for mutated in (keep / "ardiff").rglob("*.py"):
            if str(mutated.relative_to(keep)) != module:  # only the mutated module is kept
                mutated.unlink()
        info = dict(old, survivors_rerun=now(), survivors_commit=commit,
                    survivors_rerun_count=len(names))
    else:
        populate(workdir, args.ref)
        info = {"commit": commit, "source": args.ref or "working tree", "measured": now()}
    configure(workdir, module, args.pytest_arg)
    info["tests"] = [t for t in TESTS[module] if t.startswith("-") or (workdir / t).exists()]
    # no shrinking (tests/conftest.py): a mutant's first failing example kills it, and
    # shrinking one can take minutes, past the timeout, per mutant
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", HYPOTHESIS_PROFILE="mutation")
    env.pop("PYTEST_ADDOPTS", None)
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children),
               *names]
    start = datetime.datetime.now(datetime.timezone.utc)
    if names or not args.survivors:
        print(f"== {module}: {' '.join(info['tests'])}", flush=True)
        log = workdir / "mutmut.log"
        with open(log, "w") as out:
            code = subprocess.run(command, cwd=workdir, env=env, stdout=out,
                                  stderr=subprocess.STDOUT).returncode
        if code != 0:
            print(log.read_text()[-3000:])
            sys.exit(f"mutmut failed on {module} (exit {code}); log in {log}")
    seconds = round((datetime.datetime.now(datetime.timezone.utc) - start).total_seconds())
    info["seconds"] = info.get("seconds", 0) + seconds
    record.write_text(json.dumps(info, indent=1) + "\n")
    return summarise(module, workdir, info)


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def merged_results(previous: dict, latest: dict) -> dict:
    """A mutant killed before stays killed (the tests only grew); the others: latest."""
    return {k: v if STATUS.get(v, "suspicious") in ("killed", "timeout")
            else latest.get(k, v) for k, v in previous.items()}


def summarise(module: str, workdir: Path, info: dict) -> dict:
    results = load_results(workdir, module)
    kept = workdir / "previous.json"
    if kept.exists():  # a --survivors rerun: the earlier verdicts of the killed ones hold
        results = merged_results(json.loads(kept.read_text()), results)
    counts: dict[str, int] = {}
    for code in results.values():
        status = STATUS.get(code, "suspicious")
        counts[status] = counts.get(status, 0) + 1
    total = len(results) - counts.get("skipped", 0)
    detected = counts.get("killed", 0) + counts.get("timeout", 0) \
        + counts.get("caught by type check", 0) + counts.get("segfault", 0)
    survivors = sorted(k for k, v in results.items()
                       if STATUS.get(v, "suspicious") in ("survived", "no tests", "suspicious",
                                                           "not checked"))
    row = dict(info, module=module, killed=counts.get("killed", 0),
               timeout=counts.get("timeout", 0), survived=counts.get("survived", 0),
               no_tests=counts.get("no tests", 0), suspicious=counts.get("suspicious", 0),
               not_checked=counts.get("not checked", 0), total=total,
               score=round(100.0 * detected / total, 1) if total else None,
               survivors=[{"name": k, "status": STATUS.get(results[k], "suspicious"),
                           "diff": diff_of(workdir, k)} for k in survivors])
    print(f"   {module}: {detected}/{total} killed ({row['score']} %), "
          f"{len(survivors)} left", flush=True)
    return row


def write_report(rows: list[dict], out: Path) -> None:
    """Merge `rows` into report.json (other modules' rows are kept) and rewrite report.md."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.json"
    report = json.loads(path.read_text()) if path.exists() else {"modules": {}}
    for row in rows:
        report["modules"][row["module"]] = row
    path.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    lines = ["# Mutation testing report", "",
             "Written by `python tools/mutation.py` (mutmut, one module at a time with its own",
             "tests; the table `TESTS` in tools/mutation.py). Score = (killed + timeout) / total.",
             "Why each remaining survivor is equivalent: survivors.md.", "",
             "| module | commit | measured (UTC) | survivors rerun (UTC, commit) | killed "
             "| timeout | survived | no tests | total | score |",
             "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    modules = report["modules"]
    for name in sorted(modules):
        r = modules[name]
        rerun = (f"{r['survivors_rerun']}, {r['survivors_commit'][:10]}"
                 if r.get("survivors_rerun") else "")
        lines.append(f"| {name} | {r['commit'][:10]} ({r['source']}) | {r['measured']} | "
                     f"{rerun} | {r['killed']} | {r['timeout']} | {r['survived']} | "
                     f"{r['no_tests']} | {r['total']} | {r['score']} % |")
    lines += ["", "## Survivors", ""]
    for name in sorted(modules):
        for s in modules[name]["survivors"]:
            lines += [f"### {s['name']} ({s['status']})", "", "```diff", s["diff"], "```", ""]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="modules to mutate (default: all of TESTS)")
    parser.add_argument("--ref", default="HEAD", help="commit to measure (default HEAD)")
    parser.add_argument("--working-tree", action="store_true",
                        help="measure the working tree as it is instead of a commit")
    parser.add_argument("--survivors", action="store_true",
                        help="rerun only the previous run's survivors")
    parser.add_argument("--max-children", type=int, default=1)
    parser.add_argument("--pytest-arg", action="append", default=[],
                        help="extra pytest argument (repeat), e.g. --pytest-arg=--deselect=ID")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(),
                                                          "ardiff-mutation"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "mutation"))
    parser.add_argument("--no-report", action="store_true", help="print only")
    parser.add_argument("--collect", action="store_true",
                        help="only report the last run kept in each module's scratch copy")
    parser.add_argument("--list", action="store_true", help="print the table and stop")
    args = parser.parse_args(argv)
    if args.list:
        for module, tests in TESTS.items():
            print(f"{module}: {' '.join(tests)}")
        return
    unknown = [m for m in args.modules if m not in TESTS]
    if unknown:
        sys.exit(f"no test selection for {unknown}: add them to TESTS in {__file__}")
    args.ref = None if args.working_tree else args.ref
    commit = git("rev-parse", args.ref or "HEAD")
    if args.working_tree and git("status", "--porcelain", "--untracked-files=no"):
        commit += "+dirty"
    for module in args.modules or list(TESTS):
        row = run_module(module, args, commit)
        if not args.no_report:  # after each module: a long run leaves what it measured
            write_report([row], Path(args.out))


if __name__ == "__main__":
    main()
