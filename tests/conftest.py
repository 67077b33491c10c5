"""Shared fixtures: small planted results trees, browser and Panel server cleanup."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import xarray as xr

CHROMIUM = shutil.which("chromium")


def _sigmoid_edge(energy, e0=7725.0, width=2.0):
    return 1.0 / (1.0 + np.exp(-(energy - e0) / width))


def planted_results(ny=12, nx=16, ne=40, rank=3, rng=0, masked=((0, 0),)):
    """A results DataTree following docs/results.md, built from planted truths.

    The stack is exactly ``W H^T + reference`` (plus 1e-3 noise), with W the
    unit-norm columns of one-hot region maps, so every view can be checked
    against numpy.
    """
    rng = np.random.default_rng(rng)
    energy = np.linspace(7700.0, 7760.0, ne)
    y, x = np.arange(ny), np.arange(nx)
    labels = (np.add.outer(y * rank // ny, x * rank // nx) % rank).astype(int)
    onehot = (labels[None] == np.arange(rank)[:, None, None]).astype(float)
    w = onehot / np.sqrt(onehot.reshape(rank, -1).sum(1))[:, None, None]
    h = rng.normal(scale=0.5, size=(rank, ne)) * np.sqrt(onehot.sum((1, 2)))[:, None]
    ref = _sigmoid_edge(energy)
    x0 = (
        np.einsum("kyx,ke->yxe", w, h) + ref + rng.normal(scale=1e-3, size=(ny, nx, ne))
    )
    mask = np.zeros((ny, nx), bool)
    for iy, ix in masked:
        mask[iy, ix] = True
        x0[iy, ix] = np.nan
    w[:, mask] = np.nan
    comp = np.arange(1, rank + 1)
    attrs = {
        "method": "test",
        "xasviz_version": "0",
        "created": "2026-01-01T00:00:00",
        "params_json": f'{{"rank": {rank}}}',
    }
    cyx = {"y": y, "x": x, "mask": (("y", "x"), mask)}
    stack = xr.DataArray(
        x0, dims=("y", "x", "energy"), coords={**cyx, "energy": energy}, name="stack"
    )
    absorption = np.stack([np.nanmean(x0[labels == k], axis=0) for k in range(rank)])
    tree = {}
    tree["input"] = xr.Dataset(
        {
            "stack": stack,
            "raw_mean": stack.mean("energy"),
            "edge_step": stack.isel(energy=-1) - stack.isel(energy=0),
            "reference": ("energy", ref),
        },
        attrs={
            **attrs,
            "method": "input",
            "input_file": "planted.nc",
            "checksum": "sha256:0123abcd",
        },
    )
    ranks = np.arange(1, max(7, rank + 3))
    folds = 5
    mean = (ranks - rank) ** 2 + 10.0
    err = mean[:, None] + rng.normal(scale=0.5, size=(ranks.size, folds))
    tree["bcv"] = xr.Dataset(
        {
            "error": (("rank", "fold"), err),
            "mean_error": ("rank", err.mean(1)),
            "std_error": ("rank", err.std(1, ddof=1) / np.sqrt(folds)),
            "best_rank": rank,
            "min_rank": rank,
            "one_se_rank": rank,
        },
        coords={"rank": ranks, "fold": np.arange(folds)},
        attrs={**attrs, "method": "bcv", "rule": "min", "seed": 0},
    )
    tree["onmf"] = xr.Dataset(
        {
            "domains": (("component", "y", "x"), w),
            "spectra": (("component", "energy"), h),
            "absorption": (("component", "energy"), absorption),
            "objective": ("iteration", np.linspace(2, 1, 10)),
            "n_iter": 10,
            "relative_error": 0.01,
            "orthogonality": 0.0,
            "collinearity": 0.2,
            "restart_objective": ("restart", [1.0, 1.2]),
        },
        coords={
            "component": comp,
            "energy": energy,
            "y": y,
            "x": x,
            "mask": (("y", "x"), mask),
        },
        attrs={**attrs, "method": "onmf", "seed": 0},
    )
    perm = np.roll(np.arange(rank), 1)
    km_onehot = onehot[perm]
    km_onehot[:, mask] = np.nan
    km_labels = np.where(mask, -1, np.argsort(perm)[labels])
    tree["kmeans"] = xr.Dataset(
        {
            "domains": (("component", "y", "x"), km_onehot),
            "spectra": (("component", "energy"), absorption[perm]),
            "labels": (("y", "x"), km_labels),
            "inertia": 1.0,
        },
        coords={"component": comp, "energy": energy, "y": y, "x": x},
        attrs={**attrs, "method": "kmeans", "seed": 0},
    )
    corr = (
        np.nan_to_num(w).reshape(rank, -1)
        @ np.nan_to_num(km_onehot).reshape(rank, -1).T
    ) / np.sqrt(np.nansum(km_onehot, axis=(1, 2)))[None]
    match = corr.argmax(1)
    tree["correlation_kmeans"] = xr.Dataset(
        {
            "correlation": (("onmf", "kmeans"), corr),
            "match": ("onmf", match),
            "matched_correlation": ("onmf", corr[np.arange(rank), match]),
        },
        coords={"onmf": comp, "kmeans": comp},
        attrs={**attrs, "method": "correlate"},
    )
    pte = 7720.0 + 2.0 * labels + rng.normal(scale=0.1, size=(ny, nx))
    pte[mask] = np.nan
    tree["pte"] = xr.Dataset(
        {
            "pte": (("y", "x"), pte),
            "amplitude": (("y", "x"), np.ones((ny, nx))),
            "width": (("y", "x"), np.full((ny, nx), 3.0)),
            "quality": (("y", "x"), np.full((ny, nx), 0.99)),
        },
        coords={"y": y, "x": x, "mask": (("y", "x"), mask)},
        attrs={**attrs, "method": "peak_top_energy"},
    )
    # Contract: E1 <= E2; D1 is PTE > E2, D2 is E1 < PTE <= E2, D3 is PTE <= E1.
    e1, e2 = 7721.0, 7723.0
    classes = np.stack([pte > e2, (pte > e1) & (pte <= e2), pte <= e1]).astype(float)
    classes[:, mask] = np.nan
    cc, ww = np.nan_to_num(classes).reshape(3, -1), np.nan_to_num(w).reshape(rank, -1)
    ccorr = (cc @ ww.T) / np.outer(
        np.linalg.norm(cc, axis=1), np.linalg.norm(ww, axis=1)
    )
    tree["pte_classes"] = xr.Dataset(
        {
            "classes": (("pte_class", "y", "x"), classes),
            "E1": e1,
            "E2": e2,
            "correlation": (("pte_class", "component"), ccorr),
            "matched_component": ("pte_class", comp[ccorr.argmax(1)]),
            "matched_correlation": ("pte_class", ccorr.max(1)),
            "matched_pte": ("pte_class", [7724.0, 7722.0, 7720.0]),
        },
        coords={"pte_class": ["D1", "D2", "D3"], "component": comp},
        attrs={**attrs, "method": "pte_classes"},
    )
    tree["bayes"] = planted_bayes(energy, rank, rng)
    return xr.DataTree.from_dict(tree)


def planted_bayes(energy, n_domains, rng):
    """A decomposition per domain: step + white line + one peak, exactly."""
    comp = np.arange(1, n_domains + 1)
    ewl = 7725.0 + comp
    step = _sigmoid_edge(energy)[None] * np.ones((n_domains, 1))
    wl = np.exp(-0.5 * ((energy[None] - ewl[:, None]) / 2.0) ** 2)
    peak = (
        0.2
        * np.exp(-0.5 * ((energy[None] - 7740.0) / 3.0) ** 2)
        * np.ones((n_domains, 1))
    )
    pad = np.full_like(peak, np.nan)  # a second peak no domain has: padding
    parts = np.stack([step, wl, peak, pad], axis=1)  # component, peak, energy
    fit = np.nansum(parts, axis=1)
    resid = rng.normal(scale=0.01, size=fit.shape)
    ks = np.arange(0, 4)
    betas = np.array([100.0, 1000.0, 10000.0])
    f = (ks[None, :, None] - 1.0) ** 2 + np.log(betas)[None, None] + comp[:, None, None]
    params = ["E_WL", "A", "w"]
    chain = np.stack(
        [
            ewl[:, None] + rng.normal(scale=0.2, size=(n_domains, 500)),
            np.ones((n_domains, 500)),
            np.full((n_domains, 500), 2.0),
        ],
        axis=-1,
    )
    return xr.Dataset(
        {
            "data": (("component", "energy"), fit + resid),
            "fit": (("component", "energy"), fit),
            "residual": (("component", "energy"), resid),
            "components": (("component", "peak", "energy"), parts),
            "free_energy": (("component", "K", "beta"), f),
            "free_energy_se": (("component", "K", "beta"), np.full(f.shape, 0.1)),
            "free_energy_min": (("component", "K"), f.min(-1) - 0.5),
            "k": ("component", np.ones(n_domains, int)),
            "b": ("component", np.full(n_domains, 100.0)),
            "map": (("component", "param"), chain.mean(1)),
            "interval": (
                ("component", "param", "bound"),
                np.stack([chain.min(1), chain.max(1)], -1),
            ),
            "chain": (("component", "sample", "param"), chain),
        },
        coords={
            "component": comp,
            "energy": energy,
            "K": ks,
            "beta": betas,
            "param": params,
            "bound": ["low", "high"],
            "peak": ["step", "white_line", "gauss_1", "gauss_2"],
        },
        attrs={"method": "bayes.decompose", "seed": 0, "params_json": "{}"},
    )


def pytest_configure(config):
    # pytest-playwright 0.10 defines a session fixture as an instance method,
    # which pytest 9 deprecates; nothing for xasviz to act on.
    config.addinivalue_line(
        "filterwarnings",
        "ignore:Session-scoped fixtures defined as instance methods"
        ":pytest.PytestRemovedIn10Warning",
    )


@pytest.fixture
def results():
    return planted_results()


@pytest.fixture(autouse=True)
def _stop_panel_servers():
    """Stop every Panel server a test started: a leftover threaded server is a
    non-daemon thread and would keep pytest from exiting."""
    yield
    try:
        import panel as pn
    except ImportError:  # pragma: no cover - panel is a hard dependency
        return
    try:
        pn.state.kill_all_servers()
    except RuntimeError as exc:
        # A server a test already asked to stop may still be winding down
        # (Panel raises "Thread already stopping"); wait for it instead.
        if "already stopping" not in str(exc):
            raise
    for thread in list(pn.state._threads.values()):
        thread.join(timeout=30)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Drive the system's Chromium (no browser download), headless, offline."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture(scope="session", autouse=True)
def _one_blas_thread():
    """Run the suite with one BLAS/OpenMP thread.

    The fits in the tests are small: threads buy nothing there, and on a busy
    2-core machine oversubscribed BLAS and OpenMP pools made them 10-20 times
    slower. Results do not depend on the thread count beyond round-off.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield
