import sys
import time

import numpy as np
import pytest

import ppl_ad as pa
from ppl_ad.bench import auto
from ppl_ad.model.compiled import compile_model
from ppl_ad.testing.scenarios import eight_schools, get_scenario


def test_auto_picks_correct_backend_caches_and_reads_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PPL_AD_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(auto, "candidates", lambda: [pa.backends.get("jax-forward"), pa.backends.get("autograd")])
    model = get_scenario("normal_normal").model()
    ld = pa.logdensity(model, backend="auto")
    assert ld.backend.name in ("jax-forward", "autograd")
    assert "fastest correct gradient" in ld.backend_source
    files = list((tmp_path / "auto").glob("*.json"))
    assert len(files) == 1
    reference = pa.logdensity(model, backend="finite-difference")
    theta = np.array([0.3])
    np.testing.assert_allclose(ld.logdensity_and_gradient(theta)[1], reference.logdensity_and_gradient(theta)[1], rtol=1e-6)

    def no_measuring(*args, **kwargs):
        raise AssertionError("the cached decision must not re-measure")

    monkeypatch.setattr(auto, "measure", no_measuring)
    compiled = compile_model(model)
    start = time.perf_counter()
    name, reason = auto.choose_backend(compiled)
    assert time.perf_counter() - start < 0.05
    assert name == ld.backend.name and "cached decision" in reason
    assert auto.clear_cache() == 1
    assert not list((tmp_path / "auto").glob("*.json"))


def test_recommend_ranks_correct_first(tmp_path, monkeypatch):
    monkeypatch.setenv("PPL_AD_CACHE_DIR", str(tmp_path))
    ranking = pa.backends.recommend(get_scenario("normal_normal").model(), backends=["autograd", "jax-forward"], budget=0.02)
    assert {r["name"] for r in ranking} == {"autograd", "jax-forward"}
    assert all(r["correct"] == "ok" for r in ranking)
    # the default (jax) is no candidate here, so the fastest comes first
    assert ranking[0]["gradient_us"] <= ranking[1]["gradient_us"]
    assert ranking.decision["backend"] == ranking[0]["name"] and ranking.decision["margin"] >= 0
    assert "fastest correct gradient" in str(ranking).splitlines()[0]


def test_auto_and_recommend_read_one_measurement(tmp_path, monkeypatch):
    monkeypatch.setenv("PPL_AD_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(auto, "candidates", lambda: [pa.backends.get("jax"), pa.backends.get("jax-forward")])
    measured = []
    real = auto.measure

    def counting(*args, **kwargs):
        measured.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(auto, "measure", counting)
    model = get_scenario("eight_schools").model()
    name, reason = auto.choose_backend(compile_model(model))
    ranking = pa.backends.recommend(model)
    assert len(measured) == 1  # recommend read auto's measurement
    assert ranking.cached and ranking[0]["name"] == ranking.decision["backend"] == name
    assert ranking.decision["reason"] in reason
    assert pa.backends.recommend(model, refresh=True).decision["backend"] in ("jax", "jax-forward")
    assert len(measured) == 2


def _rows(**times):
    return [{"name": name, "correct": "ok", "gradient_us": us, "spread": spread} for name, (us, spread) in times.items()]


def test_near_ties_go_to_the_default_backend_and_the_margin_is_recorded():
    tie = auto.decide(_rows(**{"jax": (103.0, 0.02), "jax-forward": (100.0, 0.03)}))
    assert tie["backend"] == "jax" and tie["tie"] and tie["fastest"] == "jax-forward"
    assert tie["margin"] == pytest.approx(100 / 103 - 1) and "near tie goes to the default" in tie["reason"]
    clear = auto.decide(_rows(**{"jax": (130.0, 0.02), "jax-forward": (100.0, 0.03)}))
    assert clear["backend"] == "jax-forward" and not clear["tie"] and clear["margin"] == pytest.approx(0.3)
    # a noisy measurement widens what counts as a tie
    noisy = auto.decide(_rows(**{"jax": (130.0, 0.4), "jax-forward": (100.0, 0.03)}))
    assert noisy["backend"] == "jax" and noisy["noise"] == pytest.approx(0.4)
    assert auto.decide(_rows(**{"jax": (90.0, 0.0), "torch": (100.0, 0.0)}))["margin"] == pytest.approx(100 / 90 - 1)
    wrong = _rows(**{"jax": (50.0, 0.0)})
    wrong[0]["correct"] = "wrong"
    assert auto.decide(wrong)["backend"] is None


def test_auto_measures_under_the_samplers_thread_limits(tmp_path, monkeypatch):
    import contextlib

    monkeypatch.setenv("PPL_AD_CACHE_DIR", str(tmp_path))
    seen = []

    @contextlib.contextmanager
    def recording():
        seen.append("entered")
        yield {}

    monkeypatch.setattr(auto, "thread_limits", recording)
    auto.recommend(get_scenario("normal_normal").model(), backends=["jax-forward"], budget=0.01, rounds=2)
    assert seen == ["entered"]


def test_fingerprint_changes_with_data_shapes_not_values():
    y, s = np.arange(8.0), np.ones(8)
    base = auto.fingerprint(eight_schools(y, s))
    assert auto.fingerprint(eight_schools(y + 1.0, s)) == base
    assert auto.fingerprint(eight_schools(np.arange(9.0), np.ones(9))) != base
    assert auto.fingerprint(eight_schools(y.astype(np.int64), s)) != base  # float32 data are bound as float64


def test_cache_dir_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("PPL_AD_CACHE_DIR", str(tmp_path))
    assert auto.cache_dir() == tmp_path / "auto"


def test_cli_cache_shows_and_clears_the_decisions(tmp_path, monkeypatch, capsys):
    from ppl_ad.cli import main

    monkeypatch.setenv("PPL_AD_CACHE_DIR", str(tmp_path))
    folder = tmp_path / "auto"
    folder.mkdir()
    for name in ("a.json", "b.json"):
        (folder / name).write_text("{}")
    assert main(["cache"]) == 0
    assert f"2 cached backend='auto' decisions in {folder}" in capsys.readouterr().out
    assert main(["cache", "--clear"]) == 0
    assert "deleted 2 cached" in capsys.readouterr().out and not list(folder.glob("*.json"))


_HELPER_USES_NUMPY = False


def _link(x):
    from ppl_ad import math as M

    return np.exp(x) if _HELPER_USES_NUMPY else M.exp(x)


@pa.model
def through_a_helper(y):
    mu = pa.sample("mu", pa.dist.Normal(0.0, 1.0))
    pa.observe("y", pa.dist.Poisson(_link(mu)), y)


def test_a_cached_choice_that_now_fails_is_measured_again(tmp_path, monkeypatch, caplog):
    # the fingerprint covers the model function's source, not the helpers and globals it uses:
    # a cached choice can go stale, and then backend="auto" measures again instead of failing
    monkeypatch.setenv("PPL_AD_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(auto, "candidates", lambda: [pa.backends.get("jax"), pa.backends.get("autograd")])
    monkeypatch.setattr(auto, "decide", lambda rows, **kw: {
        "backend": next((r["name"] for r in rows if r["correct"] == "ok" and r["name"] == "jax"),
                        next((r["name"] for r in rows if r["correct"] == "ok"), None)), "reason": "jax when correct"})
    model = through_a_helper(np.array([1, 3, 2]))
    assert pa.logdensity(model, backend="auto").backend.name == "jax"
    monkeypatch.setattr(sys.modules[__name__], "_HELPER_USES_NUMPY", True)
    with caplog.at_level("WARNING", logger=auto.logger.name):
        ld = pa.logdensity(model, backend="auto")
    assert ld.backend.name == "autograd" and "measured again after 'jax' failed" in ld.backend_source
    assert "'jax' failed on model 'through_a_helper'" in caplog.text
    reference = pa.logdensity(model, backend="finite-difference").logdensity_and_gradient(np.array([0.2]))
    np.testing.assert_allclose(ld.logdensity_and_gradient(np.array([0.2]))[1], reference[1], rtol=1e-6)
