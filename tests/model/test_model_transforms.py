"""Sites with ``transform="ordered"`` / ``"positive_ordered"`` (Stan's ``ordered[K]``): the log
density on every backend, NUTS and prior predictive draws against the order statistics, initial
values, and the errors that name the site."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.stats as st

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad.backends import registry
from ppl_ad.errors import DataError, ModelDefinitionError, ModelError

TESTED = [b.name for b in registry.tested()]


@pa.model
def ordered_priors(k):
    pa.sample("c", dist.Normal(0.0, 5.0), shape=k, transform="ordered")
    pa.sample("r", dist.Exponential(1.0), shape=(2, k), transform="positive_ordered")


def _order_statistic_means(frozen, k, n=400_000, seed=0):
    """Means of the order statistics of ``k`` independent draws of ``frozen`` (sorted scipy draws)."""
    return np.sort(frozen.rvs(size=(n, k), random_state=seed), axis=-1).mean(0)


def test_the_log_density_is_the_prior_on_the_values_plus_the_log_gaps_on_every_backend():
    model = ordered_priors(3)
    theta = np.array([0.4, -0.5, 1.2, 0.1, 0.2, -0.3, -1.0, 0.5, 0.0])
    c = 0.4 + np.concatenate([[0.0], np.cumsum(np.exp([-0.5, 1.2]))])
    r = np.cumsum(np.exp(theta[3:].reshape(2, 3)), -1)
    want = (st.norm(0, 5).logpdf(c).sum() + (-0.5 + 1.2)
            + st.expon().logpdf(r).sum() + theta[3:].sum())
    for backend in TESTED:
        ld = pa.logdensity(model, backend=backend)
        value, _ = ld.logdensity_and_gradient(theta)
        assert value == pytest.approx(want, rel=1e-12), backend
    values = pa.logdensity(model).constrain(theta)
    np.testing.assert_allclose(values["c"], c)
    np.testing.assert_allclose(values["r"], r)
    table = pa.check_gradients(model, backends=TESTED)
    assert table.all_passed, table


def test_nuts_on_ordered_priors_gives_the_order_statistics():
    """An iid prior restricted to increasing vectors is the distribution of the sorted draws."""
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pa.SamplingWarning)
        idata = pa.sample(ordered_priors(3), draws=1500, tune=700, chains=2, seed=4, progressbar=False)
    assert idata.attrs["engine"] == "jax"
    c = idata.posterior["c"].values.reshape(-1, 3)
    r = idata.posterior["r"].values.reshape(-1, 2, 3)
    assert np.all(np.diff(c, axis=-1) > 0) and np.all(np.diff(r, axis=-1) > 0)
    mcse = az.mcse(idata, method="mean")
    want_c = _order_statistic_means(st.norm(0, 5), 3)
    want_r = np.array([1 / 3, 1 / 3 + 1 / 2, 1 / 3 + 1 / 2 + 1])  # exponential spacings
    assert np.all(np.abs(c.mean(0) - want_c) < 5 * mcse["c"].values), (c.mean(0), want_c)
    assert np.all(np.abs(r.mean(0) - want_r) < 5 * mcse["r"].values), (r.mean(0), want_r)


def test_prior_predictive_sorts_exchangeable_draws():
    pp = pa.sample_prior_predictive(ordered_priors(4), draws=20_000, seed=1)
    c = pp.prior["c"].values.reshape(-1, 4)
    assert np.all(np.diff(c, axis=-1) > 0)
    want = _order_statistic_means(st.norm(0, 5), 4)
    np.testing.assert_allclose(c.mean(0), want, atol=5 * 5 / np.sqrt(20_000))


@pa.model
def shifted_means(mu):
    pa.sample("c", dist.Normal(mu, 1.0), transform="ordered")


def test_prior_predictive_of_a_prior_that_differs_by_element_draws_by_rejection():
    """Sorting would be wrong here (the elements are not exchangeable): the draws must be those of
    the prior conditioned on order, which rejection gives."""
    mu = np.array([0.0, 0.5, 1.0])
    pp = pa.sample_prior_predictive(shifted_means(mu), draws=20_000, seed=2)
    c = pp.prior["c"].values.reshape(-1, 3)
    assert np.all(np.diff(c, axis=-1) > 0)
    reference = st.norm(mu, 1.0).rvs(size=(400_000, 3), random_state=3)
    reference = reference[np.all(np.diff(reference, axis=-1) > 0, axis=-1)]
    np.testing.assert_allclose(c.mean(0), reference.mean(0), atol=0.03)
    assert not np.allclose(c.mean(0), np.sort(st.norm(mu, 1.0).rvs(size=(400_000, 3), random_state=3), -1).mean(0),
                           atol=0.03)


def test_prior_predictive_names_the_site_when_ordered_draws_are_too_rare():
    with pytest.raises(ModelError, match=r"model 'shifted_means', site 'c': prior draws of .* rarely satisfy "
                                         r"ordered_vector: fewer than 1 in 1000 prior draws of the model"):
        pa.sample_prior_predictive(shifted_means(np.array([10.0, 0.0, -10.0])), draws=5, seed=1)


@pa.model
def positive_on_the_real_line():
    pa.sample("c", dist.Normal(0.0, 5.0), shape=3, transform="positive_ordered")


def test_prior_predictive_of_positive_ordered_on_a_real_prior_is_positive():
    """Normal(0, 5) restricted to positive increasing vectors: the sorted draws of HalfNormal(5)
    (the sorted normal draws had negative entries in 88 % of the vectors)."""
    pp = pa.sample_prior_predictive(positive_on_the_real_line(), draws=20_000, seed=3)
    c = pp.prior["c"].values.reshape(-1, 3)
    assert np.all(c > 0) and np.all(np.diff(c, axis=-1) > 0)
    np.testing.assert_allclose(c.mean(0), _order_statistic_means(st.halfnorm(scale=5.0), 3), atol=0.12)


@pa.model
def ordered_with_a_hyperprior():
    s = pa.sample("s", dist.HalfNormal(1.0))
    pa.sample("c", dist.Normal(np.array([-1.0, 0.0, 1.0]), s), transform="ordered")


def test_prior_predictive_weights_hyperparameters_by_the_chance_of_the_order():
    """The chance that Normal([-1, 0, 1], s) draws are ordered falls as s grows, so the restricted
    joint prior favours small s: E[s] is about 0.61, not HalfNormal's 0.80. Redrawing c alone, given s,
    gave 0.80; rejecting whole draws is exact (the reference: the unrestricted joint draws that are
    ordered)."""
    pp = pa.sample_prior_predictive(ordered_with_a_hyperprior(), draws=6000, seed=4)
    s = pp.prior["s"].values.ravel()
    rng = np.random.default_rng(5)
    s_ref = np.abs(rng.normal(size=400_000))
    c_ref = rng.normal(np.array([-1.0, 0.0, 1.0]), s_ref[:, None])
    kept = s_ref[np.all(np.diff(c_ref, axis=-1) > 0, axis=-1)]
    assert abs(s.mean() - kept.mean()) < 4 * s.std() / np.sqrt(s.size), (s.mean(), kept.mean())
    assert abs(kept.mean() - st.halfnorm.mean()) > 0.1  # the weighting matters here


def test_initial_values_respect_the_order():
    model = ordered_priors(3)
    ld = pa.logdensity(model)
    theta = ld.unconstrain({"c": np.array([-1.0, 0.0, 2.0]), "r": np.array([[0.5, 1.0, 3.0], [0.1, 0.2, 0.3]])})
    np.testing.assert_allclose(theta[:3], [-1.0, 0.0, np.log(2.0)])
    with pytest.raises(DataError, match=r"site 'c': the value \[ ?0\.? +0\.? +2\.? ?\] is outside its support ordered_vector"):
        ld.unconstrain({"c": np.array([0.0, 0.0, 2.0]), "r": np.ones((2, 3)).cumsum(-1)})
    with pytest.raises(DataError, match="(?s)site 'r'.*positive_ordered_vector"):
        ld.unconstrain({"c": np.array([0.0, 1.0, 2.0]), "r": np.array([[1.0, 0.5, 2.0], [1.0, 2.0, 3.0]])})
    idata = pa.sample(model, draws=50, tune=50, chains=1, seed=1, progressbar=False,
                      init={"c": np.array([-3.0, 0.0, 3.0])})
    assert np.all(np.diff(idata.posterior["c"].values, axis=-1) > 0)


@pa.model
def ordered_mixture(y):
    mu = pa.sample("mu", dist.Normal(0.0, 5.0), shape=2, transform="ordered")
    w = pa.sample("w", dist.Beta(2.0, 2.0))
    sigma = pa.sample("sigma", dist.HalfNormal(2.0))
    from ppl_ad import math as M

    log_mix = M.logsumexp(M.stack([M.log(w) + dist.Normal(mu[0], sigma).log_prob(y),
                                   M.log1p(-w) + dist.Normal(mu[1], sigma).log_prob(y)]), axis=0)
    pa.factor("y", M.sum(log_mix))


def test_ordered_means_identify_a_two_component_mixture():
    """With its means ordered, every chain labels the lower component first (R-hat near 1)."""
    import arviz as az

    rng = np.random.default_rng(5)
    y = np.concatenate([rng.normal(-2.0, 1.0, 60), rng.normal(2.5, 1.0, 40)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pa.SamplingWarning)
        idata = pa.sample(ordered_mixture(y), draws=500, tune=500, chains=4, seed=3, progressbar=False)
    mu = idata.posterior["mu"].values
    assert float(az.rhat(idata)["mu"].max()) < 1.02
    assert abs(mu[..., 0].mean() + 2.0) < 0.6 and abs(mu[..., 1].mean() - 2.5) < 0.6


@pytest.mark.parametrize("transform, distribution, message", [
    ("sorted", dist.Normal(0.0, 1.0), r"transform='sorted' is not one of \['ordered', 'positive_ordered'\]"),
    ("ordered", dist.HalfNormal(1.0), "outside the distribution's support positive; use transform='positive_ordered'"),
    ("positive_ordered", dist.Beta(2.0, 2.0), "needs a distribution on the real line"),
])
def test_a_transform_that_does_not_fit_the_site_is_refused(transform, distribution, message):
    @pa.model(name="bad")
    def bad():
        pa.sample("c", distribution, shape=3, transform=transform)

    with pytest.raises(ModelDefinitionError, match=f"model 'bad', site 'c': .*{message}"):
        pa.logdensity(bad())


def test_an_ordered_scalar_is_refused():
    @pa.model(name="scalar")
    def scalar():
        pa.sample("c", dist.Normal(0.0, 1.0), transform="ordered")

    with pytest.raises(ModelDefinitionError, match="model 'scalar', site 'c'.*is a scalar; give it shape=K"):
        pa.logdensity(scalar())
