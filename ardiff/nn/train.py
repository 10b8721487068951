"""Training with a pluggable gradient method: backprop, relaxation, or relaxation + rules.

Every batch the network is traced into a fresh graph (one `dense` node per
layer), the output is clamped to the loss derivative (the paper's "top-layer
error") and the hidden layers' activities are computed by the chosen solver; the
weight gradients are then read out locally (eq. 1).  The same compiled machinery
serves all methods, so a `Method` is just solver settings plus rules.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..graph import unwrap
from ..rules import learning_rules
from ..solvers import compile_plan, run_backprop, run_relaxation
from ..solvers.options import PRESETS, REACH, SolverOptions
from .losses import Loss, accuracy, get_loss
from .model import MLP
from .optim import SGD, Optimizer

#: The paper's relaxation protocol, defined once in `ardiff.solvers.options.PRESETS`.
PAPER = PRESETS["paper"]


@dataclass
class Method:
    """How a batch's gradients are computed.

    Parameters
    ----------
    solver : {"relax", "backprop"}
        Activation Relaxation, or the exact reverse sweep.
    eta : float
        Euler step of the relaxation (the paper: 0.1).
    steps : int or "reach"
        Number of relaxation steps T, run in full (the paper: 100); `"reach"`: the
        smallest T after which the deepest unit keeps at most `reach_tol` of its
        initial error (`max_iter="reach"` of `ardiff.relax`), chosen per batch from
        the traced network's depth.
    init : {"forward", "zeros"}
        Initial activities (the paper: the forward values).
    schedule : {"parallel", "sequential"}
        Algorithm 1 of the paper (all layers at once) or top-down sweeps (the order of
        the paper's training code).
    rules : rule or list of rules, optional
        Local-rule variants from `ardiff.rules` (need `solver="relax"`).
    closed_form : bool
        Compute the state after `steps` steps in closed form (the default): the same
        numbers as stepping up to rounding, from D sweeps of the layers (D = 3 on the
        paper's MLP) instead of T (`ardiff.solvers.closed_form`).  False steps
        explicitly, T sweeps.
    reach_tol : float
        The remaining fraction that `steps="reach"` aims at (not used otherwise).
    """

    solver: str = "relax"
    eta: float = PAPER["eta"]
    steps: int = PAPER["max_iter"]
    init: str = PAPER["init"]
    schedule: str = PAPER["schedule"]
    rules: Any = None
    closed_form: bool = PAPER["closed_form"]
    reach_tol: float = 1e-3

    def __post_init__(self):
        if self.solver not in ("backprop", "relax"):
            raise ValueError(f"solver must be 'backprop' or 'relax', got {self.solver!r}")
        if self.rules is not None and self.solver != "relax":
            raise ValueError("Local rules change the relaxation dynamics; use solver='relax'.")
        if self.steps == REACH:
            if not self.reach_tol > 0:
                raise ValueError(f"steps='reach' needs reach_tol > 0, got {self.reach_tol!r}")
        elif isinstance(self.steps, bool) or not isinstance(self.steps, (int, np.integer)) \
                or self.steps < 1:
            raise ValueError(f"steps must be a positive integer or 'reach', got "
                             f"{self.steps!r}")

    def rule_list(self) -> list | None:
        """The rules as a list for `compile_plan` (None when there are none)."""
        if self.rules is None:
            return None
        return list(self.rules) if isinstance(self.rules, (list, tuple)) else [self.rules]

    def describe(self) -> dict:
        """JSON-friendly description (rules by their repr)."""
        d = asdict(self) if self.rules is None else {
            **{k: v for k, v in asdict(self).items() if k != "rules"},
            "rules": [repr(r) for r in self.rule_list()]}
        if self.steps != REACH:
            d.pop("reach_tol")
        if self.solver == "backprop":
            d = {"solver": "backprop"}
        return d


def backprop_method() -> Method:
    """The exact reference method (reverse-mode backprop, the paper's "BP")."""
    return Method(solver="backprop")


def relaxation(eta: float = PAPER["eta"], steps: int | str = PAPER["max_iter"],
               init: str = PAPER["init"], schedule: str = PAPER["schedule"],
               rules: Any = None, closed_form: bool = PAPER["closed_form"],
               reach_tol: float = 1e-3) -> Method:
    """Activation Relaxation; defaults are the paper's protocol (`PRESETS["paper"]`:
    eta 0.1, T = 100, forward init, all layers updated in parallel as in Algorithm 1),
    the state after T steps computed in closed form (`closed_form=False`: stepped
    explicitly, same numbers up to rounding).  `steps="reach"` chooses T from the
    network's depth so that the deepest unit keeps at most `reach_tol` of its initial
    error (`max_iter="reach"`)."""
    return Method(solver="relax", eta=eta, steps=steps, init=init, schedule=schedule,
                  rules=rules, closed_form=closed_form, reach_tol=reach_tol)


@dataclass
class BatchGradients:
    """Result of `batch_gradients`: loss, output, parameter gradients, solver result."""

    loss: float
    output: np.ndarray
    grads: list
    result: Any
    seed: np.ndarray
    graph: Any = None
    out: Any = None
    params: list = field(default_factory=list)


def batch_gradients(model: MLP, x: np.ndarray, target: np.ndarray, loss: Loss | str = "sse",
                    method: Method | None = None) -> BatchGradients:
    """Gradients of `loss(model(x), target)` w.r.t. all parameters by `method`.

    The output layer is clamped to `loss.grad(output, target)`; the hidden layers
    relax (or are swept, for backprop).  `grads` follow `model.parameters()`.
    """
    loss = get_loss(loss)
    method = method or relaxation()
    graph, out, params, _ = model.trace(x)
    output = unwrap(out)
    seed = loss.grad(output, target)
    plan = compile_plan(graph, out, params, method.rule_list())
    if method.solver == "backprop":
        result = run_backprop(plan, seed)
    else:
        # tol=0: the T steps are the method (the paper's fixed budget), not a stopping
        # rule; with steps="reach" the tolerance picks T (then T steps are run)
        reach = method.steps == REACH
        result = run_relaxation(plan, seed, SolverOptions(
            eta=method.eta, schedule=method.schedule, init=method.init,
            tol=method.reach_tol if reach else 0.0,
            max_iter=REACH if reach else int(method.steps), closed_form=method.closed_form))
    return BatchGradients(float(loss(output, target)), output, result.grads, result, seed,
                          graph, out, params)


def gradient_angles(model: MLP, batch: BatchGradients) -> list[float]:
    """Angle in degrees between the method's and backprop's weight gradient, per layer.

    Backprop runs on the same recorded graph without rules (one extra sweep).
    """
    plan = compile_plan(batch.graph, batch.out, batch.params)
    exact = run_backprop(plan, batch.seed).grads
    names = model.parameter_names()
    angles = []
    for name, g, e in zip(names, batch.grads, exact):
        if not name.startswith("W"):
            continue
        g, e = np.ravel(unwrap(g)), np.ravel(unwrap(e))
        ng, ne = np.linalg.norm(g), np.linalg.norm(e)
        if ng == 0 or ne == 0:
            angles.append(0.0 if ng == ne else 90.0)
            continue
        u, v = g / ng, e / ne
        # 2 atan2(|u - v|, |u + v|) is accurate for tiny angles, unlike acos of the cosine
        angles.append(math.degrees(2.0 * math.atan2(np.linalg.norm(u - v),
                                                    np.linalg.norm(u + v))))
    return angles


def one_hot(labels: Any, n_classes: int = 10, dtype: Any = np.float64) -> np.ndarray:
    """Encode integer class labels as one-hot rows: `one_hot([2], 3) == [[0, 0, 1]]`.

    Parameters
    ----------
    labels : array_like of int
        Class indices in `0 .. n_classes - 1`, any shape.  Floats are accepted when
        they are whole numbers.
    n_classes : int, optional
        Number of classes.
    dtype : data-type, optional
        Element type of the result.

    Returns
    -------
    numpy.ndarray
        Array of shape `labels.shape + (n_classes,)` with a single 1 in each row.

    Raises
    ------
    ValueError
        If a label is not a whole number or lies outside `0 .. n_classes - 1`, or
        `n_classes` is not positive.
    """
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        whole = np.issubdtype(labels.dtype, np.floating) and np.all(np.mod(labels, 1) == 0)
        if labels.size and not whole:
            raise ValueError(f"one_hot needs integer labels, got dtype {labels.dtype}")
    labels = labels.astype(np.int64, copy=False)
    if n_classes < 1:
        raise ValueError(f"n_classes must be positive, got {n_classes}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}); got values from "
                         f"{labels.min()} to {labels.max()}.")
    return np.eye(n_classes, dtype=dtype)[labels]


def evaluate(model: MLP, x: np.ndarray, labels: np.ndarray, loss: Loss | str = "sse",
             chunk: int = 2000) -> tuple[float, float]:
    """`(accuracy, mean loss per example)` of a plain forward pass over a dataset."""
    loss = get_loss(loss)
    if len(x) == 0:
        return float("nan"), float("nan")
    correct, total_loss = 0, 0.0
    n_out = model.sizes[-1]
    for start in range(0, len(x), chunk):
        out = model.forward(x[start:start + chunk])
        lab = labels[start:start + chunk]
        correct += int(np.sum(np.argmax(out, axis=1) == lab))
        value = float(loss(out, one_hot(lab, n_out, out.dtype)))
        total_loss += value * len(lab) if loss.reduction == "mean" else value
    return correct / len(x), total_loss / len(x)


@dataclass
class History:
    """What `train` measured.  Lists are per epoch; index 0 is before training.

    Attributes
    ----------
    epoch : list of int
    train_acc, test_acc : list of float
        Accuracy of a full forward pass over each set at the end of every epoch.
    train_loss, test_loss : list of float
        Mean loss per example, same passes.
    running_acc : list of float
        Mean accuracy of the training batches as they were met (before their update).
    epoch_time : list of float
        Seconds of training per epoch (gradients and updates, not the evaluation).
    angles : list
        `[batch index, angle layer 1, angle layer 2, ...]` every `angle_every` batches.
    interrupted : bool
        True when training stopped early (Ctrl-C) and the lists are partial.
    diverged : int or None
        The batch at which the loss stopped being finite; training stopped there and the
        last entry of each list describes that (partial) epoch.
    """

    epoch: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    test_acc: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    test_loss: list = field(default_factory=list)
    running_acc: list = field(default_factory=list)
    epoch_time: list = field(default_factory=list)
    angles: list = field(default_factory=list)
    interrupted: bool = False
    diverged: int | None = None

    def to_dict(self) -> dict:
        """A JSON-friendly dict of every field."""
        return asdict(self)


def train(model: MLP, train_data: tuple, test_data: tuple | None = None, *,
          method: Method | None = None, loss: Loss | str = "sse",
          optimizer: Optimizer | None = None, epochs: int = 10, batch_size: int = 64,
          seed: int = 0, angle_every: int = 0, history: History | None = None,
          progress: Any = None, on_epoch: Callable[[History], None] | None = None
          ) -> History:
    """Train `model` with gradients from `method` and report accuracy per epoch.

    Parameters
    ----------
    model : MLP
        Trained in place.
    train_data, test_data : tuple
        `(images (n, d) float array, labels (n,) int array)`.
    method : Method, optional
        Gradient method (default: the paper's relaxation, `relaxation`).
    loss : str or Loss
        `"sse"` (the paper), `"mse"` or `"xent"`.
    optimizer : Optimizer, optional
        Default `SGD(lr=5e-4)` (the paper).
    epochs : int
        Passes over the training data (the paper shows 10).
    batch_size : int
        Examples per batch (the paper: 64).
    seed : int
        Seed of the per-epoch shuffling.
    angle_every : int
        Every this many batches record the angle between the method's and backprop's
        weight gradients (0: never).
    history : History, optional
        Filled in place (pass one to keep partial results if training is interrupted).
    progress : object, optional
        Anything with `update(n)` (e.g. a tqdm bar), advanced once per batch.
    on_epoch : callable, optional
        Called with the history after every epoch (e.g. to save results).

    Returns
    -------
    History
        If the loss becomes non-finite, training stops at once and `history.diverged`
        holds the batch index.

    Raises
    ------
    KeyboardInterrupt
        Re-raised after marking `history.interrupted`; completed epochs are kept.
    """
    method = method or relaxation()
    loss = get_loss(loss)
    optimizer = optimizer or SGD(lr=5e-4)
    history = history if history is not None else History()
    x_train, y_train = train_data
    n_out = model.sizes[-1]
    if x_train.shape[1] != model.sizes[0]:
        raise ValueError(f"train images have {x_train.shape[1]} features but the model "
                         f"expects {model.sizes[0]}.")
    rng = np.random.default_rng(seed)
    learners = learning_rules(method.rules)
    names = model.parameter_names()
    targets = one_hot(y_train, n_out, x_train.dtype)

    def record(epoch: int, running: float, seconds: float) -> None:
        tr = evaluate(model, x_train, y_train, loss)
        te = evaluate(model, *test_data, loss) if test_data is not None else (math.nan,) * 2
        history.epoch.append(epoch)
        history.train_acc.append(tr[0])
        history.train_loss.append(tr[1])
        history.test_acc.append(te[0])
        history.test_loss.append(te[1])
        history.running_acc.append(running)
        history.epoch_time.append(seconds)

    try:
        if not history.epoch:
            record(0, math.nan, 0.0)
        batch_index = 0
        for epoch in range(1, epochs + 1):
            order = rng.permutation(len(x_train))
            start_time = time.perf_counter()
            correct = 0
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                xb, tb = x_train[idx], targets[idx]
                batch = batch_gradients(model, xb, tb, loss, method)
                seen = start + len(idx)
                if not math.isfinite(batch.loss):
                    # diverged: nothing after this is meaningful, so stop and say so
                    history.diverged = batch_index
                    record(epoch, correct / max(start, 1), time.perf_counter() - start_time)
                    return history
                correct += int(np.sum(np.argmax(batch.output, 1) == y_train[idx]))
                if angle_every and batch_index % angle_every == 0 and method.solver == "relax":
                    history.angles.append([batch_index] + gradient_angles(model, batch))
                steps = optimizer.step(model.parameters(), [np.asarray(unwrap(g))
                                                            for g in batch.grads])
                for rule in learners:
                    rule.learn(dict(zip(names, steps)))
                batch_index += 1
                if progress is not None:
                    progress.update(1)
            record(epoch, correct / seen, time.perf_counter() - start_time)
            if on_epoch is not None:
                on_epoch(history)
    except KeyboardInterrupt:
        history.interrupted = True
        raise
    return history


__all__ = ["Method", "backprop_method", "relaxation", "batch_gradients",
           "gradient_angles", "evaluate", "History", "train", "one_hot", "accuracy"]
