"""Tests of ppl_ad.loglik: the pointwise log_likelihood group, and az.loo / az.waic / az.compare on it."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
from scipy import stats

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad import math as M
from ppl_ad.errors import DataError

SIGMA, PRIOR_SD = 1.5, 3.0


def arviz():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az
    return az


@pa.model
def normal_mean(y):
    mu = pa.sample("mu", dist.Normal(0.0, PRIOR_SD))
    pa.observe("y", dist.Normal(mu, SIGMA), y, dims="obs")


def posterior_of_mu(y):
    """Mean and variance of the conjugate posterior of mu given y."""
    precision = 1.0 / PRIOR_SD**2 + len(y) / SIGMA**2
    return (np.sum(y) / SIGMA**2) / precision, 1.0 / precision


def exact_elpd_loo(y):
    """sum_i log p(y_i | y_-i): the leave-one-out predictive is Normal(m_-i, SIGMA^2 + v_-i)."""
    total = 0.0
    for i in range(len(y)):
        mean, var = posterior_of_mu(np.delete(y, i))
        total += stats.norm.logpdf(y[i], mean, np.sqrt(SIGMA**2 + var))
    return total


@pytest.fixture
def conjugate():
    rng = np.random.default_rng(5)
    y = rng.normal(1.0, SIGMA, size=40)
    mean, var = posterior_of_mu(y)
    mu = rng.normal(mean, np.sqrt(var), size=(4, 1000))  # exact posterior draws
    idata = arviz().from_dict(posterior={"mu": mu}, observed_data={"y": y}, dims={"y": ["obs"]})
    return normal_mean(y), idata, y, mu


def test_pointwise_values_match_scipy_and_loo_matches_the_exact_elpd(conjugate):
    az = arviz()
    model, idata, y, mu = conjugate
    result = pa.compute_log_likelihood(model, idata)
    assert result is idata
    log_lik = idata.log_likelihood["y"]
    assert log_lik.dims == ("chain", "draw", "obs") and log_lik.shape == (4, 1000, 40)
    np.testing.assert_allclose(log_lik.values, stats.norm.logpdf(y, mu[..., None], SIGMA), rtol=1e-12)
    loo = az.loo(idata)
    assert abs(loo.elpd_loo - exact_elpd_loo(y)) < 0.1, (loo.elpd_loo, exact_elpd_loo(y))
    waic = az.waic(idata)
    assert abs(waic.elpd_waic - exact_elpd_loo(y)) < 0.2


def test_compare_ranks_the_true_model_first(conjugate):
    az = arviz()
    model, idata, y, _ = conjugate

    @pa.model
    def wrong_scale(y):
        mu = pa.sample("mu", dist.Normal(0.0, PRIOR_SD))
        pa.observe("y", dist.Normal(mu, 5 * SIGMA), y, dims="obs")

    other = idata.copy()
    pa.compute_log_likelihood(model, idata)
    pa.compute_log_likelihood(wrong_scale(y), other)
    with warnings.catch_warnings():
        # arviz 0.23's compare calls DataFrame.sort_values(inplace=True), deprecated by pandas
        warnings.filterwarnings("ignore", message="The inplace keyword")
        table = az.compare({"right": idata, "wrong": other})
    assert list(table.index) == ["right", "wrong"]


def test_extend_false_returns_only_the_group_and_held_out_data_never_replace_the_training_group(conjugate):
    model, idata, y, _ = conjugate
    group = pa.compute_log_likelihood(model, idata, extend_inferencedata=False)
    assert set(group.groups()) == {"log_likelihood"} and "log_likelihood" not in idata.groups()
    pa.compute_log_likelihood(model, idata)
    mu = idata.posterior["mu"].values[0, 0]
    shifted = normal_mean(y + 1.0)  # held-out data: az.loo(idata) would score them instead of y
    with pytest.raises(DataError, match="extend_inferencedata=False"):
        pa.compute_log_likelihood(shifted, idata)
    np.testing.assert_allclose(idata.log_likelihood["y"].values[0, 0], stats.norm.logpdf(y, mu, SIGMA))
    held_out = pa.compute_log_likelihood(shifted, idata, extend_inferencedata=False)
    np.testing.assert_allclose(held_out.log_likelihood["y"].values[0, 0], stats.norm.logpdf(y + 1.0, mu, SIGMA))


def test_multivariate_site_gives_one_value_per_event_and_discrete_sites_work():
    @pa.model
    def mixed(y, counts):
        mu = pa.sample("mu", dist.Normal(0.0, 1.0), shape=(2,))
        rate = pa.sample("rate", dist.HalfNormal(3.0))
        pa.observe("y", dist.MvNormal(mu, np.array([[1.0, 0.3], [0.3, 2.0]])), y, dims=("row", "coordinate"))
        pa.observe("counts", dist.Poisson(rate), counts)
        pa.factor("penalty", -mu[0] ** 2)  # not part of the likelihood

    rng = np.random.default_rng(0)
    y = rng.normal(size=(6, 2))
    counts = np.array([0, 3, 1, 2])
    mu, rate = rng.normal(size=(2, 3, 2)), np.array([[0.5, 1.0, 2.0], [1.5, 2.5, 3.0]])
    idata = arviz().from_dict(posterior={"mu": mu, "rate": rate})
    pa.compute_log_likelihood(mixed(y, counts), idata)
    ll = idata.log_likelihood
    assert set(ll.data_vars) == {"y", "counts"}
    assert ll["y"].dims == ("chain", "draw", "row") and ll["y"].shape == (2, 3, 6)
    cov = np.array([[1.0, 0.3], [0.3, 2.0]])
    expected = stats.multivariate_normal(mu[1, 2], cov).logpdf(y)
    np.testing.assert_allclose(ll["y"].values[1, 2], expected, rtol=1e-10)
    np.testing.assert_allclose(ll["counts"].values[0, 1], stats.poisson(1.0).logpmf(counts), rtol=1e-12)


def test_errors_name_the_site():
    az = arviz()
    idata = az.from_dict(posterior={"mu": np.zeros((1, 4))})

    @pa.model
    def vector_mean(y, n):
        mu = pa.sample("mu", dist.Normal(0.0, PRIOR_SD))
        pa.observe("y", dist.Normal(mu * np.ones(n), SIGMA), y, dims="obs")

    with pytest.raises(DataError, match="site 'y': the observed value is None"):
        pa.compute_log_likelihood(vector_mean(None, 3), idata)
    with pytest.raises(DataError, match="site 'y': dims=.*unobserved"):
        pa.compute_log_likelihood(normal_mean(None), idata)
    with pytest.raises(DataError, match="site 'mu': no draws"):
        pa.compute_log_likelihood(normal_mean(np.zeros(3)), az.from_dict(posterior={"nu": np.zeros((1, 4))}))
    with pytest.raises(DataError, match=r"\['z'\] are not observed sites"):
        pa.compute_log_likelihood(normal_mean(np.zeros(3)), idata, var_names=["z"])


def test_4000_draws_of_200_points_take_well_under_a_few_seconds():
    @pa.model
    def regression(x, y):
        a = pa.sample("a", dist.Normal(0.0, 5.0))
        b = pa.sample("b", dist.Normal(0.0, 5.0))
        s = pa.sample("s", dist.HalfNormal(2.0))
        pa.observe("y", dist.Normal(a + b * x, s), y)

    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    posterior = {"a": rng.normal(size=(4, 1000)), "b": rng.normal(size=(4, 1000)), "s": np.ones((4, 1000))}
    idata = arviz().from_dict(posterior=posterior)
    start = time.perf_counter()
    pa.compute_log_likelihood(regression(x, 1.0 + 2.0 * x), idata)
    assert time.perf_counter() - start < 2.0
    assert idata.log_likelihood["y"].shape == (4, 1000, 200)


def test_sample_with_log_likelihood_true_adds_the_group():
    y = np.random.default_rng(2).normal(1.0, SIGMA, size=12)
    idata = pa.sample(normal_mean(y), backend="autograd", draws=100, tune=100, chains=2, cores=1, seed=3,
                      progressbar=False, log_likelihood=True)
    ll = idata.log_likelihood["y"]
    assert ll.dims == ("chain", "draw", "obs") and ll.shape == (2, 100, 12)
    np.testing.assert_allclose(ll.values, stats.norm.logpdf(y, idata.posterior["mu"].values[..., None], SIGMA))


def test_data_changed_in_place_and_bound_again_gets_its_own_constant_terms():
    # the cached gammaln(y + 1) of the old values was reused: positive log pmfs (2.85 for lam = 2, y = 7)
    @pa.model
    def counts(y):
        lam = pa.sample("lam", dist.Gamma(2.0, 1.0))
        pa.observe("y", dist.Poisson(lam), y)

    y = np.array([1, 2, 3])
    idata = arviz().from_dict(posterior={"lam": np.full((1, 2), 2.0)})
    first = pa.compute_log_likelihood(counts(y), idata, extend_inferencedata=False)
    np.testing.assert_allclose(first.log_likelihood["y"].values[0, 0], stats.poisson(2.0).logpmf([1, 2, 3]))
    y[:] = [7, 8, 9]
    again = pa.compute_log_likelihood(counts(y), idata, extend_inferencedata=False)
    np.testing.assert_allclose(again.log_likelihood["y"].values[0, 0], stats.poisson(2.0).logpmf([7, 8, 9]))
    for backend in ("autograd", "torch"):
        value = pa.logdensity(counts(y), backend=backend).logdensity(np.array([np.log(2.0)]))
        expected = stats.poisson(2.0).logpmf([7, 8, 9]).sum() + stats.gamma(2.0).logpdf(2.0) + np.log(2.0)
        np.testing.assert_allclose(value, expected, rtol=1e-12)


def test_log_likelihood_keeps_the_draw_labels_of_a_thinned_posterior(conjugate):
    model, idata, _, _ = conjugate
    thinned = idata.sel(draw=slice(None, None, 100))
    group = pa.compute_log_likelihood(model, thinned, extend_inferencedata=False)
    np.testing.assert_array_equal(group.log_likelihood.draw.values, np.arange(0, 1000, 100))


def test_a_likelihood_written_as_a_factor_gets_a_warning_not_silence():
    # log_likelihood=True and compute_log_likelihood returned nothing, and az.loo then failed
    @pa.model
    def mixture(y):
        mu = pa.sample("mu", dist.Normal(0.0, 3.0))
        components = M.stack([-0.5 * (y - mu) ** 2, -0.5 * (y + mu) ** 2])
        pa.factor("mix", M.sum(M.logsumexp(components, axis=0)))

    model = mixture(np.array([-1.0, 1.2, 0.8]))
    with pytest.warns(pa.SamplingWarning, match=r"no observed sites.*pa\.factor terms \(mix\)"):
        idata = pa.sample(model, draws=20, tune=20, chains=1, seed=1, progressbar=False, log_likelihood=True)
    assert "log_likelihood" not in idata.groups()
    with pytest.warns(pa.SamplingWarning, match="no observed sites to simulate.*mix"):
        out = pa.sample_posterior_predictive(model, idata)
    assert out.groups() == []
    with warnings.catch_warnings():  # naming sites to recompute is what the warning suggests: no warning
        warnings.simplefilter("error")
        named = pa.sample_posterior_predictive(model, idata, var_names=["mu"])
    np.testing.assert_array_equal(named.posterior_predictive["mu"].values, idata.posterior["mu"].values)
