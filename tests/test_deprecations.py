"""The deprecation mechanism, on the deprecated 'sympy' backend, by every selection route."""

from __future__ import annotations

import os
import warnings

import pytest

import ppl_ad as pa
from ppl_ad import _deprecations
from ppl_ad.errors import BackendRemovedError
from ppl_ad.testing.scenarios import normal_normal

pytest.importorskip("sympy")

import numpy as np  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_state():
    _deprecations.reset()
    yield
    _deprecations.reset()


def _model():
    return normal_normal(np.array([1.0, 2.0]), 1.0, 1.0)


def _only(record):
    found = [w for w in record if issubclass(w.category, pa.PplAdDeprecationWarning)]
    assert len(found) == 1, [str(w.message) for w in record]
    return found[0]


def test_message_category_and_user_line():
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        pa.logdensity(_model(), backend="sympy")
    warning = _only(record)
    assert issubclass(warning.category, FutureWarning)
    text = str(warning.message)
    assert "'sympy' AD backend (mode: source-transform)" in text
    assert "deprecated since ppl_ad 0.1.0 and will be removed in ppl_ad 0.3.0" in text
    assert "Why:" in text and "backend='jax'" in text and "backend='jax-forward'" in text
    assert "docs/migration.md" in text
    assert os.path.basename(warning.filename) == os.path.basename(__file__)


def test_warns_once_per_process():
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        pa.logdensity(_model(), backend="sympy")
        pa.logdensity(_model(), backend="sympy")
        pa.backends.get("sympy")
    _only(record)


def test_decorator_route():
    @pa.model(backend="sympy")
    def decorated(y):
        mu = pa.sample("mu", pa.dist.Normal(0.0, 1.0))
        pa.observe("y", pa.dist.Normal(mu, 1.0), y)

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ld = pa.logdensity(decorated(np.array([0.5])))
    assert ld.backend.name == "sympy"
    assert os.path.basename(_only(record).filename) == os.path.basename(__file__)


@pytest.mark.parametrize("content", ['backend = "sympy"\n', '[models.normal_normal]\nbackend = "sympy"\n'])
def test_config_file_routes(tmp_path, content):
    (tmp_path / "ppl_ad.toml").write_text(content)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ld = pa.logdensity(_model())
    assert ld.backend.name == "sympy"
    assert os.path.basename(_only(record).filename) == os.path.basename(__file__)


def test_environment_route(monkeypatch):
    monkeypatch.setenv("PPL_AD_BACKEND", "sympy")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ld = pa.logdensity(_model())
    assert ld.backend_source == "environment variable PPL_AD_BACKEND"
    assert os.path.basename(_only(record).filename) == os.path.basename(__file__)


def test_warning_can_be_made_an_error():
    with warnings.catch_warnings():
        warnings.simplefilter("error", pa.PplAdDeprecationWarning)
        with pytest.raises(pa.PplAdDeprecationWarning):
            pa.logdensity(_model(), backend="sympy")


def test_removed_after_removal_version(monkeypatch):
    monkeypatch.setattr(_deprecations, "current_version", lambda: "0.3.0")
    with pytest.raises(BackendRemovedError, match="deprecated in ppl_ad 0.1.0 and removed in 0.3.0"):
        pa.logdensity(_model(), backend="sympy")
    with pytest.raises(BackendRemovedError):
        pa.backends.get("sympy")


def test_still_deprecated_just_before_removal(monkeypatch):
    monkeypatch.setattr(_deprecations, "current_version", lambda: "0.2.9")
    with pytest.warns(pa.PplAdDeprecationWarning):
        pa.backends.get("sympy")


def test_supported_backends_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pa.backends.get("jax")
        pa.backends.get("finite-difference")


def test_tested_excludes_deprecated_and_removed():
    names = {b.name for b in pa.backends.tested()}
    assert "sympy" not in names
    assert all(b.status == "supported" for b in pa.backends.tested())



def test_parallel_chains_warn_once_at_the_users_line(tmp_path):
    """Worker processes rebuild the deprecated backend silently: the user sees the parent's warning only."""
    import subprocess
    import sys

    script = tmp_path / "user_script.py"
    script.write_text(
        "import ppl_ad as pa\n"
        "from ppl_ad.testing import get_scenario\n"
        "if __name__ == '__main__':\n"
        "    idata = pa.sample(get_scenario('normal_normal').model(), backend='sympy', chains=2, cores=2,\n"
        "                      draws=20, tune=50, progressbar=False)\n"
        "    print('processes', idata.attrs['processes'])\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "processes 2" in done.stdout
    assert done.stderr.count("PplAdDeprecationWarning") == 1
    assert "user_script.py:4: PplAdDeprecationWarning" in done.stderr


def test_ppl_ads_own_tools_do_not_use_up_the_users_warning():
    """pa.benchmark, pa.check_gradients and recommend try the deprecated backend quietly; the
    user's own use of it afterwards still warns (a CI that turns the warning into an error relies
    on it)."""
    model = _model()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        table = pa.benchmark(model, backends=["sympy"], repeats=2, points=1)
        pa.check_gradients(model, backends=["sympy"])
        pa.backends.recommend(model, backends=["sympy", "autograd"], refresh=True, rounds=1)
    assert not [w for w in record if issubclass(w.category, pa.PplAdDeprecationWarning)]
    assert "deprecated since ppl_ad 0.1.0" in table[0]["note"]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        pa.logdensity(model, backend="sympy")
    _only(record)
