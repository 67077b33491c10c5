"""The standalone HTML report: content, embedded numbers, atomic write, size."""

from __future__ import annotations

import os

import numpy as np
import pytest
import xarray as xr
from conftest import planted_results
from numpy.testing import assert_allclose

import xasviz
import xasviz.report as report_mod
import xasviz.views  # noqa: F401  (Panel's models must not leak into the report)
from xasviz.report import build_report


def _models(layout):
    doc_models = {}
    for m in layout.references():
        name = getattr(m, "name", None)
        if name:
            doc_models[name] = m
    return doc_models


def test_report_sections_and_provenance(results, tmp_path):
    out = xasviz.report(results, tmp_path / "r.html", title="Planted test")
    assert out == tmp_path / "r.html"
    text = out.read_text(encoding="utf-8")
    for heading in (
        "Stack summary",
        "Number of domains (BCV)",
        "Domains (one-sided ONMF)",
        "Cross-check: k-means",
        "Cross-check: peak-top energy",
        "Bayesian decomposition",
        "Settings and provenance",
    ):
        assert heading in text
    # Inline resources only: no script or stylesheet from a CDN.
    assert "cdn.bokeh.org" not in text and "<script src=" not in text
    assert "es-module-shims" not in text and "<link" not in text
    # Provenance: input file, checksum, seeds, settings and package versions.
    for needle in ("planted.nc", "sha256:0123abcd", "seed", "rank", "numpy"):
        assert needle in text
    assert list(tmp_path.iterdir()) == [out]


def test_report_embeds_factors_for_reconstruction(results):
    layout, _ = build_report(results)
    models = _models(layout)
    onmf = results["onmf"].to_dataset()
    for k in onmf["component"].values:
        img = models[f"domain_source_{k}"].data["image"][0]
        assert img.dtype == np.float32
        assert_allclose(img, onmf["domains"].sel(component=k), rtol=1e-6)
    # The pixel panel starts on a real pixel: its reconstruction w_p H^T + b.
    pix = models["pixel_source"].data
    w = onmf["domains"].values
    iy, ix = np.unravel_index(np.nanargmax(np.nan_to_num(w[0], nan=-1)), w.shape[1:])
    ref = results["input"]["reference"].values
    expect = w[:, iy, ix] @ onmf["spectra"].values
    assert_allclose(pix["difference"], expect, rtol=1e-5, atol=1e-6)
    assert_allclose(pix["absorption"], expect + ref, rtol=1e-5, atol=1e-6)


def test_report_of_plain_stack(results, tmp_path):
    stack = results["input"]["stack"].reset_coords("mask", drop=True)
    out = xasviz.report(stack, tmp_path / "stack.html")
    text = out.read_text(encoding="utf-8")
    assert "Stack summary" in text
    assert "Domains (one-sided ONMF)" not in text


def test_report_block_averages_large_maps(results):
    layout, _ = build_report(results, max_pixels=50)  # 12 x 16 -> factor 2
    img = _models(layout)["domain_source_1"].data["image"][0]
    assert img.shape == (6, 8)
    w = results["onmf"]["domains"].sel(component=1).values
    assert_allclose(img[1, 1], np.nanmean(w[2:4, 2:4]), rtol=1e-6)


def test_report_write_is_atomic(results, tmp_path, monkeypatch):
    path = tmp_path / "r.html"
    path.write_text("previous report")
    # A page that fails half-way through writing (a lone surrogate cannot be
    # encoded): the old report stays and no temporary file is left behind.
    broken = "<html>" + "x" * 100_000 + "\ud800</html>"
    monkeypatch.setattr(report_mod, "file_html", lambda *a, **k: broken)
    with pytest.raises(UnicodeEncodeError):
        xasviz.report(results, path)
    assert path.read_text() == "previous report"
    assert os.listdir(tmp_path) == ["r.html"]


def test_report_bad_input(tmp_path, results):
    with pytest.raises(TypeError, match="DataTree"):
        xasviz.report(np.zeros((3, 3, 3)), tmp_path / "r.html")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        xasviz.report(results, tmp_path / "missing" / "r.html")
    with pytest.raises(xasviz.StackValidationError, match="Dataset with"):
        xasviz.report(xr.Dataset({"a": ("t", [1.0])}), tmp_path / "r.html")


def test_paper_sized_report_is_under_15_mb(tmp_path):
    # 300 x 300 pixels x 100 energies at rank 10 with every group. Random
    # weights (as real maps are) rather than the planted one-hot maps, which
    # would flatter the size. Measured: 7.7 MB; the ten float32 domain maps,
    # base64-encoded, are 4.8 MB of it.
    results = planted_results(ny=300, nx=300, ne=100, rank=10)
    onmf = results["onmf"].to_dataset()
    rng = np.random.default_rng(1)
    onmf["domains"] = onmf["domains"] * 0 + rng.random(onmf["domains"].shape)
    results["onmf"] = onmf
    out = xasviz.report(results, tmp_path / "paper.html")
    size_mb = out.stat().st_size / 1e6
    assert 5.0 < size_mb < 15.0, f"report is {size_mb:.1f} MB"


def test_report_file_is_readable_by_others(tmp_path):
    import os
    import stat

    from xasviz.synthetic import make_stack

    s = make_stack(size=8, n_energy=20, n_domains=2, rng=0)
    path = xasviz.report(s.stack, tmp_path / "r.html")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask
