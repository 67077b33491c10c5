"""Warning and error classes of xasviz.

Every warning xasviz emits is a subclass of :class:`XasvizWarning`, so users (and
the test suite, which turns them into errors) can filter all of them at once.
"""

__all__ = [
    "XasvizWarning",
    "DataQualityWarning",
    "ConvergenceWarning",
    "StackValidationError",
]


class XasvizWarning(UserWarning):
    """Base class of every warning emitted by xasviz."""


class DataQualityWarning(XasvizWarning):
    """Some pixels or energies were masked, dropped or repaired.

    The message says how many and what was done to them.
    """


class ConvergenceWarning(XasvizWarning):
    """An iterative method stopped before its convergence criterion was met."""


class StackValidationError(ValueError):
    """A stack, spectrum or result does not have the shape xasviz expects.

    The message says what was expected, what arrived and how to fix it.
    """
