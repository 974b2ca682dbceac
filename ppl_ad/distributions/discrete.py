"""Discrete distributions (observed only: HMC cannot sample discrete parameters).

``Bernoulli(M.sigmoid(a))``, ``Binomial(n, M.sigmoid(a))`` and ``Poisson(M.exp(a))`` are evaluated
in their logit and log forms, as ``BernoulliLogit(a)`` and so on, on every backend
(:func:`ppl_ad.math.link_argument`): a probability that rounds to 1 no longer gives ``log(0)``.

Stan parameterisations: ``PoissonLog(log_lam)`` is Poisson with rate ``exp(log_lam)``;
``BernoulliLogit``/``BinomialLogit`` take the log-odds; ``NegativeBinomial2(mu, phi)`` has
mean ``mu`` and variance ``mu + mu^2 / phi``. ``Categorical`` takes probabilities on the last
axis and 0-based category indices. ``BetaBinomial(n, alpha, beta)`` takes the trials first, as
Stan's ``beta_binomial`` (PyMC's order is ``alpha, beta, n``: use keywords). ``ZeroInflatedPoisson(psi,
mu)`` is PyMC's: ``psi`` is the probability of the Poisson component. ``Geometric(p)`` counts the
trials up to and including the first success (``1, 2, ...``), as PyMC and SciPy.
``OrderedLogistic(eta, cutpoints)`` is Stan's ``ordered_logistic`` with PyMC's 0-based categories.
"""

from __future__ import annotations

import numpy as np

from ppl_ad import constraints as C
from ppl_ad import math as M
from ppl_ad.distributions.base import (
    _VALIDATE, Distribution, _is_constant, _short, data_term, log_factorial, log_rising_factorial, not_increasing,
    off_simplex, require_simplex,
)
from ppl_ad.errors import ModelDefinitionError

__all__ = [
    "Bernoulli", "BernoulliLogit", "Binomial", "BinomialLogit", "Poisson", "PoissonLog",
    "NegativeBinomial2", "Categorical", "BetaBinomial", "ZeroInflatedPoisson", "ZeroInflatedNegativeBinomial",
    "Geometric", "OrderedLogistic",
]


def _log_choose(n, k):
    if type(n) is int or type(n) is float:
        return M.gammaln(n + 1.0) - data_term("log_factorial", log_factorial, k) - M.gammaln(n - k + 1.0)
    return M.gammaln(n + 1.0) - M.gammaln(k + 1.0) - M.gammaln(n - k + 1.0)


class _Discrete(Distribution):
    is_discrete = True


class Bernoulli(_Discrete):
    """Bernoulli(p): ``P(x = 1) = p``."""

    arg_constraints = {"p": C.probability}
    support = C.boolean

    def __init__(self, p):
        super().__init__(p=p)

    def log_prob(self, value):
        logit_p = M.link_argument(self.p, "sigmoid")
        if logit_p is not None:  # Bernoulli(sigmoid(a)): BernoulliLogit(a), finite where p rounds to 1
            return value * logit_p - M.softplus(logit_p)
        return M.xlogy(value, self.p) + M.xlog1py(1.0 - value, -self.p)

    def sample(self, rng, shape=()):
        return (rng.uniform(size=self._size(shape)) < self._np("p")).astype(np.int64)


class BernoulliLogit(_Discrete):
    """BernoulliLogit(logit_p): Bernoulli with ``p = sigmoid(logit_p)``."""

    arg_constraints = {"logit_p": C.real}
    support = C.boolean

    def __init__(self, logit_p):
        super().__init__(logit_p=logit_p)

    def log_prob(self, value):
        return value * self.logit_p - M.softplus(self.logit_p)

    def sample(self, rng, shape=()):
        p = 1.0 / (1.0 + np.exp(-self._np("logit_p")))
        return (rng.uniform(size=self._size(shape)) < p).astype(np.int64)


class Binomial(_Discrete):
    """Binomial(n, p): ``n`` trials with success probability ``p``."""

    arg_constraints = {"n": C.nonnegative_integer, "p": C.probability}

    def __init__(self, n, p):
        super().__init__(n=n, p=p)

    @property
    def support(self):
        return C.integer_interval(0, self.n)

    def log_prob(self, value):
        logit_p = M.link_argument(self.p, "sigmoid")
        if logit_p is not None:  # Binomial(n, sigmoid(a)): BinomialLogit(n, a)
            return _log_choose(self.n, value) + value * logit_p - self.n * M.softplus(logit_p)
        return _log_choose(self.n, value) + M.xlogy(value, self.p) + M.xlog1py(self.n - value, -self.p)

    def sample(self, rng, shape=()):
        return rng.binomial(np.asarray(self.n), self._np("p"), size=self._size(shape))


class BinomialLogit(_Discrete):
    """BinomialLogit(n, logit_p): Binomial with ``p = sigmoid(logit_p)``."""

    arg_constraints = {"n": C.nonnegative_integer, "logit_p": C.real}

    def __init__(self, n, logit_p):
        super().__init__(n=n, logit_p=logit_p)

    @property
    def support(self):
        return C.integer_interval(0, self.n)

    def log_prob(self, value):
        return _log_choose(self.n, value) + value * self.logit_p - self.n * M.softplus(self.logit_p)

    def sample(self, rng, shape=()):
        p = 1.0 / (1.0 + np.exp(-self._np("logit_p")))
        return rng.binomial(np.asarray(self.n), p, size=self._size(shape))


class Poisson(_Discrete):
    """Poisson(lam): rate ``lam`` (``lam = 0`` puts all mass on 0, as in Stan, PyMC and SciPy)."""

    arg_constraints = {"lam": C.nonnegative}
    support = C.nonnegative_integer

    def __init__(self, lam):
        super().__init__(lam=lam)

    def log_prob(self, value):
        log_lam = M.link_argument(self.lam, "exp")
        # Poisson(exp(a)): PoissonLog(a), without the log of what exp just computed
        rate_term = M.xlogy(value, self.lam) if log_lam is None else value * log_lam
        return rate_term - self.lam - data_term("log_factorial", log_factorial, value)

    def sample(self, rng, shape=()):
        return rng.poisson(self._np("lam"), size=self._size(shape))


class PoissonLog(_Discrete):
    """PoissonLog(log_lam): Poisson with rate ``exp(log_lam)`` (Stan's ``poisson_log``)."""

    arg_constraints = {"log_lam": C.real}
    support = C.nonnegative_integer

    def __init__(self, log_lam):
        super().__init__(log_lam=log_lam)

    def log_prob(self, value):
        return value * self.log_lam - M.exp(self.log_lam) - data_term("log_factorial", log_factorial, value)

    def sample(self, rng, shape=()):
        return rng.poisson(np.exp(self._np("log_lam")), size=self._size(shape))


class NegativeBinomial2(_Discrete):
    """NegativeBinomial2(mu, phi): mean ``mu``, variance ``mu + mu^2 / phi`` (Stan's ``neg_binomial_2``)."""

    arg_constraints = {"mu": C.positive, "phi": C.positive}
    support = C.nonnegative_integer

    def __init__(self, mu, phi):
        super().__init__(mu=mu, phi=phi)

    def log_prob(self, value):
        # written so that no term of size phi log(phi) cancels another as phi grows (the Poisson
        # limit): gammaln(y + phi) - gammaln(phi) and phi log(phi / (mu + phi)) lost every digit
        # past phi = 1e12
        mu, phi = self.mu, self.phi
        return (
            log_rising_factorial(phi, value) - data_term("log_factorial", log_factorial, value)
            - phi * M.log1p(mu / phi) + M.xlogy(value, mu) - value * M.log(mu + phi)
        )

    def sample(self, rng, shape=()):
        mu, phi = self._np("mu"), self._np("phi")
        return rng.poisson(rng.gamma(phi, mu / phi, size=self._size(shape)))


class Categorical(_Discrete):
    """Categorical(p): probabilities ``p`` on the last axis; values are 0-based indices.

    ``p`` may be a batch, one probability vector per observation (``(N, K)`` for ``N`` values: a
    multinomial logit, ``p = softmax(eta)`` row by row).
    """

    arg_constraints = {"p": C.simplex}

    def __init__(self, p):
        super().__init__(p=p)

    @property
    def support(self):
        return C.integer_interval(0, np.shape(self.p)[-1] - 1)

    def log_prob(self, value):
        logits = M.link_argument(self.p, "softmax")  # Categorical(M.softmax(eta)): a log-softmax
        log_p = M.log(self.p) if logits is None else M.log_softmax(logits)
        if len(np.shape(self.p)) == 1:
            log_prob = log_p[_as_index(value)]
        else:
            # a batch of vectors: the entry of each row that its value names, through a one-hot mask
            # (indexing along the last axis row by row is not an operation every backend shares)
            chosen = _one_hot(value, np.shape(self.p)[-1])
            log_prob = M.sum(M.where(chosen, log_p, 0.0), -1)
        if self._checked("p") or logits is not None:
            return log_prob
        return M.where(off_simplex(self.p), -np.inf, log_prob)

    def sample(self, rng, shape=()):
        p = self._np("p")
        if not self._checked("p"):
            require_simplex("Categorical", "p", p)
        if p.ndim == 1:
            return rng.choice(p.shape[-1], size=self._size(shape), p=p)
        cumulative = np.cumsum(p, -1)
        u = rng.uniform(size=self._size(shape) + (1,)) * cumulative[..., -1:]
        return np.minimum((cumulative < u).sum(-1), p.shape[-1] - 1)


class BetaBinomial(_Discrete):
    """BetaBinomial(n, alpha, beta): ``n`` trials with a Beta(alpha, beta) success probability."""

    arg_constraints = {"n": C.nonnegative_integer, "alpha": C.positive, "beta": C.positive}

    def __init__(self, n, alpha, beta):
        super().__init__(n=n, alpha=alpha, beta=beta)

    @property
    def support(self):
        return C.integer_interval(0, self.n)

    def log_prob(self, value):
        a, b, n = self.alpha, self.beta, self.n
        return (_log_choose(n, value) + M.gammaln(value + a) + M.gammaln(n - value + b) - M.gammaln(n + a + b)
                - (M.gammaln(a) + M.gammaln(b) - M.gammaln(a + b)))

    def sample(self, rng, shape=()):
        size = self._size(shape)
        return rng.binomial(np.asarray(self.n), rng.beta(self._np("alpha"), self._np("beta"), size=size))


class ZeroInflatedPoisson(_Discrete):
    """ZeroInflatedPoisson(psi, mu): a Poisson(mu) count with probability ``psi``, else 0 (PyMC's)."""

    arg_constraints = {"psi": C.probability, "mu": C.nonnegative}
    support = C.nonnegative_integer

    def __init__(self, psi, mu):
        super().__init__(psi=psi, mu=mu)

    def log_prob(self, value):
        psi, mu = self.psi, self.mu
        poisson = M.log(psi) + M.xlogy(value, mu) - mu - data_term("log_factorial", log_factorial, value)
        zero = M.log1p(psi * M.expm1(-mu))  # log(1 - psi + psi exp(-mu)), without cancellation
        return M.where(value == 0, zero, poisson)

    def sample(self, rng, shape=()):
        size = self._size(shape)
        return np.where(rng.uniform(size=size) < self._np("psi"), rng.poisson(self._np("mu"), size=size), 0)


class ZeroInflatedNegativeBinomial(_Discrete):
    """ZeroInflatedNegativeBinomial(psi, mu, phi): a NegativeBinomial2(mu, phi) count with probability
    ``psi``, else 0 (PyMC's ``ZeroInflatedNegativeBinomial(psi, mu, alpha)`` with ``alpha = phi``)."""

    arg_constraints = {"psi": C.probability, "mu": C.positive, "phi": C.positive}
    support = C.nonnegative_integer

    def __init__(self, psi, mu, phi):
        super().__init__(psi=psi, mu=mu, phi=phi)

    def log_prob(self, value):
        psi = self.psi
        negative_binomial = NegativeBinomial2(self.mu, self.phi)
        counts = M.log(psi) + negative_binomial.log_prob(value)
        # log(1 - psi + psi p0) with log p0 = -phi log1p(mu / phi), without cancellation
        zero = M.log1p(psi * M.expm1(-self.phi * M.log1p(self.mu / self.phi)))
        return M.where(value == 0, zero, counts)

    def sample(self, rng, shape=()):
        size = self._size(shape)
        mu, phi = self._np("mu"), self._np("phi")
        counts = rng.poisson(rng.gamma(phi, mu / phi, size=size))
        return np.where(rng.uniform(size=size) < self._np("psi"), counts, 0)


class Geometric(_Discrete):
    """Geometric(p): the number of Bernoulli(p) trials up to and including the first success."""

    arg_constraints = {"p": C.unit_interval}
    support = C.integer_interval(1, np.inf)

    def __init__(self, p):
        super().__init__(p=p)

    def log_prob(self, value):
        return M.xlog1py(value - 1.0, -self.p) + M.log(self.p)

    def sample(self, rng, shape=()):
        return rng.geometric(self._np("p"), size=self._size(shape))


class OrderedLogistic(_Discrete):
    """OrderedLogistic(eta, cutpoints): ordinal categories ``0..K-1`` of a latent logistic variable.

    ``P(y <= k) = sigmoid(cutpoints[k] - eta)`` for ``k < K - 1``; ``cutpoints`` is one increasing
    vector of ``K - 1`` values (parameters: build them increasing, ``c0 + M.cumsum(M.exp(d))``),
    ``eta`` the linear predictor (one per observation). Stan's ``ordered_logistic`` (1-based),
    PyMC's ``OrderedLogistic`` (0-based, as here).
    """

    arg_constraints = {"eta": C.real, "cutpoints": C.real_vector}

    def __init__(self, eta, cutpoints):
        if np.ndim(cutpoints) != 1 or np.shape(cutpoints)[0] < 1:
            raise ModelDefinitionError(
                f"OrderedLogistic: parameter 'cutpoints' must be one vector of K - 1 >= 1 increasing values, got "
                f"shape {np.shape(cutpoints)}")
        super().__init__(eta=eta, cutpoints=cutpoints)
        if _VALIDATE[-1] and _is_constant(cutpoints) and not np.all(np.diff(np.asarray(cutpoints, float)) > 0):
            raise ModelDefinitionError(f"OrderedLogistic: parameter 'cutpoints' must be increasing, got {cutpoints!r}")

    @property
    def support(self):
        return C.integer_interval(0, np.shape(self.cutpoints)[0])

    @property
    def batch_shape(self):
        return tuple(np.shape(self.eta))

    def log_prob(self, value):
        k = _as_index(value)
        eta, c = self.eta, self.cutpoints
        last = np.shape(c)[0]  # categories 0..last
        # P(y = k) = sigmoid(c[k] - eta) - sigmoid(c[k - 1] - eta), from log-sigmoids (no sigmoid is
        # formed and rounded); the end categories have one term, and every branch sees finite
        # arguments (an infinite padding of the cutpoints made tape gradients NaN)
        upper, lower = c[_clip_index(k, 0, last - 1)], c[_clip_index(k - 1, 0, last - 1)]
        log_high = M.log_sigmoid(upper - eta)
        middle = log_high + M.log1mexp(M.minimum(M.log_sigmoid(lower - eta) - log_high, -1e-300))
        top = M.log_sigmoid(eta - c[last - 1])
        log_prob = M.where(k == 0, M.log_sigmoid(c[0] - eta), M.where(k == last, top, middle))
        if self._checked("cutpoints") or last == 1:
            return log_prob
        return M.where(not_increasing(c), -np.inf, log_prob)  # cut points out of order: no distribution

    def sample(self, rng, shape=()):
        cutpoints = self._np("cutpoints")
        if not np.all(np.diff(cutpoints) > 0):  # cut points computed from parameters, first seen here
            raise ModelDefinitionError(f"OrderedLogistic: parameter 'cutpoints' must be increasing, got {_short(cutpoints)}")
        latent = self._np("eta") + rng.logistic(size=tuple(shape) + self.batch_shape)
        return np.searchsorted(cutpoints, latent, side="left")  # how many cutpoints lie below


def _clip_index(index, low: int, high: int):
    """``index`` limited to ``[low, high]`` in its own array library (NumPy for constants)."""
    if isinstance(index, (int, np.integer, np.ndarray)):
        return np.clip(index, low, high)
    if hasattr(index, "clamp"):  # a PyTorch tensor: clamp keeps its integer type (M.clip is for floats)
        return index.clamp(low, high)
    return M.clip(index, low, high)


def _one_hot(value, k: int):
    """``value[..., None] == arange(k)`` in the array library of ``value`` (NumPy for constants)."""
    index = _as_index(value)
    if isinstance(index, (int, np.integer, np.ndarray)):
        return np.asarray(index)[..., None] == np.arange(k)
    return index[..., None] == M.asarray(np.arange(k))


def _as_index(value):
    """Category labels as integers for indexing: observed data read from a CSV or a data frame
    are floats (``2.0``), which NumPy, JAX and PyTorch refuse as indices."""
    if isinstance(value, (int, np.integer)):
        return value
    if isinstance(value, (float, np.floating, np.ndarray, list, tuple)):
        return np.asarray(value).astype(np.int64)
    dtype = str(getattr(value, "dtype", ""))
    if "float" in dtype:  # a JAX array (astype) or a PyTorch tensor (long)
        return value.long() if hasattr(value, "long") else value.astype(np.int64)
    return value
