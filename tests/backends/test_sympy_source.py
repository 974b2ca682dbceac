"""The deprecated sympy source-transform backend: gradient, generated source, size limit."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import scipy.stats as st

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad import math as M
from ppl_ad.backends import SymPy
from ppl_ad.errors import BackendCompilationError
from ppl_ad.testing.scenarios import get_scenario, logistic_regression

pytest.importorskip("sympy")


@pytest.fixture(autouse=True)
def _quiet_deprecation():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pa.PplAdDeprecationWarning)
        yield


@pa.model
def beta_binomial(n, k):
    p = pa.sample("p", dist.Beta(2.0, 3.0))
    pa.observe("k", dist.Binomial(n, p), k)


def _check_gradient(model, rng):
    ld = pa.logdensity(model, backend="sympy")
    reference = pa.logdensity(model, backend="finite-difference")
    for _ in range(2):
        theta = rng.normal(size=ld.dimension)
        value, gradient = ld.logdensity_and_gradient(theta)
        expected_value, expected_gradient = reference.logdensity_and_gradient(theta)
        assert value == pytest.approx(expected_value, rel=1e-10)
        assert ld.logdensity(theta) == pytest.approx(expected_value, rel=1e-10)
        np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-6, atol=1e-8)
    return ld


def test_gradient_normal_normal_and_source(rng):
    ld = _check_gradient(get_scenario("normal_normal").model(), rng)
    source = ld.source()
    assert "def value_and_gradient(theta):" in source
    assert "theta_0 = theta[0]" in source
    compile(source, "<generated>", "exec")


def test_gradient_beta_binomial(rng):
    _check_gradient(beta_binomial(np.array([10, 12, 9]), np.array([3, 5, 4])), rng)


def test_gradient_eight_schools(rng):
    ld = _check_gradient(get_scenario("eight_schools").model(), rng)
    assert ld.dimension == 10
    assert ld.backend.mode == "source-transform"


def test_large_data_fails_fast_with_advice(rng):
    X = rng.normal(size=(2000, 3))
    y = (rng.uniform(size=2000) < 0.5).astype(np.int64)
    start = time.perf_counter()
    with pytest.raises(BackendCompilationError, match=r'backend="jax"') as info:
        pa.logdensity(logistic_regression(X, y), backend="sympy")
    assert time.perf_counter() - start < 5.0
    assert "max_operations=2000)" in str(info.value)


def test_operation_budget_stops_building(rng):
    X = rng.normal(size=(30, 2))
    y = (rng.uniform(size=30) < 0.5).astype(np.int64)
    with pytest.raises(BackendCompilationError, match="max_operations=100") as info:
        pa.logdensity(logistic_regression(X, y), backend=SymPy(max_operations=100))
    assert str(info.value).startswith("model 'logistic_regression'")


def test_unsupported_function_is_named():
    @pa.model
    def correlated(L):
        x = pa.sample("x", dist.Normal(0.0, 1.0), shape=(2,))
        pa.factor("quad", -0.5 * M.sum(M.solve_triangular(L, x, lower=True) ** 2))

    with pytest.raises(BackendCompilationError, match="does not support ppl_ad.math.solve_triangular"):
        pa.logdensity(correlated(np.eye(2)), backend="sympy")


def test_a_constant_covariance_needs_no_triangular_solve():
    # MvNormal applies a constant Cholesky factor as its inverse: a product SymPy can express
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])

    @pa.model
    def correlated(cov):
        pa.sample("x", dist.MvNormal(np.zeros(2), cov))

    x = np.array([0.3, -1.2])
    value, grad = pa.logdensity(correlated(cov), backend="sympy").logdensity_and_gradient(x)
    assert value == pytest.approx(st.multivariate_normal(np.zeros(2), cov).logpdf(x), rel=1e-12)
    np.testing.assert_allclose(grad, -np.linalg.solve(cov, x), rtol=1e-12)


def test_control_flow_on_parameters_is_explained():
    @pa.model
    def branchy(y):
        tau = pa.sample("tau", dist.HalfNormal(1.0))
        if tau > 1.0:
            pa.factor("extra", -tau)
        pa.observe("y", dist.Normal(0.0, tau), y)

    with pytest.raises(BackendCompilationError, match="cannot follow Python control flow"):
        pa.logdensity(branchy(np.array([0.1])), backend="sympy")


def test_a_recursion_whose_tree_doubles_per_step_is_refused_fast():
    # x_t = x_(t-1) - dt k x_(t-1): few operations, a tree of 2^T; sympy.count_ops walked that tree
    # for minutes at T = 30 before the model could be refused
    @pa.model
    def decay(y, dt):
        k = pa.sample("k", dist.HalfNormal(1.0))
        x0 = pa.sample("x0", dist.Normal(5.0, 2.0))
        sigma = pa.sample("sigma", dist.HalfNormal(1.0))

        def step(x, _):
            x = x + dt * (-k * x)
            return x, x

        _, xs = M.scan(step, x0, np.zeros(len(y)))
        pa.observe("y", dist.Normal(xs, sigma), y)

    start = time.perf_counter()
    with pytest.raises(BackendCompilationError, match="the number of operations in the log density"):
        pa.logdensity(decay(np.linspace(4.0, 1.0, 60), 0.1), backend="sympy")
    assert time.perf_counter() - start < 5.0
    ld = pa.logdensity(decay(np.linspace(4.0, 1.0, 4), 0.1), backend="sympy")  # a short one still builds
    assert np.isfinite(ld.logdensity_and_gradient(np.zeros(3))[0])
