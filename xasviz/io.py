"""Reading stacks and spectra from beamline files, saving and loading results.

Readers return a validated stack (dims ``("y", "x", "energy")``, energy in eV)
or a spectrum (dim ``energy``) with provenance attrs: ``source_file`` (the file
name), ``source_format``, ``sha256`` (checksum of the main file) and ``units``.

Supported stack formats (:func:`open_stack`)

===========================  ==============================================
format                       files
===========================  ==============================================
netCDF (xasviz, CF)          ``.nc``, ``.h5`` / ``.nc4`` written with netCDF-4
zarr                         ``.zarr`` folder
multi-page TIFF              ``.tif`` / ``.tiff``, one page per energy, plus
                             ``energy=`` (list, array or text file)
aXis2000 / ALS STXM          ``.hdr`` header plus ``<stem>_aNNN.xim`` frames
HDF5 / NeXus                 ``.h5`` / ``.hdf5`` / ``.nxs`` with ``dataset=``
===========================  ==============================================

The format is chosen from the extension *and* checked against the first bytes
of the file, so a file that is not what its name says is refused with a clear
message rather than a traceback from deep inside a library.

:func:`save` and :func:`load` store DataArray, Dataset and DataTree objects as
zlib-compressed netCDF-4 (engine h5netcdf) or zarr, losslessly: attrs that
netCDF cannot hold (bool, None, dict, ...) are converted as docs/results.md
prescribes, noted in ``xasviz_converted_attrs`` and restored by :func:`load`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ._errors import StackValidationError
from ._utils import to_json
from ._validation import DIMS, check_energy_axis, validate_stack

__all__ = [
    "as_stack",
    "open_stack",
    "open_spectrum",
    "save",
    "load",
    "sample_path",
    "open_sample",
    "SAMPLES",
]

logger = logging.getLogger(__name__)

#: Bundled sample stacks (name -> file in ``data_samples/``).
SAMPLES = {"als_stxm_fe_l23_71214078": "als_stxm_fe_l23_71214078.nc"}

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_NETCDF3_MAGICS = (b"CDF\x01", b"CDF\x02", b"CDF\x05")
_KIND_ATTR = "xasviz_kind"
_NAME_ATTR = "xasviz_dataarray_name"
_CONVERTED_ATTR = "xasviz_converted_attrs"
_UNNAMED = "__xarray_dataarray_variable__"


# ---------------------------------------------------------------------------
# small helpers


def _sha256(path: Path) -> str:
    """Hex SHA-256 of a file, or of every file of a folder in sorted order."""
    h = hashlib.sha256()
    if path.is_dir():
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            h.update(p.relative_to(path).as_posix().encode())
            h.update(_sha256(p).encode())
        return h.hexdigest()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _head(path: Path, n: int = 512) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _sniff(path: Path) -> str:
    """What the content of ``path`` looks like, whatever its name says."""
    if path.is_dir():
        names = {p.name for p in path.iterdir()}
        if names & {"zarr.json", ".zgroup", ".zarray", ".zattrs"}:
            return "zarr"
        return "folder"
    head = _head(path)
    if not head:
        return "empty"
    if head.startswith(_HDF5_MAGIC):
        return "hdf5"
    if head.startswith(_NETCDF3_MAGICS):
        return "netcdf3"
    if head.startswith(_TIFF_MAGICS):
        return "tiff"
    if b"\x00" in head:
        return "binary"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the end of the sample is still text.
        try:
            head[:-4].decode("utf-8")
        except UnicodeDecodeError:
            return "binary"
    return "text"


_EXPECTED = {
    ".nc": ("hdf5", "netcdf3"),
    ".nc4": ("hdf5",),
    ".cdf": ("netcdf3", "hdf5"),
    ".h5": ("hdf5",),
    ".hdf5": ("hdf5",),
    ".hdf": ("hdf5",),
    ".nxs": ("hdf5",),
    ".zarr": ("zarr",),
    ".tif": ("tiff",),
    ".tiff": ("tiff",),
    ".hdr": ("text",),
}

_DESCRIBE = {
    "hdf5": "an HDF5 / netCDF-4 file",
    "netcdf3": "a netCDF-3 file",
    "tiff": "a TIFF image",
    "zarr": "a zarr store",
    "text": "plain text",
    "binary": "binary data of an unknown kind",
    "empty": "an empty file",
    "folder": "a folder that is not a zarr store",
}


def _check_content(path: Path, ext: str, found: str) -> None:
    expected = _EXPECTED[ext]
    if found in expected:
        return
    want = " or ".join(_DESCRIBE[e] for e in expected)
    raise StackValidationError(
        f"xasviz expected {path.name!r} to be {want} (from its extension or "
        f"engine=), but its content is {_DESCRIBE[found]}. The file may be empty, "
        "mis-named or of another format: check it, or rename it after what it "
        "really holds."
    )


def _resolve(path) -> Path:
    p = Path(os.fspath(path)).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"No such file or folder: {str(p)!r}.")
    return p


def _provenance(out: xr.DataArray, path: Path, fmt: str, **extra) -> xr.DataArray:
    attrs = dict(out.attrs)
    attrs.update(
        source_file=path.name,
        source_format=fmt,
        sha256=_sha256(path),
    )
    attrs.update(extra)
    out.attrs = attrs
    return out


def _energy_coord_attrs(da: xr.DataArray) -> xr.DataArray:
    e_attrs = {"units": "eV", "long_name": "photon energy"}
    e_attrs.update(da["energy"].attrs)
    return da.assign_coords(energy=da["energy"].assign_attrs(e_attrs))


def _read_number_text(path: Path) -> np.ndarray:
    """A numeric table from a text file: whitespace or commas, ``#`` comments."""
    table, _ = _spectrum_table(
        path.read_text(errors="replace").splitlines(), path, allow_header=False
    )
    return table


def _energy_from(energy, n_frames: int, source: str) -> np.ndarray:
    """Energies given as a text file path or an array, checked against frames."""
    if energy is None:
        raise StackValidationError(
            f"{source} carries no energy axis. Pass energy= as a list of "
            "energies in eV or the path of a text file with one energy per line."
        )
    if isinstance(energy, (str, os.PathLike)):
        table = _read_number_text(_resolve(energy))
        # One energy per line, or one row; a table takes its first column.
        e = table.ravel() if 1 in table.shape else table[:, 0]
        if table.ndim == 2 and 1 not in table.shape:
            logger.info("energy file has %d columns; using the first", table.shape[1])
    else:
        e = np.asarray(energy, dtype=float).ravel()
    if e.size != n_frames:
        raise StackValidationError(
            f"The energy list has {e.size} values but {source} has {n_frames} "
            "frames; each frame needs exactly one energy. Check that the list "
            "belongs to this stack."
        )
    return check_energy_axis(e, what=f"energy axis of {source}")


# ---------------------------------------------------------------------------
# as_stack


def as_stack(
    array,
    *,
    energy,
    x=None,
    y=None,
    dims: tuple[str, str, str] = DIMS,
    attrs: dict | None = None,
) -> xr.DataArray:
    """Wrap a numpy or dask array into a validated stack.

    Parameters
    ----------
    array : numpy.ndarray or dask.array.Array, 3-D
        Intensities or absorbances; its axes are named by ``dims``. The result
        shares memory with a numpy input (no copy), as xarray does.
    energy : array-like, shape (n_energy,)
        Photon energy of every frame in eV, strictly increasing.
    x, y : array-like, optional
        Pixel positions (e.g. in um); pixel indices when omitted.
    dims : tuple of str, default ("y", "x", "energy")
        Names of the axes of ``array`` in order.
    attrs : dict, optional
        Attrs of the result (units, provenance).

    Returns
    -------
    xarray.DataArray, dims ("y", "x", "energy")

    Raises
    ------
    StackValidationError
        When the array is not 3-D, ``dims`` are not y, x, energy, or a
        coordinate has the wrong length.
    """
    dims = tuple(dims)
    if set(dims) != set(DIMS) or len(dims) != 3:
        raise StackValidationError(
            f"dims must name the axes of the array with 'y', 'x' and 'energy' "
            f"in some order; got {dims}."
        )
    shape = getattr(array, "shape", None)
    if shape is None:
        array = np.asarray(array)
        shape = array.shape
    if len(shape) != 3:
        raise StackValidationError(
            f"A stack needs a 3-D array (y, x, energy); got shape {tuple(shape)}."
        )
    sizes = dict(zip(dims, shape, strict=True))
    coords = {}
    for name, values in (("energy", energy), ("x", x), ("y", y)):
        if values is None:
            continue
        values = np.asarray(values)
        if values.shape != (sizes[name],):
            raise StackValidationError(
                f"{name} has shape {values.shape} but the array has "
                f"{sizes[name]} positions along {name!r} (axis "
                f"{dims.index(name)} of shape {tuple(shape)}). Pass dims= if "
                "the axes are in another order."
            )
        coords[name] = values
    da = xr.DataArray(array, dims=dims, coords=coords, attrs=dict(attrs or {}))
    out = validate_stack(da)
    return _energy_coord_attrs(out)


# ---------------------------------------------------------------------------
# open_stack


def open_stack(
    path,
    *,
    energy=None,
    i0=None,
    dataset: str | None = None,
    energy_dataset: str | None = None,
    engine: str | None = None,
    energy_axis: int | None = None,
    chunks=None,
) -> xr.DataArray:
    """Read a spectral image stack from a file.

    Parameters
    ----------
    path : str or path-like
        The stack file (see the module docstring for formats). For aXis2000
        stacks pass the ``.hdr`` header; the ``.xim`` frames must sit next to
        it.
    energy : array-like or path, optional
        Energies in eV, one per frame: required for TIFF, optional for HDF5
        (instead of ``energy_dataset``).
    i0 : path or xarray.DataArray (dim energy), optional
        Incident intensity; when given the stack is converted to optical
        density ``-ln(I / I0)`` by :func:`xasviz.to_optical_density`. A path is
        read with :func:`open_spectrum` (e.g. an aXis2000 ``.xsp`` file).
        Pixels with a non-positive intensity at some energy are masked with a
        DataQualityWarning; a non-positive I0 is an error.
    dataset : str, optional
        HDF5 path of the 3-D data (HDF5/NeXus files; also picks the variable
        of a multi-variable netCDF/zarr Dataset).
    energy_dataset : str, optional
        HDF5 path of the 1-D energy axis.
    engine : {"netcdf", "zarr", "tiff", "axis2000", "hdf5"}, optional
        Force the reader instead of choosing it by extension. The content is
        still checked.
    energy_axis : int, optional
        Axis of the HDF5 data that runs over energy; by default the axis whose
        length matches the energy axis (the first such axis when several do).
    chunks : dict or "auto", optional
        netCDF/zarr only: open lazily with dask chunks instead of reading into
        memory.

    Returns
    -------
    xarray.DataArray, dims ("y", "x", "energy")
        Validated stack with coords ``energy`` (eV), ``x``, ``y`` and attrs
        ``source_file``, ``source_format``, ``sha256``, ``units``. Stacks read
        back from netCDF/zarr keep the provenance attrs they were saved with
        (so a converted stack still names its beamline file); only missing
        ones are filled in.

    Raises
    ------
    FileNotFoundError
        When the file (or an aXis2000 frame) does not exist.
    StackValidationError
        When the file is truncated, is not what its extension says, or its
        energies do not match its frames.
    """
    p = _resolve(path)
    kind = engine or _format_from_extension(p)
    readers = {
        "netcdf": _open_netcdf_stack,
        "zarr": _open_netcdf_stack,
        "tiff": _open_tiff,
        "axis2000": _open_axis,
        "hdf5": _open_hdf5_or_netcdf,
    }
    if kind not in readers:
        raise ValueError(f"engine must be one of {sorted(readers)}; got {kind!r}.")
    out = readers[kind](
        p,
        energy=energy,
        dataset=dataset,
        energy_dataset=energy_dataset,
        energy_axis=energy_axis,
        chunks=chunks,
        kind=kind,
    )
    out = _energy_coord_attrs(out)
    if i0 is not None:
        from .preprocess import to_optical_density

        if not isinstance(i0, xr.DataArray):
            i0 = open_spectrum(i0)
        out = to_optical_density(out, i0)
    return out


def _format_from_extension(p: Path) -> str:
    ext = p.suffix.lower()
    if p.is_dir():
        if ext == ".zarr" or _sniff(p) == "zarr":
            return "zarr"
        raise StackValidationError(
            f"{p.name!r} is a folder but not a zarr store (no zarr.json or "
            ".zgroup inside). Pass a file, or a .zarr folder written by "
            "xasviz.save."
        )
    table = {
        ".nc": "netcdf",
        ".nc4": "netcdf",
        ".cdf": "netcdf",
        ".h5": "hdf5",
        ".hdf5": "hdf5",
        ".hdf": "hdf5",
        ".nxs": "hdf5",
        ".tif": "tiff",
        ".tiff": "tiff",
        ".hdr": "axis2000",
    }
    if ext == ".xim":
        raise StackValidationError(
            f"{p.name!r} is a single aXis2000 frame; open the stack through its "
            "header instead: xasviz.open_stack('<stem>.hdr')."
        )
    if ext not in table:
        raise StackValidationError(
            f"xasviz cannot tell the format of {p.name!r} from its extension "
            f"{ext!r}. Known: {', '.join(sorted(table))}, .zarr; or pass "
            "engine='netcdf' | 'zarr' | 'tiff' | 'axis2000' | 'hdf5'."
        )
    return table[ext]


def _pick_variable(ds: xr.Dataset, dataset: str | None, name: str) -> xr.DataArray:
    if dataset is not None:
        if dataset not in ds.data_vars:
            raise StackValidationError(
                f"{name!r} has no variable {dataset!r}; it holds "
                f"{sorted(map(str, ds.data_vars))}."
            )
        return ds[dataset]
    cubes = [v for v in ds.data_vars if set(ds[v].dims) == set(DIMS)]
    if len(cubes) == 1:
        return ds[cubes[0]]
    raise StackValidationError(
        f"{name!r} holds {len(cubes)} variables with dims (y, x, energy) "
        f"({sorted(map(str, cubes))}); name the one to read with dataset=."
    )


def _open_netcdf_stack(p: Path, *, dataset, chunks, kind, **_) -> xr.DataArray:
    obj = load(p, chunks=chunks, engine="zarr" if kind == "zarr" else None)
    if isinstance(obj, xr.DataTree):
        raise StackValidationError(
            f"{p.name!r} holds a DataTree (a whole analysis); read it with "
            "xasviz.load(path) and take the stack from its '/input' group."
        )
    da = obj if isinstance(obj, xr.DataArray) else _pick_variable(obj, dataset, p.name)
    out = validate_stack(da, name=p.name)
    attrs = dict(out.attrs)
    attrs.setdefault("source_file", p.name)
    attrs.setdefault("source_format", kind)
    attrs.setdefault("sha256", _sha256(p))
    out.attrs = attrs
    return out


def _open_hdf5_or_netcdf(p: Path, *, dataset, **kw) -> xr.DataArray:
    """``.h5`` files are netCDF-4 when written so, plain HDF5 otherwise."""
    _check_content(
        p, p.suffix.lower() if p.suffix.lower() in _EXPECTED else ".h5", _sniff(p)
    )
    if dataset is None and _is_netcdf4(p):
        return _open_netcdf_stack(p, dataset=None, **{**kw, "kind": "netcdf"})
    return _open_hdf5(p, dataset=dataset, **kw)


def _is_netcdf4(p: Path) -> bool:
    import h5py

    with _h5_file(p) as f:
        if "_NCProperties" in f.attrs or _KIND_ATTR in f.attrs:
            return True
        found = []

        def visit(_, obj):
            if isinstance(obj, h5py.Dataset) and obj.attrs.get("CLASS") == (
                b"DIMENSION_SCALE"
            ):
                found.append(obj)
                return True
            return None

        f.visititems(visit)
        return bool(found)


def _h5_file(p: Path):
    import h5py

    try:
        return h5py.File(p, "r")
    except OSError as err:
        raise StackValidationError(
            f"{p.name!r} ({p.stat().st_size} bytes) could not be opened as "
            f"HDF5: {err}. The file is probably truncated (an interrupted copy "
            "or write); copy it again."
        ) from err


def _h5_listing(f) -> str:
    import h5py

    items = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            items.append(f"{name} {obj.shape}")

    f.visititems(visit)
    return ", ".join(items) if items else "(no datasets)"


def _open_hdf5(
    p: Path, *, dataset, energy, energy_dataset, energy_axis, **_
) -> xr.DataArray:
    import h5py

    with _h5_file(p) as f:
        if dataset is None:
            cubes = []
            f.visititems(
                lambda n, o: (
                    cubes.append(n)
                    if isinstance(o, h5py.Dataset) and o.ndim == 3
                    else None
                )
            )
            if len(cubes) != 1:
                raise StackValidationError(
                    f"Name the 3-D data of {p.name!r} with dataset=; it holds "
                    f"{len(cubes)} 3-D datasets. Datasets: {_h5_listing(f)}."
                )
            dataset = cubes[0]
            logger.info("%s: using the only 3-D dataset %r", p.name, dataset)
        data = _h5_dataset(f, dataset, p)
        if data.ndim != 3:
            raise StackValidationError(
                f"{dataset!r} in {p.name!r} has shape {data.shape}; a stack needs "
                "3 dimensions (energy and two pixel axes)."
            )
        if energy_dataset is not None:
            if energy is not None:
                raise StackValidationError(
                    "Pass either energy= or energy_dataset=, not both."
                )
            energy = np.asarray(_h5_dataset(f, energy_dataset, p)[()], float)
        arr = np.asarray(data[()])
        units = data.attrs.get("units", "")
    if energy is None:
        raise StackValidationError(
            f"{p.name!r} needs an energy axis: pass energy_dataset= (the HDF5 "
            "path of the energies) or energy= (values in eV)."
        )
    e_len = (
        np.asarray(energy).size if not isinstance(energy, (str, os.PathLike)) else None
    )
    axis = _energy_axis(arr.shape, e_len, energy_axis, p.name)
    arr = np.moveaxis(arr, axis, -1)
    e = _energy_from(energy, arr.shape[-1], f"{dataset!r} in {p.name!r}")
    out = as_stack(arr, energy=e)
    if isinstance(units, bytes):
        units = units.decode(errors="replace")
    return _provenance(
        out, p, "hdf5", source_dataset=dataset, units=str(units) or "unknown"
    )


def _h5_dataset(f, name: str, p: Path):
    import h5py

    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset):
        raise StackValidationError(
            f"{p.name!r} has no dataset {name!r}. Datasets that exist: "
            f"{_h5_listing(f)}."
        )
    return obj


def _energy_axis(shape, e_len, energy_axis, name) -> int:
    if energy_axis is not None:
        if not -3 <= energy_axis < 3:
            raise StackValidationError(
                f"energy_axis must be 0, 1 or 2; got {energy_axis!r}."
            )
        return energy_axis % 3
    if e_len is None:
        return 0
    matches = [k for k, n in enumerate(shape) if n == e_len]
    if not matches:
        raise StackValidationError(
            f"The energy list has {e_len} values but no axis of the data in "
            f"{name!r} (shape {tuple(shape)}) has that length; each frame needs "
            "exactly one energy."
        )
    if len(matches) > 1:
        logger.info(
            "%s: axes %s all match %d energies; taking axis %d as energy "
            "(pass energy_axis= to choose)",
            name,
            matches,
            e_len,
            matches[0],
        )
    return matches[0]


def _open_tiff(p: Path, *, energy, **_) -> xr.DataArray:
    import tifffile

    _check_content(p, ".tif", _sniff(p))
    try:
        arr = tifffile.imread(p)
    except Exception as err:  # tifffile raises many types on damaged files
        raise StackValidationError(
            f"{p.name!r} starts like a TIFF but could not be read ({err}). It is "
            "probably truncated or damaged; copy it again."
        ) from err
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise StackValidationError(
            f"{p.name!r} holds an image of shape {arr.shape}; xasviz expects one "
            "grey-level page per energy (frames, rows, columns). Colour or "
            "multi-channel TIFFs are not stacks."
        )
    e = _energy_from(energy, arr.shape[0], repr(p.name))
    original = arr.dtype
    if original.kind in "iub":
        # 8- and 16-bit counts are exact in float32; wider integers need 64.
        arr = arr.astype(np.float32 if original.itemsize <= 2 else np.float64)
    out = as_stack(np.moveaxis(arr, 0, -1), energy=e)
    return _provenance(out, p, "tiff", units="counts", original_dtype=str(original))


# ---------------------------------------------------------------------------
# aXis2000 / ALS STXM


_AXIS_RE = {
    name: re.compile(name + r"\s*=\s*\{", re.S)
    for name in ("StackAxis", "PAxis", "QAxis")
}
_POINTS_RE = re.compile(r"Points\s*=\s*\(([^)]*)\)", re.S)


def _hdr_axis(text: str, name: str, p: Path) -> tuple[np.ndarray, str]:
    """Values and unit of the ``Points = (n, v1, ..., vn)`` list of one axis."""
    m = _AXIS_RE[name].search(text)
    pts = _POINTS_RE.search(text, m.end()) if m else None
    if m is None or pts is None:
        raise StackValidationError(
            f"The aXis2000 header {p.name!r} has no '{name} = {{ ... Points = "
            "(n, ...) }' entry; it is not a stack header or it is truncated."
        )
    unit = re.search(r'Unit\s*=\s*"([^"]*)"', text[m.end() : pts.start()])
    try:
        nums = [float(t) for t in pts.group(1).replace(",", " ").split()]
    except ValueError as err:
        raise StackValidationError(
            f"The {name} points in {p.name!r} are not all numbers."
        ) from err
    n = int(nums[0]) if nums else -1
    values = np.array(nums[1:])
    if n != values.size:
        raise StackValidationError(
            f"The {name} of {p.name!r} announces {n} points but lists "
            f"{values.size}; the header is truncated or damaged."
        )
    return values, unit.group(1) if unit else ""


def _frame_paths(p: Path, n: int) -> list[Path]:
    stem = p.with_suffix("")
    paths, missing = [], []
    for i in range(n):
        cands = [Path(f"{stem}_a{i:03d}.xim"), Path(f"{stem}_a{i:04d}.xim")]
        found = next((c for c in cands if c.is_file()), None)
        if found is None:
            missing.append(cands[0].name)
        paths.append(found)
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise StackValidationError(
            f"The header {p.name!r} lists {n} energies but {len(missing)} of the "
            f"frames are missing next to it: {shown}. Copy all the "
            f"'{stem.name}_aNNN.xim' files into {str(p.parent.name)!r}."
        )
    return paths


def _read_xim(path: Path, ny: int, nx: int) -> np.ndarray:
    """One ``.xim`` frame: whitespace text, rows are y, columns are x."""
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    try:
        values = np.array(" ".join(lines).split(), dtype=np.float64)
    except ValueError as err:
        raise StackValidationError(
            f"The frame {path.name!r} holds text that is not a number; it is "
            "damaged or not an aXis2000 .xim frame."
        ) from err
    if len(lines) != ny or values.size != ny * nx:
        ncol = values.size // max(len(lines), 1)
        raise StackValidationError(
            f"The frame {path.name!r} has {len(lines)} rows and about {ncol} "
            f"columns ({values.size} values); the header says {ny} rows (QAxis, "
            f"y) by {nx} columns (PAxis, x). The frame is truncated or belongs "
            "to another stack."
        )
    return values.reshape(ny, nx)


def _open_axis(p: Path, **_) -> xr.DataArray:
    _check_content(p, ".hdr", _sniff(p))
    text = p.read_text(errors="replace")
    e, e_unit = _hdr_axis(text, "StackAxis", p)
    x, x_unit = _hdr_axis(text, "PAxis", p)
    y, y_unit = _hdr_axis(text, "QAxis", p)
    e = check_energy_axis(e, what=f"energy axis (StackAxis) of {p.name!r}")
    frames = _frame_paths(p, e.size)
    cube = np.empty((y.size, x.size, e.size))
    frame_hash = hashlib.sha256()
    for k, fp in enumerate(frames):
        cube[:, :, k] = _read_xim(fp, y.size, x.size)
        frame_hash.update(fp.read_bytes())
    out = as_stack(cube, energy=e, x=x, y=y)
    out = out.assign_coords(
        x=out["x"].assign_attrs(units=x_unit or "um", long_name="sample x"),
        y=out["y"].assign_attrs(units=y_unit or "um", long_name="sample y"),
    )
    stamp = re.search(r'\bTime\s*=\s*"([^"]*)"', text)
    return _provenance(
        out,
        p,
        "axis2000",
        units="counts",
        quantity="transmitted intensity",
        sha256_frames=frame_hash.hexdigest(),
        n_frames=len(frames),
        acquired=stamp.group(1) if stamp else "unknown",
    )


# ---------------------------------------------------------------------------
# spectra


def open_spectrum(path, *, column: int | str | None = None) -> xr.DataArray:
    """Read one spectrum from a text file.

    Parameters
    ----------
    path : str or path-like
        Two or more numeric columns separated by whitespace or commas, energy
        (eV) first; ``#`` starts a comment. Recognised headers: XDI
        (``# XDI/1.0`` with ``# Column.N: name [units]`` lines), Athena
        ``.nor``/``.xmu`` (last comment line names the columns, e.g.
        ``#  e  norm  nbkg ...``) and a first non-numeric line of column
        names (CSV). aXis2000 ``.xsp`` and ``.r``/``.t`` files are plain
        two-column files.
    column : int or str, optional
        Column to read, by 0-based index in the file (0 is the energy) or by
        name. Default: ``norm`` when a column has that name, else ``mu`` or
        ``mutrans``/``mufluor``, else column 1.

    Returns
    -------
    xarray.DataArray, dim "energy"
        Named after the column, energies strictly increasing. A file that runs
        from high to low energy is reversed and says so in attrs
        (``reversed_on_read = 1``).

    Raises
    ------
    StackValidationError
        Unknown column, non-numeric rows, energies that repeat or go back and
        forth, NaN values.
    """
    p = _resolve(path)
    if _sniff(p) != "text":
        raise StackValidationError(
            f"{p.name!r} is not a text file (its content is "
            f"{_DESCRIBE[_sniff(p)]}); spectra are read from column text files."
        )
    lines = p.read_text(errors="replace").splitlines()
    fmt, names, e_unit = _spectrum_header(lines)
    table, header_row = _spectrum_table(lines, p)
    if header_row is not None:
        names, fmt = header_row, "csv"
    ncol = table.shape[1]
    if ncol < 2:
        raise StackValidationError(
            f"{p.name!r} has one column; a spectrum needs energy and value columns."
        )
    if names is not None and len(names) != ncol:
        logger.info(
            "%s: %d column names for %d columns; names ignored",
            p.name,
            len(names),
            ncol,
        )
        names = None
    idx = _pick_column(column, names, ncol, p)
    energy = table[:, 0]
    if e_unit.lower() == "kev":
        energy = energy * 1000.0
    values = table[:, idx]
    attrs: dict[str, Any] = {}
    if energy.size >= 2 and np.all(np.diff(energy) < 0):
        energy, values = energy[::-1], values[::-1]
        attrs["reversed_on_read"] = 1
    check_energy_axis(energy, what=f"energy column of {p.name!r}")
    name = names[idx] if names else f"column_{idx}"
    da = xr.DataArray(
        values.copy(), dims="energy", coords={"energy": energy.copy()}, name=name
    )
    if not np.all(np.isfinite(values)):
        raise StackValidationError(
            f"Column {name!r} of {p.name!r} holds "
            f"{int((~np.isfinite(values)).sum())} NaN or inf values; remove or "
            "repair those rows."
        )
    da = _energy_coord_attrs(da)
    attrs.update(column=name, column_index=idx)
    da.attrs = attrs
    return _provenance(da, p, fmt)


def _spectrum_header(lines: list[str]) -> tuple[str, list[str] | None, str]:
    """Format, column names and energy unit from the comment lines."""
    comments = []
    for line in lines:
        s = line.strip()
        if not s:
            continue
        if not s.startswith("#"):
            break
        comments.append(s.lstrip("#").strip())
    if lines and lines[0].strip().upper().startswith("# XDI/"):
        cols: dict[int, str] = {}
        e_unit = ""
        for c in comments:
            m = re.match(r"Column\.(\d+)\s*:\s*(\S+)\s*(\S*)", c, re.I)
            if m:
                cols[int(m.group(1))] = m.group(2)
                if int(m.group(1)) == 1:
                    e_unit = m.group(3)
        names = [cols[k] for k in sorted(cols)] if cols else None
        return "xdi", names, e_unit
    # Athena and many others: the last comment line names the columns.
    for c in reversed(comments):
        tokens = c.split()
        if not tokens or set(c) <= set("-=_ "):
            continue
        if all(_is_name(t) for t in tokens) and len(tokens) >= 2:
            fmt = (
                "athena"
                if "norm" in tokens or "athena" in " ".join(comments).lower()
                else "columns"
            )
            return fmt, tokens, ""
        break
    return "columns", None, ""


def _is_name(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return bool(re.match(r"^[A-Za-z_][\w.()/-]*$", token))
    return False


def _spectrum_table(lines, p: Path, *, allow_header: bool = True):
    """Numeric rows of a column text file and its header row of names, if any.

    With ``allow_header`` a first non-comment line made only of names (a CSV
    header) is returned as the header instead of being refused.
    """
    rows, header = [], None
    for k, line in enumerate(lines, 1):
        s = line.split("#", 1)[0].strip()
        if not s:
            continue
        tokens = [t for t in re.split(r"[,\s;]+", s) if t]
        try:
            rows.append([float(t) for t in tokens])
        except ValueError as err:
            names_only = all(_is_name(t) for t in tokens)
            if allow_header and not rows and header is None and names_only:
                header = tokens
                continue
            raise StackValidationError(
                f"Line {k} of {p.name!r} is not numeric: {s[:60]!r}. Comment it "
                "out with '#' or remove it."
            ) from err
    if not rows:
        raise StackValidationError(f"{p.name!r} holds no numeric rows.")
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise StackValidationError(
            f"The rows of {p.name!r} have different numbers of columns "
            f"({sorted(widths)}); the file is truncated or damaged."
        )
    return np.array(rows), header


def _pick_column(column, names, ncol: int, p: Path) -> int:
    if column is None:
        if names:
            lower = [n.lower() for n in names]
            for want in ("norm", "mu", "mutrans", "mufluor", "flat"):
                if want in lower:
                    return lower.index(want)
        return 1
    if isinstance(column, str):
        if not names or column not in names:
            raise StackValidationError(
                f"{p.name!r} has no column named {column!r}; its columns are "
                f"{names if names else f'unnamed (use an index 1..{ncol - 1})'}."
            )
        return names.index(column)
    if not isinstance(column, (int, np.integer)) or not 1 <= column < ncol:
        raise StackValidationError(
            f"column must be a name or an index 1..{ncol - 1} (0 is the energy) "
            f"for {p.name!r}; got {column!r}."
        )
    return int(column)


# ---------------------------------------------------------------------------
# save / load


def _sanitize_value(value) -> tuple[Any, str | None]:
    """A netCDF-safe attr value and the name of the conversion (None if kept)."""
    if isinstance(value, (bool, np.bool_)):
        return int(value), "bool"
    if value is None:
        return "none", "none"
    if isinstance(value, np.generic):
        return value.item(), None
    if isinstance(value, (str, int, float)):
        return value, None
    if isinstance(value, (datetime, date)):
        return value.isoformat(), "isoformat"
    if isinstance(value, dict):
        return to_json(value), "json"
    if isinstance(value, (list, tuple, np.ndarray)):
        arr = np.asarray(value) if not isinstance(value, np.ndarray) else value
        numeric = arr.dtype.kind in "iuf" and arr.ndim == 1 and arr.size > 0
        if numeric:
            return arr, None
        return to_json(value), "json"
    return str(value), "str"


def _sanitize_attrs(attrs: dict) -> dict:
    out, notes = {}, {}
    for key, value in attrs.items():
        if key == _CONVERTED_ATTR:
            continue
        out[key], how = _sanitize_value(value)
        if how is not None:
            notes[key] = how
    if notes:
        out[_CONVERTED_ATTR] = json.dumps(notes, sort_keys=True)
    return out


def _restore_attrs(attrs: dict) -> dict:
    notes = attrs.get(_CONVERTED_ATTR)
    if notes is None:
        return dict(attrs)
    out = {k: v for k, v in attrs.items() if k != _CONVERTED_ATTR}
    for key, how in json.loads(notes).items():
        if key not in out:
            continue
        if how == "bool":
            out[key] = bool(out[key])
        elif how == "none":
            out[key] = None
        elif how == "json":
            out[key] = json.loads(out[key])
    return out


def _clean_dataset(ds: xr.Dataset, compress: bool) -> tuple[xr.Dataset, dict]:
    """Sanitised copy of ``ds`` and the encoding to write it with."""
    ds = ds.copy(deep=False)
    for name in list(ds.variables):
        var = ds.variables[name]
        var.attrs = _sanitize_attrs(var.attrs)
        # Encodings from the file the data came from (chunk sizes, filters)
        # may not fit the new file; start from a clean slate every time.
        var.encoding = {}
    ds.attrs = _sanitize_attrs(ds.attrs)
    enc = {}
    if compress:
        for name, var in ds.data_vars.items():
            if var.dtype.kind in "iufb" and var.ndim > 0:
                enc[name] = {"zlib": True, "complevel": 4}
    return ds, enc


def _to_dataset(obj: xr.DataArray) -> xr.Dataset:
    name = obj.name if obj.name is not None else _UNNAMED
    ds = obj.to_dataset(name=name, promote_attrs=False)
    ds.attrs[_KIND_ATTR] = "DataArray"
    ds.attrs[_NAME_ATTR] = "none" if obj.name is None else str(obj.name)
    return ds


def save(obj, path, *, format: str | None = None) -> Path:  # noqa: A002
    """Save a DataArray, Dataset or DataTree to netCDF or zarr, atomically.

    Parameters
    ----------
    obj : xarray.DataArray, xarray.Dataset or xarray.DataTree
        A dask-backed object is computed while it is written.
    path : str or path-like
        ``.nc`` (also ``.h5``/``.nc4``) for netCDF-4 written with h5netcdf and
        zlib compression, ``.zarr`` for a zarr store.
    format : {"netcdf", "zarr"}, optional
        Overrides the choice by extension.

    Returns
    -------
    pathlib.Path
        The path written.

    Notes
    -----
    The object is written to a temporary path next to ``path`` and renamed
    into place only when writing succeeded, so an interrupted save never
    leaves a half-written file behind and never destroys an existing one
    (for zarr folders the final swap removes the old folder first, which is
    not atomic on every file system).

    Attrs are sanitised as docs/results.md prescribes (bool -> int,
    None -> "none", dict and non-numeric lists -> JSON text, datetimes -> ISO
    text); the conversions are recorded in the attr ``xasviz_converted_attrs``
    and undone by :func:`load`. The kind of object is stored in the attr
    ``xasviz_kind`` so that :func:`load` returns the same kind.
    """
    p = Path(os.fspath(path)).expanduser()
    fmt = format or ("zarr" if p.suffix.lower() == ".zarr" else "netcdf")
    if fmt not in ("netcdf", "zarr"):
        raise ValueError(f"format must be 'netcdf' or 'zarr'; got {format!r}.")
    if not p.parent.exists():
        raise FileNotFoundError(f"The folder {str(p.parent)!r} does not exist.")
    tmp = p.with_name(f".{p.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        _write(obj, tmp, fmt)
        if fmt == "zarr" and p.exists():
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    logger.info("saved %s to %s", type(obj).__name__, p)
    return p


def _write(obj, tmp: Path, fmt: str) -> None:
    compress = fmt == "netcdf"
    if isinstance(obj, xr.DataTree):
        tree_dict, encoding = {}, {}
        for node in obj.subtree:
            ds, enc = _clean_dataset(node.to_dataset(inherit=False), compress)
            if node.is_root:
                ds.attrs[_KIND_ATTR] = "DataTree"
            tree_dict[node.path] = ds
            if enc:
                encoding[node.path] = enc
        tree = xr.DataTree.from_dict(tree_dict)
        if fmt == "zarr":
            tree.to_zarr(tmp, mode="w", consolidated=False)
        else:
            tree.to_netcdf(tmp, engine="h5netcdf", encoding=encoding or None)
        return
    if isinstance(obj, xr.DataArray):
        ds = _to_dataset(obj)
    elif isinstance(obj, xr.Dataset):
        ds = obj.copy(deep=False)
        ds.attrs = {**ds.attrs, _KIND_ATTR: "Dataset"}
    else:
        raise TypeError(
            "save() takes an xarray DataArray, Dataset or DataTree; got "
            f"{type(obj).__name__}."
        )
    if any(isinstance(ds.indexes[k], _multiindex()) for k in ds.indexes):
        raise StackValidationError(
            "The object has a stacked (MultiIndex) dimension, which netCDF and "
            "zarr cannot store; unstack it first, e.g. obj.unstack('pixel')."
        )
    ds, enc = _clean_dataset(ds, compress)
    if fmt == "zarr":
        ds.to_zarr(tmp, mode="w", consolidated=False)
    else:
        ds.to_netcdf(tmp, engine="h5netcdf", encoding=enc)


def _multiindex():
    import pandas as pd

    return pd.MultiIndex


def load(path, *, chunks=None, engine: str | None = None):
    """Read back what :func:`save` wrote, as the same kind of object.

    Parameters
    ----------
    path : str or path-like
        A netCDF file or zarr folder.
    chunks : dict or "auto", optional
        Open lazily with dask instead of reading everything into memory.
    engine : {"h5netcdf", "zarr", ...}, optional
        Forced xarray engine; chosen from the content otherwise.

    Returns
    -------
    xarray.DataArray, xarray.Dataset or xarray.DataTree
        The kind recorded by :func:`save` (a plain netCDF file written by
        another program loads as a Dataset), with converted attrs restored.

    Raises
    ------
    StackValidationError
        When the file is truncated or not netCDF/zarr.
    """
    p = _resolve(path)
    found = _sniff(p)
    if engine is None:
        engines = {"hdf5": "h5netcdf", "zarr": "zarr", "netcdf3": "scipy"}
        if found not in engines:
            raise StackValidationError(
                f"{p.name!r} is {_DESCRIBE[found]}, not a netCDF file or zarr "
                "store; xasviz.load reads what xasviz.save wrote. Use "
                "xasviz.open_stack for beamline files."
            )
        engine = engines[found]
    elif p.suffix.lower() in _EXPECTED:
        _check_content(p, p.suffix.lower(), found)
    kw: dict[str, Any] = {"engine": engine}
    if engine == "zarr":
        kw["consolidated"] = False
    try:
        with xr.open_dataset(p, **kw) as head:
            kind = head.attrs.get(_KIND_ATTR, "Dataset")
        if kind == "DataTree":
            tree = xr.open_datatree(p, chunks=chunks, **kw)
            if chunks is None:
                tree = tree.load()
                tree.close()
            return _restore_tree(tree)
        ds = xr.open_dataset(p, chunks=chunks, **kw)
        if chunks is None:
            ds = ds.load()
            ds.close()
    except (OSError, ValueError, KeyError) as err:
        if isinstance(err, StackValidationError):
            raise
        size = (
            sum(f.stat().st_size for f in p.rglob("*"))
            if p.is_dir()
            else (p.stat().st_size)
        )
        raise StackValidationError(
            f"{p.name!r} ({size} bytes) could not be read as netCDF/zarr: {err}. "
            "It is probably truncated (an interrupted copy or write) or damaged."
        ) from err
    return _restore_dataset(ds)


def _restore_vars(ds: xr.Dataset) -> xr.Dataset:
    for name in list(ds.variables):
        var = ds.variables[name]
        var.attrs = _restore_attrs(var.attrs)
    ds.attrs = _restore_attrs(ds.attrs)
    return ds


def _restore_dataset(ds: xr.Dataset):
    ds = _restore_vars(ds)
    kind = ds.attrs.pop(_KIND_ATTR, "Dataset")
    if kind != "DataArray":
        return ds
    name = ds.attrs.pop(_NAME_ATTR, "none")
    var = _UNNAMED if name == "none" else name
    if var not in ds.data_vars:
        var = next(iter(ds.data_vars))
    da = ds[var]
    da.name = None if name == "none" else name
    return da


def _restore_tree(tree: xr.DataTree) -> xr.DataTree:
    out = {}
    for node in tree.subtree:
        ds = _restore_vars(node.to_dataset(inherit=False))
        if node.is_root:
            ds.attrs.pop(_KIND_ATTR, None)
        out[node.path] = ds
    return xr.DataTree.from_dict(out)


# ---------------------------------------------------------------------------
# bundled samples


def sample_path(name: str = "als_stxm_fe_l23_71214078") -> Path:
    """Path of a sample stack bundled in the repository's ``data_samples/``.

    Parameters
    ----------
    name : str
        One of :data:`SAMPLES`.

    Raises
    ------
    FileNotFoundError
        When xasviz is not run from its source repository (e.g. installed
        from a wheel), which ships without ``data_samples/``.
    """
    if name not in SAMPLES:
        raise ValueError(f"Unknown sample {name!r}; available: {sorted(SAMPLES)}.")
    folder = Path(__file__).resolve().parent.parent / "data_samples"
    p = folder / SAMPLES[name]
    if not p.is_file():
        raise FileNotFoundError(
            f"The sample file {SAMPLES[name]!r} is not in {str(folder)!r}. The "
            "samples ship with the xasviz source repository, not with the "
            "installed package: clone the repository and install it with "
            "'pip install -e .', or pass the file to xasviz.open_stack yourself."
        )
    return p


def open_sample(name: str = "als_stxm_fe_l23_71214078", **kwargs) -> xr.DataArray:
    """Open a bundled sample stack with :func:`open_stack` (kwargs passed on).

    The default sample is a Fe L2,3-edge STXM stack (ALS 11.0.2.2, stack
    71214078; Breier et al., Geochim. Cosmochim. Acta 2012, data by B. Toner
    and M. Marcus) of transmitted intensity, 125 x 125 pixels of 80 nm and
    123 energies from 700 to 730.353 eV. Its incident intensity is
    ``sample_path().parent / "i0.xsp"``.
    """
    return open_stack(sample_path(name), **kwargs)
