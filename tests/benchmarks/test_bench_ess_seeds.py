"""``benchmarks/bench_ess_seeds.py``: configurations, and a small run through its report.

The script runs :func:`ppl_ad.bench.sampling.sampling_cell` per model, configuration and seed;
here on the conjugate Normal-Normal model with few draws (the numbers mean little, the table's
shape and the options reaching ``pa.sample`` do).
"""

from __future__ import annotations

import json

import pytest


def test_configurations_carry_sample_keywords(ess_seeds):
    assert ess_seeds.parse_config("low rank=jax:low_rank") == ("low rank", "jax:low_rank", {})
    assert ess_seeds.parse_config("t=jax;target_accept=0.9;max_treedepth=8") == (
        "t", "jax", {"target_accept": 0.9, "max_treedepth": 8})
    for bad in ("jax", "=jax", "x=", "x=jax;target_accept", "x=jax;metric_adaptation=fisher"):
        with pytest.raises(ValueError, match="configuration"):
            ess_seeds.parse_config(bad)


def test_a_small_run_reports_medians_over_seeds_and_failures(ess_seeds, tmp_path):
    configs = ["plain=autograd", "tight=autograd;target_accept=0.95", "broken=autograd;no_such_option=1"]
    args = ["--models", "normal_normal", "--seeds", "2", "--draws", "60", "--tune", "60", "--chains", "2",
            "--out", str(tmp_path)] + [x for c in configs for x in ("--config", c)]
    assert ess_seeds.main(args) == 0
    rows = json.loads((tmp_path / "ess_seeds.json").read_text())["rows"]
    assert len(rows) == 6 and {r["seed"] for r in rows} == {1, 2}
    by = {(r["label"], r["seed"]): r for r in rows}
    for seed in (1, 2):
        plain, tight = by["plain", seed], by["tight", seed]
        assert plain["status"] == tight["status"] == "ok"
        assert plain["warmup_gradients"] == plain["gradient_evaluations"] - plain["sampling_steps"] > 0
        assert 0 < plain["acceptance_rate"] <= 1 and plain["step_size"] > 0
        assert by["broken", seed]["status"] == "error" and "no_such_option" in by["broken", seed]["note"]
    # the option reached pa.sample: a higher target acceptance adapts a smaller step size
    assert max(by["tight", s]["step_size"] for s in (1, 2)) < min(by["plain", s]["step_size"] for s in (1, 2))
    md = (tmp_path / "ess_seeds.md").read_text()
    assert "## normal_normal" in md and "| plain |" in md and "| broken | - |" in md
    assert "(" in md.split("| plain |")[1].splitlines()[0]  # a range over the two seeds
