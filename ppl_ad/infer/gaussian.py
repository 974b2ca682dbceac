"""Analytic log densities with the ``LogDensity`` interface, for tests and benchmarks.

This module owns small, exactly known targets that implement the same attributes
as :class:`ppl_ad.logdensity.LogDensity` (``dimension``,
``logdensity_and_gradient``, ``constrain``, ``unconstrain``, ``initial_point``,
``non_finite_sites``, ``site_shapes``, ``deterministic_shapes``,
``observed_data``, ``model``, ``backend``, ``backend_source``) without a model
DSL or an AD backend. They are defined at module level, so they pickle and can be
sent to worker processes; the sampler tests and
``benchmarks/bench_sampler_overhead.py`` use them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GaussianLogDensity", "NormalNormalLogDensity"]


@dataclass(frozen=True)
class _Named:
    """Stand-in for ``ppl_ad.model.Model`` / a backend: something with a name."""

    name: str


class GaussianLogDensity:
    """``x ~ MultivariateNormal(mean, cov)`` with a single vector site ``"x"``.

    Parameters
    ----------
    mean : array_like
        1-D mean.
    cov : array_like
        1-D variances (independent coordinates) or a 2-D covariance matrix.
    name : str, optional
        Model name (``self.model.name``).

    Notes
    -----
    ``constrain(theta, deterministics=True)`` adds a deterministic site
    ``"x_norm"``, the Euclidean norm of ``x``.
    """

    backend_source = "analytic test density"

    def __init__(self, mean, cov, name: str = "gaussian"):
        self.mean = np.asarray(mean, dtype=np.float64)
        cov = np.asarray(cov, dtype=np.float64)
        self.dimension = int(self.mean.shape[0])
        if cov.ndim == 1:
            self._precision = np.diag(1.0 / cov)
            cov = np.diag(cov)
        else:
            self._precision = np.linalg.inv(cov)
        self.cov = cov
        self._log_norm = -0.5 * (self.dimension * np.log(2 * np.pi) + np.linalg.slogdet(cov)[1])
        self.model = _Named(name)
        self.backend = _Named("analytic")

    def logdensity(self, theta) -> float:
        return self.logdensity_and_gradient(theta)[0]

    def logdensity_and_gradient(self, theta):
        r = theta - self.mean
        grad = -self._precision.dot(r)
        return 0.5 * float(r.dot(grad)) + self._log_norm, grad

    @property
    def site_shapes(self):
        return {"x": (self.dimension,)}

    @property
    def deterministic_shapes(self):
        return {"x_norm": ()}

    def constrain(self, theta, deterministics: bool = False):
        out = {"x": np.array(theta, dtype=np.float64)}
        if deterministics:
            out["x_norm"] = np.asarray(np.sqrt(np.dot(theta, theta)))
        return out

    def unconstrain(self, values) -> np.ndarray:
        return np.asarray(values["x"], dtype=np.float64).reshape(self.dimension)

    def initial_point(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-2.0, 2.0, size=self.dimension)

    def non_finite_sites(self, theta) -> list[str]:
        logp, grad = self.logdensity_and_gradient(np.asarray(theta, dtype=np.float64))
        return [] if np.isfinite(logp) and np.all(np.isfinite(grad)) else ["x"]

    def observed_data(self):
        return {}


class NormalNormalLogDensity:
    """``mu ~ Normal(0, prior_sd)``, ``y_i ~ Normal(mu, 1)``: a conjugate model.

    The posterior of ``mu`` is normal with precision ``n + 1/prior_sd**2`` and mean
    ``sum(y) / precision`` (:meth:`posterior_mean`, :meth:`posterior_sd`).

    Parameters
    ----------
    y : array_like
        Observations.
    prior_sd : float, optional
    name : str, optional
    """

    backend_source = "analytic test density"

    def __init__(self, y, prior_sd: float = 10.0, name: str = "normal_normal"):
        self.y = np.asarray(y, dtype=np.float64)
        self.prior_sd = float(prior_sd)
        self.dimension = 1
        self.model = _Named(name)
        self.backend = _Named("analytic")

    @property
    def posterior_precision(self) -> float:
        return self.y.size + 1.0 / self.prior_sd**2

    def posterior_mean(self) -> float:
        return float(self.y.sum() / self.posterior_precision)

    def posterior_sd(self) -> float:
        return float(1.0 / np.sqrt(self.posterior_precision))

    def logdensity(self, theta) -> float:
        return self.logdensity_and_gradient(theta)[0]

    def logdensity_and_gradient(self, theta):
        mu = theta[0]
        r = self.y - mu
        logp = -0.5 * (mu / self.prior_sd) ** 2 - 0.5 * float(r.dot(r))
        grad = -mu / self.prior_sd**2 + r.sum()
        return float(logp), np.array([grad])

    site_shapes = {"mu": ()}
    deterministic_shapes = {"mu_shifted": ()}

    def constrain(self, theta, deterministics: bool = False):
        out = {"mu": np.asarray(theta[0], dtype=np.float64)}
        if deterministics:
            out["mu_shifted"] = np.asarray(theta[0] + 1.0)
        return out

    def unconstrain(self, values) -> np.ndarray:
        return np.array([float(values["mu"])])

    def initial_point(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-2.0, 2.0, size=1)

    def non_finite_sites(self, theta) -> list[str]:
        logp, grad = self.logdensity_and_gradient(np.asarray(theta, dtype=np.float64))
        return [] if np.isfinite(logp) and np.all(np.isfinite(grad)) else ["mu"]

    def observed_data(self):
        return {"y": self.y}
