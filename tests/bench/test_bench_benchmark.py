import contextlib
import json
import os

import numpy as np
import pytest

import ppl_ad as pa
from ppl_ad.backends import registry
from ppl_ad.bench import measure
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
        assert row["gradient_rel_error"] < 1e-6 and row["value_rel_error"] < 1e-6
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
    assert table[0]["gradient_rel_error"] == pytest.approx(0.01, rel=1e-3)
    assert table[0]["value_rel_error"] < 1e-9


def test_markdown_json_and_str():
    table = benchmark(get_scenario("normal_normal").model(), backends=["jax-forward"], repeats=2)
    md = table.to_markdown().splitlines()
    assert md[0].startswith("| name | mode | status")
    assert md[2].startswith("| jax-forward | forward | supported")
    data = json.loads(table.to_json())
    assert data["model"] == "normal_normal" and data["dimension"] == 1 and "gradient_rel_error" in data["rows"][0]
    assert data["rows"][0]["correct"] == "ok"
    assert "jax-forward" in str(table)


def test_time_call_adaptive_repeats():
    calls = []
    median, n = time_call(lambda t: calls.append(t), 0.0, budget=0.01)[:2]
    assert n > 10 and median < 1e-3
    assert len(calls) >= n + 2


def test_time_calls_interleaves_rounds_and_reports_the_spread():
    order = []
    timings = measure.time_calls({"a": lambda x: order.append("a"), "b": lambda x: order.append("b")}, 0.0,
                                 repeats=3, rounds=4, warmup=1)
    assert set(timings) == {"a", "b"} and timings["a"].rounds == 4 and timings["a"].repeats == 3
    timed = order[2:]  # after one warm-up call each
    assert timed == (["a"] * 3 + ["b"] * 3) * 4
    assert all(t.spread >= 0 for t in timings.values())


def test_one_relative_error_one_timer_one_table_class():
    from ppl_ad.backends.registry import BackendTable
    from ppl_ad.bench import auto, benchmark as bench_module, cli, peers
    from ppl_ad.table import Table
    from ppl_ad.testing import gradients

    assert gradients.relative_error is measure.relative_error is bench_module.relative_error
    assert bench_module.time_call is measure.time_call is peers.time_call
    for cls in (BackendTable, BenchmarkTable, gradients.GradientCheck, auto.Recommendation, cli.PeersTable,
                cli.CrossoverTable):
        assert issubclass(cls, Table)
        assert not {"__str__", "to_markdown", "to_json"} & set(vars(cls)), cls


def test_relative_error_is_the_max_norm_definition():
    assert measure.relative_error([1.0, 100.0], [1.0, 100.0]) == 0.0
    # the error of the small component counts against the largest reference component
    assert measure.relative_error([2.0, 100.0], [1.0, 100.0]) == pytest.approx(0.01)
    assert measure.relative_error(-3.0, -2.0) == pytest.approx(0.5)
    assert measure.relative_error([1.0], [1.0, 2.0]) == float("inf")
    assert measure.relative_error([np.nan], [1.0]) == float("inf")
    assert measure.relative_error(0.0, 0.0) == 0.0


def test_benchmark_measures_under_the_samplers_thread_limits(monkeypatch):
    import ppl_ad.bench.benchmark as bench_module

    seen = []

    @contextlib.contextmanager
    def recording():
        seen.append("entered")
        yield {}

    monkeypatch.setattr(bench_module, "thread_limits", recording)
    benchmark(get_scenario("normal_normal").model(), backends=["jax-forward"], repeats=1)
    assert seen == ["entered"]


def test_thread_limits_follow_the_worker_environment(monkeypatch):
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "XLA_FLAGS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    expected = measure.measurement_environment()
    # two cores, four default chains: one thread per worker, XLA's Eigen pool off
    assert expected["OMP_NUM_THREADS"] == "1" and "xla_cpu_multi_thread_eigen=false" in expected["XLA_FLAGS"]
    with measure.thread_limits() as applied:
        assert applied == expected
        assert all(os.environ[k] == v for k, v in expected.items())
    assert "OMP_NUM_THREADS" not in os.environ and "XLA_FLAGS" not in os.environ
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert "OMP_NUM_THREADS" not in measure.measurement_environment()  # the user's setting wins
