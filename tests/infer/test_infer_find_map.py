"""Tests of ppl_ad.infer.find_map."""

from __future__ import annotations

import numpy as np
import pytest

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad.errors import SamplingError
from ppl_ad.infer.find_map import find_MAP
from ppl_ad.infer.gaussian import GaussianLogDensity, NormalNormalLogDensity

Y = np.array([0.3, 1.7, 2.2, -0.4, 1.1])


def closed_form_mean(y, prior_sd=10.0, noise_sd=1.0):
    precision = len(y) / noise_sd**2 + 1.0 / prior_sd**2
    return float(np.sum(y) / noise_sd**2 / precision)


@pytest.mark.parametrize("method", ["L-BFGS-B", "BFGS", "Newton-CG", "Nelder-Mead"])
def test_find_map_on_a_conjugate_fake(method):
    ld = NormalNormalLogDensity(Y)
    result = find_MAP(ld, method=method, seed=0)
    assert set(result) == {"mu", "mu_shifted"}
    rtol = 1e-4 if method == "Nelder-Mead" else 1e-7
    assert float(result["mu"]) == pytest.approx(ld.posterior_mean(), rel=rtol)
    assert float(result["mu_shifted"]) == pytest.approx(ld.posterior_mean() + 1.0, rel=rtol)


def test_find_map_with_start():
    ld = GaussianLogDensity(np.array([1.0, -2.0, 3.0]), np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 3.0]]))
    result = find_MAP(ld, start={"x": np.array([10.0, 10.0, 10.0])})
    np.testing.assert_allclose(result["x"], ld.mean, atol=1e-4)  # scipy's default tolerances
    assert float(result["x_norm"]) == pytest.approx(np.linalg.norm(result["x"]), rel=1e-12)


@pa.model
def normal_normal_dsl(y):
    mu = pa.sample("mu", dist.Normal(0.0, 10.0))
    pa.observe("y", dist.Normal(mu, 1.0), y)


def test_find_map_with_the_dsl_equals_closed_form():
    result = find_MAP(normal_normal_dsl(Y), backend="finite-difference", seed=1)
    assert float(result["mu"]) == pytest.approx(closed_form_mean(Y), rel=1e-6)


def test_find_map_default_backend():
    ld = pa.logdensity(normal_normal_dsl(Y))
    result = find_MAP(ld)
    assert float(result["mu"]) == pytest.approx(closed_form_mean(Y), rel=1e-7)


class Unbounded(NormalNormalLogDensity):
    def logdensity_and_gradient(self, theta):
        return float(theta[0]), np.array([1.0])


def test_find_map_raises_on_unbounded_density():
    with pytest.raises(SamplingError, match=r"find_MAP: optimising the log density of model 'normal_normal'.*unbounded"):
        find_MAP(Unbounded(Y), seed=0)


def test_find_map_rejects_bad_start():
    with pytest.raises(TypeError, match="start"):
        find_MAP(NormalNormalLogDensity(Y), start=[1.0])
