"""The whole analysis (``xasviz.analyze``) and the command line on planted stacks."""

import numpy as np
import pytest
import xarray as xr

import xasviz
from xasviz.cli import main
from xasviz.pipeline import parse_ranks
from xasviz.synthetic import make_stack
from xasviz.testing import assert_domains_recovered


@pytest.fixture(scope="module")
def planted():
    # Three well-separated domains at moderate noise: every step of the
    # pipeline should find them.
    return make_stack(size=48, n_energy=60, n_domains=3, snr_db=30, shift=1.5, rng=7)


@pytest.fixture(scope="module")
def results(planted):
    # Planted stacks are on the normalised scale already (see
    # xasviz.synthetic): no per-pixel normalisation of noisy end points.
    return xasviz.analyze(
        planted.stack,
        planted.reference,
        normalization=None,
        ranks="2-5",
        folds=5,
        rng=0,
    )


def test_parse_ranks():
    assert parse_ranks("4-6") == [4, 5, 6]
    assert parse_ranks("2,4, 3") == [2, 3, 4]
    assert parse_ranks(5) == [5]
    with pytest.raises(ValueError, match="look like"):
        parse_ranks("four")
    with pytest.raises(ValueError, match="positive"):
        parse_ranks([0, 1])


def test_tree_has_every_group(results):
    for group in ("input", "bcv", "onmf", "kmeans", "correlation_kmeans", "pte"):
        assert group in results, group
    assert results.attrs["chosen_rank"] == int(results["bcv"]["best_rank"])
    assert results.attrs["seed"] == 0


def test_pipeline_recovers_planted_domains(results, planted):
    assert int(results["bcv"]["best_rank"]) == 3
    assert_domains_recovered(results["onmf"].to_dataset(), planted.domains, 0.95)
    assert_domains_recovered(results["kmeans"].to_dataset(), planted.domains, 0.95)
    # The domain absorption spectra are W-weighted means of X0 (DESIGN), so
    # each is close to the planted spectrum of its matched domain.
    onmf = results["onmf"].to_dataset()
    corr = xasviz.correlate(planted.domains, onmf)
    for i, j in enumerate(corr["match"].values):
        got = onmf["absorption"].isel(component=int(j)).values
        want = planted.spectra.isel(component=i).values
        assert np.abs(got - want).max() < 0.05


def test_results_round_trip_through_netcdf(results, tmp_path):
    path = tmp_path / "r.nc"
    xasviz.save(results, path)
    back = xasviz.load(path)
    assert isinstance(back, xr.DataTree)
    for group in ("onmf", "bcv", "input"):
        xr.testing.assert_allclose(
            back[group].to_dataset(), results[group].to_dataset()
        )


def test_same_seed_same_result(planted):
    kw = dict(rank=3, kmeans=False, pte=False, rng=3)
    a = xasviz.analyze(planted.stack, planted.reference, **kw)
    b = xasviz.analyze(planted.stack, planted.reference, **kw)
    np.testing.assert_array_equal(
        a["onmf"]["domains"].values, b["onmf"]["domains"].values
    )


def test_input_is_not_modified(planted):
    before = planted.stack.copy(deep=True)
    xasviz.analyze(planted.stack, rank=2, kmeans=False, pte=False, rng=0)
    xr.testing.assert_identical(planted.stack, before)


def test_cli_analyze_and_report(planted, tmp_path, capsys):
    stack_path = tmp_path / "stack.nc"
    xasviz.save(planted.stack, stack_path)
    ref_path = tmp_path / "ref.txt"
    np.savetxt(ref_path, np.c_[planted.reference.energy, planted.reference.values])
    out = tmp_path / "res.nc"
    rep = tmp_path / "rep.html"
    rc = main(
        [
            "-q",
            "analyze",
            str(stack_path),
            "--reference",
            str(ref_path),
            "--normalize",
            "none",
            "--ranks",
            "2-4",
            "--folds",
            "4",
            "--orthogonal",
            "exact",
            "-o",
            str(out),
            "--report",
            str(rep),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "chosen rank: 3" in text
    assert out.exists() and rep.exists()
    onmf_res = xasviz.load(out)["onmf"].to_dataset()
    assert onmf_res.attrs["orthogonal"] == "exact"
    assert float(onmf_res["orthogonality"]) == 0.0
    assert rep.stat().st_size > 10_000
    rep2 = tmp_path / "again.html"
    assert main(["-q", "report", str(out), "-o", str(rep2)]) == 0
    assert rep2.exists()


def test_cli_bad_input_is_one_clear_line(tmp_path, capsys):
    missing = tmp_path / "nope.nc"
    rc = main(["-q", "analyze", str(missing), "-o", str(tmp_path / "r.nc")])
    assert rc == 1
    err = capsys.readouterr().err
    assert err.startswith("xasviz analyze: error:")
    assert "Traceback" not in err
    assert (
        main(
            [
                "-q",
                "analyze",
                str(missing),
                "--ranks",
                "x",
                "-o",
                str(tmp_path / "r.nc"),
            ]
        )
        == 1
    )


def test_cli_passes_bayes_settings_on(planted, tmp_path, monkeypatch):
    # The Bayes settings of the command line reach xasviz.bayes.decompose
    # through analyze's bayes_kwargs; the analysis itself is not run here.
    stack_path = tmp_path / "stack.nc"
    xasviz.save(planted.stack, stack_path)
    seen = {}

    def fake_analyze(stack, reference, **kwargs):
        seen.update(kwargs)
        raise ValueError("stopped after the settings were read")

    monkeypatch.setattr("xasviz.pipeline.analyze", fake_analyze)
    args = ["-q", "analyze", str(stack_path), "--bayes", "--k-max", "3"]
    args += ["--bayes-sweeps", "40", "--bayes-max-sweeps", "120", "--jobs", "2"]
    assert main(args + ["-o", str(tmp_path / "r.nc")]) == 1
    assert seen["bayes"] is True
    assert seen["bayes_kwargs"] == dict(n_jobs=2, k_max=3, n_sweeps=40, max_sweeps=120)
