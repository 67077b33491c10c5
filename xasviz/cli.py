"""The ``xasviz`` command: ``analyze``, ``report``, ``serve`` and ``info``.

Examples
--------
::

    xasviz analyze stack.nc --reference ref.txt --ranks 4-12 -o results.nc
    xasviz analyze data.hdr --i0 i0.xsp --ranks 2-6 --bayes -o r.nc --report r.html
    xasviz report results.nc -o report.html
    xasviz serve results.nc --port 5006
    xasviz info stack.tif --energy energies.txt
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]

logger = logging.getLogger("xasviz.cli")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``xasviz`` command."""
    p = argparse.ArgumentParser(
        prog="xasviz",
        description="Domains in 2D X-ray absorption spectroscopy image stacks.",
    )
    p.add_argument("--version", action="store_true", help="print the version")
    p.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars, warnings only"
    )
    p.add_argument(
        "--debug", action="store_true", help="debug logging and full tracebacks"
    )
    sub = p.add_subparsers(dest="command")

    a = sub.add_parser(
        "analyze",
        help="normalise, subtract a reference, BCV, ONMF, cross-checks, save",
        description="Run the whole analysis of a stack and save every result.",
    )
    _add_input_args(a)
    a.add_argument("--reference", help="reference spectrum file (eq. 1)")
    a.add_argument(
        "--reference-column", help="column of the reference file to use (by name)"
    )
    a.add_argument(
        "--normalize",
        default="endpoints",
        choices=["endpoints", "edge_step", "none"],
        help="normalisation method (default: endpoints, as in the paper); "
        "'none' for stacks already on the normalised scale",
    )
    a.add_argument("--e0", type=float, help="edge energy for edge_step normalisation")
    a.add_argument("--ranks", default="2-9", help="ranks for BCV, e.g. 4-12")
    a.add_argument("--rank", type=int, help="skip BCV and use this rank")
    a.add_argument("--folds", type=int, default=20, help="BCV folds (default 20)")
    a.add_argument(
        "--bcv-scheme",
        default="paper",
        help="BCV hold-out scheme: 'paper' (rows/cols f::folds) or 'blocks'",
    )
    a.add_argument(
        "--bcv-rule",
        default="min",
        choices=["min", "one_se", "paired_se"],
        help="rank rule",
    )
    a.add_argument(
        "--bcv-predictor",
        default="pinv",
        choices=["pinv", "onmf"],
        help="BCV prediction of the held-out block: 'pinv' (the paper's) or "
        "'onmf' (held-out factors under ONMF's constraints)",
    )
    a.add_argument("--n-init", type=int, help="ONMF restarts")
    a.add_argument(
        "--orthogonal",
        choices=["approximate", "exact"],
        default="approximate",
        help="ONMF maps as Algorithm 1 leaves them, or refined so that every "
        "pixel lies in one domain (eq. 3 held exactly)",
    )
    a.add_argument("--no-kmeans", action="store_true", help="skip k-means check")
    a.add_argument("--no-pte", action="store_true", help="skip peak-top-energy map")
    a.add_argument(
        "--pte-window",
        nargs=2,
        type=float,
        metavar=("LO", "HI"),
        help="energy window (eV) in which the PTE peak is sought",
    )
    a.add_argument(
        "--bayes", action="store_true", help="Bayesian decomposition of domains"
    )
    a.add_argument("--k-max", type=int, help="largest number of Gaussian peaks")
    a.add_argument(
        "--bayes-sweeps", type=int, help="tempering sweeps per K for --bayes"
    )
    a.add_argument(
        "--bayes-max-sweeps",
        type=int,
        help="most sweeps per K when --bayes continues a run whose free energy "
        "is not yet settled (default 4x the planned sweeps)",
    )
    a.add_argument("--jobs", type=int, default=1, help="processes for --bayes")
    a.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    a.add_argument("-o", "--output", required=True, help="results file (.nc/.zarr)")
    a.add_argument("--report", help="also write an HTML report to this path")

    r = sub.add_parser("report", help="write a standalone HTML report of results")
    r.add_argument("results", help="results file written by 'xasviz analyze'")
    r.add_argument("-o", "--output", required=True, help="HTML file to write")
    r.add_argument("--title", help="report title")

    s = sub.add_parser("serve", help="serve the linked views on 127.0.0.1")
    s.add_argument("path", help="a stack or a results file")
    s.add_argument("--energy", help="energy list for stacks that lack one")
    s.add_argument("--port", type=int, default=5006)

    i = sub.add_parser("info", help="print what a stack file holds")
    _add_input_args(i)
    return p


def _add_input_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("stack", help="stack file: .nc, .zarr, .tif, .hdr (aXis2000), .h5")
    p.add_argument("--energy", help="energy list (text) for TIFF/HDF5 stacks")
    p.add_argument("--i0", help="I0 spectrum: converts to optical density -ln(I/I0)")
    p.add_argument("--dataset", help="HDF5 path of the stack dataset")
    p.add_argument("--energy-dataset", help="HDF5 path of the energy axis")


def _open(args):
    from .io import open_stack

    kwargs = {}
    if args.energy:
        kwargs["energy"] = args.energy
    if args.i0:
        kwargs["i0"] = args.i0
    if args.dataset:
        kwargs["dataset"] = args.dataset
    if getattr(args, "energy_dataset", None):
        kwargs["energy_dataset"] = args.energy_dataset
    return open_stack(args.stack, **kwargs)


def _cmd_analyze(args) -> int:
    from . import save
    from .io import open_spectrum
    from .pipeline import analyze

    stack = _open(args)
    reference = None
    if args.reference:
        reference = open_spectrum(args.reference, column=args.reference_column)
    onmf_kwargs = {"orthogonal": args.orthogonal}
    if args.n_init:
        onmf_kwargs["n_init"] = args.n_init
    normalize_kwargs = {}
    if args.e0 is not None:
        normalize_kwargs["e0"] = args.e0
    bayes_kwargs = {"n_jobs": args.jobs}
    if args.k_max is not None:
        bayes_kwargs["k_max"] = args.k_max
    if args.bayes_sweeps is not None:
        bayes_kwargs["n_sweeps"] = args.bayes_sweeps
    if args.bayes_max_sweeps is not None:
        bayes_kwargs["max_sweeps"] = args.bayes_max_sweeps
    source = {
        "source_file": Path(args.stack).name,
        "source_sha256": stack.attrs.get("sha256", ""),
        "i0_file": Path(args.i0).name if args.i0 else "none",
        "reference_file": Path(args.reference).name if args.reference else "none",
    }
    results = analyze(
        stack,
        reference,
        normalization=None if args.normalize == "none" else args.normalize,
        normalize_kwargs=normalize_kwargs,
        ranks=args.ranks,
        rank=args.rank,
        folds=args.folds,
        bcv_scheme=args.bcv_scheme,
        bcv_rule=args.bcv_rule,
        bcv_predictor=args.bcv_predictor,
        onmf_kwargs=onmf_kwargs,
        kmeans=not args.no_kmeans,
        pte=not args.no_pte,
        pte_kwargs={"window": tuple(args.pte_window)} if args.pte_window else None,
        bayes=args.bayes,
        bayes_kwargs=bayes_kwargs,
        rng=args.seed,
        progress=not args.quiet,
        source=source,
    )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    save(results, out)
    logger.info("results saved to %s", out)
    _summary(results)
    if args.report:
        from .report import report

        rep = Path(args.report)
        rep.parent.mkdir(parents=True, exist_ok=True)
        report(results, rep)
        logger.info("report written to %s", rep)
    return 0


def _summary(results) -> None:
    """One readable paragraph on stdout: what was found."""
    lines = []
    if "bcv" in results:
        b = results["bcv"].to_dataset()
        curve = ", ".join(
            f"{int(r)}: {float(e):.4g}"
            for r, e in zip(b["rank"].values, b["mean_error"].values)
        )
        lines.append(f"BCV mean error by rank: {curve}")
        if "best_rank_onmf" in b:
            lines.append(
                f"BCV best rank by predictor: pinv (paper) {int(b['best_rank_pinv'])}"
                f", constrained ONMF {int(b['best_rank_onmf'])}"
            )
    lines.append(f"chosen rank: {results.attrs.get('chosen_rank')}")
    if "onmf" in results:
        o = results["onmf"].to_dataset()
        lines.append(
            f"ONMF: relative error {float(o['relative_error']):.4g}, "
            f"orthogonality {float(o['orthogonality']):.3g}, "
            f"{int(o['n_iter'])} iterations"
        )
    if "correlation_kmeans" in results:
        c = results["correlation_kmeans"].to_dataset()
        vals = c["matched_correlation"].values
        lines.append(
            "ONMF vs k-means matched cosine: " + ", ".join(f"{v:.2f}" for v in vals)
        )
    if "bayes" in results:
        bk = results["bayes"].to_dataset()
        lines.append(f"Bayes: chosen K per domain {bk['k'].values.tolist()}")
    sys.stdout.write("\n".join(lines) + "\n")


def _cmd_report(args) -> int:
    from .io import load
    from .report import report

    results = load(args.results)
    report(results, args.output, title=args.title)
    logger.info("report written to %s", args.output)
    return 0


def _cmd_serve(args) -> int:
    from .io import load, open_stack
    from .views import serve

    path = Path(args.path)
    try:
        obj = load(path)
    except Exception:  # not a results file: treat it as a stack
        kwargs = {"energy": args.energy} if args.energy else {}
        obj = open_stack(path, **kwargs)
    serve(obj, port=args.port, address="127.0.0.1", show=False, threaded=False)
    return 0


def _cmd_info(args) -> int:
    stack = _open(args)
    e = stack["energy"].values
    sys.stdout.write(
        f"{args.stack}: {stack.sizes['y']} x {stack.sizes['x']} pixels, "
        f"{e.size} energies from {e[0]:.3f} to {e[-1]:.3f} eV, dtype {stack.dtype}\n"
    )
    for k, v in stack.attrs.items():
        sys.stdout.write(f"  {k}: {str(v)[:100]}\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``xasviz`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        sys.stdout.write(f"xasviz {__version__}\n")
        return 0
    if not args.command:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG
        if args.debug
        else (logging.WARNING if args.quiet else logging.INFO),
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    handler = {
        "analyze": _cmd_analyze,
        "report": _cmd_report,
        "serve": _cmd_serve,
        "info": _cmd_info,
    }[args.command]
    try:
        return handler(args)
    except (ValueError, OSError, KeyError) as exc:
        # Bad input reaches the user as one clear line, not a traceback; the
        # full traceback stays available with --debug.
        if args.debug:
            raise
        sys.stderr.write(f"xasviz {args.command}: error: {exc}\n")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
