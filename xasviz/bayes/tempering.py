"""Replica-exchange tempering and the Bayes free energy along the ladder.

The target at rung ``j`` of a ladder ``0 = beta_0 < beta_1 < ... < beta_R`` is

    p_j(theta) ∝ exp(-beta_j S(theta) / 2) prior(theta),   S = sum_i (y_i - F_i)^2

with a normalised prior, so ``Z_0 = 1``. Because the noise precision ``b`` of
the likelihood (paper section 2.7) enters exactly like ``beta``,

    ln Z(K, b) = N/2 ln(b / 2 pi) + ln Z_{beta=b},   F(K, b) = -ln Z(K, b),

and one tempered run per K gives ``F(K, b)`` for every ``b`` of the ladder.

Sampling
--------
Every rung holds an ensemble of walkers. Rung 0 is the prior itself and is
redrawn exactly every sweep. Rungs ``j >= 1`` are advanced with the red-blue
ensemble moves of emcee (:class:`emcee.moves.DEMove`, here with its
proposals reflected into the prior's box, and
:class:`emcee.moves.StretchMove`): each rung's proposals come from that
rung's complementary half-ensemble, built for all rungs in one call by
``batch_proposal`` (emcee's rule, vectorised over rungs), and a share of the
sweeps use the peak-redraw move of :mod:`xasviz.bayes.moves`. The proposals
of all rungs are scored in a single vectorised call and accepted with the
Metropolis-Hastings rule, Hastings factors included. After each sweep,
neighbouring rungs exchange walkers (even pairs, then odd pairs), accepted
with probability ``min(1, exp((beta_{j+1} - beta_j)(S_b - S_a) / 2))``.

Free energy
-----------
``ln Z_{j+1} - ln Z_j`` is the geometric-bridge estimate from both rungs,
``ln E_j[exp(-d S/4)] - ln E_{j+1}[exp(+d S/4)]`` with ``d = beta_{j+1} -
beta_j`` (Gelman & Meng 1998, Statist. Sci. 13, 163; it halves the exponent of
the one-sided stepping-stone estimate, which makes it far less noisy). Values
between rungs are reweighted from the nearer rung. Standard errors come from
a jackknife over contiguous blocks of sweeps, which accounts for the
autocorrelation of the chains as long as a block is longer than it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

import numpy as np
from emcee.moves import DEMove, StretchMove
from scipy.special import logsumexp

__all__ = [
    "TemperedRun",
    "temper",
    "default_moves",
    "ReflectedDEMove",
    "BlockDEMove",
    "BatchedStretchMove",
    "log_z_ladder",
    "log_z_at",
    "adapt_ladder",
    "continue_run",
    "pool_chains",
]

logger = logging.getLogger(__name__)

#: Share of the sweeps that use the peak-redraw move (when one is given). It
#: costs about four sweeps of the other moves (a residual and two matrix
#: products per walker), so a small share carries its jumps.
PEAK_SHARE = 0.15


def default_moves(
    lower=None, upper=None, blocks=None, peak_move=None
) -> list[tuple[object, float]]:
    """emcee moves and weights used within each rung.

    Differential evolution mixes well in the 8-40 dimensions of eq. 14; a
    tenth of the sweeps use the full DE step (gamma = 1), which jumps between
    modes; the stretch move adds scale-free steps. With box bounds the DE
    proposals are reflected into the box (:class:`ReflectedDEMove`). With
    ``blocks`` (groups of coordinates, e.g. one Gaussian's amplitude, centre
    and width) half of the sweeps move one block per walker
    (:class:`BlockDEMove`), which keeps the acceptance up when K is large.
    With ``peak_move`` (a :class:`xasviz.bayes.moves.PeakRedrawMove`) a
    share ``PEAK_SHARE`` of the sweeps redraw one Gaussian per walker
    instead, taken from the other moves in proportion.
    """
    if peak_move is not None:
        rest = default_moves(lower, upper, blocks)
        keep = 1.0 - PEAK_SHARE
        return [(m, keep * w) for m, w in rest] + [(peak_move, PEAK_SHARE)]
    if lower is None:
        return [(DEMove(), 0.7), (DEMove(gamma0=1.0), 0.1), (StretchMove(), 0.2)]
    if blocks is None:
        return [
            (ReflectedDEMove(lower, upper), 0.7),
            (ReflectedDEMove(lower, upper, gamma0=1.0), 0.1),
            (BatchedStretchMove(), 0.2),
        ]
    return [
        (ReflectedDEMove(lower, upper), 0.3),
        (BlockDEMove(lower, upper, blocks), 0.45),
        (ReflectedDEMove(lower, upper, gamma0=1.0), 0.1),
        (BatchedStretchMove(), 0.15),
    ]


class ReflectedDEMove(DEMove):
    """emcee's DE move with its proposals folded into a box by reflection.

    Posteriors of eq. 14 pile up against box edges (a Gaussian that K does
    not need sits at amplitude 0 or at the smallest width), and at small
    ``beta`` walkers fill the prior's box; most plain DE proposals then leave
    the box and are rejected. The DE step ``gamma (c1 - c2)`` is symmetric in
    distribution, and reflecting a symmetric step at the faces of a box keeps
    the proposal symmetric, so the Metropolis rule (Hastings factor 0) stays
    exact.

    Parameters
    ----------
    lower, upper : ndarray, shape (D,)
        Box bounds; coordinates with an infinite bound are left alone.
    **kwargs
        Passed to :class:`emcee.moves.DEMove`.
    """

    def __init__(self, lower, upper, **kwargs):
        super().__init__(**kwargs)
        lower = np.asarray(lower, dtype=np.float64)
        upper = np.asarray(upper, dtype=np.float64)
        self.box = np.isfinite(lower) & np.isfinite(upper)
        self.lower = lower[self.box]
        self.width = (upper - lower)[self.box]

    def batch_proposal(self, s, c, random):
        """The DE proposals of many ensembles at once, folded into the box.

        The rule is emcee's (:class:`emcee.moves.DEMove`, whose ``g0`` and
        ``sigma`` it reads): every walker of ensemble ``r`` steps by
        ``gamma (c[r, j] - c[r, i])`` for a pair ``i != j`` drawn uniformly
        from that ensemble's complement, ``gamma = g0 (1 + sigma N(0, 1))``.
        emcee builds one ensemble per call; the tempered runs need one per
        rung, and calling it rung by rung cost a third of the sampling time
        (``docs/bayes.md``).

        Parameters
        ----------
        s : ndarray, shape (R, n, D)
            Moving walkers of ``R`` ensembles.
        c : ndarray, shape (R, m, D)
            Their complements, ``m >= 2``.
        random : numpy.random.RandomState

        Returns
        -------
        q : ndarray, shape (R, n, D)
        factors : ndarray, shape (R, n), zeros (the step is symmetric).
        """
        n_ens, n, _ = s.shape
        m = c.shape[1]
        i = random.randint(m, size=(n_ens, n))
        j = random.randint(m - 1, size=(n_ens, n))
        j += j >= i
        rows = np.arange(n_ens)[:, None]
        gamma = self.g0 * (1.0 + self.sigma * random.randn(n_ens, n, 1))
        q = s + gamma * (c[rows, j] - c[rows, i])
        return self.fold(s, q, random), np.zeros((n_ens, n))

    def fold(self, s, q, random):
        """Reflect proposals into the box.

        Works on any leading shape (``s`` and ``q`` of shape ``(..., D)``), so
        that :func:`temper` folds the raw proposals of every rung at once.
        """
        u = np.mod(q[..., self.box] - self.lower, 2.0 * self.width)
        q[..., self.box] = self.lower + np.where(
            u > self.width, 2.0 * self.width - u, u
        )
        return q

    def get_proposal(self, s, c, random):
        q, factors = DEMove.get_proposal(self, s, c, random)
        return self.fold(s, q, random), factors


class BlockDEMove(ReflectedDEMove):
    """Reflected DE step confined to one block of coordinates per walker.

    A full DE step in D dimensions is accepted less and less often as D grows
    (about 2 % at the intermediate rungs for K = 8, D = 32). Moving one group
    of strongly coupled coordinates at a time (the base curve, or one
    Gaussian's amplitude, centre and width) with the DE scale of that group,
    ``2.38 / sqrt(2 d)``, is accepted far more often, and each group still
    moves along the ensemble's own correlations. The block is drawn
    uniformly for every walker, independently of its state, so the proposal
    stays symmetric and the Metropolis rule exact.

    Parameters
    ----------
    lower, upper : ndarray, shape (D,)
        Box bounds, as for :class:`ReflectedDEMove`.
    blocks : sequence of sequence of int
        Coordinate groups; together they should cover every coordinate.
    """

    def __init__(self, lower, upper, blocks, **kwargs):
        super().__init__(lower, upper, **kwargs)
        blocks = [np.asarray(b, dtype=int) for b in blocks]
        if not blocks or any(b.size == 0 for b in blocks):
            raise ValueError("blocks must be a non-empty list of non-empty groups.")
        self.n_block = len(blocks)
        # Row i: the DE scale of block i on its coordinates, 0 elsewhere.
        dim = max(int(b.max()) for b in blocks) + 1
        self.block_scale = np.zeros((len(blocks), dim))
        for i, block in enumerate(blocks):
            self.block_scale[i, block] = 2.38 / np.sqrt(2.0 * block.size)

    def fold(self, s, q, random):
        # The raw (unreflected) DE step, rescaled from the full dimension's
        # gamma to the block's and kept only on the chosen block, then
        # reflected into the box.
        pick = random.randint(self.n_block, size=s.shape[:-1])
        q = s + (q - s) * (self.block_scale[pick] / self.g0)
        return super().fold(s, q, random)


class BatchedStretchMove(StretchMove):
    """emcee's stretch move with the proposals of many ensembles at once.

    The rule is that of :class:`emcee.moves.StretchMove` (scale ``a``): a
    walker moves along the line to a walker ``c[r, j]`` of its ensemble's
    complement, ``q = c_j + z (s - c_j)`` with ``z`` drawn from ``g(z) ∝
    1/sqrt(z)`` on ``[1/a, a]``, and Hastings factor ``(D - 1) ln z``.
    See :meth:`ReflectedDEMove.batch_proposal` for the shapes.
    """

    def batch_proposal(self, s, c, random):
        n_ens, n, dim = s.shape
        z = ((self.a - 1.0) * random.rand(n_ens, n) + 1.0) ** 2 / self.a
        pick = random.randint(c.shape[1], size=(n_ens, n))
        cj = c[np.arange(n_ens)[:, None], pick]
        return cj + z[..., None] * (s - cj), (dim - 1.0) * np.log(z)


@dataclasses.dataclass
class TemperedRun:
    """What one tempered run keeps.

    Attributes
    ----------
    betas : ndarray, shape (R + 1,)
        The ladder, ``betas[0] == 0``.
    sum_sq : ndarray, shape (n_sweeps, R + 1, n_walkers)
        ``S(theta)`` of every walker at every kept sweep and rung.
    coords : ndarray, shape (R + 1, n_walkers, D)
        Final walker positions.
    move_acceptance : ndarray, shape (R + 1,)
        Fraction of accepted within-rung moves (1 at the prior rung).
    swap_acceptance : ndarray, shape (R,)
        Fraction of accepted exchanges between rung j and j + 1.
    timings : dict of str -> float
        Seconds spent in ``model`` (S and prior), ``proposal`` (emcee),
        ``exchange`` and ``total``.
    """

    betas: np.ndarray
    sum_sq: np.ndarray
    coords: np.ndarray
    move_acceptance: np.ndarray
    swap_acceptance: np.ndarray
    timings: dict


def temper(
    sum_sq: Callable[[np.ndarray], np.ndarray],
    prior,
    betas: np.ndarray,
    *,
    n_walkers: int,
    n_sweeps: int,
    n_burn: int,
    rng: np.random.Generator,
    moves: Sequence[tuple[object, float]] | None = None,
    callback: Callable[[int], None] | None = None,
    init: np.ndarray | None = None,
) -> TemperedRun:
    """Sample every rung of the ladder with replica exchange.

    Parameters
    ----------
    sum_sq : callable
        ``sum_sq(theta (M, D)) -> (M,)``, the sum of squared residuals,
        vectorised over walkers (all rungs are scored in one call).
    prior : object
        With ``sample(rng, n) -> (n, D)`` (exact draws), ``logpdf(theta) ->
        (M,)`` (normalised, ``-inf`` off support) and ``ndim``.
    betas : ndarray, shape (R + 1,)
        Strictly increasing, ``betas[0] == 0``.
    n_walkers : int
        Walkers per rung, even.
    n_sweeps, n_burn : int
        Kept sweeps and discarded sweeps before them.
    rng : numpy.random.Generator
    moves : list of (emcee red-blue move, weight), optional
        Default :func:`default_moves`.
    callback : callable, optional
        Called with the number of sweeps done, every 50 sweeps.
    init : ndarray, shape (R + 1, n_walkers, D), optional
        Starting walkers (inside the prior's support); default prior draws.

    Returns
    -------
    TemperedRun
    """
    betas = np.asarray(betas, dtype=np.float64)
    moves = default_moves() if moves is None else list(moves)
    weights = np.array([w for _, w in moves], dtype=np.float64)
    weights /= weights.sum()
    n_rung = betas.size
    dim = prior.ndim
    half = n_walkers // 2
    # emcee's moves draw from a legacy RandomState; seed it from our generator
    # so that the whole run is reproducible from the caller's rng.
    legacy = np.random.RandomState(int(rng.integers(2**32 - 1)))
    for move, _ in moves:
        if hasattr(move, "setup"):
            move.setup(np.zeros((n_walkers, dim)))
    timings = dict(model=0.0, proposal=0.0, exchange=0.0, total=0.0)
    t_start = time.perf_counter()

    def score(theta, known_s=None):
        t0 = time.perf_counter()
        lp = prior.logpdf(theta)
        s = sum_sq(theta) if known_s is None else known_s
        # Points off the prior's support get S = inf; they are never accepted.
        s = np.where(np.isfinite(lp) & np.isfinite(s), s, np.inf)
        timings["model"] += time.perf_counter() - t0
        return lp, s

    if init is None:
        coords = prior.sample(rng, n_rung * n_walkers)
    else:
        coords = np.array(init, dtype=np.float64, copy=True)
    coords = coords.reshape(n_rung, n_walkers, dim)
    lp, s = score(coords.reshape(-1, dim))
    lp = lp.reshape(n_rung, n_walkers)
    s = s.reshape(n_rung, n_walkers)
    beta_col = betas[1:, None]
    kept = np.empty((n_sweeps, n_rung, n_walkers))
    n_acc_move = np.zeros(n_rung)
    n_acc_swap = np.zeros(n_rung - 1)
    n_total = n_burn + n_sweeps

    for sweep in range(n_total):
        # Rung 0 is the prior: an exact independent redraw every sweep.
        coords[0] = prior.sample(rng, n_walkers)
        lp0, s0 = score(coords[0])
        lp[0], s[0] = lp0, s0
        move = moves[int(rng.choice(len(moves), p=weights))][0]
        order = rng.permuted(np.tile(np.arange(n_walkers), (n_rung - 1, 1)), axis=1)
        for part in (0, 1):
            moving = order[:, :half] if part == 0 else order[:, half:]
            other = order[:, half:] if part == 0 else order[:, :half]
            t0 = time.perf_counter()
            # emcee builds each rung's proposals from that rung's other half;
            # the walkers are gathered for all rungs at once, and the
            # reflection into the prior's box (ours) runs once on the batch.
            rows = np.arange(1, n_rung)[:, None]
            here, there = coords[rows, moving], coords[rows, other]
            prop = np.empty_like(here)
            factors = np.empty(moving.shape)
            known_s = None
            if hasattr(move, "batch_proposal"):
                prop, factors = move.batch_proposal(here, there, legacy)
            elif hasattr(move, "get_proposal"):
                # A plain emcee move: its own proposal, one rung at a time.
                for j in range(n_rung - 1):
                    prop[j], factors[j] = move.get_proposal(here[j], [there[j]], legacy)
            else:
                # A move of its own (PeakRedrawMove): one batch over all
                # rungs, each walker at its rung's beta.
                # It also returns the proposals' sums of squares, which it
                # gets for free, so they need not be scored again.
                flat, fac, known_s = move.propose(
                    here.reshape(-1, dim),
                    np.repeat(betas[1:], moving.shape[1]),
                    rng,
                )
                prop, factors = flat.reshape(here.shape), fac.reshape(factors.shape)
            timings["proposal"] += time.perf_counter() - t0
            new_lp, new_s = score(prop.reshape(-1, dim), known_s)
            new_lp = new_lp.reshape(factors.shape)
            new_s = new_s.reshape(factors.shape)
            old_lp = lp[rows, moving]
            old_s = s[rows, moving]
            with np.errstate(invalid="ignore"):
                # inf - inf never happens: old states are always finite.
                delta = factors + (new_lp - old_lp) - 0.5 * beta_col * (new_s - old_s)
            accept = np.isfinite(new_s) & (delta > np.log(rng.random(delta.shape)))
            r_idx, w_idx = np.nonzero(accept)
            tgt = (r_idx + 1, moving[r_idx, w_idx])
            coords[tgt] = prop[r_idx, w_idx]
            lp[tgt] = new_lp[r_idx, w_idx]
            s[tgt] = new_s[r_idx, w_idx]
            if sweep >= n_burn:
                n_acc_move[1:] += accept.sum(axis=1)
        t0 = time.perf_counter()
        acc_swap = _exchange(coords, lp, s, betas, rng)
        timings["exchange"] += time.perf_counter() - t0
        if sweep >= n_burn:
            kept[sweep - n_burn] = s
            n_acc_swap += acc_swap
        if callback is not None and (sweep + 1) % 50 == 0:
            callback(sweep + 1)
    timings["total"] = time.perf_counter() - t_start
    move_acc = n_acc_move / max(n_sweeps * n_walkers, 1)
    move_acc[0] = 1.0
    return TemperedRun(
        betas=betas,
        sum_sq=kept,
        coords=coords,
        move_acceptance=move_acc,
        swap_acceptance=n_acc_swap / max(n_sweeps * n_walkers, 1),
        timings=timings,
    )


def continue_run(run: TemperedRun, more: TemperedRun, keep: int) -> TemperedRun:
    """Join a run and its continuation, keeping the last ``keep`` sweeps.

    ``more`` must have been started from ``run.coords`` on the same ladder.
    Acceptance rates are pooled over both; timings add up.
    """
    if not np.array_equal(run.betas, more.betas):
        raise ValueError("A continuation must use the same ladder as the run.")
    n_a, n_b = run.sum_sq.shape[0], more.sum_sq.shape[0]
    both = np.concatenate([run.sum_sq, more.sum_sq])[-int(keep) :]
    w = n_a / max(n_a + n_b, 1)
    return TemperedRun(
        betas=run.betas,
        sum_sq=both,
        coords=more.coords,
        move_acceptance=w * run.move_acceptance + (1 - w) * more.move_acceptance,
        swap_acceptance=w * run.swap_acceptance + (1 - w) * more.swap_acceptance,
        timings={k: run.timings[k] + more.timings[k] for k in run.timings},
    )


def pool_chains(chains: Sequence[TemperedRun]) -> TemperedRun:
    """Pool independent runs on one ladder into one set of kept sweeps.

    The kept sweeps are laid end to end (first chain first), so that the
    contiguous jackknife blocks of :func:`log_z_ladder` each fall within one
    chain when their number is a multiple of the number of chains: the
    spread between chains then enters the standard error. The final walkers
    are those of the first chain; acceptance rates are averaged, timings add.
    """
    first = chains[0]
    for other in chains[1:]:
        if not np.array_equal(first.betas, other.betas):
            raise ValueError("Pooled chains must share one ladder.")
    if len(chains) == 1:
        return first
    return TemperedRun(
        betas=first.betas,
        sum_sq=np.concatenate([c.sum_sq for c in chains]),
        coords=first.coords,
        move_acceptance=np.mean([c.move_acceptance for c in chains], axis=0),
        swap_acceptance=np.mean([c.swap_acceptance for c in chains], axis=0),
        timings={k: sum(c.timings[k] for c in chains) for k in first.timings},
    )


def _exchange(coords, lp, s, betas, rng) -> np.ndarray:
    """Swap walker i of rung j with walker i of rung j + 1 (in place).

    Even pairs (0-1, 2-3, ...) first, then odd pairs, so that every rung takes
    part in at most one exchange at a time.

    Returns
    -------
    ndarray, shape (R,)
        Accepted swaps per pair of rungs.
    """
    n_rung, n_walkers = s.shape
    accepted = np.zeros(n_rung - 1)
    for parity in (0, 1):
        lo = np.arange(parity, n_rung - 1, 2)
        if lo.size == 0:
            continue
        hi = lo + 1
        d_beta = (betas[hi] - betas[lo])[:, None]
        with np.errstate(invalid="ignore"):
            log_a = 0.5 * d_beta * (s[hi] - s[lo])
        swap = log_a > np.log(rng.random(log_a.shape))
        r, w = np.nonzero(swap)
        a, b = lo[r], hi[r]
        coords[a, w], coords[b, w] = coords[b, w].copy(), coords[a, w].copy()
        lp[a, w], lp[b, w] = lp[b, w].copy(), lp[a, w].copy()
        s[a, w], s[b, w] = s[b, w].copy(), s[a, w].copy()
        accepted[lo] += swap.sum(axis=1)
    return accepted


def adapt_ladder(betas: np.ndarray, sum_sq: np.ndarray, n: int) -> np.ndarray:
    """Redistribute ``n`` positive rungs by thermodynamic length.

    The variance of a bridge estimate between neighbours grows with
    ``(d beta)^2 Var_beta(S / 2)``; rungs equally spaced in the thermodynamic
    length ``l(u) = int sqrt(Var_beta(beta S / 2)) du``, ``u = ln beta``,
    spread that variance evenly (Gelman & Meng 1998; the heat-capacity peaks
    of the spectral model get dense rungs). Half of the spacing is kept
    geometric so that no stretch of the ladder is left bare.

    Parameters
    ----------
    betas : ndarray, shape (R + 1,)
        Pilot ladder, ``betas[0] == 0``.
    sum_sq : ndarray, shape (n_sweeps, R + 1, n_walkers)
        Pilot samples of ``S``.
    n : int
        Positive rungs of the new ladder (same end points).

    Returns
    -------
    ndarray, shape (n + 1,), ``[0, beta_1 .. beta_R]``
    """
    u = np.log(betas[1:])
    var = np.var(
        0.5
        * betas[1:, None]
        * sum_sq[:, 1:].transpose(1, 0, 2).reshape(betas.size - 1, -1),
        axis=1,
    )
    rate = np.sqrt(var)
    length = np.concatenate(
        [[0.0], np.cumsum(0.5 * (rate[1:] + rate[:-1]) * np.diff(u))]
    )
    span = u[-1] - u[0]
    mix = 0.5 * length / max(length[-1], 1e-12) + 0.5 * (u - u[0]) / span
    new_u = np.interp(np.linspace(0.0, 1.0, n), mix, u)
    return np.concatenate([[0.0], np.exp(new_u)])


# ---------------------------------------------------------------------------
# Free energy from the kept sums of squares


def _block_lse(logw: np.ndarray, n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Log-sum-exp of log weights within contiguous blocks of sweeps.

    Parameters
    ----------
    logw : ndarray, shape (n_sweeps, ..., n_walkers)

    Returns
    -------
    lse : ndarray, shape (n_blocks, ...)
    count : ndarray, shape (n_blocks,)
    """
    edges = np.linspace(0, logw.shape[0], n_blocks + 1).astype(int)
    lse = np.stack(
        [logsumexp(logw[a:b], axis=(0, -1)) for a, b in zip(edges[:-1], edges[1:])]
    )
    count = np.diff(edges) * logw.shape[-1]
    return lse, count


def _log_mean_jackknife(logw: np.ndarray, n_blocks: int):
    """``ln mean(exp(logw))`` over sweeps and walkers, with jackknife replicates.

    Returns
    -------
    full : ndarray, shape (...)
    reps : ndarray, shape (n_blocks, ...)
        Estimates with one block left out.
    """
    lse, count = _block_lse(logw, n_blocks)
    full = logsumexp(lse, axis=0) - np.log(count.sum())
    reps = np.empty_like(lse)
    for i in range(n_blocks):
        keep = np.arange(n_blocks) != i
        reps[i] = logsumexp(lse[keep], axis=0) - np.log(count[keep].sum())
    return full, reps


def _jackknife_se(reps: np.ndarray) -> np.ndarray:
    n = reps.shape[0]
    dev = reps - reps.mean(axis=0)
    return np.sqrt((n - 1) / n * np.sum(dev * dev, axis=0))


def log_z_ladder(sum_sq: np.ndarray, betas: np.ndarray, n_blocks: int = 10):
    """``ln Z_beta`` at every rung from the kept sums of squares.

    Parameters
    ----------
    sum_sq : ndarray, shape (n_sweeps, R + 1, n_walkers)
    betas : ndarray, shape (R + 1,), ``betas[0] == 0``
    n_blocks : int
        Blocks of sweeps for the jackknife.

    Returns
    -------
    log_z : ndarray, shape (R + 1,)
        ``log_z[0] == 0`` (normalised prior).
    reps : ndarray, shape (n_blocks, R + 1)
        Jackknife replicates (one block left out).
    se : ndarray, shape (R + 1,)
        Jackknife standard errors.
    """
    d = np.diff(betas)[None, :, None]
    up_full, up_reps = _log_mean_jackknife(-0.25 * d * sum_sq[:, :-1], n_blocks)
    dn_full, dn_reps = _log_mean_jackknife(0.25 * d * sum_sq[:, 1:], n_blocks)
    step_full = up_full - dn_full
    step_reps = up_reps - dn_reps
    log_z = np.concatenate([[0.0], np.cumsum(step_full)])
    reps = np.concatenate(
        [np.zeros((n_blocks, 1)), np.cumsum(step_reps, axis=1)], axis=1
    )
    return log_z, reps, _jackknife_se(reps)


def log_z_at(
    b: np.ndarray,
    sum_sq: np.ndarray,
    betas: np.ndarray,
    log_z: np.ndarray,
    reps: np.ndarray,
):
    """``ln Z_b`` for ``beta_1 <= b <= beta_R``, reweighted from the nearer rung.

    Parameters
    ----------
    b : ndarray, shape (G,)
    sum_sq, betas, log_z, reps
        As returned by :func:`temper` and :func:`log_z_ladder`.

    Returns
    -------
    full : ndarray, shape (G,)
    se : ndarray, shape (G,)
    """
    b = np.asarray(b, dtype=np.float64)
    n_blocks = reps.shape[0]
    log_b = np.log(betas[1:])
    # Nearest rung in log(beta) among the positive rungs.
    idx = 1 + np.argmin(np.abs(np.log(b)[:, None] - log_b[None, :]), axis=1)
    full = np.empty(b.size)
    out_reps = np.empty((n_blocks, b.size))
    for j in np.unique(idx):
        sel = np.flatnonzero(idx == j)
        shift = (b[sel] - betas[j])[None, :, None]
        logw = -0.5 * shift * sum_sq[:, j][:, None, :]
        f, r = _log_mean_jackknife(logw, n_blocks)
        full[sel] = log_z[j] + f
        out_reps[:, sel] = reps[:, j][:, None] + r
    return full, _jackknife_se(out_reps)
