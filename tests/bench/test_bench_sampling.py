"""Tests of ppl_ad.bench.sampling: the NUTS efficiency cells and their report."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from ppl_ad.bench import cli, sampling


def test_a_ppl_ad_cell_measures_ess_per_second_and_its_costs():
    row = sampling.sampling_cell("normal_normal", "autograd", draws=150, tune=150, chains=2, cores=1, seed=4)
    assert row["status"] == "ok", row["note"]
    assert row["dimension"] == 1 and row["chains"] == 2 and row["cores"] == 1
    assert 50 < row["min_ess_bulk"] < 2 * 150 * 2 and row["max_rhat"] < 1.1
    assert row["min_ess_per_s"] == pytest.approx(row["min_ess_bulk"] / row["wall_s"])
    assert row["engine"] == "python" and row["chain_method"] == "sequential"
    assert row["ess_per_1k_grad"] == pytest.approx(1000 * row["min_ess_bulk"] / row["gradient_evaluations"])
    # warmup takes gradient evaluations too, so every evaluation per draw exceeds the kept steps
    assert 1 <= row["steps_per_draw"] < row["evals_per_draw"]
    assert row["gradient_us"] > 0 and row["sampler_us_per_step"] > 0
    assert row["wall_s"] > row["tuning_s"] / 2  # two chains, one process: times add up


def test_a_failing_cell_is_a_row_naming_the_cause():
    row = sampling.sampling_cell("normal_normal", "no-such-backend", draws=10, tune=10, chains=1)
    assert row["status"] == "error"
    assert "no-such-backend" in row["note"] and row["min_ess_per_s"] is None


def test_options_go_to_pa_sample_and_are_refused_for_a_peer():
    row = sampling.sampling_cell("normal_normal", "autograd", draws=60, tune=60, chains=1, seed=2,
                                 options={"target_accept": 0.95})
    assert row["status"] == "ok", row["note"]
    assert row["acceptance_rate"] > 0.85 and row["step_size"] > 0
    row = sampling.sampling_cell("normal_normal", "pymc", draws=10, tune=10, chains=1, options={"target_accept": 0.9})
    assert row["status"] == "error" and "target_accept" in row["note"] and "'pymc'" in row["note"]


def test_a_crashed_cell_process_is_recorded():
    row = cli.run_sampling_cell("no_such_model", "jax", draws=10, tune=10, chains=1, timeout=120)
    assert row["status"] == "error" and "no_such_model" in row["note"]


def _cell(model, sampler, ess_per_s, phase="cold", repeat=0, **extra):
    row = sampling._row(model, sampler)
    row.update(dimension=10, wall_s=2.0, min_ess_bulk=ess_per_s * 2.0 if ess_per_s else None,
               min_ess_per_s=ess_per_s, steps_per_draw=7.0, evals_per_draw=15.0, divergences=0,
               max_rhat=1.001, phase=phase, repeat=repeat, **extra)
    if ess_per_s is None:
        row["status"] = extra.get("status", "error")
    return row


def _result(cells, repeats=1):
    return {"machine": cli.machine_info("ppl-ad bench --sampling"),
            "settings": {"draws": 1000, "tune": 1000, "chains": 4, "timeout": 1800.0, "cores": 1,
                         "repeats": repeats, "warm": True},
            "cells": cells, "load_average": ["1.00 1.00 1.00", "2.50 1.20 1.00"]}


def test_sampler_names_carry_the_engine_or_the_chain_method():
    assert sampling.parse_sampler("jax") == ("jax", None, None, None)
    assert sampling.parse_sampler("jax:python") == ("jax", "python", None, None)
    assert sampling.parse_sampler("jax:vectorized") == ("jax", None, "vectorized", None)
    assert sampling.parse_sampler("jax:low_rank") == ("jax", None, None, "low_rank")
    assert sampling.parse_sampler("blackjax") == ("blackjax", None, None, None)
    with pytest.raises(ValueError, match="neither an engine"):
        sampling.parse_sampler("jax:turbo")
    assert sampling.label("jax:low_rank") == "ppl_ad `jax`, metric low_rank"
    assert sampling.label("jax") == "ppl_ad `jax` (default)"
    assert sampling.label("jax:python") == "ppl_ad `jax`, engine python"
    assert sampling.label("nutpie") == "nutpie"


def test_report_ranks_samplers_takes_medians_and_keeps_failures(tmp_path):
    cells = [
        _cell("eight_schools", "jax", 200.0, us_per_step=12.0, ess_per_1k_grad=30.0),
        _cell("eight_schools", "jax", 400.0, repeat=1, us_per_step=10.0, ess_per_1k_grad=30.0),
        _cell("eight_schools", "jax", 900.0, phase="warm", us_per_step=11.0),
        _cell("eight_schools", "jax:python", 100.0, gradient_us=60.0, sampler_us_per_step=12.0),
        _cell("eight_schools", "pymc", 150.0),
        _cell("eight_schools", "blackjax", 250.0, us_per_step=5.0),
        _cell("eight_schools", "blackjax", 350.0, repeat=1, us_per_step=7.0),
        _cell("eight_schools", "nutpie", None, status="timeout", note="no result within 1800 s"),
    ]
    summary = sampling.summarize(cells)
    assert summary[("eight_schools", "jax", "cold")]["min_ess_per_s"] == 300.0  # median of 200 and 400
    assert summary[("eight_schools", "jax", "cold")]["n"] == 2
    assert summary[("eight_schools", "nutpie", "cold")]["status"] == "timeout"
    md = sampling.to_markdown(_result(cells, repeats=2))
    assert "medians over 2 repeats" in md and "highest 1-min 2.50" in md
    cold = md.split("## min ESS-bulk per second of total wall time (cold)")[1]
    assert "| ppl_ad `jax` (default) | 300.0 |" in cold
    assert "| nutpie | timeout |" in cold
    # ppl_ad's default against the best peer (BlackJAX, median 300) and against PyMC
    assert "| ppl_ad `jax` (default) ÷ best peer | 1.00 (BlackJAX) |" in cold
    assert "| ppl_ad `jax` (default) ÷ PyMC | 2.00 |" in cold
    steps = md.split("## time per leapfrog step")[1]
    assert "| ppl_ad `jax` (default) | 11.0 |" in steps and "| BlackJAX | 6.0 |" in steps
    assert "| ppl_ad `jax` (default) ÷ BlackJAX | 1.83 |" in steps
    table = md.split("### eight_schools (d = 10)")[1]
    lines = [line for line in table.splitlines() if line.startswith("| ")][1:]
    assert lines[0].startswith("| ppl_ad `jax` (default) | cold | 300.0 | 1.00 |")
    assert any(line.startswith("| ppl_ad `jax` (default) | warm | 900.0 | 1.00 |") for line in lines)
    assert any(line.startswith("| nutpie | cold | - |") and "no result within 1800 s" in line for line in lines)
    assert "4 chains x (1000 warmup + 1000 draws)" in md
    sampling.plot(_result(cells), tmp_path / "sampling.png")
    assert (tmp_path / "sampling.png").stat().st_size > 1000


def test_cli_runs_each_cell_cold_then_warm_with_its_own_cache(tmp_path, monkeypatch):
    calls = []

    def fake(model, sampler, **kw):
        calls.append((model, sampler, kw["phase"], kw["cache_dir"], kw["draws"], kw["timeout"]))
        assert __import__("os").path.isdir(kw["cache_dir"])
        return _cell(model, sampler, 100.0 if sampler == "jax" else 50.0, phase=kw["phase"])

    monkeypatch.setattr(sampling, "run_sampling_cell", fake)
    monkeypatch.setattr("ppl_ad.bench.peers.available_peers", lambda: ["pymc", "blackjax"])
    args = argparse.Namespace(out=str(tmp_path), models="eight_schools,normal_normal", backends="jax,jax:python",
                              timeout=60.0, peers=True, no_progress=True, sampling=True, draws=200, tune=100,
                              chains=2, repeats=None)
    assert cli.main(args) == 0
    a, b = "eight_schools", "normal_normal"
    assert [(m, s, p) for m, s, p, *_ in calls] == [
        (m, s, p) for m in (a, b) for s in ("jax", "jax:python", "pymc", "blackjax") for p in ("cold", "warm")]
    # a cold run and its warm run share a cache folder; every pair has its own, removed afterwards
    dirs = [c[3] for c in calls]
    assert dirs[0] == dirs[1] and dirs[1] != dirs[2] and not __import__("os").path.exists(dirs[0])
    assert {c[4] for c in calls} == {200} and {c[5] for c in calls} == {60.0}
    data = json.loads((tmp_path / "sampling.json").read_text())
    assert data["settings"]["draws"] == 200 and data["settings"]["cores"] == 1
    assert len(data["cells"]) == 16 and len(data["load_average"]) == 9
    assert "| ppl_ad `jax` (default) | 100.0 |" in (tmp_path / "sampling.md").read_text()
    assert (tmp_path / "sampling.png").exists()


def test_a_cell_environment_points_every_cache_at_the_cell_folder(tmp_path):
    env = sampling.cell_environment(str(tmp_path))
    assert env["PPL_AD_CACHE_DIR"] == str(tmp_path)
    assert f"base_compiledir={tmp_path / 'pytensor'}" in env["PYTENSOR_FLAGS"]
    assert env["OMP_NUM_THREADS"] == "1" and "intra_op_parallelism_threads=1" in env["XLA_FLAGS"]


def test_unknown_sampler_names_stop_the_matrix_before_anything_runs(tmp_path):
    from ppl_ad.errors import UnknownBackendError

    args = argparse.Namespace(out=str(tmp_path), models="eight_schools", backends="jaxx:python", timeout=60.0,
                              peers=False, no_progress=True, sampling=True, draws=10, tune=10, chains=1, repeats=None)
    with pytest.raises(UnknownBackendError, match="jax"):
        cli.main(args)


def test_the_peers_are_installed_where_the_tests_run():
    # `make test` installs the bench extra: a missing peer must fail here, not skip the peer tests
    from ppl_ad.bench.peers import PEERS, available_peers

    assert available_peers() == list(PEERS)


def test_peer_models_match_the_ppl_ad_site_names():
    from ppl_ad.bench.peers import pymc_model
    from ppl_ad.testing.scenarios import STANDARD

    for name in STANDARD:
        sites, dimension = sampling._sampled_sites(name)
        model = pymc_model(name)
        assert {v.name for v in model.free_RVs} == set(sites), name
        assert sum(np.size(v) for v in model.initial_point().values()) == dimension, name


def test_the_hand_written_jax_densities_match_ppl_ads():
    # BlackJAX samples these: same unconstrained space, same density up to a constant
    import ppl_ad as pa
    from ppl_ad.bench.peers import jax_logdensity
    from ppl_ad.testing.scenarios import STANDARD, get_scenario

    rng = np.random.default_rng(3)
    for name in STANDARD:
        ld = pa.logdensity(get_scenario(name).model(), backend="jax")
        fn, layout = jax_logdensity(name)
        ours = {site: s for site, _, s in ld.compiled.layout()}
        assert {site for site, _, _ in layout} == set(ours), name
        values, grads = [], []
        for _ in range(2):
            theta = rng.uniform(-1, 1, ld.dimension)
            mine = np.concatenate([theta[ours[site]] for site, _, _ in layout])
            value, grad = ld.logdensity_and_gradient(theta)
            import jax

            v, g = jax.value_and_grad(fn)(mine)
            values.append(value - float(v))
            expected = np.concatenate([grad[ours[site]] for site, _, _ in layout])
            np.testing.assert_allclose(np.asarray(g), expected, rtol=1e-9, atol=1e-9, err_msg=name)
        assert values[0] == pytest.approx(values[1], abs=1e-8), name


@pytest.mark.parametrize("peer", ["blackjax", "nutpie"])
def test_the_compiled_peers_run_a_cell(peer):
    row = sampling.sampling_cell("eight_schools", peer, draws=40, tune=40, chains=2, seed=2)
    assert row["status"] == "ok", row["note"]
    assert row["min_ess_bulk"] > 0 and row["wall_s"] > 0 and row["compile_s"] > 0
    assert row["gradient_evaluations"] > row["sampling_steps"] > 0
    assert row["ess_per_1k_grad"] == pytest.approx(1000 * row["min_ess_bulk"] / row["gradient_evaluations"])
    if peer == "blackjax":  # BlackJAX's sampling phase is timed apart from compilation and warmup
        assert row["us_per_step"] == pytest.approx(row["sampling_s"] / row["sampling_steps"] * 1e6)


def test_blackjax_samples_ppl_ads_density_of_a_model_without_a_hand_written_one():
    """A posteriordb model has no hand-written JAX density: BlackJAX runs ppl_ad's, and the ESS are
    of the constrained sites (the same quantities as ppl_ad's rows)."""
    row = sampling.sampling_cell("normal_normal", "blackjax", draws=60, tune=60, chains=2, seed=3)
    assert row["status"] == "ok", row["note"]
    assert row["note"] == "on ppl_ad's JAX density"
    assert row["min_ess_bulk"] > 0 and row["max_rhat"] < 1.2
    assert row["gradient_evaluations"] > row["sampling_steps"] > 0


def test_ppl_ad_density_for_peers_reports_constrained_sites():
    logdensity, dim, posterior = sampling._ppl_ad_density("beta_bernoulli")
    assert dim == 1 and np.isfinite(float(logdensity(np.zeros(1))))
    dataset = posterior(np.array([[[0.0], [np.log(3.0)]]]))  # logit(p): p = 1/2 and 3/4
    np.testing.assert_allclose(dataset["p"].values, [[0.5, 0.75]])
