"""Standalone HTML report of an analysis: one offline file, interactive.

The report is built with Bokeh alone and saved with every script inline, so it
opens from a USB stick or an e-mail attachment without network or Python.
What survives in the file: zoom, pan and hover on every plot, a click on any
domain map rebuilding that pixel's spectrum in the browser from the factors
(``w_p H^T + b``, eq. 2 and eq. 1), sliders re-thresholding the PTE classes,
and legends that hide curves. What needs the live views (:mod:`xasviz.views`)
instead: measured spectra of arbitrary pixels (the cube is not embedded; only
its factors are), other ranks than the chosen one, and anything that computes.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import platform
import sys
import tempfile
import types
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import xarray as xr
from bokeh.embed import file_html
from bokeh.layouts import column, row
from bokeh.models import (
    Button,
    ColumnDataSource,
    CustomJS,
    Div,
    Slider,
    Span,
    Whisker,
)
from bokeh.plotting import figure
from bokeh.resources import Resources

from . import _report_bayes as rb
from . import _report_figures as rf
from ._errors import StackValidationError
from ._validation import validate_stack
from ._version import __version__

__all__ = ["report"]

logger = logging.getLogger(__name__)

#: Packages whose versions the report lists.
_PACKAGES = (
    "numpy",
    "scipy",
    "xarray",
    "scikit-learn",
    "emcee",
    "bokeh",
    "panel",
    "holoviews",
    "h5netcdf",
)

# Only inherited properties reach into Bokeh's shadow roots; tables carry
# their own inline styles.
_CSS = (
    "<style>body { font-family: system-ui, -apple-system, 'Segoe UI', "
    "sans-serif; margin: 16px 24px; }</style>"
)


def report(
    results,
    path,
    *,
    title: str | None = None,
    max_pixels: int = 250_000,
    map_width: int = 260,
) -> Path:
    """Write a self-contained, interactive HTML report of an analysis.

    Parameters
    ----------
    results : xarray.DataTree, xarray.Dataset or xarray.DataArray
        A results tree of :func:`xasviz.analyze` (sections appear for the
        groups present: ``/input``, ``/bcv``, ``/onmf``, ``/kmeans``,
        ``/correlation_kmeans``, ``/pte``, ``/pte_classes``, ``/bayes``), or a
        plain stack (dims y, x, energy; the report then shows its summary).
    path : str or path-like
        Where to write the ``.html`` file. Written atomically: a temporary file
        in the same folder is renamed over ``path`` only once complete.
    title : str, optional
        Page title; default from the input file name.
    max_pixels : int
        Maps with more pixels are block-averaged by an integer factor until
        they fit, to bound the file size (each map costs about 5.3 bytes per
        pixel). The report says when it did so.
    map_width : int
        Width of each map frame in screen pixels.

    Returns
    -------
    pathlib.Path
        The path written.

    Notes
    -----
    Size: maps are stored once each as float32 (domain maps serve both the
    pictures and the in-browser reconstruction). A 300 x 300 x 100 analysis at
    rank 10 with every group gives about 8 MB (measured in the tests).
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"cannot write the report to {str(path)!r}: the folder "
            f"{str(path.parent)!r} does not exist."
        )
    if int(max_pixels) < 1:
        raise ValueError(f"max_pixels must be a positive int; got {max_pixels!r}.")
    tree = _as_tree(results)
    layout, page_title = build_report(
        tree, title=title, max_pixels=int(max_pixels), map_width=map_width
    )
    text = file_html(layout, resources=_OfflineResources(), title=page_title)
    # The inline scripts may contain the text "</head>"; insert before the last.
    head, sep, tail = text.rpartition("</head>")
    text = head + _CSS + sep + tail
    _atomic_write(path, text)
    logger.info("report written to %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path


class _OfflineResources(Resources):
    """BokehJS inline, and nothing else.

    Bokeh adds the ``__javascript__`` URLs of *every* imported model class to
    a page, so once Panel is imported (as in a notebook) even a pure-Bokeh
    page would reference scripts on a CDN or a server. The report uses only
    Bokeh's own models, which the inline bundle contains.
    """

    def __init__(self, components=None):
        super().__init__(mode="inline", components=components)

    def _collect_external_resources(self, resource_attr):
        return []

    def clone(self, *, components=None):
        return _OfflineResources(
            components=components if components is not None else list(self.components)
        )


def _atomic_write(path: Path, text: str) -> None:
    """Write to a temporary file next to ``path``, then rename it over."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        # mkstemp creates the file readable by its owner only; a report is
        # meant to be shared, so give it the permissions of any new file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _as_tree(results) -> xr.DataTree:
    if isinstance(results, xr.DataTree):
        return results
    if isinstance(results, xr.DataArray):
        stack = validate_stack(results, nonfinite="ignore")
        return xr.DataTree.from_dict({"input": xr.Dataset({"stack": stack})})
    if isinstance(results, xr.Dataset):
        if "stack" in results:
            return xr.DataTree.from_dict({"input": results})
        if "domains" in results and "spectra" in results:
            return xr.DataTree.from_dict({"onmf": results})
        raise StackValidationError(
            "report needs a results DataTree, a stack or an onmf Dataset; got a "
            f"Dataset with {sorted(map(str, results.data_vars))}."
        )
    raise TypeError(
        "report needs an xarray DataTree (from xasviz.analyze), Dataset or "
        f"DataArray stack; got {type(results).__name__}. Load saved results with "
        "xasviz.load(path)."
    )


def _group(tree: xr.DataTree, name: str) -> xr.Dataset | None:
    if name not in tree.children:
        return None
    return tree[name].to_dataset()


# -- the page -------------------------------------------------------------------


def build_report(tree: xr.DataTree, *, title=None, max_pixels=250_000, map_width=260):
    """The report as a Bokeh layout (what :func:`report` saves), and its title."""
    inp = _group(tree, "input")
    src_name = _source_name(tree)
    page_title = title or (
        f"xasviz report: {src_name}" if src_name else "xasviz report"
    )
    ctx = _Context(tree, max_pixels, map_width)
    parts = []
    toc = []
    builders = [
        ("stack", "Stack summary", _stack_section, inp is not None),
        ("bcv", "Number of domains (BCV)", _bcv_section, "bcv" in tree.children),
        ("domains", "Domains (one-sided ONMF)", _onmf_section, "onmf" in tree.children),
        (
            "kmeans",
            "Cross-check: k-means",
            _kmeans_section,
            "kmeans" in tree.children or "correlation_kmeans" in tree.children,
        ),
        ("pte", "Cross-check: peak-top energy", _pte_section, "pte" in tree.children),
        ("bayes", "Bayesian decomposition", _bayes_section, "bayes" in tree.children),
    ]
    for anchor, name, fn, present in builders:
        if not present:
            continue
        head = rf.section(anchor, name, fn.__doc__.split("\n\n")[0].strip())
        toc.append(_toc_button(name, head))
        parts.append(head)
        parts.extend(fn(tree, ctx))
    head = rf.section("settings", "Settings and provenance")
    toc.append(_toc_button("Settings and provenance", head))
    parts.append(head)
    parts.append(Div(text=_provenance_html(tree), sizing_mode="stretch_width"))
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    note = (
        f"<p><b>Maps are block-averaged {ctx.factor} x {ctx.factor}</b> to keep the "
        "file small (max_pixels).</p>"
        if ctx.factor > 1
        else ""
    )
    header = Div(
        text=f"<h1 style='margin-bottom:2px'>{_esc(page_title)}</h1>"
        f"<p style='color:#555'>xasviz {__version__} &middot; written {created}"
        f"{' &middot; input ' + _esc(src_name) if src_name else ''}</p>"
        f"{note}"
        "<p style='color:#555;max-width:900px'>Every plot zooms (wheel), pans "
        "and shows values on hover; click a legend entry to hide a curve; click "
        "a domain map to rebuild that pixel's spectrum from the factors.</p>",
        sizing_mode="stretch_width",
    )
    return (
        column([header, row(toc), *parts], sizing_mode="stretch_width"),
        page_title,
    )


def _toc_button(label: str, target: Div) -> Button:
    """A table-of-contents entry that scrolls to a section heading.

    Plain ``#anchor`` links cannot reach headings that Bokeh renders inside
    shadow roots, so the button asks BokehJS for the heading's element.
    """
    button = Button(label=label, button_type="light", width_policy="min")
    button.js_on_click(
        CustomJS(
            args={"target": target},
            code="Bokeh.index.find_one(target).el.scrollIntoView("
            "{behavior: 'smooth', block: 'start'});",
        )
    )
    return button


class _Context:
    """Settings and the shared pixel grid (after block averaging)."""

    def __init__(self, tree, max_pixels, map_width):
        self.map_width = map_width
        ref = None
        for name in ("input", "onmf", "pte", "kmeans"):
            ds = _group(tree, name)
            if ds is not None and "y" in ds.dims and "x" in ds.dims:
                ref = ds
                break
        self.factor = 1
        self.grid = None
        if ref is not None:
            ny, nx = ref.sizes["y"], ref.sizes["x"]
            self.factor = int(np.ceil(np.sqrt(ny * nx / max_pixels))) if ny * nx else 1
            self.factor = max(self.factor, 1)
            x, y = self.coarse(ref["x"]), self.coarse(ref["y"])
            units = (
                ref["x"].attrs.get("units", "pixel") if "x" in ref.coords else "pixel"
            )
            self.grid = rf.MapGrid(x.values, y.values, units=units)

    def coarse(self, da: xr.DataArray) -> xr.DataArray:
        """Block-average the y and x dims by the report's factor (NaN skipped)."""
        f = self.factor
        if f == 1:
            return da
        dims = {d: f for d in ("y", "x") if d in da.dims}
        if not dims and da.name in ("x", "y"):
            dims = {da.name: f}
        return da.coarsen(dims, boundary="trim").mean()

    def image(self, da: xr.DataArray) -> np.ndarray:
        return np.asarray(self.coarse(da.transpose(..., "y", "x")).values, dtype=float)


def _esc(s) -> str:
    import html

    return html.escape(str(s))


def _source_name(tree) -> str:
    for ds in (tree.to_dataset(), _group(tree, "input")):
        if ds is None:
            continue
        for key in ("source_file", "input_file", "source"):
            if key in ds.attrs:
                return str(ds.attrs[key])
    return ""


# -- sections -------------------------------------------------------------------


def _stack_section(tree, ctx):
    """The input stack: mean image, edge step, mean spectrum and the spectra of
    five pixels spread over the edge-step range (marked on the maps)."""
    inp = _group(tree, "input")
    grid = ctx.grid
    if "stack" in inp:
        stack = inp["stack"].transpose("y", "x", "energy")
        values = np.asarray(stack.values, dtype=float)
        energy = stack["energy"].values
    else:
        stack, values, energy = None, None, None
    mean_img = (
        inp["raw_mean"] if "raw_mean" in inp else stack.mean("energy", skipna=True)
    )
    if "edge_step" in inp:
        edge = inp["edge_step"]
    else:
        edge = stack.isel(energy=-1) - stack.isel(energy=0)
    mean_fig, _ = rf.map_figure(
        grid,
        rf.image_source(ctx.image(mean_img)),
        title="Mean over energy",
        clabel="absorbance",
        robust=True,
        palette=rf.GREYS,
        width=ctx.map_width,
        name="report_mean_map",
    )
    edge_fig, _ = rf.map_figure(
        grid,
        rf.image_source(ctx.image(edge)),
        title="Edge step",
        clabel=edge.attrs.get("units") or "edge step",
        robust=True,
        width=ctx.map_width,
    )
    figs = [mean_fig, edge_fig]
    if values is None:
        return [row(figs)]
    ok = np.isfinite(values).all(axis=-1)
    normalized = "raw_mean" in inp or "reference" in inp
    flat = values[ok]
    mean_spec = (
        inp["mean_spectrum"].values if "mean_spectrum" in inp else flat.mean(axis=0)
    )
    sfig = rf.spectra_figure(
        "Mean spectrum and five pixels",
        "Normalised absorbance" if normalized else "Absorbance (endpoint-normalised)",
    )
    ev = np.asarray(edge.values, dtype=float)
    picks = _spread_pixels(ev, ok)
    curves = {}
    for i, (iy, ix) in enumerate(picks):
        s = values[iy, ix]
        if not normalized:
            step = s[-1] - s[0]
            s = (s - s[0]) / step if step else s * np.nan
        curves[
            f"pixel {i + 1} (x={stack['x'].values[ix]}, y={stack['y'].values[iy]})"
        ] = s
    rf.add_lines(sfig, energy, curves, width=1.5)
    mean_show = mean_spec
    if not normalized:
        step = mean_spec[-1] - mean_spec[0]
        mean_show = (mean_spec - mean_spec[0]) / step if step else mean_spec
    sfig.line(
        energy, mean_show, color="black", line_width=3, legend_label="mean", name="mean"
    )
    rf.finish_legend(sfig)
    # Number the five pixels on both maps.
    xs = [float(stack["x"].values[ix]) for _, ix in picks]
    ys = [float(stack["y"].values[iy]) for iy, _ in picks]
    labels = [str(i + 1) for i in range(len(picks))]
    src = ColumnDataSource(
        {"x": xs, "y": ys, "label": labels, "color": list(rf.PALETTE[: len(picks)])}
    )
    for f in figs:
        f.scatter(
            "x",
            "y",
            source=src,
            size=11,
            fill_color="color",
            line_color="white",
            line_width=2,
        )
        f.text(
            "x",
            "y",
            text="label",
            source=src,
            x_offset=7,
            y_offset=-7,
            text_font_size="10pt",
            text_color="white",
            text_font_style="bold",
        )
    ny, nx, ne = values.shape
    info = Div(
        text=f"<p>{ny} x {nx} pixels, {ne} energies from {energy[0]:.2f} to "
        f"{energy[-1]:.2f} eV; {int(ok.sum())} valid pixels, "
        f"{int((~ok).sum())} masked.</p>"
    )
    return [info, row([*figs, sfig])]


def _spread_pixels(edge: np.ndarray, ok: np.ndarray, n: int = 5):
    """Valid pixels at evenly spaced quantiles of the edge step."""
    good = ok & np.isfinite(edge)
    idx = np.flatnonzero(good.ravel())
    if idx.size == 0:
        return []
    order = idx[np.argsort(edge.ravel()[idx], kind="stable")]
    picks = order[
        np.round(np.linspace(0.1, 0.9, min(n, idx.size)) * (order.size - 1)).astype(int)
    ]
    return [tuple(int(v) for v in np.unravel_index(p, edge.shape)) for p in picks]


def _bcv_section(tree, ctx):
    """Bi-cross-validation error against the number of domains (paper 2.3): mean
    over folds with standard-error bars, each fold as a faint dot, the chosen
    rank starred."""
    bcv = _group(tree, "bcv")
    ranks = bcv["rank"].values.astype(float)
    mean = bcv["mean_error"].values
    se = bcv["std_error"].values if "std_error" in bcv else np.zeros_like(mean)
    fig = rf.spectra_figure(
        "BCV hold-out error",
        "Hold-out error",
        x_label="Rank (number of domains)",
        name="report_bcv",
        width=420,
        height=280,
    )
    if "error" in bcv:
        err = bcv["error"].transpose("rank", ...)
        rr = np.repeat(ranks, err.shape[1])
        fig.scatter(
            rr, err.values.ravel(), color="#BBBBBB", size=4, legend_label="folds"
        )
    src = ColumnDataSource(
        {"rank": ranks, "mean": mean, "lo": mean - se, "hi": mean + se}
    )
    fig.line(
        "rank",
        "mean",
        source=src,
        line_width=2.5,
        legend_label="mean over folds",
        name="mean error",
    )
    fig.scatter("rank", "mean", source=src, size=7)
    fig.add_layout(Whisker(base="rank", lower="lo", upper="hi", source=src))
    fig.xaxis.ticker = [int(r) for r in ranks]
    chosen = tree.attrs.get("chosen_rank")
    best = int(bcv["best_rank"]) if "best_rank" in bcv else None
    if chosen is None:
        onmf = _group(tree, "onmf")
        chosen = onmf.sizes["component"] if onmf is not None else best
    if best is not None and best in bcv["rank"].values:
        rule = bcv.attrs.get("rule", "chosen")
        fig.scatter(
            [best],
            [float(bcv["mean_error"].sel(rank=best))],
            marker="star",
            size=20,
            color="#D55E00",
            legend_label=f"best rank ({rule}) = {best}",
        )
    if chosen is not None:
        fig.add_layout(
            Span(
                location=float(chosen),
                dimension="height",
                line_dash="dashed",
                line_color="gray",
            )
        )
    rf.finish_legend(fig, outside=False)
    fig.legend.location = "top_right"
    rows = [("chosen rank", str(chosen))]
    for key in ("best_rank", "min_rank", "one_se_rank", "paired_se_rank"):
        if key in bcv:
            rows.append((key.replace("_", " "), str(int(bcv[key]))))
    # Both predictors score the same fold fits; the one not plotted is still
    # worth a line (docs/factorization.md compares them).
    for key, label in (
        ("best_rank_pinv", "best rank, pinv predictor (paper)"),
        ("best_rank_onmf", "best rank, constrained ONMF predictor"),
    ):
        if key in bcv:
            rows.append((label, str(int(bcv[key]))))
    rows.append(("predictor plotted", str(bcv.attrs.get("predictor", "pinv"))))
    return [row([fig, Div(text=rf.html_table(rows, ("", "value")))])]


_RECON_JS = """
const ix = Math.round((cb_obj.x - x0) / dx), iy = Math.round((cb_obj.y - y0) / dy);
if (ix < 0 || iy < 0 || ix >= nx || iy >= ny) { return; }
const p = iy * nx + ix, n = energy.length;
const diff = new Array(n).fill(0), w = [];
for (let k = 0; k < maps.length; k++) {
  const v = maps[k].data.image[0][p];
  w.push(v);
  for (let e = 0; e < n; e++) { diff[e] += v * H[k][e]; }
}
const absn = diff.map((d, e) => d + (ref.length ? ref[e] : 0));
pixel.data = {energy: energy, absorption: absn, difference: diff};
weights.data = {component: labels, weight: w, color: colors};
marker.data = {x: [x0 + ix * dx], y: [y0 + iy * dy]};
const masked = w.some((v) => !isFinite(v));
title.text = `Pixel x=${(x0 + ix * dx).toFixed(1)}, y=${(y0 + iy * dy).toFixed(1)}` +
  (masked ? ' (masked)' : ': w·Hᵀ' + (ref.length ? ' + b' : ''));
"""


def _onmf_section(tree, ctx):
    """Domain maps (columns of W, eq. 2) on one colour scale, the dominant domain
    of each pixel, and the domain spectra (H, and absorption as the weighted mean
    (w_k^T X0)/(w_k^T 1)). Click any map: the spectrum of that pixel is rebuilt
    from the factors in the page."""
    onmf = _group(tree, "onmf")
    inp = _group(tree, "input")
    grid = ctx.grid
    comps = [int(c) for c in onmf["component"].values]
    w = ctx.image(onmf["domains"].transpose("component", "y", "x"))
    h = np.asarray(onmf["spectra"].transpose("component", "energy").values, float)
    energy = onmf["energy"].values.astype(float)
    ref = (
        inp["reference"].values.astype(float)
        if inp is not None and "reference" in inp
        else None
    )
    # A shared colour scale, robust to a few pixels with very large weights.
    vmax = float(np.nanpercentile(w, 99.5)) if np.isfinite(w).any() else 1.0
    vmax = vmax if vmax > 0 else 1.0
    sources = [
        rf.image_source(w[i], name=f"domain_source_{k}") for i, k in enumerate(comps)
    ]
    ctx.domain_sources = dict(zip(comps, sources))

    # Pixel panel: reconstructed spectrum and weights, filled by the callback.
    # Start on the pixel with the largest weight of domain 1, so the panel is
    # never empty; a click replaces it.
    iy, ix = np.unravel_index(np.nanargmax(np.nan_to_num(w[0], nan=-1)), w.shape[1:])
    w0 = w[:, iy, ix]
    diff0 = w0 @ h
    pixel = ColumnDataSource(
        {
            "energy": energy,
            "absorption": diff0 + (ref if ref is not None else 0.0),
            "difference": diff0,
        },
        name="pixel_source",
    )
    pfig = rf.spectra_figure(
        f"Pixel x={grid.x[ix]:.1f}, y={grid.y[iy]:.1f} (click a map)",
        "Absorbance",
        name="report_pixel",
        width=400,
        height=240,
    )
    if ref is not None:
        pfig.line(
            "energy",
            "absorption",
            source=pixel,
            color="#D55E00",
            line_width=2.5,
            legend_label="w·Hᵀ + b (absorbance)",
            name="reconstruction",
        )
    pfig.line(
        "energy",
        "difference",
        source=pixel,
        color="#0072B2",
        line_width=2,
        line_dash="dashed",
        legend_label="w·Hᵀ (difference)",
        name="difference",
    )
    rf.finish_legend(pfig)
    colors = [rf.PALETTE[i % len(rf.PALETTE)] for i in range(len(comps))]
    weights = ColumnDataSource(
        {
            "component": [str(c) for c in comps],
            "weight": [float(v) for v in w0],
            "color": colors,
        },
        name="weights_source",
    )
    wfig = figure(
        x_range=[str(c) for c in comps],
        title="Weights of the pixel",
        frame_width=400,
        frame_height=140,
        tools="hover,save",
        tooltips=[("domain", "@component"), ("w", "@weight")],
        toolbar_location="above",
        x_axis_label="Domain",
        y_axis_label="weight w",
    )
    wfig.vbar(x="component", top="weight", width=0.8, color="color", source=weights)
    rf._style(wfig)
    marker = ColumnDataSource({"x": [grid.x[ix]], "y": [grid.y[iy]]})
    js_args = dict(
        maps=sources,
        H=h.tolist(),
        energy=energy.tolist(),
        ref=[] if ref is None else ref.tolist(),
        pixel=pixel,
        weights=weights,
        marker=marker,
        title=pfig.title,
        labels=[str(c) for c in comps],
        colors=colors,
        **grid.js_args(),
    )
    callback = CustomJS(args=js_args, code=_RECON_JS)

    maps = []
    for i, k in enumerate(comps):
        fig, _ = rf.map_figure(
            grid,
            sources[i],
            title=f"Domain {k}",
            clabel="weight w",
            width=ctx.map_width,
            low=0.0,
            high=vmax,
            name=f"report_domain_map_{k}",
            tap=True,
        )
        fig.title.text_color = colors[i]
        fig.scatter(
            "x",
            "y",
            source=marker,
            marker="square",
            size=14,
            fill_alpha=0,
            line_color="red",
            line_width=2,
        )
        fig.js_on_event("tap", callback)
        maps.append(fig)
    dominant = np.where(
        np.isfinite(w).all(axis=0),
        np.nanargmax(np.nan_to_num(w, nan=-1), axis=0) + 1.0,
        np.nan,
    )
    dfig, _ = rf.map_figure(
        grid,
        rf.image_source(dominant),
        title="Dominant domain",
        clabel="domain",
        palette=colors,
        low=0.5,
        high=len(comps) + 0.5,
        width=ctx.map_width,
        ticks={k: str(k) for k in comps},
        tap=True,
    )
    dfig.js_on_event("tap", callback)
    dfig.scatter(
        "x",
        "y",
        source=marker,
        marker="square",
        size=14,
        fill_alpha=0,
        line_color="red",
        line_width=2,
    )
    maps.append(dfig)

    dspec = rf.spectra_figure("Domain difference spectra (H)", "Difference absorbance")
    rf.add_lines(dspec, energy, {f"Domain {k}": h[i] for i, k in enumerate(comps)})
    specs = [dspec]
    if "absorption" in onmf:
        a = onmf["absorption"].transpose("component", "energy").values
        aspec = rf.spectra_figure("Domain absorption spectra", "Normalised absorbance")
        rf.add_lines(aspec, energy, {f"Domain {k}": a[i] for i, k in enumerate(comps)})
        if ref is not None:
            aspec.line(
                energy,
                ref,
                color="gray",
                line_dash="dotted",
                line_width=2,
                legend_label="reference b",
            )
            rf.finish_legend(aspec)
        specs.append(aspec)
    metrics = []
    for key, label in (
        ("relative_error", "relative error ||X - WHᵀ|| / ||X||"),
        ("orthogonality", "largest off-diagonal of WᵀW"),
        ("collinearity", "largest |cos| between spectra"),
        ("n_iter", "iterations"),
    ):
        if key in onmf:
            metrics.append((label, f"{float(onmf[key]):.4g}"))
    rows_ = [row(maps[j : j + 4]) for j in range(0, len(maps), 4)]
    return [
        *rows_,
        row([column([pfig, wfig]), *specs]),
        Div(text=rf.html_table(metrics, ("ONMF diagnostic", "value"))),
    ]


def _label_map(ds) -> np.ndarray:
    if "labels" in ds:
        lab = np.asarray(ds["labels"].transpose("y", "x").values, dtype=float)
        comps = ds["component"].values if "component" in ds.coords else None
        lab[lab < 0] = np.nan
        if comps is not None:
            lab = np.where(
                np.isfinite(lab),
                np.asarray(comps, float)[
                    np.nan_to_num(lab).astype(int).clip(0, len(comps) - 1)
                ],
                np.nan,
            )
        return lab
    d = ds["domains"].transpose("component", "y", "x").values
    ok = np.isfinite(d).all(axis=0)
    comps = ds["component"].values.astype(float)
    return np.where(ok, comps[np.nanargmax(np.nan_to_num(d, nan=-1), axis=0)], np.nan)


def _kmeans_section(tree, ctx):
    """k-means clusters of the same stack (k = the chosen rank), their mean
    spectra, and the cosine similarity of each ONMF domain map with each cluster
    map; matched pairs (Hungarian algorithm) outlined."""
    km = _group(tree, "kmeans")
    corr = _group(tree, "correlation_kmeans")
    out = []
    figs = []
    if km is not None:
        comps = [int(c) for c in km["component"].values]
        colors = [rf.PALETTE[i % len(rf.PALETTE)] for i in range(len(comps))]
        lab = _label_map(km)
        if ctx.factor > 1:  # block-average is meaningless for labels: subsample
            lab = lab[:: ctx.factor, :: ctx.factor][
                : ctx.grid.shape[0], : ctx.grid.shape[1]
            ]
        fig, _ = rf.map_figure(
            ctx.grid,
            rf.image_source(lab),
            title="k-means clusters",
            clabel="cluster",
            palette=colors,
            low=min(comps) - 0.5,
            high=max(comps) + 0.5,
            width=ctx.map_width,
            ticks={k: str(k) for k in comps},
        )
        figs.append(fig)
        if "spectra" in km:
            sfig = rf.spectra_figure("Cluster mean spectra", "Normalised absorbance")
            s = km["spectra"].transpose("component", "energy").values
            rf.add_lines(
                sfig,
                km["energy"].values,
                {f"Cluster {k}": s[i] for i, k in enumerate(comps)},
            )
            figs.append(sfig)
    if corr is not None:
        c = corr["correlation"]
        da, db = c.dims
        figs.append(
            rf.heatmap_figure(
                c.values,
                [str(v) for v in c[da].values],
                [str(v) for v in c[db].values],
                title=f"{da} vs {db}",
                row_label=da,
                col_label=db,
                match=corr["match"].values if "match" in corr else None,
                name="report_corr_kmeans",
            )
        )
    out.append(row(figs))
    return out


_PTE_JS = """
const lo = Math.min(s1.value, s2.value), hi = Math.max(s1.value, s2.value);
const p = pte.data.image[0], c = cls.data.image[0];
for (let i = 0; i < p.length; i++) {
  const v = p[i];
  c[i] = isFinite(v) ? (v > hi ? 1 : (v > lo ? 2 : 3)) : NaN;
}
cls.change.emit();
fig.title.text = `D1 > ${hi.toFixed(2)} eV ≥ D2 > ${lo.toFixed(2)} eV ≥ D3`;
"""


def _pte_section(tree, ctx):
    """Peak-top energy of each pixel (a Gaussian fitted to the white line, paper
    2.6), its split into D1 (highest) to D3 (lowest) by the thresholds E1 and E2,
    and the ONMF domain that matches each class best. The sliders re-threshold
    the classes in the page (the matched domains stay those of the saved
    thresholds)."""
    pte = _group(tree, "pte")
    cls = _group(tree, "pte_classes")
    grid = ctx.grid
    pimg = ctx.image(pte["pte"])
    psrc = rf.image_source(pimg, name="pte_source")
    pfig, _ = rf.map_figure(
        grid,
        psrc,
        title="Peak-top energy",
        clabel="PTE (eV)",
        width=ctx.map_width,
        robust=True,
        name="report_pte_map",
    )
    finite = pimg[np.isfinite(pimg)]
    out_figs = [pfig]
    widgets = []
    if finite.size:
        if cls is not None and "E1" in cls:
            e1, e2 = float(cls["E1"]), float(cls["E2"])
        else:
            e1, e2 = (float(v) for v in np.quantile(finite, [1 / 3, 2 / 3]))
        hi, lo = max(e1, e2), min(e1, e2)
        cimg = np.where(
            np.isfinite(pimg),
            np.where(pimg > hi, 1.0, np.where(pimg > lo, 2.0, 3.0)),
            np.nan,
        )
        csrc = rf.image_source(cimg, name="pte_class_source")
        cfig, _ = rf.map_figure(
            grid,
            csrc,
            title=f"D1 > {hi:.2f} eV ≥ D2 > {lo:.2f} eV ≥ D3",
            clabel="PTE class",
            palette=["#D55E00", "#009E73", "#0072B2"],
            low=0.5,
            high=3.5,
            width=ctx.map_width,
            ticks={1: "D1", 2: "D2", 3: "D3"},
            name="report_pte_classes",
        )
        out_figs.append(cfig)
        lo, hi = float(finite.min()), float(finite.max())
        step = max((hi - lo) / 400, 1e-3)

        def threshold_slider(label, value):
            return Slider(
                name=f"pte_{label}",
                title=f"{label} (eV)",
                start=lo,
                end=hi,
                value=float(np.clip(value, lo, hi)),
                step=step,
                width=300,
                format="0.00",
            )

        s1 = threshold_slider("E1", e1)
        s2 = threshold_slider("E2", e2)
        cb = CustomJS(
            args=dict(pte=psrc, cls=csrc, s1=s1, s2=s2, fig=cfig), code=_PTE_JS
        )
        s1.js_on_change("value", cb)
        s2.js_on_change("value", cb)
        widgets = [row([s1, s2])]
        counts, edges = np.histogram(finite, bins=60)
        hfig = rf.spectra_figure(
            "PTE histogram",
            "Pixels",
            x_label="Peak-top energy (eV)",
            width=320,
            height=220,
        )
        hfig.quad(
            top=counts, bottom=0, left=edges[:-1], right=edges[1:], color="#BBBBBB"
        )
        for s, dash in ((s1, "solid"), (s2, "dashed")):
            span = Span(
                location=s.value, dimension="height", line_dash=dash, line_width=2
            )
            hfig.add_layout(span)
            s.js_link("value", span, "location")
        out_figs.append(hfig)
    out = [*widgets, row(out_figs)]
    if (
        cls is not None
        and "matched_component" in cls
        and hasattr(ctx, "domain_sources")
    ):
        figs = []
        for c in cls["pte_class"].values:
            k = int(cls["matched_component"].sel(pte_class=c))
            r = (
                float(cls["matched_correlation"].sel(pte_class=c))
                if "matched_correlation" in cls
                else np.nan
            )
            src = ctx.domain_sources.get(k)
            if src is None:
                continue
            fig, _ = rf.map_figure(
                grid,
                src,
                title=f"{c} ↔ domain {k}, r = {r:.2f}",
                clabel="weight w",
                width=int(ctx.map_width * 0.8),
            )
            figs.append(fig)
        if figs:
            out.append(row(figs))
    if cls is not None and "correlation" in cls:
        c = cls["correlation"]
        rows_ = [str(v) for v in c[c.dims[0]].values]
        cols = [str(v) for v in c[c.dims[1]].values]
        match = None
        if "matched_component" in cls:
            labels = list(c[c.dims[1]].values)
            match = np.array(
                [
                    labels.index(v) if v in labels else -1
                    for v in cls["matched_component"].values
                ]
            )
        out.append(
            rf.heatmap_figure(
                c.values,
                rows_,
                cols,
                title="PTE class vs domain",
                row_label="PTE class",
                col_label="ONMF domain",
                match=match,
            )
        )
    return out


def _bayes_section(tree, ctx):
    """Each domain's absorption spectrum decomposed into edge step, white line and
    Gaussian peaks (paper 2.7, eqs. 14-15), with the number of peaks K chosen by
    the Bayes free energy F; and the posterior of the white-line energy E_WL of
    every domain side by side."""
    ds = _group(tree, "bayes")
    comps = list(ds["component"].values) if "component" in ds.dims else [None]
    fits = []
    for c in comps:
        d = ds.sel(component=c) if c is not None else ds
        energy = d["energy"].values
        k = int(d["k"]) if "k" in d else None
        t = f"Domain {c}" if c is not None else "Spectrum"
        fig = rf.spectra_figure(
            t + (f": K = {k} peaks" if k is not None else ""),
            "Normalised absorbance",
            width=360,
            height=240,
            name=f"report_bayes_fit_{c}",
        )
        data = rb.data_of(d)
        if data is not None:
            fig.scatter(energy, data, color="black", size=3, legend_label="data")
        fig.line(
            energy, d["fit"].values, color="#D55E00", line_width=2.5, legend_label="fit"
        )
        for i, (name, part) in enumerate(rb.parts_of(d).items()):
            fig.line(
                energy,
                part,
                color=rf.PALETTE[(i + 1) % len(rf.PALETTE)],
                line_dash="dashed" if i < 2 else "solid",
                line_width=1.5,
                legend_label=name,
            )
        rf.finish_legend(fig)
        fits.append(fig)
    out = [row(fits[j : j + 3]) for j in range(0, len(fits), 3)]
    extra = []
    if "free_energy" in ds or "free_energy_min" in ds:
        ffig = rf.spectra_figure(
            "Free energy F (minimum over noise level)",
            "F",
            x_label="Number of peaks K",
            width=340,
            height=240,
        )
        ffig.xaxis.ticker = [int(k) for k in ds["K"].values] if "K" in ds else []
        for i, c in enumerate(comps):
            ks, f, _ = rb.free_energy_of(rb.select(ds, c))
            color = rf.PALETTE[i % len(rf.PALETTE)]
            label = f"domain {c}" if c is not None else "F"
            ffig.line(ks, f, color=color, line_width=2, legend_label=label)
            ffig.scatter(ks, f, color=color, size=6, legend_label=label)
        rf.finish_legend(ffig)
        ffig.legend.location = "top_right"
        extra.append(ffig)
    if "chain" in ds and "E_WL" in ds["param"].values:
        efig = rf.spectra_figure(
            "Posterior of E_WL, all domains",
            "Density (1/eV)",
            x_label="White-line energy E_WL (eV)",
            width=380,
            height=240,
            name="report_ewl",
        )
        edges, dens = rb.posterior_histograms(ds, "E_WL")
        for i, (c, counts) in enumerate(dens.items()):
            color = rf.PALETTE[i % len(rf.PALETTE)]
            efig.quad(
                top=counts,
                bottom=0,
                left=edges[:-1],
                right=edges[1:],
                fill_color=color,
                fill_alpha=0.4,
                line_color=color,
                legend_label=f"domain {c}" if c is not None else "E_WL",
            )
        rf.finish_legend(efig)
        efig.legend.location = "top_right"
        extra.append(efig)
    if "map" in ds and "E_WL" in ds["param"].values:
        rows_ = []
        for c in comps:
            d = ds.sel(component=c) if c is not None else ds
            m = float(d["map"].sel(param="E_WL"))
            iv = ""
            if "interval" in d:
                lo, hi = d["interval"].sel(param="E_WL").values[:2]
                iv = f"[{lo:.2f}, {hi:.2f}]"
            k = str(int(d["k"])) if "k" in d else ""
            rows_.append((str(c), f"{m:.2f}", iv, k))
        extra.append(
            Div(
                text=rf.html_table(
                    rows_, ("domain", "E_WL MAP (eV)", "credible interval (eV)", "K")
                )
            )
        )
    if extra:
        out.append(row(extra))
    return out


# -- provenance -------------------------------------------------------------------


def _provenance_html(tree) -> str:
    blocks = []
    for node in tree.subtree:
        attrs = dict(node.attrs)
        if not attrs:
            continue
        name = node.path if node.path != "/" else "/ (analysis)"
        rows = []
        for key, value in attrs.items():
            if key == "params_json" or key.endswith("_json"):
                try:
                    parsed = json.loads(value)
                except (TypeError, ValueError):
                    parsed = None
                if isinstance(parsed, dict):
                    prefix = "" if key == "params_json" else key[:-5] + "."
                    for k2, v2 in parsed.items():
                        rows.append((f"{prefix}{k2}", json.dumps(v2)))
                    continue
            rows.append((key, str(value)))
        blocks.append(
            f"<h4 style='margin:10px 0 2px 0'>{_esc(name)}</h4>"
            + rf.html_table(rows, ("setting", "value"))
        )
    versions = [("python", platform.python_version()), ("xasviz", __version__)]
    for pkg in _PACKAGES:
        try:
            versions.append((pkg, importlib.metadata.version(pkg)))
        except importlib.metadata.PackageNotFoundError:
            versions.append((pkg, "not installed"))
    blocks.append(
        "<h4 style='margin:10px 0 2px 0'>Package versions (report)</h4>"
        + rf.html_table(versions, ("package", "version"))
    )
    return "".join(blocks)


class _CallableModule(types.ModuleType):
    """Importing ``xasviz.report`` (the module) binds it as the package
    attribute ``xasviz.report``, shadowing the function of the same name; a
    callable module keeps ``xasviz.report(results, path)`` working either way."""

    def __call__(self, *args, **kwargs):
        return report(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
