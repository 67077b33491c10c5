"""Small helpers shared by every module: rng, progress, warnings, provenance."""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import numpy as np

from ._version import __version__

__all__ = [
    "as_rng",
    "seed_of",
    "progress_bar",
    "warn",
    "provenance",
    "to_json",
]

logger = logging.getLogger("xasviz")

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))


def as_rng(rng: None | int | np.random.Generator) -> np.random.Generator:
    """Normalise an ``rng`` argument (None, int or Generator) to a Generator.

    Follows SPEC 7: an int seeds a new PCG64 generator, a Generator is used as
    given (so a caller can thread one generator through several calls).
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(
        "rng must be None, an int seed or a numpy.random.Generator; "
        f"got {type(rng).__name__!r}. Pass e.g. rng=0 for reproducible results."
    )


def seed_of(rng: None | int | np.random.Generator) -> int | str:
    """What to record in result attrs about the ``rng`` a user passed."""
    if isinstance(rng, (int, np.integer)):
        return int(rng)
    if rng is None:
        return "none (fresh entropy)"
    return "numpy Generator passed by caller"


def child_seeds(rng: np.random.Generator, n: int) -> list[int]:
    """Draw ``n`` independent integer seeds from ``rng`` (for restarts, folds)."""
    return [int(s) for s in rng.integers(0, 2**63 - 1, size=n)]


class _NoBar:
    """Stand-in for a tqdm bar when progress is off."""

    def __init__(self, iterable=None, **_):
        self._it = iterable

    def __iter__(self):
        return iter(self._it)

    def update(self, n=1):
        pass

    def set_postfix_str(self, s):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def progress_bar(
    iterable: Iterable | None = None,
    progress: bool | str = False,
    **kwargs: Any,
):
    """Wrap ``iterable`` in a tqdm bar when ``progress`` asks for one.

    Parameters
    ----------
    iterable : iterable, optional
    progress : bool or {"notebook"}
        False (the library default) shows nothing; True a console bar;
        ``"notebook"`` a Jupyter widget bar.
    **kwargs
        Passed to tqdm (``desc``, ``total``, ...).
    """
    if not progress:
        return _NoBar(iterable)
    if progress == "notebook":
        from tqdm.notebook import tqdm
    else:
        from tqdm.auto import tqdm
    return tqdm(iterable, **kwargs)


def _caller_stacklevel() -> int:
    """Stack level of the first frame outside the xasviz package."""
    import inspect

    level = 1
    frame = inspect.currentframe()
    try:
        while frame is not None:
            fname = os.path.abspath(frame.f_code.co_filename)
            if not fname.startswith(_PKG_DIR):
                return level
            frame = frame.f_back
            level += 1
    finally:
        del frame
    return level


def warn(message: str, category: type[Warning]) -> None:
    """Emit a warning that points at the user's line, not at xasviz internals."""
    # warnings.warn counts its own frame as 1; _caller_stacklevel counts from
    # itself, which sits one frame below warn(), hence the -1.
    warnings.warn(message, category, stacklevel=max(_caller_stacklevel() - 1, 1))


def to_json(obj: Any) -> str:
    """JSON text of ``obj``; numpy scalars and arrays become plain numbers/lists."""

    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        return str(o)

    return json.dumps(obj, default=default, sort_keys=True)


def provenance(method: str, params: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Flat attrs every result carries: method, settings, seed, version, time.

    Attrs hold only str and numbers so that they survive netCDF and zarr
    (bools become ints, structured settings go into ``params_json``).
    """
    attrs: dict[str, Any] = {
        "method": method,
        "xasviz_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "params_json": to_json(params),
    }
    for key, value in extra.items():
        if isinstance(value, bool):
            value = int(value)
        elif value is None:
            value = "none"
        elif isinstance(value, np.generic):
            value = value.item()
        elif not isinstance(value, (str, int, float)):
            value = to_json(value)
        attrs[key] = value
    return attrs
