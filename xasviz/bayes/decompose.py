"""Bayesian spectroscopy of one or several spectra (paper sections 2.7, 3.5).

:func:`decompose` fits eq. 14 for every number of Gaussians ``K`` in
``k_min..k_max`` with a replica-exchange run over a ladder of inverse
temperatures, reads the Bayes free energy ``F(K, b)`` off that run for every
noise precision ``b``, picks ``(K, b) = argmin F`` and describes the posterior
there (MAP, medians, 95 % intervals, a chain).
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np
import xarray as xr
from scipy.optimize import least_squares
from threadpoolctl import threadpool_limits

from .._errors import ConvergenceWarning, StackValidationError
from .._utils import as_rng, child_seeds, progress_bar, provenance, seed_of, warn
from .._validation import check_energy_axis
from .fitting import (
    START_SPREADS,
    greedy_fits,
    initial_walkers,
    map_fit,
    sort_gaussians,
)
from .model import (
    N_BASE,
    _curve,
    _parts,
    _sum_sq,
    output_names,
    param_names,
    to_natural,
)
from .moves import PeakRedrawMove
from .priors import Prior, SpectralPrior, check_spectrum_for_prior
from .tempering import (
    adapt_ladder,
    continue_run,
    default_moves,
    log_z_at,
    log_z_ladder,
    pool_chains,
    temper,
)

__all__ = ["decompose", "noise_estimate", "auto_ladder"]

logger = logging.getLogger(__name__)

#: Spacing of the automatic ladder in ln(beta).
LADDER_STEP = 0.45
#: Reweighted points per ladder interval when minimising F over b.
GRID_PER_RUNG = 10
#: Noise levels below noise_estimate / LADDER_DEPTH are not considered.
LADDER_DEPTH = 5.0


def noise_estimate(y: np.ndarray) -> float:
    """Noise standard deviation from second differences (robust, MAD based).

    ``y[i-1] - 2 y[i] + y[i+1]`` of white noise has variance ``6 sigma^2``;
    the median absolute deviation ignores the few points where the spectrum
    itself curves sharply (edge, white line). Overestimates sigma when the
    spectrum is sampled too coarsely for its features.
    """
    d2 = np.diff(y, 2)
    mad = np.median(np.abs(d2 - np.median(d2)))
    return float(mad / 0.6745 / math.sqrt(6.0))


def auto_ladder(ys: np.ndarray, step: float = LADDER_STEP, n: int | None = None):
    """Default inverse-temperature ladder for spectra ``ys`` (S, N).

    From ``beta_1 = 1 / (N R^2)`` (likelihood still weak against the prior,
    ``R`` the intensity range) up to ``LADDER_DEPTH^2 / sigma_d^2``, with
    ``sigma_d`` :func:`noise_estimate`, geometric with ``ln`` spacing ``step``
    (or ``n`` positive rungs). ``beta_0 = 0`` is prepended.
    """
    n_pts = ys.shape[1]
    lo = min(1.0 / (n_pts * float(np.ptp(y)) ** 2) for y in ys)
    sig = min(max(noise_estimate(y), 1e-12 * float(np.ptp(y))) for y in ys)
    hi = (LADDER_DEPTH / sig) ** 2
    if n is None:
        n = int(math.ceil(math.log(hi / lo) / step)) + 1
    return np.concatenate([[0.0], np.geomspace(lo, hi, n)])


# ---------------------------------------------------------------------------
# Input checks


def _as_spectra(spectrum) -> tuple[xr.DataArray, bool]:
    """Validate; return (component, energy) DataArray and whether it was 1-D."""
    if not isinstance(spectrum, xr.DataArray):
        raise StackValidationError(
            "spectrum must be an xarray.DataArray with dim 'energy' (optionally "
            f"also 'component'); got {type(spectrum).__name__}. Build one with "
            "xarray.DataArray(values, dims='energy', coords={'energy': eV})."
        )
    dims = set(spectrum.dims)
    if dims not in ({"energy"}, {"energy", "component"}):
        raise StackValidationError(
            "spectrum must have dims ('energy',) or ('component', 'energy'); got "
            f"{spectrum.dims}. Select or rename dims first, e.g. "
            "result['absorption'] of xasviz.onmf has ('component', 'energy')."
        )
    if "energy" not in spectrum.coords:
        raise StackValidationError(
            "spectrum has no 'energy' coordinate; add it with "
            "spectrum.assign_coords(energy=energies_eV)."
        )
    check_energy_axis(spectrum["energy"].values, what="energy axis of spectrum")
    single = spectrum.ndim == 1
    da = spectrum.expand_dims(component=[0]) if single else spectrum
    da = da.transpose("component", "energy")
    if not np.issubdtype(da.dtype, np.number) or np.iscomplexobj(da):
        raise StackValidationError(
            f"spectrum must hold real numbers; got dtype {da.dtype}."
        )
    vals = np.asarray(da.values, dtype=np.float64)
    bad = ~np.isfinite(vals)
    if bad.any():
        c, i = np.argwhere(bad)[0]
        where = "" if single else f" (component {da['component'].values[c]!r})"
        raise StackValidationError(
            f"spectrum holds {int(bad.sum())} NaN or inf values{where}, the first "
            f"at energy {float(da['energy'][i])} eV. Interpolate or drop those "
            "energies first, e.g. spectrum.dropna('energy')."
        )
    return da.copy(data=vals), single


def _check_signal(y: np.ndarray, label: str) -> None:
    if np.ptp(y) <= 0:
        raise StackValidationError(
            f"{label} is flat (every value equal): there is no edge step or peak "
            "to decompose."
        )
    sig = noise_estimate(y)
    if np.ptp(y) < 8.0 * sig:
        raise StackValidationError(
            f"{label} is flat within its noise: its range {np.ptp(y):.3g} is less "
            f"than 8 times the noise estimate {sig:.3g}. There is no edge step or "
            "peak to decompose; average more pixels or check the energy window."
        )


def _ladder_from(ladder, ys: np.ndarray) -> np.ndarray:
    if ladder is None:
        return auto_ladder(ys)
    if isinstance(ladder, (int, np.integer)) and not isinstance(ladder, bool):
        if ladder < 3:
            raise ValueError(f"ladder as a number of rungs must be >= 3; got {ladder}.")
        return auto_ladder(ys, n=int(ladder))
    b = np.asarray(ladder, dtype=np.float64).ravel()
    if b.size < 3 or not np.all(np.isfinite(b)) or np.any(b < 0):
        raise ValueError(
            "ladder must be None, a number of rungs, or at least 3 finite inverse "
            f"temperatures >= 0; got {ladder!r}."
        )
    if b[0] != 0:
        b = np.concatenate([[0.0], b])
    if np.any(np.diff(b) <= 0):
        raise ValueError("ladder must be strictly increasing; sort it first.")
    return b


# ---------------------------------------------------------------------------
# One tempered run: worker for one (spectrum, K)


def _run_one(task: dict) -> dict:
    """Tempered run and free-energy curve for one spectrum and one K.

    The run's matrix products are small (a chunk of walkers against a few
    hundred energies), so a multi-threaded BLAS gains nothing on them, and
    with ``n_jobs`` processes each one's BLAS threads compete for the same
    cores: two K = 8 runs side by side on two cores took 2.6 times as long
    each as with one BLAS thread per process (``docs/bayes.md``, "Speed").
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _temper_one(task)


def _temper_one(task: dict) -> dict:
    energy, y, k = task["energy"], task["y"], task["k"]
    betas = task["betas"]
    # Exchangeable Gaussians while tempering: the same Z as the ordered prior
    # (see SpectralPrior), and no move is rejected for carrying a centre past
    # another one, which the one-Gaussian block moves do often.
    prior = SpectralPrior(task["bounds"], k, ordered=task.get("ordered", False))
    rng = np.random.default_rng(task["seed"])
    n_walkers = task["n_walkers"] or max(2 * prior.ndim + 2, 24)

    def start(c):
        # Chain c's walkers on the current ladder, started wide or narrow in
        # turn (START_SPREADS).
        spread = START_SPREADS[c % len(START_SPREADS)]
        return initial_walkers(
            energy, prior, task["theta_init"], betas, n_walkers, rng, spread=spread
        )

    init = start(0)

    def sum_sq(theta):
        return _sum_sq(energy, y, theta, k)

    n_burn = task["n_burn"]
    pilot = None
    if task["adapt"]:
        # Pilot on the geometric ladder, then rungs by thermodynamic length;
        # the pilot's sweeps count towards the burn-in.
        n_pilot = max(n_burn // 2, 20)
        pilot = temper(
            sum_sq,
            prior,
            betas,
            n_walkers=n_walkers,
            n_sweeps=n_pilot // 2,
            n_burn=n_pilot - n_pilot // 2,
            rng=rng,
            moves=_moves(energy, y, k, prior, task),
            init=init,
        )
        new = adapt_ladder(betas, pilot.sum_sq, betas.size - 1)
        near = np.abs(np.log(new[1:, None]) - np.log(betas[None, 1:])).argmin(1)
        init = np.concatenate([pilot.coords[:1], pilot.coords[1 + near]])
        betas = new
        n_burn = max(n_burn - n_pilot, 0)
    moves = _moves(energy, y, k, prior, task)
    n_chains = task.get("n_chains", 1)
    # Independent chains, each with its own start and burn-in, pooled for the
    # estimate: their kept sweeps are laid end to end, so the jackknife's
    # contiguous blocks fall within one chain and a disagreement between
    # chains (a mode one of them found, a start one of them has not shed)
    # shows up in the standard error instead of hiding in it.
    per_chain = task["n_sweeps"] // n_chains
    callback = task.get("callback")
    # Progress counts every sweep of this K (pilot and every chain's burn-in
    # included), so each chain's own count is offset by the sweeps before it.
    done = 0 if pilot is None else n_pilot
    chains = []
    for c in range(n_chains):
        burn = n_burn if c == 0 else task["n_burn"]
        if c > 0:
            init = start(c)
        tick = None
        if callback is not None:

            def tick(n, offset=done):
                callback(offset + n)

        chains.append(
            temper(
                sum_sq,
                prior,
                betas,
                n_walkers=n_walkers,
                n_sweeps=per_chain,
                n_burn=burn,
                rng=rng,
                moves=moves,
                callback=tick,
                init=init,
            )
        )
        done += burn + per_chain
    if pilot is not None:
        for key in chains[0].timings:
            chains[0].timings[key] += pilot.timings[key]
    fe_time = [0.0]

    def timed(func, *args):
        t0 = time.perf_counter()
        out = func(*args)
        fe_time[0] += time.perf_counter() - t0
        return out

    run = pool_chains(chains)
    log_z, reps, _ = timed(log_z_ladder, run.sum_sq, betas, task["n_blocks"])
    # Continue while F's error at its minimum over b is above the target, or
    # while F still drifts: the value from the second half of every chain's
    # kept sweeps differs from that of the first half by more than twice
    # the error of that difference (and more than the target). Independent
    # chains of an over-complete K can agree with each other while all of
    # them still drift (F of K = 8 on the benchmark fell by 16 nats over
    # 2000 sweeps), so a small jackknife error alone does not mean settled.
    # Every continuation also moves the burn-in on: the kept sweeps stay the
    # same fraction of all sweeps run as with the defaults.
    n_all = task["n_burn"] + task["n_sweeps"]
    keep_frac = task["n_sweeps"] / n_all
    chunk = max(task["n_sweeps"] // 2, 2 * task["n_blocks"])
    grid, target = task["grid"], task["se_target"]

    drift, drift_se = timed(_drift, chains, betas, grid, y.size, task["n_blocks"])
    while (
        target is not None
        and n_all + chunk <= task["max_sweeps"]
        and (
            _drifting(drift, drift_se, target)
            or timed(_f_at_min, run.sum_sq, betas, log_z, reps, grid, y.size)[1]
            > target
        )
    ):
        n_all += chunk
        keep = round(keep_frac * n_all) // n_chains
        for c, chain in enumerate(chains):
            more = temper(
                sum_sq,
                prior,
                betas,
                n_walkers=n_walkers,
                n_sweeps=chunk // n_chains,
                n_burn=0,
                rng=rng,
                moves=moves,
                init=chain.coords,
            )
            chains[c] = continue_run(chain, more, keep=keep)
        run = pool_chains(chains)
        log_z, reps, _ = timed(log_z_ladder, run.sum_sq, betas, task["n_blocks"])
        drift, drift_se = timed(_drift, chains, betas, grid, y.size, task["n_blocks"])
    # Report on the common grid (every K and spectrum share it) and on the
    # fine grid for the minimum over b, reweighted from the nearest rung.
    report = task["report"]
    log_z_rep, se_rep = timed(log_z_at, report, run.sum_sq, betas, log_z, reps)
    log_z_grid, se_grid = timed(log_z_at, grid, run.sum_sq, betas, log_z, reps)
    timings = dict(run.timings, free_energy=fe_time[0])
    return dict(
        k=k,
        betas=betas,
        log_z=log_z_rep,
        log_z_se=se_rep,
        log_z_grid=log_z_grid,
        log_z_grid_se=se_grid,
        coords=run.coords,
        move_acceptance=run.move_acceptance,
        swap_acceptance=run.swap_acceptance,
        timings=timings,
        n_walkers=n_walkers,
        # Every chain's burn-in counts: what this K cost in sweeps.
        n_sweeps_total=n_all + (n_chains - 1) * task["n_burn"],
        n_sweeps_kept=int(run.sum_sq.shape[0]),
        drift=drift,
        drift_se=drift_se,
    )


def _moves(energy, y, k, prior, task):
    """Within-rung moves of one K's tempered run."""
    peak = None
    if k >= 1:
        peak = PeakRedrawMove(energy, y, k, task["bounds"])
    return default_moves(*prior.lower_upper(), blocks=prior.blocks(), peak_move=peak)


def _f_at_min(sum_sq, betas, log_z, reps, grid, n) -> tuple[float, float]:
    """``min_b F(K, b)`` over the fine grid of b and its standard error.

    Only the grid between the rungs either side of the best rung is
    reweighted: ``F`` is smooth in ``b``, and reweighting the whole grid at
    every check would cost more than the sampling it decides on.
    """
    f_rung = _free_energy(log_z[1:], betas[1:], n)
    j = 1 + int(np.argmin(f_rung))
    lo, hi = betas[max(j - 1, 1)], betas[min(j + 1, betas.size - 1)]
    near = grid[(grid >= lo) & (grid <= hi)]
    if near.size == 0:
        near = grid[[int(np.argmin(np.abs(np.log(grid) - np.log(betas[j]))))]]
    lz, lz_se = log_z_at(near, sum_sq, betas, log_z, reps)
    f = _free_energy(lz, near, n)
    i = int(np.argmin(f))
    return float(f[i]), float(lz_se[i])


def _drift(chains, betas, grid, n, n_blocks) -> tuple[float, float]:
    """Change of ``min_b F`` from the first to the second half of the chains.

    Each chain's kept sweeps are cut in two; the first halves of all chains
    are pooled for one estimate, the second halves for another. Returns
    their difference (second minus first) and its standard error (the two
    halves' jackknife errors combined; with one chain, over blocks within
    each half).
    """
    n_chains = len(chains)
    blocks = n_chains if n_chains > 1 else max(n_blocks // 2, 2)
    half = chains[0].sum_sq.shape[0] // 2  # pooled chains keep equal lengths
    out = []
    for part in (slice(None, half), slice(half, None)):
        ss = np.concatenate([c.sum_sq[part] for c in chains])
        log_z, reps, _ = log_z_ladder(ss, betas, blocks)
        out.append(_f_at_min(ss, betas, log_z, reps, grid, n))
    return out[1][0] - out[0][0], float(np.hypot(out[0][1], out[1][1]))


def _drifting(drift, drift_se, target):
    """Whether ``F`` still moved: by more than twice the error of the change
    and more than ``se_target``. Scalars or arrays (one entry per K)."""
    return np.abs(drift) > np.maximum(2.0 * drift_se, target)


def _free_energy(log_z: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """``F(K, b) = -N/2 ln(b / 2 pi) - ln Z_b`` (section 2.7)."""
    return -0.5 * n * np.log(b / (2.0 * np.pi)) - log_z


# ---------------------------------------------------------------------------
# Posterior at the chosen (K, b)


def _posterior(energy, y, prior, k, b, start, n_samples, n_steps, seed):
    """emcee chain at inverse temperature ``b``.

    Returns
    -------
    samples : (n_samples, D) evenly thinned draws; log_prob, chain : every
    kept draw and its log posterior; acceptance : mean acceptance fraction.
    """
    import emcee

    def log_prob(theta):
        lp = prior.logpdf(theta)
        s = _sum_sq(energy, y, theta, k)
        return np.where(np.isfinite(lp), lp - 0.5 * b * s, -np.inf)

    n_walkers, dim = start.shape
    sampler = emcee.EnsembleSampler(
        n_walkers,
        dim,
        log_prob,
        vectorize=True,
        moves=default_moves(*prior.lower_upper(), blocks=prior.blocks()),
    )
    sampler.random_state = np.random.RandomState(seed % (2**32 - 1)).get_state()
    burn = n_steps // 4
    sampler.run_mcmc(start, burn + n_steps, progress=False)
    chain = sampler.get_chain(discard=burn, flat=True)
    logp = sampler.get_log_prob(discard=burn, flat=True)
    pick = np.linspace(0, chain.shape[0] - 1, n_samples).round().astype(int)
    return chain[pick], logp, chain, float(np.mean(sampler.acceptance_fraction))


# ---------------------------------------------------------------------------
# Public API


def decompose(
    spectrum: xr.DataArray,
    *,
    k_max: int = 6,
    k_min: int = 0,
    ladder=None,
    n_sweeps: int = 1000,
    n_burn: int | None = None,
    n_walkers: int | None = None,
    n_samples: int = 2000,
    n_blocks: int | None = None,
    n_chains: int = 4,
    se_target: float | None = 0.3,
    max_sweeps: int | None = None,
    prior=None,
    rng=None,
    progress: bool | str = False,
    n_jobs: int = 1,
) -> xr.Dataset:
    """Decompose spectra into edge step, white line and K Gaussians (eqs. 14-15).

    ``K`` and the noise precision ``b = 1 / sigma^2`` are chosen by the
    Bayes free energy, ``(K, b) = argmin F(K, b)`` (section 2.7).

    Parameters
    ----------
    spectrum : xarray.DataArray, dims ("energy",) or ("component", "energy")
        Absorption spectra on the normalised scale, energy in eV, strictly
        increasing, no NaN. With a ``component`` dim every spectrum is
        decomposed on its own and every output gains that dim.
    k_max, k_min : int
        Range of the number of Gaussians tried (default 0..6).
    ladder : None, int or array-like of float
        Inverse temperatures. None: from ``1 / (N R^2)`` up to
        ``25 / sigma_d^2`` (``sigma_d`` the noise estimate from second
        differences), geometric with ``ln`` spacing 0.45; an int: that many
        positive rungs over the same range. In both cases each K's run
        redistributes its rungs by thermodynamic length after a pilot (see
        :func:`xasviz.bayes.tempering.adapt_ladder`). An array: these rungs
        for every run, unchanged (0 is prepended when absent). The positive
        rungs of the unadapted ladder are the ``beta`` grid of the output.
    n_sweeps : int
        Kept sweeps of every K, shared by its chains (default 1000: 250 per
        chain with the default four chains).
    n_burn : int, optional
        Discarded sweeps at the start of every chain (default
        ``n_sweeps // 2``).
    n_walkers : int, optional
        Walkers per rung (default ``max(2 D + 2, 24)`` with ``D = 8 + 3 K``).
    n_samples : int
        Length of the returned posterior chain at the chosen (K, b).
    n_blocks : int, optional
        Blocks of kept sweeps for the jackknife standard errors of F, a
        multiple of ``n_chains``; the blocks of one chain are contiguous.
        Default: one block per chain (``n_chains``), or 10 with one chain.
    n_chains : int
        Independent tempered runs per K (default 4), each from its own start
        and with its own burn-in, on one ladder (adapted in the first). Their
        sweeps are pooled for ``F`` and, with the default ``n_blocks``, the
        standard error is the jackknife over whole chains: the spread between
        independent runs, which is what the error must describe. A jackknife
        over blocks of one chain reports about half the real run-to-run
        spread on the benchmark spectrum, because the chains wander between
        configurations over more sweeps than a block spans
        (``docs/bayes.md``, "How honest the errors are"). The chains start
        alternately wide and narrow (Laplace covariance times 3, then 1:
        ``xasviz.bayes.fitting.START_SPREADS``): a burn-in that has not worn
        off leaves F too high in the first kind and too low in the other, so
        it shows in the error. Each extra chain costs one more burn-in.
    se_target : float or None
        Target standard error (nats) of ``min_b F(K, b)``. A run whose error
        is above it after ``n_burn + n_sweeps`` sweeps is continued in chunks
        of ``n_sweeps // 2`` sweeps, the burn-in growing with it (the kept
        sweeps stay the fraction ``n_sweeps / (n_burn + n_sweeps)`` of all),
        until the error is below the target or ``max_sweeps`` is reached.
        A run also continues while ``F`` drifts: while the value from the
        second half of every chain's kept sweeps differs from that of the
        first half by more than twice the error of the difference and more
        than ``se_target`` (``free_energy_drift``). None: never continue.
    max_sweeps : int, optional
        Most sweeps (burn-in included, the ladder pilot and the burn-ins of
        the second and later chains excluded) of one K; default
        ``4 (n_burn + n_sweeps)``. The sweeps each K actually used
        are in ``n_sweeps_total``; a K that stops at this cap above the target
        gets a ``ConvergenceWarning``.
    prior : None, dict or Prior
        Overrides of the default priors (see :class:`xasviz.bayes.Prior`).
    rng : None, int or numpy.random.Generator
        Seed; every (spectrum, K) run gets its own child seed drawn from it,
        so results do not depend on ``n_jobs``.
    progress : bool or "notebook"
        Show a progress bar over the sweeps of all runs.
    n_jobs : int
        Processes running different K (and spectra) in parallel.

    Returns
    -------
    xarray.Dataset
        ====================  =================  ==================================
        variable              dims               meaning
        ====================  =================  ==================================
        free_energy           K, beta            ``F(K, b)`` at every positive rung
        free_energy_se        K, beta            its jackknife standard error
        free_energy_min       K                  ``min_b F(K, b)`` (reweighted)
        free_energy_min_se    K                  its standard error
        b_min                 K                  the ``b`` of that minimum
        k, b, sigma           ()                 the chosen K, b and ``b^-1/2``
        map                   param              MAP at the chosen (K, b)
        median                param              posterior median
        interval              param, bound       95 % interval, bound = low, high
        chain                 sample, param      posterior draws at (K, b)
        components            peak, energy       step (incl. y0), white_line,
                                                 gauss_1.. at the MAP
        fit, residual         energy             MAP curve and ``data - fit``
        data                  energy             the spectrum
        rmsd                  ()                 root-mean-square of the residual
        ladder                K, rung            positive rungs of each K's run
        move_acceptance       K, rung            within-rung acceptance
        swap_acceptance       K, rung            exchange acceptance with the rung
                                                 below
        n_sweeps_total        K                  sweeps each K's run took (burn-in
                                                 and continuations included)
        free_energy_drift     K                  ``min_b F`` from the second half of
                                                 every chain's kept sweeps minus
                                                 that from the first half
        free_energy_drift_se  K                  its standard error
        ====================  =================  ==================================

        Read the MAP as ``ds["map"]`` (``ds.map`` is :meth:`Dataset.map`).
        ``param`` lists ``E_WL`` first (see
        :func:`xasviz.bayes.model.output_names`). With several spectra,
        ``param`` and ``peak`` cover the largest chosen K and the entries a
        smaller K does not have are NaN (padding only; the chosen quantities
        of each spectrum never hold NaN). Attrs: provenance (settings, seed,
        ladder) and timings.

    Raises
    ------
    StackValidationError
        NaN in the spectrum, a non-monotonic energy axis, fewer points than
        parameters, a flat spectrum.
    ValueError
        Bad settings, or priors that exclude the data.

    Warns
    -----
    ConvergenceWarning
        When ``F`` still falls at the top of the ladder (noise below the
        ladder's range: pass a ladder reaching higher ``beta``), or when
        neighbouring rungs hardly exchange (ladder too coarse).

    Notes
    -----
    ``F(K, b) = -N/2 ln(b / 2 pi) - ln Z_b`` where ``Z_b`` is the evidence of
    the tempered target ``exp(-b S / 2) prior``; see
    :mod:`xasviz.bayes.tempering`. The MAP is the maximum of the posterior
    density in sampling space (log widths), refined by
    :func:`scipy.optimize.least_squares` from the best posterior draw.

    References
    ----------
    H. Tanimoto et al., J. Phys. Commun. 5, 115005 (2021), section 2.7,
    eqs. 14-15. K. Nagata, S. Sugita, M. Okada, Neural Networks 28, 82 (2012).
    """
    da, single = _as_spectra(spectrum)
    for name, v in (("k_min", k_min), ("k_max", k_max)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
            raise ValueError(f"{name} must be an int >= 0; got {v!r}.")
    if k_min > k_max:
        raise ValueError(f"k_min ({k_min}) must not exceed k_max ({k_max}).")
    if not isinstance(n_chains, (int, np.integer)) or n_chains < 1:
        raise ValueError(f"n_chains must be an int >= 1; got {n_chains!r}.")
    if n_blocks is None:
        n_blocks = 10 if n_chains == 1 else int(n_chains)
    for name, v, least in (
        ("n_blocks", n_blocks, 2),
        ("n_sweeps", n_sweeps, 2 * n_blocks),
        ("n_samples", n_samples, 1),
        ("n_jobs", n_jobs, 1),
    ):
        if not isinstance(v, (int, np.integer)) or v < least:
            raise ValueError(f"{name} must be an int >= {least}; got {v!r}.")
    if n_blocks % n_chains or n_sweeps // n_chains < 2 * (n_blocks // n_chains):
        raise ValueError(
            f"n_blocks ({n_blocks}) must be a multiple of n_chains ({n_chains}), "
            "and every chain needs at least two sweeps per block: "
            f"n_sweeps // n_chains = {n_sweeps // n_chains}."
        )
    least = 2 * (N_BASE + 3 * k_max)
    if n_walkers is not None and (n_walkers < least or n_walkers % 2):
        raise ValueError(
            f"n_walkers must be an even int >= {least} (twice the parameters of "
            f"k_max={k_max}, as emcee's ensemble moves need); got {n_walkers!r}."
        )
    n_burn = n_sweeps // 2 if n_burn is None else int(n_burn)
    if se_target is not None and not (
        isinstance(se_target, (int, float, np.floating)) and se_target > 0
    ):
        raise ValueError(f"se_target must be a number > 0 or None; got {se_target!r}.")
    if max_sweeps is None:
        max_sweeps = 4 * (n_burn + n_sweeps)
    elif (
        not isinstance(max_sweeps, (int, np.integer)) or max_sweeps < n_burn + n_sweeps
    ):
        raise ValueError(
            f"max_sweeps must be an int >= n_burn + n_sweeps ({n_burn + n_sweeps}); "
            f"got {max_sweeps!r}."
        )
    energy = da["energy"].values.astype(np.float64)
    ys = da.values
    labels = [
        "spectrum" if single else f"spectrum component {c!r}"
        for c in da["component"].values
    ]
    for y, label in zip(ys, labels):
        check_spectrum_for_prior(energy, y, k_max)
        _check_signal(y, label)
    prior_obj = Prior.coerce(prior)
    bounds = [prior_obj.resolve(energy, y) for y in ys]
    for y, bnd, label in zip(ys, bounds, labels):
        _check_prior_covers(energy, y, bnd, label)
    betas = _ladder_from(ladder, ys)
    adapt = ladder is None or isinstance(ladder, (int, np.integer))
    grid = np.exp(
        np.linspace(
            np.log(betas[1]),
            np.log(betas[-1]),
            (betas.size - 2) * GRID_PER_RUNG + 1,
        )
    )
    gen = as_rng(rng)
    ks = list(range(k_min, k_max + 1))
    seeds = child_seeds(gen, 2 * len(ys) * len(ks))
    tasks = []
    for s, y in enumerate(ys):
        fits = greedy_fits(energy, y, bounds[s], k_max, noise_estimate(y) ** -2)
        for i, k in enumerate(ks):
            tasks.append(
                dict(
                    energy=energy,
                    y=y,
                    k=k,
                    betas=betas,
                    bounds=bounds[s],
                    seed=seeds[2 * (s * len(ks) + i)],
                    n_walkers=n_walkers,
                    n_sweeps=n_sweeps,
                    n_burn=n_burn,
                    n_blocks=n_blocks,
                    n_chains=n_chains,
                    grid=grid,
                    spectrum=s,
                    theta_init=fits[k],
                    report=betas[1:],
                    adapt=adapt,
                    se_target=se_target,
                    max_sweeps=max_sweeps,
                )
            )
    # Sweeps of one K before any continuation: every chain's burn-in and the
    # kept sweeps they share.
    results = _run_tasks(tasks, n_jobs, progress, n_sweeps + n_chains * n_burn)
    settings = dict(
        k_min=k_min,
        k_max=k_max,
        n_sweeps=n_sweeps,
        n_burn=n_burn,
        n_walkers=n_walkers,
        n_samples=n_samples,
        n_blocks=n_blocks,
        n_chains=n_chains,
        se_target=se_target,
        max_sweeps=max_sweeps,
        n_jobs=n_jobs,
        ladder=betas,
        prior=bounds[0] if single else bounds,
    )
    out = []
    for s, y in enumerate(ys):
        res = [results[(s, k)] for k in ks]
        post_seed = seeds[2 * (s * len(ks)) + 1]
        out.append(
            _summarise(
                energy, y, bounds[s], res, betas, grid, n_samples, post_seed, se_target
            )
        )
    ds = _assemble(out, da, single)
    timing = {
        key: float(sum(r["timings"][key] for r in results.values()))
        for key in ("model", "proposal", "exchange", "total", "free_energy")
    }
    ds.attrs = provenance(
        "xasviz.bayes.decompose",
        settings,
        seed=seed_of(rng),
        n_rungs=int(betas.size),
        beta_max=float(betas[-1]),
        **{f"time_{key}_s": round(v, 3) for key, v in timing.items()},
    )
    return ds


def _check_prior_covers(energy, y, bounds, label) -> None:
    """Refuse priors under which even the best K = 0 fit misses the data.

    A bounded least-squares fit of step + white line within the prior's
    support must explain at least half of the spectrum's variance; real
    absorption spectra are dominated by these two terms.
    """
    prior = SpectralPrior(bounds, 0)
    lo, hi = prior.lower_upper()
    span = energy[-1] - energy[0]
    guess = np.array(
        [
            y[0],
            float(y[-1] - y[0]),
            float(energy[np.argmax(np.gradient(y, energy))]),
            np.log(span / 20),
            float(np.ptp(y)) * span / 20,
            float(energy[np.argmax(y)]),
            np.log(span / 20),
            0.5,
        ]
    )
    # Start strictly inside the prior's box (the normal priors are unbounded).
    box = np.isfinite(lo) & np.isfinite(hi)
    eps = 1e-6 * np.where(box, hi - lo, 0.0)
    guess[box] = np.clip(guess[box], (lo + eps)[box], (hi - eps)[box])

    def resid(theta):
        return y - _curve(energy, to_natural(theta[None, :], 0), 0)[0]

    fit = least_squares(resid, guess, bounds=(lo, hi), method="trf")
    explained = 1.0 - 2.0 * fit.cost / float(np.sum((y - y.mean()) ** 2))
    if explained < 0.5:
        raise ValueError(
            f"The prior excludes the data of {label}: within the prior ranges "
            f"the best edge step + white line explains only {explained:.0%} of "
            "its variance. Widen the priors you set (prior=...), or check that "
            "this is an absorption spectrum with a rising edge, normalised "
            "(e.g. xasviz.normalize)."
        )


def _run_tasks(tasks, n_jobs, progress, sweeps_per_task) -> dict:
    total = len(tasks) * sweeps_per_task
    results = {}
    with progress_bar(total=total, progress=progress, desc="tempering") as bar:
        if n_jobs == 1:
            for task in tasks:
                done = [0]

                def tick(n, done=done):
                    bar.update(n - done[0])
                    done[0] = n

                res = _run_one(dict(task, callback=tick))
                # Continuations are not ticked; a pilot longer than a tiny
                # n_burn can tick past the plan.
                bar.update(max(sweeps_per_task - done[0], 0))
                results[(task["spectrum"], task["k"])] = res
                logger.info("K=%d done in %.1f s", task["k"], res["timings"]["total"])
        else:
            # Largest K first: they take longest, so the pool stays busy.
            order = sorted(tasks, key=lambda t: -t["k"])
            with ProcessPoolExecutor(max_workers=n_jobs) as pool:
                futures = {pool.submit(_run_one, t): t for t in order}
                for fut in as_completed(futures):
                    task = futures[fut]
                    res = fut.result()
                    results[(task["spectrum"], task["k"])] = res
                    bar.update(sweeps_per_task)
                    logger.info(
                        "K=%d done in %.1f s", task["k"], res["timings"]["total"]
                    )
    return results


def _summarise(energy, y, bounds, res, betas, grid, n_samples, seed, se_target) -> dict:
    """Choose (K, b) for one spectrum and describe the posterior there."""
    n = y.size
    ks = [r["k"] for r in res]
    f_rung = np.array([_free_energy(r["log_z"], betas[1:], n) for r in res])
    f_rung_se = np.array([r["log_z_se"] for r in res])
    f_grid = np.array([_free_energy(r["log_z_grid"], grid, n) for r in res])
    f_grid_se = np.array([r["log_z_grid_se"] for r in res])
    best_j = np.argmin(f_grid, axis=1)
    f_min = f_grid[np.arange(len(ks)), best_j]
    f_min_se = f_grid_se[np.arange(len(ks)), best_j]
    drift = np.array([r["drift"] for r in res])
    drift_se = np.array([r["drift_se"] for r in res])
    i_k = int(np.argmin(f_min))
    k = ks[i_k]
    j = int(best_j[i_k])
    b = float(grid[j])
    if j == grid.size - 1:
        warn(
            f"The free energy of K={k} still falls at the top of the ladder "
            f"(beta={grid[-1]:.3g}, sigma={grid[-1] ** -0.5:.3g}): the noise is "
            "below the ladder's range and b is a lower bound. Pass a ladder "
            "reaching higher inverse temperatures (ladder=[...]).",
            ConvergenceWarning,
        )
    if se_target is not None:
        # Only K whose free energy could compete with the chosen one matter
        # for the choice; far-off K keep their larger errors without a word.
        close = f_min - f_min[i_k] < 3.0 + 3.0 * np.hypot(f_min_se, f_min_se[i_k])
        loose = [ks[i] for i in np.flatnonzero(close & (f_min_se > se_target))]
        if loose:
            warn(
                f"The free energy of K={loose} (within a few nats of the minimum) "
                f"has a standard error above se_target={se_target} nats after "
                f"the largest number of sweeps allowed (max_sweeps): the choice "
                "of K may not be settled. Raise max_sweeps or n_sweeps.",
                ConvergenceWarning,
            )
        drifting = _drifting(drift, drift_se, se_target)
        moving = [ks[i] for i in np.flatnonzero(close & drifting)]
        if moving:
            warn(
                f"The free energy of K={moving} (within a few nats of the minimum) "
                "still drifted between the first and second half of the kept "
                f"sweeps (by {np.round(drift[close & drifting], 2).tolist()} nats) "
                "when max_sweeps was reached: its value, and its standard error, "
                "are not yet settled. Raise max_sweeps and n_burn.",
                ConvergenceWarning,
            )
    r = res[i_k]
    low_swap = r["swap_acceptance"] < 0.02
    if low_swap.any():
        warn(
            f"Neighbouring rungs of the K={k} run hardly exchange (acceptance "
            f"{r['swap_acceptance'].min():.3f} at beta="
            f"{r['betas'][1 + int(np.argmin(r['swap_acceptance']))]:.3g}); the free "
            "energy may be biased. Use a finer ladder (ladder=more rungs).",
            ConvergenceWarning,
        )
    prior = SpectralPrior(bounds, k)
    rung = 1 + int(np.argmin(np.abs(np.log(r["betas"][1:]) - np.log(b))))
    # The tempered walkers are unordered; relabel them into the ordered prior's
    # support, where the posterior run and the reported intervals live.
    start = sort_gaussians(r["coords"][rung], k)
    # One rung is cheap next to the tempered runs; a long chain makes the
    # 2.5 % and 97.5 % quantiles stable (emcee's autocorrelation in 20-30
    # dimensions is of the order of a hundred steps).
    n_steps = max(n_samples // start.shape[0], 2000)
    chain, logp, full_chain, acc = _posterior(
        energy, y, prior, k, b, start, n_samples, n_steps, seed
    )
    theta_map = map_fit(energy, y, prior, b, full_chain[int(np.argmax(logp))])
    nat_map = to_natural(theta_map, k)
    nat_chain = to_natural(chain, k)
    names = param_names(k)
    order = [names.index(p) for p in output_names(k)]
    step, wl, gauss = _parts(energy, nat_map[None, :], k)
    comps = [step[0], wl[0]] + [gauss[0, i] for i in range(k)]
    fit = np.sum(comps, axis=0)
    return dict(
        ks=ks,
        betas=betas[1:],
        f_rung=f_rung,
        f_rung_se=f_rung_se,
        f_min=f_min,
        f_min_se=f_min_se,
        b_min=grid[best_j],
        k=k,
        b=b,
        params=output_names(k),
        map=nat_map[order],
        median=np.median(nat_chain, axis=0)[order],
        interval=np.percentile(nat_chain, [2.5, 97.5], axis=0).T[order],
        chain=nat_chain[:, order],
        components=np.array(comps),
        fit=fit,
        residual=y - fit,
        data=y,
        ladder=np.array([x["betas"][1:] for x in res]),
        move_acceptance=np.array([x["move_acceptance"][1:] for x in res]),
        swap_acceptance=np.array([x["swap_acceptance"] for x in res]),
        n_sweeps_total=np.array([x["n_sweeps_total"] for x in res]),
        drift=drift,
        drift_se=drift_se,
        posterior_acceptance=acc,
    )


def _assemble(out: list[dict], da: xr.DataArray, single: bool) -> xr.Dataset:
    energy = da["energy"].values
    k_top = max(o["k"] for o in out)
    params = output_names(k_top)
    peaks = ["step", "white_line"] + [f"gauss_{i}" for i in range(1, k_top + 1)]
    dsets = []
    for o in out:
        idx = [params.index(p) for p in o["params"]]
        n_par = len(params)

        def pad(a, axis, idx=idx, n_par=n_par):
            shape = list(a.shape)
            shape[axis] = n_par
            full = np.full(shape, np.nan)
            sl = [slice(None)] * a.ndim
            sl[axis] = idx
            full[tuple(sl)] = a
            return full

        comps = np.full((len(peaks), energy.size), np.nan)
        comps[: o["components"].shape[0]] = o["components"]
        ds = xr.Dataset(
            {
                "free_energy": (("K", "beta"), o["f_rung"]),
                "free_energy_se": (("K", "beta"), o["f_rung_se"]),
                "free_energy_min": ("K", o["f_min"]),
                "free_energy_min_se": ("K", o["f_min_se"]),
                "b_min": ("K", o["b_min"]),
                "k": ((), o["k"]),
                "b": ((), o["b"]),
                "sigma": ((), o["b"] ** -0.5),
                "map": ("param", pad(o["map"], 0)),
                "median": ("param", pad(o["median"], 0)),
                "interval": (("param", "bound"), pad(o["interval"], 0)),
                "chain": (("sample", "param"), pad(o["chain"], 1)),
                "components": (("peak", "energy"), comps),
                "fit": ("energy", o["fit"]),
                "residual": ("energy", o["residual"]),
                "data": ("energy", o["data"]),
                "rmsd": ((), float(np.sqrt(np.mean(o["residual"] ** 2)))),
                "ladder": (("K", "rung"), o["ladder"]),
                "move_acceptance": (("K", "rung"), o["move_acceptance"]),
                "swap_acceptance": (("K", "rung"), o["swap_acceptance"]),
                "n_sweeps_total": ("K", o["n_sweeps_total"]),
                "free_energy_drift": ("K", o["drift"]),
                "free_energy_drift_se": ("K", o["drift_se"]),
                "posterior_acceptance": ((), o["posterior_acceptance"]),
            },
            coords={
                "K": o["ks"],
                "param": params,
                "bound": ["low", "high"],
                "peak": peaks,
                "energy": energy,
                "beta": o["betas"],
            },
        )
        dsets.append(ds)
    if single:
        ds = dsets[0]
    else:
        ds = xr.concat(dsets, dim="component", join="exact")
        ds = ds.assign_coords(component=da["component"].values)
    return ds
