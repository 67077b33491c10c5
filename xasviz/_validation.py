"""Validation of stacks and spectra at the boundary of every public function.

A *stack* is an :class:`xarray.DataArray` with dims ``("y", "x", "energy")``
(any order on input), an ``energy`` coordinate in eV that is strictly
increasing, and a float32 or float64 dtype, numpy or dask backed. A *spectrum*
is a DataArray with the single dim ``energy``.

Masked pixels are NaN in every energy and flagged ``True`` in the optional
boolean coordinate ``mask`` (dims ``y, x``). ``True`` means *excluded*, as in
:mod:`numpy.ma`.
"""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

from ._errors import DataQualityWarning, StackValidationError
from ._utils import warn

__all__ = ["validate_stack", "validate_spectrum", "check_energy_axis", "DIMS"]

logger = logging.getLogger(__name__)

#: Canonical dimension order of a stack.
DIMS = ("y", "x", "energy")


def check_energy_axis(energy, *, what: str = "energy axis") -> np.ndarray:
    """Check that an energy axis is 1-D, finite, numeric and strictly increasing.

    Parameters
    ----------
    energy : array-like, shape (n_energy,)
    what : str
        How to name the axis in error messages.

    Returns
    -------
    numpy.ndarray of float64, shape (n_energy,)

    Raises
    ------
    StackValidationError
        Naming the first offending position when the axis is decreasing,
        repeats a value, or is not finite.
    """
    e = np.asarray(energy)
    if e.ndim != 1:
        raise StackValidationError(
            f"The {what} must be one-dimensional; got shape {e.shape}."
        )
    if not np.issubdtype(e.dtype, np.number) or np.iscomplexobj(e):
        raise StackValidationError(
            f"The {what} must be real numbers in eV; got dtype {e.dtype}."
        )
    e = e.astype(np.float64)
    if e.size < 2:
        raise StackValidationError(
            f"The {what} needs at least 2 energies; got {e.size}."
        )
    if not np.all(np.isfinite(e)):
        bad = int(np.flatnonzero(~np.isfinite(e))[0])
        raise StackValidationError(
            f"The {what} holds a non-finite value at index {bad} ({e[bad]:g}). "
            "Drop or repair that frame before loading."
        )
    step = np.diff(e)
    if np.any(step == 0):
        i = int(np.flatnonzero(step == 0)[0])
        raise StackValidationError(
            f"The {what} repeats the value {e[i]:g} eV at indices {i} and {i + 1}. "
            "Each frame needs its own energy: remove the duplicated frame, e.g. "
            "stack.drop_duplicates('energy')."
        )
    if np.any(step < 0):
        i = int(np.flatnonzero(step < 0)[0])
        hint = (
            "It runs downwards: use stack.sortby('energy')."
            if np.all(step < 0)
            else "Sort the frames by energy (stack.sortby('energy')) and check "
            "the energy list matches the frames."
        )
        raise StackValidationError(
            f"The {what} must be strictly increasing; it goes from {e[i]:g} to "
            f"{e[i + 1]:g} eV at index {i}. {hint}"
        )
    return e


def _check_dtype(da: xr.DataArray, name: str) -> xr.DataArray:
    if da.dtype in (np.float32, np.float64):
        return da
    if np.issubdtype(da.dtype, np.integer) or da.dtype == bool:
        logger.info("%s has dtype %s; converted to float64", name, da.dtype)
        return da.astype(np.float64)
    if np.issubdtype(da.dtype, np.floating):
        logger.info("%s has dtype %s; converted to float64", name, da.dtype)
        return da.astype(np.float64)
    raise StackValidationError(
        f"{name} must hold real numbers (float32 or float64); got dtype "
        f"{da.dtype}. Convert it first, e.g. {name}.astype('float64')."
    )


def validate_stack(
    stack,
    *,
    name: str = "stack",
    nonfinite: str = "mask",
    min_pixels: int = 1,
) -> xr.DataArray:
    """Check a stack and return it in canonical form.

    Parameters
    ----------
    stack : xarray.DataArray, dims {"y", "x", "energy"} in any order
    name : str
        Name used in messages.
    nonfinite : {"mask", "raise", "ignore"}
        What to do with pixels holding NaN or inf at some energy. ``"mask"``
        (default) sets the whole pixel to NaN, flags it in the ``mask``
        coordinate and emits a :class:`DataQualityWarning` with the count;
        ``"raise"`` refuses the stack; ``"ignore"`` leaves it to the caller.
        Pixels already flagged in ``mask`` are never counted again.
    min_pixels : int
        Fewest valid pixels accepted.

    Returns
    -------
    xarray.DataArray, dims ("y", "x", "energy")
        A new object (the input is never modified), float32 or float64, with
        ``y`` and ``x`` coordinates (pixel indices when absent) and a
        ``mask`` coordinate (y, x) when any pixel is masked.

    Raises
    ------
    StackValidationError
        What was expected, what arrived and how to fix it.
    """
    if not isinstance(stack, xr.DataArray):
        got = type(stack).__name__
        shape = getattr(stack, "shape", None)
        raise StackValidationError(
            f"{name} must be an xarray.DataArray with dims ('y', 'x', 'energy'); "
            f"got {got}" + (f" of shape {shape}" if shape is not None else "") + ". "
            "Wrap a numpy array with xasviz.as_stack(array, energy=...) or load a "
            "file with xasviz.open_stack(path)."
        )
    dims = tuple(stack.dims)
    if set(dims) != set(DIMS) or len(dims) != 3:
        extra = sorted(set(dims) - set(DIMS))
        missing = [d for d in DIMS if d not in dims]
        raise StackValidationError(
            f"{name} must have exactly the dims ('y', 'x', 'energy'); it has "
            f"{dims}. Missing: {missing}; unexpected: {extra}. Rename them, e.g. "
            f"{name}.rename({{'dim_0': 'y', 'dim_1': 'x', 'dim_2': 'energy'}})."
        )
    if "energy" not in stack.coords:
        raise StackValidationError(
            f"{name} has no 'energy' coordinate; xasviz needs the energy of every "
            f"frame in eV. Add it with {name}.assign_coords(energy=energies_eV)."
        )
    check_energy_axis(stack["energy"].values, what=f"energy axis of {name}")
    out = stack.transpose(*DIMS)
    out = _check_dtype(out, name)
    ny, nx, ne = out.shape
    if ny * nx < min_pixels:
        raise StackValidationError(
            f"{name} has {ny * nx} pixels; this step needs at least {min_pixels}."
        )
    coords = {}
    for d, n in (("y", ny), ("x", nx)):
        if d not in out.coords:
            coords[d] = np.arange(n)
    if coords:
        out = out.assign_coords(coords)
    else:
        out = out.copy(deep=False)
    if "mask" in out.coords:
        m = out["mask"]
        if set(m.dims) != {"y", "x"} or m.dtype != bool:
            raise StackValidationError(
                f"The 'mask' coordinate of {name} must be boolean with dims "
                f"('y', 'x'); got dims {m.dims} and dtype {m.dtype}."
            )
    if nonfinite not in ("mask", "raise", "ignore"):
        raise ValueError(
            f"nonfinite must be 'mask', 'raise' or 'ignore'; got {nonfinite!r}."
        )
    if nonfinite != "ignore":
        out = _mask_nonfinite(out, name, nonfinite)
    return out


def _mask_nonfinite(out: xr.DataArray, name: str, policy: str) -> xr.DataArray:
    bad = (~np.isfinite(out)).any("energy")
    already = out["mask"] if "mask" in out.coords else xr.zeros_like(bad)
    new = bad & ~already
    n_new = int(new.sum())
    if n_new == 0:
        return out
    if policy == "raise":
        raise StackValidationError(
            f"{name} has {n_new} pixels holding NaN or inf. Mask them with "
            "xasviz.validate_stack(stack, nonfinite='mask') or repair them."
        )
    # NaN the whole spectrum: a partly valid pixel would bias every per-pixel
    # fit downstream, and factorizations skip masked pixels as a block.
    mask = (already | bad).values
    out = out.where(~(already | bad)).assign_coords(mask=(("y", "x"), mask))
    n_tot = mask.size
    warn(
        f"{n_new} of {n_tot} pixels of {name} hold NaN or inf; they were masked "
        "(set to NaN at every energy and flagged in the 'mask' coordinate).",
        DataQualityWarning,
    )
    return out


def validate_spectrum(spectrum, *, name: str = "spectrum") -> xr.DataArray:
    """Check a 1-D spectrum (dim ``energy``) and return it as float64.

    Raises
    ------
    StackValidationError
        When it is not a DataArray with the single dim ``energy``, lacks the
        energy coordinate, has a bad axis, or holds NaN/inf.
    """
    if not isinstance(spectrum, xr.DataArray):
        raise StackValidationError(
            f"{name} must be an xarray.DataArray with dim 'energy'; got "
            f"{type(spectrum).__name__}. Build one with "
            "xarray.DataArray(values, dims='energy', coords={'energy': eV}) or "
            "read a file with xasviz.open_spectrum(path)."
        )
    if spectrum.dims != ("energy",):
        raise StackValidationError(
            f"{name} must have the single dim 'energy'; got dims {spectrum.dims}."
        )
    if "energy" not in spectrum.coords:
        raise StackValidationError(
            f"{name} has no 'energy' coordinate; add it with "
            f"{name}.assign_coords(energy=energies_eV)."
        )
    check_energy_axis(spectrum["energy"].values, what=f"energy axis of {name}")
    out = _check_dtype(spectrum, name)
    if not np.all(np.isfinite(out.values)):
        n = int((~np.isfinite(out.values)).sum())
        raise StackValidationError(
            f"{name} holds {n} NaN or inf values; remove or interpolate them first."
        )
    return out.copy()


def valid_pixels(stack: xr.DataArray) -> np.ndarray:
    """Boolean (y, x) array: True where the pixel is usable (not masked, finite)."""
    ok = np.isfinite(stack.values).all(axis=-1)
    if "mask" in stack.coords:
        ok &= ~stack["mask"].values
    return ok
