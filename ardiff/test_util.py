"""`ardiff.test_util`: autograd's name for the gradient checks of `ardiff.testing`.

`check_grads` and `combo_check` here are `ardiff.testing`'s, so that
`from autograd.test_util import check_grads` ports by replacing the word `autograd`.
"""

from __future__ import annotations

from .testing import check_grads, combo_check

__all__ = ["check_grads", "combo_check"]
