"""Run every benchmark script in this folder (``bench_*.py``).

``python benchmarks/run_all.py`` runs the full benchmarks (minutes) and prints
their tables; ``--quick`` runs each in its smoke-test mode (seconds), which is
what continuous integration does: it checks that the benchmarks still run, not
how fast, since timings on a shared 2-core machine are noise.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke-test sizes")
    parser.add_argument("names", nargs="*", help="run only these (e.g. onmf pte)")
    args = parser.parse_args()
    here = Path(__file__).resolve().parent
    scripts = sorted(here.glob("bench_*.py"))
    if args.names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.names]
    failed = []
    for script in scripts:
        cmd = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        t0 = time.perf_counter()
        sys.stdout.write(f"== {script.name} {'(quick)' if args.quick else ''}\n")
        sys.stdout.flush()
        rc = subprocess.call(cmd)
        dt = time.perf_counter() - t0
        sys.stdout.write(f"== {script.name}: exit {rc} after {dt:.1f} s\n\n")
        if rc != 0:
            failed.append(script.name)
    if failed:
        sys.stdout.write(f"FAILED: {', '.join(failed)}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
