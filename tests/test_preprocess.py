"""Preprocessing: planted truths, exact identities, masks and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from xasviz import DataQualityWarning, StackValidationError
from xasviz.preprocess import (
    apply_mask,
    bin_stack,
    crop,
    dead_pixel_mask,
    normalize,
    subtract_reference,
    to_optical_density,
)

ENERGY = np.arange(700.0, 740.0 + 1e-9, 0.5)  # 81 energies, uniform grid
REF = xr.DataArray(np.ones(ENERGY.size), dims="energy", coords={"energy": ENERGY})


def smoothstep(t):
    """0 below -2 eV, 1 above +2 eV, a symmetric cubic in between."""
    u = np.clip((t + 2.0) / 4.0, 0.0, 1.0)
    return 3 * u**2 - 2 * u**3


def planted(rng=0, ny=4, nx=5, e0_choices=(714.0, 715.0, 716.0)):
    """mu = a + b (E - e0) + J H(E - e0): edge step J, normalised spectrum H.

    The pre-edge is exactly a line and the post-edge exactly a line, so a
    linear pre-edge fit and an nnorm=1 post-edge fit are exact, and the edge
    step post(e0) - pre(e0) equals J whatever e0 inside the flat parts.
    """
    rng = np.random.default_rng(rng)
    a = rng.uniform(0.1, 0.5, (ny, nx, 1))
    b = rng.uniform(-0.005, 0.005, (ny, nx, 1))
    jump = rng.uniform(0.5, 2.0, (ny, nx, 1))
    e0 = rng.choice(e0_choices, (ny, nx, 1))
    t = ENERGY - e0
    mu = a + b * t + jump * smoothstep(t)
    stack = xr.DataArray(
        mu,
        dims=("y", "x", "energy"),
        coords={"energy": ENERGY, "y": np.arange(ny), "x": np.arange(nx)},
        attrs={"units": "optical density"},
    )
    return stack, jump[..., 0], e0[..., 0], smoothstep(t)


# ---------------------------------------------------------------------------
# endpoints (paper section 2.1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_endpoints_exactly_zero_and_one(dtype):
    stack, *_ = planted()
    stack = stack.astype(dtype)
    before = stack.copy(deep=True)
    out = normalize(stack)
    assert out.dtype == dtype and out.dims == stack.dims
    # (b - a) / (b - a) is exactly 1 in IEEE arithmetic: no tolerance needed.
    assert np.all(out.isel(energy=0).values == 0.0)
    assert np.all(out.isel(energy=-1).values == 1.0)
    mu = stack.values.astype(np.float64)
    expected = (mu - mu[..., :1]) / (mu[..., -1:] - mu[..., :1])
    np.testing.assert_allclose(
        out.values, expected, rtol=1e-5 if dtype == np.float32 else 1e-12
    )
    xr.testing.assert_identical(stack, before)
    settings = json.loads(out.attrs["normalization_json"])
    assert settings["e_lo"] == 700.0 and settings["e_hi"] == 740.0
    assert out.attrs["units"] == "normalized"


def test_endpoints_at_chosen_points():
    stack, *_ = planted()
    out = normalize(stack, points=(705.1, 729.9))
    i_lo = int(np.flatnonzero(ENERGY == 705.0)[0])
    i_hi = int(np.flatnonzero(ENERGY == 730.0)[0])
    assert np.all(out.isel(energy=i_lo).values == 0.0)
    assert np.all(out.isel(energy=i_hi).values == 1.0)
    with pytest.raises(StackValidationError, match="must lie below"):
        normalize(stack, points=(730, 705))
    with pytest.raises(StackValidationError, match="two energies"):
        normalize(stack, points=705)


# ---------------------------------------------------------------------------
# edge step (Athena/Larch style)


def test_edge_step_recovers_planted_step_with_given_e0():
    stack, jump, _, _ = planted(e0_choices=(715.0,))
    ds = normalize(stack, "edge_step", e0=715.0, nnorm=1, return_params=True)
    # Both fits are exact (planted lines), so only rounding remains.
    np.testing.assert_allclose(ds["edge_step"].values, jump, rtol=1e-10)
    np.testing.assert_allclose(
        ds["normalized"].values,
        smoothstep(ENERGY - 715.0) + 0 * jump[..., None],
        atol=1e-10,
    )
    assert "e0" not in ds
    settings = json.loads(ds.attrs["normalization_json"])
    assert settings["e0"] == 715.0 and settings["nnorm"] == 1
    # defaults: first half below e0, second half above it
    assert settings["pre1"] == -15.0 and settings["pre2"] == -7.5
    assert settings["norm1"] == 12.5 and settings["norm2"] == 25.0


def test_edge_step_finds_e0_per_pixel_and_recovers_truth():
    stack, jump, e0, h = planted(rng=3)
    ds = normalize(stack, "edge_step", nnorm=1, return_params=True)
    # The planted edge is symmetric about e0 on a uniform grid, so the
    # derivative maximum (and its parabolic refinement) falls on e0 exactly.
    np.testing.assert_allclose(ds["e0"].values, e0, atol=1e-6)
    np.testing.assert_allclose(ds["edge_step"].values, jump, rtol=1e-9)
    np.testing.assert_allclose(ds["normalized"].values, h, atol=1e-9)
    assert ds["e0"].dims == ("y", "x") and ds["edge_step"].dims == ("y", "x")
    assert ds["e0"].attrs["units"] == "eV"
    assert "edge_step" not in normalize(stack, "edge_step", nnorm=1).coords
    ends = normalize(stack, return_params=True)["edge_step"].values
    np.testing.assert_allclose(ends, stack.values[..., -1] - stack.values[..., 0])


def test_edge_step_e0_off_grid_within_half_a_step():
    stack, jump, e0, _ = planted(rng=4, e0_choices=(714.8, 715.15))
    ds = normalize(stack, "edge_step", nnorm=1, return_params=True)
    assert np.abs(ds["e0"].values - e0).max() < 0.25  # half the 0.5 eV grid step
    np.testing.assert_allclose(ds["edge_step"].values, jump, rtol=1e-9)


def test_spectrum_is_normalised_like_a_pixel():
    stack, jump, e0, h = planted(rng=5)
    spec = stack.isel(y=1, x=2)
    for method, kw in (("endpoints", {}), ("edge_step", {"nnorm": 1})):
        one = normalize(spec, method, **kw)
        all_ = normalize(stack, method, **kw).isel(y=1, x=2)
        assert one.dims == ("energy",)
        np.testing.assert_allclose(one.values, all_.values, atol=1e-9)
    np.testing.assert_allclose(
        normalize(spec, "edge_step", nnorm=1).values, h[1, 2], atol=1e-9
    )


def test_default_nnorm_depends_on_window_width():
    stack, *_ = planted()
    out = normalize(stack, "edge_step", e0=715.0)
    assert json.loads(out.attrs["normalization_json"])["nnorm"] == 0
    out = normalize(
        stack, "edge_step", e0=715.0, norm1=-1.0, norm2=25.0, pre1=-15, pre2=-10
    )
    assert json.loads(out.attrs["normalization_json"])["nnorm"] == 0
    # a 35 eV window gets a line
    wide = stack.interp(
        energy=np.arange(700.0, 760.5, 0.5), kwargs={"fill_value": "extrapolate"}
    )
    out = normalize(wide, "edge_step", e0=715.0, norm1=5.0)
    s = json.loads(out.attrs["normalization_json"])
    assert s["norm2"] - s["norm1"] == 40.0 and s["nnorm"] == 1


def test_windows_too_narrow_or_reversed_are_refused():
    stack, *_ = planted()
    with pytest.raises(StackValidationError, match="pre-edge window .* holds 0"):
        normalize(stack, "edge_step", e0=715.0, pre1=-40, pre2=-30)
    with pytest.raises(StackValidationError, match="pre1 < pre2"):
        normalize(stack, "edge_step", e0=715.0, pre1=-5, pre2=-10)
    with pytest.raises(StackValidationError, match="outside the data"):
        normalize(stack, "edge_step", e0=800.0)
    with pytest.raises(StackValidationError, match="nnorm"):
        normalize(stack, "edge_step", e0=715.0, nnorm=7)
    with pytest.raises(ValueError, match="method must be"):
        normalize(stack, "larch")


# ---------------------------------------------------------------------------
# masking of unusable pixels


def planted_bad():
    stack, jump, e0, h = planted(rng=6)
    mu = stack.values.copy()
    t = ENERGY - 715.0
    mu[0, 0] = 0.3  # constant
    mu[0, 1] = 0.0  # dead: all zero
    mu[0, 2] = 0.2 - 1.0 * smoothstep(t)  # negative edge step
    mu[0, 3] = 0.2 + 1e-3 * smoothstep(t)  # far below 5 % of the median step
    mu[1, 0, 10] = np.nan  # one bad energy
    return stack.copy(data=mu)


@pytest.mark.parametrize("method", ["endpoints", "edge_step"])
def test_bad_pixels_masked_in_one_warning(method):
    stack = planted_bad()
    with pytest.warns(DataQualityWarning, match="5 of 20 pixels were masked") as rec:
        out = normalize(stack, method)
    assert len(rec) == 1
    assert rec[0].filename == __file__  # points at the caller's line
    msg = str(rec[0].message)
    assert "1 holding NaN or inf" in msg and "2 constant or all-zero" in msg
    expected = np.zeros((4, 5), bool)
    expected[0, :4] = True
    expected[1, 0] = True
    np.testing.assert_array_equal(out["mask"].values, expected)
    assert np.all(np.isnan(out.values[expected]))
    assert np.all(np.isfinite(out.values[~expected]))
    assert json.loads(out.attrs["normalization_json"])["n_masked"] == 5
    with pytest.warns(DataQualityWarning, match="5 of 20"):
        step = normalize(stack, method, return_params=True)["edge_step"].values
    assert np.all(np.isnan(step[expected]))
    assert np.all(step[~expected] > 0)


def test_absolute_min_edge_step():
    stack, jump, *_ = planted(rng=7)
    limit = float(np.median(jump))
    with pytest.warns(DataQualityWarning, match="below") as rec:
        ds = normalize(
            stack,
            "edge_step",
            e0=715.0,
            nnorm=1,
            min_edge_step=limit,
            return_params=True,
        )
    assert len(rec) == 1
    np.testing.assert_array_equal(ds["normalized"]["mask"].values, jump < limit)
    assert np.all(np.isnan(ds["edge_step"].values[jump < limit]))


def test_already_masked_pixels_are_not_counted_again():
    stack, *_ = planted()
    m = np.zeros((4, 5), bool)
    m[2, 2] = True
    masked = apply_mask(stack, m)
    out = normalize(masked)  # no warning: nothing new was masked
    np.testing.assert_array_equal(out["mask"].values, m)


def test_all_pixels_unusable_raises_with_hint():
    stack, *_ = planted()
    with pytest.raises(StackValidationError, match="to_optical_density"):
        normalize(-stack)
    with pytest.raises(StackValidationError, match="edge step"):
        normalize(-stack.isel(y=0, x=0))


# ---------------------------------------------------------------------------
# dask


@pytest.mark.parametrize("method", ["endpoints", "edge_step"])
def test_dask_backed_stack_gives_the_same_result(method):
    dask_array = pytest.importorskip("dask.array")
    stack = planted_bad()
    with pytest.warns(DataQualityWarning, match="5 of 20"):
        ref = normalize(stack, method)
    lazy = stack.chunk({"y": 2, "x": 3, "energy": 40})
    with pytest.warns(DataQualityWarning, match="5 of 20"):
        out = normalize(lazy, method)
    assert isinstance(out.data, dask_array.Array)
    np.testing.assert_allclose(out.values, ref.values, rtol=1e-12)
    np.testing.assert_array_equal(out["mask"].values, ref["mask"].values)


# ---------------------------------------------------------------------------
# subtract_reference (eq. 1)


def test_subtract_reference_same_grid_and_interpolated():
    stack, *_ = planted()
    ref = xr.DataArray(
        0.1 + 0.01 * (ENERGY - 700),
        dims="energy",
        coords={"energy": ENERGY},
        name="LiCoO2",
    )
    out = subtract_reference(stack, ref)
    np.testing.assert_allclose(out.values, stack.values - ref.values, rtol=1e-14)
    assert out.attrs["reference_interpolated"] == 0
    assert out.attrs["reference_name"] == "LiCoO2"
    # a finer grid: a linear reference is interpolated exactly
    fine = np.linspace(699.0, 741.0, 337)
    ref_fine = xr.DataArray(
        0.1 + 0.01 * (fine - 700), dims="energy", coords={"energy": fine}
    )
    out2 = subtract_reference(stack, ref_fine)
    np.testing.assert_allclose(out2.values, out.values, atol=1e-13)
    assert out2.attrs["reference_interpolated"] == 1
    # 0.5 meV short of the range is within the tolerance
    # another grid starting 0.5 meV above the stack: within the tolerance
    e = np.r_[700.0005, np.linspace(701.0, 740.0, 40)]
    short = xr.DataArray(0.1 + 0.01 * (e - 700), dims="energy", coords={"energy": e})
    out3 = subtract_reference(stack, short)
    assert out3.attrs["reference_interpolated"] == 1
    np.testing.assert_allclose(out3.values, out.values, atol=1e-5)


def test_reference_not_covering_the_stack_is_refused():
    stack, *_ = planted()
    e = np.linspace(701.0, 740.0, 50)
    ref = xr.DataArray(np.ones(50), dims="energy", coords={"energy": e})
    with pytest.raises(
        StackValidationError,
        match=r"spans 701 to 740 eV but the stack spans 700 to 740 eV",
    ):
        subtract_reference(stack, ref)
    with pytest.raises(StackValidationError, match="dim 'energy'"):
        subtract_reference(stack, stack)


# ---------------------------------------------------------------------------
# optical density


def test_optical_density_recovers_planted_od():
    stack, *_ = planted()
    od = stack.values
    i0_fine_e = np.linspace(690, 750, 121)
    i0_fine = xr.DataArray(
        1000 + 5 * (i0_fine_e - 700), dims="energy", coords={"energy": i0_fine_e}
    )
    intensity = stack.copy(data=(1000 + 5 * (ENERGY - 700)) * np.exp(-od))
    got = to_optical_density(intensity, i0_fine)
    np.testing.assert_allclose(got.values, od, rtol=1e-12)
    assert got.attrs["i0_interpolated"] == 1
    assert got.attrs["units"] == "optical density"
    const = to_optical_density(intensity * 0 + 10.0, 100.0)
    np.testing.assert_allclose(const.values, np.log(10.0))


def test_optical_density_non_positive_intensity_and_i0():
    stack, *_ = planted()
    intensity = np.exp(-stack)
    intensity[1, 1, 5] = 0.0
    intensity[2, 3, 7] = -1.0
    with pytest.warns(
        DataQualityWarning, match="2 of 20 pixels .* non-positive"
    ) as rec:
        od = to_optical_density(intensity, 1.0)
    assert len(rec) == 1
    assert od["mask"].values.sum() == 2
    assert np.all(np.isnan(od.values[1, 1])) and np.all(np.isnan(od.values[2, 3]))
    assert np.all(np.isfinite(od.values[~od["mask"].values]))
    i0 = xr.DataArray(np.ones(ENERGY.size), dims="energy", coords={"energy": ENERGY})
    i0[3] = 0.0
    with pytest.raises(StackValidationError, match="i0 must be positive"):
        to_optical_density(np.exp(-stack), i0)


# ---------------------------------------------------------------------------
# crop, bin, masks


def test_crop_by_tuple_and_slice():
    stack, *_ = planted()
    stack = stack.assign_coords(y=[3.0, 2.0, 1.0, 0.0])  # decreasing y
    out = crop(stack, energy=(705, 720), x=slice(1, 3), y=(2.5, 0.5))
    assert out["energy"].values[0] == 705 and out["energy"].values[-1] == 720
    np.testing.assert_array_equal(out["x"].values, [1, 2, 3])
    np.testing.assert_array_equal(out["y"].values, [2.0, 1.0])
    np.testing.assert_array_equal(
        out.values, stack.sel(energy=slice(705, 720)).isel(x=[1, 2, 3], y=[1, 2]).values
    )
    spec = crop(stack.isel(y=0, x=0), energy=slice(None, 710))
    assert spec["energy"].values[-1] == 710
    with pytest.raises(StackValidationError, match=r"keeps nothing: x runs from 0"):
        crop(stack, x=(10, 20))
    with pytest.raises(StackValidationError, match="without a step"):
        crop(stack, energy=slice(700, 720, 2))
    with pytest.raises(StackValidationError, match="keeps 1 energy"):
        crop(stack, energy=(710, 710))


def test_bin_stack_means_skip_masked_pixels():
    data = np.arange(4 * 4 * 4, dtype=np.float64).reshape(4, 4, 4)
    stack = xr.DataArray(
        data, dims=("y", "x", "energy"), coords={"energy": 700.0 + np.arange(4)}
    )
    out = bin_stack(stack, xy=2, energy=2)
    assert out.shape == (2, 2, 2)
    np.testing.assert_allclose(out.values[0, 0, 0], data[:2, :2, :2].mean())
    np.testing.assert_allclose(out["energy"].values, [700.5, 702.5])
    m = np.zeros((4, 4), bool)
    m[0, 0] = True  # one of four in the first bin
    m[2:, 2:] = True  # a whole bin
    out = bin_stack(apply_mask(stack, m), xy=2)
    np.testing.assert_allclose(out.values[0, 0], data[:2, :2][~m[:2, :2]].mean(axis=0))
    np.testing.assert_array_equal(out["mask"].values, [[False, False], [False, True]])
    assert np.all(np.isnan(out.values[1, 1]))
    assert json.loads(out.attrs["binning_json"])["xy"] == 2
    odd = bin_stack(stack.isel(y=slice(0, 3)), xy=2)
    assert json.loads(odd.attrs["binning_json"])["dropped"]["y"] == 1
    with pytest.raises(StackValidationError, match="positive integer"):
        bin_stack(stack, xy=0)
    with pytest.raises(StackValidationError, match="do not fit"):
        bin_stack(stack, xy=5)


def test_dead_pixel_mask_finds_planted_spikes_not_structure():
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[0:40, 0:40]
    # a bright disc on a gradient: sharp edges that must not be flagged
    base = 100 + 2.0 * xx + 300.0 * ((yy - 20) ** 2 + (xx - 15) ** 2 < 64)
    spectra = np.linspace(1.0, 1.5, 10)
    data = base[..., None] * spectra + rng.normal(0, 0.5, (40, 40, 10))
    data[5, 30] *= 3.0  # hot
    data[30, 5] *= 0.2  # cold
    data[10, 10] = 0.0  # dead
    data[35, 35] = 150.0  # stuck: constant
    stack = xr.DataArray(
        data, dims=("y", "x", "energy"), coords={"energy": 700.0 + np.arange(10)}
    )
    mask = dead_pixel_mask(stack)
    expected = np.zeros((40, 40), bool)
    for p in ((5, 30), (30, 5), (10, 10), (35, 35)):
        expected[p] = True
    np.testing.assert_array_equal(mask.values, expected)
    assert json.loads(mask.attrs["reasons_json"]) == {
        "constant": 2,
        "nonfinite": 0,
        "outlier": 2,
    }
    # the global z-score flags the bright disc as well: structure, not spikes
    assert dead_pixel_mask(stack, size=None).values.sum() > 100
    masked = apply_mask(stack, mask)
    assert masked["mask"].values.sum() == 4
    assert np.all(np.isnan(masked.values[5, 30]))
    with pytest.raises(ValueError, match="odd integer"):
        dead_pixel_mask(stack, size=4)


def test_apply_mask_checks_shape_and_dtype():
    stack, *_ = planted()
    with pytest.raises(StackValidationError, match=r"shape \(2, 2\)"):
        apply_mask(stack, np.zeros((2, 2), bool))
    with pytest.raises(StackValidationError, match="boolean"):
        apply_mask(stack, np.zeros((4, 5)))


# ---------------------------------------------------------------------------
# bad input through the public functions


@pytest.mark.parametrize(
    "func",
    [
        normalize,
        lambda s: subtract_reference(s, REF),
        crop,
        bin_stack,
        dead_pixel_mask,
        lambda s: to_optical_density(s, 1.0),
    ],
)
def test_bad_stacks_are_refused(func):
    stack, *_ = planted()
    with pytest.raises(StackValidationError, match="must be an xarray.DataArray"):
        func(stack.values)
    with pytest.raises(StackValidationError, match="exactly the dims"):
        func(stack.rename(x="col"))
    e = ENERGY.copy()
    e[[3, 4]] = e[[4, 3]]
    with pytest.raises(StackValidationError, match="strictly increasing"):
        func(stack.assign_coords(energy=e))
    e = ENERGY.copy()
    e[5] = e[4]
    with pytest.raises(StackValidationError, match="repeats"):
        func(stack.assign_coords(energy=e))


def test_nan_pixels_masked_by_reference_subtraction_with_warning():
    stack, *_ = planted()
    bad = stack.copy(deep=True)
    bad[0, 0, 3] = np.inf
    with pytest.warns(DataQualityWarning, match="1 of 20 pixels"):
        out = subtract_reference(bad, stack.isel(y=1, x=1))
    assert out["mask"].values[0, 0] and np.all(np.isnan(out.values[0, 0]))
