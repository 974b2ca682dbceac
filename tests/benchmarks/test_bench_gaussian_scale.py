"""``benchmarks/bench_gaussian_scale.py``: its comparison statistics, and its report.

The samplers themselves are replaced by fakes here (a real run takes minutes); the fakes see the
Cholesky factor the script scales, so the test checks that the scale reaches them too.
"""

from __future__ import annotations

import json

import numpy as np
import pytest


def test_compare_gives_the_ratio_of_means_and_a_bootstrap_interval_around_it(gaussian_scale):
    rng = np.random.default_rng(1)
    a = rng.normal(20.0, 1.0, size=20)
    out = gaussian_scale.compare(a, a / 1.25, np.random.default_rng(0))
    assert out["ratio_of_means"] == pytest.approx(1.25)
    lo, hi = out["ratio_ci"]
    assert lo < 1.25 < hi and hi - lo < 0.3
    assert out["mann_whitney_p"] < 1e-4
    same = gaussian_scale.compare(a, a, np.random.default_rng(0))
    assert same["ratio_of_means"] == pytest.approx(1.0) and same["mann_whitney_p"] > 0.9


def test_report_per_scale_from_both_samplers(gaussian_scale, monkeypatch, tmp_path):
    seen = []

    def fake(factor):
        def run(L, seed, draws, tune):
            seen.append(float(L[0, 0]))
            return factor * (100.0 + seed), 1000 + 10 * seed
        return run

    monkeypatch.setattr(gaussian_scale, "_ppl_ad", fake(1.0))
    monkeypatch.setattr(gaussian_scale, "_pymc", fake(0.5))
    assert gaussian_scale.main(["--scales", "1,3", "--seeds", "3", "--out", str(tmp_path)]) == 0
    # the factor of the scaled covariance is the scale times the unscaled one
    assert seen[6] == pytest.approx(3.0 * seen[0])
    summary = json.loads((tmp_path / "gaussian_scale.json").read_text())["summary"]
    assert [s["scale"] for s in summary] == [1.0, 3.0]
    for s in summary:
        assert len(s["ppl_ad"]) == len(s["pymc"]) == 3
        assert s["ratio_of_means"] == pytest.approx(2.0)
    md = (tmp_path / "gaussian_scale.md").read_text()
    assert "| 1 | 100.0 (100.0-100.0) | 50.0 (50.0-50.0) |" in md and "| 3 |" in md and "2.00 (2.00-2.00)" in md
