"""Rebuild ``als_stxm_fe_l23_71214078.nc`` from the original aXis2000 files.

Usage (from the repository root)::

    python data_samples/convert_als_71214078.py

It unpacks ``71214078_FigS4.tar.xz`` (the header, 123 ``.xim`` frames and the
small text files, copied byte for byte from the public repository
stetef/nano-XANES-microscopy-of-Fe) into a temporary folder, reads the stack
with :func:`xasviz.open_stack`, stores it as float32 and writes a
zlib-compressed netCDF with :func:`xasviz.save`. The values stay transmitted
intensity; convert to optical density with ``i0.xsp``.
"""

from __future__ import annotations

import argparse
import hashlib
import tarfile
import tempfile
from pathlib import Path

import numpy as np

import xasviz

HERE = Path(__file__).resolve().parent
ARCHIVE_SHA256 = "caf173e2356a3192ee44441e6acaa8610a8f27e09e52a917ba1920bc2303d05e"

CREDIT = {
    "title": "Fe L2,3-edge STXM stack 71214078, ALS beamline 11.0.2.2",
    "credit": (
        "Data by Brandy Toner and Matthew Marcus; the stack behind Figure S4 of "
        "Breier et al., Geochimica et Cosmochimica Acta (2012), hydrothermal-"
        "plume particles from the East Pacific Rise 9N. Cite that paper when "
        "the data are shown."
    ),
    "source_repository": "stetef/nano-XANES-microscopy-of-Fe",
    "source_folder": "Data/ALS_Toner/71214078_FigS4/Aligned/",
    "source_license": "MIT, copyright 2022 stetef",
    "source_archive": "71214078_FigS4.tar.xz",
    "source_archive_sha256": ARCHIVE_SHA256,
    "pixel_size_um": 0.08,
    "conversion": "data_samples/convert_als_71214078.py (xasviz.open_stack, float32)",
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_archive(archive: Path, workdir: Path):
    """The stack as the aXis2000 reader gives it from the unpacked archive."""
    with tarfile.open(archive, "r:xz") as tar:
        tar.extractall(workdir, filter="data")
    return xasviz.open_stack(workdir / "71214078_FigS4" / "71214078.hdr")


def convert(archive: Path, out: Path) -> Path:
    got = _sha256(archive)
    if got != ARCHIVE_SHA256:
        raise SystemExit(
            f"{archive} has sha256 {got}, expected {ARCHIVE_SHA256}: not the "
            "original archive."
        )
    with tempfile.TemporaryDirectory() as tmp:
        stack = read_archive(archive, Path(tmp))
    stack = stack.astype(np.float32)
    stack.name = "intensity"
    stack.attrs.update(CREDIT)
    return xasviz.save(stack, out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=HERE / CREDIT["source_archive"])
    parser.add_argument(
        "--out", type=Path, default=HERE / "als_stxm_fe_l23_71214078.nc"
    )
    args = parser.parse_args(argv)
    path = convert(args.archive, args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
