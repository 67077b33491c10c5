"""Domain explorer: ONMF domain maps and their spectra, linked by clicks."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import panel as pn
import param
import xarray as xr
from panel.viewable import Viewer

from .._errors import StackValidationError
from .._validation import validate_spectrum
from ._common import (
    PALETTE,
    adopt_coord_attrs,
    get_group,
    map_image,
    nearest_index,
    require_vars,
    spectrum_curve,
)

__all__ = ["DomainExplorer", "domain_gallery", "reconstruct_pixel"]


def reconstruct_pixel(
    domains: np.ndarray, spectra: np.ndarray, iy: int, ix: int, reference=None
) -> np.ndarray:
    """Model spectrum of one pixel, ``w_p H^T`` (eq. 2) plus the reference.

    Parameters
    ----------
    domains : ndarray, shape (r, ny, nx)
        W as maps (``domains`` of an ONMF result).
    spectra : ndarray, shape (r, n_energy)
        H^T (``spectra`` of an ONMF result).
    iy, ix : int
        Pixel indices.
    reference : ndarray, shape (n_energy,), optional
        The reference ``b`` of eq. 1; added back to give absorbance.

    Returns
    -------
    ndarray, shape (n_energy,)
        NaN everywhere for a masked pixel.
    """
    w = domains[:, iy, ix]
    model = w @ spectra
    return model + reference if reference is not None else model


def _frame(da: xr.DataArray, color: str, show: bool) -> hv.Rectangles:
    """An outline around a whole map, drawn when its domain is selected."""
    xs, ys = da["x"].values, da["y"].values
    dx = (xs[-1] - xs[0]) / max(len(xs) - 1, 1) / 2 if len(xs) > 1 else 0.5
    dy = (ys[-1] - ys[0]) / max(len(ys) - 1, 1) / 2 if len(ys) > 1 else 0.5
    box = [(xs[0] - dx, ys[0] - dy, xs[-1] + dx, ys[-1] + dy)] if show else []
    return hv.Rectangles(box, kdims=["x", "y", "x1", "y1"]).opts(
        fill_alpha=0, line_color=color, line_width=5
    )


def domain_gallery(onmf: xr.Dataset, *, width: int = 230) -> list[hv.Image]:
    """One equal-aspect map per domain, on a shared colour scale (static)."""
    require_vars(onmf, ["domains"], "onmf result")
    # One colour scale for all maps, robust to a few very large weights.
    w = onmf["domains"].values
    vmax = float(np.nanpercentile(w, 99.5)) if np.isfinite(w).any() else 1.0
    vmax = vmax if vmax > 0 else 1.0
    maps = []
    for k in onmf["component"].values:
        maps.append(
            map_image(
                onmf["domains"].sel(component=k),
                title=f"Domain {k}",
                clabel="weight w",
                cmap="viridis",
                width=width,
                clim=(0.0, vmax),
                name=f"domain_map_{k}",
            )
        )
    return maps


class DomainExplorer(Viewer):
    """Every domain map beside its spectrum; click a pixel to see its model.

    Parameters
    ----------
    onmf : xarray.Dataset
        Result of :func:`xasviz.onmf`: ``domains`` (component, y, x), ``spectra``
        (component, energy) and, when present, ``absorption``.
    stack : xarray.DataArray, dims (y, x, energy), optional
        The normalised stack X0 the factorization came from. Needed to show a
        pixel's measured spectrum beside its reconstruction.
    reference : xarray.DataArray, dim energy, optional
        The reference ``b`` subtracted before the factorization (eq. 1). With
        it, reconstructions are shown as absorbance ``w_p H^T + b``; without
        it, ``stack`` is taken to be the difference stack itself.

    Notes
    -----
    Selecting a domain (the buttons, or a click on its map) outlines its map
    and draws its spectrum thick; every other spectrum stays thin. A click on
    any map selects that pixel everywhere: its measured spectrum, its
    reconstruction ``w_p H^T (+ b)`` and its weight on each domain.
    """

    component = param.Selector(default=None, objects=[], doc="Highlighted domain")
    kind = param.Selector(
        default="absorption",
        objects=["absorption", "difference"],
        doc="Spectra as absorbance (X0) or as difference from the reference (X)",
    )
    x = param.Integer(default=0, bounds=(0, None), doc="Column index of the pixel")
    y = param.Integer(default=0, bounds=(0, None), doc="Row index of the pixel")

    def __init__(self, onmf, stack=None, reference=None, **params):
        require_vars(onmf, ["domains", "spectra"], "onmf result")
        self._onmf = onmf
        self._w = np.asarray(onmf["domains"].transpose("component", "y", "x").values)
        self._h = np.asarray(onmf["spectra"].transpose("component", "energy").values)
        self._energy = onmf["energy"].values
        self._ref = None
        if reference is not None:
            self._ref = validate_spectrum(reference, name="reference").values
            if self._ref.shape != self._energy.shape:
                raise StackValidationError(
                    f"reference has {self._ref.size} energies but the onmf spectra "
                    f"have {self._energy.size}; pass the reference on the stack's "
                    "energy grid."
                )
        self._stack = None
        if stack is not None:
            stack = stack.transpose("y", "x", "energy")
            if stack.shape != (*self._w.shape[1:], self._h.shape[1]):
                raise StackValidationError(
                    f"stack has shape {stack.shape} but the onmf result describes "
                    f"{(*self._w.shape[1:], self._h.shape[1])} (y, x, energy); pass "
                    "the stack the factorization was computed from."
                )
            self._stack = np.asarray(stack.values)
            self._onmf = onmf = adopt_coord_attrs(onmf, stack)
        comps = [int(c) for c in onmf["component"].values]
        self.param.component.objects = comps
        params.setdefault("component", comps[0])
        self.param.x.bounds = (0, self._w.shape[2] - 1)
        self.param.y.bounds = (0, self._w.shape[1] - 1)
        params.setdefault("x", self._w.shape[2] // 2)
        params.setdefault("y", self._w.shape[1] // 2)
        if "absorption" not in onmf and self._ref is None:
            params.setdefault("kind", "difference")
        super().__init__(**params)
        self.taps: dict[int, hv.streams.Tap] = {}
        #: The live plots by name (``spectra``, ``pixel``, ``weights``).
        self.plots: dict[str, hv.DynamicMap] = {}
        self._layout = None

    @classmethod
    def from_results(cls, results, **params) -> DomainExplorer:
        """Build from a results DataTree of :func:`xasviz.analyze`."""
        onmf = get_group(results, "onmf")
        if onmf is None:
            raise StackValidationError(
                "the results hold no /onmf group; run xasviz.analyze (or "
                "xasviz.onmf) first."
            )
        inp = get_group(results, "input")
        stack = inp["stack"] if inp is not None and "stack" in inp else None
        ref = inp["reference"] if inp is not None and "reference" in inp else None
        return cls(onmf, stack=stack, reference=ref, **params)

    # -- what is shown (plain numbers, also used by the tests) ---------------

    def pixel_spectra(self) -> dict[str, np.ndarray]:
        """Measured and modelled spectrum of the selected pixel, in ``kind``.

        Returns
        -------
        dict with ``"model"`` and, when a stack was given, ``"data"``; each an
        ndarray of shape (n_energy,).
        """
        diff = self.kind == "difference"
        ref = None if diff else self._ref
        out = {"model": reconstruct_pixel(self._w, self._h, self.y, self.x, ref)}
        if self._stack is not None:
            data = self._stack[self.y, self.x].astype(float)
            if diff and self._ref is not None:
                data = data - self._ref
            out["data"] = data
        return out

    def pixel_weights(self) -> np.ndarray:
        """Weights ``w_p`` (one per domain) of the selected pixel, shape (r,)."""
        return self._w[:, self.y, self.x].astype(float)

    def _domain_spectra(self) -> xr.DataArray:
        if self.kind == "absorption" and "absorption" in self._onmf:
            return self._onmf["absorption"]
        if self.kind == "absorption" and self._ref is not None:
            return self._onmf["spectra"] + xr.DataArray(self._ref, dims="energy")
        return self._onmf["spectra"]

    # -- plots ---------------------------------------------------------------

    def _on_tap(self, k, x=None, y=None):
        if x is None or y is None:
            return
        da = self._onmf["domains"]
        self.param.update(
            component=k,
            x=nearest_index(da["x"].values, x),
            y=nearest_index(da["y"].values, y),
        )

    def _marker(self, x, y):
        da = self._onmf["domains"]
        pt = (da["x"].values[x], da["y"].values[y])
        return hv.Points([pt]).opts(
            marker="square", size=12, fill_alpha=0, line_color="red", line_width=2
        )

    def _spectra_plot(self, component, kind):
        spectra = self._domain_spectra()
        curves = []
        for i, k in enumerate(spectra["component"].values):
            sel = int(k) == component
            curves.append(
                spectrum_curve(
                    self._energy,
                    spectra.sel(component=k).values,
                    label=f"Domain {k}",
                    vlabel=_value_label(kind),
                    color=PALETTE[i % len(PALETTE)],
                    line_width=4 if sel else 1.5,
                    alpha=1.0 if sel else 0.45,
                )
            )
        return hv.Overlay(curves).opts(
            title=f"Domain {kind} spectra (selected: {component})",
            frame_width=340,
            frame_height=240,
            legend_position="right",
            backend_opts={"plot.name": "domain_spectra"},
        )

    def _pixel_plot(self, x, y, kind):
        spectra = self.pixel_spectra()
        xv = self._onmf["x"].values[x]
        yv = self._onmf["y"].values[y]
        masked = not np.all(np.isfinite(spectra["model"]))
        title = f"Pixel x={xv}, y={yv}" + (" (masked)" if masked else "")
        elems = []
        if "data" in spectra:
            elems.append(
                spectrum_curve(
                    self._energy,
                    spectra["data"],
                    label="measured",
                    vdim="mu",
                    vlabel=_value_label(kind),
                    color="black",
                    line_width=2,
                )
            )
        elems.append(
            spectrum_curve(
                self._energy,
                spectra["model"],
                label="model w·Hᵀ" + (" + b" if kind == "absorption" else ""),
                vdim="mu",
                vlabel=_value_label(kind),
                color="#D55E00",
                line_dash="dashed",
                line_width=2.5,
            )
        )
        return hv.Overlay(elems).opts(
            title=title,
            frame_width=340,
            frame_height=240,
            legend_position="top_left",
            backend_opts={"plot.name": "pixel_spectrum"},
        )

    def _weights_plot(self, x, y, component):
        w = self._w[:, y, x]
        comps = [int(c) for c in self._onmf["component"].values]
        bars = hv.Bars(
            [(str(c), float(v), str(c == component)) for c, v in zip(comps, w)],
            kdims=[hv.Dimension("component", label="Domain")],
            vdims=[hv.Dimension("weight", label="weight w (pixel)"), "selected"],
        )
        return bars.opts(
            color="selected",
            cmap={"True": "#D55E00", "False": "#0072B2"},
            title="Weights w of the pixel",
            frame_width=220,
            frame_height=240,
            tools=["hover"],
            show_legend=False,
            backend_opts={"plot.name": "pixel_weights"},
        )

    def __panel__(self):
        if self._layout is not None:
            return self._layout
        maps = []
        for i, img in enumerate(domain_gallery(self._onmf)):
            k = int(self._onmf["component"].values[i])
            tap = hv.streams.Tap(source=img, x=None, y=None)
            tap.add_subscriber(lambda x, y, k=k: self._on_tap(k, x, y))
            self.taps[k] = tap
            da = self._onmf["domains"].sel(component=k)
            frame = hv.DynamicMap(
                pn.bind(
                    lambda c, da=da, k=k, i=i: _frame(
                        da, PALETTE[i % len(PALETTE)], c == k
                    ),
                    self.param.component,
                )
            )
            marker = hv.DynamicMap(pn.bind(self._marker, self.param.x, self.param.y))
            maps.append((img * frame * marker).opts(title=f"Domain {k}"))
        ncols = min(len(maps), 4)
        gallery = hv.Layout(maps).cols(ncols).opts(shared_axes=True)
        spectra = hv.DynamicMap(
            pn.bind(self._spectra_plot, self.param.component, self.param.kind)
        )
        pixel = hv.DynamicMap(
            pn.bind(self._pixel_plot, self.param.x, self.param.y, self.param.kind)
        )
        weights = hv.DynamicMap(
            pn.bind(
                self._weights_plot, self.param.x, self.param.y, self.param.component
            )
        )
        self.plots.update(spectra=spectra, pixel=pixel, weights=weights)
        widgets = pn.Row(
            pn.widgets.RadioButtonGroup.from_param(self.param.component),
            pn.widgets.RadioButtonGroup.from_param(self.param.kind),
        )
        self._layout = pn.Column(
            pn.pane.Markdown(
                "**Domains.** Click a pixel on any map: its measured spectrum and "
                "its reconstruction from the domains appear below."
            ),
            widgets,
            pn.pane.HoloViews(gallery, linked_axes=False),
            pn.Row(
                # Unlinked: a pixel spectrum needs its own absorbance range.
                pn.pane.HoloViews(spectra, linked_axes=False),
                pn.pane.HoloViews(pixel, linked_axes=False),
                pn.pane.HoloViews(weights, linked_axes=False),
            ),
        )
        return self._layout


def _value_label(kind: str) -> str:
    return (
        "Normalised absorbance"
        if kind == "absorption"
        else "Difference absorbance (X0 − b)"
    )
