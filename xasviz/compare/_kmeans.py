"""k-means clusters of the pixel spectra (paper section 2.5, eq. 12).

scikit-learn does the clustering; this module validates the stack, removes
masked pixels, orders the clusters reproducibly and returns labelled maps that
:func:`xasviz.correlate` can hold against the ONMF domains.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import xarray as xr

from .._errors import DataQualityWarning, StackValidationError
from .._utils import as_rng, provenance, seed_of, warn
from .._validation import valid_pixels, validate_stack

__all__ = ["kmeans"]

logger = logging.getLogger(__name__)

_ORDERS = ("size", "peak_energy")


def _order(labels, centers, energy, order):
    """Permutation putting the clusters in a reproducible order.

    Parameters
    ----------
    labels : ndarray of int, shape (n_pixels,)
    centers : ndarray, shape (k, n_energy)
    energy : ndarray, shape (n_energy,)
    order : {"size", "peak_energy"}

    Returns
    -------
    ndarray of int, shape (k,)
        ``perm[i]`` is the cluster that becomes component ``i + 1``.
    """
    k = centers.shape[0]
    size = np.bincount(labels, minlength=k)
    # Ties in the first key are broken by the pixel where each cluster first
    # appears in raster order: a property of the partition, not of the run.
    first = np.full(k, labels.size)
    np.minimum.at(first, labels, np.arange(labels.size))
    if order == "size":
        return np.lexsort((first, -size))
    peak = energy[np.argmax(centers, axis=1)]
    return np.lexsort((first, -size, peak))


def kmeans(
    stack: xr.DataArray,
    k: int,
    *,
    rng=None,
    n_init: int = 10,
    max_iter: int = 300,
    order: str = "size",
    batch_size: int | None = None,
    n_threads: int | None = None,
) -> xr.Dataset:
    """k-means clustering of the pixel spectra (paper eq. 12).

    Parameters
    ----------
    stack : xarray.DataArray, dims (y, x, energy)
        Absorption (the paper) or difference stack; masked pixels (``mask``
        coordinate or NaN) are left out. Not modified.
    k : int
        Number of clusters, e.g. the rank chosen by :func:`xasviz.bcv`.
    rng : None, int or numpy.random.Generator
        Seeds scikit-learn's k-means++ initialisations.
    n_init : int, default 10
        Independent initialisations; the lowest inertia is kept.
    max_iter : int, default 300
        Lloyd iterations per initialisation.
    order : {"size", "peak_energy"}, default "size"
        Component order: by decreasing number of pixels, or by increasing
        energy of the maximum of the cluster-mean spectrum (ties by size).
        Either way the order depends only on the partition, so runs that
        find the same clusters number them the same.
    batch_size : int, optional
        Use :class:`sklearn.cluster.MiniBatchKMeans` with this batch size
        (for stacks of millions of pixels); the final assignment, means and
        inertia are still computed on every pixel.
    n_threads : int, optional
        Cap on the OpenMP threads scikit-learn uses (default: its own
        choice, all cores). On a machine shared with other busy processes,
        ``n_threads=1`` can be many times faster: OpenMP threads that wait
        for each other at every Lloyd iteration stall when cores are taken.

    Returns
    -------
    xarray.Dataset
        - ``domains`` (component, y, x): one-hot maps, NaN on masked pixels;
        - ``spectra`` (component, energy): cluster means ``h_j``;
        - ``labels`` (y, x): component index 0..k-1, -1 on masked pixels;
        - ``size`` (component): pixels per cluster;
        - ``inertia`` (): ``sum_i ||x_i - h_{j(i)}||^2`` (eq. 12);
        - coordinates ``component`` (1..k), ``energy``, ``y``, ``x``, ``mask``.

    Raises
    ------
    StackValidationError
        When ``k`` exceeds the number of valid pixels.
    ValueError
        When ``k``, ``n_init``, ``max_iter`` or ``order`` are invalid.

    Warns
    -----
    DataQualityWarning
        When the stack has fewer distinct spectra than ``k`` (some clusters
        then share spectra or are empty).

    Notes
    -----
    The whole set of valid spectra is held in memory as float64
    (pixels x energies); for a 2048 x 2048 x 200 stack that is 6.7 GB: bin or
    crop first (:func:`xasviz.bin_stack`), or pass ``batch_size``.

    Examples
    --------
    >>> from xasviz.synthetic import make_stack
    >>> s = make_stack(size=30, n_energy=40, n_domains=3, snr_db=20, rng=0)
    >>> res = kmeans(s.stack, 3, rng=0)
    >>> res["domains"].dims
    ('component', 'y', 'x')
    """
    seed = seed_of(rng)
    rng = as_rng(rng)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive int; got {k!r}.")
    if not isinstance(n_init, (int, np.integer)) or n_init < 1:
        raise ValueError(f"n_init must be a positive int; got {n_init!r}.")
    if not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive int; got {max_iter!r}.")
    if order not in _ORDERS:
        raise ValueError(f"order must be one of {_ORDERS}; got {order!r}.")
    st = validate_stack(stack, nonfinite="mask")
    ok = valid_pixels(st)
    n_valid = int(ok.sum())
    if k > n_valid:
        raise StackValidationError(
            f"k={k} clusters need at least {k} valid pixels; the stack has "
            f"{n_valid} (of {ok.size}). Lower k or unmask pixels."
        )
    x = np.asarray(st.values, dtype=np.float64)[ok]
    if n_threads is None:
        model = _fit(x, int(k), rng, int(n_init), int(max_iter), batch_size)
        labels = model.predict(x)
    else:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=int(n_threads), user_api="openmp"):
            model = _fit(x, int(k), rng, int(n_init), int(max_iter), batch_size)
            labels = model.predict(x)
    centers = np.zeros((k, x.shape[1]))
    np.add.at(centers, labels, x)
    size = np.bincount(labels, minlength=k)
    centers /= np.maximum(size, 1)[:, None]
    energy = st["energy"].values
    perm = _order(labels, centers, energy, order)
    rank = np.empty(k, dtype=np.int64)
    rank[perm] = np.arange(k)
    labels, centers, size = rank[labels], centers[perm], size[perm]
    if (size == 0).any():
        warn(
            f"{int((size == 0).sum())} of {k} clusters are empty: the stack has "
            f"fewer than k={k} distinct spectra. Lower k.",
            DataQualityWarning,
        )
    inertia = float(((x - centers[labels]) ** 2).sum())
    return _to_dataset(
        st,
        ok,
        labels,
        centers,
        size,
        inertia,
        dict(
            k=int(k),
            n_init=int(n_init),
            max_iter=int(max_iter),
            order=order,
            batch_size=batch_size,
        ),
        seed,
        model,
    )


def _fit(x, k, rng, n_init, max_iter, batch_size):
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning

    # scikit-learn takes a legacy integer seed; draw it from our generator so
    # that one rng threads through a whole analysis.
    state = int(rng.integers(0, 2**31 - 1))
    if batch_size is None:
        est = KMeans(k, n_init=n_init, max_iter=max_iter, random_state=state)
    else:
        est = MiniBatchKMeans(
            k,
            n_init=n_init,
            max_iter=max_iter,
            batch_size=int(batch_size),
            random_state=state,
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SkConvergenceWarning)
        est.fit(x)
    for w in caught:
        if issubclass(w.category, SkConvergenceWarning):
            warn(f"scikit-learn k-means: {w.message}", DataQualityWarning)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    logger.debug("k-means: inertia %.6g after %d iterations", est.inertia_, est.n_iter_)
    return est


def _to_dataset(st, ok, labels, centers, size, inertia, settings, seed, model):
    ny, nx = ok.shape
    k = centers.shape[0]
    lab = np.full((ny, nx), -1, dtype=np.int64)
    lab[ok] = labels
    onehot = (lab[None] == np.arange(k)[:, None, None]).astype(np.float64)
    onehot[:, ~ok] = np.nan
    comp = np.arange(1, k + 1)
    coords = {
        "component": comp,
        "y": st["y"].values,
        "x": st["x"].values,
        "energy": st["energy"].values,
        "mask": (("y", "x"), ~ok),
    }
    ds = xr.Dataset(
        {
            "domains": (
                ("component", "y", "x"),
                onehot,
                {"long_name": "k-means clusters (one-hot)"},
            ),
            "spectra": (
                ("component", "energy"),
                centers,
                {"long_name": "cluster mean spectra"},
            ),
            "labels": (("y", "x"), lab, {"long_name": "cluster index (-1 masked)"}),
            "size": (("component",), size),
            "inertia": ((), inertia),
        },
        coords=coords,
    )
    ds.attrs = provenance(
        "kmeans",
        settings,
        seed=seed,
        n_iter=int(model.n_iter_),
        n_pixels=int(ok.sum()),
    )
    return ds
