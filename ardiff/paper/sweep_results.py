"""The aggregated results of a sweep: summary, tables, figures and the sweep record.

Runs are grouped by condition and grid point (`"ar [eta=0.5, steps=20]"`), each
group summarised over its seeds with `ardiff.paper.summarize`, and written like the
reproduction's figures: `<name>_summary.json`, `<name>_table.md`,
`<name>_accuracy.png`, `<name>_angles.png`, and `<name>_results.csv` (one row per
run and epoch, with the run id and grid values).  A sweep adds `<name>_runs.csv`,
one row per run with its grid values and final numbers, and `<name>_sweep.json`,
the record of the sweep: its configuration, how it ran, and every run's status,
failed runs with their error.  `ardiff reproduce fig2|fig3` write exactly the files
they always wrote (`ardiff.paper.training.write_results`).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .files import atomic_write, write_json
from .plots import plot_angles, plot_training
from .sweep_config import RunSpec, SweepConfig, point_label
from .training import format_table, summarize, write_results

__all__ = ["write_sweep_results", "group_name", "error_line"]


def group_name(spec: RunSpec) -> str:
    """The summary group of a run: its condition, with its grid values if any."""
    return spec.condition + (f" [{point_label(spec.point)}]" if spec.point else "")


def error_line(run: Mapping[str, Any]) -> str:
    """The last line of a failed run's traceback (the exception and its message)."""
    lines = (run.get("error") or "").strip().splitlines()
    return lines[-1] if lines else ""


def write_sweep_results(out: Path, sweep: SweepConfig, specs: Sequence[RunSpec],
                        records: Mapping[str, dict], *, command: str | None = None,
                        figure: bool = False, figures: bool = True,
                        extra: Mapping[str, Any] | None = None) -> tuple[dict, list[Path]]:
    """Write the summary, tables and figures of a sweep from its run records.

    Parameters
    ----------
    out : pathlib.Path
        Output directory (run files are in `out/runs`).
    sweep : SweepConfig
        The sweep (its name prefixes the files).
    specs : sequence of RunSpec
        Every run of the sweep, in order.
    records : mapping
        Run id -> record, for the runs that have one.
    command : str, optional
        Recorded in the files.
    figure : bool, optional
        Only the files `ardiff reproduce` writes (no runs CSV, no sweep record).
    figures : bool, optional
        Draw the accuracy and angle figures (not with `figure`: always drawn).
    extra : mapping, optional
        Added to the sweep record (how it ran, timings, counts).

    Returns
    -------
    summary : dict
        Per group, see `ardiff.paper.summarize`.
    files : list of pathlib.Path
        Every file written, and every run file of the sweep.
    """
    done = [s for s in specs if s.run_id in records]
    run_files = [out / "runs" / f"{s.name}.json" for s in done]
    trained = [(s, records[s.run_id]) for s in done if records[s.run_id].get("history")]
    if figure:
        summary, paths = write_results(out, [r for _, r in trained], list(sweep.conditions),
                                       sweep.name, command)
        return summary, paths + run_files
    groups, grouped = [], []
    for spec, run in trained:
        name = group_name(spec)
        if name not in groups:
            groups.append(name)
        label = run.get("label", spec.condition)
        grouped.append({**run, "condition": name,
                        "label": label + (f" [{point_label(spec.point)}]" if spec.point
                                          else "")})
    order = {name: k for k, name in enumerate(group_name(s) for s in specs)}
    groups.sort(key=order.__getitem__)
    summary = summarize(grouped, groups)
    paths = [write_json(out / f"{sweep.name}_summary.json",
                        {"command": command, "conditions": summary})]
    paths.append(_epochs_csv(out / f"{sweep.name}_results.csv", sweep, done, records))
    paths.append(atomic_write(out / f"{sweep.name}_table.md",
                              (f"Command: `{command}`\n\n" if command else "")
                              + format_table(summary) + "\n"))
    if figures and summary:
        paths.append(plot_training(summary, out / f"{sweep.name}_accuracy.png",
                                   title=f"Sweep {sweep.name}"))
        if any("angle_last_epoch_deg" in s for s in summary.values()):
            paths.append(plot_angles(grouped, groups, out / f"{sweep.name}_angles.png"))
    paths.append(_runs_csv(out / f"{sweep.name}_runs.csv", sweep, done, records))
    failed = [{"run_id": s.run_id, "run": s.describe(), "file": f"runs/{s.name}.json",
               "error": error_line(records[s.run_id])}
              for s in done if records[s.run_id]["status"] == "failed"]
    paths.append(write_json(out / f"{sweep.name}_sweep.json", {
        "command": command, "source": sweep.source, "sweep": sweep.to_dict(),
        "runs_total": len(specs), "runs_with_results": len(done), **dict(extra or {}),
        "failed": failed,
        "missing": [s.describe() for s in specs if s.run_id not in records],
        "runs": [{"run_id": s.run_id, "run": s.describe(), "file": f"runs/{s.name}.json",
                  "status": records[s.run_id]["status"]} for s in done]}))
    return summary, paths + run_files


def _runs_csv(path: Path, sweep: SweepConfig, done: Sequence[RunSpec],
              records: Mapping[str, dict]) -> Path:
    rows = io.StringIO(newline="")
    writer = csv.writer(rows)
    keys = ["train_acc", "test_acc", "train_loss", "test_loss"]
    writer.writerow(["run_id", "condition", "seed", *sweep.grid, "status", "epochs",
                     *[f"final_{k}" for k in keys], "seconds", "file", "error"])
    for spec in done:
        run = records[spec.run_id]
        h = run.get("history") or {}
        finals = [_csv(h[k][-1]) if h.get(k) else "" for k in keys]
        writer.writerow([spec.run_id, spec.condition, spec.seed,
                         *[_csv(spec.point[k]) for k in sweep.grid], run["status"],
                         (len(h.get("epoch", [])) or 1) - 1, *finals,
                         _csv(run.get("seconds")), f"runs/{spec.name}.json", error_line(run)])
    return atomic_write(path, rows.getvalue())


def _epochs_csv(path: Path, sweep: SweepConfig, done: Sequence[RunSpec],
                records: Mapping[str, dict]) -> Path:
    rows = io.StringIO(newline="")
    writer = csv.writer(rows)
    keys = ["train_acc", "test_acc", "train_loss", "test_loss", "running_acc", "epoch_time"]
    writer.writerow(["run_id", "condition", "seed", *sweep.grid, "status", "epoch", *keys])
    for spec in done:
        run = records[spec.run_id]
        h = run.get("history") or {}
        for i, epoch in enumerate(h.get("epoch", [])):
            writer.writerow([spec.run_id, spec.condition, spec.seed,
                             *[_csv(spec.point[k]) for k in sweep.grid], run["status"], epoch,
                             *[_csv(h[k][i]) for k in keys]])
    return atomic_write(path, rows.getvalue())


def _csv(value: Any) -> Any:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, (list, tuple)):
        return "-".join(map(str, value))
    return value
