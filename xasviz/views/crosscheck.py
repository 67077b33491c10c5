"""Cross-check views: correlation tables as heat maps, and the PTE map."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import panel as pn
import param
import xarray as xr
from bokeh.models import FixedTicker
from panel.viewable import Viewer

from .._errors import StackValidationError
from ._common import adopt_coord_attrs, get_group, map_image, require_vars

__all__ = ["CrossCheckView", "PTEView", "correlation_heatmap", "threshold_classes"]

PTE_CLASSES = ("D1", "D2", "D3")
_CLASS_COLORS = {"D1": "#D55E00", "D2": "#009E73", "D3": "#0072B2"}


def correlation_heatmap(corr: xr.Dataset, *, title: str = "") -> hv.Overlay:
    """A correlation table (dims: first source, second source) as a heat map.

    Each cell shows its value; the pairs matched by the Hungarian algorithm
    (``match``) are outlined.
    """
    require_vars(corr, ["correlation"], "correlation result")
    c = corr["correlation"]
    da, db = c.dims
    la = [str(v) for v in c[da].values]
    lb = [str(v) for v in c[db].values]
    vals = np.asarray(c.values, dtype=float)
    rows = [(lb[j], la[i], vals[i, j]) for i in range(len(la)) for j in range(len(lb))]
    kd = [hv.Dimension(db, label=db), hv.Dimension(da, label=da)]
    vd = [hv.Dimension("correlation", label="cosine similarity", range=(-1, 1))]
    heat = hv.HeatMap(rows, kdims=kd, vdims=vd).opts(
        cmap="RdBu_r",
        clim=(-1.0, 1.0),
        colorbar=True,
        tools=["hover"],
        frame_width=max(200, 45 * len(lb)),
        frame_height=max(160, 38 * len(la)),
        invert_yaxis=True,
        xlabel=f"{db}",
        ylabel=f"{da}",
        title=title or f"Correlation {da} vs {db}",
    )
    labels = hv.Labels(
        [(b, a, f"{v:.2f}") for b, a, v in rows], kdims=kd, vdims=["text"]
    ).opts(text_font_size="9pt", text_color="black")
    elems = [heat, labels]
    if "match" in corr:
        m = corr["match"].values.astype(int)
        pairs = [(lb[m[i]], la[i]) for i in range(len(la)) if 0 <= m[i] < len(lb)]
        elems.append(
            hv.Points(pairs, kdims=kd, label="matched pair").opts(
                marker="square", size=34, fill_alpha=0, line_color="black", line_width=3
            )
        )
    return hv.Overlay(elems).opts(
        backend_opts={"plot.name": f"correlation_{da}_{db}"}, show_legend=False
    )


class CrossCheckView(Viewer):
    """A correlation table beside the maps of a chosen matched pair.

    Parameters
    ----------
    correlation : xarray.Dataset
        Result of :func:`xasviz.correlate` (``correlation``, ``match``).
    a, b : xarray.Dataset, optional
        The two results compared (e.g. ONMF and k-means), each with
        ``domains`` (component, y, x); their maps are shown side by side.
    """

    pair = param.Selector(default=None, objects=[], doc="Component of the first source")

    def __init__(self, correlation, a=None, b=None, **params):
        require_vars(correlation, ["correlation"], "correlation result")
        self._corr = correlation
        ref = a if a is not None else b
        self._a, self._b = a, adopt_coord_attrs(b, ref)
        da = correlation["correlation"].dims[0]
        self._names = correlation["correlation"].dims
        self.param.pair.objects = [int(v) for v in correlation[da].values]
        params.setdefault("pair", self.param.pair.objects[0])
        super().__init__(**params)
        self._layout = None

    @classmethod
    def from_results(cls, results, **params) -> CrossCheckView:
        corr = get_group(results, "correlation_kmeans")
        if corr is None:
            raise StackValidationError("the results hold no /correlation_kmeans group.")
        inp = get_group(results, "input")
        return cls(
            corr,
            a=adopt_coord_attrs(get_group(results, "onmf"), inp),
            b=get_group(results, "kmeans"),
            **params,
        )

    def matched(self) -> int | None:
        """Component of the second source matched to ``pair`` (None if unmatched)."""
        if "match" not in self._corr:
            return None
        idx = int(self._corr["match"].sel({self._names[0]: self.pair}))
        labels = self._corr[self._names[1]].values
        return int(labels[idx]) if 0 <= idx < len(labels) else None

    def matched_correlation(self) -> float:
        """Cosine between ``pair`` and its matched map (NaN when unmatched)."""
        sel = {self._names[0]: self.pair}
        if "matched_correlation" in self._corr:
            return float(self._corr["matched_correlation"].sel(sel))
        if "match" not in self._corr:
            return float("nan")
        idx = int(self._corr["match"].sel(sel))
        row = self._corr["correlation"].sel(sel).values
        return float(row[idx]) if 0 <= idx < row.size else float("nan")

    @param.depends("pair")
    def _pair_maps(self):
        if self._a is None or self._b is None:
            return pn.pane.Markdown("Pass both results to see the matched maps.")
        k2 = self.matched()
        r = self.matched_correlation()
        left = map_image(
            self._a["domains"].sel(component=self.pair),
            title=f"{self._names[0]} {self.pair}",
            clabel="weight",
            width=260,
        )
        if k2 is None:
            return pn.pane.HoloViews(left)
        right = map_image(
            self._b["domains"].sel(component=k2),
            title=f"{self._names[1]} {k2} (r = {r:.2f})",
            clabel="weight",
            width=260,
        )
        return pn.pane.HoloViews((left + right).opts(shared_axes=True))

    def __panel__(self):
        if self._layout is None:
            self._layout = pn.Row(
                pn.pane.HoloViews(correlation_heatmap(self._corr)),
                pn.Column(
                    pn.widgets.Select.from_param(
                        self.param.pair, label=f"{self._names[0]} component"
                    ),
                    self._pair_maps,
                ),
            )
        return self._layout


def threshold_classes(pte: np.ndarray, e1: float, e2: float) -> np.ndarray:
    """Split a PTE map into D1-D3 by two thresholds (paper 2.6).

    D1 holds the highest peak-top energies (above the upper threshold), D3 the
    lowest (at or below the lower one), D2 the rest, as in
    :func:`xasviz.pte_classes` (which names the lower threshold E1). The
    thresholds may be given in either order.

    Parameters
    ----------
    pte : ndarray, shape (ny, nx)
        Peak-top energy in eV, NaN where no peak was fitted.
    e1, e2 : float
        Thresholds in eV.

    Returns
    -------
    ndarray, shape (3, ny, nx)
        One-hot classes D1, D2, D3 as floats; NaN where ``pte`` is NaN.
    """
    hi, lo = max(e1, e2), min(e1, e2)
    out = np.stack([pte > hi, (pte > lo) & (pte <= hi), pte <= lo]).astype(float)
    out[:, ~np.isfinite(pte)] = np.nan
    return out


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity between the maps of ``a`` (m, ...) and ``b`` (n, ...)."""
    a = np.nan_to_num(a.reshape(a.shape[0], -1))
    b = np.nan_to_num(b.reshape(b.shape[0], -1))
    na = np.linalg.norm(a, axis=1)[:, None]
    nb = np.linalg.norm(b, axis=1)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (a @ b.T) / (na * nb)
    return np.nan_to_num(c)


class PTEView(Viewer):
    """Peak-top-energy map, with E1/E2 sliders updating the D1-D3 classes.

    Parameters
    ----------
    pte : xarray.Dataset
        Result of :func:`xasviz.peak_top_energy` (``pte`` (y, x) in eV).
    domains : xarray.Dataset, optional
        ONMF result; each class is shown beside its most correlated domain
        (cosine similarity, eq. 13 as corrected in the design notes).
    classes : xarray.Dataset, optional
        Result of :func:`xasviz.pte_classes`; its ``E1``/``E2`` are the
        starting thresholds.

    Notes
    -----
    Moving a slider only re-thresholds the PTE map and recomputes a 3 x r
    table of cosines; nothing is refitted.
    """

    E1 = param.Number(default=0.0, doc="Lower PTE threshold (eV): D3 is PTE <= E1")
    E2 = param.Number(default=0.0, doc="Upper PTE threshold (eV): D1 is PTE > E2")

    def __init__(self, pte, domains=None, classes=None, **params):
        require_vars(pte, ["pte"], "peak_top_energy result")
        self._pte_da = pte["pte"].transpose("y", "x")
        self._pte = np.asarray(self._pte_da.values, dtype=float)
        finite = self._pte[np.isfinite(self._pte)]
        if finite.size == 0:
            raise StackValidationError(
                "the PTE map holds no finite value; no pixel had a fitted peak."
            )
        lo, hi = float(finite.min()), float(finite.max())
        self.param.E1.bounds = (lo, hi)
        self.param.E2.bounds = (lo, hi)
        self.param.E1.step = self.param.E2.step = max((hi - lo) / 200, 1e-3)
        if classes is not None and "E1" in classes and "E2" in classes:
            params.setdefault("E1", float(np.clip(float(classes["E1"]), lo, hi)))
            params.setdefault("E2", float(np.clip(float(classes["E2"]), lo, hi)))
        else:
            q1, q2 = np.quantile(finite, [1 / 3, 2 / 3])
            params.setdefault("E1", float(q1))
            params.setdefault("E2", float(q2))
        self._domains = adopt_coord_attrs(domains, pte)
        super().__init__(**params)
        self.plots: dict[str, hv.DynamicMap] = {}
        self._layout = None

    @classmethod
    def from_results(cls, results, **params) -> PTEView:
        pte = get_group(results, "pte")
        if pte is None:
            raise StackValidationError("the results hold no /pte group.")
        return cls(
            adopt_coord_attrs(pte, get_group(results, "input")),
            domains=get_group(results, "onmf"),
            classes=get_group(results, "pte_classes"),
            **params,
        )

    def classes(self) -> np.ndarray:
        """One-hot D1-D3 maps at the current thresholds, shape (3, ny, nx)."""
        return threshold_classes(self._pte, self.E1, self.E2)

    def correlation(self) -> np.ndarray | None:
        """Cosine of each class with each ONMF domain, shape (3, r), or None."""
        if self._domains is None:
            return None
        w = self._domains["domains"].transpose("component", "y", "x").values
        return _cosine(self.classes(), w)

    def _class_map(self, e1, e2):
        cls = self.classes()
        label = np.full(self._pte.shape, np.nan)
        for i in range(3):
            label[cls[i] == 1] = i + 1
        da = xr.DataArray(label, dims=("y", "x"), coords=self._pte_da.coords)
        return map_image(
            da,
            title=f"D1 > {max(e1, e2):.2f} eV ≥ D2 > {min(e1, e2):.2f} eV ≥ D3",
            clabel="PTE class",
            cmap=[_CLASS_COLORS[c] for c in PTE_CLASSES],
            clim=(0.5, 3.5),
            width=300,
            colorbar_opts={
                "ticker": FixedTicker(ticks=[1, 2, 3]),
                "major_label_overrides": {1: "D1", 2: "D2", 3: "D3"},
            },
            name="pte_class_map",
        )

    def _histogram(self, e1, e2):
        finite = self._pte[np.isfinite(self._pte)]
        counts, edges = np.histogram(finite, bins=60)
        hist = hv.Histogram(
            (edges, counts),
            kdims=[hv.Dimension("pte", label="Peak-top energy (eV)")],
            vdims=[hv.Dimension("count", label="Pixels")],
        ).opts(color="#BBBBBB", line_color=None)
        lines = [
            hv.VLine(e1).opts(color="black", line_width=2),
            hv.VLine(e2).opts(color="black", line_width=2, line_dash="dashed"),
        ]
        return hv.Overlay([hist, *lines]).opts(
            title="PTE histogram (E1 solid, E2 dashed)",
            frame_width=300,
            frame_height=200,
        )

    def _matched(self, e1, e2):
        corr = self.correlation()
        if corr is None:
            return hv.Div("<i>Pass domains= to see the matched ONMF domains.</i>")
        comps = self._domains["component"].values
        maps = []
        for i, c in enumerate(PTE_CLASSES):
            j = int(np.argmax(corr[i]))
            maps.append(
                map_image(
                    self._domains["domains"].sel(component=comps[j]),
                    title=f"{c} ↔ domain {comps[j]} (r = {corr[i, j]:.2f})",
                    clabel="weight",
                    width=200,
                )
            )
        return hv.Layout(maps).cols(3)

    def __panel__(self):
        if self._layout is not None:
            return self._layout
        pte_map = map_image(
            self._pte_da,
            title="Peak-top energy",
            clabel="PTE (eV)",
            width=300,
            robust=True,
        )
        bind = (self.param.E1, self.param.E2)
        self.plots["classes"] = hv.DynamicMap(pn.bind(self._class_map, *bind))
        self.plots["histogram"] = hv.DynamicMap(pn.bind(self._histogram, *bind))
        self._layout = pn.Column(
            pn.Row(
                pn.widgets.FloatSlider.from_param(self.param.E1, label="E1 (eV)"),
                pn.widgets.FloatSlider.from_param(self.param.E2, label="E2 (eV)"),
            ),
            pn.Row(
                pn.pane.HoloViews(pte_map),
                pn.pane.HoloViews(self.plots["classes"]),
                pn.pane.HoloViews(self.plots["histogram"]),
            ),
            pn.panel(pn.bind(self._matched, *bind)),
        )
        return self._layout
