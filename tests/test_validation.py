"""Stack and spectrum validation at the boundary (bad input gets clear errors)."""

import warnings

import numpy as np
import pytest
import xarray as xr

import xasviz
from xasviz import DataQualityWarning, StackValidationError, validate_stack
from xasviz._utils import as_rng, seed_of
from xasviz._validation import check_energy_axis, valid_pixels, validate_spectrum


def _stack(ny=4, nx=5, ne=6, dims=("y", "x", "energy"), energy=None, dtype=float):
    rng = np.random.default_rng(0)
    shape = {"y": ny, "x": nx, "energy": ne}
    data = rng.random([shape[d] for d in dims]).astype(dtype)
    e = np.linspace(700, 710, ne) if energy is None else np.asarray(energy)
    return xr.DataArray(data, dims=dims, coords={"energy": e})


def test_any_dim_order_is_transposed_and_input_untouched():
    s = _stack(dims=("energy", "x", "y"))
    before = s.copy(deep=True)
    out = validate_stack(s)
    assert out.dims == ("y", "x", "energy")
    assert "y" in out.coords and "x" in out.coords
    xr.testing.assert_identical(s, before)
    np.testing.assert_array_equal(out.values, s.transpose("y", "x", "energy").values)


@pytest.mark.parametrize(
    ("dims", "match"),
    [
        (("y", "x", "e"), r"exactly the dims.*Missing: \['energy'\]"),
        (("row", "col", "energy"), r"Missing: \['y', 'x'\]"),
    ],
)
def test_wrong_dims(dims, match):
    s = xr.DataArray(np.zeros((2, 3, 4)), dims=dims)
    with pytest.raises(StackValidationError, match=match):
        validate_stack(s)


def test_missing_energy_coordinate_and_wrong_type():
    s = xr.DataArray(np.zeros((2, 3, 4)), dims=("y", "x", "energy"))
    with pytest.raises(StackValidationError, match="no 'energy' coordinate"):
        validate_stack(s)
    with pytest.raises(StackValidationError, match="as_stack"):
        validate_stack(np.zeros((2, 3, 4)))


@pytest.mark.parametrize(
    ("energy", "match"),
    [
        ([700, 701, 701, 703], "repeats the value 701"),
        ([700, 702, 701, 703], "strictly increasing.*index 1"),
        ([703, 702, 701, 700], "runs downwards"),
        ([700, np.nan, 702, 703], "non-finite"),
    ],
)
def test_bad_energy_axis(energy, match):
    with pytest.raises(StackValidationError, match=match):
        validate_stack(_stack(ne=4, energy=energy))


def test_energy_axis_needs_two_points_and_numbers():
    with pytest.raises(StackValidationError, match="at least 2"):
        check_energy_axis([700.0])
    with pytest.raises(StackValidationError, match="real numbers"):
        check_energy_axis(np.array(["a", "b"]))


def test_nonfinite_pixels_masked_with_one_warning():
    s = _stack()
    s[1, 2, 3] = np.nan
    s[0, 0, 0] = np.inf
    with pytest.warns(DataQualityWarning, match="2 of 20 pixels") as rec:
        out = validate_stack(s)
    # The warning points at this test file, not at xasviz internals.
    assert rec[0].filename == __file__
    assert out["mask"].values.sum() == 2
    assert np.isnan(out.values[1, 2]).all() and np.isnan(out.values[0, 0]).all()
    assert valid_pixels(out).sum() == 18
    assert np.isfinite(s.values[1, 2, :3]).all()  # input not modified
    # Already masked pixels are not reported again.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate_stack(out)
    with pytest.raises(StackValidationError, match="NaN or inf"):
        validate_stack(s, nonfinite="raise")


def test_integer_counts_become_float_and_complex_is_refused():
    out = validate_stack(_stack(dtype=np.int32))
    assert out.dtype == np.float64
    c = _stack().astype(complex)
    with pytest.raises(StackValidationError, match="real numbers"):
        validate_stack(c)


def test_float32_is_kept():
    assert validate_stack(_stack(dtype=np.float32)).dtype == np.float32


def test_spectrum_validation():
    sp = xr.DataArray([1.0, 2.0, 3.0], dims="energy", coords={"energy": [1, 2, 3]})
    assert validate_spectrum(sp).dtype == np.float64
    with pytest.raises(StackValidationError, match="single dim 'energy'"):
        validate_spectrum(sp.rename(energy="e"))
    bad = sp.copy()
    bad[1] = np.nan
    with pytest.raises(StackValidationError, match="1 NaN or inf"):
        validate_spectrum(bad)
    with pytest.raises(StackValidationError, match="open_spectrum"):
        validate_spectrum([1, 2, 3])


def test_rng_helpers():
    assert seed_of(3) == 3
    a = as_rng(3).random(4)
    np.testing.assert_array_equal(a, as_rng(3).random(4))
    g = np.random.default_rng(1)
    assert as_rng(g) is g
    with pytest.raises(TypeError, match="rng must be"):
        as_rng("seed")


def test_lazy_public_api():
    assert callable(xasviz.validate_stack)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        xasviz.nope  # noqa: B018
