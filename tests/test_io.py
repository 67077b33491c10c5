"""Readers and writers of xasviz.io: round trips, bad files, the bundled sample."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
import xarray as xr

import xasviz
from xasviz import DataQualityWarning, StackValidationError
from xasviz.io import (
    as_stack,
    load,
    open_sample,
    open_spectrum,
    open_stack,
    sample_path,
    save,
)

ENERGY = np.array([700.0, 700.5, 701.25, 702.0, 703.5, 705.0])


def make_stack(rng=0, dtype=np.float32, masked=True) -> xr.DataArray:
    """A small stack with uneven energies, um coords, a masked pixel, odd attrs."""
    rng = np.random.default_rng(rng)
    data = rng.uniform(1.0, 2.0, size=(4, 5, ENERGY.size)).astype(dtype)
    da = xr.DataArray(
        data,
        dims=("y", "x", "energy"),
        coords={
            "y": -638.0 + 0.08 * np.arange(4),
            "x": -4736.6 + 0.08 * np.arange(5),
            "energy": ENERGY,
        },
        name="od",
        attrs={
            "units": "optical density",
            "flag": True,
            "nothing": None,
            "settings": {"a": 1, "b": [1, 2]},
            "count": np.int64(3),
        },
    )
    if masked:
        mask = np.zeros((4, 5), bool)
        mask[1, 2] = True
        da = da.where(~xr.DataArray(mask, dims=("y", "x")))
        da = da.assign_coords(mask=(("y", "x"), mask))
    return da


# ---------------------------------------------------------------------------
# writers of the beamline formats used in the tests


def write_tiff(path: Path, stack: xr.DataArray, dtype=np.uint16) -> np.ndarray:
    frames = np.moveaxis(stack.values, -1, 0).astype(dtype)
    tifffile.imwrite(path, frames)
    return frames


def write_axis(folder: Path, stack: xr.DataArray, stem: str = "s1") -> Path:
    """aXis2000 header plus one whitespace text .xim frame per energy."""

    def points(name, unit, values):
        vals = ", ".join(f"{v:.3f}" for v in values)
        return (
            f'\t{name} = {{ Name = "{name}"; Unit = "{unit}"; '
            f"Min = {values[0]}; Max = {values[-1]}; Dir = 1;\n"
            f"\t\tPoints = ({len(values)}, {vals});\n}};\n"
        )

    hdr = folder / f"{stem}.hdr"
    hdr.write_text(
        'ScanDefinition = { Label = "s1.hdr"; Type = "NEXAFS Image Scan";\n'
        "\tRegions = (1,\n{\n"
        + points("PAxis", "um", stack["x"].values)
        + points("QAxis", "um", stack["y"].values)
        + "});\n"
        + points("StackAxis", "eV", stack["energy"].values)
        + ' Time = "2007 December 14 18:52:00";\n'
        + "ImageScan = { EnergyRegions = (1,\n{ StartEnergy = 700; Points = 6;});};\n"
    )
    for k in range(stack.sizes["energy"]):
        frame = stack.isel(energy=k).values
        lines = ["\t".join(f"{v:.6f}" for v in row) for row in frame]
        (folder / f"{stem}_a{k:03d}.xim").write_text("\n".join(lines) + "\n")
    return hdr


def write_hdf5(path: Path, stack: xr.DataArray) -> None:
    """NeXus-like layout: frames first, energies in their own dataset."""
    with h5py.File(path, "w") as f:
        g = f.create_group("entry/instrument")
        d = g.create_dataset("images", data=np.moveaxis(stack.values, -1, 0))
        d.attrs["units"] = "counts"
        g.create_dataset("energy", data=stack["energy"].values)
        g.create_dataset("dark", data=np.zeros((3, 3)))


# ---------------------------------------------------------------------------
# as_stack


def test_as_stack_reorders_axes_and_checks_lengths():
    rng = np.random.default_rng(1)
    arr = rng.normal(size=(6, 3, 4))  # energy, y, x
    da = as_stack(arr, energy=ENERGY, dims=("energy", "y", "x"))
    assert da.dims == ("y", "x", "energy")
    np.testing.assert_array_equal(da.values, np.moveaxis(arr, 0, -1))
    assert da["energy"].attrs["units"] == "eV"
    with pytest.raises(StackValidationError, match="energy has shape"):
        as_stack(arr, energy=ENERGY[:5], dims=("energy", "y", "x"))
    with pytest.raises(StackValidationError, match="3-D array"):
        as_stack(arr[0], energy=ENERGY)
    with pytest.raises(StackValidationError, match="dims must name"):
        as_stack(arr, energy=ENERGY, dims=("e", "y", "x"))
    with pytest.raises(StackValidationError, match="strictly increasing"):
        as_stack(arr, energy=ENERGY[::-1], dims=("energy", "y", "x"))


def test_as_stack_keeps_dask_lazy():
    da_mod = pytest.importorskip("dask.array")
    arr = da_mod.ones((3, 4, ENERGY.size), chunks=(2, 2, -1))
    out = as_stack(arr, energy=ENERGY)
    assert isinstance(out.data, da_mod.Array)


# ---------------------------------------------------------------------------
# save / load round trips


@pytest.mark.parametrize("name", ["s.nc", "s.h5", "s.zarr"])
def test_dataarray_round_trip_loses_nothing(tmp_path, name):
    stack = make_stack()
    before = stack.copy(deep=True)
    path = save(stack, tmp_path / name)
    back = load(path)
    assert isinstance(back, xr.DataArray)
    xr.testing.assert_identical(back, stack)
    assert back.dtype == np.float32
    assert back["mask"].dtype == bool
    assert back.attrs["flag"] is True and back.attrs["nothing"] is None
    assert back.attrs["settings"] == {"a": 1, "b": [1, 2]}
    xr.testing.assert_identical(stack, before)  # input untouched
    # open_stack gives the same stack, plus the provenance attrs it lacked.
    opened = open_stack(path)
    np.testing.assert_array_equal(opened.values, stack.values)
    assert opened.attrs["source_file"] == name
    assert len(opened.attrs["sha256"]) == 64
    for key, value in stack.attrs.items():
        assert opened.attrs[key] == value
    # no temporary left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_netcdf_is_compressed_and_attrs_are_sanitised_on_disk(tmp_path):
    path = save(make_stack(), tmp_path / "s.nc")
    with h5py.File(path) as f:
        assert f["od"].compression == "gzip"
        assert f["od"].attrs["flag"] == 1
        assert f["od"].attrs["nothing"] == b"none" or f["od"].attrs["nothing"] == "none"
        note = json.loads(f["od"].attrs["xasviz_converted_attrs"])
    assert note == {"flag": "bool", "nothing": "none", "settings": "json"}


def test_unnamed_dataarray_keeps_no_name(tmp_path):
    stack = make_stack(masked=False)
    stack.name = None
    back = load(save(stack, tmp_path / "u.nc"))
    assert back.name is None
    xr.testing.assert_identical(back, stack)


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_dataset_and_datatree_round_trip(tmp_path, suffix):
    stack = make_stack()
    ds = xr.Dataset(
        {"stack": stack, "edge_step": stack.isel(energy=-1)},
        attrs={"method": "test", "ok": False, "seed": 3},
    )
    back = load(save(ds, tmp_path / f"ds{suffix}"))
    assert isinstance(back, xr.Dataset)
    xr.testing.assert_identical(back, ds)

    tree = xr.DataTree.from_dict(
        {
            "/": xr.Dataset(attrs={"input_file": "a.hdr", "flag": True}),
            "/input": ds,
            "/bcv": xr.Dataset({"error": ("rank", np.array([3.0, 2.0, 2.5]))}),
        }
    )
    back = load(save(tree, tmp_path / f"tree{suffix}"))
    assert isinstance(back, xr.DataTree)
    assert back.identical(tree)
    assert back["input"]["stack"].coords["mask"].dtype == bool


def test_save_is_atomic_when_writing_fails(tmp_path):
    path = save(make_stack(), tmp_path / "s.nc")
    before = path.read_bytes()
    bad = xr.Dataset({"v": ("n", np.array([{"a": 1}, {"b": 2}], dtype=object))})
    with pytest.raises(Exception, match=r"(?i)dtype|object|type"):
        save(bad, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.nc"]


def test_save_refuses_other_objects_and_multiindex(tmp_path):
    with pytest.raises(TypeError, match="DataArray, Dataset or DataTree"):
        save(np.zeros(3), tmp_path / "a.nc")
    stacked = make_stack(masked=False).stack(pixel=("y", "x"))
    with pytest.raises(StackValidationError, match="unstack"):
        save(stacked, tmp_path / "b.nc")


def test_truncated_netcdf_is_a_clear_error(tmp_path):
    path = save(make_stack(), tmp_path / "s.nc")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StackValidationError, match="truncated"):
        open_stack(path)
    with pytest.raises(StackValidationError, match="truncated"):
        load(path)


def test_netcdf_extension_with_text_content_is_refused(tmp_path):
    path = tmp_path / "fake.nc"
    path.write_text("energy value\n1 2\n")
    with pytest.raises(StackValidationError, match="plain text"):
        open_stack(path)


def test_multi_variable_netcdf_needs_dataset(tmp_path):
    stack = make_stack(masked=False)
    ds = xr.Dataset({"a": stack, "b": stack * 2})
    path = save(ds, tmp_path / "two.nc")
    with pytest.raises(StackValidationError, match="dataset="):
        open_stack(path)
    got = open_stack(path, dataset="b")
    np.testing.assert_allclose(got.values, stack.values * 2)


def test_open_stack_chunks_gives_dask(tmp_path):
    da_mod = pytest.importorskip("dask.array")
    path = save(make_stack(), tmp_path / "s.nc")
    lazy = open_stack(path, chunks={})
    assert isinstance(lazy.data, da_mod.Array)
    np.testing.assert_array_equal(lazy.values, make_stack().values)


# ---------------------------------------------------------------------------
# TIFF


def test_tiff_round_trip_with_energy_file_and_array(tmp_path):
    stack = make_stack(masked=False) * 1000
    frames = write_tiff(tmp_path / "s.tif", stack)
    efile = tmp_path / "energies.txt"
    efile.write_text("# energies in eV\n" + "\n".join(map(str, ENERGY)))
    for energy in (efile, ENERGY, list(ENERGY)):
        got = open_stack(tmp_path / "s.tif", energy=energy)
        assert got.dims == ("y", "x", "energy")
        np.testing.assert_array_equal(got.values, np.moveaxis(frames, 0, -1))
        np.testing.assert_array_equal(got["energy"].values, ENERGY)
    assert got.dtype == np.float32  # uint16 counts are exact in float32
    assert got.attrs["source_format"] == "tiff"
    assert got.attrs["original_dtype"] == "uint16"


def test_tiff_energy_count_mismatch_and_missing_energy(tmp_path):
    write_tiff(tmp_path / "s.tif", make_stack(masked=False) * 100)
    with pytest.raises(StackValidationError, match="5 values but .* 6 frames"):
        open_stack(tmp_path / "s.tif", energy=ENERGY[:5])
    with pytest.raises(StackValidationError, match="no energy axis"):
        open_stack(tmp_path / "s.tif")


def test_tiff_that_is_text_or_truncated(tmp_path):
    fake = tmp_path / "fake.tif"
    fake.write_text("this is not an image\n")
    with pytest.raises(StackValidationError, match="to be a TIFF image"):
        open_stack(fake, energy=ENERGY)
    write_tiff(tmp_path / "s.tif", make_stack(masked=False) * 100)
    data = (tmp_path / "s.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[:200])
    with pytest.raises(StackValidationError, match="truncated|damaged"):
        open_stack(tmp_path / "cut.tif", energy=ENERGY)


# ---------------------------------------------------------------------------
# aXis2000 hdr + xim


def test_axis_round_trip(tmp_path):
    stack = (make_stack(masked=False) * 300).astype(np.float64)
    hdr = write_axis(tmp_path, stack)
    got = open_stack(hdr)
    # .xim text holds 6 decimals
    np.testing.assert_allclose(got.values, stack.values, atol=5e-7)
    for c in ("x", "y", "energy"):
        np.testing.assert_allclose(got[c].values, stack[c].values, atol=5e-4)
    assert got.attrs["source_format"] == "axis2000"
    assert got.attrs["n_frames"] == 6
    assert got.attrs["acquired"] == "2007 December 14 18:52:00"
    assert got["x"].attrs["units"] == "um"


def test_axis_with_i0_gives_optical_density(tmp_path):
    stack = (make_stack(masked=False) * 300).astype(np.float64)
    hdr = write_axis(tmp_path, stack)
    i0 = 1000.0 + 10 * np.arange(ENERGY.size)
    xsp = tmp_path / "i0.xsp"
    xsp.write_text("\n".join(f"{e:.7E} {v:.7E}" for e, v in zip(ENERGY, i0)))
    got = open_stack(hdr, i0=xsp)
    expected = -np.log(open_stack(hdr).values / i0)
    np.testing.assert_allclose(got.values, expected, rtol=1e-12)
    assert got.attrs["units"] == "optical density"


def test_axis_missing_frames_listed(tmp_path):
    hdr = write_axis(tmp_path, make_stack(masked=False))
    (tmp_path / "s1_a003.xim").unlink()
    (tmp_path / "s1_a005.xim").unlink()
    with pytest.raises(StackValidationError, match=r"2 of the .*s1_a003.xim"):
        open_stack(hdr)


def test_axis_frame_with_wrong_shape(tmp_path):
    hdr = write_axis(tmp_path, make_stack(masked=False))
    frame = tmp_path / "s1_a002.xim"
    lines = frame.read_text().splitlines()
    frame.write_text("\n".join(lines[:-1]) + "\n")  # one row short
    with pytest.raises(StackValidationError, match="s1_a002.xim.* 3 rows"):
        open_stack(hdr)
    frame.write_text("1 2 x\n")
    with pytest.raises(StackValidationError, match="not a number"):
        open_stack(hdr)


def test_axis_truncated_header(tmp_path):
    hdr = write_axis(tmp_path, make_stack(masked=False))
    text = hdr.read_text()
    hdr.write_text(text[: text.index("StackAxis")])
    with pytest.raises(StackValidationError, match="StackAxis"):
        open_stack(hdr)
    cut = text[: text.index("StackAxis")] + "StackAxis = { Points = (6, 700, 701);};"
    hdr.write_text(cut)
    with pytest.raises(StackValidationError, match="announces 6 points but lists 2"):
        open_stack(hdr)


def test_single_xim_points_to_the_header(tmp_path):
    write_axis(tmp_path, make_stack(masked=False))
    with pytest.raises(StackValidationError, match=r"\.hdr"):
        open_stack(tmp_path / "s1_a000.xim")


def test_forced_engine_checks_content_too(tmp_path):
    (tmp_path / "frames.dat").write_bytes(b"\x00" * 64)
    with pytest.raises(StackValidationError, match="binary data"):
        open_stack(tmp_path / "frames.dat", engine="tiff", energy=ENERGY)
    write_tiff(tmp_path / "frames.img", make_stack(masked=False) * 100)
    got = open_stack(tmp_path / "frames.img", engine="tiff", energy=ENERGY)
    assert got.sizes == {"y": 4, "x": 5, "energy": 6}
    with pytest.raises(ValueError, match="engine must be one of"):
        open_stack(tmp_path / "frames.img", engine="jpeg")


def test_hdr_that_is_binary(tmp_path):
    (tmp_path / "b.hdr").write_bytes(b"\x00\xff\xfe\x00" * 50)
    with pytest.raises(StackValidationError, match="to be plain text"):
        open_stack(tmp_path / "b.hdr")


# ---------------------------------------------------------------------------
# plain HDF5 / NeXus


def test_hdf5_with_dataset_paths(tmp_path):
    stack = make_stack(masked=False)
    path = tmp_path / "scan.nxs"
    write_hdf5(path, stack)
    got = open_stack(
        path,
        dataset="entry/instrument/images",
        energy_dataset="entry/instrument/energy",
    )
    np.testing.assert_array_equal(got.values, stack.values)
    np.testing.assert_array_equal(got["energy"].values, ENERGY)
    assert got.attrs["source_dataset"] == "entry/instrument/images"
    assert got.attrs["units"] == "counts"
    # energies given by the caller; the single 3-D dataset is found alone
    got2 = open_stack(path, energy=ENERGY)
    np.testing.assert_array_equal(got2.values, stack.values)


def test_hdf5_missing_dataset_lists_what_exists(tmp_path):
    path = tmp_path / "scan.h5"
    write_hdf5(path, make_stack(masked=False))
    with pytest.raises(StackValidationError, match=r"no dataset 'entry/data'.*images"):
        open_stack(path, dataset="entry/data", energy=ENERGY)
    with pytest.raises(StackValidationError, match=r"no dataset 'nope'.*energy \(6,\)"):
        open_stack(path, dataset="entry/instrument/images", energy_dataset="nope")
    with pytest.raises(StackValidationError, match="energy_dataset="):
        open_stack(path, dataset="entry/instrument/images")
    with pytest.raises(StackValidationError, match="no axis"):
        open_stack(path, dataset="entry/instrument/images", energy=ENERGY[:2])


def test_h5_extension_that_is_tiff(tmp_path):
    write_tiff(tmp_path / "x.h5", make_stack(masked=False) * 100)
    with pytest.raises(StackValidationError, match="content is a TIFF image"):
        open_stack(tmp_path / "x.h5", energy=ENERGY)


def test_unknown_extension_and_missing_file(tmp_path):
    (tmp_path / "a.dat").write_text("1 2\n")
    with pytest.raises(StackValidationError, match="engine="):
        open_stack(tmp_path / "a.dat")
    with pytest.raises(FileNotFoundError, match="No such file"):
        open_stack(tmp_path / "missing.nc")


# ---------------------------------------------------------------------------
# spectra


def test_two_column_whitespace_and_comma(tmp_path):
    e, v = ENERGY, np.linspace(0.1, 1.0, ENERGY.size)
    (tmp_path / "a.xsp").write_text(
        "# comment\n" + "\n".join(f"{a:.7E}   {b:.7E}" for a, b in zip(e, v))
    )
    (tmp_path / "b.csv").write_text(
        "energy,mu\n" + "\n".join(f"{a},{b}" for a, b in zip(e, v))
    )
    a = open_spectrum(tmp_path / "a.xsp")
    b = open_spectrum(tmp_path / "b.csv")
    np.testing.assert_allclose(a.values, v, rtol=1e-7)
    np.testing.assert_array_equal(b.values, v)
    np.testing.assert_array_equal(b["energy"].values, e)
    assert a.dims == ("energy",) and a.attrs["source_format"] == "columns"
    assert b.name == "mu"


def test_xdi_columns_and_kev(tmp_path):
    rows = "\n".join(f"{a / 1000:.6f} {1000 + a} {a / 10}" for a in ENERGY)
    (tmp_path / "s.xdi").write_text(
        "# XDI/1.0\n# Column.1: energy keV\n# Column.2: i0\n# Column.3: mutrans\n"
        "# Element.symbol: Fe\n#----\n# energy i0 mutrans\n" + rows + "\n"
    )
    s = open_spectrum(tmp_path / "s.xdi")
    assert s.name == "mutrans" and s.attrs["source_format"] == "xdi"
    np.testing.assert_allclose(s["energy"].values, ENERGY)
    np.testing.assert_allclose(s.values, ENERGY / 10)
    i0 = open_spectrum(tmp_path / "s.xdi", column="i0")
    np.testing.assert_allclose(i0.values, 1000 + ENERGY)


def test_athena_nor_default_is_norm_and_reversed_file(tmp_path):
    norm = np.linspace(0, 1, ENERGY.size)
    rows = [f"{e} {n} {n * 2} {n + 5}" for e, n in zip(ENERGY, norm)][::-1]
    (tmp_path / "s.nor").write_text(
        "# Athena data file -- Athena version 0.9.26\n# Element: Fe\n"
        "#------------------------\n#  e  norm  nbkg  flat\n" + "\n".join(rows)
    )
    s = open_spectrum(tmp_path / "s.nor")
    assert s.name == "norm" and s.attrs["source_format"] == "athena"
    assert s.attrs["reversed_on_read"] == 1
    np.testing.assert_array_equal(s.values, norm)
    np.testing.assert_array_equal(s["energy"].values, ENERGY)
    flat = open_spectrum(tmp_path / "s.nor", column="flat")
    np.testing.assert_array_equal(flat.values, norm + 5)
    with pytest.raises(StackValidationError, match="no column named 'mu'"):
        open_spectrum(tmp_path / "s.nor", column="mu")
    with pytest.raises(StackValidationError, match="index 1..3"):
        open_spectrum(tmp_path / "s.nor", column=4)


def test_spectrum_bad_files(tmp_path):
    (tmp_path / "a.txt").write_text("700 1\n701 2\n700.5 3\n")
    with pytest.raises(StackValidationError, match="strictly increasing"):
        open_spectrum(tmp_path / "a.txt")
    (tmp_path / "b.txt").write_text("700 1\n701 2\n701 3\n")
    with pytest.raises(StackValidationError, match="repeats"):
        open_spectrum(tmp_path / "b.txt")
    (tmp_path / "c.txt").write_text("700 1\n701 nan\n702 3\n")
    with pytest.raises(StackValidationError, match="NaN"):
        open_spectrum(tmp_path / "c.txt")
    (tmp_path / "d.txt").write_text("700 1\n701 2 3\n")
    with pytest.raises(StackValidationError, match="different numbers of columns"):
        open_spectrum(tmp_path / "d.txt")
    (tmp_path / "e.txt").write_text("700 1\nsome words here\n")
    with pytest.raises(StackValidationError, match="Line 2"):
        open_spectrum(tmp_path / "e.txt")
    save(make_stack(), tmp_path / "f.nc")
    with pytest.raises(StackValidationError, match="not a text file"):
        open_spectrum(tmp_path / "f.nc")


# ---------------------------------------------------------------------------
# the bundled real sample

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data_samples"


@pytest.fixture(scope="module")
def sample():
    return open_sample()


@pytest.fixture(scope="module")
def from_archive(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("axis")
    with tarfile.open(SAMPLE_DIR / "71214078_FigS4.tar.xz", "r:xz") as tar:
        tar.extractall(tmp, filter="data")
    return tmp / "71214078_FigS4"


def test_sample_shape_and_energies(sample):
    assert sample.dims == ("y", "x", "energy")
    assert sample.sizes == {"y": 125, "x": 125, "energy": 123}
    assert sample.dtype == np.float32
    assert sample["energy"].values[0] == 700.0
    assert sample["energy"].values[-1] == pytest.approx(730.353, abs=1e-9)
    steps = np.diff(sample["energy"].values)
    assert steps.min() == pytest.approx(0.187, abs=1e-3)
    assert steps.max() == pytest.approx(0.375, abs=1e-3)
    assert np.diff(sample["x"].values) == pytest.approx(0.08, abs=1e-6)
    assert "Toner" in sample.attrs["credit"]
    assert sample.attrs["source_repository"] == "stetef/nano-XANES-microscopy-of-Fe"


def test_sample_equals_reader_on_archive(sample, from_archive):
    raw = open_stack(from_archive / "71214078.hdr")
    assert raw.dtype == np.float64
    np.testing.assert_array_equal(sample.values, raw.values.astype(np.float32))
    for c in ("x", "y", "energy"):
        np.testing.assert_array_equal(sample[c].values, raw[c].values)
    assert sample.attrs["sha256"] == raw.attrs["sha256"]
    assert sample.attrs["sha256_frames"] == raw.attrs["sha256_frames"]
    # the small text files shipped next to it are the archive's, byte for byte
    for name in (
        "i0.xsp",
        "oxidized.r",
        "oxidized.t",
        "reduced.r",
        "reduced.t",
        "mask_file.msk",
    ):
        assert (SAMPLE_DIR / name).read_bytes() == (from_archive / name).read_bytes()


def test_sample_optical_density_range(sample):
    i0 = open_spectrum(SAMPLE_DIR / "i0.xsp")
    od = xasviz.to_optical_density(sample, i0)
    assert i0.attrs["source_file"] == "i0.xsp"
    assert od.attrs["i0_interpolated"] == 0  # i0 is on the stack's grid
    lo, hi = float(od.min()), float(od.max())
    assert 0.7 < lo < 0.8 and 3.5 < hi < 3.7
    # open_stack(..., i0=path) does the same conversion
    od2 = open_sample(i0=SAMPLE_DIR / "i0.xsp")
    np.testing.assert_array_equal(od2.values, od.values)


def test_sample_end_members_peak_where_documented():
    ox = open_spectrum(SAMPLE_DIR / "oxidized.r")
    red = open_spectrum(SAMPLE_DIR / "reduced.r")
    l3 = slice(705, 715)
    assert float(ox.sel(energy=l3).idxmax()) == pytest.approx(709.7, abs=0.3)
    assert float(red.sel(energy=l3).idxmax()) == pytest.approx(708.3, abs=0.3)


def test_sample_path_errors():
    with pytest.raises(ValueError, match="Unknown sample"):
        sample_path("nope")
    assert sample_path().is_file()
    assert os.path.basename(sample_path()) == "als_stxm_fe_l23_71214078.nc"


@pytest.mark.parametrize("points", [None, (700.0, 709.7)])
def test_sample_normalised_exactly_at_the_points(points):
    od = open_sample(i0=SAMPLE_DIR / "i0.xsp")
    # Many pixels hold little iron (edge step near zero): they are masked.
    with pytest.warns(DataQualityWarning, match="pixels were masked"):
        norm = xasviz.normalize(od, points=points)
    ok = ~norm["mask"].values
    assert ok.sum() > 5000
    lo, hi = (
        json.loads(norm.attrs["normalization_json"])["e_lo"],
        json.loads(norm.attrs["normalization_json"])["e_hi"],
    )
    assert np.all(norm.sel(energy=lo).values[ok] == 0.0)
    assert np.all(norm.sel(energy=hi).values[ok] == 1.0)
    assert np.all(np.isnan(norm.values[~ok]))


def test_sample_edge_step_map():
    od = open_sample(i0=SAMPLE_DIR / "i0.xsp")
    with pytest.warns(DataQualityWarning, match="pixels were masked"):
        ds = xasviz.normalize(od, "edge_step", e0=708.0, return_params=True)
    step = ds["edge_step"].values
    ok = ~ds["normalized"]["mask"].values
    assert np.all(step[ok] > 0) and np.all(np.isnan(step[~ok]))
    assert np.all(np.isfinite(ds["normalized"].values[ok]))
