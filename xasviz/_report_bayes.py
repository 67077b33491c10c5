"""What the report and the Bayes view show of a decomposition (plain arrays).

Shared by :mod:`xasviz.report` and :mod:`xasviz.views.bayes` so both read a
:func:`xasviz.bayes.decompose` Dataset the same way.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["select", "data_of", "parts_of", "free_energy_of", "posterior_histograms"]


def select(ds: xr.Dataset, component=None) -> xr.Dataset:
    """The decomposition of one domain (or the only one)."""
    if component is not None and "component" in ds.dims:
        return ds.sel(component=component)
    return ds


def data_of(d: xr.Dataset) -> np.ndarray | None:
    """The decomposed spectrum: ``data``, else ``fit + residual``."""
    if "data" in d:
        return np.asarray(d["data"].values, dtype=float)
    if "residual" in d:
        return np.asarray(d["fit"].values + d["residual"].values, dtype=float)
    return None


def parts_of(d: xr.Dataset) -> dict[str, np.ndarray]:
    """Model parts (step, white line, peaks) at the MAP, by readable name.

    Rows that are all NaN (padding for a smaller K than other domains) are
    left out.
    """
    if "components" not in d:
        return {}
    out = {}
    for name in d["peak"].values:
        v = np.asarray(d["components"].sel(peak=name).values, dtype=float)
        if np.isfinite(v).any():
            out[str(name).replace("_", " ")] = v
    return out


def free_energy_of(d: xr.Dataset):
    """``(K, F, se)``: the free energy at its minimum over the noise level.

    Uses ``free_energy_min`` (reweighted between rungs) when present, else the
    minimum of ``free_energy`` over ``beta``; ``se`` may be None.
    """
    if "free_energy_min" in d:
        f = d["free_energy_min"]
        se = d.get("free_energy_min_se")
    else:
        f = d["free_energy"]
        se = d.get("free_energy_se")
        if "beta" in f.dims:
            ib = f.fillna(np.inf).argmin("beta")
            f = f.isel(beta=ib)
            se = se.isel(beta=ib) if se is not None else None
    ks = np.asarray(f["K"].values, dtype=float)
    return (
        ks,
        np.asarray(f.values, float),
        None if se is None else np.asarray(se, float),
    )


def posterior_histograms(ds: xr.Dataset, param: str = "E_WL", bins: int = 40):
    """Density histograms of one parameter's draws for every domain.

    All domains share the same bin edges so that their posteriors can be
    compared bar by bar.

    Returns
    -------
    edges : ndarray, shape (bins + 1,), or None when there are no draws
    densities : dict of component label (or None) to ndarray, shape (bins,)
    """
    if "chain" not in ds or param not in ds["param"].values:
        return None, {}
    chain = ds["chain"].sel(param=param)
    comps = list(chain["component"].values) if "component" in chain.dims else [None]
    draws = {}
    for c in comps:
        s = chain.sel(component=c).values if c is not None else chain.values
        s = s[np.isfinite(s)].ravel()
        if s.size:
            draws[c] = s
    if not draws:
        return None, {}
    edges = np.histogram_bin_edges(np.concatenate(list(draws.values())), bins=bins)
    return edges, {
        c: np.histogram(s, bins=edges, density=True)[0] for c, s in draws.items()
    }
