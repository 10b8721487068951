"""The seven training conditions of the paper's Figures 2 and 3.

Each condition is a factory `make(seed, eta, steps, init, schedule, closed_form) -> Method`;
rules carry state (random or learned backward matrices), so every run builds its
own.  The random matrices are seeded with the run's seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..nn import Method, backprop_method, relaxation
from ..rules import FeedbackAlignment, LearnedFeedback, NoDerivative, combined, compose
from ..solvers.options import PRESETS

#: The paper's relaxation protocol (`ardiff.solvers.options.PRESETS["paper"]`).
PAPER = PRESETS["paper"]


@dataclass(frozen=True)
class Condition:
    """A named gradient method of the paper's experiments."""

    name: str
    label: str
    build: Callable[..., Method]

    def method(self, seed: int = 0, eta: float = PAPER["eta"], steps: int = PAPER["max_iter"],
               init: str = PAPER["init"], schedule: str = PAPER["schedule"],
               closed_form: bool = PAPER["closed_form"]) -> Method:
        """The `ardiff.nn.Method` of this condition for one run (AR conditions: the state
        after `steps` steps in closed form unless `closed_form=False`)."""
        return self.build(seed=seed, eta=eta, steps=steps, init=init, schedule=schedule,
                          closed_form=closed_form)


def _ar(rules_factory=None):
    def build(seed, eta, steps, init, schedule, closed_form):
        rules = None if rules_factory is None else rules_factory(seed)
        return relaxation(eta=eta, steps=steps, init=init, schedule=schedule, rules=rules,
                          closed_form=closed_form)
    return build


CONDITIONS: dict[str, Condition] = {c.name: c for c in [
    Condition("backprop", "Backprop", lambda **kw: backprop_method()),
    Condition("ar", "AR (default)", _ar()),
    Condition("learned-feedback", "AR, learned backward weights", _ar(
        lambda seed: LearnedFeedback(seed=seed))),
    Condition("feedback-alignment", "AR, feedback alignment", _ar(
        lambda seed: FeedbackAlignment(seed=seed))),
    Condition("fa-no-derivative", "AR, feedback alignment, no nonlinear derivative", _ar(
        lambda seed: compose(FeedbackAlignment(seed=seed), NoDerivative()))),
    Condition("no-derivative", "AR, no nonlinear derivative", _ar(
        lambda seed: NoDerivative())),
    Condition("combined", "AR, learned backward weights, no nonlinear derivative", _ar(
        lambda seed: combined(seed=seed))),
]}

#: The conditions of Fig. 2 (AR against backprop) and Fig. 3 (all variants).
FIG2 = ("backprop", "ar")
FIG3 = tuple(CONDITIONS)


def get_condition(name: str) -> Condition:
    """Look a condition up by name, listing the valid names on error."""
    if name not in CONDITIONS:
        raise ValueError(f"Unknown condition {name!r}; choose from {', '.join(CONDITIONS)}.")
    return CONDITIONS[name]
