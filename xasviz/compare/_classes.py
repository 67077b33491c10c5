"""D1-D3 classes of the peak-top-energy map (paper sections 2.6 and 3.4).

Two thresholds split the PTE map into three pixel sets: D3 (lowest PTE), D2
and D1 (highest PTE). Each threshold is chosen to maximise the cosine of its
outer class with the most similar domain map.

Threshold names. Section 2.6 defines D1 = (E2, inf) and D3 = (0, E1) and fixes
E1 by D3 and E2 by D1, so E1 is the lower threshold; section 3.4 prints the
values with the labels the other way round (E1 = 7730.18 eV > E2 = 7729.79
eV, with D1 above E1). xasviz follows section 2.6 throughout:

    E1 < E2,   D3: PTE <= E1,   D2: E1 < PTE <= E2,   D1: PTE > E2.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import xarray as xr

from .._errors import StackValidationError
from .._utils import provenance
from ._correlate import _as_maps, _check_grids, cosine_table, hungarian

__all__ = ["pte_classes"]

logger = logging.getLogger(__name__)

CLASSES = ("D1", "D2", "D3")


def _threshold_scores(p, w, thresholds):
    """Best cosine of D3 and of D1 with any map, for every candidate threshold.

    All candidates are scored from one sort of the pixels by PTE: the class
    below a threshold is a prefix of the sorted pixels, the class above it a
    suffix, so ``w^T d`` for every candidate is a cumulative sum read at the
    class size, and ``||d|| = sqrt(size)`` for a one-hot class ``d``.

    Parameters
    ----------
    p : ndarray, shape (n,)
        Finite PTEs of the valid pixels.
    w : ndarray, shape (k, n)
        Domain maps on the same pixels.
    thresholds : ndarray, shape (c,)

    Returns
    -------
    score3, score1 : ndarray, shape (c,)
        ``max_k cos(D3(t), w_k)`` and ``max_k cos(D1(t), w_k)``; 0 for an
        empty class.
    """
    order = np.argsort(p, kind="stable")
    ps = p[order]
    cum = np.zeros((w.shape[0], p.size + 1))
    np.cumsum(w[:, order], axis=1, out=cum[:, 1:])
    norm = np.linalg.norm(w, axis=1)
    norm = np.where(norm > 0, norm, np.inf)
    below = np.searchsorted(ps, thresholds, side="right")
    above = p.size - below
    with np.errstate(divide="ignore", invalid="ignore"):
        c3 = cum[:, below] / (np.sqrt(below) * norm[:, None])
        c1 = (cum[:, -1:] - cum[:, below]) / (np.sqrt(above) * norm[:, None])
    c3 = np.where(below > 0, c3, 0.0)
    c1 = np.where(above > 0, c1, 0.0)
    return c3.max(axis=0), c1.max(axis=0)


def _choose(thresholds, score3, score1, counts=None, min_count=0):
    """Thresholds (E1, E2) with E1 <= E2 maximising score3(E1) + score1(E2).

    When the two separate maxima of section 2.6 are already in order they are
    the answer; otherwise the best ordered pair is taken, so that the three
    classes never overlap. With ``counts`` (pixels at or below each candidate)
    only pairs leaving at least ``min_count`` pixels in D2 are allowed, when
    any such pair exists.
    """
    total = score3[:, None] + score1[None, :]
    allowed = np.triu(np.ones(total.shape, dtype=bool))
    if counts is not None and min_count > 0:
        wide = allowed & ((counts[None, :] - counts[:, None]) >= min_count)
        if wide.any():
            allowed = wide
    total = np.where(allowed, total, -np.inf)
    i, j = np.unravel_index(np.argmax(total), total.shape)
    return i, j


def _pte_map(pte) -> xr.DataArray:
    if isinstance(pte, xr.Dataset):
        if "pte" not in pte:
            raise StackValidationError(
                "pte must be the result of xasviz.peak_top_energy (a Dataset with a "
                f"'pte' variable) or a DataArray (y, x); it holds {sorted(pte)}."
            )
        pte = pte["pte"]
    if not isinstance(pte, xr.DataArray) or set(pte.dims) != {"y", "x"}:
        raise StackValidationError(
            "pte must be a DataArray with dims (y, x) in eV (or the "
            f"peak_top_energy Dataset); got {type(pte).__name__} with dims "
            f"{getattr(pte, 'dims', None)}."
        )
    return pte.transpose("y", "x")


def _domain_pte(pte, domains):
    """PTE of every domain absorption spectrum, fitted like the pixels."""
    from ._pte import peak_top_energy

    params = {}
    if isinstance(pte, xr.Dataset) and "params_json" in pte.attrs:
        saved = json.loads(pte.attrs["params_json"])
        params = {
            k: saved[k]
            for k in ("window", "half_width", "method", "max_iter")
            if saved.get(k) is not None
        }
        if "window" in params:
            params["window"] = tuple(params["window"])
    return peak_top_energy(domains["absorption"], **params)


def pte_classes(
    pte,
    domains,
    *,
    n_candidates: int = 200,
    quantile_range: tuple[float, float] = (0.005, 0.995),
    matching: str = "hungarian",
    min_fraction: float = 0.05,
) -> xr.Dataset:
    """Split a PTE map into D1-D3 and compare the classes with domains (2.6, 3.4).

    Parameters
    ----------
    pte : xarray.Dataset or xarray.DataArray
        Result of :func:`xasviz.peak_top_energy` on a stack, or its ``pte``
        map (y, x) in eV; NaN pixels are left out.
    domains : xarray.Dataset or xarray.DataArray
        Result of :func:`xasviz.onmf` (``domains``, optionally
        ``absorption``) or maps (component, y, x) on the same grid.
    n_candidates : int, default 200
        Candidate thresholds, at evenly spaced quantiles of the PTE map.
    quantile_range : (float, float), default (0.005, 0.995)
        Lowest and highest candidate quantile.
    matching : {"hungarian", "argmax"}, default "hungarian"
        How classes are paired with domains in the final table: one-to-one
        (Hungarian; with fewer than 3 domains the left-over classes take
        their most similar domain), or each class with its most similar
        domain (the paper's reading, which may pair two classes with one
        domain).
    min_fraction : float, default 0.05
        Least fraction of the fitted pixels the middle class D2 must hold.
        Section 2.6 chooses E1 and E2 separately, and on real maps both can
        land on the same value, leaving D2 empty; xasviz then takes the best
        pair that keeps D2 at this size. 0 gives the paper's rule unchanged.

    Returns
    -------
    xarray.Dataset
        - ``classes`` (pte_class, y, x): one-hot D1, D2, D3; NaN where the
          PTE or a domain map is NaN;
        - ``E1``, ``E2`` () eV: lower and upper threshold, ``E1 <= E2``; D3 is
          ``PTE <= E1``, D2 ``E1 < PTE <= E2``, D1 ``PTE > E2`` (section 2.6's
          naming; section 3.4 of the paper swaps the two labels);
        - ``correlation`` (pte_class, component): cosine of each class with
          each domain (the paper's Table 2);
        - ``matched_component`` (pte_class): label of the paired domain;
        - ``matched_correlation`` (pte_class);
        - ``n_pixels`` (pte_class): pixels per class;
        - ``threshold`` (candidate), ``d3_score`` (candidate), ``d1_score``
          (candidate): the threshold scan, i.e. the best cosine of D3 (D1)
          with any domain when the class is cut at that threshold;
        - when ``domains`` has ``absorption``: ``domain_pte`` (component), the
          PTE of each domain spectrum fitted with the settings of ``pte``
          (the paper's Table 3), and ``matched_pte`` (pte_class), that of the
          paired domain.

    Raises
    ------
    StackValidationError
        When the inputs are not a PTE map and domain maps on one grid, or
        fewer than 3 pixels have both a PTE and finite domain values.

    Notes
    -----
    E1 maximises ``max_k cos(D3, w_k)`` and E2 maximises
    ``max_k cos(D1, w_k)`` (section 2.6), subject to ``E1 <= E2``; when the
    two separate maxima are out of order, the ordered pair with the largest
    sum of the two scores is taken. Every candidate is scored from a single
    sort of the pixels (cumulative sums), so the scan costs
    O(n log n + k n) whatever ``n_candidates`` is.
    """
    if not isinstance(n_candidates, (int, np.integer)) or n_candidates < 2:
        raise ValueError(f"n_candidates must be an int >= 2; got {n_candidates!r}.")
    q_lo, q_hi = (float(v) for v in quantile_range)
    if not 0.0 <= q_lo < q_hi <= 1.0:
        raise ValueError(
            f"quantile_range must satisfy 0 <= lo < hi <= 1; got {quantile_range!r}."
        )
    if matching not in ("hungarian", "argmax"):
        raise ValueError(f"matching must be 'hungarian' or 'argmax'; got {matching!r}.")
    pmap = _pte_map(pte)
    maps = _as_maps(domains, "domains")
    _check_grids(pmap.expand_dims(component=[0]), maps)
    p_all = np.asarray(pmap.values, dtype=np.float64).ravel()
    w_all = np.asarray(maps.values, dtype=np.float64).reshape(maps.shape[0], -1)
    ok = np.isfinite(p_all) & np.isfinite(w_all).all(0)
    if ok.sum() < 3:
        raise StackValidationError(
            f"only {int(ok.sum())} pixels have both a fitted PTE and finite domain "
            "values; D1-D3 need at least 3. Check the PTE mask (window, noise) "
            "and that both come from the same stack."
        )
    p, w = p_all[ok], w_all[:, ok]
    thresholds = np.quantile(p, np.linspace(q_lo, q_hi, int(n_candidates)))
    score3, score1 = _threshold_scores(p, w, thresholds)
    if not 0.0 <= float(min_fraction) < 1.0:
        raise ValueError(f"min_fraction must be in [0, 1); got {min_fraction!r}.")
    counts = np.searchsorted(np.sort(p), thresholds, side="right")
    i, j = _choose(
        thresholds,
        score3,
        score1,
        counts=counts,
        min_count=int(np.ceil(float(min_fraction) * p.size)),
    )
    e1, e2 = float(thresholds[i]), float(thresholds[j])
    onehot = np.stack([p > e2, (p > e1) & (p <= e2), p <= e1]).astype(np.float64)
    table, _, _ = cosine_table(onehot, w)
    if matching == "hungarian":
        match = hungarian(table)
        left = match < 0
        match[left] = np.argmax(table[left], axis=1)
    else:
        match = np.argmax(table, axis=1)
    labels = maps[maps.dims[0]].values
    cls = np.full((3, p_all.size), np.nan)
    cls[:, ok] = onehot
    ny, nx = pmap.shape
    ds = xr.Dataset(
        {
            "classes": (("pte_class", "y", "x"), cls.reshape(3, ny, nx)),
            "E1": ((), e1, {"units": "eV", "long_name": "lower threshold (D3 <= E1)"}),
            "E2": ((), e2, {"units": "eV", "long_name": "upper threshold (D1 > E2)"}),
            "correlation": (
                ("pte_class", "component"),
                table,
                {"long_name": "cosine of class and domain (eq. 13)"},
            ),
            "matched_component": (("pte_class",), labels[match]),
            "matched_correlation": (("pte_class",), table[np.arange(3), match]),
            "n_pixels": (("pte_class",), onehot.sum(1).astype(np.int64)),
            "threshold": (("candidate",), thresholds, {"units": "eV"}),
            "d3_score": (("candidate",), score3),
            "d1_score": (("candidate",), score1),
        },
        coords={
            "pte_class": list(CLASSES),
            "component": labels,
            "y": pmap["y"].values if "y" in pmap.coords else np.arange(ny),
            "x": pmap["x"].values if "x" in pmap.coords else np.arange(nx),
        },
    )
    if isinstance(domains, xr.Dataset) and "absorption" in domains:
        dp = _domain_pte(pte, domains)
        ds["domain_pte"] = (("component",), dp["pte"].values, {"units": "eV"})
        ds["matched_pte"] = (("pte_class",), dp["pte"].values[match], {"units": "eV"})
    settings = dict(
        n_candidates=int(n_candidates),
        quantile_range=[q_lo, q_hi],
        matching=matching,
        min_fraction=float(min_fraction),
    )
    ds.attrs = provenance(
        "pte_classes",
        settings,
        n_pixels=int(ok.sum()),
        threshold_convention="E1 < E2; D3: PTE <= E1; D2: E1 < PTE <= E2; D1: PTE > E2",
    )
    return ds
