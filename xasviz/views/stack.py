"""Stack explorer: an image per energy, pixel spectra and region means."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import panel as pn
import param
import xarray as xr
from panel.viewable import Viewer

from .._errors import StackValidationError
from .._validation import validate_spectrum, validate_stack
from ._common import (
    endpoint_normalize,
    get_group,
    map_image,
    nearest_index,
    spectrum_curve,
)

__all__ = ["StackExplorer"]


class StackExplorer(Viewer):
    """Browse a stack: image at one energy, pixel spectra, region means.

    Parameters
    ----------
    stack : xarray.DataArray, dims (y, x, energy)
        The stack as loaded (or already normalised: set ``normalized=True``).
    reference : xarray.DataArray, dim energy, optional
        Reference spectrum ``b`` of eq. 1; adds the difference spectrum
        (normalised minus reference) of the clicked pixel.
    maps : dict of str to xarray.DataArray (y, x), optional
        Extra maps offered beside the per-energy image, e.g.
        ``{"edge step": ..., "PTE (eV)": ...}``.
    normalized : bool
        True when ``stack`` is already normalised; then no second,
        endpoint-normalised curve is drawn.

    Notes
    -----
    Click a pixel to see its spectrum; draw a box (box-select tool) to see the
    mean spectrum of the pixels inside it. The endpoint normalisation shown
    for a clicked pixel (0 at the first energy, 1 at the last, paper 2.1) is a
    display aid; the analysis uses :func:`xasviz.normalize`.
    """

    energy = param.Selector(default=None, objects=[], doc="Energy of the image (eV)")
    image = param.Selector(default="energy", objects=["energy"], doc="Map shown")
    x = param.Integer(default=0, bounds=(0, None), doc="Column index of the pixel")
    y = param.Integer(default=0, bounds=(0, None), doc="Row index of the pixel")
    region = param.Tuple(
        default=None,
        length=4,
        allow_None=True,
        doc="Box (x0, y0, x1, y1) in coordinates whose mean spectrum is shown",
    )

    def __init__(self, stack, reference=None, maps=None, normalized=False, **params):
        self._stack = validate_stack(stack, nonfinite="ignore")
        self._values = np.asarray(self._stack.values)
        self._energy = self._stack["energy"].values
        self._ref = None
        if reference is not None:
            ref = validate_spectrum(reference, name="reference")
            if ref.sizes["energy"] != self._energy.size:
                raise StackValidationError(
                    f"reference has {ref.sizes['energy']} energies but the stack "
                    f"has {self._energy.size}; interpolate it onto the stack's grid "
                    "with xasviz.subtract_reference or reference.interp(energy=...)."
                )
            self._ref = ref.values
        self._maps: dict[str, xr.DataArray] = {}
        for label, da in (maps or {}).items():
            da = da.transpose("y", "x")
            if da.shape != self._values.shape[:2]:
                raise StackValidationError(
                    f"map {label!r} has shape {da.shape}; the stack's images are "
                    f"{self._values.shape[:2]} (y, x)."
                )
            self._maps[str(label)] = da
        self._normalized = bool(normalized)
        energies = [float(e) for e in self._energy]
        self.param.energy.objects = {f"{e:.2f}": e for e in energies}
        self.param.image.objects = ["energy", *self._maps]
        params.setdefault("energy", energies[len(energies) // 2])
        ny, nx = self._values.shape[:2]
        self.param.x.bounds = (0, nx - 1)
        self.param.y.bounds = (0, ny - 1)
        params.setdefault("x", nx // 2)
        params.setdefault("y", ny // 2)
        super().__init__(**params)
        self.tap = None
        self.box = None
        #: The live plots by name (``map``, ``spectra``).
        self.plots: dict[str, hv.DynamicMap] = {}
        self._layout = None

    @classmethod
    def from_results(cls, results, **params) -> StackExplorer:
        """Explore the normalised stack of a results tree (group ``/input``)."""
        inp = get_group(results, "input")
        if inp is None or "stack" not in inp:
            raise StackValidationError(
                "the results hold no /input/stack; pass the stack itself instead."
            )
        maps = {}
        if "edge_step" in inp:
            maps["edge step"] = inp["edge_step"]
        if "raw_mean" in inp:
            maps["mean (raw)"] = inp["raw_mean"]
        pte = get_group(results, "pte")
        if pte is not None and "pte" in pte:
            maps["PTE (eV)"] = pte["pte"]
        return cls(
            inp["stack"],
            reference=inp.get("reference"),
            maps=maps,
            normalized=True,
            **params,
        )

    # -- what is shown -----------------------------------------------------

    def pixel_spectra(self) -> dict[str, np.ndarray]:
        """Spectra of the selected pixel: ``raw`` (or ``normalised``) and
        ``difference`` when a reference was given; each shape (n_energy,)."""
        s = self._values[self.y, self.x].astype(float)
        out = {}
        if self._normalized:
            out["normalised"] = s
        else:
            out["raw"] = s
            out["normalised"] = endpoint_normalize(s)
        if self._ref is not None:
            out["difference"] = out["normalised"] - self._ref
        return out

    def region_mean(self) -> np.ndarray | None:
        """Mean spectrum over the pixels inside ``region`` (NaN pixels skipped),
        or None when no region is drawn or it holds no pixel."""
        if self.region is None:
            return None
        x0, y0, x1, y1 = self.region
        xs, ys = self._stack["x"].values, self._stack["y"].values
        sx = (xs >= min(x0, x1)) & (xs <= max(x0, x1))
        sy = (ys >= min(y0, y1)) & (ys <= max(y0, y1))
        block = self._values[np.ix_(sy, sx)].reshape(-1, self._energy.size)
        ok = np.isfinite(block).all(axis=1)
        if not ok.any():
            return None
        return block[ok].mean(axis=0)

    def current_map(self) -> xr.DataArray:
        """The 2-D map on display (y, x)."""
        if self.image == "energy":
            i = int(np.argmin(np.abs(self._energy - self.energy)))
            return self._stack.isel(energy=i, drop=True)
        return self._maps[self.image]

    # -- plots ---------------------------------------------------------------

    def _map(self, image, energy):
        da = self.current_map()
        title = f"Stack at {energy:.2f} eV" if image == "energy" else image
        clabel = "absorbance" if image == "energy" else image
        return map_image(
            da,
            title=title,
            clabel=clabel,
            cmap="gray" if image == "energy" else "viridis",
            width=380,
            name="stack_map",
            tools=("hover", "tap", "box_select"),
            robust=True,
        )

    def _on_tap(self, x=None, y=None):
        if x is None or y is None:
            return
        self.param.update(
            x=nearest_index(self._stack["x"].values, x),
            y=nearest_index(self._stack["y"].values, y),
        )

    def _on_box(self, bounds=None):
        self.region = None if bounds is None else tuple(float(b) for b in bounds)

    def _marker(self, x, y):
        pt = (self._stack["x"].values[x], self._stack["y"].values[y])
        return hv.Points([pt]).opts(
            marker="square", size=12, fill_alpha=0, line_color="red", line_width=2
        )

    def _spectra_plot(self, x, y, region):
        curves = []
        colors = {"raw": "black", "normalised": "#0072B2", "difference": "#D55E00"}
        for label, s in self.pixel_spectra().items():
            curves.append(
                spectrum_curve(
                    self._energy,
                    s,
                    label=f"pixel: {label}",
                    vlabel="Absorbance",
                    color=colors[label],
                    line_width=2,
                )
            )
        mean = self.region_mean()
        if mean is not None:
            curves.append(
                spectrum_curve(
                    self._energy,
                    mean,
                    label="box mean",
                    vlabel="Absorbance",
                    color="#009E73",
                    line_dash="dashed",
                    line_width=2.5,
                )
            )
        xv, yv = self._stack["x"].values[x], self._stack["y"].values[y]
        return hv.Overlay(curves).opts(
            title=f"Pixel x={xv}, y={yv}",
            frame_width=420,
            frame_height=300,
            legend_position="top_left",
            backend_opts={"plot.name": "pixel_spectrum"},
        )

    def __panel__(self):
        if self._layout is not None:
            return self._layout
        img = hv.DynamicMap(pn.bind(self._map, self.param.image, self.param.energy))
        self.tap = hv.streams.Tap(source=img, x=None, y=None)
        self.tap.add_subscriber(self._on_tap)
        self.box = hv.streams.BoundsXY(source=img, bounds=None)
        self.box.add_subscriber(self._on_box)
        marker = hv.DynamicMap(pn.bind(self._marker, self.param.x, self.param.y))
        spectra = hv.DynamicMap(
            pn.bind(self._spectra_plot, self.param.x, self.param.y, self.param.region)
        )
        self.plots.update(map=img, spectra=spectra)
        self._layout = pn.Column(
            pn.Row(
                pn.widgets.DiscreteSlider.from_param(
                    self.param.energy, label="Energy (eV)", width=400
                ),
                pn.widgets.Select.from_param(self.param.image, label="Map", width=160),
            ),
            pn.Row(pn.pane.HoloViews(img * marker), pn.pane.HoloViews(spectra)),
        )
        return self._layout
