"""ppl_ad.math at points where a naive formula's gradient is wrong: every tested backend agrees with
finite differences on models that reach them (a Gamma shape of exactly 1, a probability of exactly 0,
a zero factor of a product, a scalar against a vector in ``where``, a non-square diagonal, tuples in
``scan``)."""

from __future__ import annotations

import numpy as np
import pytest

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad import math as M
from ppl_ad.backends import registry

BACKENDS = [b.name for b in registry.tested()]


@pa.model
def gamma_shape(y):
    a = pa.sample("a", dist.LogNormal(0.0, 1.0))  # a = 1 at theta = 0: xlogy(a - 1, y) at x = 0
    pa.observe("y", dist.Gamma(a, 1.0), y)


@pa.model
def beta_shape():
    a = pa.sample("a", dist.LogNormal(0.0, 1.0))
    pa.sample("p", dist.Beta(a, 2.0))


@pa.model
def switched_off(k, n):
    q = pa.sample("q", dist.Beta(2.0, 2.0))
    on = pa.sample("on", dist.Normal(0.0, 1.0))  # clip(-0.4) = 0: Binomial(n, 0) with k = 0
    pa.observe("k", dist.Binomial(n, q * M.clip(on, 0.0, 1.0)), k)


@pa.model
def zero_factor(mask):
    a = pa.sample("a", dist.Normal(0.0, 1.0), shape=(3,))
    pa.factor("f", M.prod(a * mask) + M.sum(M.prod(M.stack([a, 2.0 * a]), 0)))


@pa.model
def changepoint(years, counts):
    s = pa.sample("s", dist.Uniform(0.0, 10.0))
    early = pa.sample("early", dist.Exponential(1.0))
    late = pa.sample("late", dist.Exponential(1.0))
    pa.observe("c", dist.Poisson(M.where(years < s, early, late)), counts)


@pa.model
def wide_diagonal(offset):
    w = pa.sample("w", dist.Normal(0.0, 1.0), shape=(2, 3))
    pa.factor("f", M.sum(M.diagonal(w + offset) ** 2))


@pa.model
def tuple_scan(y, u):
    phi = pa.sample("phi", dist.Normal(0.0, 0.5))
    s = pa.sample("s", dist.HalfNormal(1.0))

    def step(previous, xs):
        y_t, u_t = xs
        mu = phi * previous + 0.1 * u_t
        return y_t, (mu, 0.0 * mu + 1.0)

    _, (mu, ones) = M.scan(step, 0.0, (y, u))
    pa.observe("y", dist.Normal(mu, s * ones), y)


CASES = {
    "gamma shape 1": (gamma_shape(np.array([0.5, 2.0, 3.0])), np.array([0.0])),
    "beta shape 1": (beta_shape(), np.array([0.0, 0.5])),
    "binomial p = 0": (switched_off(np.array([0, 0]), np.array([5, 3])), np.array([0.2, -0.4])),
    "prod with a zero factor": (zero_factor(np.array([1.0, 0.0, 1.0])), np.array([0.5, 0.0, -0.3])),
    "where scalar vs vector": (changepoint(np.arange(10.0), np.array([3, 2, 4, 1, 0, 1, 0, 1, 2, 0])),
                               np.array([0.3, 0.1, -0.2])),
    "diagonal of a 2 x 3": (wide_diagonal(np.arange(6.0).reshape(2, 3)), np.linspace(-1.0, 1.0, 6)),
    "scan over tuples": (tuple_scan(np.array([0.3, -0.2, 0.5, 0.1]), np.array([1.0, 2.0, 0.5, 0.2])),
                         np.array([0.2, -0.1])),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(CASES))
def test_gradient_at_special_points_matches_finite_differences(case, backend):
    model, theta = CASES[case]
    value, gradient = pa.logdensity(model, backend=backend).logdensity_and_gradient(theta)
    expected_value, expected_gradient = pa.logdensity(model, backend="finite-difference").logdensity_and_gradient(theta)
    np.testing.assert_allclose(value, expected_value, rtol=1e-10)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-6, atol=1e-7)


def test_gamma_shape_1_gradient_is_the_closed_form():
    # theta = log a: the prior and Jacobian give -theta**2 / 2 (slope 0 at theta = 0), the likelihood
    # sum((a - 1) log y - y - gammaln(a)) the slope (sum(log y) - 3 digamma(a)) * a, at a = 1
    from scipy.special import digamma

    y = np.array([0.5, 2.0, 3.0])
    model, theta = CASES["gamma shape 1"]
    expected = np.log(y).sum() - 3 * digamma(1.0)
    for backend in ("jax", "torch", "autograd"):
        _, gradient = pa.logdensity(model, backend=backend).logdensity_and_gradient(theta)
        np.testing.assert_allclose(gradient, [expected], rtol=1e-10)


@pytest.mark.parametrize("backend", ["torch", "torch-forward"])
def test_numpy_methods_of_data_keep_their_numpy_meaning_under_torch(backend):
    # y.std() of a data tensor has ddof=1 in PyTorch: the density came out 0.2 off, silently
    @pa.model
    def scaled(y):
        s = pa.sample("s", dist.LogNormal(0.0, 1.0))
        pa.observe("y", dist.Normal(y.mean(), s * y.std()), y)

    @pa.model
    def integer_mean(y):
        m = pa.sample("m", dist.Normal(0.0, 1.0))
        pa.observe("y", dist.Normal(m + y.copy().mean(), 1.0), y)

    for model in (scaled(np.array([1.0, 2.0, 4.0])), integer_mean(np.array([1, 2, 4]))):
        expected = pa.logdensity(model, backend="jax").logdensity_and_gradient(np.array([0.1]))
        actual = pa.logdensity(model, backend=backend).logdensity_and_gradient(np.array([0.1]))
        np.testing.assert_allclose(actual[0], expected[0], rtol=1e-12)
        np.testing.assert_allclose(actual[1], expected[1], rtol=1e-10)


def test_a_tensor_method_of_a_parameter_with_another_meaning_is_refused_under_torch():
    @pa.model
    def spread():
        m = pa.sample("m", dist.Normal(0.0, 1.0), shape=(2,))
        pa.factor("f", -m.std())  # ddof=1 on a torch tensor, 0 in NumPy

    with pytest.raises(pa.ModelDefinitionError, match="under PyTorch its log density .* under NumPy"):
        pa.logdensity(spread(), backend="torch")


@pytest.mark.parametrize("backend", BACKENDS)
def test_reversed_data_combine_with_parameters_on_every_backend(backend):
    # np.flip(y) has negative strides, which PyTorch cannot view: it failed under torch
    @pa.model
    def reversed_data(y):
        x = pa.sample("x", dist.Normal(0.0, 1.0), shape=(3,))
        pa.factor("f", M.sum(np.flip(y) * x) + M.sum(x * y[::-1]))

    model = reversed_data(np.array([1.0, 2.0, 4.0]))
    theta = np.array([0.1, 0.2, 0.3])
    value, gradient = pa.logdensity(model, backend=backend).logdensity_and_gradient(theta)
    np.testing.assert_allclose(gradient, -theta + 2 * np.array([4.0, 2.0, 1.0]), rtol=1e-9)


def test_a_negative_slice_step_under_torch_gets_a_hint():
    @pa.model
    def reversed_():
        a = pa.sample("a", dist.Normal(0.0, 1.0), shape=(3,))
        pa.factor("f", M.sum(a[::-1] * np.array([1.0, 2.0, 3.0])))

    with pytest.raises(pa.ModelEvaluationError, match="no negative slice steps"):
        pa.logdensity(reversed_(), backend="torch").logdensity(np.zeros(3))


def test_sympy_backend_prints_maximum_and_minimum():
    import warnings

    @pa.model
    def extremes():
        a = pa.sample("a", dist.Normal(0.0, 1.0), shape=(3,))
        pa.factor("f", M.maximum(a[0], a[1]) + M.minimum(a[1], a[2]))

    theta = np.array([0.1, 0.3, -0.2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pa.PplAdDeprecationWarning)
        value, gradient = pa.logdensity(extremes(), backend="sympy").logdensity_and_gradient(theta)
    expected = pa.logdensity(extremes(), backend="finite-difference").logdensity_and_gradient(theta)
    np.testing.assert_allclose(value, expected[0], rtol=1e-12)
    np.testing.assert_allclose(gradient, expected[1], rtol=1e-6)
