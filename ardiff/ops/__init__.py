"""The op table: every elementary op with its forward and local VJPs.

Each family lives in its own module (``elementwise``, ``reduce``, ``linalg``,
``shape``, ``special``) and registers its ops here with :func:`defop`.  Adding an
op is one ``defop`` call; nothing else in ardiff knows about individual ops
(broadcasting is undone generically in :meth:`ardiff.tracer.Op.local_vjp`).

VJP makers receive the forward answer and arguments (plain arrays, or tracers of
an outer graph when differentiating to higher order) and are written with
operators and ops from this table, so their own derivatives are known too.
"""

from __future__ import annotations

from ..tracer import Op

OPS: dict[str, Op] = {}


def defop(name: str, fwd, *vjps, vjp=None, jac=None, nonlinear: bool = False) -> Op:
    """Create an :class:`~ardiff.tracer.Op` and enter it in the table ``OPS``."""
    if name in OPS:
        raise ValueError(f"op {name!r} is defined twice")
    op = Op(name, fwd, vjps, vjp=vjp, jac=jac, nonlinear=nonlinear)
    OPS[name] = op
    return op


def scale_by(factor):
    """A VJP closure multiplying the incoming activity by a precomputed local derivative."""
    return lambda g: g * factor


class Scale:
    """The VJP maker of an elementwise derivative: ``g -> g * factor(ans, *args)``.

    Equivalent to ``lambda ans, *args: scale_by(factor(ans, *args))``, but keeps
    ``factor`` visible so that :mod:`ardiff.codegen` can write ``g * factor(...)``
    inline instead of building and calling a closure per edge.
    """

    __slots__ = ("factor",)

    def __init__(self, factor):
        self.factor = factor

    def __call__(self, ans, *args, **kwargs):
        factor = self.factor(ans, *args, **kwargs)
        return lambda g: g * factor  # scale_by, inlined: this runs once per edge


def _identity(g):
    return g


def _negate(g):
    return -g


class Fixed:
    """A VJP maker whose VJP does not depend on the recorded point (``g`` or ``-g``)."""

    __slots__ = ("vjp", "template")

    def __init__(self, vjp, template):
        self.vjp, self.template = vjp, template

    def __call__(self, ans, *args, **kwargs):
        return self.vjp


PASS_THROUGH = Fixed(_identity, "{}")
NEGATED = Fixed(_negate, "-{}")


from . import elementwise, linalg, reduce, shape, special  # noqa: E402,F401

# isort: split
from . import jacobians  # noqa: E402,F401  (sparse Jacobians for the triangular solver)
