"""The whole analysis of a stack in one call: what ``xasviz analyze`` runs.

:func:`analyze` chains the steps of the paper (normalisation, eq. 1, bi-cross-
validation, one-sided ONMF, k-means, the peak-top-energy map and its D1-D3
classes, optionally Bayesian spectroscopy of the domain spectra) and returns
every intermediate result as one :class:`xarray.DataTree` whose groups are
documented in ``docs/results.md``. The tree saves to one netCDF or zarr file
with :func:`xasviz.save` and is what the views and the HTML report read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import xarray as xr

from ._errors import StackValidationError
from ._utils import as_rng, child_seeds, progress_bar, provenance, seed_of
from ._validation import valid_pixels, validate_spectrum, validate_stack

__all__ = ["analyze", "parse_ranks"]

logger = logging.getLogger(__name__)


def parse_ranks(ranks: str | int | Iterable[int]) -> list[int]:
    """Turn ``"4-12"``, ``"2,4,6"``, ``8`` or an iterable into a sorted rank list.

    Raises
    ------
    ValueError
        When a rank is below 1 or the text cannot be read.
    """
    if isinstance(ranks, str):
        out: list[int] = []
        try:
            for part in ranks.replace(" ", "").split(","):
                if "-" in part:
                    lo, hi = (int(v) for v in part.split("-", 1))
                    out.extend(range(lo, hi + 1))
                elif part:
                    out.append(int(part))
        except ValueError:
            raise ValueError(
                f"ranks must look like '4-12' or '2,4,6'; got {ranks!r}."
            ) from None
    elif isinstance(ranks, (int, np.integer)):
        out = [int(ranks)]
    else:
        out = [int(r) for r in ranks]
    out = sorted(set(out))
    if not out or out[0] < 1:
        raise ValueError(f"ranks must be positive integers; got {ranks!r}.")
    return out


def _timed(label: str, timings: dict[str, float]):
    class _T:
        def __enter__(self):
            self.t0 = time.perf_counter()
            logger.info("%s ...", label)

        def __exit__(self, *exc):
            dt = time.perf_counter() - self.t0
            timings[label] = round(dt, 3)
            if exc[0] is None:
                logger.info("%s done in %.1f s", label, dt)
            return False

    return _T()


def _input_group(
    raw, norm: xr.Dataset, ok, mean_spec, reference, source: dict[str, Any]
):
    """Stack summary kept beside the results (what the report's first part shows)."""
    x0 = norm["normalized"]
    ds = xr.Dataset(
        {
            "stack": x0.astype(np.float32),
            "raw_mean": (("y", "x"), np.nanmean(raw.values, axis=-1)),
            "edge_step": norm["edge_step"].reset_coords(drop=True),
            "mean_spectrum": ("energy", mean_spec),
            "reference": ("energy", np.asarray(reference.values, dtype=np.float64)),
        }
    )
    if "e0" in norm:
        ds["e0"] = norm["e0"].reset_coords(drop=True)
    ds["stack"].attrs = dict(x0.attrs)
    ds["raw_mean"].attrs = {
        "long_name": "mean over energy of the input stack",
        "units": raw.attrs.get("units", ""),
    }
    ds["edge_step"].attrs = {
        "long_name": "edge step",
        "units": raw.attrs.get("units", ""),
    }
    ds["mean_spectrum"].attrs = {"long_name": "mean normalised spectrum"}
    ds["reference"].attrs = dict(reference.attrs, long_name="reference spectrum b")
    ds.attrs = provenance("input", {}, **source, n_valid_pixels=int(ok.sum()))
    return ds


def analyze(
    stack: xr.DataArray,
    reference: xr.DataArray | None = None,
    *,
    normalization: str | None = "endpoints",
    normalize_kwargs: dict | None = None,
    ranks: str | Iterable[int] = "2-9",
    rank: int | None = None,
    folds: int = 20,
    bcv_scheme: str = "paper",
    bcv_rule: str = "min",
    bcv_predictor: str = "pinv",
    onmf_kwargs: dict | None = None,
    kmeans: bool = True,
    pte: bool = True,
    pte_kwargs: dict | None = None,
    bayes: bool = False,
    bayes_kwargs: dict | None = None,
    rng=None,
    progress: bool | str = False,
    source: dict[str, Any] | None = None,
) -> xr.DataTree:
    """Run the paper's analysis of a stack end to end.

    Parameters
    ----------
    stack : xarray.DataArray, dims (y, x, energy)
        Absorption (optical density) stack, not yet normalised.
    reference : xarray.DataArray, dim energy, optional
        Reference spectrum ``b`` of eq. 1 (e.g. a reference material). It is
        normalised with the same method as the stack and interpolated onto the
        stack's energies. Default: the mean normalised spectrum of all valid
        pixels, which makes the difference spectra deviations from the average.
    normalization : {"endpoints", "edge_step"} or None
        See :func:`xasviz.normalize`; ``normalize_kwargs`` are passed on. None
        skips normalisation, for stacks already on the normalised scale (such
        as :mod:`xasviz.synthetic` stacks: normalising their noisy end points
        would divide every pixel by a noisy edge step).
    ranks : str or iterable of int
        Ranks scanned by bi-cross-validation (``"4-12"`` or a list).
    rank : int, optional
        Skip bi-cross-validation and factorize at this rank.
    folds, bcv_scheme, bcv_rule, bcv_predictor
        Passed to :func:`xasviz.bcv` (as ``folds``, ``scheme``, ``rule`` and
        ``predictor``).
    onmf_kwargs : dict, optional
        Passed to :func:`xasviz.onmf` (and to the fold factorizations of BCV).
    kmeans, pte : bool
        Run the k-means and peak-top-energy cross-checks (paper 2.5, 2.6).
    pte_kwargs : dict, optional
        Passed to :func:`xasviz.peak_top_energy`.
    bayes : bool
        Decompose every domain absorption spectrum with
        :func:`xasviz.bayes.decompose` (paper 2.7); ``bayes_kwargs`` passed on.
    rng : None, int or numpy.random.Generator
        Seeds every random step; each step gets its own child seed.
    progress : bool or "notebook"
        Show progress bars.
    source : dict, optional
        Provenance of the input (file name, checksum) stored in ``/input``.

    Returns
    -------
    xarray.DataTree
        Groups ``/input``, ``/bcv`` (unless ``rank`` is given), ``/onmf``,
        ``/kmeans``, ``/correlation_kmeans``, ``/pte``, ``/pte_classes`` and
        ``/bayes`` as documented in ``docs/results.md``; attrs hold the settings,
        the seed and the time each step took.
    """
    from .preprocess import normalize, subtract_reference

    seed = seed_of(rng)
    rng = as_rng(rng)
    seeds = dict(zip(("bcv", "onmf", "kmeans", "bayes"), child_seeds(rng, 4)))
    normalize_kwargs = dict(normalize_kwargs or {})
    onmf_kwargs = dict(onmf_kwargs or {})
    rank_list = None if rank is not None else parse_ranks(ranks)
    if rank is not None and int(rank) < 1:
        raise ValueError(f"rank must be a positive integer; got {rank!r}.")
    timings: dict[str, float] = {}
    settings = dict(
        normalization=normalization,
        normalize_kwargs=normalize_kwargs,
        ranks=rank_list,
        rank=rank,
        folds=folds,
        bcv_scheme=bcv_scheme,
        bcv_rule=bcv_rule,
        bcv_predictor=bcv_predictor,
        onmf_kwargs=onmf_kwargs,
        kmeans=kmeans,
        pte=pte,
        pte_kwargs=pte_kwargs or {},
        bayes=bayes,
        bayes_kwargs=bayes_kwargs or {},
        reference="given" if reference is not None else "mean spectrum",
    )
    steps = ["normalise", "factorize"]
    steps += ["bcv"] if rank is None else []
    steps += ["kmeans"] if kmeans else []
    steps += ["pte"] if pte else []
    steps += ["bayes"] if bayes else []
    bar = progress_bar(total=len(steps), progress=progress, desc="xasviz analyze")

    raw = validate_stack(stack)
    with _timed("normalise", timings):
        if normalization is None:
            # Already on the normalised scale (e.g. a planted stack, whose
            # noisy end points must not be divided by).
            norm = xr.Dataset(
                {
                    "normalized": raw,
                    "edge_step": raw.isel(energy=-1, drop=True)
                    - raw.isel(energy=0, drop=True),
                }
            )
        else:
            norm = normalize(
                raw, method=normalization, return_params=True, **normalize_kwargs
            )
        x0 = norm["normalized"]
        ok = valid_pixels(x0)
        if not ok.any():
            raise StackValidationError(
                "No pixel is left after normalisation (all masked). Check the "
                "normalisation ranges or pass a smaller min_edge_step."
            )
        mean_spec = x0.values.reshape(-1, x0.sizes["energy"])[ok.ravel()].mean(0)
        if reference is None:
            ref = xr.DataArray(
                mean_spec,
                dims="energy",
                coords={"energy": x0["energy"].values},
                attrs={"source": "mean normalised spectrum of the stack"},
            )
        else:
            ref = validate_spectrum(reference, name="reference")
            if normalization is not None:
                ref = normalize(
                    ref,
                    method=normalization,
                    **_spectrum_kwargs(normalize_kwargs),
                )
        diff = subtract_reference(x0, ref)
        ref_on_grid = _reference_on_grid(x0, diff, ok)
    bar.update()
    tree: dict[str, xr.Dataset] = {}
    tree["input"] = _input_group(raw, norm, ok, mean_spec, ref_on_grid, source or {})

    from .factorize import bcv as run_bcv
    from .factorize import onmf as run_onmf

    if rank is None:
        with _timed("bcv", timings):
            bcv_ds = run_bcv(
                diff,
                rank_list,
                folds=folds,
                scheme=bcv_scheme,
                rule=bcv_rule,
                predictor=bcv_predictor,
                rng=seeds["bcv"],
                progress=progress,
                # The fold fits are Algorithm 1's; the exact-orthogonality
                # refinement applies to the final maps only.
                **{k: v for k, v in onmf_kwargs.items() if k != "orthogonal"},
            )
        tree["bcv"] = bcv_ds
        chosen = int(bcv_ds["best_rank"])
        bar.update()
    else:
        chosen = int(rank)
    logger.info("rank used for the domains: %d", chosen)
    with _timed("onmf", timings):
        onmf_ds = run_onmf(
            diff, chosen, stack=x0, rng=seeds["onmf"], progress=progress, **onmf_kwargs
        )
    tree["onmf"] = onmf_ds
    bar.update()

    if kmeans or pte:
        from . import compare
    if kmeans:
        with _timed("kmeans", timings):
            km = compare.kmeans(x0, chosen, rng=seeds["kmeans"])
            tree["kmeans"] = km
            tree["correlation_kmeans"] = compare.correlate(
                onmf_ds, km, names=("onmf", "kmeans")
            )
        bar.update()
    if pte:
        with _timed("pte", timings):
            pte_ds = compare.peak_top_energy(x0, **(pte_kwargs or {}))
            tree["pte"] = pte_ds
            if int((~pte_ds["mask"]).sum()) >= 3:
                tree["pte_classes"] = compare.pte_classes(pte_ds, onmf_ds)
            else:
                logger.warning(
                    "PTE classes skipped: fewer than 3 pixels with a fitted peak"
                )
        bar.update()
    if bayes:
        from .bayes import decompose

        with _timed("bayes", timings):
            spectra = onmf_ds["absorption"]
            tree["bayes"] = decompose(
                spectra,
                rng=seeds["bayes"],
                progress=progress,
                **(bayes_kwargs or {}),
            )
        bar.update()
    bar.close()

    root_attrs = provenance(
        "xasviz.analyze",
        settings,
        seed=seed,
        chosen_rank=chosen,
        timings_json=timings,
    )
    return xr.DataTree.from_dict({"/": xr.Dataset(attrs=root_attrs), **tree})


def _spectrum_kwargs(kwargs: dict) -> dict:
    """Normalisation settings that also make sense for a single spectrum."""
    drop = {"min_edge_step"}
    return {k: v for k, v in kwargs.items() if k not in drop}


def _reference_on_grid(x0, diff, ok) -> xr.DataArray:
    """The reference as it was subtracted: ``b = X0 - X`` at any valid pixel."""
    iy, ix = np.argwhere(ok)[0]
    b = (x0.isel(y=iy, x=ix) - diff.isel(y=iy, x=ix)).drop_vars(
        [c for c in ("y", "x", "mask", "e0", "edge_step") if c in x0.coords],
        errors="ignore",
    )
    b.attrs = {}
    return b
