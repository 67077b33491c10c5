"""State tests of the views: drive params and streams, compare with numpy."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import panel as pn
import pytest
import xarray as xr
from numpy.testing import assert_allclose, assert_array_equal

import xasviz
from xasviz.views import (
    BayesView,
    CrossCheckView,
    DomainExplorer,
    PTEView,
    RankSelector,
    StackExplorer,
    explore,
    serve,
)
from xasviz.views.crosscheck import threshold_classes


def _curve(overlay, label_start):
    for el in overlay:
        if el.label.startswith(label_start):
            return el
    raise AssertionError(f"no curve labelled {label_start!r} in {overlay}")


def _group(results, name):
    return results[name].to_dataset()


# -- DomainExplorer --------------------------------------------------------


@pytest.fixture
def domains(results):
    view = DomainExplorer.from_results(results)
    view.__panel__()
    return view


def test_domain_tap_selects_pixel_and_component(results, domains):
    x = results["input"]["x"].values
    # A click a little off a pixel centre lands on the nearest pixel.
    domains.taps[2].event(x=x[10] + 0.3, y=5 - 0.4)
    assert (domains.component, domains.x, domains.y) == (2, 10, 5)


@pytest.mark.parametrize("kind", ["absorption", "difference"])
def test_domain_pixel_spectrum_is_model_of_that_pixel(results, domains, kind):
    onmf, inp = _group(results, "onmf"), _group(results, "input")
    domains.kind = kind
    domains.taps[1].event(x=7, y=9)
    w = onmf["domains"].values[:, 9, 7]
    model = w @ onmf["spectra"].values
    data = inp["stack"].values[9, 7]
    if kind == "absorption":
        model = model + inp["reference"].values
    else:
        data = data - inp["reference"].values
    shown = domains.plots["pixel"][()]
    assert_allclose(_curve(shown, "model").dimension_values("mu"), model)
    assert_allclose(_curve(shown, "measured").dimension_values("mu"), data)
    # The planted stack is W H^T + b plus 1e-3 noise: the model must fit it.
    assert np.max(np.abs(model - data)) < 6e-3
    weights = domains.plots["weights"][()]
    assert_allclose(weights.dimension_values("weight"), w)


def test_domain_masked_pixel_says_so(domains):
    domains.taps[1].event(x=0, y=0)
    shown = domains.plots["pixel"][()]
    assert "masked" in shown.opts.get().kwargs["title"]
    assert np.all(np.isnan(_curve(shown, "model").dimension_values("mu")))


def test_domain_selection_highlights_spectrum(domains):
    domains.component = 3
    shown = domains.plots["spectra"][()]
    widths = {el.label: el.opts.get().kwargs["line_width"] for el in shown}
    assert widths["Domain 3"] > max(w for k, w in widths.items() if k != "Domain 3")


def test_domain_rejects_mismatched_stack(results):
    onmf = _group(results, "onmf")
    stack = _group(results, "input")["stack"].isel(x=slice(0, 5))
    with pytest.raises(xasviz.StackValidationError, match="stack has shape"):
        DomainExplorer(onmf, stack=stack)


def test_domain_rejects_wrong_dataset(results):
    with pytest.raises(xasviz.StackValidationError, match="lacks the variables"):
        DomainExplorer(_group(results, "bcv"))


# -- StackExplorer ----------------------------------------------------------


def test_stack_tap_energy_and_box(results):
    stack = _group(results, "input")["stack"]
    raw = stack * 2.0 + 1.0  # not normalised: endpoint normalisation is shown
    view = StackExplorer(raw, reference=_group(results, "input")["reference"])
    view.__panel__()
    view.tap.event(x=3.2, y=8.9)
    assert (view.x, view.y) == (3, 9)
    spectra = view.plots["spectra"][()]
    s = raw.values[9, 3]
    assert_allclose(_curve(spectra, "pixel: raw").dimension_values("mu"), s)
    norm = (s - s[0]) / (s[-1] - s[0])
    assert_allclose(_curve(spectra, "pixel: normalised").dimension_values("mu"), norm)

    view.energy = float(raw["energy"][5])
    img = view.plots["map"][()]
    assert_allclose(img.dimension_values("value", flat=False), raw.values[:, :, 5])

    # Box over rows 0-2, columns 0-3: the masked pixel (0, 0) is skipped.
    view.box.event(bounds=(-0.5, -0.5, 3.4, 2.4))
    block = raw.values[0:3, 0:4].reshape(-1, raw.sizes["energy"])
    expect = block[np.isfinite(block).all(1)].mean(0)
    assert_allclose(view.region_mean(), expect)
    assert_allclose(
        _curve(view.plots["spectra"][()], "box mean").dimension_values("mu"), expect
    )


def test_stack_rejects_bad_reference(results):
    stack = _group(results, "input")["stack"]
    ref = xr.DataArray(np.ones(5), dims="energy", coords={"energy": np.arange(5.0)})
    with pytest.raises(xasviz.StackValidationError, match="reference has 5 energies"):
        StackExplorer(stack, reference=ref)


def test_stack_from_results_offers_maps(results):
    view = StackExplorer.from_results(results)
    assert {"edge step", "PTE (eV)"} <= set(view.param.image.objects)
    view.image = "PTE (eV)"
    assert_array_equal(view.current_map().values, _group(results, "pte")["pte"].values)


# -- RankSelector ------------------------------------------------------------


def test_rank_tap_and_cached_compute(results):
    onmf = _group(results, "onmf")
    calls = []

    def compute(rank):
        calls.append(rank)
        return onmf.isel(component=slice(0, rank))

    view = RankSelector(_group(results, "bcv"), compute=compute)
    assert view.rank == 3  # best_rank of the planted curve
    view.__panel__()
    view.tap.event(x=2.2, y=0)
    assert view.rank == 2
    view.rank = 3
    view.rank = 2
    assert calls == [3, 2]  # each rank computed once, then cached
    assert view.factorization(2).sizes["component"] == 2
    bcv_shown = view.plots["bcv"][()]
    vlines = [el for el in bcv_shown if isinstance(el, hv.VLine)]
    assert [v.data for v in vlines] == [2]


def test_rank_without_factorization(results):
    view = RankSelector.from_results(results)
    assert view.factorization(5) is None
    assert view.factorization(3) is not None
    with pytest.raises(TypeError, match="compute must be a callable"):
        RankSelector(_group(results, "bcv"), compute=3)


# -- Cross-checks -------------------------------------------------------------


def test_crosscheck_matches_and_heatmap(results):
    view = CrossCheckView.from_results(results)
    corr = _group(results, "correlation_kmeans")
    for k in corr["onmf"].values:
        view.pair = int(k)
        assert view.matched() == int(
            corr["kmeans"].values[int(corr["match"].sel(onmf=k))]
        )
    # The title of the matched map quotes the matched pair's cosine, which is
    # not always the largest of its row.
    corr = corr.copy()
    corr["match"] = ("onmf", np.roll(corr["match"].values, 1))
    corr = corr.drop_vars("matched_correlation")
    view2 = CrossCheckView(
        corr, a=_group(results, "onmf"), b=_group(results, "kmeans"), pair=1
    )
    right = view2._pair_maps().object.values()[1]
    expect = float(corr["correlation"].values[0, corr["match"].values[0]])
    assert right.opts.get().kwargs["title"].endswith(f"(r = {expect:.2f})")
    assert expect < corr["correlation"].values[0].max()
    heat = view.__panel__()[0].object.HeatMap.I
    got = heat.dimension_values("correlation")
    assert_allclose(np.sort(got), np.sort(corr["correlation"].values.ravel()))


def test_pte_sliders_rethreshold(results):
    view = PTEView.from_results(results)
    pte = _group(results, "pte")["pte"].values
    assert (view.E1, view.E2) == (7721.0, 7723.0)
    view.__panel__()
    view.param.update(E1=7721.0, E2=7723.5)  # any order: D1 is above the upper
    cls = view.classes()
    ok = np.isfinite(pte)
    assert_array_equal(cls[0][ok] == 1, pte[ok] > 7723.5)
    assert_array_equal(cls[2][ok] == 1, pte[ok] <= 7721.0)
    assert_array_equal(np.nansum(cls, axis=0)[ok], 1.0)
    assert np.all(np.isnan(cls[:, ~ok]))
    shown = view.plots["classes"][()].dimension_values("value", flat=False)
    assert_array_equal(shown[ok], np.argmax(cls, axis=0)[ok] + 1)
    # Each class's matched domain is the planted region with that PTE.
    view.param.update(E1=7723.0, E2=7721.0)
    assert list(np.argmax(view.correlation(), axis=1)) == [2, 1, 0]


def test_threshold_classes_partition():
    pte = np.array([[1.0, 2.0, 3.0, np.nan]])
    cls = threshold_classes(pte, 2.5, 1.5)
    assert_array_equal(cls[:, 0, :3], np.eye(3)[::-1])
    assert np.all(np.isnan(cls[:, 0, 3]))


# -- Bayes -----------------------------------------------------------------------


def test_bayes_view_shows_data_fit_and_parts(results):
    ds = _group(results, "bayes")
    view = BayesView(ds, component=2)
    view.__panel__()
    from xasviz.views.bayes import bayes_fit_plot, ewl_posterior_plot, free_energy_plot

    fit = bayes_fit_plot(ds, 2)
    d = ds.sel(component=2)
    assert_allclose(_curve(fit, "data").dimension_values("mu"), d["data"])
    assert_allclose(
        _curve(fit, "white line").dimension_values("mu"),
        d["components"].sel(peak="white_line"),
    )
    # The all-NaN padding row (a peak this domain does not have) is not drawn.
    assert [el.label for el in fit] == ["data", "fit", "step", "white line", "gauss 1"]
    fe = free_energy_plot(ds, 2)
    assert_allclose(fe.Curve.I.dimension_values("F"), d["free_energy_min"])
    post = ewl_posterior_plot(ds)
    assert len(post) == ds.sizes["component"]
    # One set of bins for all domains, each a normalised density.
    edges = [h.edges for h in post]
    for e, h in zip(edges, post):
        assert_allclose(e, edges[0])
        assert_allclose(np.sum(h.dimension_values("density") * np.diff(e)), 1.0)


# -- explore / serve ---------------------------------------------------------------


def test_explore_lays_out_every_group(results):
    tabs = explore(results)
    assert tabs._names == [
        "Stack",
        "Rank (BCV)",
        "Domains",
        "ONMF vs k-means",
        "Peak-top energy",
        "Bayes",
    ]
    assert isinstance(explore(_group(results, "input")["stack"]), StackExplorer)
    only = xr.DataTree.from_dict({"onmf": _group(results, "onmf")})
    assert explore(only)._names == ["Domains"]


def test_serve_refuses_other_interfaces(results):
    with pytest.raises(ValueError, match="loopback"):
        serve(results, address="0.0.0.0")


def test_serve_threaded_on_loopback(results):
    server = serve(DomainExplorer.from_results(results), port=0, threaded=True)
    try:
        assert isinstance(server, pn.io.server.StoppableThread)
    finally:
        server.stop()
        # stop() only asks the thread to end; wait for it, so that the cleanup
        # fixture does not find it half-stopped on a busy machine.
        server.join(timeout=30)
    assert not server.is_alive()


def test_extension_bundles_javascript():
    from xasviz.views import extension

    extension()
    extension()  # idempotent
    assert pn.config.inline is True
