"""Speed of the one-sided ONMF and of bi-cross-validation.

Three figures, each a ratio against a floor or a peer timed in the same run:

1. one ONMF iteration against the two products it cannot avoid (``X H`` and
   ``X^T W``) on a 160,000 x 100 matrix at rank 8, in float64 and float32;
2. a whole :func:`xasviz.onmf` fit (default settings) against scikit-learn's
   ``NMF(solver="cd")`` at the same size and rank on the non-negative stack;
3. the paper's BCV scan (ranks 4-9, 20 folds) on a 400 x 400 x 100 stack, in
   seconds (the target is under 2 minutes on 2 cores).

Usage::

    python benchmarks/bench_onmf.py            # full sizes, a few minutes
    python benchmarks/bench_onmf.py --quick    # smoke test, < 30 s

``--threads N`` caps the BLAS threads (default: 1; on a shared machine more
threads than free cores make every product slower, see docs/factorization.md).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np


def best_of(fn, repeat: int) -> float:
    """Smallest wall time of ``repeat`` calls (the least disturbed one)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_iteration(m: int, n: int, r: int, dtype, repeat: int) -> dict:
    from xasviz.factorize import _onmf as K

    rng = np.random.default_rng(0)
    X = rng.standard_normal((m, n)).astype(dtype)
    Wt, Ht = K.init_random(X, r, rng)
    rn = K.row_norms2(X)
    n_it = 5

    def products():
        K._xh(X, Ht)
        K._xtw(X, Wt)

    def iterations():
        K.fit_onmf(X, Wt.copy(), Ht, max_iter=n_it, tol=0.0, rownorm2=rn)

    floor = best_of(products, repeat)
    it = best_of(iterations, repeat) / n_it
    return {"products_ms": floor * 1e3, "iteration_ms": it * 1e3, "ratio": it / floor}


def bench_whole_fit(size: int, n: int, r: int) -> dict:
    from sklearn.decomposition import NMF

    import xasviz
    from xasviz.synthetic import make_stack

    s = make_stack(size=size, n_energy=n, n_domains=r, rng=0)
    x0 = s.stack.clip(min=0.0)  # the non-negative stack both methods fit
    X = x0.values.reshape(-1, n)
    t = time.perf_counter()
    res = xasviz.onmf(x0, r, rng=0)
    t_onmf = time.perf_counter() - t
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nmf = NMF(n_components=r, solver="cd", random_state=0).fit(X)
    t_sk = time.perf_counter() - t
    return {
        "onmf_s": t_onmf,
        "onmf_restarts": int(res.attrs["n_init"]),
        "onmf_iter_kept": int(res["n_iter"]),
        "onmf_rel_err": float(res["relative_error"]),
        "sklearn_s": t_sk,
        "sklearn_iter": int(nmf.n_iter_),
        "sklearn_rel_err": float(nmf.reconstruction_err_ / np.linalg.norm(X)),
        "speedup": t_sk / t_onmf,
    }


def bench_bcv(size: int, n: int, ranks, folds: int, dtype) -> dict:
    import xasviz
    from xasviz.synthetic import make_stack

    s = make_stack(size=size, n_energy=n, n_domains=8, rng=0, snr_db=20, shift=2.0)
    diff = s.stack - s.reference
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = xasviz.bcv(diff, ranks, folds=folds, dtype=dtype, rng=0)
    return {
        "seconds": time.perf_counter() - t,
        "fits": len(ranks) * folds,
        "best_rank": int(res["best_rank"]),
        "dtype": dtype,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, < 30 s")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads")
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# xasviz ONMF benchmark  (BLAS threads {args.threads}, load {load:.2f})")
    if args.quick:
        m, size, bcv_size, ranks, folds, repeat = 20_000, 60, 60, [3, 4], 4, 2
    else:
        m, size, bcv_size, ranks, folds, repeat = 160_000, 400, 400, range(4, 10), 20, 5
    with threadpool_limits(args.threads):
        print("\n## One iteration vs the two products (rank 8)")
        print("| matrix | dtype | X H + X^T W (ms) | iteration (ms) | ratio |")
        print("|---|---|---|---|---|")
        for dt in (np.float64, np.float32):
            b = bench_iteration(m, 100, 8, dt, repeat)
            print(
                f"| {m} x 100 | {np.dtype(dt).name} | {b['products_ms']:.1f} | "
                f"{b['iteration_ms']:.1f} | {b['ratio']:.2f} |"
            )
        print("\n## Whole fit vs scikit-learn NMF(solver='cd'), rank 8")
        b = bench_whole_fit(size, 100, 8)
        print(
            "| stack | onmf (s) | restarts | sklearn cd (s) | sklearn iter | speedup |"
        )
        print("|---|---|---|---|---|---|")
        print(
            f"| {size}x{size}x100 | {b['onmf_s']:.2f} | {b['onmf_restarts']} | "
            f"{b['sklearn_s']:.2f} | {b['sklearn_iter']} | {b['speedup']:.1f}x |"
        )
        print(
            f"relative error: onmf {b['onmf_rel_err']:.4f}, "
            f"sklearn {b['sklearn_rel_err']:.4f}"
        )
        print(f"\n## BCV scan, ranks {list(ranks)}, {folds} folds")
        print("| stack | dtype | fold fits | seconds | chosen rank |")
        print("|---|---|---|---|---|")
        for dt in ("float32",) if not args.quick else ("float32", "float64"):
            b = bench_bcv(bcv_size, 100, list(ranks), folds, dt)
            print(
                f"| {bcv_size}x{bcv_size}x100 | {dt} | {b['fits']} | "
                f"{b['seconds']:.1f} | {b['best_rank']} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
