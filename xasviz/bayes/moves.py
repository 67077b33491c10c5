"""A Metropolis-Hastings move that redraws one Gaussian peak of eq. 14.

The ensemble moves of emcee (differential evolution, stretch) move a walker
along the differences between walkers. They are poor at one thing the
tempered runs need all the time: taking a Gaussian that sits on one feature
(or on nothing) and putting it on another feature far away. At the
intermediate inverse temperatures a Gaussian that its feature no longer needs
drifts over the window while the step and white line take up the feature,
and comes back only after hundreds of sweeps; near the top of the ladder the
extra Gaussians of an over-complete ``K`` fit noise in many narrow modes that
the ensemble moves hardly ever leave. Independent chains then settle in
different configurations, and the free energy of such a ``K`` moved by
nats between runs (``docs/bayes.md``).

:class:`PeakRedrawMove` redraws one Gaussian ``j`` of each walker (drawn
uniformly) from an approximation of its conditional distribution given
everything else, independently of where the Gaussian sits now. With the
residual ``r = y - F_{-j}`` of the other parts, and ``g_{c,w}`` the
unit-height Gaussian of centre ``c`` and width ``w``, the amplitude enters
linearly (eq. 14), so

    p(a | c, w, rest) ∝ exp(-beta/2 ||r - a g_{c,w}||^2) on [a_lo, a_hi]

is a normal ``N(m, s^2)``, ``m = <r, g> / <g, g>``, ``s^2 = 1 / (beta <g, g>)``,
truncated to the amplitude prior's box, and ``(c, w)`` has the marginal
``Z_a(c, w) = ∫ p(a, c, w | rest) da`` in closed form. The proposal:

1. a width cell ``i_w`` uniformly from ``n_width`` cells of equal size in
   ``ln w`` over the prior's range;
2. a centre cell ``i_c`` from a mixture: with probability ``uniform_share``
   uniformly, otherwise with probability proportional to the profile
   likelihood of a Gaussian at that cell's middle and width (its amplitude at
   the constrained optimum, with the Laplace volume factor), computed for all
   cells at once by one matrix product of ``r`` with a table of Gaussians;
3. ``c`` and ``ln w`` uniformly within the chosen cells, then ``a`` from its
   exact truncated-normal conditional.

Because ``r`` does not depend on Gaussian ``j``, the reverse proposal is
computed from the same table, and the Hastings factor

    ln q(c, w) + ln p(a | c, w) - ln q(c', w') - ln p(a' | c', w')

makes the move exact for the tempered target at every rung: it is a
Metropolis-within-Gibbs step on one Gaussian (a "griddy" Gibbs proposal for
its centre and width, exact for its amplitude). The grid only shapes the
proposal; the target is never discretised. The move does not replace emcee's
moves: it moves one Gaussian at a time and ignores the correlations that the
ensemble moves follow.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr, ndtr, ndtri

from .model import _FOUR_LN2, N_BASE, _exp_floor, _residuals

__all__ = ["PeakRedrawMove"]

#: Share of centre proposals drawn uniformly over the prior's range. It keeps
#: the proposal density positive everywhere, so the reverse move of a
#: Gaussian that sits where the profile likelihood is low stays possible.
UNIFORM_SHARE = 0.2
#: Cells of the width grid (log-uniform over the prior's range).
N_WIDTH = 12
#: Cells of the centre grid per energy point of the spectrum.
CENTRES_PER_POINT = 3
#: Smallest ``<g, g>`` of a cell's Gaussian (keeps its single-precision
#: inverse and log finite).
_GG_FLOOR = 1e-30


class PeakRedrawMove:
    """Redraw one Gaussian per walker from its (gridded) conditional.

    Parameters
    ----------
    energy, y : ndarray, shape (N,)
        The spectrum being decomposed.
    k : int
        Number of Gaussians (>= 1).
    bounds : dict
        Resolved prior bounds (:meth:`xasviz.bayes.Prior.resolve`): the
        ``amplitude`` and ``centre`` boxes and the log-uniform ``width`` box
        of every Gaussian.
    uniform_share : float
        Share of the centre proposals drawn uniformly.
    n_centre, n_width : int, optional
        Cells of the centre grid (default: three per energy point) and of
        the width grid (default 12). Narrow Gaussians fitting small features
        at high ``beta`` need cells no wider than themselves: with one cell
        per energy point and 8 width cells, independent chains of an
        over-complete ``K`` agreed on a free energy 8 nats too high
        (``docs/bayes.md``).

    Notes
    -----
    :func:`xasviz.bayes.tempering.temper` calls :meth:`propose` with every
    moving walker's inverse temperature; the result is a proposal and its
    Hastings log factor, accepted there with the Metropolis rule like the
    ensemble moves' proposals.
    """

    def __init__(
        self,
        energy,
        y,
        k,
        bounds,
        uniform_share=UNIFORM_SHARE,
        n_centre=None,
        n_width=N_WIDTH,
    ):
        if k < 1:
            raise ValueError(f"PeakRedrawMove needs k >= 1 Gaussians; got k={k}.")
        if not 0.0 < uniform_share <= 1.0:
            raise ValueError(f"uniform_share must be in (0, 1]; got {uniform_share}.")
        self.energy = np.asarray(energy, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float64)
        self.k = int(k)
        self.a_lo, self.a_hi = (float(v) for v in bounds["amplitude"])
        self.c_lo, self.c_hi = (float(v) for v in bounds["centre"])
        self.lw_lo, self.lw_hi = (float(v) for v in np.log(bounds["width"]))
        self.uniform_share = float(uniform_share)
        self.n_c = int(n_centre or CENTRES_PER_POINT * self.energy.size)
        self.n_w = int(n_width)
        self.dc = (self.c_hi - self.c_lo) / self.n_c
        self.dlw = (self.lw_hi - self.lw_lo) / self.n_w
        mid_c = self.c_lo + self.dc * (np.arange(self.n_c) + 0.5)
        mid_lw = self.lw_lo + self.dlw * (np.arange(self.n_w) + 0.5)
        # table[i_w] (n_c, N): unit-height Gaussians at every cell's middle,
        # in single precision: the cell weights only shape the proposal, and
        # the same weights are used for a draw and for its Hastings factor,
        # so the move stays exact while its two products and the work on
        # (cells x walkers) run twice as fast.
        grid = self._unit_gauss(np.tile(mid_c, self.n_w), np.repeat(mid_lw, self.n_c))
        grid = grid.reshape(self.n_w, self.n_c, -1)
        self.table = grid.astype(np.float32)
        # Floored: a narrow Gaussian centred outside the window (a wide
        # centre prior) would otherwise have <g, g> = 0 here.
        gg = np.maximum(np.einsum("wcn,wcn->wc", grid, grid), _GG_FLOOR)
        self.table_gg = gg[:, :, None].astype(np.float32)
        self.table_inv_gg = (1.0 / gg)[:, :, None].astype(np.float32)
        self.table_half_log_gg = (0.5 * np.log(gg))[:, :, None].astype(np.float32)

    def _unit_gauss(self, centre, log_width):
        """Unit-height Gaussians, shape (M, N)."""
        z = self.energy[None, :] - centre[:, None]
        z *= z
        z *= (-_FOUR_LN2 * np.exp(-2.0 * log_width))[:, None]
        return _exp_floor(z)

    def _cell_probs(self, r, beta, w):
        """Centre-cell probabilities (n_c, m) of walkers of one width cell.

        Proportional to the profile likelihood at each cell's middle: the
        amplitude at its optimum within the prior's box, times the Laplace
        width ``(beta <g, g>)^(-1/2)`` of the amplitude's conditional.
        Any positive weights would keep the move exact; these follow the
        target closely. ``r`` (m, N) float32 residuals, ``beta`` (m,), ``w``
        the width cell.
        """
        corr = self.table[w] @ r.T
        # a (2 <r, g> - a <g, g>) = a (c + (c - a gg)) with a the clipped
        # optimum <r, g> / <g, g>; in place, as this runs on (cells x
        # walkers) every time. Cells along the rows keep the reductions
        # below (max, sum, cumsum) vectorised over walkers.
        a = corr * self.table_inv_gg[w]
        np.clip(a, self.a_lo, self.a_hi, out=a)
        t = a * self.table_gg[w]
        np.subtract(corr, t, out=t)
        t += corr
        t *= a
        t *= (0.5 * beta).astype(np.float32)
        t -= self.table_half_log_gg[w]
        t -= t.max(axis=0)
        # Floored before exp: underflowing exponentials take numpy's slow
        # path, and cells e^-80 below the best add nothing to a proposal.
        np.maximum(t, -80.0, out=t)
        p = np.exp(t, out=t)
        p *= (1.0 - self.uniform_share) / p.sum(axis=0)
        p += self.uniform_share / self.n_c
        return p

    def _centre_cells(self, r, beta, i_w, random=None, i_c=None):
        """Draw centre cells (``i_c`` None) or score given ones, per walker.

        Walkers are grouped by width cell so that each group needs one
        product with its table. Returns the cells (M,) and their log
        probabilities (M,).
        """
        m = r.shape[0]
        order = np.argsort(i_w, kind="stable")
        edges = np.searchsorted(i_w[order], np.arange(self.n_w + 1))
        r32 = r[order].astype(np.float32)
        beta_s = beta[order]
        cells = np.empty(m, dtype=np.intp)
        log_p = np.empty(m)
        u = None if random is None else random.random(m)
        given = None if i_c is None else i_c[order]
        for w in range(self.n_w):
            lo, hi = edges[w], edges[w + 1]
            if lo == hi:
                continue
            p = self._cell_probs(r32[lo:hi], beta_s[lo:hi], w)
            if given is None:
                cdf = np.cumsum(p, axis=0)
                pick = (cdf < u[lo:hi] * cdf[-1]).sum(axis=0)
                pick = np.minimum(pick, self.n_c - 1)
            else:
                pick = given[lo:hi]
            cells[lo:hi] = pick
            log_p[lo:hi] = np.log(p[pick, np.arange(hi - lo)])
        out_c, out_lp = np.empty_like(cells), np.empty_like(log_p)
        out_c[order], out_lp[order] = cells, log_p
        return out_c, out_lp

    def _cells(self, c, lw):
        i_c = np.clip(((c - self.c_lo) / self.dc).astype(int), 0, self.n_c - 1)
        i_w = np.clip(((lw - self.lw_lo) / self.dlw).astype(int), 0, self.n_w - 1)
        return i_c, i_w

    def _amplitude_law(self, r, g, beta):
        """Mean, sd and standardised bounds of the amplitude's conditional.

        A Gaussian that hardly overlaps the energy window (a centre prior
        reaching beyond it, a narrow width) leaves the amplitude all but
        unconstrained; where the likelihood changes by less than 1e-12 over
        the whole box, the law is taken as exactly uniform (``flat``), which
        avoids dividing by a vanishing ``<g, g>``.
        """
        gg = np.einsum("mn,mn->m", g, g)
        flat = beta * gg * (self.a_hi - self.a_lo) ** 2 < 1e-12
        gg = np.where(flat, 1.0, gg)
        mean = np.where(
            flat, 0.5 * (self.a_lo + self.a_hi), np.einsum("mn,mn->m", r, g) / gg
        )
        sd = np.where(flat, 1.0, 1.0 / np.sqrt(beta * gg))
        return mean, sd, (self.a_lo - mean) / sd, (self.a_hi - mean) / sd, flat

    def _draw_amplitude(self, law, random):
        mean, sd, lo, hi, flat = law
        a = _amplitude_draw(mean, sd, lo, hi, random)
        return np.where(flat, random.uniform(self.a_lo, self.a_hi, flat.size), a)

    def _amplitude_logpdf(self, a, law):
        mean, sd, lo, hi, flat = law
        with np.errstate(divide="ignore", invalid="ignore"):
            lp = _amplitude_logpdf(a, mean, sd, lo, hi)
        return np.where(flat, -np.log(self.a_hi - self.a_lo), lp)

    def propose(self, theta, beta, random):
        """Proposals for walkers ``theta`` (M, D) at inverse temperatures ``beta``.

        Parameters
        ----------
        theta : ndarray, shape (M, 8 + 3 k)
            Current walkers, sampling space, inside the prior's support.
        beta : ndarray, shape (M,)
            Each walker's inverse temperature (> 0).
        random : numpy.random.Generator

        Returns
        -------
        proposal : ndarray, shape (M, 8 + 3 k)
        log_factor : ndarray, shape (M,)
            ``ln q(old | new) - ln q(new | old)``.
        sum_sq : ndarray, shape (M,)
            The proposals' sums of squared residuals ``||r - a' g'||^2``
            (the same as :func:`xasviz.bayes.model._sum_sq` of the proposals,
            to rounding), so that they need not be evaluated again.
        """
        m, k = theta.shape[0], self.k
        beta = np.broadcast_to(np.asarray(beta, dtype=np.float64), (m,))
        rows = np.arange(m)
        j = random.integers(k, size=m)
        col_a, col_c, col_w = N_BASE + j, N_BASE + k + j, N_BASE + 2 * k + j
        a_old, c_old, lw_old = (
            theta[rows, col_a],
            theta[rows, col_c],
            theta[rows, col_w],
        )
        g_old = self._unit_gauss(c_old, lw_old)
        # Residual of everything but Gaussian j: the same before and after.
        r = _residuals(self.energy, self.y, theta, k)
        r += a_old[:, None] * g_old

        iw_new = random.integers(self.n_w, size=m)
        ic_new, lp_new = self._centre_cells(r, beta, iw_new, random=random)
        c_new = self.c_lo + self.dc * (ic_new + random.random(m))
        lw_new = self.lw_lo + self.dlw * (iw_new + random.random(m))
        g_new = self._unit_gauss(c_new, lw_new)
        law_new = self._amplitude_law(r, g_new, beta)
        a_new = self._draw_amplitude(law_new, random)

        # Reverse: the probability of the old Gaussian's cells. The width
        # cell (1 / n_w) and the cell volumes are the same both ways.
        ic_old, iw_old = self._cells(c_old, lw_old)
        _, lp_old = self._centre_cells(r, beta, iw_old, i_c=ic_old)
        law_old = self._amplitude_law(r, g_old, beta)
        log_factor = (
            lp_old
            + self._amplitude_logpdf(a_old, law_old)
            - lp_new
            - self._amplitude_logpdf(a_new, law_new)
        )
        a_new = np.clip(a_new, self.a_lo, self.a_hi)
        r -= a_new[:, None] * g_new
        sum_sq = np.einsum("mn,mn->m", r, r)
        out = np.array(theta, copy=True)
        out[rows, col_a] = a_new
        out[rows, col_c] = c_new
        out[rows, col_w] = lw_new
        return out, log_factor, sum_sq


#: Below this standardised upper bound (in the frame of :func:`_frame`) the
#: normal's tail is replaced by its exponential limit, which ``ndtr`` can
#: still resolve; draws and densities use the same law, so the move stays
#: exact for the proposal it makes.
_FAR = -30.0


def _frame(lo, hi):
    """Standardised bounds on the side where the interval's tails are small.

    Returns ``flip`` (the interval was mirrored), ``a < b`` and ``far`` (both
    bounds so deep in the lower tail that the exponential law is used).
    """
    flip = lo > 0
    a = np.where(flip, -hi, lo)
    b = np.where(flip, -lo, hi)
    return flip, a, b, b < _FAR


def _amplitude_logpdf(x, mean, sd, lo, hi):
    """Log density of :func:`_amplitude_draw`'s law at ``x``."""
    flip, a, b, far = _frame(lo, hi)
    z = np.where(flip, -(x - mean) / sd, (x - mean) / sd)
    la, lb = log_ndtr(a), log_ndtr(b)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        log_mass = lb + np.log1p(-np.exp(np.minimum(la - lb, 0.0)))
        normal = -0.5 * z * z - 0.5 * np.log(2.0 * np.pi) - log_mass
        rate = -b
        expo = np.log(rate) + rate * (z - b) - np.log1p(-np.exp(-rate * (b - a)))
    return np.where(far, expo, normal) - np.log(sd)


def _amplitude_draw(mean, sd, lo, hi, random):
    """Draws of ``N(mean, sd^2)`` truncated to the standardised ``[lo, hi]``.

    Inverse CDF on the side of the interval with the smaller tail masses, so
    that an interval far out in one tail (an amplitude whose least-squares
    value lies far below zero) is sampled without loss; beyond ``_FAR`` the
    exponential limit of the tail.
    """
    flip, a, b, far = _frame(lo, hi)
    u = random.random(np.shape(mean))
    pa, pb = ndtr(a), ndtr(b)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        z = ndtri(pa + u * (pb - pa))
        rate = -b
        z_far = b + np.log(u + (1.0 - u) * np.exp(-rate * (b - a))) / rate
    z = np.clip(np.where(far, z_far, z), a, b)
    return mean + sd * np.where(flip, -z, z)
