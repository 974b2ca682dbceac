"""Backend choice precedence: argument > decorator > config per model > env > config default > built-in."""

from __future__ import annotations

import numpy as np
import pytest

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad.config import load_config, resolve_backend


@pa.model
def tiny(y):
    mu = pa.sample("mu", dist.Normal(0.0, 1.0))
    pa.observe("y", dist.Normal(mu, 1.0), y)


@pa.model(name="tiny_pinned", backend="autograd")
def pinned(y):
    mu = pa.sample("mu", dist.Normal(0.0, 1.0))
    pa.observe("y", dist.Normal(mu, 1.0), y)


Y = np.array([0.1, -0.3])


def _write(path, text):
    path.write_text(text)
    return path


def test_builtin_default_is_jax():
    assert resolve_backend(tiny(Y)) == ("jax", "built-in default")


def test_full_precedence_chain(tmp_path, monkeypatch):
    _write(tmp_path / "pyproject.toml", """
[tool.ppl_ad]
backend = "torch"
[tool.ppl_ad.models.tiny]
backend = "jax-forward"
""")
    model = tiny(Y)
    spec, source = resolve_backend(model)
    assert spec == "jax-forward" and "[tool.ppl_ad.models.tiny]" in source and "pyproject.toml" in source
    monkeypatch.setenv("PPL_AD_BACKEND", "autograd")
    assert resolve_backend(model)[0] == "jax-forward"  # per-model config beats the environment
    assert resolve_backend(model, "jax") == ("jax", "argument backend=")
    pinned_model = pinned(Y)
    assert resolve_backend(pinned_model)[0] == "autograd"
    assert "@pa.model" in resolve_backend(pinned_model)[1]


def test_env_beats_config_default(tmp_path, monkeypatch):
    _write(tmp_path / "ppl_ad.toml", 'backend = "torch"\n')
    model = tiny(Y)
    assert resolve_backend(model)[0] == "torch"
    monkeypatch.setenv("PPL_AD_BACKEND", "autograd")
    assert resolve_backend(model) == ("autograd", "environment variable PPL_AD_BACKEND")


def test_logdensity_records_backend_and_reason(tmp_path):
    _write(tmp_path / "ppl_ad.toml", "[tool.ppl_ad.models.tiny]\nbackend = \"autograd\"\n")
    ld = pa.logdensity(tiny(Y))
    assert ld.backend.name == "autograd"
    assert "ppl_ad.toml" in ld.backend_source and "models.tiny" in ld.backend_source


def test_nearest_config_is_found_from_a_subfolder(tmp_path, monkeypatch):
    _write(tmp_path / "pyproject.toml", '[tool.ppl_ad]\nbackend = "torch"\n')
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert load_config().backend == "torch"


@pytest.mark.parametrize(
    "text, match",
    [
        ('[tool.ppl_ad]\nbakend = "jax"\n', r"unknown key 'tool.ppl_ad.bakend'"),
        ('[tool.ppl_ad]\nbackend = "jaxx"\n', r"key 'tool.ppl_ad.backend'.*unknown AD backend 'jaxx'"),
        ("[tool.ppl_ad]\nbackend = 3\n", r"key 'tool.ppl_ad.backend' must be a string"),
        ('[tool.ppl_ad.models.tiny]\nbackend = "nope"\n', r"tool.ppl_ad.models.tiny.backend"),
        ('[tool.ppl_ad.models.tiny]\nmode = "fast"\n', r"unknown key 'tool.ppl_ad.models.tiny.mode'"),
        ("[tool.ppl_ad\n", r"not valid TOML"),
    ],
)
def test_invalid_config_names_file_and_key(tmp_path, text, match):
    _write(tmp_path / "pyproject.toml", text)
    with pytest.raises(pa.ConfigError, match=match) as info:
        pa.logdensity(tiny(Y))
    assert "pyproject.toml" in str(info.value)


def test_unknown_backend_in_the_environment_variable_says_so(monkeypatch):
    monkeypatch.setenv("PPL_AD_BACKEND", "jaxx")
    with pytest.raises(pa.UnknownBackendError, match=r"environment variable PPL_AD_BACKEND='jaxx'.*Did you mean 'jax'"):
        pa.logdensity(tiny(Y))


def test_auto_in_the_environment_variable_is_accepted(monkeypatch):
    monkeypatch.setenv("PPL_AD_BACKEND", "auto")
    assert resolve_backend(tiny(Y)) == ("auto", "environment variable PPL_AD_BACKEND")


def test_misspelled_model_section_warns(tmp_path):
    _write(tmp_path / "pyproject.toml", '[tool.ppl_ad.models.tinyy]\nbackend = "autograd"\n')
    with pytest.warns(UserWarning, match=r"\[tool.ppl_ad.models.tinyy\] does not apply to model 'tiny'.*did you mean "
                                         r"\[tool.ppl_ad.models.tiny\]"):
        assert resolve_backend(tiny(Y)) == ("jax", "built-in default")


def test_unrelated_model_sections_do_not_warn(tmp_path):
    import warnings

    _write(tmp_path / "pyproject.toml", '[tool.ppl_ad.models.eight_schools]\nbackend = "autograd"\n'
                                        '[tool.ppl_ad.models.tiny]\nbackend = "jax-forward"\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_backend(tiny(Y))[0] == "jax-forward"
        assert resolve_backend(pinned(Y))[0] == "autograd"
