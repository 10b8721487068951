"""`ardiff.scipy`: traced versions of a few scipy functions (`ardiff.scipy.special`)."""

from . import special  # noqa: F401

__all__ = ["special"]
