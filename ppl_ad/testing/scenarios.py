"""The scenario list: models that drive the gradient tests, sampler tests and benchmarks.

The four standard benchmark models follow ``benchmark-models.md`` exactly: their data come
from one ``numpy.random.RandomState(0)`` stream, consumed in the order logistic regression,
100-d Gaussian, hierarchical Poisson (eight schools uses none). Posteriordb models are added
by :mod:`ppl_ad.testing.posteriordb`.
"""

from __future__ import annotations

import functools

import numpy as np

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad import math as M
from ppl_ad.testing.scenario import Scenario

__all__ = [
    "Scenario", "scenarios", "get_scenario", "standard_data", "eight_schools",
    "logistic_regression", "gaussian_100d", "hierarchical_poisson",
    "normal_normal", "beta_bernoulli", "STANDARD",
]

EIGHT_SCHOOLS_Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
EIGHT_SCHOOLS_SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


@pa.model
def eight_schools(y, sigma):
    """Non-centred eight schools (d = 10)."""
    mu = pa.sample("mu", dist.Normal(0.0, 5.0))
    tau = pa.sample("tau", dist.HalfCauchy(5.0))
    theta_tilde = pa.sample("theta_tilde", dist.Normal(0.0, 1.0), shape=(len(y),))
    theta = pa.deterministic("theta", mu + tau * theta_tilde)
    pa.observe("y", dist.Normal(theta, sigma), y)


@pa.model
def logistic_regression(X, y):
    """Logistic regression with an intercept (d = D + 1)."""
    alpha = pa.sample("alpha", dist.Normal(0.0, 2.0))
    beta = pa.sample("beta", dist.Normal(0.0, 1.0), shape=(X.shape[1],))
    pa.observe("y", dist.BernoulliLogit(alpha + M.matmul(X, beta)), y)


@pa.model
def gaussian_100d(L):
    """A correlated Gaussian given by the Cholesky factor of its covariance."""
    pa.sample("x", dist.MvNormalCholesky(np.zeros(L.shape[0]), L))


@pa.model
def hierarchical_poisson(g, x, y, num_groups):
    """Poisson regression with a non-centred group intercept."""
    mu = pa.sample("mu", dist.Normal(0.0, 1.0))
    sigma = pa.sample("sigma", dist.HalfNormal(1.0))
    z = pa.sample("z", dist.Normal(0.0, 1.0), shape=(num_groups,))
    b = pa.sample("b", dist.Normal(0.0, 1.0))
    pa.observe("y", dist.Poisson(M.exp(mu + sigma * z[g] + b * x)), y)


@pa.model
def normal_normal(y, prior_sd, noise_sd):
    """Conjugate Normal-Normal model with known noise: the posterior is Normal in closed form."""
    mu = pa.sample("mu", dist.Normal(0.0, prior_sd))
    pa.observe("y", dist.Normal(mu, noise_sd), y)


@pa.model
def beta_bernoulli(y, a, b):
    """Conjugate Beta-Bernoulli model: a scalar probability against a vector of 0/1 data."""
    p = pa.sample("p", dist.Beta(a, b))
    pa.observe("y", dist.Bernoulli(p), y)


@functools.lru_cache(maxsize=None)
def standard_data(n=5000, d=50, dim=100, groups=200, rows=20) -> dict:
    """Data of the four standard models from one RandomState(0) stream (see module docstring)."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(n, d))
    beta_true = rng.normal(size=d) / np.sqrt(d)
    p = 1.0 / (1.0 + np.exp(-(0.5 + X @ beta_true)))
    y_logistic = (rng.uniform(size=n) < p).astype(np.int64)
    A = rng.normal(size=(dim, dim))
    cov = A @ A.T / dim + 0.1 * np.eye(dim)
    z_true = rng.normal(size=groups)
    g = np.repeat(np.arange(groups), rows)
    x = rng.normal(size=groups * rows)
    y_poisson = rng.poisson(np.exp(0.5 + 0.5 * z_true[g] + 0.3 * x))
    return {
        "logistic": {"X": X, "y": y_logistic},
        "gaussian": {"cov": cov, "L": np.linalg.cholesky(cov)},
        "poisson": {"g": g, "x": x, "y": y_poisson, "num_groups": groups},
    }


def _normal_normal_reference(y, prior_sd, noise_sd):
    precision = 1.0 / prior_sd**2 + len(y) / noise_sd**2
    return {"mu_mean": (np.sum(y) / noise_sd**2) / precision, "mu_sd": precision**-0.5}


_NN_Y = np.array([1.2, 0.4, 2.1, 1.7, 0.9])
_BB_Y = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1])


def _beta_bernoulli_reference(y, a, b):
    a_post, b_post = a + np.sum(y), b + len(y) - np.sum(y)
    total = a_post + b_post
    return {"p_mean": a_post / total, "p_sd": float(np.sqrt(a_post * b_post / (total**2 * (total + 1))))}

STANDARD = ("eight_schools", "logistic_regression", "gaussian_100d", "hierarchical_poisson")


def _base_scenarios() -> list[Scenario]:
    return [
        Scenario("eight_schools", lambda: eight_schools(EIGHT_SCHOOLS_Y, EIGHT_SCHOOLS_SIGMA), ("standard", "small")),
        Scenario(
            "logistic_regression",
            lambda: logistic_regression(**standard_data()["logistic"]),
            ("standard",),
        ),
        Scenario("gaussian_100d", lambda: gaussian_100d(standard_data()["gaussian"]["L"]), ("standard",)),
        Scenario(
            "hierarchical_poisson",
            lambda: hierarchical_poisson(**standard_data()["poisson"]),
            ("standard",),
        ),
        Scenario(
            "normal_normal",
            lambda: normal_normal(_NN_Y, 10.0, 1.0),
            ("small", "conjugate"),
            _normal_normal_reference(_NN_Y, 10.0, 1.0),
        ),
        Scenario(
            "beta_bernoulli",
            lambda: beta_bernoulli(_BB_Y, 2.0, 2.0),
            ("small", "conjugate"),
            _beta_bernoulli_reference(_BB_Y, 2.0, 2.0),
        ),
    ]


def scenarios(tag: str | None = None) -> list[Scenario]:
    """All scenarios (optionally only those with ``tag``), posteriordb ones included."""
    out = _base_scenarios()
    try:
        from ppl_ad.testing.posteriordb import posteriordb_scenarios
    except ImportError:  # pragma: no cover - the posteriordb module is part of the package
        posteriordb_scenarios = list
    out += posteriordb_scenarios()
    return [s for s in out if tag is None or tag in s.tags]


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name``."""
    for scenario in scenarios():
        if scenario.name == name:
            return scenario
    raise KeyError(f"no scenario {name!r}; known: {[s.name for s in scenarios()]}")
