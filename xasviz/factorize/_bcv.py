"""Kernels of bi-cross-validation (paper section 2.3; Owen & Perry 2009).

The matrix is split as ``X = [[X_A, X_B], [X_C, X_D]]`` (eq. 11): ``A`` is the
held-out rows x held-out columns, ``D`` the kept rows x kept columns. ``X_D`` is
factorized, ``X_D ~ W_D H_D^T``, and the fold's error is
``||X_A - X_B pinv(W_D H_D^T) X_C||_F^2``.
"""

from __future__ import annotations

import numpy as np

from ._onmf import fit_onmf, init_kmeans, row_norms2

__all__ = ["fold_indices", "holdout_error", "holdout_error_onmf", "fold_error"]


def fold_indices(
    m: int, n: int, folds: int, scheme: str, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Held-out (rows, columns) of every fold.

    ``"paper"``: fold ``f`` holds out rows ``f::folds`` and columns
    ``f::folds`` (section 2.3), ``folds`` folds in all. ``"blocks"``: rows and
    columns are each shuffled and cut into ``folds`` groups; every pair (row
    group, column group) is one fold, ``folds**2`` folds (Owen & Perry's
    k x k hold-outs).
    """
    if scheme == "paper":
        return [(np.arange(f, m, folds), np.arange(f, n, folds)) for f in range(folds)]
    rows = np.array_split(rng.permutation(m), folds)
    cols = np.array_split(rng.permutation(n), folds)
    return [(np.sort(r), np.sort(c)) for r in rows for c in cols]


def holdout_error(XA, XB, XC, Wt, Ht) -> float:
    """``||X_A - X_B pinv(W H^T) X_C||^2`` without forming ``W H^T``.

    With thin QR factors ``W = Q_w R_w`` and ``H = Q_h R_h``,
    ``W H^T = Q_w (R_w R_h^T) Q_h^T`` and so
    ``pinv(W H^T) = Q_h pinv(R_w R_h^T) Q_w^T``: only an r x r matrix is
    inverted, and a rank-deficient fit (a zero or repeated column) is handled
    by the pseudo-inverse's cut-off instead of blowing up.

    Parameters
    ----------
    XA : ndarray, shape (p, q)
    XB : ndarray, shape (p, n_D)
    XC : ndarray, shape (m_D, q)
    Wt : ndarray, shape (r, m_D)
    Ht : ndarray, shape (r, n_D)
    """
    Qw, Rw = np.linalg.qr(np.asarray(Wt, dtype=np.float64).T)
    Qh, Rh = np.linalg.qr(np.asarray(Ht, dtype=np.float64).T)
    M = Rw @ Rh.T
    eps = np.finfo(np.asarray(XC).dtype).eps
    Mp = np.linalg.pinv(M, rcond=max(M.shape) * eps)
    left = np.asarray(XB, dtype=np.float64) @ Qh  # (p, r)
    right = (Qw.T.astype(XC.dtype) @ XC).astype(np.float64)  # (r, q)
    resid = np.asarray(XA, dtype=np.float64) - left @ Mp @ right
    return float(np.sum(resid**2))


def holdout_error_onmf(XA, XB, XC, Wt, Ht) -> float:
    """Hold-out error with the held-out factors fitted under ONMF's constraints.

    Owen & Perry (2009, section on NMF) predict ``X_A`` from factors of the
    held-out rows and columns fitted under the model's own constraints, instead
    of the unconstrained ``X_B pinv(X_D) X_C``. For the one-sided ONMF:

    - the spectra of the held-out energies are the least-squares
      ``H_A = pinv(W_D) X_C`` (H is signed, so unconstrained);
    - every held-out pixel gets the non-negative weight on the *one* component
      that explains its kept energies best (``W`` non-negative with orthogonal
      columns means disjoint supports: one component per pixel).

    The unconstrained predictor regresses every held-out pixel on all ``r``
    spectra, so each extra rank costs noise on every pixel; the constrained one
    classifies the pixel, as the model does, and keeps that cost small.

    Parameters
    ----------
    XA, XB, XC, Wt, Ht
        As in :func:`holdout_error`.
    """
    Wt = np.asarray(Wt, dtype=np.float64)
    Ht = np.asarray(Ht, dtype=np.float64)
    XB = np.asarray(XB, dtype=np.float64)
    XC = np.asarray(XC, dtype=np.float64)
    HA = np.linalg.lstsq(Wt @ Wt.T, Wt @ XC, rcond=None)[0]  # (r, q)
    proj = XB @ Ht.T  # (p, r)
    hn2 = (Ht**2).sum(axis=1)
    # A dead spectrum (all zero) cannot explain anything: its gain is zero.
    coef = np.where(hn2 > 0, np.maximum(proj, 0) / np.where(hn2 > 0, hn2, 1), 0)
    best = np.argmax(coef * coef * hn2, axis=1)  # largest drop of the residual
    pred = coef[np.arange(best.size), best][:, None] * HA[best]
    return float(np.sum((np.asarray(XA, dtype=np.float64) - pred) ** 2))


def fold_error(
    X,
    rows_out: np.ndarray,
    cols_out: np.ndarray,
    rank: int,
    *,
    start: tuple[np.ndarray, np.ndarray] | None,
    rng: np.random.Generator,
    max_iter: int,
    tol: float,
) -> tuple[dict[str, float], bool]:
    """Factorize ``X_D`` at ``rank`` and return the fold's hold-out error.

    Parameters
    ----------
    X : ndarray, shape (m, n)
    rows_out, cols_out : ndarray of int
        Held-out rows and columns (blocks A, B, C).
    start : (Wt, Ht) or None
        A factorization of the whole ``X`` at this rank, restricted here to the
        kept rows and columns as the start (warm start); None starts from
        k-means on ``X_D``.

    Returns
    -------
    errors : dict
        ``"pinv"``: :func:`holdout_error` (the paper's predictor);
        ``"onmf"``: :func:`holdout_error_onmf`.
    converged : bool
    """
    m, n = X.shape
    rows_in = np.setdiff1d(np.arange(m), rows_out, assume_unique=True)
    cols_in = np.setdiff1d(np.arange(n), cols_out, assume_unique=True)
    XD = np.ascontiguousarray(X[np.ix_(rows_in, cols_in)])
    if start is None:
        Wt, Ht = init_kmeans(XD, rank, rng)
    else:
        Wt = np.ascontiguousarray(start[0][:, rows_in])
        Ht = start[1][:, cols_in]
    fit = fit_onmf(XD, Wt, Ht, max_iter=max_iter, tol=tol, rownorm2=row_norms2(XD))
    blocks = (
        X[np.ix_(rows_out, cols_out)],
        X[np.ix_(rows_out, cols_in)],
        X[np.ix_(rows_in, cols_out)],
        fit.Wt,
        fit.Ht,
    )
    # Both predictors cost little next to the fit, so both are returned.
    errors = {"pinv": holdout_error(*blocks), "onmf": holdout_error_onmf(*blocks)}
    return errors, fit.converged
