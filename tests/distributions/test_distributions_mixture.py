"""Finite mixtures (``Mixture``, ``NormalMixture``): log density against scipy (hypothesis), both ways
of giving the components, gradients on every tested backend, a mixture model sampled with ordered
means, predictive draws and errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hs
from hypothesis.extra import numpy as hnp

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad import math as M
from ppl_ad.backends import registry
from ppl_ad.errors import ModelDefinitionError

TESTED = [b.name for b in registry.tested()]


@settings(max_examples=40, deadline=None)
@given(raw=hnp.arrays(np.float64, 3, elements=hs.floats(0.05, 1.0)),
       mu=hnp.arrays(np.float64, 3, elements=hs.floats(-3, 3)),
       sigma=hnp.arrays(np.float64, 3, elements=hs.floats(0.2, 3)),
       x=hnp.arrays(np.float64, 4, elements=hs.floats(-10, 10)))
def test_normal_mixture_matches_the_weighted_sum_of_densities(raw, mu, sigma, x):
    w = raw / raw.sum()
    with np.errstate(divide="ignore"):
        want = np.log(sum(w[k] * st.norm(mu[k], sigma[k]).pdf(x) for k in range(3)))
    finite = np.isfinite(want)  # far out, the weighted sum underflows; the mixture keeps its log
    batched = dist.NormalMixture(w, mu, sigma).logpdf(x)
    listed = dist.Mixture(w, [dist.Normal(mu[k], sigma[k]) for k in range(3)]).logpdf(x)
    np.testing.assert_allclose(batched[finite], want[finite], rtol=1e-10)
    np.testing.assert_allclose(listed, batched, rtol=1e-12)
    assert np.all(np.isfinite(batched))


def test_mixtures_of_other_families_and_per_row_weights():
    w = np.array([[0.2, 0.8], [0.9, 0.1]])
    y = np.array([3, 0])
    got = dist.Mixture(w, dist.Poisson(np.array([1.0, 10.0]))).logpdf(y)
    want = np.log([0.2 * st.poisson(1).pmf(3) + 0.8 * st.poisson(10).pmf(3),
                   0.9 * st.poisson(1).pmf(0) + 0.1 * st.poisson(10).pmf(0)])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    heavy = dist.Mixture([0.5, 0.5], [dist.Normal(0.0, 1.0), dist.StudentT(3.0, 0.0, 2.0)])
    np.testing.assert_allclose(heavy.logpdf(1.5), np.log(0.5 * st.norm.pdf(1.5) + 0.5 * st.t(3, 0, 2).pdf(1.5)),
                               rtol=1e-12)
    positive = dist.Mixture([0.3, 0.7], dist.Gamma(np.array([2.0, 9.0]), 1.0))
    assert positive.logpdf(-1.0) == -np.inf  # outside the common support


@pa.model
def two_groups(y):
    w = pa.sample("w", dist.Dirichlet(np.ones(2)))
    mu = pa.sample("mu", dist.Normal(0.0, 5.0), shape=2, transform="ordered")
    sigma = pa.sample("sigma", dist.HalfNormal(2.0), shape=2)
    pa.observe("y", dist.NormalMixture(w, mu, sigma), y)


@pa.model
def two_groups_by_hand(y):
    w = pa.sample("w", dist.Dirichlet(np.ones(2)))
    mu = pa.sample("mu", dist.Normal(0.0, 5.0), shape=2, transform="ordered")
    sigma = pa.sample("sigma", dist.HalfNormal(2.0), shape=2)
    terms = M.stack([M.log(w[0]) + dist.Normal(mu[0], sigma[0]).log_prob(y),
                     M.log(w[1]) + dist.Normal(mu[1], sigma[1]).log_prob(y)])
    pa.factor("y", M.logsumexp(terms, 0))


def _groups(seed=5):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(-2.0, 1.0, 60), rng.normal(2.5, 0.7, 40)])


def test_a_mixture_model_on_every_backend_equals_the_hand_written_one():
    y = _groups()
    rng = np.random.default_rng(1)
    points = [rng.uniform(-1.5, 1.5, 5) for _ in range(3)]
    for backend in TESTED:
        ours, theirs = pa.logdensity(two_groups(y), backend=backend), pa.logdensity(two_groups_by_hand(y), backend=backend)
        for theta in points:
            value, grad = ours.logdensity_and_gradient(theta)
            want_value, want_grad = theirs.logdensity_and_gradient(theta)
            assert value == pytest.approx(want_value, rel=1e-12), backend
            np.testing.assert_allclose(grad, want_grad, rtol=1e-10, atol=1e-12)
    table = pa.check_gradients(two_groups(y), backends=TESTED)
    assert table.all_passed, table


def test_sampling_a_mixture_recovers_its_groups_and_feeds_loo():
    import arviz as az

    y = _groups()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pa.SamplingWarning)
        idata = pa.sample(two_groups(y), draws=500, tune=500, chains=2, seed=2, progressbar=False, log_likelihood=True)
    post = idata.posterior
    assert float(az.rhat(idata)["mu"].max()) < 1.02
    np.testing.assert_allclose(post["mu"].mean(("chain", "draw")), [-2.0, 2.5], atol=0.5)
    np.testing.assert_allclose(post["w"].mean(("chain", "draw")), [0.6, 0.4], atol=0.12)
    assert idata.log_likelihood["y"].shape == (2, 500, 100)
    ppc = pa.sample_posterior_predictive(two_groups(y), idata, seed=3)
    draws = ppc.posterior_predictive["y"].values
    assert abs(np.mean(draws < 0.25) - np.mean(y < 0.25)) < 0.1  # both groups come back, in proportion


def test_predictive_draws_pick_components_with_their_weights():
    rng = np.random.default_rng(0)
    draws = dist.Mixture(np.array([0.25, 0.75]), [dist.Normal(-10.0, 1.0), dist.Normal(10.0, 1.0)]).sample(rng, (40_000,))
    assert np.mean(draws > 0) == pytest.approx(0.75, abs=0.01)
    rows = dist.NormalMixture(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([-5.0, 5.0]), 1.0).sample(rng, (1000,))
    assert rows.shape == (1000, 2) and np.all(rows[:, 0] < 0) and np.all(rows[:, 1] > 0)


def test_a_mixture_prior():
    import arviz as az

    @pa.model(name="bimodal_prior")
    def bimodal_prior():
        pa.sample("x", dist.NormalMixture(np.array([0.5, 0.5]), np.array([-1.0, 1.0]), 1.0))

    idata = pa.sample(bimodal_prior(), draws=1500, tune=500, chains=2, seed=1, progressbar=False)
    x = idata.posterior["x"].values
    assert abs(x.mean()) < 5 * float(az.mcse(idata, method="mean")["x"])
    assert x.std() == pytest.approx(np.sqrt(2.0), rel=0.1)  # variance 1 + 1 (the means at -1 and 1)


def test_components_on_the_same_interval_written_differently_mix():
    mix = dist.Mixture([0.5, 0.5], [dist.Uniform(0.0, 1.0), dist.Beta(2.0, 2.0)])
    assert mix.logpdf(0.25) == pytest.approx(np.log(0.5 + 0.5 * st.beta(2, 2).pdf(0.25)), rel=1e-12)
    assert mix.logpdf(1.5) == -np.inf


def test_predictive_draws_of_a_listed_component_without_batch_axes():
    """A regression with a fixed background component: Normal(0, 10) has no batch axes, and drawing
    it for 50 rows raised "cannot expand batch shape () to (50,)"."""
    rng = np.random.default_rng(1)
    x = np.linspace(-1.0, 1.0, 50)
    mix = dist.Mixture(np.array([0.9, 0.1]), [dist.Normal(1.0 + 2.0 * x, 0.1), dist.Normal(0.0, 10.0)])
    draws = mix.sample(rng, (400,))
    assert draws.shape == (400, 50)
    near_line = np.abs(draws - (1.0 + 2.0 * x)) < 0.5
    assert near_line.mean() == pytest.approx(0.9 + 0.1 * 0.04, abs=0.02)
    assert np.std(draws[~near_line]) > 5  # the background's draws differ from row to row


@pytest.mark.parametrize("args, message", [
    ((np.array([0.5, 0.5]), dist.Uniform(0.0, np.array([1.0, 2.0]))), "the components of .* have different supports"),
    ((np.array([0.5, 0.5]), dist.Pareto(2.0, np.array([1.0, 2.0]))), "the components of .* have different supports"),
    ((np.array([0.5, 0.5]), [dist.Normal(0.0, 1.0), dist.Gamma(2.0, 1.0)]), "the components' supports differ"),
    ((np.array([0.5, 0.6]), dist.Normal(np.zeros(2), 1.0)), "parameter 'w' must be non-negative and sum to 1"),
    ((np.array([0.5, 0.25, 0.25]), dist.Normal(np.zeros(2), 1.0)), r"one entry per component \(2\), got w of shape \(3,\)"),
    ((np.array([0.5, 0.5]), dist.Normal(0.0, 1.0)), "has no batch axis to mix over"),
    ((np.array([0.5, 0.5]), "normal"), "must be a distribution or a list"),
    ((np.array([1.0]), [dist.LKJCholesky(2, 1.0)]), "cannot be a component"),
])
def test_mixture_errors_name_the_problem(args, message):
    with pytest.raises(ModelDefinitionError, match=message):
        dist.Mixture(*args)


@pa.model
def uniform_weights(y):
    w = pa.sample("w", dist.Uniform(0.0, 1.0), shape=2)  # a user's mistake: not a simplex
    mu = pa.sample("mu", dist.Normal(0.0, 5.0), shape=2)
    pa.observe("y", dist.NormalMixture(w, mu, 1.0), y)


def test_weights_that_are_parameters_off_the_simplex_give_minus_infinity():
    # PyMC's check_parameters: off the simplex the formula is not a density; a finite value there
    # would be a silently wrong posterior
    y = _groups()
    on = np.array([0.0, 0.0, 0.3, -0.2])  # logit(0.5) twice: weights (0.5, 0.5)
    off = np.array([0.4, 0.1, 0.3, -0.2])
    w = 1.0 / (1.0 + np.exp(-on[:2]))
    want = np.sum(np.log(0.5 * st.norm.pdf(y, on[2], 1.0) + 0.5 * st.norm.pdf(y, on[3], 1.0)))
    for backend in TESTED:
        ld = pa.logdensity(uniform_weights(y), backend=backend)
        value, grad = ld.logdensity_and_gradient(on)
        jacobian = np.sum(np.log(w * (1 - w)))
        prior = np.sum(st.norm.logpdf(on[2:], 0.0, 5.0))
        assert value == pytest.approx(want + jacobian + prior, rel=1e-10), backend
        assert np.all(np.isfinite(grad)), backend
        assert ld.logdensity_and_gradient(off)[0] == -np.inf, backend
    assert pa.logdensity(uniform_weights(y), backend="jax").non_finite_sites(off) == ["y"]


def test_sampling_or_simulating_with_weights_off_the_simplex_is_an_error():
    y = _groups()
    with pytest.raises(pa.errors.SamplingError, match=r"sites \['y'\]"):
        pa.sample(uniform_weights(y), draws=10, tune=10, chains=1, seed=1, progressbar=False)
    with pytest.raises(ModelDefinitionError, match="parameter 'w' must be non-negative and sum to 1"):
        pa.sample_prior_predictive(uniform_weights(y), draws=5, seed=1)


@pa.model
def gaussian_mixture_2d(y):
    w = pa.sample("w", dist.Dirichlet(np.ones(2)))
    mu = pa.sample("mu", dist.Normal(0.0, 5.0), shape=(2, 2))
    sigma = pa.sample("sigma", dist.HalfNormal(2.0), shape=2)
    pa.observe("y", dist.Mixture(w, [dist.MvNormal(mu[0], M.eye(2) * sigma[0] ** 2),
                                     dist.MvNormal(mu[1], M.eye(2) * sigma[1] ** 2)]), y)


@pa.model
def gaussian_mixture_2d_by_hand(y):
    w = pa.sample("w", dist.Dirichlet(np.ones(2)))
    mu = pa.sample("mu", dist.Normal(0.0, 5.0), shape=(2, 2))
    sigma = pa.sample("sigma", dist.HalfNormal(2.0), shape=2)
    terms = M.stack([M.log(w[k]) + M.sum(dist.Normal(mu[k], sigma[k]).log_prob(y), -1) for k in range(2)])
    pa.factor("y", M.sum(M.logsumexp(terms, 0)))


def _clusters_2d(seed=2):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal([-3.0, 0.0], 0.8, (50, 2)), rng.normal([3.0, 2.0], 0.8, (30, 2))])


def test_a_mixture_of_multivariate_normals_equals_the_hand_written_one_on_every_backend():
    y = _clusters_2d()
    rng = np.random.default_rng(3)
    for backend in TESTED:
        ours = pa.logdensity(gaussian_mixture_2d(y), backend=backend)
        theirs = pa.logdensity(gaussian_mixture_2d_by_hand(y), backend=backend)
        for _ in range(3):
            theta = rng.uniform(-1.5, 1.5, ours.dimension)
            value, grad = ours.logdensity_and_gradient(theta)
            want, want_grad = theirs.logdensity_and_gradient(theta)
            assert value == pytest.approx(want, rel=1e-11), backend
            np.testing.assert_allclose(grad, want_grad, rtol=1e-9, atol=1e-10)


def test_multivariate_mixture_draws_and_refusals():
    rng = np.random.default_rng(4)
    mus, cov, w = np.array([[0.0, 0.0], [3.0, 1.0], [-2.0, 2.0]]), np.array([[1.0, 0.3], [0.3, 0.5]]), np.array([0.5, 0.3, 0.2])
    x = rng.normal(size=(5, 2)) * 2
    want = np.log(sum(w[k] * st.multivariate_normal(mus[k], cov).pdf(x) for k in range(3)))
    np.testing.assert_allclose(dist.Mixture(w, dist.MvNormal(mus, cov)).logpdf(x), want, rtol=1e-12)
    listed = dist.Mixture(w, [dist.MvNormal(mus[k], (k + 1) * cov) for k in range(3)])
    assert listed.event_shape == (2,) and listed.batch_shape == ()
    for mixture in (dist.Mixture(w, dist.MvNormal(mus, cov)), listed):
        draws = mixture.sample(rng, (20000,))
        assert draws.shape == (20000, 2)
        np.testing.assert_allclose(draws.mean(0), w @ mus, atol=0.06)
    assert dist.Mixture(np.tile(w, (4, 1)), dist.MvNormal(mus, cov)).sample(rng, (5,)).shape == (5, 4, 2)
    with pytest.raises(ModelDefinitionError, match="the components' values differ in shape"):
        dist.Mixture(np.array([0.5, 0.5]), [dist.MvNormal(np.zeros(2), np.eye(2)), dist.MvNormal(np.zeros(3), np.eye(3))])
    with pytest.raises(ModelDefinitionError, match="cannot be a component"):
        dist.Mixture(np.array([0.5, 0.5]), [dist.Multinomial(3, np.array([0.5, 0.5]))] * 2)


def test_a_two_dimensional_gaussian_mixture_recovers_its_clusters():
    y = _clusters_2d()

    @pa.model
    def separated(y):
        w = pa.sample("w", dist.Dirichlet(np.ones(2)))
        x0 = pa.sample("x0", dist.Normal(0.0, 5.0), shape=2, transform="ordered")  # identifies the labels
        x1 = pa.sample("x1", dist.Normal(0.0, 5.0), shape=2)
        mu = M.stack([x0, x1], 1)
        pa.observe("y", dist.Mixture(w, dist.MvNormal(mu, M.eye(2) * 0.64)), y)

    idata = pa.sample(separated(y), draws=300, tune=300, chains=2, seed=2, progressbar=False)
    post = idata.posterior
    np.testing.assert_allclose(post["x0"].mean(("chain", "draw")), [y[:50, 0].mean(), y[50:, 0].mean()], atol=0.15)
    np.testing.assert_allclose(post["w"].mean(("chain", "draw")), [50 / 80, 30 / 80], atol=0.08)
