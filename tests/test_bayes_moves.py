"""Tests of the peak-redraw move (xasviz.bayes.moves): exactness against
quadrature, its truncated-normal amplitude law, and its use in tempering."""

from __future__ import annotations

import numpy as np
import pytest

from xasviz.bayes.model import N_BASE, _sum_sq, model_curve, to_sampling
from xasviz.bayes.moves import PeakRedrawMove, _amplitude_draw, _amplitude_logpdf
from xasviz.bayes.priors import Prior
from xasviz.bayes.tempering import log_z_ladder, temper

ENERGY = np.linspace(700.0, 730.0, 60)
BASE = dict(y0=0.0, H=1.0, E0=710.0, Gamma=2.0, A=2.0, E_WL=711.5, w=2.5, eta=0.3)


def _two_feature_spectrum(seed=1, sigma=0.01):
    """Two Gaussian features; the one-Gaussian model must pick one of them."""
    truth = dict(
        BASE,
        amplitude_1=0.08,
        centre_1=705.0,
        width_1=2.0,
        amplitude_2=0.05,
        centre_2=722.0,
        width_2=3.0,
    )
    rng = np.random.default_rng(seed)
    y = model_curve(ENERGY, truth, 2) + rng.normal(0.0, sigma, ENERGY.size)
    return y, Prior().resolve(ENERGY, y)


def _base_vector():
    """Sampling-space base parameters, with a K = 1 Gaussian placeholder."""
    names = list(BASE)
    return to_sampling(np.array([BASE[n] for n in names] + [0.05, 715.0, 0.7]), 1)


class _GaussianOnlyPrior:
    """The K = 1 spectral prior with the step and white line held fixed.

    Only the Gaussian's amplitude, centre and log width are free (uniform
    boxes), so ``ln Z_beta`` is a 3-D integral that quadrature gets exactly.
    """

    def __init__(self, bounds):
        self.base = _base_vector()
        self.ndim = self.base.size
        self.low = np.array(
            [bounds["amplitude"][0], bounds["centre"][0], np.log(bounds["width"][0])]
        )
        self.high = np.array(
            [bounds["amplitude"][1], bounds["centre"][1], np.log(bounds["width"][1])]
        )

    def sample(self, rng, n):
        theta = np.tile(self.base, (n, 1))
        theta[:, N_BASE:] = rng.uniform(self.low, self.high, (n, 3))
        return theta

    def logpdf(self, theta):
        x = theta[:, N_BASE:]
        inside = np.all((x >= self.low) & (x <= self.high), axis=1)
        inside &= np.all(theta[:, :N_BASE] == self.base[:N_BASE], axis=1)
        return np.where(inside, -np.sum(np.log(self.high - self.low)), -np.inf)


def _quadrature(y, prior, betas):
    """``ln Z_beta`` of the Gaussian-only model by a 3-D midpoint rule."""
    n = (160, 400, 40)
    axes = [
        lo + (hi - lo) * (np.arange(m) + 0.5) / m
        for lo, hi, m in zip(prior.low, prior.high, n)
    ]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    theta = np.tile(prior.base, (grid.shape[0], 1))
    theta[:, N_BASE:] = grid
    s = _sum_sq(ENERGY, y, theta, 1)
    out = []
    for b in betas:
        lw = -0.5 * b * s
        top = lw.max()
        out.append(top + np.log(np.mean(np.exp(lw - top))))
    return np.array(out)


def test_amplitude_law_is_normalised_and_sampled_in_every_regime():
    rng = np.random.default_rng(0)
    # (mean, sd) on the box [0, 1]: inside, tails far below and above, narrow.
    for mean, sd in [(0.3, 0.1), (-5.0, 0.1), (6.0, 0.1), (-0.01, 1.0), (0.5, 1e-4)]:
        m = np.full(100_000, mean)
        s = np.full_like(m, sd)
        lo, hi = (0.0 - m) / s, (1.0 - m) / s
        x = _amplitude_draw(m, s, lo, hi, rng)
        assert np.all((x >= 0.0) & (x <= 1.0)) and np.all(np.isfinite(x))
        # The density integrates to one over the box (fine midpoint rule).
        g = (np.arange(400_000) + 0.5) / 400_000
        dens = np.exp(_amplitude_logpdf(g, mean, sd, (0 - mean) / sd, (1 - mean) / sd))
        assert abs(dens.mean() - 1.0) < 2e-3
        # The draws follow that density: same mean, within 5 standard errors.
        expect = float(np.mean(g * dens))
        assert abs(x.mean() - expect) < 5 * x.std() / np.sqrt(x.size) + 1e-9


def test_peak_move_alone_samples_the_exact_conditional():
    """Metropolis with only the move: the Gaussian's posterior, mode jumps
    included, matches quadrature (the base parameters never move)."""
    y, bounds = _two_feature_spectrum()
    prior = _GaussianOnlyPrior(bounds)
    move = PeakRedrawMove(ENERGY, y, 1, bounds)
    rng = np.random.default_rng(3)
    beta, m = 1 / 0.05**2, 4000
    theta = prior.sample(rng, m)
    s = _sum_sq(ENERGY, y, theta, 1)
    for _ in range(80):
        q, fac, sq = move.propose(theta, beta, rng)
        assert np.all(prior.logpdf(q) > -np.inf)
        # The move's own sums of squares are the model's, to rounding.
        np.testing.assert_allclose(sq, _sum_sq(ENERGY, y, q, 1), rtol=1e-10)
        ok = fac - 0.5 * beta * (sq - s) > np.log(rng.random(m))
        theta[ok], s[ok] = q[ok], sq[ok]
    # Quadrature of the same posterior.
    axes = [
        np.linspace(lo, hi, n)
        for lo, hi, n in zip(prior.low, prior.high, (161, 241, 61))
    ]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    full = np.tile(prior.base, (grid.shape[0], 1))
    full[:, N_BASE:] = grid
    lw = -0.5 * beta * _sum_sq(ENERGY, y, full, 1)
    p = np.exp(lw - lw.max())
    p /= p.sum()
    # Both features hold the Gaussian part of the time at this beta.
    p_left = p[grid[:, 1] < 713].sum()
    got_left = np.mean(theta[:, N_BASE + 1] < 713)
    assert 0.2 < p_left < 0.9
    assert abs(got_left - p_left) < 4 * np.sqrt(p_left * (1 - p_left) / m) + 0.01
    mean_a = float(p @ grid[:, 0])
    sd_a = float(np.sqrt(p @ (grid[:, 0] - mean_a) ** 2))
    assert abs(theta[:, N_BASE].mean() - mean_a) < 4 * sd_a / np.sqrt(m) + 1e-3


def test_tempered_run_with_peak_move_matches_quadrature():
    """ln Z_beta from replica exchange with the move alone, against a 3-D
    quadrature of the same integral, on every rung."""
    y, bounds = _two_feature_spectrum()
    prior = _GaussianOnlyPrior(bounds)
    betas = np.concatenate([[0.0], np.geomspace(0.1, 1 / 0.02**2, 16)])
    run = temper(
        lambda t: _sum_sq(ENERGY, y, t, 1),
        prior,
        betas,
        n_walkers=24,
        n_sweeps=400,
        n_burn=100,
        rng=np.random.default_rng(7),
        moves=[(PeakRedrawMove(ENERGY, y, 1, bounds), 1.0)],
    )
    log_z, _, se = log_z_ladder(run.sum_sq, betas, n_blocks=10)
    truth = _quadrature(y, prior, betas)
    err = np.abs(log_z - truth)
    assert np.all(err[1:] < 4 * se[1:] + 0.02), np.round((err / se)[1:], 2)
    assert err.max() < 0.3
    assert np.all(run.move_acceptance[1:] > 0.01)


def test_peak_move_refuses_k0_and_bad_share():
    y, bounds = _two_feature_spectrum()
    with pytest.raises(ValueError, match="k >= 1"):
        PeakRedrawMove(ENERGY, y, 0, bounds)
    with pytest.raises(ValueError, match="uniform_share"):
        PeakRedrawMove(ENERGY, y, 1, bounds, uniform_share=0.0)


def test_peak_move_with_centres_beyond_the_window_stays_finite():
    """A centre prior reaching far past the energy window puts narrow
    Gaussians where they touch no data point; the amplitude is then
    unconstrained and the move must still give finite proposals and
    factors (no 0/0 from a vanishing <g, g>)."""
    y, _ = _two_feature_spectrum()
    bounds = Prior(centre=(600.0, 830.0), width=(0.05, 5.0)).resolve(ENERGY, y)
    move = PeakRedrawMove(ENERGY, y, 2, bounds)
    rng = np.random.default_rng(0)
    theta = np.tile(
        to_sampling(np.r_[list(BASE.values()), 0.05, 0.02, 705.0, 800.0, 2.0, 0.05], 2),
        (500, 1),
    )
    for beta in (1e-2, 1e4):
        q, fac, sq = move.propose(theta, beta, rng)
        assert np.all(np.isfinite(q)) and np.all(np.isfinite(fac))
        assert np.all(np.isfinite(sq))
        np.testing.assert_allclose(sq, _sum_sq(ENERGY, y, q, 2), rtol=1e-9)
