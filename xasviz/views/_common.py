"""Shared pieces of the views: offline resources, result lookup, plot helpers.

Everything here only reshapes numbers that an analysis function already
computed; no fitting or factorization happens in a view.
"""

from __future__ import annotations

import logging

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the Bokeh backend)
import numpy as np
import panel as pn
import xarray as xr

from .._errors import StackValidationError
from .._style import ENERGY_LABEL, PALETTE

__all__ = [
    "extension",
    "get_group",
    "nearest_index",
    "map_image",
    "spectrum_curve",
    "endpoint_normalize",
    "ENERGY_LABEL",
    "adopt_coord_attrs",
    "PALETTE",
]

logger = logging.getLogger(__name__)


_EXTENSION_LOADED = False


def extension() -> None:
    """Load Panel and HoloViews with their JavaScript bundled into the page.

    A plain ``pn.extension()`` fetches BokehJS and Panel's JavaScript from a
    CDN, so on a beamline computer without internet every output cell stays
    blank. This loads them inline instead; calling it twice is harmless.
    """
    global _EXTENSION_LOADED
    if _EXTENSION_LOADED:
        return
    pn.extension(inline=True)
    hv.renderer("bokeh")
    _EXTENSION_LOADED = True


def get_group(results, name: str) -> xr.Dataset | None:
    """The Dataset of group ``name`` in a results DataTree (or dict), or None.

    Parameters
    ----------
    results : xarray.DataTree or mapping of str to Dataset
    name : str
        Group name without the leading slash, e.g. ``"onmf"``.
    """
    if results is None:
        return None
    if isinstance(results, xr.DataTree):
        if name not in results.children:
            return None
        ds = results[name].to_dataset()
        return ds if (ds.data_vars or ds.attrs) else None
    if isinstance(results, dict):
        return results.get(name)
    return None


def nearest_index(coord: np.ndarray, value: float) -> int:
    """Index of the coordinate value nearest to ``value`` (clipped to the grid).

    HoloViews centres each image pixel on its coordinate, so the nearest
    coordinate is the pixel under the pointer.
    """
    coord = np.asarray(coord, dtype=float)
    return int(np.nanargmin(np.abs(coord - float(value))))


def _units(da: xr.DataArray, dim: str) -> str:
    units = da[dim].attrs.get("units") if dim in da.coords else None
    if not units:
        return "pixel"
    return "µm" if units in ("um", "micron", "microns") else str(units)


def map_image(
    da: xr.DataArray,
    *,
    title: str = "",
    clabel: str = "",
    cmap: str = "viridis",
    width: int = 300,
    name: str | None = None,
    tools: tuple[str, ...] = ("hover", "tap"),
    symmetric: bool = False,
    clim: tuple[float, float] | None = None,
    colorbar_opts: dict | None = None,
    robust: bool = False,
) -> hv.Image:
    """A 2-D map (dims y, x) as an equal-aspect HoloViews image with a colour bar.

    With pixel-index coordinates the y axis points down, so the picture looks
    as it does in the detector frame (row 0 at the top); with physical
    coordinates (a ``units`` attr on ``y``) y increases upwards.
    """
    da = da.transpose("y", "x")
    vname = clabel or (da.name or "value")
    img = hv.Image(
        (da["x"].values, da["y"].values, np.asarray(da.values, dtype=float)),
        kdims=[
            hv.Dimension("x", label=f"x ({_units(da, 'x')})"),
            hv.Dimension("y", label=f"y ({_units(da, 'y')})"),
        ],
        vdims=[hv.Dimension("value", label=vname)],
    )
    opts = dict(
        title=title,
        cmap=cmap,
        colorbar=True,
        clabel=vname,
        data_aspect=1,
        frame_width=width,
        # Pixel indices: row 0 at the top, as the detector frame is shown.
        # Physical coordinates (stage positions): y increases upwards.
        invert_yaxis=_units(da, "y") == "pixel",
        tools=list(tools),
        toolbar="above",
        fontscale=1.1,
        active_tools=["wheel_zoom"],
    )
    if clim is None:
        # An explicit colour range per map: HoloViews would otherwise share
        # one range across every map of a layout with the same value name.
        finite = np.asarray(da.values, dtype=float)
        finite = finite[np.isfinite(finite)]
        # Robust limits (1st-99th percentile) keep a few outliers, e.g. failed
        # peak fits, from washing out the colour scale.
        q = (1.0, 99.0) if robust else (0.0, 100.0)
        lo, hi = (
            (float(np.percentile(finite, q[0])), float(np.percentile(finite, q[1])))
            if finite.size
            else (0.0, 1.0)
        )
        if symmetric:
            lo, hi = -max(abs(lo), abs(hi)), max(abs(lo), abs(hi))
        clim = (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)
    opts["clim"] = clim
    if colorbar_opts:
        opts["colorbar_opts"] = colorbar_opts
    if name:
        opts["backend_opts"] = {"plot.name": name}
    return img.opts(**opts)


def spectrum_curve(
    energy: np.ndarray,
    values: np.ndarray,
    *,
    label: str,
    vdim: str = "mu",
    vlabel: str = "Normalised absorbance",
    **opts,
) -> hv.Curve:
    """One spectrum as a HoloViews curve with the energy axis in eV."""
    curve = hv.Curve(
        (np.asarray(energy, dtype=float), np.asarray(values, dtype=float)),
        kdims=[hv.Dimension("energy", label=ENERGY_LABEL)],
        vdims=[hv.Dimension(vdim, label=vlabel)],
        label=label,
    )
    return curve.opts(tools=["hover"], **opts) if opts else curve.opts(tools=["hover"])


def endpoint_normalize(spectrum: np.ndarray) -> np.ndarray:
    """Scale one spectrum to 0 at the first and 1 at the last energy (paper 2.1).

    Used only to *display* a clicked pixel beside its raw spectrum; returns
    NaN everywhere when the spectrum has no edge step.
    """
    s = np.asarray(spectrum, dtype=float)
    step = s[-1] - s[0]
    if not np.isfinite(step) or step == 0:
        return np.full_like(s, np.nan)
    return (s - s[0]) / step


def adopt_coord_attrs(ds, ref):
    """``ds`` with the attrs (units) of ``ref``'s x and y coordinates.

    Results saved without coordinate attrs still get the stack's units
    (e.g. µm), and so the same axis labels and orientation, on their maps.
    """
    if ds is None or ref is None:
        return ds
    attrs = {
        d: ref[d].attrs
        for d in ("x", "y")
        if d in ref.coords and d in ds.coords and ref[d].attrs.get("units")
    }
    if not attrs:
        return ds
    return ds.assign_coords({d: ds[d].assign_attrs(a) for d, a in attrs.items()})


def require_vars(ds: xr.Dataset, names, what: str) -> None:
    """Raise a clear error when a result Dataset lacks a variable a view needs."""
    if not isinstance(ds, xr.Dataset):
        raise StackValidationError(
            f"{what} must be an xarray.Dataset as returned by xasviz; got "
            f"{type(ds).__name__}."
        )
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise StackValidationError(
            f"{what} lacks the variables {missing}; it has "
            f"{sorted(map(str, ds.data_vars))}. Pass the Dataset returned by the "
            "matching xasviz function (see docs/results.md)."
        )
