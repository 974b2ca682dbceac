import time

import numpy as np

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

    monkeypatch.setattr(auto, "recommend", no_measuring)
    compiled = compile_model(model)
    start = time.perf_counter()
    name, reason = auto.choose_backend(compiled)
    assert time.perf_counter() - start < 0.05
    assert name == ld.backend.name and "cached decision" in reason
    assert auto.clear_cache() == 1
    assert not list((tmp_path / "auto").glob("*.json"))


def test_recommend_ranks_correct_first(monkeypatch):
    ranking = pa.backends.recommend(get_scenario("normal_normal").model(), backends=["autograd", "jax-forward"], budget=0.02)
    assert {r["name"] for r in ranking} == {"autograd", "jax-forward"}
    assert all(r["correct"] == "ok" for r in ranking)
    assert ranking[0]["gradient_us"] <= ranking[1]["gradient_us"]


def test_fingerprint_changes_with_data_shapes_not_values():
    y, s = np.arange(8.0), np.ones(8)
    base = auto.fingerprint(eight_schools(y, s))
    assert auto.fingerprint(eight_schools(y + 1.0, s)) == base
    assert auto.fingerprint(eight_schools(np.arange(9.0), np.ones(9))) != base
    assert auto.fingerprint(eight_schools(y.astype(np.float32), s)) != base


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
