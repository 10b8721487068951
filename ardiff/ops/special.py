"""Special functions from scipy.special: expit, erf, logsumexp."""

from __future__ import annotations

import numpy as np
import scipy.special as sps

from ..graph import unwrap
from ..op import Scale, defop
from .axes import kept_shape
from .elementwise import exp
from .jacobians import ELEMENTWISE, Reduction
from .reduce import spread
from .shape import reshape

TWO_OVER_SQRT_PI = float(2.0 / np.sqrt(np.pi))

expit = defop("expit", sps.expit, Scale(lambda ans, x: ans * (1.0 - ans)), jac=ELEMENTWISE,
              nonlinear=True)
erf = defop("erf", sps.erf, Scale(lambda ans, x: TWO_OVER_SQRT_PI * exp(-(x * x))),
            jac=ELEMENTWISE, nonlinear=True)


def _logsumexp_vjp(ans, x, axis=None, keepdims=False):
    shape = np.shape(unwrap(x))
    softmax = exp(x - reshape(ans, kept_shape(shape, axis)))
    return lambda g: spread(g, shape, axis) * softmax


logsumexp = defop("logsumexp", lambda x, axis=None, keepdims=False:
                  sps.logsumexp(x, axis=axis, keepdims=keepdims), _logsumexp_vjp,
                  jac=Reduction(), nonlinear=True)
