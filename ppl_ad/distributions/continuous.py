"""Univariate continuous distributions in Stan/PyMC parameterisations.

Normal and friends take the standard deviation; Gamma takes shape and **rate**;
InverseGamma shape and **scale**; Exponential the **rate**; Weibull shape and **scale** (PyMC's
``beta``, Stan's ``sigma``); Pareto the shape and the minimum. TruncatedNormal is Stan's
``normal(mu, sigma) T[lower, upper]``, normalised over the interval. Half-distributions are the
location-0 distribution restricted to (0, inf) and renormalised (factor 2). Flat and
HalfFlat are improper (log density 0); ``Flat(lower, upper)`` is Stan's bounded parameter
without a sampling statement, and its bounds may be other parameters.
"""

from __future__ import annotations

import math as _pymath

import numpy as np

from ppl_ad import constraints as C
from ppl_ad import math as M
from ppl_ad.distributions.base import _VALIDATE, Distribution, _is_constant, _short, log_rising_factorial
from ppl_ad.errors import ModelDefinitionError

__all__ = [
    "Normal", "HalfNormal", "Cauchy", "HalfCauchy", "StudentT", "HalfStudentT", "Exponential",
    "Gamma", "InverseGamma", "Beta", "Uniform", "LogNormal", "Laplace", "Logistic", "Flat",
    "HalfFlat", "Weibull", "Gumbel", "ChiSquared", "SkewNormal", "TruncatedNormal", "Pareto", "Wald",
    "VonMises",
]

_HALF_LOG_2PI = 0.5 * _pymath.log(2.0 * _pymath.pi)
_LOG_2PI = _pymath.log(2.0 * _pymath.pi)
_LOG_2 = _pymath.log(2.0)
_LOG_PI = _pymath.log(_pymath.pi)


def _normal_log_prob(value, mu, sigma):
    z = (value - mu) / sigma
    return -0.5 * z * z - M.log(sigma) - _HALF_LOG_2PI


#: past this ``|z|``, ``z * z`` (which overflows past 1.3e154) is not formed
_HUGE_Z = 1e150


def _log1p_square(z, nu=None):
    """``log(1 + z**2 / nu)`` (``nu=None``: ``log(1 + z**2)``), finite for every finite ``z``.

    ``log1p(z * z)`` gave ``inf`` once ``z * z`` overflowed (``|z|`` past 1.3e154), so a Cauchy or
    Student-t density was ``-inf`` far out in its tails, where it is finite. There the form
    ``2 log|z| - log nu + log1p(nu exp(-2 log|z|))`` is used; up to ``|z| = 1e150`` the direct form, to
    the bit as before. Each branch only sees arguments it is finite at, so that the branch
    ``where`` does not take has a finite gradient too (a ``nan`` there would leak through it).
    """
    far = M.abs(z) > _HUGE_Z
    near_z = M.where(far, 0.0, z)
    log_far_z = M.log(M.abs(M.where(far, z, _HUGE_Z)))  # 1 / z**2 as exp(-2 log|z|): no square in a gradient either
    if nu is None:
        return M.where(far, 2.0 * log_far_z + M.log1p(M.exp(-2.0 * log_far_z)), M.log1p(near_z * near_z))
    log_nu = M.log(nu)
    return M.where(far, 2.0 * log_far_z - log_nu + M.log1p(M.exp(log_nu - 2.0 * log_far_z)),
                   M.log1p(near_z * near_z / nu))


def _cauchy_log_prob(value, mu, sigma):
    z = (value - mu) / sigma
    return -_LOG_PI - M.log(sigma) - _log1p_square(z)


def _student_t_log_prob(value, nu, mu, sigma):
    z = (value - mu) / sigma
    half_nu_plus = 0.5 * (nu + 1.0)
    # gammaln((nu + 1) / 2) - gammaln(nu / 2) without the cancellation that lost digits for large nu
    return (
        log_rising_factorial(0.5 * nu, 0.5) - 0.5 * M.log(nu * _pymath.pi) - M.log(sigma)
        - half_nu_plus * _log1p_square(z, nu)
    )


class Normal(Distribution):
    """Normal(mu, sigma): mean ``mu``, standard deviation ``sigma``."""

    arg_constraints = {"mu": C.real, "sigma": C.positive}

    def __init__(self, mu=0.0, sigma=1.0):
        super().__init__(mu=mu, sigma=sigma)

    def log_prob(self, value):
        return _normal_log_prob(value, self.mu, self.sigma)

    def _log_cdf(self, value):
        return M.log_ndtr((value - self.mu) / self.sigma)

    def _log_ccdf(self, value):
        return M.log_ndtr((self.mu - value) / self.sigma)

    def sample(self, rng, shape=()):
        return rng.normal(self._np("mu"), self._np("sigma"), size=self._size(shape))


class HalfNormal(Distribution):
    """HalfNormal(sigma): |Normal(0, sigma)| on (0, inf)."""

    arg_constraints = {"sigma": C.positive}
    support = C.positive

    def __init__(self, sigma=1.0):
        super().__init__(sigma=sigma)

    def log_prob(self, value):
        return _LOG_2 + _normal_log_prob(value, 0.0, self.sigma)

    def _log_cdf(self, value):
        # erf(z / sqrt 2) near 0, where 1 - 2 Phi(-z) loses its digits; 1 - 2 Phi(-z) in the tail
        z = value / self.sigma
        small = z < 1.0
        near = M.log(M.erf(M.minimum(z, 1.0) / _pymath.sqrt(2.0)))
        far = M.log1mexp(_LOG_2 + M.log_ndtr(-M.maximum(z, 1.0)))
        return M.where(small, near, far)

    def _log_ccdf(self, value):
        return _LOG_2 + M.log_ndtr(-value / self.sigma)

    def sample(self, rng, shape=()):
        return np.abs(rng.normal(0.0, self._np("sigma"), size=self._size(shape)))


class Cauchy(Distribution):
    """Cauchy(mu, sigma): location ``mu``, scale ``sigma``."""

    arg_constraints = {"mu": C.real, "sigma": C.positive}

    def __init__(self, mu=0.0, sigma=1.0):
        super().__init__(mu=mu, sigma=sigma)

    def log_prob(self, value):
        return _cauchy_log_prob(value, self.mu, self.sigma)

    def sample(self, rng, shape=()):
        return self._np("mu") + self._np("sigma") * rng.standard_cauchy(size=self._size(shape))


class HalfCauchy(Distribution):
    """HalfCauchy(sigma): |Cauchy(0, sigma)| on (0, inf)."""

    arg_constraints = {"sigma": C.positive}
    support = C.positive

    def __init__(self, sigma=1.0):
        super().__init__(sigma=sigma)

    def log_prob(self, value):
        return _LOG_2 + _cauchy_log_prob(value, 0.0, self.sigma)

    def sample(self, rng, shape=()):
        return np.abs(self._np("sigma") * rng.standard_cauchy(size=self._size(shape)))


class StudentT(Distribution):
    """StudentT(nu, mu, sigma): ``nu`` degrees of freedom, location ``mu``, scale ``sigma``."""

    arg_constraints = {"nu": C.positive, "mu": C.real, "sigma": C.positive}

    def __init__(self, nu, mu=0.0, sigma=1.0):
        super().__init__(nu=nu, mu=mu, sigma=sigma)

    def log_prob(self, value):
        return _student_t_log_prob(value, self.nu, self.mu, self.sigma)

    def sample(self, rng, shape=()):
        return self._np("mu") + self._np("sigma") * rng.standard_t(self._np("nu"), size=self._size(shape))


class HalfStudentT(Distribution):
    """HalfStudentT(nu, sigma): |StudentT(nu, 0, sigma)| on (0, inf)."""

    arg_constraints = {"nu": C.positive, "sigma": C.positive}
    support = C.positive

    def __init__(self, nu, sigma=1.0):
        super().__init__(nu=nu, sigma=sigma)

    def log_prob(self, value):
        return _LOG_2 + _student_t_log_prob(value, self.nu, 0.0, self.sigma)

    def sample(self, rng, shape=()):
        return np.abs(self._np("sigma") * rng.standard_t(self._np("nu"), size=self._size(shape)))


class Exponential(Distribution):
    """Exponential(lam): **rate** ``lam`` (mean ``1 / lam``)."""

    arg_constraints = {"lam": C.positive}
    support = C.positive

    def __init__(self, lam=1.0):
        super().__init__(lam=lam)

    def log_prob(self, value):
        return M.log(self.lam) - self.lam * value

    def _log_cdf(self, value):
        return M.log1mexp(-self.lam * value)

    def _log_ccdf(self, value):
        return -self.lam * value

    def sample(self, rng, shape=()):
        return rng.exponential(1.0 / self._np("lam"), size=self._size(shape))


class Gamma(Distribution):
    """Gamma(alpha, beta): shape ``alpha`` and **rate** ``beta`` (mean ``alpha / beta``)."""

    arg_constraints = {"alpha": C.positive, "beta": C.positive}
    support = C.positive

    def __init__(self, alpha, beta):
        super().__init__(alpha=alpha, beta=beta)

    def log_prob(self, value):
        a, b = self.alpha, self.beta
        return a * M.log(b) - M.gammaln(a) + M.xlogy(a - 1.0, value) - b * value  # at 0: log(beta) if alpha = 1

    def sample(self, rng, shape=()):
        return rng.gamma(self._np("alpha"), 1.0 / self._np("beta"), size=self._size(shape))


class InverseGamma(Distribution):
    """InverseGamma(alpha, beta): shape ``alpha`` and **scale** ``beta``."""

    arg_constraints = {"alpha": C.positive, "beta": C.positive}
    support = C.positive

    def __init__(self, alpha, beta):
        super().__init__(alpha=alpha, beta=beta)

    def log_prob(self, value):
        a, b = self.alpha, self.beta
        log_density = a * M.log(b) - M.gammaln(a) - (a + 1.0) * M.log(value) - b / value
        return M.where(value > 0, log_density, -np.inf)  # the density vanishes at 0 (inf - inf there)

    def sample(self, rng, shape=()):
        return 1.0 / rng.gamma(self._np("alpha"), 1.0 / self._np("beta"), size=self._size(shape))


class Wald(Distribution):
    """Wald(mu, lam): the inverse Gaussian with mean ``mu`` and shape ``lam`` (variance ``mu^3 / lam``),
    PyMC's ``Wald(mu, lam)``, SciPy's ``invgauss(mu / lam, scale=lam)``: first-passage times of a
    drifting Brownian motion (reaction times, survival)."""

    arg_constraints = {"mu": C.positive, "lam": C.positive}
    support = C.positive

    def __init__(self, mu, lam):
        super().__init__(mu=mu, lam=lam)

    def log_prob(self, value):
        mu, lam = self.mu, self.lam
        log_density = (0.5 * M.log(lam) - _HALF_LOG_2PI - 1.5 * M.log(value)
                       - lam * M.square(value - mu) / (2.0 * M.square(mu) * value))
        return M.where(value > 0, log_density, -np.inf)  # the density vanishes at 0 (inf - inf there)

    def sample(self, rng, shape=()):
        return rng.wald(self._np("mu"), self._np("lam"), size=self._size(shape))


class VonMises(Distribution):
    """VonMises(mu, kappa): angles on ``[-pi, pi]`` around ``mu`` with concentration ``kappa`` (Stan's
    ``von_mises``, PyMC's ``VonMises``, SciPy's ``vonmises(kappa, loc=mu)``): wind directions, times of
    day as angles. Log density ``kappa cos(x - mu) - log(2 pi I0(kappa))``.

    As a prior, the angle is sampled on the interval ``(-pi, pi)`` through a logit transform (as Stan
    does with ``real<lower=-pi(), upper=pi()>``): fine for a concentrated distribution whose mode is
    away from ``+-pi``; a diffuse one does not wrap around, and a chain can settle at the wrong end.
    For a mean direction, take ``M.arctan2`` of a 2-vector (``docs/distributions.md``). As a
    likelihood any ``mu`` works.
    """

    arg_constraints = {"mu": C.real, "kappa": C.positive}
    support = C.interval(-np.pi, np.pi)

    def __init__(self, mu=0.0, kappa=1.0):
        super().__init__(mu=mu, kappa=kappa)

    def log_prob(self, value):
        kappa = self.kappa
        return kappa * M.cos(value - self.mu) - _LOG_2PI - (M.log(M.i0e(kappa)) + kappa)

    def sample(self, rng, shape=()):
        draws = rng.vonmises(self._np("mu"), self._np("kappa"), size=self._size(shape))
        return np.mod(draws + np.pi, 2.0 * np.pi) - np.pi  # numpy's draws lie around mu; wrapped into [-pi, pi)


class Beta(Distribution):
    """Beta(alpha, beta) on (0, 1)."""

    arg_constraints = {"alpha": C.positive, "beta": C.positive}
    support = C.unit_interval

    def __init__(self, alpha, beta):
        super().__init__(alpha=alpha, beta=beta)

    def log_prob(self, value):
        a, b = self.alpha, self.beta
        # xlogy: finite at 0 and 1 where alpha or beta is 1
        return M.xlogy(a - 1.0, value) + M.xlog1py(b - 1.0, -value) - self._log_beta_function()

    def _log_beta_function(self):
        a, b = self.alpha, self.beta
        return M.gammaln(a) + M.gammaln(b) - M.gammaln(a + b)

    def log_prob_logit(self, u):
        """Log density of ``x = sigmoid(u)`` plus the log-Jacobian of the logit transform, from
        ``u`` itself: ``alpha log_sigmoid(u) + beta log_sigmoid(-u) - log B(alpha, beta)``.

        The log density on the unconstrained space uses this (its sample sites, in
        :mod:`ppl_ad.model.handlers`): ``log(1 - sigmoid(u))`` from a rounded
        ``sigmoid(u)`` is ``-inf`` from ``u = 37`` on, which cut off the tail of a
        ``Beta(0.1, 0.1)`` on the tape backends.
        """
        return self.alpha * M.log_sigmoid(u) + self.beta * M.log_sigmoid(-u) - self._log_beta_function()

    def sample(self, rng, shape=()):
        return rng.beta(self._np("alpha"), self._np("beta"), size=self._size(shape))


class Uniform(Distribution):
    """Uniform(lower, upper); the bounds may be other parameters."""

    arg_constraints = {"lower": C.real, "upper": C.real}

    def __init__(self, lower=0.0, upper=1.0):
        super().__init__(lower=lower, upper=upper)
        _check_ordered("Uniform", self.lower, self.upper)

    @property
    def support(self):
        return C.interval(self.lower, self.upper)

    def log_prob(self, value):
        return -M.log(self.upper - self.lower) + 0.0 * value

    def _log_cdf(self, value):
        return M.log(value - self.lower) - M.log(self.upper - self.lower)

    def _log_ccdf(self, value):
        return M.log(self.upper - value) - M.log(self.upper - self.lower)

    def sample(self, rng, shape=()):
        return rng.uniform(self._np("lower"), self._np("upper"), size=self._size(shape))


class LogNormal(Distribution):
    """LogNormal(mu, sigma): ``log(x) ~ Normal(mu, sigma)``."""

    arg_constraints = {"mu": C.real, "sigma": C.positive}
    support = C.positive

    def __init__(self, mu=0.0, sigma=1.0):
        super().__init__(mu=mu, sigma=sigma)

    def log_prob(self, value):
        log_value = M.log(value)
        log_density = _normal_log_prob(log_value, self.mu, self.sigma) - log_value
        return M.where(value > 0, log_density, -np.inf)  # the density vanishes at 0 (-inf + inf there)

    def _log_cdf(self, value):
        return M.log_ndtr((M.log(value) - self.mu) / self.sigma)

    def _log_ccdf(self, value):
        return M.log_ndtr((self.mu - M.log(value)) / self.sigma)

    def sample(self, rng, shape=()):
        return rng.lognormal(self._np("mu"), self._np("sigma"), size=self._size(shape))


class Laplace(Distribution):
    """Laplace(mu, b): location ``mu``, scale ``b``."""

    arg_constraints = {"mu": C.real, "b": C.positive}

    def __init__(self, mu=0.0, b=1.0):
        super().__init__(mu=mu, b=b)

    def log_prob(self, value):
        return -_LOG_2 - M.log(self.b) - M.abs(value - self.mu) / self.b

    # each branch of the where sees only the half-line it is taken on (no overflow, no NaN gradient)
    def _log_cdf(self, value):
        z = (value - self.mu) / self.b
        return M.where(z < 0, M.minimum(z, 0.0) - _LOG_2, M.log1p(-0.5 * M.exp(-M.maximum(z, 0.0))))

    def _log_ccdf(self, value):
        z = (value - self.mu) / self.b
        return M.where(z > 0, -M.maximum(z, 0.0) - _LOG_2, M.log1p(-0.5 * M.exp(M.minimum(z, 0.0))))

    def sample(self, rng, shape=()):
        return rng.laplace(self._np("mu"), self._np("b"), size=self._size(shape))


class Logistic(Distribution):
    """Logistic(mu, s): location ``mu``, scale ``s``."""

    arg_constraints = {"mu": C.real, "s": C.positive}

    def __init__(self, mu=0.0, s=1.0):
        super().__init__(mu=mu, s=s)

    def log_prob(self, value):
        z = (value - self.mu) / self.s
        return -z - M.log(self.s) - 2.0 * M.softplus(-z)

    def _log_cdf(self, value):
        return M.log_sigmoid((value - self.mu) / self.s)

    def _log_ccdf(self, value):
        return M.log_sigmoid((self.mu - value) / self.s)

    def sample(self, rng, shape=()):
        return rng.logistic(self._np("mu"), self._np("s"), size=self._size(shape))


class Flat(Distribution):
    """Improper flat density (log density 0) on the reals, or on ``(lower, upper)``.

    ``Flat(lower=0.0)`` is Stan's ``real<lower=0> x;`` with no sampling statement; bounds may
    be other parameters (``Flat(0.0, 1.0 - alpha1)``), and the bound's log-Jacobian is then
    part of the log density, as in Stan.
    """

    arg_constraints = {}

    def __init__(self, lower=None, upper=None):
        super().__init__()
        # an infinite constant bound is no bound (Stan's lub_constrain): Flat(0, np.inf) is Flat(0)
        self.lower = None if _infinite_bound("Flat", "lower", lower, -1) else lower
        self.upper = None if _infinite_bound("Flat", "upper", upper, 1) else upper
        if self.lower is not None and self.upper is not None:
            _check_ordered("Flat", self.lower, self.upper)

    @property
    def support(self):
        if self.lower is None and self.upper is None:
            return C.real
        if self.upper is None:
            return C.positive if _is_number(self.lower, 0) else C.greater_than(self.lower)
        if self.lower is None:
            return C.less_than(self.upper)
        return C.interval(self.lower, self.upper)

    @property
    def batch_shape(self):
        return tuple(np.broadcast_shapes(np.shape(self.lower), np.shape(self.upper)))

    def log_prob(self, value):
        return 0.0 * value

    def sample(self, rng, shape=()):
        raise NotImplementedError(
            f"{self!r} is improper: it has no prior draws; give the site a proper prior to "
            "sample from the prior predictive"
        )

    def __repr__(self):
        return f"Flat(lower={self.lower!r}, upper={self.upper!r})"


class HalfFlat(Flat):
    """Improper flat density on (0, inf)."""

    def __init__(self):
        super().__init__(lower=0.0)

    def __repr__(self):
        return "HalfFlat()"


def _is_number(value, number) -> bool:
    return isinstance(value, (int, float)) and value == number


def _infinite_bound(name: str, which: str, value, sign: int) -> bool:
    """Whether the constant bound ``value`` is ``sign * inf`` (everywhere); a bound that mixes
    infinite and finite entries, or is infinite on the wrong side, or NaN, is refused."""
    if value is None or not _is_constant(value):
        return False
    array = np.asarray(value, dtype=float)
    infinite = array == sign * np.inf
    if _VALIDATE[-1]:  # not while the log density is evaluated
        if np.any(np.isnan(array) | (array == -sign * np.inf)):
            raise ModelDefinitionError(
                f"{name}: parameter '{which}' must be a number or {'+' if sign > 0 else '-'}inf, got {value!r}")
        if np.any(infinite) and not np.all(infinite):
            raise ModelDefinitionError(
                f"{name}: parameter '{which}' mixes infinite and finite entries ({value!r}); a bound is one "
                "transform for the whole site: split the site into its bounded and unbounded parts")
    return bool(array.size) and bool(np.all(infinite))


class Weibull(Distribution):
    """Weibull(alpha, beta): shape ``alpha`` and **scale** ``beta`` (PyMC's ``Weibull``; Stan's
    ``weibull(alpha, sigma)`` with ``sigma = beta``)."""

    arg_constraints = {"alpha": C.positive, "beta": C.positive}
    support = C.positive

    def __init__(self, alpha, beta):
        super().__init__(alpha=alpha, beta=beta)

    def log_prob(self, value):
        a, b = self.alpha, self.beta
        z = value / b
        return M.log(a) - M.log(b) + M.xlogy(a - 1.0, z) - z**a  # at 0: log(alpha / beta) if alpha = 1

    def _log_cdf(self, value):
        return M.log1mexp(-((value / self.beta) ** self.alpha))

    def _log_ccdf(self, value):
        return -((value / self.beta) ** self.alpha)

    def sample(self, rng, shape=()):
        return self._np("beta") * rng.weibull(self._np("alpha"), size=self._size(shape))


class Gumbel(Distribution):
    """Gumbel(mu, beta): location ``mu``, scale ``beta`` (the distribution of a maximum)."""

    arg_constraints = {"mu": C.real, "beta": C.positive}

    def __init__(self, mu=0.0, beta=1.0):
        super().__init__(mu=mu, beta=beta)

    def log_prob(self, value):
        z = (value - self.mu) / self.beta
        return -M.log(self.beta) - z - M.exp(-z)

    def _log_cdf(self, value):
        return -M.exp((self.mu - value) / self.beta)

    def _log_ccdf(self, value):
        return M.log1mexp(-M.exp((self.mu - value) / self.beta))

    def sample(self, rng, shape=()):
        return rng.gumbel(self._np("mu"), self._np("beta"), size=self._size(shape))


class ChiSquared(Distribution):
    """ChiSquared(nu): ``nu`` degrees of freedom (``Gamma(nu / 2, rate=1/2)``)."""

    arg_constraints = {"nu": C.positive}
    support = C.positive

    def __init__(self, nu):
        super().__init__(nu=nu)

    def log_prob(self, value):
        half = 0.5 * self.nu
        return -half * _LOG_2 - M.gammaln(half) + M.xlogy(half - 1.0, value) - 0.5 * value

    def sample(self, rng, shape=()):
        return rng.chisquare(self._np("nu"), size=self._size(shape))


class SkewNormal(Distribution):
    """SkewNormal(mu, sigma, alpha): location, scale and shape (``alpha = 0`` is Normal(mu, sigma));
    Stan's ``skew_normal(xi, omega, alpha)``."""

    arg_constraints = {"mu": C.real, "sigma": C.positive, "alpha": C.real}

    def __init__(self, mu=0.0, sigma=1.0, alpha=0.0):
        super().__init__(mu=mu, sigma=sigma, alpha=alpha)

    def log_prob(self, value):
        z = (value - self.mu) / self.sigma
        return _LOG_2 - 0.5 * z * z - M.log(self.sigma) - _HALF_LOG_2PI + M.log_ndtr(self.alpha * z)

    def sample(self, rng, shape=()):
        size = self._size(shape)
        alpha = self._np("alpha")
        delta = alpha / np.sqrt(1.0 + alpha * alpha)
        u0, v = rng.standard_normal(size), rng.standard_normal(size)
        u1 = delta * u0 + np.sqrt(1.0 - delta * delta) * v
        return self._np("mu") + self._np("sigma") * np.where(u0 >= 0, u1, -u1)


class TruncatedNormal(Distribution):
    """TruncatedNormal(mu, sigma, lower=None, upper=None): Normal(mu, sigma) restricted to
    ``(lower, upper)`` and normalised there (Stan's ``normal(mu, sigma) T[lower, upper]``, PyMC's
    ``TruncatedNormal``). A bound left out (or infinite) is no bound; bounds may be parameters."""

    arg_constraints = {"mu": C.real, "sigma": C.positive}

    def __init__(self, mu=0.0, sigma=1.0, lower=None, upper=None):
        super().__init__(mu=mu, sigma=sigma)
        self.lower = None if _infinite_bound("TruncatedNormal", "lower", lower, -1) else lower
        self.upper = None if _infinite_bound("TruncatedNormal", "upper", upper, 1) else upper
        if self.lower is None and self.upper is None:
            raise ModelDefinitionError("TruncatedNormal: give 'lower', 'upper' or both (without them it is Normal)")
        if self.lower is not None and self.upper is not None:
            _check_ordered("TruncatedNormal", self.lower, self.upper)

    @property
    def support(self):
        if self.upper is None:
            return C.greater_than(self.lower)
        if self.lower is None:
            return C.less_than(self.upper)
        return C.interval(self.lower, self.upper)

    @property
    def batch_shape(self):
        bounds = [np.shape(b) for b in (self.lower, self.upper) if b is not None]
        return tuple(np.broadcast_shapes(np.shape(self.mu), np.shape(self.sigma), *bounds))

    def _log_normaliser(self):
        """``log(Phi(b) - Phi(a))`` of the standardised bounds, from the tail where it does not cancel."""
        mu, sigma = self.mu, self.sigma
        if self.upper is None:
            return M.log_ndtr((mu - self.lower) / sigma)
        if self.lower is None:
            return M.log_ndtr((self.upper - mu) / sigma)
        a, b = (self.lower - mu) / sigma, (self.upper - mu) / sigma
        upper_tail = a > 0  # both bounds above the mean: Phi(-a) - Phi(-b) keeps its digits
        low, high = M.where(upper_tail, -b, a), M.where(upper_tail, -a, b)
        log_high = M.log_ndtr(high)
        return log_high + M.log1mexp(M.minimum(M.log_ndtr(low) - log_high, -1e-300))

    def log_prob(self, value):
        return _normal_log_prob(value, self.mu, self.sigma) - self._log_normaliser()

    def sample(self, rng, shape=()):
        from scipy import stats

        mu, sigma = self._np("mu"), self._np("sigma")
        a = -np.inf if self.lower is None else (self._np("lower") - mu) / sigma
        b = np.inf if self.upper is None else (self._np("upper") - mu) / sigma
        return stats.truncnorm(a, b, loc=mu, scale=sigma).rvs(size=self._size(shape), random_state=rng)

    def __repr__(self):
        return (f"TruncatedNormal(mu={_short(self.mu)}, sigma={_short(self.sigma)}, lower={_short(self.lower)}, "
                f"upper={_short(self.upper)})")


class Pareto(Distribution):
    """Pareto(alpha, m): shape ``alpha`` and minimum (scale) ``m``, on ``(m, inf)`` (PyMC's
    ``Pareto(alpha, m)``; Stan's ``pareto(y_min, alpha)``). ``m`` may be a parameter."""

    arg_constraints = {"alpha": C.positive, "m": C.positive}

    def __init__(self, alpha, m):
        super().__init__(alpha=alpha, m=m)

    @property
    def support(self):
        return C.greater_than(self.m)

    def log_prob(self, value):
        return M.log(self.alpha) + self.alpha * M.log(self.m) - (self.alpha + 1.0) * M.log(value)

    def _log_cdf(self, value):
        return M.log1mexp(self._log_ccdf(value))

    def _log_ccdf(self, value):
        return self.alpha * (M.log(self.m) - M.log(value))

    def sample(self, rng, shape=()):
        return self._np("m") * (1.0 + rng.pareto(self._np("alpha"), size=self._size(shape)))


def _check_ordered(name: str, lower, upper) -> None:
    """Constant bounds: ``lower < upper`` everywhere, else a ModelDefinitionError naming them."""
    if not (_VALIDATE[-1] and _is_constant(lower) and _is_constant(upper)):
        return
    low, high = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    try:
        ordered = np.all(low < high)
    except ValueError:  # shapes that do not broadcast: reported where the site is built
        return
    if not ordered:
        raise ModelDefinitionError(
            f"{name}: parameter 'upper' must exceed 'lower' everywhere, got lower={lower!r}, upper={upper!r}")
