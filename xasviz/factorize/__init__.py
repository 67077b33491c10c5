"""Domains and their spectra: one-sided orthogonal NMF and bi-cross-validation.

:func:`onmf` factorizes difference spectra ``X = X0 - 1 b`` (eq. 1) as
``X ~ W H^T`` with ``W >= 0`` and near-orthogonal columns (the domain maps) and
``H`` signed (the domains' difference spectra), by the HALS algorithm of the
paper (eqs. 2-10, Algorithm 1, with the corrections listed in
:func:`onmf`'s Notes). :func:`bcv` chooses the number of domains by
bi-cross-validation (section 2.3).

The math lives in :mod:`._onmf` and :mod:`._bcv` on plain arrays; this module
validates, unwraps the stack to a pixels x energies matrix, calls the kernels
and wraps the results in labelled Datasets (see docs/results.md).

Reference: H. Tanimoto et al., J. Phys. Commun. 5, 115005 (2021),
doi:10.1088/2399-6528/ac3461; A. B. Owen and P. O. Perry, Ann. Appl. Stat. 3,
564 (2009), doi:10.1214/08-AOAS227.
"""

from __future__ import annotations

import dataclasses
import logging
import numbers

import numpy as np
import xarray as xr

from .._errors import ConvergenceWarning, StackValidationError
from .._utils import as_rng, child_seeds, progress_bar, provenance, seed_of, warn
from .._validation import valid_pixels, validate_stack
from ._bcv import fold_error, fold_indices
from ._onmf import (
    component_order,
    fit_exact,
    fit_onmf,
    init_kmeans,
    init_random,
    row_norms2,
)

__all__ = ["onmf", "bcv"]

logger = logging.getLogger(__name__)

_INITS = {"kmeans": init_kmeans, "random": init_random}
_SCHEMES = ("paper", "blocks")
_RULES = ("min", "one_se", "paired_se")
_ORTHOGONAL = ("exact", "approximate")
_PREDICTORS = ("pinv", "onmf")


# ------------------------------------------------------------------ helpers


def _check_int(value, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {value!r}.")
    if value < low:
        raise ValueError(f"{name} must be at least {low}; got {value}.")
    return int(value)


def _check_choice(value, name: str, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}; got {value!r}.")
    return value


def _resolve_dtype(dtype, diff: xr.DataArray) -> np.dtype:
    if dtype is None:
        return np.dtype(diff.dtype)
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise ValueError(f"dtype must be float32 or float64; got {dtype!r}.") from err
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64; got {dt}.")
    return dt


def _matrix(diff: xr.DataArray, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Valid pixels of a validated stack as a C-ordered (m, n) matrix.

    Returns the matrix and the (y, x) boolean map of the pixels it holds. The
    input is never modified: without masked pixels and in its own dtype the
    matrix is a read-only view, otherwise a copy of the valid rows.
    """
    ok = valid_pixels(diff)
    if not ok.any():
        raise StackValidationError(
            "diff has no valid pixel: every pixel is masked or holds NaN/inf. "
            "Check the mask and the preprocessing that produced it."
        )
    values = np.asarray(diff.values)
    ny, nx, ne = values.shape
    if ok.all() and values.dtype == dtype and values.flags.c_contiguous:
        X = values.reshape(ny * nx, ne).view()
        X.flags.writeable = False
    else:
        X = np.ascontiguousarray(values[ok], dtype=dtype)
    return X, ok


def _check_rank(rank, m: int, n: int, what: str = "rank") -> int:
    rank = _check_int(rank, what)
    if rank > min(m, n):
        raise ValueError(
            f"{what} must be at most min(valid pixels, energies) = {min(m, n)} "
            f"({m} valid pixels, {n} energies); got {rank}. Choose a smaller rank."
        )
    return rank


def _unflatten(rows: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """(r, m_valid) -> (r, y, x) with NaN on pixels left out of the fit."""
    out = np.full((rows.shape[0], *ok.shape), np.nan, dtype=np.float64)
    out[:, ok] = rows
    return out


def _collinearity(Ht: np.ndarray) -> float:
    """Largest |cosine| between two spectra (columns of H); 0 for one column."""
    if Ht.shape[0] < 2:
        return 0.0
    norms = np.linalg.norm(Ht, axis=1)
    norms[norms == 0] = 1.0
    cos = (Ht / norms[:, None]) @ (Ht / norms[:, None]).T
    np.fill_diagonal(cos, 0.0)
    return float(np.abs(cos).max())


def _absorption(stack, diff: xr.DataArray, ok: np.ndarray, Wt: np.ndarray):
    """Weighted-mean absorption spectra ``(w_k^T X0) / (w_k^T 1)``."""
    x0 = validate_stack(stack, name="stack", nonfinite="ignore")
    if x0.shape != diff.shape:
        raise StackValidationError(
            f"stack must have the shape of diff {diff.shape} (y, x, energy); got "
            f"{x0.shape}. Pass the normalised stack the differences came from."
        )
    if not np.allclose(x0["energy"].values, diff["energy"].values):
        raise StackValidationError(
            "stack and diff have different energy coordinates; pass the "
            "normalised stack the differences came from."
        )
    X0 = np.asarray(x0.values)[ok]
    if not np.isfinite(X0).all():
        raise StackValidationError(
            "stack holds NaN or inf on pixels that are valid in diff; mask them "
            "in diff as well (NaN at every energy) or repair the stack."
        )
    W = Wt.astype(np.float64)
    total = W.sum(axis=1)
    total[total == 0] = np.nan
    return (W @ X0.astype(np.float64)) / total[:, None]


# -------------------------------------------------------------------- onmf


def _fit_restarts(X, rank, *, n_init, init, screen, max_iter, tol, rng, progress):
    """Screen ``n_init`` starts for ``screen`` iterations, refine the best.

    Returns the kept fit and the objective of every start after screening.
    """
    rownorm2 = row_norms2(X)
    screened = []
    seeds = child_seeds(rng, n_init)
    bar = progress_bar(total=n_init + 1, progress=progress, desc=f"onmf rank {rank}")
    with bar:
        for seed in seeds:
            Wt, Ht = _INITS[init](X, rank, np.random.default_rng(seed))
            fit = fit_onmf(
                X, Wt, Ht, max_iter=min(screen, max_iter), tol=tol, rownorm2=rownorm2
            )
            screened.append(fit)
            bar.update(1)
        restart_objective = np.array([f.final for f in screened])
        best = screened[int(np.argmin(restart_objective))]
        if not best.converged and best.n_iter < max_iter:
            more = fit_onmf(
                X,
                best.Wt,
                best.Ht,
                max_iter=max_iter - best.n_iter,
                tol=tol,
                rownorm2=rownorm2,
            )
            best = type(best)(
                Wt=more.Wt,
                Ht=more.Ht,
                objective=np.concatenate([best.objective, more.objective]),
                converged=more.converged,
                n_reseeded=best.n_reseeded + more.n_reseeded,
                xnorm2=more.xnorm2,
            )
        bar.update(1)
    logger.info(
        "onmf rank %d: start objectives %s; kept %.6g after %d iterations",
        rank,
        np.array2string(restart_objective, precision=6),
        best.final,
        best.n_iter,
    )
    return best, restart_objective


def onmf(
    diff: xr.DataArray,
    rank: int,
    *,
    stack: xr.DataArray | None = None,
    n_init: int = 4,
    init: str = "kmeans",
    screen: int = 3,
    max_iter: int = 500,
    tol: float = 1e-4,
    dtype="float32",
    orthogonal: str = "approximate",
    rng=None,
    progress: bool | str = False,
) -> xr.Dataset:
    """One-sided orthogonal NMF of difference spectra (eqs. 2-10, Algorithm 1).

    Factorizes ``X ~ W H^T`` (eq. 2) by minimising ``||X - W H^T||_F^2``
    (eq. 4) with ``W >= 0``, near-orthogonal unit-norm columns (eq. 7) and
    ``H`` signed, by hierarchical alternating least squares (eqs. 9-10).

    Parameters
    ----------
    diff : xarray.DataArray, dims (y, x, energy)
        Difference spectra ``X = X0 - 1 b`` (eq. 1), e.g. from
        :func:`xasviz.subtract_reference`. Masked pixels (NaN, or True in the
        ``mask`` coordinate) are left out of the fit.
    rank : int
        Number of components ``r``, ``1 <= r <= min(valid pixels, energies)``.
    stack : xarray.DataArray, dims (y, x, energy), optional
        The normalised absorption stack ``X0`` the differences came from; when
        given, the result holds each domain's absorption spectrum.
    n_init : int, default 4
        Independent starts (each k-means start draws its own subsample). Every
        start is iterated ``screen`` times; the one with the lowest objective
        is iterated on to convergence and kept.
    init : {"kmeans", "random"}, default "kmeans"
        ``"kmeans"``: k-means (5 starts) on a random subsample of 4000 pixels,
        every pixel assigned to its nearest centre, W the unit-norm cluster
        maps and H = X^T W. ``"random"``: uniform random W.
    screen : int, default 3
        Iterations every start gets before the best one is chosen.
    max_iter : int, default 500
        Iterations of the kept run, screening included.
    tol : float, default 1e-4
        Stop when the objective changes by less than ``tol`` of its value.
    dtype : {"float32", "float64", None}, default "float32"
        Precision of the fit; None keeps the dtype of ``diff``. float32 halves
        memory and time and is ample for noisy stacks (the objective is then
        accurate to about 1e-6 of ``||X||^2``); use float64 to resolve a
        near-exact factorization.
    orthogonal : {"approximate", "exact"}, default "approximate"
        ``"approximate"``: the maps as Algorithm 1 leaves them (the paper's
        estimator); its Lagrange step (eq. 9) holds ``W^T W = I`` only
        approximately, so pixels keep small weights on several components.
        ``"exact"``: Algorithm 1's fit is then refined under the exact
        constraint of eq. 3, which for ``W >= 0`` puts every pixel in one
        component (see :func:`xasviz.factorize._onmf.fit_exact`). Measured
        on planted stacks it removes the bleed between near-parallel domains
        in some cases and splits a domain that Algorithm 1 spread over two
        overlapping columns in others (tables in docs/factorization.md).
    rng : None, int or numpy.random.Generator
        Seeds the subsamples and k-means of every start.
    progress : bool or "notebook"
        Show a progress bar over the starts.

    Returns
    -------
    xarray.Dataset
        ``domains`` (component, y, x): columns of W, >= 0, unit norm over the
        valid pixels, NaN on masked pixels; ``spectra`` (component, energy):
        columns of H (``h_k = X^T w_k``, so a domain of ``p`` pixels that all
        differ from the reference by ``d`` has ``h_k ~ sqrt(p) d``);
        ``absorption`` (component, energy) when ``stack`` is given;
        ``objective`` (iteration; Algorithm 1 on the kept start, screening
        included); ``objective_exact`` (iteration_exact; eq. 4 after each
        step of the exact refinement, only with ``orthogonal="exact"``);
        ``n_iter``; ``relative_error`` ``||X - W H^T|| / ||X||`` of the
        returned factors;
        ``orthogonality`` (largest off-diagonal of ``W^T W``);
        ``collinearity`` (largest |cosine| between two spectra);
        ``restart_objective`` (restart; each start after screening). Attrs:
        every setting, ``seed``, ``converged`` (0/1), ``n_reseeded``,
        ``component_order``.

    Raises
    ------
    StackValidationError
        When ``diff`` is not a stack, or has no valid pixel.
    ValueError, TypeError
        For a rank, ``n_init``, ``init``, ``max_iter``, ``tol`` or ``dtype``
        out of range.

    Warns
    -----
    ConvergenceWarning
        When the kept start hit ``max_iter`` before meeting ``tol``.
    DataQualityWarning
        When pixels of ``diff`` held NaN or inf and were masked.

    Notes
    -----
    Corrections to Algorithm 1 as printed: line 10 normalises to unit norm,
    ``w_k / ||w_k||`` (as in Kimura et al.), and the H update (lines 13-16)
    uses ``C = X^T W`` (energies x r). The amplitude that the normalisation
    removes from ``w_k`` is moved onto ``h_k`` (the product ``w_k h_k^T`` is
    the least-squares one along the new direction), so W's scale never
    leaks into the objective. A column that rectification leaves all zero
    is re-seeded on the pixel the fit explains worst, never left NaN.

    The objective after each iteration comes from products already at hand,
    ``||X||^2 - 2 tr(H^T C) + tr(W^T W H^T H)``; the H step never raises it,
    the orthogonality projection in the W step (eq. 9) can, by a small amount
    in early iterations (see docs/factorization.md).

    Components are ordered by decreasing total weight ``||w_k||_1``: for unit
    columns this grows with the number of pixels a domain spreads over, so the
    largest domain comes first whatever start won.

    The decomposition is magnitude-invariant (paper section 4.2): pixels whose
    difference spectra are parallel but differ in size fall in one component.
    Small edge shifts all produce near-derivative difference spectra, so such
    domains merge or bleed into each other; ``collinearity`` near 1 flags it.
    k-means (:func:`xasviz.kmeans`) separates them by distance instead.

    Only the two products ``X H`` and ``X^T W`` (and one pass for row norms)
    touch the data; memory is the pixel matrix (a view when nothing is
    masked and the dtype is kept) plus a few pixel-length vectors per
    component.

    Examples
    --------
    >>> from xasviz.synthetic import make_stack
    >>> s = make_stack(size=40, n_energy=50, n_domains=3, snr_db=30, rng=0)
    >>> res = onmf(s.stack - s.reference, 3, rng=0)
    >>> res["domains"].dims
    ('component', 'y', 'x')
    """
    seed = seed_of(rng)
    rng = as_rng(rng)
    diff = validate_stack(diff, name="diff")
    n_init = _check_int(n_init, "n_init")
    screen = _check_int(screen, "screen")
    max_iter = _check_int(max_iter, "max_iter")
    init = _check_choice(init, "init", _INITS)
    tol = _check_tol(tol)
    orthogonal = _check_choice(orthogonal, "orthogonal", _ORTHOGONAL)
    dt = _resolve_dtype(dtype, diff)
    X, ok = _matrix(diff, dt)
    m, n = X.shape
    rank = _check_rank(rank, m, n)

    best, restart_objective = _fit_restarts(
        X,
        rank,
        n_init=n_init,
        init=init,
        screen=screen,
        max_iter=max_iter,
        tol=tol,
        rng=rng,
        progress=progress,
    )
    if not best.converged:
        warn(
            f"onmf stopped at max_iter={max_iter} before the objective settled "
            f"to tol={tol:g}; raise max_iter or tol.",
            ConvergenceWarning,
        )
    final = best.final
    exact_history = None
    if orthogonal == "exact":
        Wt_e, Ht_e, exact_history, exact_ok = fit_exact(X, best.Wt, best.Ht)
        if not exact_ok:
            warn(
                "The exact-orthogonality refinement still moved pixels between "
                f"components after {exact_history.size} iterations; the maps "
                "are its last iterate. orthogonal='approximate' skips it.",
                ConvergenceWarning,
            )
        best = dataclasses.replace(best, Wt=Wt_e, Ht=Ht_e)
        final = float(exact_history[-1])
    order = component_order(best.Wt)
    Wt = best.Wt[order].astype(np.float64)
    # Unit norm to float64 precision (a float32 fit leaves ~1e-7 of slack).
    Wt /= np.linalg.norm(Wt, axis=1, keepdims=True)
    Ht = best.Ht[order]
    D = Wt @ Wt.T
    settings = dict(
        rank=rank,
        n_init=n_init,
        init=init,
        screen=screen,
        max_iter=max_iter,
        tol=tol,
        dtype=str(dt),
        orthogonal=orthogonal,
        stack_given=stack is not None,
    )
    data = {
        "domains": (("component", "y", "x"), _unflatten(Wt, ok)),
        "spectra": (("component", "energy"), Ht),
        "objective": ("iteration", best.objective),
        "n_iter": best.n_iter,
        "relative_error": float(np.sqrt(max(final, 0.0) / best.xnorm2))
        if best.xnorm2 > 0
        else 0.0,
        "orthogonality": float(np.abs(D - np.diag(np.diag(D))).max()),
        "collinearity": _collinearity(Ht),
        "restart_objective": ("restart", restart_objective),
    }
    if exact_history is not None:
        data["objective_exact"] = ("iteration_exact", exact_history)
    if stack is not None:
        data["absorption"] = (("component", "energy"), _absorption(stack, diff, ok, Wt))
    coords = {
        "component": np.arange(1, rank + 1),
        "y": diff["y"].values,
        "x": diff["x"].values,
        "energy": diff["energy"].values,
        "iteration": np.arange(1, best.n_iter + 1),
        "restart": np.arange(n_init),
    }
    if exact_history is not None:
        coords["iteration_exact"] = np.arange(1, exact_history.size + 1)
    if not ok.all():
        coords["mask"] = (("y", "x"), ~ok)
    attrs = provenance(
        "onmf",
        settings,
        seed=seed,
        converged=best.converged,
        n_reseeded=best.n_reseeded,
        component_order="decreasing total weight ||w_k||_1",
        **settings,
    )
    res = xr.Dataset(data, coords=coords, attrs=attrs)
    res["domains"].attrs["long_name"] = "domain map (column of W)"
    res["spectra"].attrs["long_name"] = "difference spectrum (column of H)"
    if "absorption" in res:
        res["absorption"].attrs["long_name"] = "domain absorption spectrum"
    return res


def _check_tol(tol) -> float:
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not tol >= 0:
        raise ValueError(f"tol must be a number >= 0; got {tol!r}.")
    return float(tol)


# --------------------------------------------------------------------- bcv


def _parse_ranks(ranks) -> np.ndarray:
    if isinstance(ranks, numbers.Integral) and not isinstance(ranks, bool):
        ranks = [ranks]
    try:
        arr = np.asarray(list(ranks))
    except TypeError as err:
        raise TypeError(
            f"ranks must be a sequence of ints, e.g. range(4, 10); got {ranks!r}."
        ) from err
    if arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            f"ranks must be a non-empty sequence of ints, e.g. range(4, 10); "
            f"got {ranks!r}."
        )
    if np.any(arr < 1):
        raise ValueError(f"every rank must be at least 1; got {arr.tolist()}.")
    if np.unique(arr).size != arr.size:
        raise ValueError(f"ranks must not repeat; got {arr.tolist()}.")
    return np.sort(arr)


def _choose(ranks, mean, se):
    i = int(np.nanargmin(mean))
    min_rank = int(ranks[i])
    within = np.flatnonzero(mean <= mean[i] + (se[i] if np.isfinite(se[i]) else 0))
    return min_rank, int(ranks[within[0]])


def _paired_se(ranks, err):
    """The paired one-standard-error rule on fold errors ``err`` (rank, fold).

    Every rank is scored on the same folds, and most of the spread of a fold's
    error comes from which block it holds out, which all ranks share. The
    standard error of the per-fold difference to the minimising rank,
    ``d_r = err_r - err_min``, leaves that shared part out. Returns the
    smallest rank whose mean difference is at most one such standard error,
    and those standard errors (zero at the minimum itself).
    """
    mean = err.mean(axis=1)
    i = int(np.nanargmin(mean))
    d = err - err[i]
    se = d.std(axis=1, ddof=1) / np.sqrt(err.shape[1])
    within = np.flatnonzero(d.mean(axis=1) <= se)
    return int(ranks[within[0]]), se


def bcv(
    diff: xr.DataArray,
    ranks,
    *,
    folds: int | None = None,
    scheme: str = "paper",
    rule: str = "min",
    start: str = "warm",
    predictor: str = "pinv",
    max_iter: int = 200,
    tol: float = 1e-4,
    dtype=None,
    rng=None,
    progress: bool | str = False,
) -> xr.Dataset:
    """Choose the number of domains by bi-cross-validation (section 2.3).

    For every fold the matrix is split as ``[[X_A, X_B], [X_C, X_D]]``
    (eq. 11), ``X_D`` is factorized by one-sided ONMF and the fold's error is
    ``||X_A - X_B pinv(W_D H_D^T) X_C||_F^2`` (Owen & Perry 2009).

    Parameters
    ----------
    diff : xarray.DataArray, dims (y, x, energy)
        Difference spectra (eq. 1); masked pixels are left out.
    ranks : sequence of int
        Ranks to try, e.g. ``range(4, 10)``.
    folds : int, optional
        ``scheme="paper"``: number of folds, default 20 (fold ``f`` holds out
        every 20th pixel and every 20th energy from ``f``: 1/400 of the
        matrix). ``scheme="blocks"``: the ``k`` of a k x k grid of row and
        column groups, default 2, giving ``k**2`` folds that each hold out
        ``1/k`` of the pixels and ``1/k`` of the energies.
    scheme : {"paper", "blocks"}, default "paper"
        Hold-out pattern (see ``folds``). The paper's hold-out is so small that
        its error curve is dominated by noise and often flat past the true
        rank; ``"blocks"`` is Owen & Perry's coarser hold-out.
    rule : {"min", "one_se", "paired_se"}, default "min"
        ``"min"``: the rank of the smallest mean error (the paper's rule);
        ``"one_se"``: the smallest rank whose mean error is within one
        standard error of that minimum; ``"paired_se"``: the same with the
        standard error of the per-fold difference to the minimising rank,
        which leaves out the fold-to-fold spread that all ranks share (every
        rank is scored on the same folds). All three are always reported.
    start : {"warm", "fresh"}, default "warm"
        ``"warm"``: each fold starts from one ONMF of the whole matrix at that
        rank, restricted to the fold's kept rows and columns (fast; the start
        has seen the held-out block, the fit on ``X_D`` has not).
        ``"fresh"``: each fold starts from k-means on ``X_D`` alone.
    predictor : {"pinv", "onmf"}, default "pinv"
        How the held-out block is predicted from the fit of ``X_D``.
        ``"pinv"``: the paper's ``X_B pinv(W_D H_D^T) X_C``. ``"onmf"``: Owen &
        Perry's constrained variant for NMF, adapted to the one-sided ONMF: the
        held-out spectra by least squares from ``X_C``, every held-out pixel
        assigned with a non-negative weight to the one component that fits its
        kept energies best. ``"pinv"`` regresses each held-out pixel on all
        ``r`` spectra and pays noise for every extra rank, so it tends to
        choose too few domains when their spectra differ little;
        ``docs/factorization.md`` compares the two on planted stacks.
    max_iter, tol : int, float
        Per-fold ONMF settings (looser than :func:`onmf`'s: the hold-out
        error changes far less than the objective's last digits).
    dtype : {None, "float32", "float64"}
        Precision of the fits; None keeps the dtype of ``diff``.
    rng : None, int or numpy.random.Generator
        Seeds the starts and, for ``"blocks"``, the row and column groups.
    progress : bool or "notebook"
        Show a progress bar over (rank, fold).

    Returns
    -------
    xarray.Dataset
        ``error`` (rank, fold), ``mean_error`` (rank), ``std_error`` (rank),
        ``paired_std_error`` (rank: the standard error of the per-fold
        difference to the minimising rank), ``best_rank``, ``min_rank``,
        ``one_se_rank``, ``paired_se_rank`` (scalars), all for the chosen
        ``predictor``. Both predictors score the same fold fits, so
        both curves come at no extra cost: ``error_pinv``, ``error_onmf``
        (rank, fold), ``mean_error_pinv``,
        ``std_error_pinv``, ``mean_error_onmf``, ``std_error_onmf`` (rank)
        and ``best_rank_pinv``, ``best_rank_onmf`` (scalars, by ``rule``).
        Attrs: every setting, ``rule``, ``scheme``, ``seed``,
        ``n_unconverged``.

    Raises
    ------
    ValueError, TypeError
        For ranks, folds, scheme, rule or start out of range.
    StackValidationError
        When ``diff`` is not a stack or has no valid pixel.

    Warns
    -----
    ConvergenceWarning
        Once, with the count, when some fold fits hit ``max_iter``.

    Notes
    -----
    The pseudo-inverse is taken from the factors, ``pinv(W H^T) = Q_h
    pinv(R_w R_h^T) Q_w^T`` with thin QR factors of W and H: nothing of size
    pixels x pixels is ever formed, and rank-deficient fits are handled by the
    pseudo-inverse's cut-off.

    Examples
    --------
    >>> from xasviz.synthetic import make_stack
    >>> s = make_stack(size=40, n_energy=50, n_domains=3, snr_db=30, rng=0)
    >>> res = bcv(s.stack - s.reference, range(1, 6), folds=5, rng=0)
    >>> res["error"].dims
    ('rank', 'fold')
    """
    seed = seed_of(rng)
    rng = as_rng(rng)
    diff = validate_stack(diff, name="diff")
    scheme = _check_choice(scheme, "scheme", _SCHEMES)
    rule = _check_choice(rule, "rule", _RULES)
    start = _check_choice(start, "start", ("warm", "fresh"))
    predictor = _check_choice(predictor, "predictor", _PREDICTORS)
    rank_arr = _parse_ranks(ranks)
    if folds is None:
        folds = 20 if scheme == "paper" else 2
    folds = _check_int(folds, "folds", low=2)
    max_iter = _check_int(max_iter, "max_iter")
    tol = _check_tol(tol)
    dt = _resolve_dtype(dtype, diff)
    X, ok = _matrix(diff, dt)
    m, n = X.shape
    if folds > min(m, n):
        raise ValueError(
            f"folds must be at most min(valid pixels, energies) = {min(m, n)}; "
            f"got {folds}."
        )
    splits = fold_indices(m, n, folds, scheme, rng)
    # X_D is smallest in the fold that holds out the most rows/columns.
    m_d = m - max(len(r) for r, _ in splits)
    n_d = n - max(len(c) for _, c in splits)
    if rank_arr.max() > min(m_d, n_d):
        raise ValueError(
            f"the largest rank {int(rank_arr.max())} exceeds what a fold's kept "
            f"block can hold ({m_d} pixels x {n_d} energies); use smaller ranks "
            "or more folds."
        )
    errors = {p: np.empty((rank_arr.size, len(splits))) for p in _PREDICTORS}
    n_bad = 0
    bar = progress_bar(total=rank_arr.size * len(splits), progress=progress, desc="bcv")
    with bar:
        for i, rank in enumerate(rank_arr):
            warm = None
            if start == "warm":
                rs = np.random.default_rng(child_seeds(rng, 1)[0])
                Wt, Ht = init_kmeans(X, int(rank), rs)
                full = fit_onmf(X, Wt, Ht, max_iter=max_iter, tol=tol)
                warm = (full.Wt, full.Ht)
            for f, (rows_out, cols_out) in enumerate(splits):
                errs, conv = fold_error(
                    X,
                    rows_out,
                    cols_out,
                    int(rank),
                    start=warm,
                    rng=np.random.default_rng(child_seeds(rng, 1)[0]),
                    max_iter=max_iter,
                    tol=tol,
                )
                for p in _PREDICTORS:
                    errors[p][i, f] = errs[p]
                n_bad += not conv
                bar.update(1)
            logger.info(
                "bcv rank %d: mean error %.6g (%s predictor)",
                rank,
                errors[predictor][i].mean(),
                predictor,
            )
    if n_bad:
        warn(
            f"{n_bad} of {errors[predictor].size} fold fits stopped at "
            f"max_iter={max_iter} "
            f"before meeting tol={tol:g}; raise max_iter or tol.",
            ConvergenceWarning,
        )
    summary = {}
    for p, err in errors.items():
        mean = err.mean(axis=1)
        se = err.std(axis=1, ddof=1) / np.sqrt(err.shape[1])
        by_rule = dict(zip(("min", "one_se"), _choose(rank_arr, mean, se)))
        by_rule["paired_se"], se_paired = _paired_se(rank_arr, err)
        summary[p] = (mean, se, by_rule[rule], by_rule, se_paired)
    error = errors[predictor]
    mean, se, best, by_rule, se_paired = summary[predictor]
    settings = dict(
        ranks=rank_arr.tolist(),
        folds=folds,
        scheme=scheme,
        rule=rule,
        start=start,
        predictor=predictor,
        max_iter=max_iter,
        tol=tol,
        dtype=str(dt),
    )
    attrs = provenance(
        "bcv",
        settings,
        seed=seed,
        n_unconverged=n_bad,
        n_folds=len(splits),
        rule=rule,
        scheme=scheme,
        predictor=predictor,
    )
    res = xr.Dataset(
        {
            "error": (("rank", "fold"), error),
            "mean_error": ("rank", mean),
            "std_error": ("rank", se),
            "best_rank": best,
            "min_rank": by_rule["min"],
            "one_se_rank": by_rule["one_se"],
            "paired_se_rank": by_rule["paired_se"],
            "paired_std_error": ("rank", se_paired),
            **{f"error_{p}": (("rank", "fold"), errors[p]) for p in _PREDICTORS},
            **{f"mean_error_{p}": ("rank", summary[p][0]) for p in _PREDICTORS},
            **{f"std_error_{p}": ("rank", summary[p][1]) for p in _PREDICTORS},
            **{f"best_rank_{p}": summary[p][2] for p in _PREDICTORS},
        },
        coords={"rank": rank_arr, "fold": np.arange(len(splits))},
        attrs=attrs,
    )
    res["error"].attrs["long_name"] = (
        "hold-out error ||X_A - X_B pinv(X_D) X_C||^2"
        if predictor == "pinv"
        else "hold-out error ||X_A - W_A H_A^T||^2 (constrained held-out factors)"
    )
    return res
