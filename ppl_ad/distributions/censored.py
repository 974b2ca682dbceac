"""Censored observations: ``Censored(dist, lower, upper)``, PyMC's ``pm.Censored``.

An observation equal to ``lower`` says only that the quantity was at or below it (a detection
limit), one equal to ``upper`` that it was at or above it (a survival time cut off by the end of
follow-up): they contribute ``log_cdf(lower)`` and ``log_ccdf(upper)`` of ``dist`` (Stan's
``_lcdf`` and ``_lccdf``; Stan Reference Manual / Stan User's Guide, "Censored data"), the
others ``dist``'s log density. Values beyond a bound are outside the support, as in PyMC: record
censored observations at their bound (``np.minimum(time, follow_up)``).
"""

from __future__ import annotations

import copy

import numpy as np

from ppl_ad import constraints as C
from ppl_ad import math as M
from ppl_ad.distributions import continuous as _continuous
from ppl_ad.distributions.base import Distribution, _is_constant, _short
from ppl_ad.errors import ModelDefinitionError

__all__ = ["Censored", "WITH_CDF"]

#: the distributions with ``log_cdf`` and ``log_ccdf`` (closed forms on every backend)
WITH_CDF = tuple(name for name in _continuous.__all__
                 if getattr(_continuous, name)._log_cdf is not Distribution._log_cdf)


class _CensoredSupport(C.Constraint):
    """``[low, high]`` (the censoring bounds) intersected with the base support, the censoring bounds
    themselves included. The base support's bounds, which may be parameters (``Pareto``'s minimum),
    are this support's :attr:`bounds` (``base_lower``, ``base_upper``), so that an observed site
    compares the data with them at every evaluation when they are."""

    def __init__(self, base, low, high):
        self.base = base
        self.low = low
        self.high = high
        self.base_lower = getattr(base, "lower", None)
        self.base_upper = getattr(base, "upper", None)
        self.bounds = tuple(name for name in ("base_lower", "base_upper") if getattr(self, name) is not None)

    def _censored_at(self, value):
        at = False
        if self.low is not None:
            at = at | (value == self.low)
        if self.high is not None:
            at = at | (value == self.high)
        return at

    def _between(self, value):
        inside = True
        if self.low is not None:
            inside = inside & (value >= self.low)
        if self.high is not None:
            inside = inside & (value <= self.high)
        return inside

    def check(self, value):
        value = np.asarray(value, dtype=float)
        base_ok = np.asarray(self.base.check_observed(value)) | self._censored_at(value)
        return np.asarray(self._between(value) & base_ok)

    def inside(self, value):
        # with a backend's arrays: the censoring bounds and the base's bounds (parameters)
        return self._between(value) & (self.base.inside(value) | self._censored_at(value))

    def __repr__(self):
        return f"{self.base!r} within [{_short(self.low)}, {_short(self.high)}]"


class Censored(Distribution):
    """Censored(dist, lower=None, upper=None): ``dist`` observed through censoring bounds.

    Parameters
    ----------
    dist : Distribution
        A univariate continuous distribution with a cumulative distribution function (see
        :data:`WITH_CDF`); its parameters may be model parameters.
    lower, upper : float or array_like, optional
        Censoring bounds (data, not parameters; one per observation or broadcast). An observation equal to
        ``lower`` contributes ``log P(X <= lower)``, one equal to ``upper`` ``log P(X >= upper)``;
        ``-inf`` / ``inf`` entries (or None) mean no censoring on that side.

    Notes
    -----
    For observed sites only: a censored quantity is not a continuous parameter. Predictive
    draws are ``dist``'s draws clipped to ``[lower, upper]``, as in PyMC.
    """

    observed_only = True

    def __init__(self, dist, lower=None, upper=None):
        super().__init__()
        if not isinstance(dist, Distribution) or isinstance(dist, Censored):
            raise ModelDefinitionError(f"Censored: expected a ppl_ad distribution to censor, got {dist!r}")
        name = type(dist).__name__
        if dist.is_discrete or dist.event_dim or type(dist)._log_cdf is Distribution._log_cdf:
            raise ModelDefinitionError(
                f"Censored: {name} has no closed-form cumulative distribution function here; censoring works "
                f"with {', '.join(WITH_CDF)}")
        if lower is None and upper is None:
            raise ModelDefinitionError(f"Censored({dist!r}): give lower=, upper= or both")
        self.base = dist
        self.lower = _bound("lower", lower)
        self.upper = _bound("upper", upper)
        if _is_constant(self.lower) and _is_constant(self.upper):
            with np.errstate(invalid="ignore"):
                if np.any(self.lower >= self.upper):
                    raise ModelDefinitionError(
                        f"Censored({dist!r}): lower {_short(self.lower)} must be below upper {_short(self.upper)}")

    @property
    def support(self):
        return _CensoredSupport(self.base.support, self.lower, self.upper)

    @property
    def batch_shape(self) -> tuple:
        shapes = [tuple(self.base.batch_shape)] + [np.shape(b) for b in (self.lower, self.upper) if b is not None]
        return tuple(np.broadcast_shapes(*shapes))

    def log_prob(self, value):
        base = self.base
        log_prob = base.log_prob(value)
        if self.lower is not None:
            log_prob = M.where(value <= M.asarray(self.lower), base.log_cdf(value), log_prob)
        if self.upper is not None:
            log_prob = M.where(value >= M.asarray(self.upper), base.log_ccdf(value), log_prob)
        return log_prob

    def sample(self, rng, shape=()):
        draws = np.broadcast_to(self.base.sample(rng, shape), tuple(shape) + self.batch_shape)
        lower = -np.inf if self.lower is None else self.lower
        upper = np.inf if self.upper is None else self.upper
        return np.clip(draws, lower, upper)

    def expand(self, batch_shape: tuple) -> "Censored":
        batch_shape = tuple(int(n) for n in batch_shape)
        if batch_shape == self.batch_shape:
            return self
        new = copy.copy(self)
        new.base = self.base.expand(batch_shape)
        return new

    def __repr__(self) -> str:
        return f"Censored({self.base!r}, lower={_short(self.lower)}, upper={_short(self.upper)})"


def _bound(which: str, value):
    """A censoring bound: a float array when it is constant (checked for NaN), else the backend's
    array of the evaluation (bound data reach the log density as the backend's arrays)."""
    if value is None:
        return None
    if not (_is_constant(value) or isinstance(value, (list, tuple))):
        return value
    array = np.asarray(value, dtype=float)
    if np.any(np.isnan(array)):
        raise ModelDefinitionError(f"Censored: '{which}' contains NaN; use -inf / inf for no censoring")
    return array
