"""Bayes view: decomposition of domain spectra, free energy, E_WL posteriors."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import panel as pn
import param
import xarray as xr
from panel.viewable import Viewer

from .._errors import StackValidationError
from .._report_bayes import (
    data_of,
    free_energy_of,
    parts_of,
    posterior_histograms,
    select,
)
from ._common import PALETTE, get_group, require_vars, spectrum_curve

__all__ = ["BayesView", "bayes_fit_plot", "free_energy_plot", "ewl_posterior_plot"]


def bayes_fit_plot(ds: xr.Dataset, component=None) -> hv.Overlay:
    """Data, fit, and the parts of the model (eqs. 14-15) of one spectrum.

    The data are ``data`` (or ``fit + residual``); the parts are the rows of
    ``components`` (peak, energy): step, white line and each peak.
    """
    d = select(ds, component)
    energy = d["energy"].values
    fit = d["fit"].values
    elems = []
    data = data_of(d)
    if data is not None:
        elems.append(
            hv.Scatter(
                (energy, data),
                kdims=[hv.Dimension("energy", label="Energy (eV)")],
                vdims=[hv.Dimension("mu", label="Normalised absorbance")],
                label="data",
            ).opts(color="black", size=4)
        )
    elems.append(
        spectrum_curve(energy, fit, label="fit", color="#D55E00", line_width=2.5)
    )
    for i, (name, part) in enumerate(parts_of(d).items()):
        elems.append(
            spectrum_curve(
                energy,
                part,
                label=name,
                color=PALETTE[(i + 1) % len(PALETTE)],
                line_dash="dashed" if i < 2 else "solid",
                line_width=1.5,
            )
        )
    k = int(d["k"]) if "k" in d else None
    title = "Bayesian decomposition"
    if component is not None:
        title += f", domain {component}"
    if k is not None:
        title += f" (K = {k} peaks)"
    return hv.Overlay(elems).opts(
        title=title,
        frame_width=440,
        frame_height=300,
        legend_position="right",
        backend_opts={"plot.name": "bayes_fit"},
    )


def free_energy_plot(ds: xr.Dataset, component=None) -> hv.Overlay:
    """Bayes free energy F against the number of peaks K.

    F is shown at its minimum over the noise precision beta for each K
    (``free_energy_min``), with standard errors when present.
    """
    d = select(ds, component)
    ks, f, se = free_energy_of(d)
    kd = [hv.Dimension("K", label="Number of peaks K")]
    vd = [hv.Dimension("F", label="Free energy F")]
    elems = [
        hv.Curve((ks, f), kdims=kd, vdims=vd).opts(color="#0072B2"),
        hv.Scatter((ks, f), kdims=kd, vdims=vd).opts(size=6, tools=["hover"]),
    ]
    if se is not None:
        elems.append(hv.ErrorBars((ks, f, se), kdims=kd, vdims=[*vd, "se"]))
    if "k" in d:
        kbest = int(d["k"])
        if kbest in ks:
            elems.append(
                hv.Scatter(
                    [(kbest, float(f[np.flatnonzero(ks == kbest)[0]]))],
                    kdims=kd,
                    vdims=vd,
                    label=f"chosen K = {kbest}",
                ).opts(marker="star", size=16, color="#D55E00")
            )
    return hv.Overlay(elems).opts(
        title="Free energy (minimum over noise level)",
        frame_width=300,
        frame_height=240,
    )


def ewl_posterior_plot(ds: xr.Dataset, param_name: str = "E_WL") -> hv.Overlay:
    """Posterior histograms of the white-line energy of every domain together."""
    if "chain" not in ds or param_name not in ds["param"].values:
        return hv.Overlay([hv.Curve([])]).opts(title=f"No {param_name} samples")
    edges, dens = posterior_histograms(ds, param_name)
    elems = []
    for i, (c, counts) in enumerate(dens.items()):
        label = f"domain {c}" if c is not None else param_name
        elems.append(
            hv.Histogram(
                (edges, counts),
                kdims=[hv.Dimension("E", label=f"{param_name} (eV)")],
                vdims=[hv.Dimension("density", label="Posterior density (1/eV)")],
                label=label,
            ).opts(
                fill_alpha=0.45,
                line_color=PALETTE[i % len(PALETTE)],
                fill_color=PALETTE[i % len(PALETTE)],
            )
        )
    return hv.Overlay(elems).opts(
        title=f"Posterior of {param_name}, all domains",
        frame_width=380,
        frame_height=240,
        legend_position="top_right",
        backend_opts={"plot.name": "ewl_posteriors"},
    )


class BayesView(Viewer):
    """Decomposition of each domain spectrum, F against K, E_WL posteriors.

    Parameters
    ----------
    bayes : xarray.Dataset
        Result of :func:`xasviz.bayes.decompose` (``fit``, ``residual``,
        ``components``, ``free_energy``, ``chain`` ...), optionally with a
        ``component`` dim holding one decomposition per domain.
    """

    component = param.Selector(default=None, objects=[None], doc="Domain shown")

    def __init__(self, bayes, **params):
        require_vars(bayes, ["fit"], "bayes result")
        self._ds = bayes
        if "component" in bayes.dims:
            comps = [int(c) for c in bayes["component"].values]
            self.param.component.objects = comps
            params.setdefault("component", comps[0])
        super().__init__(**params)
        self._layout = None

    @classmethod
    def from_results(cls, results, **params) -> BayesView:
        ds = get_group(results, "bayes")
        if ds is None:
            raise StackValidationError("the results hold no /bayes group.")
        return cls(ds, **params)

    def table(self) -> pn.pane.DataFrame | pn.pane.Markdown:
        """MAP value and credible interval of each parameter of the shown domain."""
        d = select(self._ds, self.component)
        if "map" not in d:
            return pn.pane.Markdown("")
        rows = {"MAP": d["map"].values}
        if "interval" in d:
            for b in d["bound"].values:
                rows[str(b)] = d["interval"].sel(bound=b).values
        import pandas as pd

        df = pd.DataFrame(rows, index=[str(p) for p in d["param"].values])
        return pn.pane.DataFrame(df.dropna(how="all"), float_format="{:.4g}".format)

    def __panel__(self):
        if self._layout is not None:
            return self._layout
        fit = hv.DynamicMap(
            pn.bind(lambda c: bayes_fit_plot(self._ds, c), self.param.component)
        )
        widgets = []
        if "component" in self._ds.dims:
            widgets.append(pn.widgets.RadioButtonGroup.from_param(self.param.component))
        right = []
        if "free_energy" in self._ds:
            right.append(
                pn.pane.HoloViews(
                    hv.DynamicMap(
                        pn.bind(
                            lambda c: free_energy_plot(self._ds, c),
                            self.param.component,
                        )
                    )
                )
            )
        self._layout = pn.Column(
            *widgets,
            pn.Row(pn.pane.HoloViews(fit), *right),
            pn.Row(
                pn.pane.HoloViews(ewl_posterior_plot(self._ds)),
                pn.panel(pn.bind(lambda c: self.table(), self.param.component)),
            ),
        )
        return self._layout
