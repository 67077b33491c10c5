"""Kernels of the one-sided orthogonal NMF (eqs. 2-10, Algorithm 1) on plain arrays.

Symbols, names and shapes (the paper's notation, ``m`` pixels, ``n`` energies,
``r`` components):

======  ==========================  =========  ================================
symbol  name here                   shape      meaning
======  ==========================  =========  ================================
X       ``X``                       (m, n)     difference spectra, one per row
W       ``Wt`` (stored transposed)  (r, m)     domain maps, >= 0, unit columns
H       ``Ht`` (stored transposed)  (r, n)     signed difference spectra
A       ``At``                      (r, m)     ``(X H)^T``
B       ``B``                       (r, r)     ``H^T H``
C       ``Ct``                      (r, n)     ``(X^T W)^T``
D       ``D``                       (r, r)     ``W^T W``
U       ``U``                       (m,)       ``W 1_r``, the sum of the columns
======  ==========================  =========  ================================

W and H are stored transposed so that each column of the paper is a contiguous
row here; every loop over components then streams through memory once.

The data enter only through the two products ``(X H)^T`` (:func:`_xh`) and
``(X^T W)^T`` (:func:`_xtw`), plus one pass for the row norms, so ``X`` may be any
array that supports ``@`` and ``.T`` (numpy, dask).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "OnmfFit",
    "fit_onmf",
    "fit_exact",
    "init_kmeans",
    "init_random",
    "row_norms2",
]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------- data access


def _xh(X, Ht: np.ndarray) -> np.ndarray:
    """``(X H)^T``, shape (r, m): one pass over the data."""
    Ht = np.ascontiguousarray(Ht, dtype=X.dtype)
    if isinstance(X, np.ndarray):
        # BLAS reads X transposed in place: no copy of the data.
        return Ht @ X.T
    return np.ascontiguousarray(np.asarray(X @ Ht.T).T)


def _xtw(X, Wt: np.ndarray) -> np.ndarray:
    """``(X^T W)^T``, shape (r, n): one pass over the data."""
    if isinstance(X, np.ndarray):
        return Wt @ X
    return np.asarray(Wt @ X)


def row_norms2(X, chunk: int = 16384) -> np.ndarray:
    """Squared norm of every row of ``X`` in float64, shape (m,).

    Accumulated in float64 in chunks, so a float32 stack gives an exact enough
    ``||X||^2`` for the objective without a float64 copy of the data.
    """
    m = X.shape[0]
    out = np.empty(m)
    for start in range(0, m, chunk):
        block = np.asarray(X[start : start + chunk], dtype=np.float64)
        out[start : start + chunk] = np.einsum("ij,ij->i", block, block)
    return out


# ------------------------------------------------------------- initialisation


def _kmeans_pp(Y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: each new centre drawn with probability ~ D(x)^2."""
    sq = np.einsum("ij,ij->i", Y, Y)
    centres = [Y[rng.integers(len(Y))]]
    d2 = np.maximum(sq - 2 * Y @ centres[0] + centres[0] @ centres[0], 0.0)
    for _ in range(1, k):
        total = d2.sum()
        i = rng.choice(len(Y), p=d2 / total) if total > 0 else rng.integers(len(Y))
        centres.append(Y[i])
        d2 = np.minimum(d2, np.maximum(sq - 2 * Y @ Y[i] + Y[i] @ Y[i], 0.0))
    return np.array(centres)


def _lloyd(Y: np.ndarray, centres: np.ndarray, max_iter: int = 30):
    """Lloyd iterations; returns (centres, labels, inertia)."""
    sq = np.einsum("ij,ij->i", Y, Y)
    labels = None
    for _ in range(max_iter):
        d2 = sq[:, None] - 2 * Y @ centres.T + np.sum(centres**2, axis=1)
        new = np.argmin(d2, axis=1)
        # A start needs no exact partition: stop when < 0.1 % of labels move.
        if labels is not None and np.count_nonzero(new != labels) <= 1e-3 * len(Y):
            break
        labels = new
        onehot = labels == np.arange(centres.shape[0])[:, None]
        counts = onehot.sum(axis=1)
        sums = onehot.astype(Y.dtype) @ Y
        # An emptied centre keeps its place; the caller's dead-column rule
        # deals with it if it stays empty.
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    inertia = float(np.maximum(d2[np.arange(len(Y)), labels], 0).sum())
    return centres, labels, inertia


def kmeans_centres(
    Y: np.ndarray, k: int, rng: np.random.Generator, n_init: int = 5
) -> np.ndarray:
    """Best of ``n_init`` k-means++ / Lloyd runs on the rows of ``Y``, (k, n)."""
    best = None
    for _ in range(n_init):
        centres, _, inertia = _lloyd(Y, _kmeans_pp(Y, k, rng))
        if best is None or inertia < best[1]:
            best = (centres, inertia)
    return best[0]


def init_kmeans(
    X, rank: int, rng: np.random.Generator, *, sample: int = 4000, n_kmeans: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """Start from k-means clusters of a random subsample of pixels.

    k-means (k-means++ seeding, Lloyd iterations, best of ``n_kmeans``) runs
    on ``sample`` randomly drawn rows only; every pixel is then assigned to its
    nearest centre through one product ``X C^T`` (the distance
    ``||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2`` needs no other pass). W starts
    as the unit-norm one-hot cluster maps and H as ``X^T W``, the exact H for
    that W when the clusters do not overlap.

    Returns
    -------
    Wt : ndarray, shape (rank, m), dtype of X
    Ht : ndarray, shape (rank, n), float64
    """
    m = X.shape[0]
    idx = np.sort(rng.choice(m, size=min(m, max(sample, 20 * rank)), replace=False))
    sub = np.asarray(X[idx], dtype=np.float64)
    centres = kmeans_centres(sub, rank, rng, n_init=n_kmeans)
    dist = -2.0 * _xh(X, centres) + np.sum(centres**2, axis=1)[:, None]
    labels = np.argmin(dist, axis=0)
    onehot = labels[None, :] == np.arange(rank)[:, None]
    counts = onehot.sum(axis=1)
    # A centre no pixel is nearest to (possible on a subsample) gets a random
    # pixel; the first sweep's dead-column rule takes it from there.
    for k in np.flatnonzero(counts == 0):
        onehot[k, rng.integers(m)] = True
        counts[k] = 1
    Wt = (onehot / np.sqrt(counts)[:, None]).astype(X.dtype)
    Ht = _xtw(X, Wt).astype(np.float64)
    return Wt, Ht


def init_random(X, rank: int, rng: np.random.Generator):
    """Start from uniform random W (unit columns) and H = X^T W."""
    m = X.shape[0]
    Wt = rng.random((rank, m))
    Wt /= np.linalg.norm(Wt, axis=1, keepdims=True)
    Wt = Wt.astype(X.dtype)
    return Wt, _xtw(X, Wt).astype(np.float64)


# ---------------------------------------------------------------------- sweeps


def _reseed_pixel(At, B, Wt, s, rownorm2, taken) -> int:
    """Pixel whose spectrum the current factors explain worst.

    Residual of row i: ``||x_i||^2 - 2 sum_j s_j w_ji a_ji + w_i^T S B S w_i``
    with ``S = diag(s)``, built from the products already at hand.
    """
    SW = Wt * s[:, None]
    res = rownorm2 - 2.0 * np.einsum("ji,ji->i", SW, At)
    res += np.einsum("ji,ji->i", SW, B @ SW)
    res[list(taken)] = -np.inf
    return int(np.argmax(res))


def _sweep_w(X, Wt, Ht, U, rownorm2, tiny):
    """One pass of Algorithm 1 lines 4-12 over the columns of W (eq. 9).

    Corrections to the printed algorithm: line 10 normalises to unit norm,
    ``w_k / ||w_k||``. The amplitude that normalisation removes is not thrown
    away: ``s_k``, the least-squares scale of the new ``w_k`` against
    ``X^(k) h_k`` (eq. 5 with ``h_k`` fixed), is handed to ``h_k``. Later
    columns of the same sweep see ``s_k h_k`` (so each column update is the
    best move along its new direction), and the caller scales H by ``s``
    before updating it.

    Returns
    -------
    s : ndarray, shape (r,)
        Amplitudes to multiply the rows of ``Ht`` by.
    reseeded : list of int
        Components whose column was rectified to zero and re-seeded.
    """
    r = Wt.shape[0]
    At = _xh(X, Ht)
    B = Ht @ Ht.T
    s = np.ones(r)
    reseeded: list[int] = []
    for k in range(r):
        coef = (s * B[:, k]).astype(Wt.dtype)
        coef[k] = 0.0
        # u = X^(k) h_k (eq. 6 times h_k), Algorithm 1 line 8.
        u = At[k] - coef @ Wt
        # Lagrange term of eq. 9: remove the part of u along W^(k).
        others = U - Wt[k]
        nn = float(others @ others)
        c = float(others @ u) / nn if nn > tiny else 0.0
        if c != 0.0:
            u -= np.asarray(c, dtype=u.dtype) * others
        np.maximum(u, 0.0, out=u)
        norm = float(np.sqrt(u @ u))
        if norm > tiny and B[k, k] > tiny:
            u /= np.asarray(norm, dtype=u.dtype)
            # d^T X^(k) h_k = d^T (u_projected + c W^(k)), with d = u / norm.
            s[k] = (norm + c * float(u @ others)) / B[k, k]
        else:
            # Dead column: restart it on the worst-explained pixel.
            i = _reseed_pixel(At, B, Wt, s, rownorm2, reseeded_pixels(Wt))
            u[:] = 0.0
            u[i] = 1.0
            s[k] = 0.0
            reseeded.append(k)
        Wt[k] = u
        np.add(others, u, out=U)
    return s, reseeded


def reseeded_pixels(Wt) -> set:
    """Pixels that are the whole support of some column (earlier re-seeds)."""
    nz = Wt > 0
    single = np.flatnonzero(nz.sum(axis=1) == 1)
    return {int(np.flatnonzero(nz[k])[0]) for k in single}


def _sweep_h(Ct, D, Ht):
    """Algorithm 1 lines 13-16 (eq. 10): exact HALS update of every column of H.

    With unit-norm columns of W, ``D_kk = 1`` and the update is the least-
    squares ``h_k = X^(k)T w_k``; H is signed, so there is no rectification.
    """
    for k in range(Ht.shape[0]):
        Ht[k] = (Ct[k] - D[k] @ Ht + D[k, k] * Ht[k]) / max(D[k, k], 1e-300)


def _objective(xnorm2, Ct, D, Ht) -> float:
    """Eq. 4 from the products: ``||X||^2 - 2 tr(H^T C) + tr(D H^T H)``."""
    return float(xnorm2 - 2.0 * np.sum(Ct * Ht) + np.sum(D * (Ht @ Ht.T)))


# ------------------------------------------------------------------ one run


@dataclass
class OnmfFit:
    """One run of the one-sided ONMF (kernel result, plain arrays).

    Attributes
    ----------
    Wt : ndarray, shape (r, m)
        Domain maps, >= 0, unit-norm rows (the columns of W).
    Ht : ndarray, shape (r, n), float64
        Signed difference spectra (the columns of H).
    objective : ndarray, shape (n_iter,)
        Eq. 4 after every iteration.
    converged : bool
    n_reseeded : int
        Dead columns re-seeded over the run.
    """

    Wt: np.ndarray
    Ht: np.ndarray
    objective: np.ndarray
    converged: bool
    n_reseeded: int = 0
    xnorm2: float = field(default=0.0)

    @property
    def n_iter(self) -> int:
        return int(self.objective.size)

    @property
    def final(self) -> float:
        return float(self.objective[-1]) if self.objective.size else np.inf


def fit_onmf(
    X,
    Wt: np.ndarray,
    Ht: np.ndarray,
    *,
    max_iter: int,
    tol: float,
    rownorm2: np.ndarray | None = None,
) -> OnmfFit:
    """Iterate Algorithm 1 (corrected) from a start ``(Wt, Ht)`` until converged.

    Parameters
    ----------
    X : array, shape (m, n), float32 or float64
        Difference spectra (eq. 1), read only through ``X H`` and ``X^T W``.
    Wt : ndarray, shape (r, m), dtype of X
        Start for W (transposed); overwritten.
    Ht : ndarray, shape (r, n)
        Start for H (transposed).
    max_iter : int
    tol : float
        Stop when the objective changes by less than ``tol`` times its value
        (or less than a rounding floor) from one iteration to the next.
    rownorm2 : ndarray, shape (m,), optional
        Squared row norms of X (computed when not given).

    Returns
    -------
    OnmfFit
    """
    if rownorm2 is None:
        rownorm2 = row_norms2(X)
    xnorm2 = float(rownorm2.sum())
    eps = float(np.finfo(X.dtype).eps)
    tiny = float(np.finfo(X.dtype).tiny) * 1e3
    # Below this the objective from products is rounding noise.
    floor = 50.0 * eps * xnorm2
    Wt = np.ascontiguousarray(Wt, dtype=X.dtype)
    Ht = np.array(Ht, dtype=np.float64)
    # Unit columns before the first sweep (Algorithm 1 line 2 assumes them).
    norms = np.linalg.norm(Wt, axis=1)
    norms[norms == 0] = 1.0
    Wt /= norms[:, None].astype(X.dtype)
    U = Wt.sum(axis=0)
    history: list[float] = []
    converged = False
    n_reseeded = 0
    for it in range(max_iter):
        s, reseeded = _sweep_w(X, Wt, Ht, U, rownorm2, tiny)
        n_reseeded += len(reseeded)
        Ht *= s[:, None]
        Ct = _xtw(X, Wt).astype(np.float64)
        D = (Wt @ Wt.T).astype(np.float64)
        _sweep_h(Ct, D, Ht)
        J = _objective(xnorm2, Ct, D, Ht)
        if history and not reseeded:
            if abs(history[-1] - J) <= tol * abs(history[-1]) + floor:
                history.append(J)
                converged = True
                break
        history.append(J)
        logger.debug("onmf iteration %d: objective %.6g", it + 1, J)
    return OnmfFit(
        Wt=Wt,
        Ht=Ht,
        objective=np.asarray(history),
        converged=converged,
        n_reseeded=n_reseeded,
        xnorm2=xnorm2,
    )


def fit_exact(
    X,
    Wt: np.ndarray,
    Ht: np.ndarray,
    *,
    max_iter: int = 100,
    rownorm2: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Enforce ``W^T W = I`` exactly (eq. 3): one component per pixel.

    Algorithm 1 holds the orthogonality of eq. 3 only approximately (the
    Lagrange term of eq. 9), so pixels keep small weights on several columns.
    With ``W >= 0`` exact orthogonality means disjoint supports, and the
    objective (eq. 4) then splits pixel by pixel: for fixed H each pixel goes
    to the component whose ray explains most of it, ``argmax_k (x_i . h_k)_+^2
    / ||h_k||^2``, with the least-squares weight ``(x_i . h_k)_+ / ||h_k||^2``;
    for fixed W (unit, disjoint columns) ``H = X^T W`` is the exact least-
    squares update. Both steps lower eq. 4, so the iteration stops when no
    pixel changes component. A component left without pixels is re-seeded on
    the pixel worst explained.

    Parameters
    ----------
    X : array, shape (m, n)
    Wt : ndarray, shape (r, m)
        Start (the approximately orthogonal fit).
    Ht : ndarray, shape (r, n)
    max_iter : int
    rownorm2 : ndarray, shape (m,), optional

    Returns
    -------
    Wt : ndarray, shape (r, m), dtype of X
        Unit rows with disjoint supports.
    Ht : ndarray, shape (r, n), float64
    objective : ndarray, shape (n_iter,)
        Eq. 4 after every iteration.
    converged : bool
        True when the assignment stopped changing within ``max_iter``.
    """
    if rownorm2 is None:
        rownorm2 = row_norms2(X)
    xnorm2 = float(rownorm2.sum())
    r, m = Wt.shape
    cols = np.arange(m)
    Ht = np.array(Ht, dtype=np.float64)
    labels = np.argmax(Wt, axis=0)
    history: list[float] = []
    converged = False
    for _ in range(max_iter):
        P = _xh(X, Ht).astype(np.float64)
        nh2 = np.maximum(np.einsum("kn,kn->k", Ht, Ht), np.finfo(float).tiny)
        gain = np.where(P > 0, P * P, 0.0) / nh2[:, None]
        new = np.argmax(gain, axis=0)
        weight = gain[new, cols]
        # Re-seed empty components on the worst-explained pixels.
        counts = np.bincount(new[weight > 0], minlength=r)
        for k in np.flatnonzero(counts == 0):
            resid = rownorm2 - weight
            i = int(np.argmax(resid))
            new[i] = k
            weight[i] = rownorm2[i]
            P[k, i] = np.sqrt(rownorm2[i] * nh2[k])
        w = np.where(weight > 0, P[new, cols] / nh2[new], 0.0)
        Wt = np.zeros((r, m), dtype=X.dtype)
        Wt[new, cols] = w
        norms = np.sqrt(np.einsum("km,km->k", Wt, Wt, dtype=np.float64))
        Wt /= np.where(norms > 0, norms, 1.0)[:, None].astype(X.dtype)
        Ht = _xtw(X, Wt).astype(np.float64)
        # Disjoint unit columns: D = I and J = ||X||^2 - ||H||^2.
        history.append(float(xnorm2 - np.sum(Ht * Ht)))
        if np.array_equal(new, labels):
            converged = True
            break
        labels = new
    return Wt, Ht, np.asarray(history), converged


def component_order(Wt: np.ndarray) -> np.ndarray:
    """Order of components by decreasing total weight ``||w_k||_1``.

    For unit-norm columns the 1-norm grows with how many pixels a domain spreads
    over, so the largest domain comes first whatever start the fit came from.
    """
    l1 = np.abs(Wt).sum(axis=1, dtype=np.float64)
    return np.argsort(-l1, kind="stable")
