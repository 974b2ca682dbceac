"""Cumulative distribution functions (``log_cdf``, ``log_ccdf``) against ``scipy.stats``, and
``Censored`` observations: log density, gradients on every tested backend, an exact posterior
(right-censored exponential survival with a conjugate prior), predictive draws and errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hs

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad import math as M
from ppl_ad.backends import registry
from ppl_ad.distributions.censored import WITH_CDF
from ppl_ad.errors import DataError, ModelDefinitionError

TESTED = [b.name for b in registry.tested()]
POSITIVE = hs.floats(0.3, 4.0)
REAL = hs.floats(-3.0, 3.0)

class _HalfNormalReference:
    """scipy's halfnorm.logsf underflows to -inf from about 38 sd; 2 * normal tail keeps its digits."""

    def __init__(self, sigma):
        self.sigma = sigma

    def logcdf(self, x):
        return np.log1p(-2.0 * st.norm.sf(x / self.sigma))

    def logsf(self, x):
        return np.log(2.0) + st.norm.logsf(x / self.sigma)


# name -> (strategy of parameters, ppl_ad distribution, scipy distribution, strategy of values)
CASES = {
    "Normal": (hs.tuples(REAL, POSITIVE), lambda m, s: dist.Normal(m, s), lambda m, s: st.norm(m, s), hs.floats(-30, 30)),
    "HalfNormal": (hs.tuples(POSITIVE), lambda s: dist.HalfNormal(s), lambda s: _HalfNormalReference(s), hs.floats(1e-3, 20)),
    "LogNormal": (hs.tuples(REAL, POSITIVE), lambda m, s: dist.LogNormal(m, s), lambda m, s: st.lognorm(s, scale=np.exp(m)),
                  hs.floats(1e-3, 50)),
    "Exponential": (hs.tuples(POSITIVE), lambda lam: dist.Exponential(lam), lambda lam: st.expon(scale=1 / lam),
                    hs.floats(1e-3, 20)),
    "Weibull": (hs.tuples(POSITIVE, POSITIVE), lambda a, b: dist.Weibull(a, b), lambda a, b: st.weibull_min(a, scale=b),
                hs.floats(1e-3, 10)),
    "Logistic": (hs.tuples(REAL, POSITIVE), lambda m, s: dist.Logistic(m, s), lambda m, s: st.logistic(m, s), hs.floats(-30, 30)),
    "Gumbel": (hs.tuples(REAL, POSITIVE), lambda m, b: dist.Gumbel(m, b), lambda m, b: st.gumbel_r(m, b), hs.floats(-5, 30)),
    "Laplace": (hs.tuples(REAL, POSITIVE), lambda m, b: dist.Laplace(m, b), lambda m, b: st.laplace(m, b), hs.floats(-30, 30)),
    "Uniform": (hs.tuples(REAL, POSITIVE), lambda a, w: dist.Uniform(a, a + w), lambda a, w: st.uniform(a, w),
                hs.floats(0.01, 0.99)),  # a fraction of the interval
    "Pareto": (hs.tuples(POSITIVE, POSITIVE), lambda a, m: dist.Pareto(a, m), lambda a, m: st.pareto(a, scale=m),
               hs.floats(1.01, 30)),  # a multiple of the minimum
}


def test_every_distribution_with_a_cdf_is_tested():
    assert sorted(CASES) == sorted(WITH_CDF)


@pytest.mark.parametrize("name", sorted(CASES))
@settings(max_examples=40, deadline=None)
@given(data=hs.data())
def test_log_cdf_and_log_ccdf_match_scipy(name, data):
    params_strategy, ours, theirs, values = CASES[name]
    params = data.draw(params_strategy)
    x = data.draw(values)
    if name == "Uniform":
        x = params[0] + x * params[1]
    if name == "Pareto":
        x = x * params[1]
    reference = theirs(*params)
    want_cdf, want_ccdf = reference.logcdf(x), reference.logsf(x)
    got_cdf, got_ccdf = float(ours(*params).log_cdf(x)), float(ours(*params).log_ccdf(x))
    # relative in the log where it is large, absolute near 0 (where a log-probability is tiny)
    assert got_cdf == pytest.approx(want_cdf, rel=1e-9, abs=1e-12), (params, x)
    assert got_ccdf == pytest.approx(want_ccdf, rel=1e-9, abs=1e-12), (params, x)


@pa.model
def every_cdf(x_pos, x_real):
    a = pa.sample("a", dist.Normal(0.0, 1.0))
    s = pa.sample("s", dist.LogNormal(0.0, 0.3))
    terms = [dist.Normal(a, s).log_cdf(x_real), dist.Normal(a, s).log_ccdf(x_real),
             dist.HalfNormal(s).log_cdf(x_pos), dist.HalfNormal(s).log_ccdf(x_pos),
             dist.LogNormal(a, s).log_cdf(x_pos), dist.LogNormal(a, s).log_ccdf(x_pos),
             dist.Exponential(s).log_cdf(x_pos), dist.Exponential(s).log_ccdf(x_pos),
             dist.Weibull(s, s + 1.0).log_cdf(x_pos), dist.Weibull(s, s + 1.0).log_ccdf(x_pos),
             dist.Logistic(a, s).log_cdf(x_real), dist.Logistic(a, s).log_ccdf(x_real),
             dist.Gumbel(a, s).log_cdf(x_real), dist.Gumbel(a, s).log_ccdf(x_real),
             dist.Laplace(a, s).log_cdf(x_real), dist.Laplace(a, s).log_ccdf(x_real),
             dist.Uniform(a - 10.0, a + s + 10.0).log_cdf(x_real), dist.Uniform(a - 10.0, a + s + 10.0).log_ccdf(x_real),
             dist.Pareto(s, 0.05).log_cdf(x_pos), dist.Pareto(s, 0.05).log_ccdf(x_pos)]
    for i, term in enumerate(terms):
        pa.factor(f"t{i}", term)


def test_cdf_gradients_agree_on_every_tested_backend():
    model = every_cdf(np.array([0.1, 0.7, 2.5]), np.array([-2.0, -0.1, 0.4, 3.0]))
    rng = np.random.default_rng(2)
    table = pa.check_gradients(model, backends=TESTED, points=[rng.uniform(-1.5, 1.5, 2) for _ in range(4)])
    assert table.all_passed, table


@pa.model
def tobit(y, lower, upper, lower_censored=None, upper_censored=None):
    mu = pa.sample("mu", dist.Normal(0.0, 5.0))
    sigma = pa.sample("sigma", dist.HalfNormal(2.0))
    if lower_censored is not None:  # infinite bounds (no censoring) made inside the model: data must be finite
        lower = M.where(lower_censored, lower, -np.inf)
        upper = M.where(upper_censored, upper, np.inf)
    pa.observe("y", dist.Censored(dist.Normal(mu, sigma), lower=lower, upper=upper), y)


def test_censored_log_density_on_every_backend():
    """Per-observation bounds, with infinite ones meaning no censoring on that side."""
    lower = np.array([0.0, 0.0, 5.0, 0.0, -1.0])
    upper = np.array([3.0, 9.0, 2.0, 3.0, 1.0])
    y = np.array([0.0, 1.2, 2.0, 3.0, 0.5])  # below, inside, above, above, inside
    mu, sigma = 0.7, 1.3
    ref = st.norm(mu, sigma)
    want_y = ref.logcdf(0.0) + ref.logpdf(1.2) + ref.logsf(2.0) + ref.logsf(3.0) + ref.logpdf(0.5)
    want = want_y + st.norm(0, 5).logpdf(mu) + st.halfnorm(scale=2).logpdf(sigma) + np.log(sigma)
    lower_censored = np.array([True, True, False, True, True])
    upper_censored = np.array([True, False, True, True, True])
    model = tobit(y, lower, upper, lower_censored, upper_censored)
    lower, upper = np.where(lower_censored, lower, -np.inf), np.where(upper_censored, upper, np.inf)
    theta = np.array([mu, np.log(sigma)])
    for backend in TESTED:
        value, _ = pa.logdensity(model, backend=backend).logdensity_and_gradient(theta)
        assert value == pytest.approx(want, rel=1e-12), backend
    table = pa.check_gradients(model, backends=TESTED)
    assert table.all_passed, table
    pointwise = dist.Censored(dist.Normal(mu, sigma), lower=lower, upper=upper).logpdf(y)
    np.testing.assert_allclose(pointwise.sum(), want_y, rtol=1e-12)


@pa.model
def exponential_survival(t, follow_up):
    lam = pa.sample("lam", dist.Gamma(2.0, 1.0))
    pa.observe("t", dist.Censored(dist.Exponential(lam), upper=follow_up), t)


def _survival_data(n=60, seed=1):
    rng = np.random.default_rng(seed)
    event = rng.exponential(1 / 0.7, n)
    follow_up = rng.uniform(0.5, 3.0, n)
    return np.minimum(event, follow_up), follow_up, int(np.sum(event <= follow_up))


def test_right_censored_survival_reproduces_the_conjugate_posterior():
    """Gamma(2, 1) prior on an exponential rate, d events and total time at risk T: the posterior is
    Gamma(2 + d, 1 + T) exactly, whatever the censoring."""
    import arviz as az

    t, follow_up, events = _survival_data()
    exact = st.gamma(2 + events, scale=1 / (1 + t.sum()))
    idata = pa.sample(exponential_survival(t, follow_up), draws=1000, tune=500, chains=2, seed=3, progressbar=False,
                      log_likelihood=True)
    lam = idata.posterior["lam"].values
    assert abs(lam.mean() - exact.mean()) < 5 * float(az.mcse(idata, method="mean")["lam"])
    assert lam.std() == pytest.approx(exact.std(), rel=0.1)
    assert idata.log_likelihood["t"].shape == (2, 1000, 60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # ArviZ on a small sample
        assert np.isfinite(az.loo(idata).elpd_loo)


def test_predictive_draws_are_clipped_to_the_bounds():
    t, follow_up, _ = _survival_data()
    model = exponential_survival(t, follow_up)
    prior = pa.sample_prior_predictive(model, draws=2000, seed=1)
    draws = prior.prior_predictive["t"].values.reshape(-1, 60)
    assert np.all(draws <= follow_up) and np.all(draws > 0)
    lam = prior.prior["lam"].values.reshape(-1, 1)
    # P(censored) = P(T > c) = E[exp(-lam c)] over the prior draws of lam
    want = np.exp(-lam * follow_up).mean()
    assert np.mean(draws == follow_up) == pytest.approx(want, abs=0.02)


def test_observations_beyond_a_bound_are_refused_naming_the_rows():
    with pytest.raises(DataError, match=r"site 'y': 1 observed value outside the support .* of Censored: -1.0 at 0; "
                                        r".*record censored observations at their bound"):
        pa.logdensity(tobit(np.array([-1.0, 0.0, 2.0]), 0.0, None))


def test_infinite_bounds_in_the_data_get_a_hint():
    with pytest.raises(DataError, match=r"argument 'upper'.*upper=M.where\(censored, t, np.inf\)"):
        pa.logdensity(tobit(np.array([0.0, 1.0]), 0.0, np.array([np.inf, 2.0])))


def test_censored_errors_name_the_distribution():
    with pytest.raises(ModelDefinitionError, match="Gamma has no closed-form cumulative distribution function"):
        dist.Censored(dist.Gamma(2.0, 1.0), upper=1.0)
    with pytest.raises(ModelDefinitionError, match="give lower=, upper= or both"):
        dist.Censored(dist.Normal(0.0, 1.0))
    with pytest.raises(ModelDefinitionError, match="lower 2.0 must be below upper 1.0"):
        dist.Censored(dist.Normal(0.0, 1.0), lower=2.0, upper=1.0)
    with pytest.raises(ModelDefinitionError, match="'upper' contains NaN"):
        dist.Censored(dist.Normal(0.0, 1.0), upper=np.array([1.0, np.nan]))
    with pytest.raises(NotImplementedError, match="Gamma has no log_cdf"):
        dist.Gamma(2.0, 1.0).log_cdf(1.0)

    @pa.model(name="prior")
    def as_a_prior():
        pa.sample("x", dist.Censored(dist.Normal(0.0, 1.0), upper=1.0))

    with pytest.raises(ModelDefinitionError, match="model 'prior', site 'x': Censored is a likelihood for observed data"):
        pa.logdensity(as_a_prior())


@pytest.mark.parametrize("distribution, x, log_cdf, log_ccdf", [
    (dist.Exponential(2.0), -1.0, -np.inf, 0.0),
    (dist.HalfNormal(2.0), -1.0, -np.inf, 0.0),
    (dist.LogNormal(0.5, 1.5), -1.0, -np.inf, 0.0),
    (dist.Weibull(1.5, 3.0), -1.0, -np.inf, 0.0),
    (dist.Pareto(2.5, 1.5), 1.0, -np.inf, 0.0),
    (dist.Uniform(-1.0, 3.0), -2.0, -np.inf, 0.0),
    (dist.Uniform(-1.0, 3.0), 4.0, 0.0, -np.inf),
])
def test_cdfs_beyond_the_support_are_zero_or_one(distribution, x, log_cdf, log_ccdf):
    """They gave NaN, or log-probabilities above 0 (Exponential(2).log_ccdf(-1) was 2.0)."""
    assert distribution.log_cdf(x) == log_cdf and distribution.log_ccdf(x) == log_ccdf


def test_half_normal_log_cdf_keeps_its_digits_near_zero():
    # 1 - 2 Phi(-z) lost them: -33.1533 against -33.1551 at 1e-14
    for x in (1e-14, 1e-8, 0.3):
        assert float(dist.HalfNormal(2.0).log_cdf(x)) == pytest.approx(np.log(st.halfnorm(scale=2.0).cdf(x)), rel=1e-12)


@pa.model
def censored_pareto(y):
    alpha = pa.sample("alpha", dist.Gamma(2.0, 1.0))
    m = pa.sample("m", dist.Uniform(0.2, 1.5))
    pa.observe("y", dist.Censored(dist.Pareto(alpha, m), upper=5.0), y)


def test_a_base_support_bounded_by_a_parameter_is_enforced():
    """Censored(Pareto(alpha, m)) gave a finite likelihood to data below m, and its posterior put m
    above min(y) (PyMC: m 0.99, ppl_ad: 1.50); the data are now compared with m at every evaluation,
    and the model builds whatever m's placeholder value is."""
    y = np.array([0.7, 1.2, 5.0, 2.0])
    ld = pa.logdensity(censored_pareto(y))
    for m, finite in ((0.6, True), (0.8, False)):
        theta = ld.unconstrain({"alpha": 2.0, "m": m})
        value = ld.logdensity(theta)
        if finite:
            ref = st.pareto(2.0, scale=m)
            want = (ref.logpdf([0.7, 1.2, 2.0]).sum() + ref.logsf(5.0) + st.gamma(2.0).logpdf(2.0)
                    + st.uniform(0.2, 1.3).logpdf(m))
            jacobian = ld.logdensity(theta) - pa.logdensity(censored_pareto(y), jacobian=False).logdensity(theta)
            assert value - jacobian == pytest.approx(want, rel=1e-10)
        else:
            assert value == -np.inf


def test_data_beyond_a_parameter_bound_at_its_placeholder_still_build():
    """The build-time check compared the data with the placeholder of hi (the midpoint of its prior)
    and refused data that PyMC and scipy give a finite likelihood."""
    @pa.model(name="cens_uniform")
    def cens_uniform(y):
        hi = pa.sample("hi", dist.Uniform(0.5, 5.0))
        pa.observe("y", dist.Censored(dist.Uniform(0.0, hi), upper=2.0), y)

    y = np.array([0.5, 1.2, 2.0])
    ld = pa.logdensity(cens_uniform(y))
    full, prior_only = ld.logdensity(ld.unconstrain({"hi": 4.0})), st.uniform(0.5, 4.5).logpdf(4.0)
    jacobian = full - pa.logdensity(cens_uniform(y), jacobian=False).logdensity(ld.unconstrain({"hi": 4.0}))
    ref = st.uniform(0.0, 4.0)
    assert full - jacobian - prior_only == pytest.approx(ref.logpdf([0.5, 1.2]).sum() + ref.logsf(2.0), rel=1e-12)
    assert ld.logdensity(ld.unconstrain({"hi": 1.1})) == -np.inf  # 1.2 is above hi
