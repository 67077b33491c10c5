"""The ``.xas`` accessor: xasviz's steps as chainable DataArray methods.

``stack.xas.normalize().xas.subtract_reference(ref)`` is the same as calling the
functions of :mod:`xasviz` one after the other. The accessor holds no state of
its own: xarray builds a new one for every new DataArray, so anything stored on
it would vanish after the next ``isel`` or arithmetic.
"""

from __future__ import annotations

import xarray as xr

__all__ = ["XasAccessor"]


@xr.register_dataarray_accessor("xas")
class XasAccessor:
    """xasviz steps on a stack (dims y, x, energy) or a spectrum (dim energy)."""

    def __init__(self, obj: xr.DataArray):
        # Validation happens inside each method, not here: an accessor that
        # raised on construction would break tab completion on any DataArray.
        self._obj = obj

    def validate(self, **kwargs) -> xr.DataArray:
        """:func:`xasviz.validate_stack` on this stack."""
        from ._validation import validate_stack

        return validate_stack(self._obj, **kwargs)

    def normalize(self, method: str = "endpoints", **kwargs) -> xr.DataArray:
        """:func:`xasviz.normalize`."""
        from .preprocess import normalize

        return normalize(self._obj, method=method, **kwargs)

    def subtract_reference(self, reference, **kwargs) -> xr.DataArray:
        """:func:`xasviz.subtract_reference` (eq. 1)."""
        from .preprocess import subtract_reference

        return subtract_reference(self._obj, reference, **kwargs)

    def to_optical_density(self, i0, **kwargs) -> xr.DataArray:
        """:func:`xasviz.to_optical_density`."""
        from .preprocess import to_optical_density

        return to_optical_density(self._obj, i0, **kwargs)

    def crop(self, **kwargs) -> xr.DataArray:
        """:func:`xasviz.crop`."""
        from .preprocess import crop

        return crop(self._obj, **kwargs)

    def bin(self, **kwargs) -> xr.DataArray:
        """:func:`xasviz.bin_stack`."""
        from .preprocess import bin_stack

        return bin_stack(self._obj, **kwargs)

    def onmf(self, rank: int, **kwargs) -> xr.Dataset:
        """:func:`xasviz.onmf` on this difference stack."""
        from .factorize import onmf

        return onmf(self._obj, rank, **kwargs)

    def bcv(self, ranks, **kwargs) -> xr.Dataset:
        """:func:`xasviz.bcv` on this difference stack."""
        from .factorize import bcv

        return bcv(self._obj, ranks, **kwargs)

    def kmeans(self, k: int, **kwargs) -> xr.Dataset:
        """:func:`xasviz.kmeans`."""
        from .compare import kmeans

        return kmeans(self._obj, k, **kwargs)

    def peak_top_energy(self, **kwargs) -> xr.Dataset:
        """:func:`xasviz.peak_top_energy`."""
        from .compare import peak_top_energy

        return peak_top_energy(self._obj, **kwargs)

    def decompose(self, **kwargs) -> xr.Dataset:
        """:func:`xasviz.bayes.decompose` on a spectrum (dim energy)."""
        from .bayes import decompose

        return decompose(self._obj, **kwargs)
