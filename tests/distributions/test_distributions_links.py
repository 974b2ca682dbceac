"""``Bernoulli(M.sigmoid(a))``, ``Binomial(n, M.sigmoid(a))`` and ``Poisson(M.exp(a))`` in their logit
and log forms, on every tested backend (:func:`ppl_ad.math.link_argument`).

Before, the tape backends (torch, autograd) formed ``p = sigmoid(a)``, which rounds to 1 past
``a = 37``, and returned ``log(1 - p) = -inf`` with a NaN gradient where the JAX backends (which
rewrite the traced program) gave the finite value.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from scipy import stats

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad import math as M
from ppl_ad.backends import registry

X = np.array([1.0, 2.0, -0.5])
Y = np.array([0, 1, 1])
N = np.array([3, 5, 2])
K = np.array([0, 4, 2])


def _model(name, likelihood, observed):
    """A one-parameter model: ``b ~ Normal(0, 10)`` and ``likelihood(b * X)`` observed."""

    @pa.model(name=name)
    def one_coefficient(x, y):
        b = pa.sample("b", dist.Normal(0.0, 10.0))
        pa.observe("y", likelihood(b * x), y)

    return one_coefficient(X, observed)


#: the link-function form, and the distribution that takes the logit or log directly
PAIRS = {
    "bernoulli": (lambda eta: dist.Bernoulli(M.sigmoid(eta)), lambda eta: dist.BernoulliLogit(eta), Y),
    "binomial": (lambda eta: dist.Binomial(N, M.sigmoid(eta)), lambda eta: dist.BinomialLogit(N, eta), K),
    "poisson": (lambda eta: dist.Poisson(M.exp(eta)), lambda eta: dist.PoissonLog(eta), K),
}
BACKENDS = [b.name for b in registry.tested()]


@functools.lru_cache(maxsize=None)
def _densities(pair: str, backend: str):
    linked, direct, observed = PAIRS[pair]
    return (pa.logdensity(_model(f"{pair}_link", linked, observed), backend=backend),
            pa.logdensity(_model(f"{pair}_direct", direct, observed), backend="jax"))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pair", sorted(PAIRS))
@settings(max_examples=15, deadline=None)
@given(b=hs.floats(-60.0, 60.0))
def test_link_forms_agree_with_the_logit_and_log_distributions(pair, backend, b):
    if pair == "poisson":
        b = b / 10.0  # exp(b x) stays finite
    linked, direct = _densities(pair, backend)
    value, grad = linked.logdensity_and_gradient(np.array([b]))
    want_value, want_grad = direct.logdensity_and_gradient(np.array([b]))
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(value, want_value, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_probability_that_rounds_to_one_keeps_the_density_finite(backend):
    """The reported case: at b = 40 the first observation has p = sigmoid(40) == 1.0 and y = 0."""
    linked, _ = _densities("bernoulli", backend)
    value, grad = linked.logdensity_and_gradient(np.array([40.0]))
    eta = 40.0 * X
    want = np.sum(Y * eta - np.logaddexp(0.0, eta)) + stats.norm(0.0, 10.0).logpdf(40.0)
    assert value == pytest.approx(want, rel=1e-12)
    assert np.all(np.isfinite(grad))


def test_derived_values_are_used_as_they_are():
    """Only the very result of the link function is recognised: ``sigmoid(a) * 1.0`` is a probability
    like any other (and gives the usual -inf where it rounds to 1)."""

    @pa.model
    def scaled(x, y):
        b = pa.sample("b", dist.Normal(0.0, 10.0))
        pa.observe("y", dist.Bernoulli(M.sigmoid(b * x) * 1.0), y)

    ld = pa.logdensity(scaled(X, Y), backend="torch")
    assert ld.logdensity_and_gradient(np.array([5.0]))[0] == pytest.approx(
        _densities("bernoulli", "jax")[1].logdensity_and_gradient(np.array([5.0]))[0], rel=1e-12)
    assert ld.logdensity_and_gradient(np.array([40.0]))[0] == -np.inf
