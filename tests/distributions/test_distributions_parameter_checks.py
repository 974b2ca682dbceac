"""Parameters computed from other parameters, which no check at build time sees: off their constraint
(a simplex, increasing cut points) the log density is -inf on every backend, never a finite wrong value."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as st

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad import math as M
from ppl_ad.backends import registry
from ppl_ad.errors import ModelDefinitionError

TESTED = [b.name for b in registry.tested()]

Y_CAT = np.array([0, 2, 1, 2, 2, 0])
COUNTS = np.array([[3, 1, 2], [0, 4, 2]])


@pa.model
def categorical_beta(y):
    p = pa.sample("p", dist.Beta(1.0, 1.0), shape=3)  # a user's mistake: three probabilities, not a simplex
    pa.observe("y", dist.Categorical(p), y)


@pa.model
def categorical_rows(y):
    p = pa.sample("p", dist.Beta(1.0, 1.0), shape=3)
    pa.observe("y", dist.Categorical(M.stack([p, p], 0)), y)  # a batch of rows


@pa.model
def multinomial_beta(y):
    p = pa.sample("p", dist.Beta(1.0, 1.0), shape=3)
    pa.observe("y", dist.Multinomial(6, p), y)


@pa.model
def ordinal_free_cutpoints(y):
    c = pa.sample("c", dist.Normal(0.0, 2.0), shape=2)  # should be ordered
    pa.observe("y", dist.OrderedLogistic(0.3, c), y)


def _logit(p):
    return np.log(p) - np.log1p(-p)


def _beta_jacobian(p):
    return np.sum(np.log(p * (1.0 - p)))


@pytest.mark.parametrize("backend", TESTED)
def test_categorical_probabilities_off_the_simplex_give_minus_infinity(backend):
    on = np.array([0.2, 0.3, 0.5])
    for model, y in ((categorical_beta, Y_CAT), (categorical_rows, Y_CAT[:2])):
        ld = pa.logdensity(model(y), backend=backend)
        value, grad = ld.logdensity_and_gradient(_logit(on))
        assert value == pytest.approx(np.sum(np.log(on[y])) + _beta_jacobian(on), rel=1e-10)
        assert np.all(np.isfinite(grad))
        assert ld.logdensity_and_gradient(_logit(np.array([0.2, 0.3, 0.4])))[0] == -np.inf
    assert pa.logdensity(categorical_beta(Y_CAT), backend=backend).non_finite_sites(
        _logit(np.array([0.6, 0.3, 0.4]))) == ["y"]


@pytest.mark.parametrize("backend", TESTED)
def test_multinomial_probabilities_off_the_simplex_give_minus_infinity(backend):
    ld = pa.logdensity(multinomial_beta(COUNTS), backend=backend)
    on = np.array([0.25, 0.25, 0.5])
    want = np.sum(st.multinomial.logpmf(COUNTS, 6, on)) + _beta_jacobian(on)
    assert ld.logdensity_and_gradient(_logit(on))[0] == pytest.approx(want, rel=1e-10)
    assert ld.logdensity_and_gradient(_logit(np.array([0.25, 0.25, 0.6])))[0] == -np.inf


@pytest.mark.parametrize("backend", TESTED)
def test_ordered_logistic_cutpoints_out_of_order_give_minus_infinity(backend):
    y = np.array([0, 1, 2, 2])
    ld = pa.logdensity(ordinal_free_cutpoints(y), backend=backend)
    c = np.array([-0.5, 0.8])
    cdf = 1.0 / (1.0 + np.exp(-(c - 0.3)))
    probs = np.diff(np.concatenate([[0.0], cdf, [1.0]]))
    want = np.sum(np.log(probs[y])) + np.sum(st.norm.logpdf(c, 0.0, 2.0))
    value, grad = ld.logdensity_and_gradient(c)
    assert value == pytest.approx(want, rel=1e-10)
    assert np.all(np.isfinite(grad))
    assert ld.logdensity_and_gradient(c[::-1])[0] == -np.inf


def test_sampling_such_a_model_names_the_observed_site_and_simulating_it_is_refused():
    with pytest.raises(pa.errors.SamplingError, match=r"sites \['y'\]"):
        pa.sample(categorical_beta(Y_CAT), draws=10, tune=10, chains=1, seed=1, progressbar=False)
    with pytest.raises(ModelDefinitionError, match="Categorical: parameter .p. must be non-negative and sum to 1"):
        pa.sample_prior_predictive(categorical_beta(Y_CAT), draws=5, seed=1)


def test_a_softmax_or_a_dirichlet_passes_the_check():
    @pa.model
    def softmax_rows(y):
        eta = pa.sample("eta", dist.Normal(0.0, 1.0), shape=(2, 3))
        p = M.exp(eta - M.logsumexp(eta, -1, keepdims=True))
        pa.observe("y", dist.Categorical(p), y)

    @pa.model
    def dirichlet(y):
        p = pa.sample("p", dist.Dirichlet(np.ones(3)))
        pa.observe("y", dist.Multinomial(6, p), y)

    rng = np.random.default_rng(3)
    for backend in TESTED:
        for model, y in ((softmax_rows, Y_CAT[:2]), (dirichlet, COUNTS)):
            ld = pa.logdensity(model(y), backend=backend)
            for _ in range(5):
                theta = rng.uniform(-3.0, 3.0, ld.dimension)
                assert np.isfinite(ld.logdensity_and_gradient(theta)[0]), (backend, model.name)


def test_simulating_cutpoints_out_of_order_is_refused():
    with pytest.raises(ModelDefinitionError, match="OrderedLogistic: parameter 'cutpoints' must be increasing"):
        # Normal(0, 2) cut points come out of order in about half of the draws
        pa.sample_prior_predictive(ordinal_free_cutpoints(np.array([0, 1, 2, 2])), draws=20, seed=1)


def test_values_given_as_python_lists_are_arrays():
    # a list skipped the support check, and 3 * [0.5] repeats the list
    assert dist.Gamma(2, 3).logpdf([0.5]) == pytest.approx([st.gamma(2, scale=1 / 3).logpdf(0.5)], rel=1e-12)
    assert dist.Pareto(2, 1.5).logpdf([1.0])[0] == -np.inf
    assert dist.Dirichlet(np.ones(3)).logpdf([0.2, 0.2, 0.2]) == -np.inf
    assert dist.OrderedLogistic(0.0, np.array([-1.0, 1.0])).logpdf([3.0])[0] == -np.inf
    np.testing.assert_allclose(dist.Normal(0, 1).log_cdf([0.0, 1.0]), st.norm.logcdf([0.0, 1.0]), rtol=1e-12)
    np.testing.assert_allclose(dist.Normal(0, 1).log_ccdf((0.0, 1.0)), st.norm.logsf([0.0, 1.0]), rtol=1e-12)


@pytest.mark.parametrize("build, name", [
    (lambda a, b: dist.BetaBinomial(a, b, 10), "BetaBinomial: parameter 'n'"),  # PyMC's order (alpha, beta, n)
    (lambda a, b: dist.Binomial(a * 10.0, 0.3), "Binomial: parameter 'n'"),
    (lambda a, b: dist.Multinomial(a, np.array([0.5, 0.5])), "Multinomial: parameter 'n'"),
])
def test_a_count_computed_from_parameters_is_refused_when_the_model_compiles(build, name):
    @pa.model
    def counts(y):
        a = pa.sample("a", dist.Gamma(2.0, 1.0))
        b = pa.sample("b", dist.Gamma(2.0, 1.0))
        pa.observe("y", build(a, b), y)

    with pytest.raises(ModelDefinitionError, match=rf"{name} must be a count .*not a value computed from the model's "
                                                     r"parameters\. The arguments are \(n, "):
        pa.logdensity(counts(np.array([[1, 1]]) if "Multinomial" in name else np.array([3, 4])), backend="jax")


def test_keyword_arguments_in_pymc_order_still_work():
    @pa.model
    def beta_binomial(y):
        a = pa.sample("a", dist.Gamma(2.0, 1.0))
        b = pa.sample("b", dist.Gamma(2.0, 1.0))
        pa.observe("y", dist.BetaBinomial(alpha=a, beta=b, n=10), y)

    ld = pa.logdensity(beta_binomial(np.array([3, 4])), backend="jax")
    want = (np.sum(st.betabinom(10, 2.0, 3.0).logpmf([3, 4])) + st.gamma(2.0).logpdf(2.0) + st.gamma(2.0).logpdf(3.0)
            + np.log(6.0))
    assert ld.logdensity(np.log([2.0, 3.0])) == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("build, message", [
    (lambda: dist.Normal(0.0, tau=4.0), r"Normal\(\) got an unexpected keyword argument 'tau': PyMC's precision: "
                                        r"pass sigma=1 / tau \*\* 0.5 \(ppl_ad's Normal takes \(mu, sigma\)\)"),
    (lambda: dist.Poisson(mu=3.0), "Poisson rate is lam"),
    (lambda: dist.Gamma(mu=2.0, sigma=1.0), r"alpha = mu\*\*2 / sigma\*\*2, beta = mu / sigma\*\*2"),
    (lambda: dist.Exponential(scale=2.0), r"takes the rate: pass lam=1 / scale"),
    (lambda: dist.NegativeBinomial2(mu=3.0, alpha=2.0), "PyMC's alpha is the dispersion phi"),
    (lambda: dist.MvNormal(np.zeros(2), chol=np.eye(2)), r"use MvNormalCholesky\(mu, L\)"),
])
def test_pymc_keywords_say_what_to_pass_instead(build, message):
    with pytest.raises(TypeError, match=message):
        build()


def test_other_unknown_keywords_keep_python_s_error():
    with pytest.raises(TypeError, match="unexpected keyword argument 'foo'"):
        dist.Normal(0.0, foo=1.0)


def test_every_keyword_hint_names_a_distribution_and_a_keyword_it_does_not_take():
    import inspect

    from ppl_ad.distributions.base import KEYWORD_HINTS

    for name, hints in KEYWORD_HINTS.items():
        taken = set(inspect.signature(getattr(dist, name)).parameters)
        assert not taken & set(hints), (name, taken & set(hints))


@pa.model
def multinomial_logit(y, counts):
    eta = pa.sample("eta", dist.Normal(0.0, 1.0), shape=(2, 3))
    p = M.softmax(eta)
    pa.observe("y", dist.Categorical(p), y)
    pa.observe("counts", dist.Multinomial(6, p), counts)


@pytest.mark.parametrize("backend", TESTED)
def test_a_softmax_of_logits_is_evaluated_as_a_log_softmax(backend):
    ld = pa.logdensity(multinomial_logit(Y_CAT[:2], COUNTS), backend=backend)
    rng = np.random.default_rng(0)
    for eta in (rng.normal(size=(2, 3)), np.array([[0.0, 800.0, 0.0], [-900.0, 0.0, 1.0]])):
        log_p = eta - np.log(np.sum(np.exp(eta - eta.max(-1, keepdims=True)), -1, keepdims=True)) - eta.max(-1, keepdims=True)
        want = (log_p[0, Y_CAT[0]] + log_p[1, Y_CAT[1]] + np.sum(st.norm.logpdf(eta))
                + np.sum(st.multinomial.logpmf(COUNTS, 6, np.full(3, 1 / 3))) - np.sum(COUNTS * np.log(1 / 3))
                + np.sum(COUNTS * log_p))
        value, grad = ld.logdensity_and_gradient(eta.ravel())
        # at logits 800 apart, softmax rounds a probability to 0: log(p) would be -inf
        assert value == pytest.approx(want, rel=1e-10)
        assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("build", [lambda: dist.MvNormal(np.zeros(4), np.eye(3)),
                                   lambda: dist.MvNormalCholesky(np.zeros((5, 2)), np.eye(3))])
def test_a_mean_and_covariance_of_different_sizes_are_refused_when_built(build):
    with pytest.raises(ModelDefinitionError, match=r"parameter 'mu' has \d entries on its last axis .* but '(cov|L)' "
                                                     r"is 3 x 3: they must agree"):
        build()
