"""Preprocessing of stacks: optical density, normalisation, reference subtraction.

The steps of paper section 2.1 (Tanimoto et al. 2021): every pixel spectrum is
normalised (:func:`normalize`), then a reference spectrum ``b`` is subtracted
from every pixel, ``X = X0 - 1 b`` (eq. 1, :func:`subtract_reference`). Around
them sit the usual chores of real stacks: conversion of transmitted intensity
to optical density (:func:`to_optical_density`), cropping, binning and masking
of dead or hot pixels.

Every function takes a stack (dims ``y, x, energy``) and most also a spectrum
(dim ``energy``), never modifies its input, works on numpy- and dask-backed
data alike, and reports masked pixels in one
:class:`~xasviz.DataQualityWarning`. Masked pixels are NaN at every energy and
``True`` in the ``mask`` coordinate.
"""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

from ._errors import DataQualityWarning, StackValidationError
from ._utils import to_json, warn
from ._validation import validate_spectrum, validate_stack
from ._version import __version__

__all__ = [
    "normalize",
    "subtract_reference",
    "to_optical_density",
    "crop",
    "bin_stack",
    "dead_pixel_mask",
    "apply_mask",
    "REL_MIN_EDGE_STEP",
]

logger = logging.getLogger(__name__)

#: Default lower limit of the edge step, as a fraction of the median edge step
#: of the stack's pixels (see :func:`normalize`).
REL_MIN_EDGE_STEP = 0.05

# Pixels are fitted in blocks of this many: bounded memory without a Python
# loop over single pixels.
_BLOCK = 1 << 15


# ---------------------------------------------------------------------------
# input handling


def _as_data(obj, name: str = "stack", nonfinite: str = "ignore"):
    """Validated stack or spectrum and whether it is a spectrum."""
    if isinstance(obj, xr.DataArray) and obj.dims == ("energy",):
        return validate_spectrum(obj, name="spectrum"), True
    return validate_stack(obj, name=name, nonfinite=nonfinite), False


def _old_mask(da: xr.DataArray) -> np.ndarray:
    if "mask" in da.coords:
        return np.asarray(da["mask"].values, dtype=bool)
    return np.zeros(da.shape[:-1], dtype=bool)


def _with_mask(da: xr.DataArray, bad: np.ndarray, is_spectrum: bool) -> xr.DataArray:
    """NaN the pixels flagged in ``bad`` (y, x) and record them in ``mask``."""
    if is_spectrum or not bad.any():
        return da
    bad = bad | _old_mask(da)
    keep = xr.DataArray(~bad, dims=("y", "x"))
    return da.where(keep).assign_coords(mask=(("y", "x"), bad))


def _report(reasons: dict[str, int], total: int, what: str) -> None:
    """One DataQualityWarning naming how many pixels were masked and why."""
    reasons = {k: v for k, v in reasons.items() if v}
    n = sum(reasons.values())
    if not n:
        return
    parts = "; ".join(f"{v} {k}" for k, v in reasons.items())
    warn(
        f"{what}: {n} of {total} pixels were masked (NaN at every energy, True "
        f"in the 'mask' coordinate): {parts}.",
        DataQualityWarning,
    )


def _new_nonfinite(da: xr.DataArray) -> np.ndarray:
    """(y, x) True where a not-yet-masked pixel holds NaN or inf."""
    bad = np.asarray((~np.isfinite(da)).any("energy").values)
    return bad & ~_old_mask(da)


# ---------------------------------------------------------------------------
# normalisation kernels (plain numpy, last axis is energy)


def _endpoint_indices(energy: np.ndarray, points) -> tuple[int, int]:
    if points is None:
        return 0, energy.size - 1
    try:
        lo, hi = (float(v) for v in points)
    except (TypeError, ValueError) as err:
        raise StackValidationError(
            f"points must be two energies (e_lo, e_hi) in eV; got {points!r}."
        ) from err
    i_lo = int(np.argmin(np.abs(energy - lo)))
    i_hi = int(np.argmin(np.abs(energy - hi)))
    if i_lo >= i_hi:
        raise StackValidationError(
            f"points={points!r} select the energies {energy[i_lo]:g} and "
            f"{energy[i_hi]:g} eV; the first must lie below the second. The "
            f"stack spans {energy[0]:g} to {energy[-1]:g} eV."
        )
    return i_lo, i_hi


def _endpoints_kernel(mu: np.ndarray, i_lo: int, i_hi: int):
    """``(mu - mu[i_lo]) / (mu[i_hi] - mu[i_lo])`` and that denominator."""
    lo = mu[..., i_lo : i_lo + 1]
    step = mu[..., i_hi : i_hi + 1] - lo
    # A non-positive denominator gives NaN, never an infinity; such pixels are
    # masked afterwards.
    safe = np.where(step > 0, step, np.nan)
    with np.errstate(invalid="ignore"):
        norm = (mu - lo) / safe
    return norm, step[..., 0]


def _smooth3(m: np.ndarray) -> np.ndarray:
    """Binomial (1, 2, 1) / 4 smoothing along the last axis, ends kept."""
    out = m.copy()
    out[:, 1:-1] = 0.25 * m[:, :-2] + 0.5 * m[:, 1:-1] + 0.25 * m[:, 2:]
    return out


def _find_e0(mu: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Edge energy per spectrum: maximum of the derivative, refined.

    Parameters
    ----------
    mu : ndarray, shape (..., n_energy)
    energy : ndarray, shape (n_energy,)

    Returns
    -------
    ndarray, shape (...)
        e0 in eV; NaN for spectra that hold NaN.

    Notes
    -----
    The derivative of a lightly smoothed spectrum is searched away from the
    first and last two energies (where one-sided differences are noisy); a
    parabola through the maximum and its neighbours refines e0 between grid
    points.
    """
    shape = mu.shape[:-1]
    m = _smooth3(mu.reshape(-1, mu.shape[-1]).astype(np.float64))
    d = np.gradient(m, energy, axis=1)
    n = energy.size
    lo, hi = (2, n - 2) if n >= 7 else (1, n - 1)
    d_in = np.where(np.isfinite(d[:, lo:hi]), d[:, lo:hi], -np.inf)
    i = np.argmax(d_in, axis=1) + lo
    rows = np.arange(m.shape[0])
    x0, x1, x2 = energy[i - 1] - energy[i], 0.0, energy[i + 1] - energy[i]
    y0, y1, y2 = d[rows, i - 1], d[rows, i], d[rows, i + 1]
    # Vertex of the parabola through three unevenly spaced points (centred on
    # the middle one for precision).
    den = (x0 - x1) * (x0 - x2) * (x1 - x2)
    a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / den
    b = (x2**2 * (y0 - y1) + x1**2 * (y2 - y0) + x0**2 * (y1 - y2)) / den
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(a < 0, -b / (2 * a), 0.0)
    shift = np.clip(np.nan_to_num(shift), x0, x2)
    e0 = energy[i] + shift
    e0[~np.isfinite(m).all(axis=1)] = np.nan
    return e0.reshape(shape)


def _window_polyfit(t, y, lo: float, hi: float, deg: int):
    """Least-squares polynomial of ``y`` on ``t`` over ``lo <= t <= hi``.

    Batched over rows by the normal equations: for each row the Gram matrix
    is the Hankel matrix of the moments ``sum_w s**j`` (s = t / scale).

    Parameters
    ----------
    t, y : ndarray, shape (n_pixels, n_energy)
    lo, hi : float
    deg : int

    Returns
    -------
    coef : ndarray, shape (n_pixels, deg + 1)
        Coefficients of ``s**k``; ``coef[:, 0]`` is the value at ``t = 0``.
        NaN for rows with fewer than ``deg + 1`` finite points in the window.
    scale : float
    """
    w = (t >= lo) & (t <= hi) & np.isfinite(y)
    ok = w.sum(axis=1) >= deg + 1
    scale = max(abs(lo), abs(hi), 1.0)
    s = np.where(w, t / scale, 0.0)
    yw = np.where(w, y, 0.0)
    powers = [w.astype(np.float64)]
    for _ in range(2 * deg):
        powers.append(powers[-1] * s)
    moments = np.stack([p.sum(axis=1) for p in powers], axis=1)
    idx = np.add.outer(np.arange(deg + 1), np.arange(deg + 1))
    gram = moments[:, idx]
    rhs = np.stack([(p * yw).sum(axis=1) for p in powers[: deg + 1]], axis=1)
    # Rows without enough points get a harmless identity system so that one
    # singular row cannot make the whole batched solve fail.
    gram[~ok] = np.eye(deg + 1)
    rhs[~ok] = 0.0
    coef = np.linalg.solve(gram, rhs[..., None])[..., 0]
    coef[~ok] = np.nan
    return coef, scale


def _edge_step_kernel(mu, e0, energy, pre, post, nnorm):
    """Athena/Larch-style normalisation of every spectrum.

    Parameters
    ----------
    mu : ndarray, shape (..., n_energy)
    e0 : ndarray, shape (...) or float
        Edge energy of each spectrum (eV).
    energy : ndarray, shape (n_energy,)
    pre, post : tuple of float
        Pre-edge window (pre1, pre2) and normalisation window (norm1, norm2),
        relative to e0.
    nnorm : int
        Degree of the post-edge polynomial.

    Returns
    -------
    norm : ndarray, shape (..., n_energy), dtype of ``mu``
        ``(mu - pre_line) / edge_step``; NaN where the step is not positive.
    step : ndarray, shape (...)
        ``post(e0) - pre(e0)``; NaN where a window holds too few points.
    """
    shape, n = mu.shape[:-1], mu.shape[-1]
    m = mu.reshape(-1, n)
    e0 = np.broadcast_to(np.asarray(e0, dtype=np.float64), shape).reshape(-1)
    norm = np.empty(m.shape, dtype=mu.dtype)
    step = np.empty(m.shape[0])
    for start in range(0, m.shape[0], _BLOCK):
        blk = slice(start, start + _BLOCK)
        y = m[blk].astype(np.float64)
        t = energy[None, :] - e0[blk, None]
        pre_c, pre_s = _window_polyfit(t, y, pre[0], pre[1], 1)
        post_c, _ = _window_polyfit(t, y, post[0], post[1], nnorm)
        st = post_c[:, 0] - pre_c[:, 0]
        line = pre_c[:, :1] + pre_c[:, 1:2] * (t / pre_s)
        with np.errstate(invalid="ignore"):
            norm[blk] = (y - line) / np.where(st > 0, st, np.nan)[:, None]
        step[blk] = st
    return norm.reshape(mu.shape), step.reshape(shape)


# ---------------------------------------------------------------------------
# normalize


def _default_nnorm(width: float) -> int:
    # Like Athena/Larch: a constant over short post-edge windows (XANES, soft
    # L-edges), a line up to a few hundred eV, a quadratic over EXAFS ranges.
    if width < 30.0:
        return 0
    return 1 if width < 300.0 else 2


def _resolve_windows(energy, e0_ref, pre1, pre2, norm1, norm2, nnorm):
    emin, emax = float(energy[0]), float(energy[-1])
    below, above = emin - e0_ref, emax - e0_ref
    pre1 = below if pre1 is None else float(pre1)
    pre2 = 0.5 * below if pre2 is None else float(pre2)
    norm2 = above if norm2 is None else float(norm2)
    norm1 = 0.5 * above if norm1 is None else float(norm1)
    for lo, hi, what in ((pre1, pre2, "pre1 < pre2"), (norm1, norm2, "norm1 < norm2")):
        if not lo < hi:
            raise StackValidationError(
                f"The normalisation windows need {what}; got ({lo!r}, {hi!r}) eV "
                "relative to e0."
            )
    if nnorm is None:
        nnorm = _default_nnorm(norm2 - norm1)
    if int(nnorm) != nnorm or not 0 <= nnorm <= 3:
        raise StackValidationError(f"nnorm must be 0, 1, 2 or 3; got {nnorm!r}.")
    return (pre1, pre2), (norm1, norm2), int(nnorm)


def _check_windows(energy, e0_ref, pre, post, nnorm) -> None:
    """Refuse windows that hold too few energies (judged at the typical e0)."""
    t = energy - e0_ref
    for (lo, hi), deg, what in ((pre, 1, "pre-edge"), (post, nnorm, "post-edge")):
        n = int(((t >= lo) & (t <= hi)).sum())
        if n < deg + 1:
            raise StackValidationError(
                f"The {what} window e0{lo:+.3f} .. e0{hi:+.3f} eV (e0 = "
                f"{e0_ref:.3f} eV, i.e. {e0_ref + lo:.3f} to {e0_ref + hi:.3f} eV) "
                f"holds {n} energies; a degree-{deg} fit needs at least {deg + 1}. "
                f"The data span {energy[0]:.3f} to {energy[-1]:.3f} eV: widen the "
                "window (pre1/pre2, norm1/norm2) or lower nnorm."
            )


def _ufunc(func, da, *args, n_out=2, dtypes=None, kwargs=None, extra_core=None):
    """apply_ufunc over the energy axis, dask-parallel when ``da`` is dask."""
    core = [["energy"]] + [[] for _ in args]
    out_core = [["energy"], []][:n_out] if extra_core is None else extra_core
    return xr.apply_ufunc(
        func,
        da,
        *args,
        input_core_dims=core,
        output_core_dims=out_core,
        dask="parallelized",
        output_dtypes=dtypes,
        dask_gufunc_kwargs={"allow_rechunk": True},
        kwargs=kwargs or {},
    )


def normalize(
    stack,
    method: str = "endpoints",
    *,
    e0=None,
    pre1=None,
    pre2=None,
    norm1=None,
    norm2=None,
    nnorm=None,
    points=None,
    min_edge_step=None,
    keep_attrs: bool = True,
    return_params: bool = False,
):
    """Normalise every pixel spectrum of a stack (or one spectrum).

    Parameters
    ----------
    stack : xarray.DataArray, dims (y, x, energy) or (energy,)
        Absorbance (optical density or mu); not transmitted intensity.
    method : {"endpoints", "edge_step"}
        ``"endpoints"`` (paper section 2.1): zero at the first energy and one
        at the last, or at the energies nearest to ``points``, exactly.
        ``"edge_step"``: Athena/Larch-style. A line fitted over the pre-edge
        window ``[e0 + pre1, e0 + pre2]`` and a polynomial of degree
        ``nnorm`` over ``[e0 + norm1, e0 + norm2]`` give
        ``edge_step = post(e0) - pre(e0)`` and
        ``norm = (mu - pre(E)) / edge_step``.
    e0 : float, optional
        Edge energy in eV (edge_step only). Default: per pixel, the maximum of
        the derivative of the lightly smoothed spectrum.
    pre1, pre2, norm1, norm2 : float, optional
        Window limits in eV relative to e0. Defaults suit short ranges (30-40
        eV soft-X-ray L-edge STXM, K-edge XANES): the pre-edge window is the
        first half of the range below e0 (``pre1 = E_min - e0``,
        ``pre2 = pre1 / 2``), the normalisation window the second half of the
        range above it (``norm1 = (E_max - e0) / 2``, ``norm2 = E_max - e0``),
        with e0 the median edge energy of the pixels. For EXAFS-length data
        pass Larch's values (e.g. -150, -30, 150, 800).
    nnorm : int, optional
        Degree of the post-edge polynomial; default 0 for windows under 30 eV,
        1 under 300 eV, 2 beyond.
    points : tuple of float, optional
        ``(e_lo, e_hi)`` for ``"endpoints"``: the energies (nearest grid
        points) that become 0 and 1.
    min_edge_step : float, optional
        Pixels with a smaller edge step (the endpoint difference for
        ``"endpoints"``) are masked. Default: ``REL_MIN_EDGE_STEP`` (5 %) of
        the median positive edge step. Non-positive steps and constant or
        all-zero spectra are always masked.
    keep_attrs : bool, default True
        Keep the input's attrs (``units`` becomes ``"normalized"``).
    return_params : bool, default False
        Return a Dataset with the variables ``normalized``, ``edge_step``
        and (for ``"edge_step"``) ``e0`` instead of a DataArray.

    Returns
    -------
    xarray.DataArray (or xarray.Dataset with ``return_params=True``)
        Same dims and dtype as the input, with ``mask`` updated and attrs
        ``normalization`` (the method) and ``normalization_json`` (every
        setting, the resolved windows, the threshold and the masked count).
        With ``return_params=True``: a Dataset with ``normalized``,
        ``edge_step`` (y, x; the endpoint difference for ``"endpoints"``, NaN
        on masked pixels) and, for ``"edge_step"``, ``e0`` (y, x, eV).

    Warns
    -----
    DataQualityWarning
        Once, with the number of pixels masked (non-finite values, constant
        spectra, non-positive or too small edge step, failed window fits).

    Raises
    ------
    StackValidationError
        Bad dims or energy axis, windows that hold too few energies, or no
        pixel left to normalise.

    Notes
    -----
    Everything is vectorised over pixels (batched least squares by normal
    equations) and runs blockwise on dask-backed stacks; a dask stack is read
    once for the e0 map (when e0 is not given), once for the edge-step map
    (needed to decide the mask) and once more when the result is computed.

    For a spectrum (a reference) the same arithmetic is applied; nothing is
    masked, but a non-positive step raises.

    References
    ----------
    H. Tanimoto et al., J. Phys. Commun. 5, 115005 (2021), section 2.1.
    B. Ravel and M. Newville, J. Synchrotron Rad. 12, 537 (2005) (Athena).
    """
    if method not in ("endpoints", "edge_step"):
        raise ValueError(f"method must be 'endpoints' or 'edge_step'; got {method!r}.")
    da, is_spec = _as_data(stack)
    energy = da["energy"].values.astype(np.float64)
    settings: dict = {"method": method}
    e0_map = None
    if method == "endpoints":
        i_lo, i_hi = _endpoint_indices(energy, points)
        settings.update(e_lo=energy[i_lo], e_hi=energy[i_hi])
        norm, step = _ufunc(
            _endpoints_kernel,
            da,
            dtypes=[da.dtype, da.dtype],
            kwargs={"i_lo": i_lo, "i_hi": i_hi},
        )
    else:
        e0_map, e0_ref, e0_arg = _edge_energies(da, energy, e0, is_spec)
        pre, post, nn = _resolve_windows(
            energy, e0_ref, pre1, pre2, norm1, norm2, nnorm
        )
        _check_windows(energy, e0_ref, pre, post, nn)
        settings.update(
            e0=e0 if e0 is not None else "per pixel",
            e0_median=e0_ref,
            pre1=pre[0],
            pre2=pre[1],
            norm1=post[0],
            norm2=post[1],
            nnorm=nn,
        )
        norm, step = _ufunc(
            _edge_step_kernel,
            da,
            e0_arg,
            dtypes=[da.dtype, np.float64],
            kwargs={"energy": energy, "pre": pre, "post": post, "nnorm": nn},
        )
    step_np = np.asarray(step.values, dtype=np.float64)
    bad, threshold = _bad_steps(da, step_np, min_edge_step, is_spec, method)
    settings.update(min_edge_step=threshold, n_masked=int(bad.sum()))
    norm = _with_mask(norm, bad, is_spec)
    attrs = dict(da.attrs) if keep_attrs else {}
    if "units" in attrs:
        attrs["units"] = "normalized"
    attrs.update(
        normalization=method,
        normalization_json=to_json(settings),
        xasviz_version=__version__,
    )
    norm.attrs = attrs
    norm.name = da.name
    if not return_params:
        return norm
    maps = _param_maps(step, step_np, bad, e0_map, da.attrs.get("units"))
    ds = xr.Dataset(
        {"normalized": norm, **maps},
        attrs={k: attrs[k] for k in ("normalization", "normalization_json")},
    )
    return ds


def _param_maps(step, step_np, bad, e0_map, units) -> dict[str, xr.DataArray]:
    """``edge_step`` (NaN where masked) and ``e0`` maps with their attrs."""
    values = np.where(bad, np.nan, step_np)
    maps = {
        "edge_step": step.copy(data=values).assign_attrs(
            long_name="edge step", units=units or "absorbance"
        )
    }
    if e0_map is not None:
        maps["e0"] = e0_map.assign_attrs(long_name="edge energy", units="eV")
    return {k: v.reset_coords(drop=True) for k, v in maps.items()}


def _edge_energies(da, energy, e0, is_spec):
    """e0 map (DataArray or None), its typical value and the kernel argument."""
    if e0 is not None:
        e0 = float(e0)
        if not energy[0] < e0 < energy[-1]:
            raise StackValidationError(
                f"e0 = {e0:g} eV lies outside the data ({energy[0]:g} to "
                f"{energy[-1]:g} eV)."
            )
        return None, e0, xr.DataArray(e0)
    e0_map = _ufunc(
        _find_e0,
        da,
        extra_core=[[]],
        dtypes=[np.float64],
        kwargs={"energy": energy},
    ).compute()
    e0_map.attrs = {"long_name": "edge energy", "units": "eV"}
    vals = e0_map.values
    if is_spec:
        ok = np.isfinite(vals)
    else:
        ok = np.isfinite(vals) & ~_old_mask(da)
    if not ok.any():
        raise StackValidationError(
            "No pixel has finite values to find the edge energy from; pass "
            "e0= or repair the stack."
        )
    return e0_map, float(np.median(vals[ok])), e0_map


def _bad_steps(da, step, min_edge_step, is_spec, method):
    """(y, x) pixels to mask, reported in one warning, and the threshold used."""
    finite = np.isfinite(step)
    positive = finite & (step > 0)
    if min_edge_step is None:
        threshold = (
            REL_MIN_EDGE_STEP * float(np.median(step[positive]))
            if positive.any()
            else np.inf
        )
    else:
        threshold = float(min_edge_step)
    if is_spec:
        if not (positive & (step >= threshold)).all():
            raise StackValidationError(
                f"The spectrum's edge step is {float(step):g} (method "
                f"{method!r}); it must be positive. Is it transmitted intensity? "
                "Convert it with xasviz.to_optical_density first."
            )
        return np.zeros((), bool), threshold
    old = _old_mask(da)
    nonfinite = _new_nonfinite(da)
    spread = np.asarray((da.max("energy") - da.min("energy")).values)
    constant = ~old & ~nonfinite & (spread == 0)
    rest = ~(old | nonfinite | constant)
    failed = rest & ~finite
    nonpos = rest & finite & (step <= 0)
    small = rest & positive & (step < threshold)
    bad = nonfinite | constant | failed | nonpos | small
    if (bad | old).all():
        raise StackValidationError(
            f"No pixel survives normalisation (method {method!r}): "
            f"{int(nonpos.sum())} have a non-positive edge step, "
            f"{int(constant.sum())} are constant. Is the stack transmitted "
            "intensity? Convert it with xasviz.to_optical_density first, or "
            "check the normalisation windows."
        )
    _report(
        {
            "holding NaN or inf": int(nonfinite.sum()),
            "constant or all-zero spectra": int(constant.sum()),
            "with too few energies in a fit window": int(failed.sum()),
            "with a non-positive edge step": int(nonpos.sum()),
            f"with an edge step below {threshold:.4g}": int(small.sum()),
        },
        bad.size,
        "normalize",
    )
    return bad, threshold


# ---------------------------------------------------------------------------
# spectra on the stack's grid


def _on_grid(
    spectrum: xr.DataArray,
    energy: np.ndarray,
    what: str,
    method: str = "linear",
    tolerance: float = 1e-3,
) -> tuple[np.ndarray, bool]:
    """Values of ``spectrum`` at ``energy`` and whether interpolation was needed.

    A spectrum on the same grid (within ``tolerance`` eV at every energy) is
    taken as it is; another grid must cover the stack's range (to within
    ``tolerance``) and is interpolated.
    """
    se = spectrum["energy"].values.astype(np.float64)
    sv = spectrum.values.astype(np.float64)
    if se.shape == energy.shape and np.all(np.abs(se - energy) <= tolerance):
        return sv, False
    if se[0] > energy[0] + tolerance or se[-1] < energy[-1] - tolerance:
        raise StackValidationError(
            f"The {what} spans {se[0]:g} to {se[-1]:g} eV but the stack spans "
            f"{energy[0]:g} to {energy[-1]:g} eV; it must cover the whole stack "
            "range to be interpolated onto it. Crop the stack "
            "(xasviz.crop(stack, energy=(lo, hi))) or use a wider spectrum."
        )
    if method == "linear":
        return np.interp(energy, se, sv), True
    if method == "cubic":
        from scipy.interpolate import CubicSpline

        return CubicSpline(se, sv)(np.clip(energy, se[0], se[-1])), True
    raise ValueError(f"method must be 'linear' or 'cubic'; got {method!r}.")


def subtract_reference(
    stack, reference, *, method: str = "linear", tolerance: float = 1e-3
) -> xr.DataArray:
    """Difference spectra ``X = X0 - 1 b`` (paper eq. 1).

    Parameters
    ----------
    stack : xarray.DataArray, dims (y, x, energy) or (energy,)
        ``X0``, normalised the same way as the reference.
    reference : xarray.DataArray, dim energy
        ``b``. On another energy grid it is interpolated (``method``) when it
        covers the stack's range.
    method : {"linear", "cubic"}
        Interpolation of the reference.
    tolerance : float, default 1e-3
        eV by which the reference may fall short of the stack's range (energy
        lists are often rounded to meV), and below which two grids count as
        the same.

    Returns
    -------
    xarray.DataArray
        ``X``, same dims, coords and dtype; attrs ``reference_subtracted``
        (1), ``reference_name``, ``reference_interpolated`` (0/1).

    Raises
    ------
    StackValidationError
        When the reference does not cover the stack's energy range (both
        ranges are named).
    """
    da, _ = _as_data(stack, nonfinite="mask")
    ref = validate_spectrum(reference, name="reference")
    energy = da["energy"].values.astype(np.float64)
    b, interpolated = _on_grid(ref, energy, "reference", method, tolerance)
    if interpolated:
        logger.info("reference interpolated (%s) onto the stack's grid", method)
    b_da = xr.DataArray(
        b.astype(da.dtype), dims="energy", coords={"energy": da["energy"]}
    )
    with xr.set_options(keep_attrs=True):
        out = da - b_da
    out.attrs = {
        **da.attrs,
        "reference_subtracted": 1,
        "reference_name": str(ref.name) if ref.name is not None else "none",
        "reference_source": ref.attrs.get("source_file", "array"),
        "reference_interpolated": int(interpolated),
        "reference_interpolation": method if interpolated else "none",
    }
    out.name = da.name
    return out


def to_optical_density(stack, i0, *, tolerance: float = 1e-3) -> xr.DataArray:
    """Optical density ``OD = -ln(I / I0)`` of a transmission stack.

    Parameters
    ----------
    stack : xarray.DataArray, dims (y, x, energy) or (energy,)
        Transmitted intensity ``I``.
    i0 : float, xarray.DataArray (dim energy) or xarray.DataArray (y, x, energy)
        Incident intensity: a constant, a spectrum (interpolated onto the
        stack's grid when it covers it) or a full flat-field stack of the same
        shape.
    tolerance : float, default 1e-3
        eV, as in :func:`subtract_reference`.

    Returns
    -------
    xarray.DataArray
        Same dims and dtype; attrs ``units = "optical density"``,
        ``i0_source``, ``i0_interpolated``.

    Warns
    -----
    DataQualityWarning
        When pixels hold a non-positive intensity at some energy: those pixels
        are masked (their logarithm does not exist), with their count.

    Raises
    ------
    StackValidationError
        When ``I0`` is non-positive or non-finite anywhere (that would spoil
        every pixel at that energy) or does not cover the stack's range.
    """
    da, is_spec = _as_data(stack, nonfinite="mask")
    energy = da["energy"].values.astype(np.float64)
    interpolated, source = False, "constant"
    if isinstance(i0, xr.DataArray) and i0.ndim == 3:
        i0v = validate_stack(i0, name="i0", nonfinite="raise")
        if i0v.shape != da.shape:
            raise StackValidationError(
                f"A flat-field i0 must have the stack's shape {da.shape}; got "
                f"{i0v.shape}."
            )
        i0_da, source = i0v.drop_vars("mask", errors="ignore"), "flat field"
        i0_min = float(i0_da.min())
    elif isinstance(i0, xr.DataArray):
        spec = validate_spectrum(i0, name="i0")
        vals, interpolated = _on_grid(spec, energy, "i0 spectrum", "linear", tolerance)
        i0_da = xr.DataArray(vals, dims="energy", coords={"energy": da["energy"]})
        source = spec.attrs.get("source_file", "spectrum")
        i0_min = float(vals.min())
    elif np.ndim(i0) == 0:
        i0_da, i0_min = float(i0), float(i0)
        if not np.isfinite(i0_min):
            i0_min = -np.inf
    else:
        raise StackValidationError(
            "i0 must be a number, a spectrum DataArray (dim energy) or a "
            f"flat-field stack; got {type(i0).__name__}."
        )
    if not i0_min > 0:
        raise StackValidationError(
            f"i0 must be positive and finite at every energy; its minimum is "
            f"{i0_min:g}. Check the I0 file (a dark-current offset?)."
        )
    bad = (
        np.zeros((), bool)
        if is_spec
        else np.asarray((da <= 0).any("energy").values) & ~_old_mask(da)
    )
    if is_spec and bool((da <= 0).any()):
        raise StackValidationError(
            "The spectrum holds non-positive intensities; their optical density "
            "does not exist."
        )
    # NaN the bad pixels before the logarithm so that no invalid-value warning
    # surfaces later, when a dask result is computed.
    safe = _with_mask(da, bad, is_spec) if bad.any() else da
    od = (-np.log(safe / i0_da)).astype(da.dtype)
    if not is_spec:
        _report(
            {"with a non-positive intensity at some energy": int(bad.sum())},
            bad.size,
            "to_optical_density",
        )
    od.attrs = {
        **da.attrs,
        "units": "optical density",
        "quantity": "optical density -ln(I/I0)",
        "i0_source": str(source),
        "i0_interpolated": int(interpolated),
    }
    od.name = da.name
    return od


# ---------------------------------------------------------------------------
# crop, bin, masks


def _bounds(sel, dim: str) -> tuple[float, float]:
    if isinstance(sel, slice):
        if sel.step is not None:
            raise StackValidationError(
                f"crop({dim}=...) takes a slice without a step; got {sel!r}. "
                "Use bin_stack to thin a stack."
            )
        lo, hi = sel.start, sel.stop
    else:
        try:
            lo, hi = sel
        except (TypeError, ValueError) as err:
            raise StackValidationError(
                f"crop({dim}=...) takes a (lo, hi) tuple or a slice in "
                f"coordinate units; got {sel!r}."
            ) from err
    lo = -np.inf if lo is None else float(lo)
    hi = np.inf if hi is None else float(hi)
    return min(lo, hi), max(lo, hi)


def crop(stack, *, energy=None, x=None, y=None) -> xr.DataArray:
    """Keep the part of a stack (or spectrum) inside coordinate ranges.

    Parameters
    ----------
    stack : xarray.DataArray, dims (y, x, energy) or (energy,)
    energy, x, y : tuple (lo, hi) or slice, optional
        Inclusive ranges in coordinate units (eV, um or pixel index); None in
        a bound leaves that side open. Works for decreasing x/y coords too.

    Returns
    -------
    xarray.DataArray

    Raises
    ------
    StackValidationError
        When a range keeps nothing (the coordinate's range is named), or is
        given for a dim the input does not have.
    """
    da, _ = _as_data(stack, nonfinite="ignore")
    out = da
    for dim, sel in (("energy", energy), ("x", x), ("y", y)):
        if sel is None:
            continue
        if dim not in out.dims:
            raise StackValidationError(f"crop: the input has no dim {dim!r}.")
        lo, hi = _bounds(sel, dim)
        c = out[dim].values
        keep = np.flatnonzero((c >= lo) & (c <= hi))
        if keep.size == 0:
            raise StackValidationError(
                f"crop({dim}=({lo:g}, {hi:g})) keeps nothing: {dim} runs from "
                f"{float(c.min()):g} to {float(c.max()):g}."
            )
        if dim == "energy" and keep.size < 2:
            raise StackValidationError(
                f"crop(energy=({lo:g}, {hi:g})) keeps {keep.size} energy; a "
                "stack needs at least 2."
            )
        out = out.isel({dim: keep})
    return out


def bin_stack(stack, *, xy: int = 2, energy: int = 1) -> xr.DataArray:
    """Mean-bin a stack over blocks of pixels and/or energies.

    Parameters
    ----------
    stack : xarray.DataArray, dims (y, x, energy)
    xy : int, default 2
        Pixels per bin along y and along x.
    energy : int, default 1
        Energies per bin.

    Returns
    -------
    xarray.DataArray
        Dims (y, x, energy) of sizes ``n // factor`` (incomplete edge blocks
        are dropped), coords the bin means. Means skip masked (NaN) pixels; a
        bin is masked only when all of its pixels are.
    """
    for name, f in (("xy", xy), ("energy", energy)):
        if not isinstance(f, (int, np.integer)) or f < 1:
            raise StackValidationError(
                f"bin_stack({name}=...) must be a positive integer; got {f!r}."
            )
    da = validate_stack(stack, nonfinite="mask")
    ny, nx, ne = da.shape
    if xy > min(ny, nx) or energy > ne // 2:
        raise StackValidationError(
            f"Bins of {xy} pixels and {energy} energies do not fit a stack of "
            f"{ny} x {nx} pixels and {ne} energies (at least 2 energies must "
            "remain)."
        )
    old = _old_mask(da)
    factors = {"y": xy, "x": xy, "energy": energy}
    with np.errstate(invalid="ignore", divide="ignore"):
        summed = da.drop_vars("mask", errors="ignore").coarsen(factors, boundary="trim")
        total = summed.sum()
        count = (
            da.notnull()
            .drop_vars("mask", errors="ignore")
            .coarsen(factors, boundary="trim")
            .sum()
        )
        out = (total / count.where(count > 0)).astype(da.dtype)
    out.attrs = {
        **da.attrs,
        "binning_json": to_json(
            {
                "xy": xy,
                "energy": energy,
                "dropped": {"y": ny % xy, "x": nx % xy, "energy": ne % energy},
            }
        ),
    }
    out.name = da.name
    if old.any():
        m = (
            xr.DataArray(old, dims=("y", "x"))
            .coarsen(y=xy, x=xy, boundary="trim")
            .min()
        )
        out = out.assign_coords(mask=(("y", "x"), m.values.astype(bool)))
    return out


def apply_mask(stack, mask) -> xr.DataArray:
    """Mask pixels: NaN at every energy and True in the ``mask`` coordinate.

    Parameters
    ----------
    stack : xarray.DataArray, dims (y, x, energy)
    mask : array-like of bool, shape (y, x), or DataArray (y, x)
        True excludes the pixel; OR-ed with any existing mask.

    Returns
    -------
    xarray.DataArray
    """
    da = validate_stack(stack, nonfinite="ignore")
    if isinstance(mask, xr.DataArray):
        if set(mask.dims) != {"y", "x"}:
            raise StackValidationError(
                f"The mask must have dims ('y', 'x'); got {mask.dims}."
            )
        mask = mask.transpose("y", "x")
    m = np.asarray(mask)
    if m.shape != da.shape[:2]:
        raise StackValidationError(
            f"The mask has shape {m.shape}; the stack has {da.shape[:2]} pixels."
        )
    if m.dtype != bool:
        raise StackValidationError(
            f"The mask must be boolean (True = excluded); got dtype {m.dtype}."
        )
    logger.info("masking %d pixels", int(m.sum()))
    return _with_mask(da, m, False)


def _mad_scale(r: np.ndarray) -> float:
    """Robust standard deviation: 1.4826 * median absolute deviation."""
    s = 1.4826 * float(np.median(np.abs(r - np.median(r))))
    if s == 0:
        s = float(np.std(r))
    return s


def _spike_excess(total: np.ndarray, usable: np.ndarray, size: int) -> np.ndarray:
    """How far each pixel lies outside the range of its neighbours, in noise units.

    A dead or hot pixel is lower or higher than *all* of its neighbours; a
    pixel on the edge of a particle lies between them. The noise unit is the
    robust spread of differences between horizontal neighbours (divided by
    sqrt 2, as each difference holds two pixels' noise).
    """
    from scipy.ndimage import maximum_filter, minimum_filter

    filled = np.where(usable, total, np.median(total[usable]))
    ring = np.ones((size, size), dtype=bool)
    ring[size // 2, size // 2] = False
    hi = maximum_filter(filled, footprint=ring, mode="nearest")
    lo = minimum_filter(filled, footprint=ring, mode="nearest")
    excess = np.maximum(np.maximum(filled - hi, lo - filled), 0.0)
    pairs = usable[:, 1:] & usable[:, :-1]
    diffs = np.diff(filled, axis=1)[pairs]
    noise = _mad_scale(diffs) / np.sqrt(2) if diffs.size > 2 else 0.0
    if noise == 0:
        return np.where(excess > 0, np.inf, 0.0)
    return excess / noise


def dead_pixel_mask(
    stack, *, threshold: float = 6.0, size: int | None = 3
) -> xr.DataArray:
    """Flag dead, hot, constant and outlier pixels.

    Parameters
    ----------
    stack : xarray.DataArray, dims (y, x, energy)
    threshold : float, default 6.0
        Robust z-score beyond which a pixel is flagged.
    size : int or None, default 3
        Odd neighbourhood size. A pixel is flagged when its total intensity
        (sum over energy) lies above the maximum or below the minimum of its
        ``size x size`` neighbours by more than ``threshold`` noise units
        (the robust spread of neighbour differences), so that real structure
        such as particle edges is never flagged, only isolated spikes. None
        uses instead the robust z-score ``|t - median(t)| / (1.4826 MAD)`` of
        the total intensity against the whole image, which also flags large
        regions that differ from the rest.

    Returns
    -------
    xarray.DataArray of bool, dims (y, x), name "mask"
        True for pixels that are non-finite, constant (including all-zero,
        i.e. dead) or outliers (hot or cold). attrs ``reasons_json`` counts
        each kind. Pass it to :func:`apply_mask`.
    """
    if not threshold > 0:
        raise ValueError(f"threshold must be positive; got {threshold!r}.")
    if size is not None and (
        not isinstance(size, (int, np.integer)) or size < 3 or size % 2 == 0
    ):
        raise ValueError(f"size must be an odd integer >= 3 or None; got {size!r}.")
    da = validate_stack(stack, nonfinite="ignore")
    total = np.asarray(da.sum("energy", skipna=False).values, dtype=np.float64)
    spread = np.asarray((da.max("energy") - da.min("energy")).values)
    nonfinite = ~np.isfinite(total)
    constant = ~nonfinite & (spread == 0)
    usable = ~(nonfinite | constant)
    outlier = np.zeros_like(usable)
    if usable.sum() >= 3:
        if size:
            z = _spike_excess(total, usable, int(size))
        else:
            r = total - np.median(total[usable])
            scale = _mad_scale(r[usable])
            z = np.abs(r) / scale if scale > 0 else np.where(r != 0, np.inf, 0.0)
        outlier = usable & (z > threshold)
    bad = nonfinite | constant | outlier
    reasons = {
        "nonfinite": int(nonfinite.sum()),
        "constant": int(constant.sum()),
        "outlier": int(outlier.sum()),
    }
    return xr.DataArray(
        bad,
        dims=("y", "x"),
        coords={"y": da["y"].values, "x": da["x"].values},
        name="mask",
        attrs={
            "threshold": float(threshold),
            "size": int(size) if size else "none",
            "reasons_json": to_json(reasons),
        },
    )
