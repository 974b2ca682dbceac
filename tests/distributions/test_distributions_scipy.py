"""Distributions against scipy.stats: log densities, supports, parameter checks, sampling."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special as sp
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hs

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad.errors import ModelDefinitionError

FAST = settings(max_examples=30, deadline=None)

pos = hs.floats(0.2, 8.0)
real = hs.floats(-4.0, 4.0)
unit = hs.floats(0.02, 0.98)
xpos = hs.floats(0.05, 10.0)
xunit = hs.floats(0.01, 0.99)
angle = hs.floats(-3.1, 3.1)


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-11)


# name -> (strategies for (params..., x), builder, scipy logpdf)
CONTINUOUS = {
    "Normal": ((real, pos, real), lambda m, s: dist.Normal(m, s), lambda m, s, x: st.norm(m, s).logpdf(x)),
    "HalfNormal": ((pos, xpos), lambda s: dist.HalfNormal(s), lambda s, x: st.halfnorm(scale=s).logpdf(x)),
    "Cauchy": ((real, pos, real), lambda m, s: dist.Cauchy(m, s), lambda m, s, x: st.cauchy(m, s).logpdf(x)),
    "HalfCauchy": ((pos, xpos), lambda s: dist.HalfCauchy(s), lambda s, x: st.halfcauchy(scale=s).logpdf(x)),
    "StudentT": (
        (pos, real, pos, real), lambda nu, m, s: dist.StudentT(nu, m, s),
        lambda nu, m, s, x: st.t(nu, m, s).logpdf(x),
    ),
    "HalfStudentT": (
        (pos, pos, xpos), lambda nu, s: dist.HalfStudentT(nu, s),
        lambda nu, s, x: np.log(2.0 * st.t(nu, 0.0, s).pdf(x)),
    ),
    "Exponential": ((pos, xpos), lambda lam: dist.Exponential(lam), lambda lam, x: st.expon(scale=1 / lam).logpdf(x)),
    "Gamma": (
        (pos, pos, xpos), lambda a, b: dist.Gamma(a, b), lambda a, b, x: st.gamma(a, scale=1.0 / b).logpdf(x),
    ),
    "InverseGamma": (
        (pos, pos, xpos), lambda a, b: dist.InverseGamma(a, b), lambda a, b, x: st.invgamma(a, scale=b).logpdf(x),
    ),
    "Beta": ((pos, pos, xunit), lambda a, b: dist.Beta(a, b), lambda a, b, x: st.beta(a, b).logpdf(x)),
    "Uniform": (
        (real, pos, unit), lambda lo, w: dist.Uniform(lo, lo + w),
        lambda lo, w, frac: st.uniform(lo, w).logpdf(lo + frac * w),
    ),
    "LogNormal": (
        (real, pos, xpos), lambda m, s: dist.LogNormal(m, s), lambda m, s, x: st.lognorm(s, scale=np.exp(m)).logpdf(x),
    ),
    "Laplace": ((real, pos, real), lambda m, b: dist.Laplace(m, b), lambda m, b, x: st.laplace(m, b).logpdf(x)),
    "Logistic": ((real, pos, real), lambda m, s: dist.Logistic(m, s), lambda m, s, x: st.logistic(m, s).logpdf(x)),
    "Weibull": (
        (pos, pos, xpos), lambda a, b: dist.Weibull(a, b), lambda a, b, x: st.weibull_min(a, scale=b).logpdf(x),
    ),
    "Gumbel": ((real, pos, real), lambda m, b: dist.Gumbel(m, b), lambda m, b, x: st.gumbel_r(m, b).logpdf(x)),
    "ChiSquared": ((pos, xpos), lambda nu: dist.ChiSquared(nu), lambda nu, x: st.chi2(nu).logpdf(x)),
    "SkewNormal": (
        (real, pos, real, real), lambda m, s, a: dist.SkewNormal(m, s, a),
        lambda m, s, a, x: st.skewnorm(a, m, s).logpdf(x),
    ),
    "TruncatedNormal": (  # (mu, sigma, lower, width, x as a fraction of the interval)
        (real, pos, real, pos, unit),
        lambda m, s, lo, w: dist.TruncatedNormal(m, s, lo, lo + w),
        lambda m, s, lo, w, frac: st.truncnorm((lo - m) / s, (lo + w - m) / s, m, s).logpdf(lo + frac * w),
    ),
    "TruncatedNormal_lower": (
        (real, pos, real, xpos), lambda m, s, lo: dist.TruncatedNormal(m, s, lower=lo),
        lambda m, s, lo, x: st.truncnorm((lo - m) / s, np.inf, m, s).logpdf(lo + x),
    ),
    "TruncatedNormal_upper": (
        (real, pos, real, xpos), lambda m, s, hi: dist.TruncatedNormal(m, s, upper=hi),
        lambda m, s, hi, x: st.truncnorm(-np.inf, (hi - m) / s, m, s).logpdf(hi - x),
    ),
    "Pareto": ((pos, pos, xpos), lambda a, m: dist.Pareto(a, m), lambda a, m, x: st.pareto(a, scale=m).logpdf(m + x)),
    "VonMises": (
        (real, pos, angle), lambda m, k: dist.VonMises(m, k), lambda m, k, x: st.vonmises(k, loc=m).logpdf(x),
    ),
    "Wald": ((pos, pos, xpos), lambda mu, lam: dist.Wald(mu, lam), lambda mu, lam, x: st.invgauss(mu / lam, scale=lam).logpdf(x)),
}


def _point(name, args):
    """The value at which the density is evaluated, from the drawn arguments (some draw a
    position inside the support rather than the value itself)."""
    if name == "Uniform":
        lo, w, frac = args
        return lo + frac * w
    if name == "TruncatedNormal":
        _, _, lo, w, frac = args
        return lo + frac * w
    if name == "TruncatedNormal_lower":
        return args[2] + args[-1]
    if name == "TruncatedNormal_upper":
        return args[2] - args[-1]
    if name == "Pareto":
        return args[1] + args[-1]
    return args[-1]


@pytest.mark.parametrize("name", sorted(CONTINUOUS))
@FAST
@given(data=hs.data())
def test_continuous_logpdf_matches_scipy(name, data):
    strategies, build, reference = CONTINUOUS[name]
    args = [data.draw(s) for s in strategies]
    d = build(*args[:-1])
    close(d.logpdf(_point(name, args)), reference(*args))


@pytest.mark.parametrize("name", sorted(CONTINUOUS))
def test_continuous_logpdf_broadcasts_over_arrays(name, rng):
    strategies, build, reference = CONTINUOUS[name]
    # deterministic parameters: the middle of each strategy's range
    mids = {id(real): 0.3, id(pos): 1.7, id(unit): 0.4, id(xpos): 1.3, id(xunit): 0.35, id(angle): 0.2}
    args = [mids[id(s)] for s in strategies]
    points = np.array([0.2, 0.5, 0.9]) if name in ("Beta", "Uniform", "TruncatedNormal") else np.array([0.4, 1.1, 2.5])
    d = build(*args[:-1])
    expected = [reference(*args[:-1], p) for p in points]
    x = np.array([_point(name, args[:-1] + [p]) for p in points])
    close(d.logpdf(x), expected)


DISCRETE = {
    "Bernoulli": ((unit, hs.integers(0, 1)), lambda p: dist.Bernoulli(p), lambda p, k: st.bernoulli(p).logpmf(k)),
    "BernoulliLogit": (
        (real, hs.integers(0, 1)), lambda a: dist.BernoulliLogit(a), lambda a, k: st.bernoulli(sp.expit(a)).logpmf(k),
    ),
    "Binomial": (
        (hs.integers(1, 40), unit, hs.floats(0, 1)), lambda n, p: dist.Binomial(n, p),
        lambda n, p, f: st.binom(n, p).logpmf(round(f * n)),
    ),
    "BinomialLogit": (
        (hs.integers(1, 40), real, hs.floats(0, 1)), lambda n, a: dist.BinomialLogit(n, a),
        lambda n, a, f: st.binom(n, sp.expit(a)).logpmf(round(f * n)),
    ),
    "Poisson": ((pos, hs.integers(0, 30)), lambda lam: dist.Poisson(lam), lambda lam, k: st.poisson(lam).logpmf(k)),
    "PoissonLog": (
        (real, hs.integers(0, 30)), lambda a: dist.PoissonLog(a), lambda a, k: st.poisson(np.exp(a)).logpmf(k),
    ),
    "NegativeBinomial2": (
        (pos, pos, hs.integers(0, 30)), lambda mu, phi: dist.NegativeBinomial2(mu, phi),
        lambda mu, phi, k: st.nbinom(n=phi, p=phi / (mu + phi)).logpmf(k),
    ),
    "BetaBinomial": (  # (n, alpha, beta, k as a fraction of n)
        (hs.integers(1, 40), pos, pos, hs.floats(0, 1)), lambda n, a, b: dist.BetaBinomial(n, a, b),
        lambda n, a, b, f: st.betabinom(n, a, b).logpmf(round(f * n)),
    ),
    "ZeroInflatedPoisson": (
        (unit, pos, hs.integers(0, 30)), lambda psi, mu: dist.ZeroInflatedPoisson(psi, mu),
        lambda psi, mu, k: np.log(1 - psi + psi * np.exp(-mu)) if k == 0 else np.log(psi) + st.poisson(mu).logpmf(k),
    ),
    "Geometric": ((unit, hs.integers(1, 40)), lambda p: dist.Geometric(p), lambda p, k: st.geom(p).logpmf(k)),
    "ZeroInflatedNegativeBinomial": (
        (unit, pos, pos, hs.integers(0, 30)), lambda psi, mu, phi: dist.ZeroInflatedNegativeBinomial(psi, mu, phi),
        lambda psi, mu, phi, k: (np.log(1 - psi + psi * st.nbinom(n=phi, p=phi / (mu + phi)).pmf(0)) if k == 0
                                 else np.log(psi) + st.nbinom(n=phi, p=phi / (mu + phi)).logpmf(k)),
    ),
}


@pytest.mark.parametrize("name", sorted(DISCRETE))
@FAST
@given(data=hs.data())
def test_discrete_logpmf_matches_scipy(name, data):
    strategies, build, reference = DISCRETE[name]
    args = [data.draw(s) for s in strategies]
    k = round(args[-1] * args[0]) if name.startswith(("Binomial", "BetaBinomial")) else args[-1]
    close(build(*args[:-1]).logpmf(k), reference(*args))


@FAST
@given(p=hs.lists(hs.floats(0.05, 5.0), min_size=2, max_size=6), data=hs.data())
def test_categorical_logpmf(p, data):
    p = np.array(p) / np.sum(p)
    k = data.draw(hs.integers(0, len(p) - 1))
    close(dist.Categorical(p).logpmf(k), np.log(p[k]))


@FAST
@given(alpha=hs.lists(hs.floats(0.3, 6.0), min_size=2, max_size=6), seed=hs.integers(0, 2**31))
def test_dirichlet_matches_scipy(alpha, seed):
    alpha = np.array(alpha)
    x = np.random.default_rng(seed).dirichlet(alpha + 1.0)
    close(dist.Dirichlet(alpha).logpdf(x), st.dirichlet(alpha).logpdf(x))


@FAST
@given(d=hs.integers(1, 5), nu=hs.floats(0.5, 30.0), seed=hs.integers(0, 2**31))
def test_mvstudentt_matches_scipy(d, nu, seed):
    rng = np.random.default_rng(seed)
    mu, scale = rng.normal(size=d), _random_cov(rng, d)
    reference = st.multivariate_t(mu, scale, df=nu)
    x = rng.normal(size=d) * 3
    close(dist.MvStudentT(nu, mu, scale).logpdf(x), reference.logpdf(x))
    rows = rng.normal(size=(4, d)) * 3
    close(dist.MvStudentT(nu, mu, scale).logpdf(rows), reference.logpdf(rows))


@FAST
@given(alpha=hs.lists(hs.floats(0.1, 10.0), min_size=2, max_size=5), n=hs.integers(0, 30), seed=hs.integers(0, 2**31))
def test_dirichlet_multinomial_matches_scipy(alpha, n, seed):
    alpha = np.array(alpha)
    counts = np.random.default_rng(seed).multinomial(n, np.full(len(alpha), 1 / len(alpha)), size=3)
    close(dist.DirichletMultinomial(n, alpha).logpmf(counts), st.dirichlet_multinomial(alpha, n).logpmf(counts))


def test_the_added_distributions_draw_their_moments(rng):
    draws = dist.Wald(2.0, 3.0).sample(rng, (40000,))
    assert abs(draws.mean() - 2.0) < 5 * np.sqrt(8.0 / 3.0 / 40000) and draws.shape == (40000,)
    psi, mu, phi = 0.7, 3.0, 2.0
    draws = dist.ZeroInflatedNegativeBinomial(psi, mu, phi).sample(rng, (40000,))
    variance = psi * (mu + mu**2 / phi) + psi * (1 - psi) * mu**2
    assert abs(draws.mean() - psi * mu) < 5 * np.sqrt(variance / 40000)
    assert abs(np.mean(draws == 0) - (1 - psi + psi * (phi / (mu + phi)) ** phi)) < 0.01
    scale = np.array([[2.0, 0.3], [0.3, 1.0]])
    draws = dist.MvStudentT(6.0, np.array([1.0, -1.0]), scale).sample(rng, (40000,))
    np.testing.assert_allclose(np.cov(draws.T), 6.0 / 4.0 * scale, rtol=0.1)
    assert np.all(np.abs(draws.mean(0) - [1.0, -1.0]) < 0.03)
    alpha = np.array([0.5, 1.5, 2.0])
    draws = dist.DirichletMultinomial(np.array([6, 10]), alpha).sample(rng, (20000,))
    assert draws.shape == (20000, 2, 3) and np.all(draws.sum(-1) == [6, 10])
    np.testing.assert_allclose(draws.mean(0), np.outer([6, 10], alpha / alpha.sum()), rtol=0.03)


def _random_cov(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T + d * np.eye(d)


@FAST
@given(d=hs.integers(1, 5), seed=hs.integers(0, 2**31))
def test_mvnormal_matches_scipy(d, seed):
    rng = np.random.default_rng(seed)
    mu, cov = rng.normal(size=d), _random_cov(rng, d)
    x = rng.normal(size=d) * 3
    ref = st.multivariate_normal(mu, cov).logpdf(x)
    close(dist.MvNormal(mu, cov).logpdf(x), ref)
    close(dist.MvNormalCholesky(mu, np.linalg.cholesky(cov)).logpdf(x), ref)
    rows = rng.normal(size=(4, d))
    close(dist.MvNormalCholesky(mu, np.linalg.cholesky(cov)).logpdf(rows), st.multivariate_normal(mu, cov).logpdf(rows))


@FAST
@given(eta=hs.floats(0.3, 6.0), r=hs.floats(-0.98, 0.98))
def test_lkj_cholesky_d2_closed_form(eta, r):
    L = np.array([[1.0, 0.0], [r, np.sqrt(1 - r * r)]])
    # r = 2 Beta(eta, eta) - 1 has density (1 - r^2)^(eta - 1) / (2^(2 eta - 1) B(eta, eta)).
    # The density of L w.r.t. its free coordinate r: corr density, as the map r -> L[1, 0] is the identity.
    log_corr = (eta - 1) * np.log1p(-r * r) - (2 * eta - 1) * np.log(2.0) - sp.betaln(eta, eta)
    # In d = 2 the free coordinate of L is r itself (L[1, 0] = corr[1, 0]), so the densities agree.
    close(dist.LKJCholesky(2, eta).logpdf(L), log_corr)


def _lkj_log_target(transform, lkj, u):
    L = transform.forward(u)
    return lkj.logpdf(L) + transform.log_abs_det_jacobian(u, L)


@pytest.mark.parametrize(("eta", "tol"), [(0.8, 0.01), (1.0, 3e-3), (2.5, 2e-4)])
def test_lkj_cholesky_d3_normalised(eta, tol):
    """The density with the transform's log-Jacobian integrates to 1 over R^3.

    Gauss-Legendre quadrature in z = tanh(u) (du = dz / (1 - z^2)); the integrand has
    endpoint singularities for small eta, hence the looser tolerance there.
    """
    import itertools

    from ppl_ad.transforms import biject_to

    lkj = dist.LKJCholesky(3, eta)
    transform = biject_to(lkj.support)
    nodes, weights = np.polynomial.legendre.leggauss(10)
    total = 0.0
    for index in itertools.product(range(10), repeat=3):
        z = nodes[list(index)]
        u = np.arctanh(z)
        log_target = _lkj_log_target(transform, lkj, u)
        total += np.prod(weights[list(index)]) * np.exp(log_target) / np.prod(1 - z * z)
    assert abs(total - 1.0) < tol


@pytest.mark.parametrize(("d", "eta"), [(2, 1.0), (3, 2.0), (4, 0.7)])
def test_lkj_cholesky_sample_variance(d, eta, rng):
    draws = dist.LKJCholesky(d, eta).sample(rng, (4000,))
    assert draws.shape == (4000, d, d)
    corr = draws @ np.swapaxes(draws, -1, -2)
    np.testing.assert_allclose(np.diagonal(corr, axis1=1, axis2=2), 1.0, atol=1e-12)
    off = corr[:, np.tril_indices(d, -1)[0], np.tril_indices(d, -1)[1]]
    expected = 1.0 / (2 * eta + d - 1)
    assert np.all(np.abs(off.var(0) - expected) < 0.12 * expected)
    assert np.all(np.abs(off.mean(0)) < 0.05)


# ---------------------------------------------------------------- supports
OUTSIDE = [
    ("HalfNormal", dist.HalfNormal(1.0), -0.5),
    ("HalfCauchy", dist.HalfCauchy(1.0), -1.0),
    ("HalfStudentT", dist.HalfStudentT(3.0, 1.0), -2.0),
    ("Exponential", dist.Exponential(2.0), -0.1),
    ("Gamma", dist.Gamma(2.0, 1.0), -1.0),
    ("InverseGamma", dist.InverseGamma(2.0, 1.0), 0.0),
    ("Beta", dist.Beta(2.0, 3.0), 1.2),
    ("Uniform", dist.Uniform(-1.0, 2.0), 2.5),
    ("LogNormal", dist.LogNormal(0.0, 1.0), -3.0),
    ("Normal", dist.Normal(0.0, 1.0), np.inf),
    ("Cauchy", dist.Cauchy(0.0, 1.0), np.nan),
    ("StudentT", dist.StudentT(3.0, 0.0, 1.0), -np.inf),
    ("Laplace", dist.Laplace(0.0, 1.0), np.inf),
    ("Logistic", dist.Logistic(0.0, 1.0), np.nan),
    ("Bernoulli", dist.Bernoulli(0.3), 2),
    ("BernoulliLogit", dist.BernoulliLogit(0.3), 0.5),
    ("Binomial", dist.Binomial(5, 0.3), 6),
    ("BinomialLogit", dist.BinomialLogit(5, 0.3), -1),
    ("Poisson", dist.Poisson(3.0), 1.5),
    ("Weibull", dist.Weibull(2.0, 1.0), -0.5),
    ("ChiSquared", dist.ChiSquared(3.0), -1.0),
    ("TruncatedNormal", dist.TruncatedNormal(0.0, 1.0, -1.0, 2.0), 2.5),
    ("TruncatedNormal", dist.TruncatedNormal(0.0, 1.0, lower=-1.0), -1.5),
    ("Pareto", dist.Pareto(2.0, 1.0), 0.5),
    ("Gumbel", dist.Gumbel(0.0, 1.0), np.nan),
    ("SkewNormal", dist.SkewNormal(0.0, 1.0, 2.0), np.inf),
    ("BetaBinomial", dist.BetaBinomial(5, 2.0, 3.0), 6),
    ("ZeroInflatedPoisson", dist.ZeroInflatedPoisson(0.5, 2.0), -1),
    ("Geometric", dist.Geometric(0.3), 0),
    ("PoissonLog", dist.PoissonLog(1.0), -2),
    ("NegativeBinomial2", dist.NegativeBinomial2(3.0, 2.0), -1),
    ("Categorical", dist.Categorical(np.array([0.2, 0.8])), 2),
    ("Dirichlet", dist.Dirichlet(np.ones(3)), np.array([0.5, 0.5, 0.5])),
    ("MvNormal", dist.MvNormal(np.zeros(2), np.eye(2)), np.array([np.inf, 0.0])),
    ("MvNormalCholesky", dist.MvNormalCholesky(np.zeros(2), np.eye(2)), np.array([0.0, np.nan])),
    ("LKJCholesky", dist.LKJCholesky(2, 1.0), np.array([[1.0, 0.0], [0.5, 0.5]])),
    ("VonMises", dist.VonMises(0.0, 2.0), 4.0),
    ("Wald", dist.Wald(1.0, 2.0), -0.5),
    ("Wald", dist.Wald(1.0, 2.0), 0.0),
    ("ZeroInflatedNegativeBinomial", dist.ZeroInflatedNegativeBinomial(0.5, 2.0, 1.5), 1.5),
    ("MvStudentT", dist.MvStudentT(3.0, np.zeros(2), np.eye(2)), np.array([np.inf, 0.0])),
    ("DirichletMultinomial", dist.DirichletMultinomial(4, np.ones(3)), np.array([2, 1, 2])),
]


@pytest.mark.parametrize(("name", "d", "value"), OUTSIDE, ids=[o[0] for o in OUTSIDE])
def test_outside_support_is_minus_inf(name, d, value):
    assert type(d).__name__ == name
    assert d.logpdf(value) == -np.inf


def test_outside_support_elementwise():
    out = dist.HalfNormal(1.0).logpdf(np.array([1.0, -1.0]))
    assert np.isfinite(out[0]) and out[1] == -np.inf


INVALID = [
    ("Normal", "sigma", lambda: dist.Normal(0.0, -1.0)),
    ("HalfNormal", "sigma", lambda: dist.HalfNormal(0.0)),
    ("Cauchy", "sigma", lambda: dist.Cauchy(0.0, -2.0)),
    ("HalfCauchy", "sigma", lambda: dist.HalfCauchy(-1.0)),
    ("StudentT", "nu", lambda: dist.StudentT(-3.0, 0.0, 1.0)),
    ("HalfStudentT", "sigma", lambda: dist.HalfStudentT(3.0, -1.0)),
    ("Exponential", "lam", lambda: dist.Exponential(-1.0)),
    ("Gamma", "beta", lambda: dist.Gamma(1.0, -1.0)),
    ("InverseGamma", "alpha", lambda: dist.InverseGamma(0.0, 1.0)),
    ("Beta", "alpha", lambda: dist.Beta(-1.0, 1.0)),
    ("Uniform", "upper", lambda: dist.Uniform(1.0, 0.0)),
    ("LogNormal", "sigma", lambda: dist.LogNormal(0.0, -0.5)),
    ("Laplace", "b", lambda: dist.Laplace(0.0, 0.0)),
    ("Logistic", "s", lambda: dist.Logistic(0.0, -1.0)),
    ("Bernoulli", "p", lambda: dist.Bernoulli(1.5)),
    ("Binomial", "p", lambda: dist.Binomial(3, -0.2)),
    ("Binomial", "n", lambda: dist.Binomial(-3, 0.2)),
    ("BinomialLogit", "n", lambda: dist.BinomialLogit(2.5, 0.2)),
    ("Poisson", "lam", lambda: dist.Poisson(-1.0)),
    ("Weibull", "alpha", lambda: dist.Weibull(-1.0, 1.0)),
    ("Gumbel", "beta", lambda: dist.Gumbel(0.0, 0.0)),
    ("ChiSquared", "nu", lambda: dist.ChiSquared(0.0)),
    ("SkewNormal", "sigma", lambda: dist.SkewNormal(0.0, -1.0, 1.0)),
    ("TruncatedNormal", "sigma", lambda: dist.TruncatedNormal(0.0, -1.0, 0.0, 1.0)),
    ("TruncatedNormal", "upper", lambda: dist.TruncatedNormal(0.0, 1.0, 2.0, 1.0)),
    ("Pareto", "m", lambda: dist.Pareto(2.0, -1.0)),
    ("BetaBinomial", "n", lambda: dist.BetaBinomial(-2, 1.0, 1.0)),
    ("BetaBinomial", "alpha", lambda: dist.BetaBinomial(3, 0.0, 1.0)),
    ("ZeroInflatedPoisson", "psi", lambda: dist.ZeroInflatedPoisson(1.5, 1.0)),
    ("Geometric", "p", lambda: dist.Geometric(0.0)),
    ("NegativeBinomial2", "phi", lambda: dist.NegativeBinomial2(1.0, -1.0)),
    ("Categorical", "p", lambda: dist.Categorical(np.array([0.5, 0.7]))),
    ("Dirichlet", "alpha", lambda: dist.Dirichlet(np.array([1.0, -1.0]))),
    ("MvNormal", "cov", lambda: dist.MvNormal(np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]]))),
    ("MvNormalCholesky", "L", lambda: dist.MvNormalCholesky(np.zeros(2), np.array([[1.0, 1.0], [0.0, 1.0]]))),
    ("LKJCholesky", "eta", lambda: dist.LKJCholesky(3, -1.0)),
    ("LKJCholesky", "dim", lambda: dist.LKJCholesky(1, 1.0)),
    ("LKJCholesky", "eta", lambda: dist.LKJCholesky(3, np.array([1.0, 10.0]))),  # one prior, one scalar
    # Python lists are constants too
    ("Normal", "sigma", lambda: dist.Normal(0.0, [-1.0, 1.0])),
    ("Categorical", "p", lambda: dist.Categorical([0.5, 0.6])),
    ("Dirichlet", "alpha", lambda: dist.Dirichlet([1.0, -1.0, 2.0])),
    ("Bernoulli", "p", lambda: dist.Bernoulli(1.0 + 1e-9)),
    # infinite or NaN constants would give NaN densities
    ("Exponential", "lam", lambda: dist.Exponential(np.inf)),
    ("StudentT", "nu", lambda: dist.StudentT(np.inf, 0.0, 1.0)),
    ("Normal", "mu", lambda: dist.Normal(np.nan, 1.0)),
]


def test_probabilities_of_exactly_zero_and_one_are_valid():
    assert dist.Bernoulli(1.0).logpdf(1) == 0.0 and dist.Bernoulli(1.0).logpdf(0) == -np.inf
    assert dist.Bernoulli(0.0).logpdf(0) == 0.0
    assert dist.Binomial(3, 1.0).logpdf(3) == 0.0 and dist.Binomial(3, 1.0).logpdf(2) == -np.inf
    assert dist.Binomial(3, 0.0).logpdf(0) == 0.0


@pytest.mark.parametrize(("name", "param", "build"), INVALID, ids=[f"{n}-{p}" for n, p, _ in INVALID])
def test_invalid_constant_parameter_raises(name, param, build):
    with pytest.raises(ModelDefinitionError) as info:
        build()
    assert isinstance(info.value, ValueError)
    assert name in str(info.value) and f"'{param}'" in str(info.value)


@pytest.mark.parametrize(("name", "param", "build"), INVALID[:16], ids=[f"{n}-{p}" for n, p, _ in INVALID[:16]])
def test_invalid_parameter_raises_at_compile_time(name, param, build):
    @pa.model
    def bad():
        pa.sample("ok", dist.Normal(0.0, 1.0))
        build()

    with pytest.raises(ModelDefinitionError) as info:
        pa.logdensity(bad(), backend="finite-difference")
    assert name in str(info.value) and f"'{param}'" in str(info.value)


# ---------------------------------------------------------------- sampling
SAMPLING = [
    (dist.Normal(1.0, 2.0), 1.0, 2.0),
    (dist.HalfNormal(2.0), 2.0 * np.sqrt(2 / np.pi), 2.0),
    (dist.StudentT(5.0, -1.0, 1.0), -1.0, 1.3),
    (dist.HalfStudentT(5.0, 1.0), st.t(5).expect(lambda x: abs(x)), 1.3),
    (dist.Exponential(2.0), 0.5, 0.5),
    (dist.Gamma(3.0, 2.0), 1.5, np.sqrt(3) / 2),
    (dist.InverseGamma(5.0, 2.0), 0.5, 0.3),
    (dist.Beta(2.0, 3.0), 0.4, 0.2),
    (dist.Uniform(-1.0, 3.0), 1.0, 1.2),
    (dist.LogNormal(0.0, 0.5), np.exp(0.125), 0.6),
    (dist.Laplace(2.0, 1.0), 2.0, 1.5),
    (dist.Logistic(-1.0, 1.0), -1.0, 1.9),
    (dist.Bernoulli(0.3), 0.3, 0.5),
    (dist.BernoulliLogit(0.0), 0.5, 0.5),
    (dist.Binomial(10, 0.3), 3.0, 1.5),
    (dist.BinomialLogit(10, 0.0), 5.0, 1.6),
    (dist.Poisson(4.0), 4.0, 2.0),
    (dist.PoissonLog(np.log(4.0)), 4.0, 2.0),
    (dist.NegativeBinomial2(4.0, 2.0), 4.0, 3.5),
    (dist.Categorical(np.array([0.2, 0.3, 0.5])), 1.3, 0.8),
]


@pytest.mark.parametrize(("d", "mean", "sd"), SAMPLING, ids=[type(s[0]).__name__ for s in SAMPLING])
def test_sample_shape_and_mean(d, mean, sd, rng):
    draws = d.sample(rng, (4000,))
    assert draws.shape == (4000,)
    assert abs(draws.mean() - mean) < 5 * sd / np.sqrt(4000)
    assert d.sample(rng, (2, 3)).shape == (2, 3)


def test_heavy_tailed_sample_shapes(rng):
    assert dist.Cauchy(0.0, 1.0).sample(rng, (5,)).shape == (5,)
    draws = dist.HalfCauchy(1.0).sample(rng, (4000,))
    assert draws.shape == (4000,) and np.all(draws > 0)
    assert abs(np.median(draws) - 1.0) < 0.1


def test_batched_sample_shape(rng):
    d = dist.Normal(np.zeros(3), np.ones(3))
    assert d.sample(rng, (7,)).shape == (7, 3)


@FAST
@given(d=hs.integers(1, 6), log_cond=hs.floats(0.0, 14.0), seed=hs.integers(0, 2**31))
def test_a_constant_cholesky_factor_is_applied_as_its_inverse_only_when_well_conditioned(d, log_cond, seed):
    from scipy.linalg import lapack, solve_triangular

    from ppl_ad.distributions.multivariate import INVERSE_MIN_RCOND, _constant_inverse, _mvn_log_prob

    rng = np.random.default_rng(seed)
    L = np.tril(rng.normal(size=(d, d)), -1) * 0.5 + np.diag(10.0 ** -np.linspace(0.0, log_cond, d))
    mu = rng.normal(size=d)
    rows = mu + rng.normal(size=(3, d)) @ L.T * 3.0
    inverse = _constant_inverse(L)
    rcond = lapack.dtrcon(L, norm="1", uplo="L", diag="N")[0]
    assert (inverse is None) == (rcond < INVERSE_MIN_RCOND)
    if inverse is not None:
        np.testing.assert_allclose(inverse @ L, np.eye(d), atol=1e-8)
    # against the triangular solve, which a factor that is not a NumPy array gets; relative to the size
    # of the terms, as the log density is their difference (0.24 from terms near 10 at log_cond = 5)
    for x in (rows[0], rows):
        z = solve_triangular(L, np.atleast_2d(x - mu).T, lower=True)  # LU calls a factor at condition 1e14 singular
        scale = 0.5 * np.sum(z * z, 0) + np.sum(np.abs(np.log(np.diag(L)))) + d
        difference = np.abs(dist.MvNormalCholesky(mu, L).logpdf(x) - _mvn_log_prob(x, mu, L))
        assert np.all(difference <= 1e-10 * scale.reshape(np.shape(difference))), (difference, scale)


def test_a_constant_covariance_is_factorised_and_inverted_once_per_array(monkeypatch):
    # tape backends run the model, so build the distribution, at every evaluation
    from ppl_ad.distributions import base, multivariate

    # an empty cache: one that earlier tests filled to its bound is cleared between these calls
    monkeypatch.setattr(base, "_DATA_TERMS", {})
    calls = []
    inverse = multivariate._constant_inverse
    monkeypatch.setattr(multivariate, "_constant_inverse", lambda L: calls.append(1) or inverse(L))
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    x = np.array([0.3, -1.2])
    values = [dist.MvNormal(np.zeros(2), cov).logpdf(x) for _ in range(3)]
    assert len(calls) == 1 and values[0] == values[2]
    cov[0, 1] = cov[1, 0] = -0.5  # changed in place: factorised and inverted again
    assert dist.MvNormal(np.zeros(2), cov).logpdf(x) == pytest.approx(st.multivariate_normal(np.zeros(2), cov).logpdf(x))
    assert len(calls) == 2

def test_a_constant_covariance_compiles_without_a_lapack_call_under_jax():
    # XLA:CPU compiles a sampler's loops as one function only without custom calls (ppl_ad.infer.lowering)
    jax = pytest.importorskip("jax")
    cov = np.array([[2.0, 0.5, 0.1], [0.5, 1.0, 0.2], [0.1, 0.2, 1.5]])

    @pa.model
    def correlated(cov):
        pa.sample("x", dist.MvNormal(np.zeros(3), cov))

    fn, data = pa.logdensity(correlated(cov), backend="jax").traceable()
    x = np.array([0.3, -1.2, 0.4])
    compiled = jax.jit(jax.value_and_grad(fn)).lower(x, data).compile()
    assert "custom_call" not in compiled.as_text()
    value, grad = compiled(x, data)
    assert float(value) == pytest.approx(st.multivariate_normal(np.zeros(3), cov).logpdf(x), rel=1e-12)
    np.testing.assert_allclose(grad, -np.linalg.solve(cov, x), rtol=1e-12)

def test_multivariate_sample_shape_and_mean(rng):
    alpha = np.array([1.0, 2.0, 3.0])
    draws = dist.Dirichlet(alpha).sample(rng, (4000,))
    assert draws.shape == (4000, 3)
    np.testing.assert_allclose(draws.mean(0), alpha / alpha.sum(), atol=0.02)
    mu = np.array([1.0, -2.0])
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    for d in (dist.MvNormal(mu, cov), dist.MvNormalCholesky(mu, np.linalg.cholesky(cov))):
        draws = d.sample(rng, (4000,))
        assert draws.shape == (4000, 2)
        np.testing.assert_allclose(draws.mean(0), mu, atol=0.1)
        np.testing.assert_allclose(np.cov(draws.T), cov, atol=0.15)


def test_dirichlet_at_a_vertex_with_unit_concentration_is_finite():
    assert dist.Dirichlet(np.ones(3)).logpdf(np.array([1.0, 0.0, 0.0])) == pytest.approx(np.log(2.0))
    assert dist.Dirichlet(np.array([2.0, 1.0, 1.0])).logpdf(np.array([0.0, 0.5, 0.5])) == -np.inf


def test_dirichlet_with_a_batch_of_concentrations_samples_each_row(rng):
    alpha = np.array([[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0], [0.5, 0.5, 0.5, 0.5]])
    draws = dist.Dirichlet(alpha).sample(rng, (20000,))
    assert draws.shape == (20000, 3, 4)
    np.testing.assert_allclose(draws.sum(-1), 1.0)
    np.testing.assert_allclose(draws.mean(0), alpha / alpha.sum(-1, keepdims=True), atol=0.01)


def test_mvnormal_refuses_a_batch_of_covariances():
    covs = np.array([[[2.0, 1.5], [1.5, 2.0]], [[1.0, -0.9], [-0.9, 1.0]]])
    with pytest.raises(ModelDefinitionError, match="'cov' must be one square matrix"):
        dist.MvNormal(np.zeros(2), covs)
    with pytest.raises(ModelDefinitionError, match="'L' must be one square matrix"):
        dist.MvNormalCholesky(np.zeros(2), np.linalg.cholesky(covs))


def test_mvnormal_logpdf_of_rows_with_any_batch_shape(rng):
    cov = np.array([[2.0, 1.5], [1.5, 2.0]])
    value = rng.normal(size=(5, 3, 2))
    expected = st.multivariate_normal([1.0, -1.0], cov).logpdf(value)
    got = dist.MvNormal(np.array([1.0, -1.0]), cov).logpdf(value)
    assert got.shape == (5, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    batched_mean = dist.MvNormal(np.zeros((3, 2)), np.eye(2)).logpdf(value)
    np.testing.assert_allclose(batched_mean, st.multivariate_normal(np.zeros(2), np.eye(2)).logpdf(value), rtol=1e-12)


def test_categorical_takes_labels_stored_as_floats():
    p = np.array([0.2, 0.5, 0.3])
    assert dist.Categorical(p).logpdf(1.0) == pytest.approx(np.log(0.5))
    np.testing.assert_allclose(dist.Categorical(p).logpdf(np.array([0.0, 2.0])), np.log([0.2, 0.3]))


def _mp():
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 50
    return mp


@pytest.mark.parametrize("phi", [1e-3, 0.7, 99.0, 101.0, 1e4, 1e8, 1e12, 1e15])
def test_negative_binomial_keeps_its_digits_towards_the_poisson_limit(phi):
    mp = _mp()
    for y in (0, 3, 250):
        m, f = mp.mpf(5.0), mp.mpf(phi)
        exact = (mp.loggamma(y + f) - mp.loggamma(f) - mp.loggamma(y + 1) + f * mp.log(f / (m + f))
                 + y * mp.log(m / (m + f)))
        assert dist.NegativeBinomial2(5.0, phi).logpdf(y) == pytest.approx(float(exact), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("nu", [0.1, 3.0, 199.0, 201.0, 1e6, 1e10, 1e15])
def test_student_t_keeps_its_digits_for_large_degrees_of_freedom(nu):
    mp = _mp()
    for x in (0.0, 1.0, -3.5):
        n, v = mp.mpf(nu), mp.mpf(x)
        exact = mp.loggamma((n + 1) / 2) - mp.loggamma(n / 2) - mp.log(n * mp.pi) / 2 - (n + 1) / 2 * mp.log1p(v * v / n)
        assert dist.StudentT(nu, 0.0, 1.0).logpdf(x) == pytest.approx(float(exact), rel=1e-12, abs=1e-12)


ON_A_BOUND = [
    ("Exponential at 0", dist.Exponential(2.0), st.expon(scale=0.5), [0.0]),
    ("Gamma at 0", dist.Gamma(1.0, 2.0), st.gamma(1.0, scale=0.5), [0.0]),
    ("Gamma(0.5) at 0", dist.Gamma(0.5, 2.0), st.gamma(0.5, scale=0.5), [0.0]),
    ("Gamma(2) at 0", dist.Gamma(2.0, 2.0), st.gamma(2.0, scale=0.5), [0.0]),
    ("InverseGamma at 0", dist.InverseGamma(2.0, 1.0), st.invgamma(2.0, scale=1.0), [0.0]),
    ("HalfNormal at 0", dist.HalfNormal(1.5), st.halfnorm(scale=1.5), [0.0]),
    ("HalfCauchy at 0", dist.HalfCauchy(1.5), st.halfcauchy(scale=1.5), [0.0]),
    ("LogNormal at 0", dist.LogNormal(0.3, 1.0), st.lognorm(1.0, scale=np.exp(0.3)), [0.0]),
    ("Beta(1, 1) at 0 and 1", dist.Beta(1.0, 1.0), st.beta(1.0, 1.0), [0.0, 1.0]),
    ("Beta(1, 3) at 0 and 1", dist.Beta(1.0, 3.0), st.beta(1.0, 3.0), [0.0, 1.0]),
    ("Beta(2, 0.5) at 0 and 1", dist.Beta(2.0, 0.5), st.beta(2.0, 0.5), [0.0, 1.0]),
    ("Uniform at its ends", dist.Uniform(-1.0, 2.0), st.uniform(-1.0, 3.0), [-1.0, 2.0]),
]


@pytest.mark.parametrize(("name", "ours", "reference", "values"), ON_A_BOUND, ids=[c[0] for c in ON_A_BOUND])
def test_observed_values_on_a_bound_of_the_support_get_scipys_density(name, ours, reference, values):
    # Stan and SciPy count a continuous support's bounds in (an exponential waiting time of 0): the
    # density there is finite, infinite or zero as its formula says, never NaN
    with np.errstate(all="ignore"):
        expected = reference.logpdf(np.array(values))
    got = np.asarray(ours.logpdf(np.array(values)), dtype=float)
    assert not np.any(np.isnan(got))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["jax", "torch", "autograd", "finite-difference"])
def test_waiting_times_of_zero_are_data_like_any_other(backend):
    import ppl_ad as pa

    @pa.model
    def waits(y):
        lam = pa.sample("lam", dist.Gamma(2.0, 1.0))
        pa.observe("y", dist.Exponential(lam), y)

    y = np.array([0.0, 1.5, 0.2, 0.0])
    lam = np.exp(0.4)
    value, grad = pa.logdensity(waits(y), backend=backend).logdensity_and_gradient(np.array([0.4]))
    assert value == pytest.approx(st.gamma(2.0).logpdf(lam) + 0.4 + st.expon(scale=1 / lam).logpdf(y).sum(), rel=1e-12)
    assert grad[0] == pytest.approx(2.0 - lam + len(y) - lam * y.sum(), rel=1e-9)  # d/du at lam = exp(u)


# ------------------------------------------------ bounds, batches and tails (session 20 stress tests)
@pa.model
def _beta_prior(a, b):
    pa.sample("x", dist.Beta(a, b))


@pytest.mark.parametrize("backend", ["jax", "jax-forward", "torch", "autograd"])
@pytest.mark.parametrize("a, b", [(2.0, 3.0), (0.5, 0.5), (0.1, 0.1)])
def test_beta_prior_in_the_far_tails_of_the_logit_on_every_backend(backend, a, b):
    # sigmoid(u) rounds to 1 from u = 37: log(1 - x) was -inf (or +inf for b < 1) on the tape backends
    ld = pa.logdensity(_beta_prior(a, b), backend=backend)
    for u in (-60.0, -37.0, 0.3, 30.0, 37.0, 60.0):
        log_sigmoid = -np.logaddexp(0.0, -u)
        log_sigmoid_minus = -np.logaddexp(0.0, u)
        expected = a * log_sigmoid + b * log_sigmoid_minus - sp.betaln(a, b)
        np.testing.assert_allclose(ld.logdensity(np.array([u])), expected, rtol=1e-12)
        value, grad = ld.logdensity_and_gradient(np.array([u]))
        np.testing.assert_allclose(grad, [a * (1.0 - sp.expit(u)) - b * sp.expit(u)], rtol=1e-9, atol=1e-12)


def test_a_batch_of_lkj_factors_is_refused_naming_the_site():
    @pa.model
    def two_correlations():
        pa.sample("L", dist.LKJCholesky(3, 2.0), shape=(2, 3, 3))

    with pytest.raises(ModelDefinitionError, match=r"site 'L'.*one \(3, 3\) value per site.*shape=\(2, 3, 3\)"):
        pa.logdensity(two_correlations(), backend="finite-difference")


@pytest.mark.parametrize("lower, upper, support", [
    (0.0, np.inf, "positive"), (-np.inf, 1.0, "less_than(1.0)"), (-np.inf, np.inf, "real"),
    (np.full(2, -np.inf), None, "real"),
])
def test_flat_with_an_infinite_bound_has_no_bound_there(lower, upper, support):
    assert repr(dist.Flat(lower, upper).support) == support


def test_flat_upper_infinity_samples_a_scale_as_stan():
    @pa.model
    def scale(y, upper):
        sigma = pa.sample("sigma", dist.Flat(lower=0.0, upper=upper))
        pa.observe("y", dist.Normal(0.0, sigma), y)

    y = np.array([1.2, -0.4, 2.1, -1.7, 0.3])
    ld = pa.logdensity(scale(y, np.inf), backend="jax")
    np.testing.assert_allclose(ld.logdensity(np.array([0.5])), st.norm(0, np.exp(0.5)).logpdf(y).sum() + 0.5)


@pytest.mark.parametrize("build, match", [
    (lambda: dist.Uniform(np.array([0.0, 2.0]), np.array([1.0, 1.0])), r"Uniform: parameter 'upper' must exceed"),
    (lambda: dist.Uniform(np.int64(2), np.int64(1)), r"Uniform: parameter 'upper' must exceed"),
    (lambda: dist.Flat(2.0, 1.0), r"Flat: parameter 'upper' must exceed"),
    (lambda: dist.Flat(np.array([0.0, -np.inf])), r"Flat: parameter 'lower' mixes infinite and finite"),
    (lambda: dist.Flat(np.inf), r"Flat: parameter 'lower' must be a number or -inf"),
    (lambda: dist.Flat(0.0, np.nan), r"Flat: parameter 'upper' must be a number or \+inf"),
    (lambda: dist.Dirichlet(2.0), r"Dirichlet: parameter 'alpha' must be a vector of at least 2"),
    (lambda: dist.Dirichlet([2.0]), r"Dirichlet: parameter 'alpha' must be a vector of at least 2"),
])
def test_invalid_constant_bounds_and_concentrations_are_refused(build, match):
    with pytest.raises(ModelDefinitionError, match=match):
        build()


# ------------------------------------------------------- Cauchy and Student-t far out in the tails
@pytest.mark.parametrize("x", [1e149, 1e151, 1e154, 1e155, 1e200, -1e300, 1.7e308])
def test_cauchy_and_student_t_stay_finite_where_z_squared_overflows(x):
    mp = _mp()
    v = mp.mpf(x)
    cauchy = -mp.log(mp.pi) - mp.log(2) - mp.log1p((v / 2) ** 2)
    assert dist.Cauchy(0.0, 2.0).logpdf(x) == pytest.approx(float(cauchy), rel=1e-14)
    assert dist.HalfCauchy(2.0).logpdf(abs(x)) == pytest.approx(float(cauchy + mp.log(2)), rel=1e-14)
    for nu in (0.5, 3.0, 1e6):
        n = mp.mpf(nu)
        t = mp.loggamma((n + 1) / 2) - mp.loggamma(n / 2) - mp.log(n * mp.pi) / 2 - (n + 1) / 2 * mp.log1p(v * v / n)
        assert dist.StudentT(nu, 0.0, 1.0).logpdf(x) == pytest.approx(float(t), rel=1e-13)
        assert dist.HalfStudentT(nu, 1.0).logpdf(abs(x)) == pytest.approx(float(t + mp.log(2)), rel=1e-13)


@settings(max_examples=200, deadline=None)
@given(hs.floats(-1e150, 1e150, allow_nan=False), hs.floats(0.01, 1e6))
def test_the_tails_change_nothing_up_to_1e150(z, nu):
    """Up to |z| = 1e150 the densities are the direct forms, to the bit (the same draws as before)."""
    assert dist.Cauchy(0.0, 1.0).logpdf(z) == -np.log(np.pi) - np.log(1.0) - np.log1p(z * z)
    sd = dist.StudentT(nu, 0.0, 1.0)
    direct = sd.logpdf(0.0) - 0.5 * (nu + 1.0) * np.log1p(z * z / nu)
    assert sd.logpdf(z) == direct


@pytest.mark.parametrize("backend", ["jax", "torch", "autograd"])
def test_far_tails_have_finite_gradients_in_every_backend(backend):
    @pa.model
    def heavy():
        pa.sample("c", dist.Cauchy(0.0, 1.0))
        pa.sample("t", dist.StudentT(4.0, 0.0, 1.0))

    ld = pa.logdensity(heavy(), backend=backend)
    for x in (0.0, 1.0, 1e200, -1e300):
        value, grad = ld.logdensity_and_gradient(np.array([x, x]))
        expected_value = dist.Cauchy(0.0, 1.0).logpdf(x) + dist.StudentT(4.0, 0.0, 1.0).logpdf(x)
        assert value == pytest.approx(expected_value, rel=1e-12)
        expected_grad = [-2.0 * x / (1.0 + x * x) if abs(x) < 1e150 else -2.0 / x,
                         -5.0 * x / (4.0 + x * x) if abs(x) < 1e150 else -5.0 / x]
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=0.0)


@pytest.mark.parametrize("k", [0, 1, 5])
def test_a_poisson_rate_of_zero_is_a_point_mass_at_zero(k):
    # Poisson(0.0) was refused ("must satisfy positive"); Stan, PyMC and SciPy allow it
    assert dist.Poisson(0.0).logpdf(k) == st.poisson(0.0).logpmf(k)
    np.testing.assert_array_equal(dist.Poisson(0.0).sample(np.random.default_rng(0), (4,)), 0)


@FAST
@given(p=hs.lists(hs.floats(0.05, 5.0), min_size=2, max_size=5), n=hs.integers(0, 30), seed=hs.integers(0, 2**31))
def test_multinomial_matches_scipy(p, n, seed):
    p = np.array(p) / np.sum(p)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, p, size=3)
    close(dist.Multinomial(n, p).logpmf(counts), st.multinomial(n, p).logpmf(counts))
    totals = counts.sum(-1) + np.array([0, 1, 2])  # one total per row; rows 2 and 3 do not add up
    out = dist.Multinomial(totals, p).logpmf(counts)
    assert out[0] == pytest.approx(st.multinomial(n, p).logpmf(counts[0]), rel=1e-12) and np.all(out[1:] == -np.inf)


def test_multinomial_draws_are_counts_that_add_up(rng):
    draws = dist.Multinomial(np.array([5, 40]), np.array([0.2, 0.5, 0.3])).sample(rng, (2000,))
    assert draws.shape == (2000, 2, 3) and np.all(draws.sum(-1) == np.array([5, 40]))
    np.testing.assert_allclose(draws[:, 1].mean(0), 40 * np.array([0.2, 0.5, 0.3]), rtol=0.03)
    with pytest.raises(ModelDefinitionError, match="Multinomial: parameter 'p'"):
        dist.Multinomial(3, np.array([0.5, 0.6]))


@FAST
@given(gaps=hs.lists(hs.floats(0.05, 3.0), min_size=1, max_size=5), start=real, eta=hs.floats(-50.0, 50.0),
       data=hs.data())
def test_ordered_logistic_matches_the_logistic_cdf(gaps, start, eta, data):
    cutpoints = start + np.concatenate([[0.0], np.cumsum(gaps[1:])]) if len(gaps) > 1 else np.array([start])
    k = data.draw(hs.integers(0, len(cutpoints)))
    bounds = np.concatenate([[-np.inf], cutpoints, [np.inf]])
    # P(y = k) = F(c_k - eta) - F(c_{k-1} - eta) with the logistic cdf F, as a log-difference of log-cdfs
    high, low = st.logistic.logcdf(bounds[k + 1] - eta), st.logistic.logcdf(bounds[k] - eta)
    want = high + np.log(-np.expm1(low - high)) if np.isfinite(low) else high
    np.testing.assert_allclose(dist.OrderedLogistic(eta, cutpoints).logpmf(k), want, rtol=1e-9, atol=1e-12)
    total = sum(np.exp(dist.OrderedLogistic(eta, cutpoints).logpmf(j)) for j in range(len(cutpoints) + 1))
    assert total == pytest.approx(1.0, abs=1e-12)


def test_ordered_logistic_checks_its_cutpoints_and_draws_by_the_cdf(rng):
    with pytest.raises(ModelDefinitionError, match="OrderedLogistic: parameter 'cutpoints' must be increasing"):
        dist.OrderedLogistic(0.0, np.array([1.0, 0.0]))
    with pytest.raises(ModelDefinitionError, match="OrderedLogistic: parameter 'cutpoints' must be one vector"):
        dist.OrderedLogistic(0.0, 1.0)
    d = dist.OrderedLogistic(np.array([0.3, -1.0]), np.array([-1.0, 0.5, 2.0]))
    assert d.logpmf(np.array([4, 0]))[0] == -np.inf
    draws = d.sample(rng, (20000,))
    for j in range(4):
        np.testing.assert_allclose((draws == j).mean(0), np.exp(d.logpmf(np.full(2, j))), atol=0.015)
