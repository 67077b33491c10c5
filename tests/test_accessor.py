"""The ``.xas`` accessor gives the same results as the functions it wraps."""

import numpy as np
import pytest
import xarray as xr

import xasviz
from xasviz.synthetic import make_stack


@pytest.fixture(scope="module")
def planted():
    return make_stack(size=24, n_energy=40, n_domains=3, snr_db=35, shift=2.0, rng=2)


def test_chain_equals_functions(planted):
    chained = planted.stack.xas.normalize().xas.subtract_reference(
        planted.reference.xas.normalize()
    )
    direct = xasviz.subtract_reference(
        xasviz.normalize(planted.stack), xasviz.normalize(planted.reference)
    )
    xr.testing.assert_identical(chained, direct)


def test_factorizations_through_accessor(planted):
    diff = planted.stack.xas.subtract_reference(planted.reference)
    a = diff.xas.onmf(3, rng=0)
    b = xasviz.onmf(diff, 3, rng=0)
    np.testing.assert_array_equal(a["domains"].values, b["domains"].values)
    scan = diff.xas.bcv(range(2, 5), folds=4, rng=0)
    assert int(scan["best_rank"]) in (2, 3, 4)
    km = planted.stack.xas.kmeans(3, rng=0)
    assert km.sizes["component"] == 3
    pte = planted.stack.xas.peak_top_energy()
    assert pte["pte"].dims == ("y", "x")


def test_accessor_validates_lazily():
    bad = xr.DataArray(np.zeros((2, 3)), dims=("a", "b"))
    acc = bad.xas  # building the accessor never raises
    with pytest.raises(xasviz.StackValidationError, match="exactly the dims"):
        acc.validate()
