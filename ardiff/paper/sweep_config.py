"""Sweep configurations: what `ardiff sweep CONFIG` runs, read from TOML and checked.

A sweep is a grid: every combination of the `[grid]` values of `TrainingConfig`
fields, crossed with the conditions (gradient methods: backprop, AR and its
local-rule variants) and the seeds.  Every run of the grid is a `RunSpec` with a
`run_id`, a hash of its full configuration (condition, seed, model and every
`TrainingConfig` field), so that a result file can be matched to the run that made
it (`ardiff sweep --resume`).

A configuration file (TOML) looks like::

    name = "eta-steps"              # prefix of the result files (default: file name)
    model = "mlp"                   # the paper's MLP, "cnn", or "package.module:function"
    conditions = ["backprop", "ar"] # names of ardiff.paper.CONDITIONS
    seeds = 3                       # a count (seeds 0, 1, 2) or a list [0, 4, 7]

    [config]                        # TrainingConfig fields shared by every run
    dataset = "fashion-mnist-small"
    epochs = 2

    [grid]                          # TrainingConfig fields swept: every combination
    eta = [0.1, 0.5]
    steps = [20, 100]

Every key and value is checked before anything runs; a mistake raises
`SweepConfigError` naming the file, the key and what is allowed.  The named sweeps
`fig2` and `fig3` are the paper's Figures 2 and 3 (`figure_sweep`), the same
configurations `ardiff reproduce fig2|fig3` runs.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..nn import ACTIVATIONS, CNN, LOSSES, MLP, OPTIMIZERS
from ..solvers import SolverOptions
from .conditions import CONDITIONS, FIG2
from .data import DATASETS
from .figures import FIGURES, SWEEP_FIGURES
from .training import TrainingConfig

try:  # Python 3.11+; tomli is the same parser as a package for 3.10
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None

__all__ = ["SweepConfigError", "SweepConfig", "RunSpec", "load_sweep_config", "parse_sweep",
           "figure_sweep", "NAMED_SWEEPS", "SYNTHETIC", "run_id",
           "build_model", "TOP_KEYS", "MODELS", "MAX_SEEDS", "MAX_RUNS"]

#: The most seeds, and the most runs (grid points x conditions x seeds), a sweep may have
#: unless `allow_large=True` (`ardiff sweep --allow-large`): a bigger one is more likely a
#: typo than a plan, and listing it alone would take minutes.
MAX_SEEDS = 10_000
MAX_RUNS = 100_000

#: A dataset name of sweeps only: Gaussian clusters made on the spot, one per class
#: (`ardiff.paper.sweep.synthetic_data`), for quick tests of a sweep.
SYNTHETIC = "synthetic"

#: The keys a configuration file may have at its top level, with what each is for.
TOP_KEYS = {
    "name": "prefix of the result files (a string)",
    "model": "'mlp', 'cnn' or 'package.module:function'",
    "conditions": f"a list of conditions: {', '.join(CONDITIONS)}",
    "seeds": "a count (3 means seeds 0, 1, 2) or a list of seeds",
    "config": "a table of TrainingConfig fields shared by all runs",
    "grid": "a table of TrainingConfig fields, each with a list of values to sweep",
}

#: The sweeps `ardiff sweep NAME` accepts instead of a file: the registry's MLP figures
#: (`ardiff.paper.figures`, read by `ardiff reproduce` too).
NAMED_SWEEPS = SWEEP_FIGURES

_FIELDS = {f.name: f for f in fields(TrainingConfig)}


class SweepConfigError(ValueError):
    """A sweep configuration is malformed: the message names the key and the fix."""


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: a condition, a seed, a model and a full `TrainingConfig`.

    Attributes
    ----------
    condition : str
        Name of the condition (`ardiff.paper.CONDITIONS`).
    seed : int
        Seed of the weights, of the shuffling and of the rules' random matrices.
    model : str
        `"mlp"` or `"package.module:function"`.
    config : dict
        Every `TrainingConfig` field (`TrainingConfig.to_dict`).
    point : dict
        The grid values of this run (empty for a sweep without a grid).
    name : str
        Stem of the result file, `runs/<name>.json`.
    run_id : str
        Hash of condition, seed, model and config (see `run_id`).
    """

    condition: str
    seed: int
    model: str
    config: dict
    point: dict
    name: str
    run_id: str

    def training_config(self) -> TrainingConfig:
        """The `TrainingConfig` of this run."""
        values = dict(self.config)
        values["sizes"] = tuple(values["sizes"])
        return TrainingConfig(**values)

    def describe(self) -> str:
        """`"ar seed 1"`, with the grid values when there are some."""
        text = f"{self.condition} seed {self.seed}"
        return text + (f" [{point_label(self.point)}]" if self.point else "")


def run_id(condition: str, seed: int, model: str, config: Mapping[str, Any]) -> str:
    """The identity of a run: 16 hex digits of the SHA-256 of its full configuration.

    Parameters
    ----------
    condition : str
        Condition name.
    seed : int
        Run seed.
    model : str
        Model specification (`"mlp"` or `"module:function"`).
    config : mapping
        Every `TrainingConfig` field (`TrainingConfig.to_dict()`).

    Returns
    -------
    str
        Equal for two runs exactly when all of these are equal (floats are hashed by
        their shortest exact repr, so 0.1 and 0.1000000001 differ).
    """
    text = json.dumps({"condition": condition, "seed": int(seed), "model": model,
                       "config": dict(config)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def point_label(point: Mapping[str, Any]) -> str:
    """`{"eta": 0.1, "steps": 20}` -> `"eta=0.1, steps=20"`."""
    return ", ".join(f"{k}={_short(v)}" for k, v in point.items())


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}" if float(f"{value:g}") == value else repr(value)
    if isinstance(value, (list, tuple)):
        return "-".join(map(str, value))
    return str(value)


def _file_stem(condition: str, seed: int, point: Mapping[str, Any]) -> str:
    """`ar_seed0` without a grid (the layout of `ardiff reproduce`), else with the values."""
    stem = f"{condition}_seed{seed}"
    if not point:
        return stem
    tail = "_".join(f"{k}={_short(v)}" for k, v in point.items())
    tail = re.sub(r"[^A-Za-z0-9.=+-]+", "-", tail)
    if len(tail) > 80:  # long values: a hash of them keeps file names short
        tail = hashlib.sha256(tail.encode()).hexdigest()[:12]
    return f"{stem}_{tail}"


@dataclass(frozen=True)
class SweepConfig:
    """A checked sweep configuration (build it with `parse_sweep` or `load_sweep_config`).

    Attributes
    ----------
    name : str
        Prefix of the result files.
    model : str
        `"mlp"` or `"package.module:function"`.
    conditions : tuple of str
        Conditions, in table order.
    seeds : tuple of int
        Seeds of every grid point and condition.
    config : dict
        `TrainingConfig` fields fixed for all runs.
    grid : dict
        `TrainingConfig` fields swept, each with its list of values.
    source : str
        Where the configuration came from (a file, or a command), for messages.
    """

    name: str
    model: str
    conditions: tuple
    seeds: tuple
    config: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    source: str = "<sweep>"

    def points(self) -> list[dict]:
        """Every combination of the grid values, the first key varying slowest."""
        keys = list(self.grid)
        return [dict(zip(keys, values))
                for values in itertools.product(*(self.grid[k] for k in keys))]

    def runs(self) -> list[RunSpec]:
        """Every run: grid point x condition x seed, in that nesting order."""
        specs = []
        for point in self.points():
            config = TrainingConfig(**{**self.config, **point}).to_dict()
            for condition in self.conditions:
                for seed in self.seeds:
                    specs.append(RunSpec(
                        condition, seed, self.model, config, dict(point),
                        _file_stem(condition, seed, point),
                        run_id(condition, seed, self.model, config)))
        return specs

    def to_dict(self) -> dict:
        """The configuration in the file format (JSON-friendly)."""
        return {"name": self.name, "model": self.model, "conditions": list(self.conditions),
                "seeds": list(self.seeds), "config": dict(self.config),
                "grid": {k: list(v) for k, v in self.grid.items()}}


# ----------------------------------------------------------------------------
# Reading and checking
# ----------------------------------------------------------------------------


def load_sweep_config(path: str | Path, overrides: Mapping[str, Any] | None = None,
                      *, allow_large: bool = False, import_model: bool = True) -> SweepConfig:
    """Read a sweep configuration file (TOML) and check it.

    Parameters
    ----------
    path : str or path-like
        A `.toml` file (see the module docstring for its keys).
    overrides : mapping, optional
        Top-level keys replacing the file's (`seeds`, `conditions`, ...), and
        `"config.FIELD"` keys setting one `TrainingConfig` field (removed from the
        grid if it was swept).
    allow_large : bool, optional
        Accept more than `MAX_SEEDS` seeds or `MAX_RUNS` runs.
    import_model : bool, optional
        Import a `"module:function"` model to check it (False: its form only, as
        `ardiff sweep --dry-run` does, so that listing a sweep runs no code of it).

    Returns
    -------
    SweepConfig

    Raises
    ------
    SweepConfigError
        If the file cannot be read or parsed, or a key or value is not allowed.
    """
    path = Path(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        raise SweepConfigError(
            f"{path}: YAML configurations are not supported; write the same keys as TOML "
            "(see 'ardiff sweep --help' or docs/sweeps.md).")
    if tomllib is None:  # pragma: no cover - Python 3.10 without tomli
        raise SweepConfigError(f"{path}: reading TOML needs Python 3.11 or the tomli package "
                               "(pip install tomli).")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SweepConfigError(f"cannot read the sweep configuration {path}: "
                               f"{exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SweepConfigError(f"{path} is not valid TOML: {exc}") from None
    raw.setdefault("name", path.stem)
    return parse_sweep(apply_overrides(raw, overrides or {}), source=str(path),
                       allow_large=allow_large, import_model=import_model)


def apply_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict:
    """`raw` with top-level keys and `"config.FIELD"` keys replaced by `overrides`."""
    out = dict(raw)
    for key, value in overrides.items():
        if key.startswith("config."):
            name = key.split(".", 1)[1]
            out["config"] = {**dict(out.get("config") or {}), name: value}
            grid = dict(out.get("grid") or {})
            if isinstance(grid, dict) and name in grid:
                del grid[name]
                out["grid"] = grid
        else:
            out[key] = value
    return out


def parse_sweep(raw: Mapping[str, Any], source: str = "<sweep>", *,
                allow_large: bool = False, import_model: bool = True) -> SweepConfig:
    """Check a sweep configuration given as a dict (the parsed file) and build it.

    Parameters
    ----------
    raw : mapping
        The keys of `TOP_KEYS`.  `name` defaults to `"sweep"`, `model` to `"mlp"`,
        `conditions` to `["backprop", "ar"]`, `seeds` to `[0]`.
    source : str, optional
        Named in error messages (the file or command the dict came from).
    allow_large : bool, optional
        Accept more than `MAX_SEEDS` seeds or `MAX_RUNS` runs (refused by default,
        before any run is listed).
    import_model : bool, optional
        Import a `"module:function"` model to check that it exists.  A sweep file's
        model is code that runs on import: pass False to check only its form (what
        `ardiff sweep --dry-run` does).

    Returns
    -------
    SweepConfig

    Raises
    ------
    SweepConfigError
        For an unknown key, a value of the wrong type, an unknown condition,
        dataset, loss, optimizer, schedule, init or activation, a value outside its
        range, a field both fixed and swept, or a model that cannot be imported.
    """
    def fail(msg: str) -> SweepConfigError:
        return SweepConfigError(f"{source}: {msg}")

    if not isinstance(raw, Mapping):
        raise fail("a sweep configuration is a table of keys")
    unknown = [k for k in raw if k not in TOP_KEYS]
    if unknown:
        allowed = "; ".join(f"{k} ({why})" for k, why in TOP_KEYS.items())
        raise fail(f"unknown key(s) {', '.join(map(repr, unknown))}. Allowed: {allowed}. "
                   "TrainingConfig fields go under [config] or [grid].")
    name = raw.get("name", "sweep")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise fail(f"name must be a file-name-safe string (letters, digits, '.', '_', '-'), "
                   f"got {name!r}")
    model = raw.get("model", "mlp")
    if not isinstance(model, str):
        raise fail(f"model must be 'mlp', 'cnn' or 'package.module:function', got {model!r}")
    check_model(model, fail, import_model)
    conditions = raw.get("conditions", list(FIG2))
    if isinstance(conditions, str):
        conditions = [conditions]
    if not isinstance(conditions, list) or not conditions or \
            not all(isinstance(c, str) for c in conditions):
        raise fail(f"conditions must be a non-empty list of names, got {conditions!r}")
    bad = [c for c in conditions if c not in CONDITIONS]
    if bad:
        raise fail(f"unknown condition(s) {bad} in 'conditions'; choose from "
                   f"{', '.join(CONDITIONS)}")
    if len(set(conditions)) != len(conditions):
        raise fail(f"'conditions' lists a condition twice: {conditions}")
    seeds = _check_seeds(raw.get("seeds", [0]), fail, allow_large)

    config = raw.get("config", {})
    grid = raw.get("grid", {})
    for key, table in (("config", config), ("grid", grid)):
        if not isinstance(table, Mapping):
            raise fail(f"'{key}' must be a table of TrainingConfig fields, got {table!r}")
        wrong = [k for k in table if k not in _FIELDS]
        if wrong:
            raise fail(f"unknown TrainingConfig field(s) {', '.join(map(repr, wrong))} in "
                       f"[{key}]; the fields are: {', '.join(_FIELDS)}")
    both = sorted(set(config) & set(grid))
    if both:
        raise fail(f"{', '.join(both)} both fixed in [config] and swept in [grid]; keep one")
    config = {k: _check_field(k, v, f"config.{k}", fail) for k, v in config.items()}
    checked_grid = {}
    for k, values in grid.items():
        if not isinstance(values, list) or not values:
            raise fail(f"grid.{k} must be a non-empty list of values, got {values!r}")
        checked = [_check_field(k, v, f"grid.{k}[{i}]", fail) for i, v in enumerate(values)]
        if len({json.dumps(v) for v in checked}) != len(checked):
            raise fail(f"grid.{k} repeats a value: {values!r}")
        checked_grid[k] = checked
    n_runs = len(conditions) * len(seeds)
    for values in checked_grid.values():
        n_runs *= len(values)
    if n_runs > MAX_RUNS and not allow_large:
        sizes = " x ".join(f"{len(v)} {k}" for k, v in checked_grid.items())
        raise fail(f"the sweep has {n_runs:,} runs ({sizes + ' x ' if sizes else ''}"
                   f"{len(conditions)} conditions x {len(seeds)} seeds), more than the limit "
                   f"of {MAX_RUNS:,}; shrink the grid, or pass --allow-large "
                   "(allow_large=True) if you mean it")
    sweep = SweepConfig(name, model, tuple(conditions), tuple(seeds), config, checked_grid,
                        source)
    for point in sweep.points():  # combinations: every run's settings must make sense
        where = f"grid point {point_label(point)}: " if point else ""
        _check_combination(TrainingConfig(**{**config, **point}), model, conditions,
                           lambda msg, where=where: fail(where + msg))
    return sweep


def _check_seeds(seeds: Any, fail: Callable[[str], Exception],
                 allow_large: bool = False) -> list[int]:
    count = seeds if isinstance(seeds, int) and not isinstance(seeds, bool) else (
        len(seeds) if isinstance(seeds, list) else 0)
    if count > MAX_SEEDS and not allow_large:
        raise fail(f"seeds = {count:,} is more than the limit of {MAX_SEEDS:,} seeds; give "
                   "fewer, or pass --allow-large (allow_large=True) if you mean it")
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise fail(f"seeds as a count must be at least 1, got {seeds}")
        return list(range(seeds))
    if not isinstance(seeds, list) or not seeds or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise fail(f"seeds must be a count (3 means seeds 0, 1, 2) or a non-empty list of "
                   f"integers >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise fail(f"seeds lists a seed twice: {seeds}")
    return list(seeds)


def _check_field(name: str, value: Any, where: str, fail: Callable[[str], Exception]) -> Any:
    """One TrainingConfig value, type-checked from the field's annotation."""
    kind = str(_FIELDS[name].type).replace(" ", "")
    optional = kind.endswith("|None") or kind.startswith("None|")
    kind = kind.replace("|None", "").replace("None|", "")
    if value is None or (optional and value == "all"):
        if optional:
            return None
        raise fail(f"{where} needs a value")
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if kind == "int":
        if not is_int:
            raise fail(f"{where} must be an integer, got {value!r}")
    elif kind == "float":
        if not (is_int or isinstance(value, float)) or not math.isfinite(value):
            raise fail(f"{where} must be a finite number, got {value!r}")
        value = float(value)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise fail(f"{where} must be true or false, got {value!r}")
    elif kind == "str":
        if not isinstance(value, str):
            raise fail(f"{where} must be a string, got {value!r}")
    elif kind == "tuple":
        if not isinstance(value, list) or not value or not all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
            raise fail(f"{where} must be a list of positive integers, got {value!r}")
        value = tuple(value)
    return value


def _check_combination(cfg: TrainingConfig, model: str, conditions: Sequence[str],
                       fail: Callable[[str], Exception]) -> None:
    """Values of one run's TrainingConfig that make sense together (and alone)."""
    if cfg.dataset not in DATASETS and cfg.dataset != SYNTHETIC:
        raise fail(f"unknown dataset {cfg.dataset!r}; choose from "
                   f"{', '.join((*DATASETS, SYNTHETIC))}")
    for key in ("epochs", "batch_size", "steps"):
        if getattr(cfg, key) < 1:
            raise fail(f"{key} must be at least 1, got {getattr(cfg, key)}")
    for key in ("train_size", "test_size"):
        value = getattr(cfg, key)
        if value is not None and value < 1:
            raise fail(f"{key} must be at least 1 (or left out for all), got {value}")
    if cfg.angle_every < 0:
        raise fail(f"angle_every must be >= 0 (0: never), got {cfg.angle_every}")
    if not cfg.lr > 0:
        raise fail(f"lr must be positive, got {cfg.lr}")
    if cfg.init_std < 0:
        raise fail(f"init_std must be >= 0, got {cfg.init_std}")
    if cfg.optimizer not in OPTIMIZERS:
        raise fail(f"unknown optimizer {cfg.optimizer!r}; choose from {sorted(OPTIMIZERS)}")
    if cfg.loss not in LOSSES:
        raise fail(f"unknown loss {cfg.loss!r}; choose from {sorted(LOSSES)}")
    if cfg.activation not in ACTIVATIONS:
        raise fail(f"unknown activation {cfg.activation!r}; choose from {sorted(ACTIVATIONS)}")
    if len(cfg.sizes) < 2:
        raise fail(f"sizes must list at least an input and an output width, got "
                   f"{list(cfg.sizes)}")
    if (model == "cnn" or (model == "mlp" and cfg.dataset != SYNTHETIC)) and \
            cfg.sizes[0] != 784:
        raise fail(f"sizes must start with 784 (28 x 28 images for model {model!r} on "
                   f"{cfg.dataset}), got {list(cfg.sizes)}")
    if any(c != "backprop" for c in conditions):
        try:  # the relaxation's own checks: eta in (0, 2), schedule, init
            SolverOptions(method="relax", eta=cfg.eta, schedule=cfg.schedule, init=cfg.init,
                          tol=0.0, max_iter=cfg.steps)
        except (TypeError, ValueError) as exc:
            raise fail(str(exc)) from None
        if cfg.schedule == "continuous":
            raise fail("schedule must be 'parallel' or 'sequential' for training")


# ----------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------


def check_model(model: str, fail: Callable[[str], Exception],
                import_model: bool = True) -> None:
    """Raise `fail(...)` unless `model` is a name of `MODELS` or an importable
    `module:function` (with `import_model=False`: has that form; nothing is imported)."""
    if model in MODELS:
        return
    if model.count(":") != 1 or not all(model.split(":")):
        raise fail(f"model must be {', '.join(map(repr, MODELS))} or "
                   f"'package.module:function', got {model!r}")
    if not import_model:
        return
    try:
        resolve_model(model)
    except (ImportError, AttributeError, TypeError) as exc:
        raise fail(f"model {model!r}: {exc}") from None


def resolve_model(model: str) -> Callable[..., Any]:
    """The function a `"package.module:function"` model specification names.

    Raises
    ------
    ImportError
        If the module cannot be imported (it must be importable on every worker).
    AttributeError, TypeError
        If the module has no such attribute, or it is not callable.
    """
    module_name, func_name = model.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"cannot import module {module_name!r} ({exc}); it must be "
                          "importable (installed, or on PYTHONPATH) here and on every "
                          "worker") from None
    func = getattr(module, func_name, None)
    if func is None:
        raise AttributeError(f"module {module_name!r} has no attribute {func_name!r}")
    if not callable(func):
        raise TypeError(f"{model} is not callable")
    return func


def _mlp(config: TrainingConfig, seed: int) -> MLP:
    return MLP(config.sizes, activation=config.activation, init_std=config.init_std,
               seed=seed)


def _cnn(config: TrainingConfig, seed: int) -> CNN:
    # the network of `ardiff reproduce cnn` (its default channels, kernel, pool, hidden)
    return CNN((1, 28, 28), n_classes=config.sizes[-1], activation=config.activation,
               seed=seed)


#: The models a sweep names without a module: the paper's MLP (`sizes`, `activation`,
#: `init_std` from the TrainingConfig) and the CNN of `ardiff reproduce cnn` (28 x 28
#: inputs; `sizes[-1]` classes, `activation`).
MODELS: dict[str, Callable[[TrainingConfig, int], Any]] = {"mlp": _mlp, "cnn": _cnn}


def build_model(model: str, config: TrainingConfig, seed: int) -> Any:
    """The network of one run.

    Parameters
    ----------
    model : str
        `"mlp"`: `ardiff.nn.MLP(config.sizes, activation=config.activation,
        init_std=config.init_std, seed=seed)`, the paper's network with the default
        sizes.  `"cnn"`: `ardiff.nn.CNN` as `ardiff reproduce cnn` trains it, for
        28 x 28 images.  `"package.module:function"`: `function(config, seed)`, which
        must return a model with the interface `ardiff.nn.train` uses (`sizes`,
        `parameters()`, `parameter_names()`, `forward(x)`, `trace(x)`, as
        `ardiff.nn.MLP` and `ardiff.nn.CNN` have).
    config : TrainingConfig
        The run's settings.
    seed : int
        The run's seed.

    Returns
    -------
    object
        The model, freshly initialised.
    """
    if model in MODELS:
        return MODELS[model](config, seed)
    return resolve_model(model)(config, seed)


# ----------------------------------------------------------------------------
# The paper's figures as sweeps
# ----------------------------------------------------------------------------


def figure_sweep(figure: str, quick: bool = False, *, seeds: Sequence[int] | None = None,
                 conditions: Sequence[str] | None = None,
                 config: Mapping[str, Any] | None = None,
                 allow_large: bool = False) -> SweepConfig:
    """Fig. 2 or Fig. 3 of the paper as a sweep (what `ardiff reproduce fig2|fig3` runs).

    Parameters
    ----------
    figure : {"fig2", "fig3"}
        Fig. 2: backprop and AR, seeds 0-4; Fig. 3: the seven conditions, seed 0.
        Both: the paper's MLP on Fashion-MNIST for 10 epochs (the settings of
        `ardiff.paper.figures.FIGURES`, which `ardiff reproduce` reads too).
    quick : bool, optional
        The `--quick` defaults: 1 seed, 2 epochs, the first 6,400 / 2,000 images.
    seeds, conditions : sequence, optional
        Replace the figure's seeds or conditions.
    config : mapping, optional
        `TrainingConfig` fields replacing the figure's (and the paper's) values.

    Returns
    -------
    SweepConfig
        Named `figure`, without a grid: its result files are
        `runs/<condition>_seed<k>.json`, as `ardiff reproduce` writes them.
    """
    if figure not in NAMED_SWEEPS:
        raise SweepConfigError(f"unknown named sweep {figure!r}; the named sweeps are "
                               f"{', '.join(NAMED_SWEEPS)}")
    defaults = FIGURES[figure].settings(quick)
    settings = {"dataset": "fashion-mnist", "epochs": defaults["epochs"],
                "train_size": defaults["train_size"], "test_size": defaults["test_size"]}
    settings.update(config or {})
    raw = {"name": figure, "model": "mlp",
           "conditions": list(conditions if conditions is not None else defaults["conditions"]),
           "seeds": list(seeds if seeds is not None else defaults["seeds"]),
           "config": {k: v for k, v in settings.items() if v is not None}}
    where = f"ardiff reproduce {figure}" + (" --quick" if quick else "")
    return parse_sweep(raw, source=where, allow_large=allow_large)

