"""Cross-correlation tables between two sets of maps (paper eq. 13).

Eq. 13 is printed as ``w^T v / sqrt(||w|| ||v||)``; only the cosine
similarity ``w^T v / (||w|| ||v||)`` makes the tables of the paper bounded by
one and independent of how each method scales its maps, so that is what is
computed (see the design notes). Components are paired one-to-one by the
Hungarian algorithm on the table, not greedily.
"""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr
from scipy.optimize import linear_sum_assignment

from .._errors import DataQualityWarning, StackValidationError
from .._utils import provenance, warn

__all__ = ["correlate"]

logger = logging.getLogger(__name__)


def _as_maps(obj, side: str) -> xr.DataArray:
    """Maps (component-like dim, y, x) from a result Dataset or a DataArray."""
    if isinstance(obj, xr.Dataset):
        if "domains" in obj:
            obj = obj["domains"].assign_attrs(
                {**obj["domains"].attrs, "method": obj.attrs.get("method", "")}
            )
        elif "classes" in obj:
            obj = obj["classes"].assign_attrs(
                {**obj["classes"].attrs, "method": obj.attrs.get("method", "")}
            )
        else:
            raise StackValidationError(
                f"{side} is a Dataset without a 'domains' (or 'classes') variable; "
                f"it holds {sorted(obj.data_vars)}. Pass the result of onmf, kmeans "
                "or pte_classes, or a DataArray (component, y, x)."
            )
    if not isinstance(obj, xr.DataArray):
        raise StackValidationError(
            f"{side} must be a Dataset with 'domains' or a DataArray with dims "
            f"(component, y, x); got {type(obj).__name__}."
        )
    other = [d for d in obj.dims if d not in ("y", "x")]
    if obj.ndim != 3 or len(other) != 1:
        raise StackValidationError(
            f"{side} must have dims (component, y, x) (any name for the first); "
            f"got {obj.dims}."
        )
    if not np.issubdtype(obj.dtype, np.number) and obj.dtype != bool:
        raise StackValidationError(f"{side} must be numeric; got dtype {obj.dtype}.")
    return obj.transpose(other[0], "y", "x")


def _default_name(maps: xr.DataArray, fallback: str) -> str:
    name = maps.attrs.get("method") or maps.name or fallback
    return str(name)


def _check_grids(a: xr.DataArray, b: xr.DataArray) -> None:
    for d in ("y", "x"):
        if a.sizes[d] != b.sizes[d]:
            raise StackValidationError(
                f"the two sets of maps are on different grids: {d} has "
                f"{a.sizes[d]} pixels in the first and {b.sizes[d]} in the second. "
                "Both must come from the same (cropped, binned) stack."
            )
        if d in a.coords and d in b.coords:
            ca, cb = np.asarray(a[d].values), np.asarray(b[d].values)
            same = (
                ca.dtype.kind in "fc" and np.allclose(ca, cb) or np.array_equal(ca, cb)
            )
            if not same:
                raise StackValidationError(
                    f"the two sets of maps have the same size but different '{d}' "
                    f"coordinates ({ca[:3]}... vs {cb[:3]}...). Both must come from "
                    "the same crop of the same stack."
                )


def cosine_table(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity of every row of ``a`` with every row of ``b``.

    Parameters
    ----------
    a : ndarray, shape (k_a, n_pixels)
    b : ndarray, shape (k_b, n_pixels)
        Finite values.

    Returns
    -------
    table : ndarray, shape (k_a, k_b)
        0 in the rows and columns of all-zero maps.
    zero_a, zero_b : ndarray of bool
        Which maps are all zero.
    """
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    za, zb = na == 0, nb == 0
    table = (a @ b.T) / np.outer(np.where(za, 1.0, na), np.where(zb, 1.0, nb))
    return table, za, zb


def hungarian(table: np.ndarray) -> np.ndarray:
    """Column matched to every row, maximising the sum of matched values.

    Parameters
    ----------
    table : ndarray, shape (k_a, k_b)

    Returns
    -------
    ndarray of int, shape (k_a,)
        -1 for rows left unmatched (when k_a > k_b).
    """
    match = np.full(table.shape[0], -1, dtype=np.int64)
    rows, cols = linear_sum_assignment(table, maximize=True)
    match[rows] = cols
    return match


def correlate(a, b, *, names: tuple[str, str] | None = None) -> xr.Dataset:
    """Cosine-similarity table between two sets of maps, with a matching (eq. 13).

    Parameters
    ----------
    a, b : xarray.Dataset or xarray.DataArray
        Each a result with a ``domains`` variable (:func:`xasviz.onmf`,
        :func:`xasviz.kmeans`), a :func:`xasviz.pte_classes` result
        (``classes``), or a DataArray of maps with dims (component, y, x)
        (the first dim may have any name), e.g. ``SyntheticStack.domains``.
        Both on the same pixel grid. Not modified.
    names : (str, str), optional
        Names of the two sources, used as the dims of the table. By default
        the ``method`` attrs of the inputs (their ``name`` for bare
        DataArrays, else ``"a"`` and ``"b"``); equal names get ``_a`` and
        ``_b`` appended.

    Returns
    -------
    xarray.Dataset
        - ``correlation`` (name_a, name_b): cosine ``w^T v / (||w|| ||v||)``
          over the pixels that are finite in every map of both sides;
        - ``match`` (name_a): position along ``name_b`` of the map paired with
          each map of ``a`` by the Hungarian algorithm (maximum total cosine),
          -1 when ``a`` has more maps than ``b`` and the map is left over;
        - ``matched_correlation`` (name_a): the cosine of each pair (0 for
          left-over maps);
        - ``mean_matched_correlation`` (): mean over the matched pairs;
        - coordinate ``matched_label`` (name_a): the label of the paired map
          of ``b`` (-1 or "" when left over).

    Raises
    ------
    StackValidationError
        When an input is not a set of maps, the grids differ, or no pixel is
        finite in both.

    Warns
    -----
    DataQualityWarning
        When a map is zero on every shared pixel (its cosines are set to 0).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> m = xr.DataArray(np.eye(3).reshape(3, 1, 3), dims=("component", "y", "x"))
    >>> res = correlate(m, m[::-1])
    >>> res["match"].values.tolist()
    [2, 1, 0]
    """
    ma, mb = _as_maps(a, "a"), _as_maps(b, "b")
    _check_grids(ma, mb)
    if names is None:
        na, nb = _default_name(ma, "a"), _default_name(mb, "b")
        if na == nb:
            na, nb = f"{na}_a", f"{nb}_b"
    else:
        if len(names) != 2 or names[0] == names[1]:
            raise ValueError(f"names must be two different strings; got {names!r}.")
        na, nb = (str(n) for n in names)
    va = np.asarray(ma.values, dtype=np.float64).reshape(ma.shape[0], -1)
    vb = np.asarray(mb.values, dtype=np.float64).reshape(mb.shape[0], -1)
    # A pixel enters only if every map of both sides is finite there, so that
    # each cosine is computed over the same pixels.
    ok = np.isfinite(va).all(0) & np.isfinite(vb).all(0)
    if not ok.any():
        raise StackValidationError(
            "no pixel is finite in every map of both inputs (all-NaN maps, or "
            "masks that do not overlap); there is nothing to correlate."
        )
    table, za, zb = cosine_table(va[:, ok], vb[:, ok])
    la, lb = ma[ma.dims[0]].values, mb[mb.dims[0]].values
    if za.any() or zb.any():
        empty = [f"{na} {v}" for v in la[za]] + [f"{nb} {v}" for v in lb[zb]]
        warn(
            f"maps {', '.join(empty)} are zero on every shared pixel; their "
            "cosines are set to 0.",
            DataQualityWarning,
        )
    match = hungarian(table)
    matched = np.where(match >= 0, table[np.arange(match.size), match], 0.0)
    fill = -1 if lb.dtype.kind in "iu" else ""
    label = np.array([lb[j] if j >= 0 else fill for j in match])
    ds = xr.Dataset(
        {
            "correlation": (
                (na, nb),
                table,
                {"long_name": "cosine similarity of the maps (eq. 13)"},
            ),
            "match": ((na,), match, {"long_name": f"position along {nb} matched"}),
            "matched_correlation": ((na,), matched),
            "mean_matched_correlation": ((), float(matched[match >= 0].mean())),
        },
        coords={na: la, nb: lb, "matched_label": ((na,), label)},
    )
    ds.attrs = provenance(
        "correlate",
        dict(names=[na, nb]),
        n_pixels=int(ok.sum()),
        source_a=na,
        source_b=nb,
    )
    return ds
