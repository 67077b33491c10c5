"""Speed of :func:`xasviz.bayes.decompose`: the K = 0..8 scan of one spectrum.

Usage: ``python benchmarks/bench_bayes.py [--quick] [--n-jobs N] [--replicates N]``

The spectrum is planted (100 points over 40 eV, unit edge step, white line,
four Gaussians, noise sigma = 2e-3). The run reports the wall time of the
whole scan, the chosen K and sigma, the largest standard error of
``min_b F(K, b)`` over K, and where the time went: model evaluation (sums of
squares and prior), proposals (the batched ensemble moves and the
peak-redraw move, which evaluates every walker's residual itself) and
exchanges as fractions of the sampling time, and the free-energy estimates
(made between sampling chunks) next to it. As a floor measured in the same
run it times one vectorised model evaluation of all walkers of all rungs, so
the scan's time can be read as a number of such evaluations (a ratio that does
not depend on how busy the machine is).

``--replicates N`` reruns the scan on the same spectrum with other sampler
seeds and compares the spread of ``min_b F`` between runs with the reported
standard errors: the check that those errors are honest.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import xarray as xr

from xasviz.bayes import decompose, model_curve
from xasviz.bayes.decompose import auto_ladder
from xasviz.bayes.model import _sum_sq
from xasviz.bayes.priors import Prior, SpectralPrior


def planted(seed: int = 0, sigma: float = 2e-3) -> tuple[xr.DataArray, dict]:
    """Step + white line + 4 Gaussians on 100 points over 40 eV."""
    rng = np.random.default_rng(seed)
    energy = np.linspace(700.0, 740.0, 100)
    p = dict(y0=0.0, H=1.0, E0=712.0, Gamma=2.0, A=3.0, E_WL=713.5, w=2.5, eta=0.4)
    for i, (c, a, w) in enumerate(
        [(704.0, 0.05, 2.0), (708.0, 0.07, 2.5), (720.0, 0.09, 3.0), (727.0, 0.1, 3.5)]
    ):
        p.update({f"amplitude_{i + 1}": a, f"centre_{i + 1}": c, f"width_{i + 1}": w})
    y = model_curve(energy, p, 4) + rng.normal(0.0, sigma, energy.size)
    return xr.DataArray(y, dims="energy", coords={"energy": energy}), p


def floor_time(spectrum: xr.DataArray, k: int, repeats: int = 20) -> float:
    """Seconds of one model evaluation of every walker on every rung (K = k)."""
    energy = spectrum["energy"].values
    y = spectrum.values
    prior = SpectralPrior(Prior().resolve(energy, y), k)
    n_rungs = auto_ladder(y[None]).size
    theta = prior.sample(np.random.default_rng(0), n_rungs * (2 * prior.ndim + 2))
    t0 = time.perf_counter()
    for _ in range(repeats):
        _sum_sq(energy, y, theta, k)
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="K = 0..4, fewer sweeps")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--n-sweeps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-chains", type=int, default=None, help="default 4")
    parser.add_argument("--n-burn", type=int, default=None, help="default n_sweeps/2")
    parser.add_argument("--n-blocks", type=int, default=None, help="jackknife blocks")
    parser.add_argument("--ladder", type=int, default=None, help="positive rungs")
    parser.add_argument(
        "--replicates",
        type=int,
        default=1,
        help="rerun the scan on the same spectrum with this many sampler seeds "
        "and compare the spread of F between runs with the reported errors",
    )
    args = parser.parse_args()
    k_max = 4 if args.quick else 8
    n_sweeps = args.n_sweeps or (300 if args.quick else 1000)
    spectrum, truth = planted(args.seed)
    floor = floor_time(spectrum, k_max)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    kw = dict(k_max=k_max, n_sweeps=n_sweeps)
    # Settings left unset keep decompose's defaults.
    for name in ("n_chains", "n_burn", "n_blocks", "ladder"):
        if getattr(args, name) is not None:
            kw[name] = getattr(args, name)
    res = decompose(spectrum, **kw, rng=args.seed, n_jobs=args.n_jobs)
    wall = time.perf_counter() - t0
    a = res.attrs
    sampling = a["time_total_s"]
    print(f"load average at start: {load:.2f} on {os.cpu_count()} cores")
    print(
        f"scan K=0..{k_max}, {n_sweeps} kept sweeps, {a['n_rungs']} rungs, "
        f"n_jobs={args.n_jobs}: wall {wall:.1f} s"
    )
    print(f"  = {wall / floor:.0f} x the floor (one K={k_max} sweep of model calls)")
    print(f"chosen K = {int(res['k'])} (planted 4), sigma = {float(res['sigma']):.3g}")
    se = res["free_energy_min_se"].values
    print("min_b F(K, b):", np.round(res["free_energy_min"].values, 2).tolist())
    print("its SE:        ", np.round(se, 3).tolist(), f"(max {se.max():.3f})")
    print("sweeps per K:  ", res["n_sweeps_total"].values.tolist())
    print(f"CPU seconds summed over the K runs ({sampling:.1f} s of sampling):")
    for key in ("model", "proposal", "exchange"):
        v = a[f"time_{key}_s"]
        print(f"  {key:12s} {v:8.1f} s  ({v / sampling:.0%} of sampling)")
    other = sampling - a["time_model_s"] - a["time_proposal_s"] - a["time_exchange_s"]
    print(f"  {'bookkeeping':12s} {other:8.1f} s  ({other / sampling:.0%} of sampling)")
    # The free-energy estimates (and the error checks that decide whether a
    # run continues) run between sampling chunks, outside the sampling time.
    fe = a["time_free_energy_s"]
    print(f"  {'free energy':12s} {fe:8.1f} s  (outside sampling, {fe / sampling:.0%})")
    print(f"  {'posterior+MAP':12s} {wall - sampling / args.n_jobs:8.1f} s (approx.)")
    ewl = res["interval"].sel(param="E_WL").values
    print(f"E_WL 95% interval {ewl.round(3).tolist()} (planted {truth['E_WL']})")
    if args.replicates > 1:
        replicate_spread(spectrum, res, kw, args)


def replicate_spread(spectrum, first, kw, args) -> None:
    """Spread of ``min_b F`` between sampler seeds against the reported errors.

    The data stay the same; only the sampler's seed changes (``seed + 1000 i``,
    the first run being the one above). If the reported standard errors are
    honest, the standard deviation between runs matches their RMS.
    """
    f = [first["free_energy_min"].values]
    se = [first["free_energy_min_se"].values]
    chosen = [int(first["k"])]
    for i in range(1, args.replicates):
        r = decompose(spectrum, **kw, rng=args.seed + 1000 * i, n_jobs=args.n_jobs)
        f.append(r["free_energy_min"].values)
        se.append(r["free_energy_min_se"].values)
        chosen.append(int(r["k"]))
    f, se = np.array(f), np.array(se)
    for i, row in enumerate(f):
        print(f"  run {i}: chosen K = {chosen[i]}, min_b F:", np.round(row, 2).tolist())
    sd = f.std(axis=0, ddof=1)
    rms = np.sqrt((se**2).mean(axis=0))
    print(f"{args.replicates} runs on the same spectrum (sampler seeds differ):")
    print("  SD of min_b F between runs:", np.round(sd, 3).tolist())
    print("  RMS of its reported SE:    ", np.round(rms, 3).tolist())
    pooled = np.sqrt((sd**2).mean() / (rms**2).mean())
    print(f"  ratio SD / SE, pooled over K: {pooled:.2f} (1 if the errors are honest)")


if __name__ == "__main__":
    main()
