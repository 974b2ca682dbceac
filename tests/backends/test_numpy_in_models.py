"""NumPy inside a model, on data and mixed with parameters, on every backend (issue 12 item 10)."""

from __future__ import annotations

import numpy as np
import pytest

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad import math as M
from ppl_ad.errors import ModelEvaluationError

SUPPORTED = ["jax", "jax-forward", "torch", "autograd"]
X = np.linspace(0.0, 1.0, 6)
Y = np.sin(3.0 * X)


@pa.model
def numpy_kernel(x, y):
    rho = pa.sample("rho", dist.HalfNormal(1.0))
    alpha = pa.sample("alpha", dist.HalfNormal(1.0))
    d2 = np.square(x[:, None] - x[None, :])  # NumPy on data
    K = alpha**2 * M.exp(-d2 / rho**2) + np.eye(len(x)) * 1e-2  # ndarray / tensor, tensor + ndarray
    K = np.eye(len(x)) * 0.1 + K  # ndarray + tensor
    L = M.cholesky(K)
    z = M.solve_triangular(L, M.asarray(y), lower=True)
    pa.factor("likelihood", -0.5 * M.sum(M.square(z)) - M.sum(M.log(M.diagonal(L))))
    pa.deterministic("scaled", np.ones(len(x)) / (1.0 + rho) - 2.0 ** rho)


THETA = np.array([0.3, -0.2])


@pytest.fixture(scope="module")
def reference():
    ld = pa.logdensity(numpy_kernel(X, Y), backend="finite-difference")
    return ld.logdensity_and_gradient(THETA)


@pytest.mark.parametrize("backend", SUPPORTED)
def test_numpy_on_data_and_arrays_mixed_with_parameters(backend, reference):
    ld = pa.logdensity(numpy_kernel(X, Y), backend=backend)
    value, gradient = ld.logdensity_and_gradient(THETA)
    np.testing.assert_allclose(value, reference[0], rtol=1e-10)
    np.testing.assert_allclose(gradient, reference[1], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ld.logdensity(THETA), reference[0], rtol=1e-10)


def test_torch_keeps_the_fast_mode_for_models_without_numpy():
    from ppl_ad.backends._torch_common import torch_logdensity_fn
    from ppl_ad.model.compiled import compile_model
    from ppl_ad.testing.scenarios import get_scenario

    assert not torch_logdensity_fn(compile_model(get_scenario("eight_schools").model())).numpy_interop()
    assert torch_logdensity_fn(compile_model(numpy_kernel(X, Y))).numpy_interop()


@pa.model
def numpy_on_parameter(y):
    mu = pa.sample("mu", dist.Normal(0.0, 1.0))
    scale = np.exp(mu)  # NumPy function of a parameter: cannot be differentiated
    pa.observe("y", dist.Normal(0.0, scale), y)


@pytest.mark.parametrize("backend", ["jax", "jax-forward", "torch"])
def test_numpy_function_of_a_parameter_names_the_line_and_pa_math(backend):
    with pytest.raises(ModelEvaluationError) as info:
        pa.logdensity(numpy_on_parameter(np.zeros(3)), backend=backend).logdensity_and_gradient(np.zeros(1))
    message = str(info.value)
    assert "'numpy_on_parameter'" in message and "pa.math" in message
    assert "scale = np.exp(mu)" in message and "line" in message


def test_autograd_differentiates_numpy_ufuncs_of_parameters():
    model = numpy_on_parameter(np.zeros(3))
    theta = np.array([0.5])
    expected = pa.logdensity(model, backend="finite-difference").logdensity_and_gradient(theta)
    value, gradient = pa.logdensity(model, backend="autograd").logdensity_and_gradient(theta)
    np.testing.assert_allclose(value, expected[0], rtol=1e-12)
    np.testing.assert_allclose(gradient, expected[1], rtol=1e-6)


@pa.model
def branch_on_parameter(y):
    mu = pa.sample("mu", dist.Normal(0.0, 1.0))
    if mu > 0:  # Python control flow on a parameter
        mu = mu * 2.0
    pa.observe("y", dist.Normal(mu, 1.0), y)


@pytest.mark.parametrize("backend", ["jax", "jax-forward"])
def test_jax_bool_conversion_becomes_model_evaluation_error(backend):
    # the cause named (a branch, not a NumPy function), with both ways out
    with pytest.raises(ModelEvaluationError, match=r"branches on a parameter's value .*if mu > 0.*"
                                                   r"TracerBoolConversionError.*M\.where\(condition, a, b\).*"
                                                   r"backend=\"torch\" or \"autograd\""):
        pa.logdensity(branch_on_parameter(np.zeros(3)), backend=backend)
    ld = pa.logdensity(branch_on_parameter(np.zeros(3)), backend="torch")  # a tape follows the branch
    assert ld.logdensity(np.array([0.5])) == pytest.approx(-0.5 * 0.25 - 3 * 0.5 - 2 * np.log(2 * np.pi), rel=1e-12)


@pa.model
def centred_on_summaries(y):
    mu = pa.sample("mu", dist.Normal(np.mean(y), 10.0 * np.std(y)))
    spread = np.max(y) - np.min(y) + 0.0 * np.sum(y) + 0.0 * np.var(y)
    pa.observe("y", dist.Normal(mu, spread), y)


@pytest.mark.parametrize("backend", SUPPORTED + ["torch-forward"])
def test_numpy_reductions_of_data_work_on_every_backend(backend):
    # np.std(y) of a data tensor calls y.std(axis=None, ddof=0, ...), which PyTorch refuses: the
    # torch backends then evaluate with NumPy data (the interop mode) instead of failing
    y = np.array([0.5, -1.0, 2.0, 0.3])
    reference = pa.logdensity(centred_on_summaries(y), backend="finite-difference").logdensity_and_gradient(
        np.array([0.2]))
    value, grad = pa.logdensity(centred_on_summaries(y), backend=backend).logdensity_and_gradient(np.array([0.2]))
    assert value == pytest.approx(reference[0], rel=1e-12)
    np.testing.assert_allclose(grad, reference[1], rtol=1e-7)


def test_torch_accepts_rounding_in_large_cancelling_data_terms():
    # Binomial counts of 1e9: gammaln terms of 2e10 cancel to -11.5; torch and NumPy differ by 4e-6
    @pa.model
    def census(n, y):
        a = pa.sample("a", dist.Normal(0.0, 1.0))
        pa.observe("y", dist.Binomial(n, M.sigmoid(a)), y)

    model = census(np.array([10**9]), np.array([5 * 10**8]))
    values = [pa.logdensity(model, backend=b).logdensity(np.array([0.0])) for b in ("jax", "torch")]
    np.testing.assert_allclose(values[1], values[0], rtol=1e-5)
