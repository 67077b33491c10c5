"""Tests of the planted-truth benchmark generator (paper section 2.4)."""

import numpy as np
import pytest
from scipy import ndimage

from xasviz.synthetic import make_domains, make_stack, snr_of


def test_defaults_reproduce_paper_sizes():
    s = make_stack(rng=0)
    assert s.stack.shape == (400, 400, 100)
    assert s.domains.sizes["component"] == 8
    # The realised SNR equals the requested one up to sampling error of the
    # noise variance over 1.6e7 voxels (relative sd ~ 3.5e-4, i.e. 0.002 dB).
    assert snr_of(s.clean.values, s.stack.values) == pytest.approx(5.62, abs=0.02)
    assert s.stack.attrs["seed"] == 0


def test_domains_partition_the_image_into_connected_shapes():
    labels = make_domains(6, 120, rng=3)
    assert set(np.unique(labels)) == set(range(6))
    for k in range(6):
        _, n_parts = ndimage.label(labels == k)
        # A domain may shed a few pixels at a rough border, but its bulk is one
        # shape: the largest connected part holds at least 95 % of it.
        sizes = ndimage.sum(
            labels == k, ndimage.label(labels == k)[0], range(1, n_parts + 1)
        )
        assert sizes.max() >= 0.95 * (labels == k).sum()


def test_stack_is_onehot_times_spectra_without_noise():
    s = make_stack(size=30, n_energy=40, n_domains=4, snr_db=None, rng=1)
    w = s.domains.values.reshape(4, -1).T
    h = s.spectra.values
    np.testing.assert_allclose(w @ h, s.stack.values.reshape(-1, 40), rtol=0, atol=0)
    assert np.all(s.domains.sum("component") == 1)


def test_same_seed_same_stack_other_seed_other_stack():
    a = make_stack(size=20, n_energy=30, n_domains=3, rng=5)
    b = make_stack(size=20, n_energy=30, n_domains=3, rng=5)
    c = make_stack(size=20, n_energy=30, n_domains=3, rng=6)
    np.testing.assert_array_equal(a.stack.values, b.stack.values)
    assert not np.array_equal(a.stack.values, c.stack.values)


def test_shift_controls_spectral_difference():
    small = make_stack(size=20, n_energy=60, n_domains=4, snr_db=None, shift=0.1, rng=2)
    large = make_stack(size=20, n_energy=60, n_domains=4, snr_db=None, shift=2.0, rng=2)
    spread = lambda s: float(np.ptp(s.spectra.values, axis=0).max())  # noqa: E731
    assert spread(small) < spread(large)


def test_float32_and_bad_arguments():
    s = make_stack(size=10, n_energy=20, n_domains=2, dtype=np.float32, rng=0)
    assert s.stack.dtype == np.float32
    with pytest.raises(ValueError, match="n_domains must be between"):
        make_domains(0, 10)
    with pytest.raises(ValueError, match="energy_range"):
        make_stack(size=10, energy_range=(10.0, 5.0))
    with pytest.raises(ValueError, match="dtype"):
        make_stack(size=10, dtype=np.int32)


def test_snr_against_difference_signal():
    s = make_stack(
        size=40, n_energy=50, n_domains=3, snr_db=10, snr_signal="difference", rng=4
    )
    diff_clean = (s.clean - s.reference).values
    diff_noisy = (s.stack - s.reference).values
    assert snr_of(diff_clean, diff_noisy) == pytest.approx(10, abs=0.1)
    a = make_stack(size=40, n_energy=50, n_domains=3, snr_db=10, rng=4)
    assert s.sigma < a.sigma  # the difference signal is the smaller one
    with pytest.raises(ValueError, match="snr_signal"):
        make_stack(size=10, snr_signal="peak")


def _directions(s, rel=1e-3):
    """Singular values of the clean difference spectra above ``rel`` of the first."""
    sv = np.linalg.svd(s.difference_truth.values, compute_uv=False)
    return int(np.sum(sv > rel * sv[0]))


def test_width_jitter_adds_independent_directions():
    kw = dict(size=20, n_energy=100, n_domains=8, snr_db=None, shift=0.5)
    # Fixed widths: five random parameters per spectrum, so to first order the
    # eight difference spectra span five directions (second-order terms stay
    # below 1 % of the first singular value; measured 0.4-0.7 %); three random
    # widths add up to three more (measured: 7-8 above 1 %).
    for seed in range(3):
        fixed = make_stack(**kw, rng=seed)
        jittered = make_stack(**kw, width_jitter=0.2, rng=seed)
        assert _directions(fixed, 0.01) == 5
        assert _directions(jittered, 0.01) >= 7
    assert '"width_jitter": 0.2' in jittered.stack.attrs["params_json"]


def test_width_jitter_zero_keeps_the_draws_of_every_seed():
    a = make_stack(size=16, n_energy=30, n_domains=3, rng=5)
    b = make_stack(size=16, n_energy=30, n_domains=3, width_jitter=0.0, rng=5)
    np.testing.assert_array_equal(a.stack.values, b.stack.values)
    with pytest.raises(ValueError, match=r"width_jitter must be in \[0, 1\)"):
        make_stack(size=16, n_energy=30, n_domains=3, width_jitter=1.5, rng=5)
