"""Rank selector: the BCV curve beside the factorization at the chosen rank."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import holoviews as hv
import numpy as np
import panel as pn
import param
import xarray as xr
from panel.viewable import Viewer

from .._errors import StackValidationError
from ._common import (
    PALETTE,
    adopt_coord_attrs,
    get_group,
    require_vars,
    spectrum_curve,
)
from .domains import domain_gallery

__all__ = ["RankSelector", "bcv_plot"]

logger = logging.getLogger(__name__)


def bcv_plot(bcv: xr.Dataset, rank: int | None = None) -> hv.Overlay:
    """BCV mean hold-out error against rank, with standard-error bars.

    The best rank of the result is a star; ``rank`` (the one on display) a
    vertical line.
    """
    ranks = bcv["rank"].values.astype(float)
    mean = bcv["mean_error"].values
    se = bcv["std_error"].values if "std_error" in bcv else np.zeros_like(mean)
    kd = [hv.Dimension("rank", label="Rank (number of domains)")]
    vd = [hv.Dimension("error", label="BCV hold-out error")]
    curve = hv.Curve((ranks, mean), kdims=kd, vdims=vd, label="mean over folds")
    bars = hv.ErrorBars((ranks, mean, se), kdims=kd, vdims=[*vd, "se"])
    pts = hv.Scatter((ranks, mean), kdims=kd, vdims=vd).opts(size=7, tools=["hover"])
    elems = [curve.opts(color="#0072B2", line_width=2), bars, pts]
    if "best_rank" in bcv:
        best = int(bcv["best_rank"])
        rule = bcv.attrs.get("rule", "chosen")
        elems.append(
            hv.Scatter(
                [(best, float(bcv["mean_error"].sel(rank=best)))],
                kdims=kd,
                vdims=vd,
                label=f"best rank ({rule}) = {best}",
            ).opts(marker="star", size=18, color="#D55E00")
        )
    if rank is not None:
        elems.append(hv.VLine(rank).opts(color="gray", line_dash="dashed"))
    return hv.Overlay(elems).opts(
        title="Bi-cross-validation" + (f" (showing rank {rank})" if rank else ""),
        frame_width=420,
        frame_height=280,
        legend_position="top_right",
        tools=["tap"],
        backend_opts={"plot.name": "bcv_curve"},
    )


class RankSelector(Viewer):
    """Choose the number of domains beside the BCV curve.

    Parameters
    ----------
    bcv : xarray.Dataset
        Result of :func:`xasviz.bcv` (``mean_error`` and ``std_error`` by rank).
    factorizations : mapping of int to Dataset, or DataTree, optional
        Precomputed :func:`xasviz.onmf` results by rank. A DataTree is searched
        for children whose ``component`` dim has the rank's length.
    compute : callable, optional
        ``compute(rank) -> Dataset``, called when a rank has no precomputed
        factorization, e.g. ``lambda r: xasviz.onmf(X, r, rng=0)``. Each result
        is cached in :attr:`cache`; a spinner shows while it runs.

    Notes
    -----
    Click the BCV curve or move the slider to change the rank.
    """

    rank = param.Integer(default=1, bounds=(1, None), doc="Rank on display")

    def __init__(
        self,
        bcv,
        factorizations: Mapping[int, xr.Dataset] | xr.DataTree | None = None,
        compute: Callable[[int], xr.Dataset] | None = None,
        **params,
    ):
        require_vars(bcv, ["mean_error"], "bcv result")
        if compute is not None and not callable(compute):
            raise TypeError(
                f"compute must be a callable rank -> Dataset; got {type(compute)}."
            )
        self._bcv = bcv
        self._compute = compute
        self.cache: dict[int, xr.Dataset] = dict(_by_rank(factorizations))
        ranks = bcv["rank"].values.astype(int)
        self.param.rank.bounds = (int(ranks.min()), int(ranks.max()))
        if "best_rank" in bcv:
            params.setdefault("rank", int(bcv["best_rank"]))
        else:
            params.setdefault("rank", int(ranks[np.argmin(bcv["mean_error"].values)]))
        super().__init__(**params)
        self.tap = None
        self._panes = None
        self.plots: dict[str, hv.DynamicMap] = {}
        self._layout = None

    @classmethod
    def from_results(cls, results, compute=None, **params) -> RankSelector:
        """BCV curve and ONMF of a results tree (one precomputed rank)."""
        bcv = get_group(results, "bcv")
        if bcv is None:
            raise StackValidationError("the results hold no /bcv group.")
        onmf = adopt_coord_attrs(
            get_group(results, "onmf"), get_group(results, "input")
        )
        facts = {} if onmf is None else {onmf.sizes["component"]: onmf}
        return cls(bcv, factorizations=facts, compute=compute, **params)

    def factorization(self, rank: int | None = None) -> xr.Dataset | None:
        """The factorization at ``rank`` (default: the one on display), from the
        cache or computed now; None when neither is available."""
        rank = self.rank if rank is None else int(rank)
        if rank not in self.cache and self._compute is not None:
            logger.info("computing the factorization at rank %d", rank)
            self.cache[rank] = self._compute(rank)
        return self.cache.get(rank)

    def _on_tap(self, x=None, y=None):
        if x is None:
            return
        ranks = self._bcv["rank"].values
        self.rank = int(ranks[np.argmin(np.abs(ranks - x))])

    def _factor_plots(self):
        """Gallery of domain maps and the spectra at the current rank, or a
        message saying why there is none."""
        ds = self.factorization()
        if ds is None:
            return None, None
        maps = hv.Layout(domain_gallery(ds, width=220))
        maps = maps.cols(min(ds.sizes["component"], 4))
        var = "absorption" if "absorption" in ds else "spectra"
        curves = [
            spectrum_curve(
                ds["energy"].values,
                ds[var].sel(component=k).values,
                label=f"Domain {k}",
                vlabel="Normalised absorbance" if var == "absorption" else "Difference",
                color=PALETTE[i % len(PALETTE)],
            )
            for i, k in enumerate(ds["component"].values)
        ]
        spectra = hv.Overlay(curves).opts(
            title=f"Domain spectra at rank {self.rank}",
            frame_width=420,
            frame_height=260,
            legend_position="right",
        )
        return maps, spectra

    @param.depends("rank", watch=True)
    def _update(self):
        if self._panes is None:
            return
        maps_pane, spectra_pane, msg, box = self._panes
        box.loading = True
        try:
            maps, spectra = self._factor_plots()
        finally:
            box.loading = False
        msg.object = (
            ""
            if maps is not None
            else f"No factorization at rank {self.rank}. Pass `factorizations=` or "
            "`compute=` to see one."
        )
        maps_pane.object, spectra_pane.object = maps, spectra
        maps_pane.visible = spectra_pane.visible = maps is not None

    def __panel__(self):
        if self._layout is not None:
            return self._layout
        curve = hv.DynamicMap(
            pn.bind(lambda r: bcv_plot(self._bcv, r), self.param.rank)
        )
        self.tap = hv.streams.Tap(source=curve, x=None, y=None)
        self.tap.add_subscriber(self._on_tap)
        self.plots = {"bcv": curve}
        maps_pane = pn.pane.HoloViews(None, linked_axes=False)
        spectra_pane = pn.pane.HoloViews(None, linked_axes=False)
        msg = pn.pane.Markdown("")
        box = pn.Column(msg, maps_pane, spectra_pane)
        self._panes = (maps_pane, spectra_pane, msg, box)
        self._update()
        self._layout = pn.Row(
            pn.Column(
                pn.widgets.IntSlider.from_param(self.param.rank, label="Rank"),
                pn.pane.HoloViews(curve),
            ),
            box,
        )
        return self._layout


def _by_rank(factorizations) -> dict[int, xr.Dataset]:
    if factorizations is None:
        return {}
    if isinstance(factorizations, xr.DataTree):
        out = {}
        for node in factorizations.subtree:
            ds = node.to_dataset()
            if "domains" in ds and "component" in ds.sizes:
                out[int(ds.sizes["component"])] = ds
        return out
    if isinstance(factorizations, Mapping):
        out = {}
        for rank, ds in factorizations.items():
            require_vars(ds, ["domains"], f"factorization at rank {rank}")
            out[int(rank)] = ds
        return out
    raise TypeError(
        "factorizations must be a mapping {rank: onmf Dataset} or a DataTree; got "
        f"{type(factorizations).__name__}."
    )
