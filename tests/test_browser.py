"""Real headless Chromium: the served domain explorer and the saved report.

Run alone with ``pytest -m ui tests/test_browser.py``. Screenshots go to
``test-artifacts/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import CHROMIUM
from numpy.testing import assert_allclose

import xasviz
from xasviz.views import DomainExplorer, serve

pytestmark = [
    pytest.mark.ui,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
]

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

# Find a Bokeh model by name in any document. A static page leaves `name`
# unset on layout models, where `get_model_by_name` throws.
BY_NAME = """() => { window.byName = (n) => {
  for (const d of Bokeh.documents) for (const m of d._all_models.values()) {
    const p = m.properties.name;
    if (p && !p.is_unset && m.name === n) return m;
  }
  return null; }; return true; }"""

# Page position of the data point (x, y) in the named figure, from the
# figure's own scales (robust to layout, toolbar and axis inversion).
PAGE_XY = """([name, x, y]) => {
  const v = Bokeh.index.find_one(byName(name));
  v.el.scrollIntoView({block: 'center'});
  const r = v.el.getBoundingClientRect();
  return [r.left + v.frame.x_scale.compute(x), r.top + v.frame.y_scale.compute(y)];
}"""

LINES = """(name) => Bokeh.index.find_one(byName(name)).model.renderers
  .filter((r) => r.glyph && r.glyph.type === 'Line')
  .map((r) => Array.from(r.data_source.data[r.glyph.y.field]))"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"the Panel server did not open port {port}")


def _wait_rendered(page, name: str) -> None:
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0")
    page.evaluate(BY_NAME)
    page.wait_for_function(
        f"() => byName('{name}') && Bokeh.index.find_one(byName('{name}'))",
        timeout=20_000,
    )


def _console_errors(page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def test_served_domain_explorer_click_shows_that_pixel(page, results):
    ARTIFACTS.mkdir(exist_ok=True)
    view = DomainExplorer.from_results(results)
    port = _free_port()
    server = serve(view, port=port, threaded=True)
    try:
        _wait_for_port(port)
        page.set_viewport_size({"width": 1500, "height": 950})
        errors = _console_errors(page)
        page.goto(f"http://127.0.0.1:{port}/")
        _wait_rendered(page, "domain_map_2")
        page.wait_for_timeout(500)  # let the layout settle before measuring
        px, py = page.evaluate(PAGE_XY, ["domain_map_2", 10, 5])
        page.mouse.click(px, py)
        page.wait_for_function(
            "() => byName('pixel_spectrum').title.text.startsWith('Pixel x=10, y=5')",
            timeout=10_000,
        )
        assert (view.component, view.x, view.y) == (2, 10, 5)
        page.wait_for_timeout(300)
        shown = page.evaluate(LINES, "pixel_spectrum")
        page.screenshot(path=str(ARTIFACTS / "browser_domain_explorer.png"))
    finally:
        server.stop()
    onmf, inp = results["onmf"], results["input"]
    data = inp["stack"].values[5, 10]
    model = onmf["domains"].values[:, 5, 10] @ onmf["spectra"].values
    model = model + inp["reference"].values
    assert len(shown) == 2
    measured = min(shown, key=lambda s: np.abs(np.asarray(s) - data).max())
    modelled = min(shown, key=lambda s: np.abs(np.asarray(s) - model).max())
    assert_allclose(measured, data)
    assert_allclose(modelled, model)
    assert errors == []


def test_saved_report_click_rebuilds_spectrum(page, results, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    path = xasviz.report(results, tmp_path / "report.html")
    page.set_viewport_size({"width": 1500, "height": 950})
    errors = _console_errors(page)
    page.goto(path.as_uri())
    _wait_rendered(page, "report_domain_map_2")
    before = page.evaluate("() => Array.from(byName('pixel_source').data.absorption)")
    px, py = page.evaluate(PAGE_XY, ["report_domain_map_2", 3, 9])
    page.mouse.click(px, py)
    page.wait_for_function(
        "() => byName('report_pixel').title.text.startsWith('Pixel x=3.0, y=9.0')",
        timeout=10_000,
    )
    got = page.evaluate("() => Array.from(byName('pixel_source').data.absorption)")
    weights = page.evaluate("() => Array.from(byName('weights_source').data.weight)")
    page.screenshot(path=str(ARTIFACTS / "browser_report_domains.png"))
    page.evaluate(
        "() => Bokeh.index.find_one(byName('report_bcv')).el.scrollIntoView()"
    )
    page.screenshot(path=str(ARTIFACTS / "browser_report_top.png"), full_page=False)

    # Moving the thresholds re-classifies the PTE map in the page.
    page.evaluate("() => { byName('pte_E1').value = 7721.0; }")
    page.evaluate("() => { byName('pte_E2').value = 7725.0; }")
    classes = page.evaluate(
        "() => Array.from(byName('pte_class_source').data.image[0])"
    )
    page.evaluate(
        "() => Bokeh.index.find_one(byName('report_pte_classes')).el.scrollIntoView()"
    )
    page.screenshot(path=str(ARTIFACTS / "browser_report_pte.png"))

    # The table of contents scrolls to a section (headings live in shadow
    # roots, where plain #anchor links cannot reach).
    page.get_by_role("button", name="Settings and provenance").click()
    page.wait_for_function(
        "() => { const r = Bokeh.index.find_one(byName('section_settings'))"
        ".el.getBoundingClientRect(); return r.top >= 0 && r.top < 200; }",
        timeout=5_000,
    )

    pte = results["pte"]["pte"].values.ravel()
    expect_cls = np.where(pte > 7725.0, 1.0, np.where(pte > 7721.0, 2.0, 3.0))
    expect_cls[~np.isfinite(pte)] = np.nan
    got_cls = np.array([np.nan if v is None else v for v in classes], dtype=float)
    assert_allclose(got_cls, expect_cls)
    assert set(np.unique(got_cls[np.isfinite(got_cls)])) == {2.0, 3.0}

    onmf, inp = results["onmf"], results["input"]
    w = onmf["domains"].values[:, 9, 3]
    expect = w @ onmf["spectra"].values + inp["reference"].values
    # W travels as float32; the spectra and reference as float64 JSON.
    assert_allclose(got, expect, rtol=1e-5, atol=1e-6)
    assert_allclose(weights, w, rtol=1e-6)
    assert not np.allclose(before, got)
    assert errors == []
