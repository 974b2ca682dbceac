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
    # warmup takes gradient evaluations too, so every evaluation per draw exceeds the kept steps
    assert 1 <= row["steps_per_draw"] < row["evals_per_draw"]
    assert row["gradient_us"] > 0 and row["sampler_us_per_step"] > 0
    assert row["wall_s"] > row["tuning_s"] / 2  # two chains, one process: times add up


def test_a_failing_cell_is_a_row_naming_the_cause():
    row = sampling.sampling_cell("normal_normal", "no-such-backend", draws=10, tune=10, chains=1)
    assert row["status"] == "error"
    assert "no-such-backend" in row["note"] and row["min_ess_per_s"] is None


def test_a_crashed_cell_process_is_recorded():
    row = cli.run_sampling_cell("no_such_model", "jax", draws=10, tune=10, chains=1, timeout=120)
    assert row["status"] == "error" and "no_such_model" in row["note"]


def _cell(model, sampler, ess_per_s, **extra):
    row = sampling._row(model, sampler)
    row.update(dimension=10, wall_s=2.0, min_ess_bulk=ess_per_s * 2.0 if ess_per_s else None,
               min_ess_per_s=ess_per_s, steps_per_draw=7.0, evals_per_draw=15.0, divergences=0,
               max_rhat=1.001, **extra)
    return row


def _result(cells):
    return {"machine": cli.machine_info("ppl-ad bench --sampling"),
            "settings": {"draws": 1000, "tune": 1000, "chains": 4, "timeout": 1800.0}, "cells": cells}


def test_report_ranks_samplers_per_model_and_keeps_failures(tmp_path):
    cells = [
        _cell("eight_schools", "jax", 200.0, gradient_us=60.0, sampler_us_per_step=12.0),
        _cell("eight_schools", "pymc", 400.0),
        _cell("eight_schools", "torch", None, status="timeout", note="no result within 1800 s"),
    ]
    md = sampling.to_markdown(_result(cells))
    table = md.split("## eight_schools (d = 10)")[1]
    lines = [line for line in table.splitlines() if line.startswith("| ")][1:]
    assert lines[0].startswith("| pymc | 400.0 | 1.00 |")
    assert lines[1].startswith("| ppl_ad `jax` | 200.0 | 0.50 | 400 | 2.0 | 7.0 | 15.0 | 60.0 | 12.0 | 0 | 1.001 |")
    assert lines[2].startswith("| ppl_ad `torch` | - |") and "no result within 1800 s" in lines[2]
    assert "4 chains x (1000 warmup + 1000 draws)" in md
    sampling.plot(_result(cells), tmp_path / "sampling.png")
    assert (tmp_path / "sampling.png").stat().st_size > 1000


def test_cli_runs_the_matrix_model_by_model_and_writes_the_report(tmp_path, monkeypatch):
    calls = []

    def fake(model, sampler, **kw):
        calls.append((model, sampler, kw["draws"], kw["timeout"]))
        return _cell(model, sampler, 100.0 if sampler == "jax" else 50.0)

    monkeypatch.setattr(cli, "run_sampling_cell", fake)
    monkeypatch.setattr("ppl_ad.bench.peers.available_peers", lambda: ["pymc"])
    args = argparse.Namespace(out=str(tmp_path), models="eight_schools,normal_normal", backends="jax,torch",
                              timeout=60.0, peers=True, no_progress=True, sampling=True, draws=200, tune=100,
                              chains=2, repeats=None)
    assert cli.main(args) == 0
    a, b = "eight_schools", "normal_normal"
    assert [(m, s) for m, s, _, _ in calls] == [
        (a, "jax"), (a, "torch"), (a, "pymc"), (b, "jax"), (b, "torch"), (b, "pymc")]
    assert {d for _, _, d, _ in calls} == {200} and {t for _, _, _, t in calls} == {60.0}
    data = json.loads((tmp_path / "sampling.json").read_text())
    assert data["settings"] == {"draws": 200, "tune": 100, "chains": 2, "timeout": 60.0}
    assert len(data["cells"]) == 6
    assert "| ppl_ad `jax` | 100.0 | 1.00 |" in (tmp_path / "sampling.md").read_text()
    assert (tmp_path / "sampling.png").exists()


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
