"""Tests of the cross-checks: k-means, correlation tables, PTE map, D1-D3."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import optimize

from xasviz import DataQualityWarning, StackValidationError
from xasviz.compare import correlate, kmeans, peak_top_energy, pte_classes
from xasviz.synthetic import absorption_spectrum, make_stack

WINDOW = (7705.0, 7722.0)  # white line of make_stack's default energy range


@pytest.fixture(scope="module")
def planted():
    # "Moderate" noise: sigma is ~5 % of the white-line height (30 dB).
    return make_stack(size=48, n_energy=100, n_domains=4, snr_db=30, rng=7)


def true_peak_top(s, k, window=WINDOW):
    """Maximum of the planted, noise-free spectrum k inside ``window``.

    make_stack keeps the peak heights to itself, but they enter the model
    linearly: recover them from the noise-free spectrum by least squares
    (residual ~1e-15 checked), then maximise the analytic curve.
    """
    e = s.spectra["energy"].values
    span = e[-1] - e[0]
    p = s.peaks.isel(component=k)
    shape = dict(
        e0=float(p.e0),
        edge_width=0.05 * span,
        e_wl=float(p.e_wl),
        wl_width=0.04 * span,
        e_peak2=float(p.e_peak2),
        peak2_width=0.06 * span,
    )

    def curve(x, h1, h2):
        return absorption_spectrum(
            np.atleast_1d(x), **shape, wl_height=h1, peak2_height=h2
        )

    edge = curve(e, 0, 0)
    basis = np.stack([curve(e, 1, 0) - edge, curve(e, 0, 1) - edge], 1)
    y = s.spectra.values[k]
    h, *_ = np.linalg.lstsq(basis, y - edge, rcond=None)
    assert np.abs(basis @ h + edge - y).max() < 1e-9
    inside = np.flatnonzero((e >= window[0]) & (e <= window[1]))
    i = inside[np.argmax(y[inside])]
    res = optimize.minimize_scalar(
        lambda x: -curve(x, *h)[0],
        bounds=(e[i - 1], e[i + 1]),
        method="bounded",
        options={"xatol": 1e-9},
    )
    return res.x


# ------------------------------------------------------------------ PTE


def gaussians(centres, widths, amps, energy):
    return amps[:, None] * np.exp(
        -0.5 * ((energy - centres[:, None]) / widths[:, None]) ** 2
    )


@pytest.mark.parametrize("method", ["skew_gauss", "gauss"])
def test_pte_recovers_exact_gaussians_on_uneven_grid(method):
    rng = np.random.default_rng(0)
    # Uneven grid, finer over the peaks, as STXM scans are.
    energy = np.unique(np.r_[np.linspace(700, 720, 41), np.linspace(705, 712, 57)])
    n = 300
    c = rng.uniform(706, 711, n)
    w = rng.uniform(0.6, 1.5, n)
    a = rng.uniform(0.5, 2.0, n)
    da = xr.DataArray(
        gaussians(c, w, a, energy),
        dims=("spectrum", "energy"),
        coords={"energy": energy},
    )
    res = peak_top_energy(da, window=(704, 713), half_width=3, method=method)
    assert res["pte"].dims == ("spectrum",)
    assert not res["mask"].any()
    # Noise-free Gaussians are inside both models: the fit is exact up to
    # the solver's tolerance.
    np.testing.assert_allclose(res["pte"], c, atol=1e-6)
    np.testing.assert_allclose(res["width"], w, rtol=1e-4)
    np.testing.assert_allclose(res["amplitude"], a, rtol=1e-4)
    np.testing.assert_array_less(1 - 1e-8, res["quality"].values)


def test_pte_matches_planted_white_lines(planted):
    s = planted
    res = peak_top_energy(s.stack, window=WINDOW)
    labels = s.domains.argmax("component").values
    fitted = (~res["mask"]).mean()
    assert fitted > 0.95
    for k in range(s.domains.sizes["component"]):
        top = true_peak_top(s, k)
        median = np.nanmedian(res["pte"].values[labels == k])
        assert abs(median - top) < 0.1, (k, median, top)


def test_pte_of_domain_spectra_matches_planted_maximum(planted):
    """The paper's Table 3: PTE of each domain's mean absorption spectrum."""
    s = planted
    w = s.domains.values.reshape(s.domains.shape[0], -1)
    x = s.stack.values.reshape(-1, s.stack.sizes["energy"])
    absorption = xr.DataArray(
        (w @ x) / w.sum(1)[:, None],
        dims=("component", "energy"),
        coords={"component": s.domains["component"], "energy": s.stack["energy"]},
    )
    half = peak_top_energy(s.stack, window=WINDOW).attrs["half_width"]
    res = peak_top_energy(absorption, window=WINDOW, half_width=half)
    for k in range(absorption.sizes["component"]):
        assert abs(float(res["pte"][k]) - true_peak_top(s, k)) < 0.05


def test_pte_flags_flat_edge_and_masked_pixels():
    energy = np.linspace(700, 720, 60)
    rising = (energy - 700) / 20  # maximum at the last energy: no peak
    peak = np.exp(-0.5 * ((energy - 710) / 1.5) ** 2)
    data = np.stack([np.ones(60), rising, peak, np.full(60, np.nan), -peak + 1])
    stack = xr.DataArray(
        data.reshape(1, 5, 60), dims=("y", "x", "energy"), coords={"energy": energy}
    )
    with pytest.warns(DataQualityWarning, match="have a fitted peak"):
        res = peak_top_energy(stack, half_width=3)
    status = res["status"].values[0]
    assert status.tolist()[:4] == [2, 2, 0, 1]  # flat max at index 0 is an edge
    assert status[4] != 0  # a dip is not a peak
    assert res["mask"].values[0].tolist() == [True, True, False, True, True]
    assert np.isnan(res["pte"].values[0, [0, 1, 3, 4]]).all()
    assert res["pte"].values[0, 2] == pytest.approx(710, abs=1e-6)


def test_pte_does_not_modify_input_and_accepts_one_spectrum(planted):
    before = planted.stack.copy(deep=True)
    one = planted.spectra.isel(component=0)
    res = peak_top_energy(one, window=WINDOW, half_width=3)
    assert res["pte"].dims == ()
    assert abs(float(res["pte"]) - true_peak_top(planted, 0)) < 0.05
    xr.testing.assert_identical(planted.stack, before)


def test_pte_dask_equals_numpy(planted):
    pytest.importorskip("dask")
    a = peak_top_energy(planted.stack, window=WINDOW)
    b = peak_top_energy(planted.stack.chunk({"y": 16}), window=WINDOW)
    xr.testing.assert_allclose(a["pte"], b["pte"])


def test_pte_bad_input(planted):
    with pytest.raises(StackValidationError, match="outside the energy range"):
        peak_top_energy(planted.stack, window=(8000, 8010))
    with pytest.raises(StackValidationError, match="lo < hi"):
        peak_top_energy(planted.stack, window=(7720, 7705))
    with pytest.raises(StackValidationError, match="at least 5"):
        peak_top_energy(planted.stack, window=(7705, 7706))
    with pytest.raises(StackValidationError, match="'energy' dim"):
        peak_top_energy(np.zeros((3, 3, 10)))
    with pytest.raises(ValueError, match="method must be"):
        peak_top_energy(planted.stack, method="lorentz")
    with pytest.warns(DataQualityWarning, match="clipped"):
        peak_top_energy(planted.stack, window=(7690, 7722))
    empty = planted.stack.where(False)
    with pytest.raises(StackValidationError, match="no spectrum is finite"):
        peak_top_energy(empty, window=WINDOW)


# --------------------------------------------------------------- k-means


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kmeans_recovers_planted_domains(planted, seed):
    res = kmeans(planted.stack, 4, rng=seed, n_init=4, n_threads=1)
    corr = correlate(planted.domains, res, names=("truth", "kmeans"))
    assert (corr["matched_correlation"] >= 0.95).all()
    # Invariants of a one-hot partition and of eq. 12.
    assert (res["domains"].sum("component") == 1).all()
    labels = res["labels"].values
    x = planted.stack.values
    for j in range(4):
        np.testing.assert_allclose(res["spectra"][j], x[labels == j].mean(0))
    inertia = sum(
        ((x[labels == j] - res["spectra"].values[j]) ** 2).sum() for j in range(4)
    )
    assert float(res["inertia"]) == pytest.approx(inertia, rel=1e-10)
    sizes = res["size"].values
    assert (np.diff(sizes) <= 0).all()  # order="size": largest first
    assert res.attrs["seed"] == seed


def test_kmeans_same_seed_same_result_and_masked_pixels(planted):
    stack = planted.stack.copy()
    stack[0, :3] = np.nan
    with pytest.warns(DataQualityWarning, match="masked"):
        a = kmeans(stack, 4, rng=5, n_init=2, n_threads=1)
    with pytest.warns(DataQualityWarning, match="masked"):
        b = kmeans(stack, 4, rng=5, n_init=2, n_threads=1)
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
    assert (a["labels"].values[0, :3] == -1).all()
    assert np.isnan(a["domains"].values[:, 0, :3]).all()
    assert a["mask"].values[0, :3].all()


def test_kmeans_bad_input(planted):
    small = planted.stack.isel(y=slice(0, 2), x=slice(0, 2))
    with pytest.raises(StackValidationError, match="at least 5 valid pixels"):
        kmeans(small, 5, rng=0)
    with pytest.raises(ValueError, match="positive int"):
        kmeans(planted.stack, 0)
    with pytest.raises(ValueError, match="order must be"):
        kmeans(planted.stack, 2, order="random")


# ------------------------------------------------------------ correlate


def random_maps(k=4, ny=9, nx=11, seed=0):
    rng = np.random.default_rng(seed)
    return xr.DataArray(
        rng.random((k, ny, nx)),
        dims=("component", "y", "x"),
        coords={"component": np.arange(1, k + 1)},
        attrs={"method": "onmf"},
    )


def test_correlate_self_is_identity_after_matching():
    m = random_maps()
    res = correlate(m, m)
    assert res["correlation"].dims == ("onmf_a", "onmf_b")
    np.testing.assert_allclose(np.diag(res["correlation"]), 1.0)
    assert res["match"].values.tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(res["matched_correlation"], 1.0)


@pytest.mark.parametrize("seed", range(5))
def test_correlate_recovers_a_permutation(seed):
    m = random_maps(k=6, seed=seed)
    perm = np.random.default_rng(seed).permutation(6)
    other = (m.isel(component=perm) * 3.0).assign_attrs(method="kmeans")
    res = correlate(m, other)
    assert res["correlation"].dims == ("onmf", "kmeans")
    # Map i of the first set sits at position argsort(perm)[i] in the second;
    # scaling does not change a cosine.
    assert res["match"].values.tolist() == np.argsort(perm).tolist()
    np.testing.assert_allclose(res["matched_correlation"], 1.0)


def test_correlate_excludes_nan_pixels_on_both_sides():
    a = random_maps(k=2, seed=1)
    b = random_maps(k=3, seed=2).assign_attrs(method="kmeans")
    a[:, 0, 0] = np.nan
    b[:, 4, 5] = np.nan
    res = correlate(a, b)
    ok = np.ones((9, 11), bool)
    ok[0, 0] = ok[4, 5] = False
    va, vb = a.values[:, ok], b.values[:, ok]
    expect = (va @ vb.T) / np.outer(
        np.linalg.norm(va, axis=1), np.linalg.norm(vb, axis=1)
    )
    np.testing.assert_allclose(res["correlation"], expect)
    assert res.attrs["n_pixels"] == ok.sum()


def test_correlate_rectangular_leaves_rows_unmatched():
    a = random_maps(k=4, seed=3)
    b = a.isel(component=[2, 0]).assign_attrs(method="kmeans")
    res = correlate(a, b)
    assert res["match"].values.tolist() == [1, -1, 0, -1]
    assert res["matched_correlation"].values[[1, 3]].tolist() == [0.0, 0.0]


def test_correlate_bad_input():
    a = random_maps()
    with pytest.raises(StackValidationError, match="different grids"):
        correlate(a, random_maps(nx=12))
    shifted = a.assign_coords(x=np.arange(11) + 5)
    with pytest.raises(StackValidationError, match="different 'x' coordinates"):
        correlate(a.assign_coords(x=np.arange(11)), shifted)
    with pytest.raises(StackValidationError, match="no pixel is finite"):
        correlate(a, a.where(False))
    with pytest.raises(StackValidationError, match="without a 'domains'"):
        correlate(xr.Dataset({"foo": a}), a)
    zero = a.copy()
    zero[0] = 0.0
    with pytest.warns(DataQualityWarning, match="zero on every shared pixel"):
        res = correlate(zero, a)
    assert (res["correlation"][0] == 0).all()


# ----------------------------------------------------------- PTE classes


def planted_pte(seed=0, levels=(7714.0, 7715.0, 7716.0), noise=0.1):
    """Three vertical stripes of domains whose PTE differs by 1 eV."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), [10, 14, 6])[None, :].repeat(20, 0)
    pte = np.asarray(levels)[labels] + rng.normal(0, noise, labels.shape)
    onehot = (labels[None] == np.arange(3)[:, None, None]).astype(float)
    maps = xr.DataArray(
        onehot / np.sqrt(onehot.sum((1, 2)))[:, None, None],
        dims=("component", "y", "x"),
        coords={"component": [1, 2, 3]},
    )
    return xr.DataArray(pte, dims=("y", "x")), maps


def test_pte_classes_find_planted_thresholds():
    pte, maps = planted_pte()
    res = pte_classes(pte, maps)
    e1, e2 = float(res["E1"]), float(res["E2"])
    # With 10-sigma gaps between levels any threshold in a gap separates
    # the domains exactly; the chosen ones must lie in the gaps.
    assert 7714.0 < e1 < 7715.0 < e2 < 7716.0
    assert res["matched_component"].values.tolist() == [3, 2, 1]
    np.testing.assert_allclose(res["matched_correlation"], 1.0)
    assert res["n_pixels"].values.tolist() == [6 * 20, 14 * 20, 10 * 20]
    assert (res["classes"].sum("pte_class") == 1).all()


def test_threshold_scan_equals_direct_computation():
    pte, maps = planted_pte(seed=3, noise=0.6)
    res = pte_classes(pte, maps, n_candidates=25)
    p = pte.values.ravel()
    w = maps.values.reshape(3, -1)
    for t, s3, s1 in zip(
        res["threshold"].values,
        res["d3_score"].values,
        res["d1_score"].values,
        strict=True,
    ):
        d3, d1 = (p <= t).astype(float), (p > t).astype(float)
        cos3 = [d3 @ wk / (np.linalg.norm(d3) * np.linalg.norm(wk)) for wk in w]
        cos1 = [
            d1 @ wk / (np.linalg.norm(d1) * np.linalg.norm(wk)) if d1.any() else 0.0
            for wk in w
        ]
        assert s3 == pytest.approx(max(cos3), rel=1e-12)
        assert s1 == pytest.approx(max(cos1), rel=1e-12, abs=1e-15)
    i = int(np.argmax(res["d3_score"].values))
    j = int(np.argmax(res["d1_score"].values))
    if i <= j:  # separate maxima in order: they are the answer (section 2.6)
        assert float(res["E1"]) == res["threshold"].values[i]
        assert float(res["E2"]) == res["threshold"].values[j]


def test_pte_classes_from_results_with_absorption(planted):
    s = planted
    pte = peak_top_energy(s.stack, window=WINDOW)
    onmf_like = xr.Dataset(
        {"domains": s.domains, "absorption": s.spectra}, attrs={"method": "onmf"}
    )
    res = pte_classes(pte, onmf_like)
    tops = np.array([true_peak_top(s, k) for k in range(4)])
    np.testing.assert_allclose(res["domain_pte"], tops, atol=0.05)
    assert float(res["E1"]) <= float(res["E2"])
    # The domain paired with D3 has the lowest PTE of the three paired ones
    # and the one paired with D1 the highest (the check of section 3.4).
    mp = res["matched_pte"].values
    assert mp[2] <= mp[1] <= mp[0]


def test_pte_classes_bad_input():
    pte, maps = planted_pte()
    with pytest.raises(StackValidationError, match="different grids"):
        pte_classes(pte.isel(x=slice(0, 20)), maps)
    with pytest.raises(StackValidationError, match="at least 3"):
        pte_classes(pte.where(False), maps)
    with pytest.raises(StackValidationError, match="dims \\(y, x\\)"):
        pte_classes(pte.expand_dims("z"), maps)


def test_pte_classes_keeps_a_middle_class():
    # Two domains split by PTE at one energy: section 2.6's separate maxima
    # both land on that energy and leave D2 empty; min_fraction keeps D2.
    rng = np.random.default_rng(0)
    ny, nx = 20, 20
    left = np.zeros((ny, nx), bool)
    left[:, : nx // 2] = True
    pte_map = np.where(left, 708.0, 710.0) + rng.normal(0, 0.05, (ny, nx))
    pte = xr.DataArray(
        pte_map, dims=("y", "x"), coords={"y": np.arange(ny), "x": np.arange(nx)}
    )
    maps = np.stack([left, ~left]).astype(float)
    domains = xr.DataArray(
        maps,
        dims=("component", "y", "x"),
        coords={"component": [1, 2], "y": np.arange(ny), "x": np.arange(nx)},
    )
    paper = pte_classes(pte, domains, min_fraction=0.0)
    kept = pte_classes(pte, domains)
    n_d2 = lambda ds: int(ds["classes"].sel(pte_class="D2").sum())  # noqa: E731
    assert n_d2(paper) == 0
    assert n_d2(kept) >= 0.05 * ny * nx
    assert float(kept["E1"]) < float(kept["E2"])
    with pytest.raises(ValueError, match="min_fraction"):
        pte_classes(pte, domains, min_fraction=1.5)
