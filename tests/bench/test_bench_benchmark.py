import json

import numpy as np

import ppl_ad as pa
from ppl_ad.backends import registry
from ppl_ad.bench.benchmark import BenchmarkTable, benchmark, time_call
from ppl_ad.testing.scenarios import get_scenario

BACKENDS = ["jax", "jax-forward", "autograd"]


def test_benchmark_rows_sane_and_correct_on_eight_schools():
    table = pa.benchmark(get_scenario("eight_schools").model(), backends=BACKENDS, repeats=3)
    assert isinstance(table, BenchmarkTable)
    assert [r["name"] for r in table] == BACKENDS
    assert table.dimension == 10
    for row in table:
        assert row["correct"] == "ok", row
        assert row["max_rel_error"] < 1e-6
        assert row["prepare_s"] >= 0
        assert 0 < row["logdensity_us"] < 1e6 and 0 < row["gradient_us"] < 1e6
        assert np.isclose(row["ratio"], row["gradient_us"] / row["logdensity_us"])
        assert row["repeats"] == 3


def test_failing_backend_becomes_error_row(monkeypatch):
    real = registry.prepare

    def broken(compiled, backend):
        if backend.name == "autograd":
            raise RuntimeError("boom in prepare")
        return real(compiled, backend)

    monkeypatch.setattr(registry, "prepare", broken)
    table = benchmark(get_scenario("normal_normal").model(), backends=["jax-forward", "autograd", "no-such"], repeats=2)
    rows = {r["name"]: r for r in table}
    assert rows["autograd"]["correct"] == "error"
    assert "boom in prepare" in rows["autograd"]["note"]
    assert rows["autograd"]["gradient_us"] is None
    assert rows["jax-forward"]["correct"] == "ok"
    assert rows["no-such"]["correct"] == "error" and "unknown AD backend" in rows["no-such"]["note"]


def test_wrong_gradient_is_flagged(monkeypatch):
    real = registry.prepare

    def skewed(compiled, backend):
        prepared = real(compiled, backend)
        if backend.name != "jax-forward":
            return prepared
        inner = prepared.value_and_gradient
        prepared.value_and_gradient = lambda theta: (inner(theta)[0], inner(theta)[1] * 1.01)
        return prepared

    monkeypatch.setattr(registry, "prepare", skewed)
    table = benchmark(get_scenario("normal_normal").model(), backends=["jax-forward"], repeats=2)
    assert table[0]["correct"] == "wrong"
    assert 5e-3 < table[0]["max_rel_error"] < 2e-2


def test_markdown_json_and_str():
    table = benchmark(get_scenario("normal_normal").model(), backends=["jax-forward"], repeats=2)
    md = table.to_markdown().splitlines()
    assert md[0].startswith("| name | mode | status")
    assert md[2].startswith("| jax-forward | forward | supported")
    data = json.loads(table.to_json())
    assert data["model"] == "normal_normal" and data["dimension"] == 1
    assert data["rows"][0]["correct"] == "ok"
    assert "jax-forward" in str(table)


def test_time_call_adaptive_repeats():
    calls = []
    median, n = time_call(lambda t: calls.append(t), 0.0, budget=0.01)
    assert n > 10 and median < 1e-3
    assert len(calls) >= n + 2
