"""Assertions for tests of xasviz results (and of code built on xasviz).

These helpers score a result against a planted truth and raise
``AssertionError`` with a message that says which component failed and by how
much, so a failing test reads like a diagnosis.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = [
    "matched_cosines",
    "assert_domains_recovered",
    "assert_normalized",
]


def matched_cosines(found, truth) -> np.ndarray:
    """Cosine of every true map with its Hungarian-matched found map.

    Parameters
    ----------
    found, truth : Dataset with ``domains`` or DataArray (component, y, x)

    Returns
    -------
    ndarray, shape (n_true_components,)
        0 for a true map left unmatched (more true than found components).
    """
    from .compare import correlate

    corr = correlate(truth, found, names=("truth", "found"))
    return np.asarray(corr["matched_correlation"].values, dtype=float)


def assert_domains_recovered(found, truth, min_cosine: float = 0.95) -> None:
    """Assert every planted domain has a matched found map with cosine >= bound."""
    cos = matched_cosines(found, truth)
    bad = np.flatnonzero(~(cos >= min_cosine))
    if bad.size:
        detail = ", ".join(f"truth {i + 1}: {cos[i]:.3f}" for i in bad)
        raise AssertionError(
            f"{bad.size} of {cos.size} planted domains not recovered with cosine "
            f">= {min_cosine}: {detail}"
        )


def assert_normalized(
    stack: xr.DataArray, lo_index: int = 0, hi_index: int = -1, atol: float = 1e-6
) -> None:
    """Assert every unmasked pixel is 0 at ``lo_index`` and 1 at ``hi_index``."""
    v = stack.transpose(..., "energy").values
    v = v.reshape(-1, v.shape[-1])
    ok = np.isfinite(v).all(axis=1)
    if "mask" in stack.coords:
        ok &= ~stack["mask"].values.ravel()
    lo = np.abs(v[ok, lo_index]).max(initial=0.0)
    hi = np.abs(v[ok, hi_index] - 1).max(initial=0.0)
    if lo > atol or hi > atol:
        raise AssertionError(
            f"normalised spectra are off by {lo:.3g} at index {lo_index} and "
            f"{hi:.3g} at index {hi_index} (tolerance {atol})."
        )
