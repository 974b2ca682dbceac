"""``ppl_ad._keywords``: every public entry point names a misspelled or foreign keyword with the
ppl_ad one, as a ConfigError that is also Python's TypeError."""

from __future__ import annotations

import numpy as np
import pytest

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad._keywords import ALIASES, UnexpectedKeywordError, check_keywords, checks_keywords


@pa.model
def normal(y):
    mu = pa.sample("mu", dist.Normal(0.0, 3.0))
    pa.observe("y", dist.Normal(mu, 1.0), y)


MODEL = normal(np.array([1.0, 2.0]))


def _idata():
    return pa.sample(MODEL, draws=10, tune=10, chains=1, seed=1, progressbar=False)


@pytest.mark.parametrize("call, wrong, right", [
    (lambda: pa.sample_prior_predictive(MODEL, samples=10), "samples", "draws"),
    (lambda: pa.sample_prior_predictive(MODEL, 10, random_seed=1), "random_seed", "seed"),
    (lambda: pa.sample_posterior_predictive(MODEL, _idata(), random_seed=1), "random_seed", "seed"),
    (lambda: pa.sample_posterior_predictive(MODEL, trace=_idata()), "trace", "idata"),
    (lambda: pa.find_MAP(MODEL, random_seed=1), "random_seed", "seed"),
    (lambda: pa.find_MAP(MODEL, initvals={"mu": 1.0}), "initvals", "start"),
    (lambda: pa.logdensity(MODEL, backnd="jax"), "backnd", "backend"),
    (lambda: pa.compute_log_likelihood(MODEL, _idata(), extend_inference_data=False), "extend_inference_data",
     "extend_inferencedata"),
    (lambda: pa.sbc(MODEL, simulation=5), "simulation", "simulations"),
    (lambda: pa.sample(MODEL, initvals={"mu": 1.0}), "initvals", "init"),
    (lambda: pa.sample(MODEL, nuts_sampler="numpyro"), "nuts_sampler", "engine"),
])
def test_public_functions_suggest_the_keyword(call, wrong, right):
    with pytest.raises(TypeError, match=f"'{wrong}' \\(did you mean '{right}'\\?\\)") as info:
        call()
    assert isinstance(info.value, pa.ConfigError) and isinstance(info.value, UnexpectedKeywordError)
    assert "it accepts:" in str(info.value)


def test_aliases_point_only_to_keywords_the_function_takes():
    def f(model, start=None):
        return start

    with pytest.raises(UnexpectedKeywordError, match="'inits' \\(did you mean 'start'\\?\\)"):
        check_keywords(f, {"inits": 1})
    with pytest.raises(UnexpectedKeywordError) as info:  # 'draws' is not f's: no suggestion
        check_keywords(f, {"num_samples": 1})
    assert "did you mean" not in str(info.value)
    assert all(isinstance(v, tuple) and v for v in ALIASES.values())


def test_the_wrapper_passes_everything_through():
    @checks_keywords
    def f(a, b=2, *, c=3):
        """Doc."""
        return a, b, c

    assert f(1) == (1, 2, 3) and f(1, c=5) == (1, 2, 5) and f(a=0, b=1) == (0, 1, 3)
    assert f.__doc__ == "Doc." and f.__name__ == "f"
    with pytest.raises(UnexpectedKeywordError, match="'d'"):
        f(1, d=4)
    with pytest.raises(TypeError):  # a missing argument is still Python's own error
        f()
