"""Finite mixtures: ``Mixture(w, components)`` and ``NormalMixture(w, mu, sigma)`` (PyMC's names).

The log density is ``logsumexp_k(log w_k + log p_k(x))`` over the mixture axis, the last axis of
``w`` (Stan User's Guide, "Finite mixtures": the discrete component indicator is summed out, so
HMC can sample the rest). Components are one distribution whose last batch axis is the mixture
axis (``Normal(mu, sigma)`` with ``mu`` of shape ``(K,)``, NumPyro's ``MixtureSameFamily``), or a
list of K univariate distributions with the same support (``[Normal(0, 1), StudentT(3, 0, 1)]``).
"""

from __future__ import annotations

import copy

import numpy as np

from ppl_ad import math as M
from ppl_ad.distributions.base import Distribution, _is_constant, _short, off_simplex, require_simplex
from ppl_ad.distributions.continuous import Normal
from ppl_ad.errors import ModelDefinitionError

__all__ = ["Mixture", "NormalMixture"]


class Mixture(Distribution):
    """Mixture(w, components): ``x`` drawn from component ``k`` with probability ``w[..., k]``.

    Parameters
    ----------
    w : array_like
        Mixture weights on the last axis (a simplex: non-negative, summing to 1); leading axes
        give one set of weights per observation. May be a parameter (a ``Dirichlet`` site).
    components : Distribution or list of Distribution
        One distribution whose last batch axis has length K (the mixture axis), or a list of K
        distributions: univariate, or continuous multivariate with the same event shape
        (``MvNormal``: a Gaussian mixture in d dimensions, PyMC's ``Mixture`` of ``MvNormal``). All
        components need the same support (a value outside one component's support would otherwise
        get that component's formula, not ``-inf``).

    Notes
    -----
    The batch shape is that of ``w`` without its last axis, broadcast with the components' (without
    the mixture axis). Works for observed data and as a prior; predictive draws pick a component per
    element with probabilities ``w``, then draw from it.
    """

    def __init__(self, w, components):
        super().__init__()
        self.w = M.asarray(w) if isinstance(w, (list, tuple)) else w
        self.components = components
        if isinstance(components, (list, tuple)):
            self._list = list(components)
            if not self._list or not all(isinstance(c, Distribution) for c in self._list):
                raise ModelDefinitionError(f"Mixture: components must be ppl_ad distributions, got {components!r}")
            k = len(self._list)
        elif isinstance(components, Distribution):
            self._list = None
            if not components.batch_shape:
                raise ModelDefinitionError(
                    f"Mixture: {components!r} has no batch axis to mix over; give it parameters whose last axis "
                    "has one entry per component, or pass a list of distributions")
            k = components.batch_shape[-1]
        else:
            raise ModelDefinitionError(f"Mixture: components must be a distribution or a list of them, got {components!r}")
        first = self._list[0] if self._list is not None else components
        for component in self._list or [components]:
            if (isinstance(component, Mixture) or getattr(component, "observed_only", False) or component.event_dim > 1
                    or (component.event_dim and component.is_discrete)):
                raise ModelDefinitionError(
                    f"Mixture: {component!r} cannot be a component (univariate distributions, or continuous "
                    "multivariate ones such as MvNormal)")
            if component.event_dim != first.event_dim or tuple(component.event_shape) != tuple(first.event_shape):
                raise ModelDefinitionError(
                    f"Mixture: the components' values differ in shape ({first!r}: {tuple(first.event_shape)}, "
                    f"{component!r}: {tuple(component.event_shape)})")
        self.event_dim = first.event_dim
        self._event_shape = tuple(first.event_shape)
        self._support = _common_support(self._list or [components], batched=self._list is None, k=k)
        w_shape = tuple(np.shape(self.w))
        if not w_shape or w_shape[-1] != k:
            raise ModelDefinitionError(
                f"Mixture: the weights' last axis must have one entry per component ({k}), got w of shape {w_shape}")
        self.k = k
        self.is_discrete = first.is_discrete
        # constant weights are checked here, once; weights computed from parameters (also while the
        # log density is evaluated, when they are arrays) are checked by log_prob
        if self._checked("w"):
            require_simplex("Mixture", "w", self.w)

    @property
    def support(self):
        return self._support

    @property
    def event_shape(self) -> tuple:
        return self._event_shape

    @property
    def batch_shape(self) -> tuple:
        if self._list is not None:
            shapes = [tuple(c.batch_shape) for c in self._list]
        else:
            shapes = [tuple(self.components.batch_shape)[:-1]]
        return tuple(np.broadcast_shapes(tuple(np.shape(self.w))[:-1], *shapes))

    def _component_log_probs(self, value):
        """``log p_k(value)`` with the mixture axis last."""
        if self._list is None:  # the mixture axis is the components' last batch axis, before the event's
            return self.components.log_prob(value[..., None] if not self.event_dim else value[..., None, :])
        terms = [c.log_prob(value) for c in self._list]
        shape = np.broadcast_shapes(*[tuple(np.shape(t)) for t in terms])
        return M.stack([M.broadcast_to(t, shape) if tuple(np.shape(t)) != shape else t for t in terms], -1)

    def log_prob(self, value):
        if isinstance(value, (int, float)):
            value = np.asarray(value, dtype=float)
        log_prob = M.logsumexp(M.log(self.w) + self._component_log_probs(value), -1)
        if self._checked("w"):
            return log_prob
        return M.where(off_simplex(self.w), -np.inf, log_prob)  # weights computed from parameters

    def sample(self, rng, shape=()):
        shape = tuple(shape)
        full = shape + self.batch_shape
        w = np.broadcast_to(np.asarray(self.w, dtype=float), full + (self.k,))
        if not self._checked("w"):
            require_simplex("Mixture", "w", w)
        choice = (rng.random(full + (1,)) < np.cumsum(w, -1)).argmax(-1)  # one component per element
        axis = -1 - self.event_dim  # the mixture axis of the draws
        if self._list is None:
            draws = _draws(self.components, rng, shape, self.batch_shape + (self.k,))
        else:
            draws = np.stack([_draws(c, rng, shape, self.batch_shape) for c in self._list], axis)
        index = choice.reshape(choice.shape + (1,) * (1 + self.event_dim))
        return np.take_along_axis(draws, index, axis).squeeze(axis)

    def expand(self, batch_shape: tuple) -> "Mixture":
        batch_shape = tuple(int(n) for n in batch_shape)
        if batch_shape == self.batch_shape:
            return self
        new = copy.copy(self)
        new.w = np.broadcast_to(np.asarray(self.w), batch_shape + (self.k,))
        return new

    def __repr__(self) -> str:
        parts = self._list if self._list is not None else self.components
        return f"{type(self).__name__}(w={_short(self.w)}, components={parts!r})"


class NormalMixture(Mixture):
    """NormalMixture(w, mu, sigma): ``Mixture(w, Normal(mu, sigma))``, the components on the last axis
    of ``mu`` and ``sigma`` (PyMC's ``NormalMixture``)."""

    def __init__(self, w, mu, sigma):
        super().__init__(w, Normal(mu, sigma))


def _draws(distribution, rng, shape: tuple, batch: tuple) -> np.ndarray:
    """Independent draws of shape ``shape + batch`` from a distribution whose batch shape broadcasts to
    ``batch``: axes it lacks are sample axes, its axes of size 1 are widened first."""
    extra = len(batch) - len(distribution.batch_shape)
    tail = batch[extra:]
    if tuple(distribution.batch_shape) != tail:
        distribution = distribution.expand(tail)
    return np.asarray(distribution.sample(rng, tuple(shape) + batch[:extra]))


def _bound_values(support):
    """``(lower, upper)`` of a support as float arrays (None where it has no such bound), or None
    when a bound is a parameter (its value is unknown before the model runs)."""
    bounds = []
    for name in ("lower", "upper"):
        value = getattr(support, name, None)
        if value is not None and not _is_constant(value):
            return None
        bounds.append(None if value is None else np.asarray(value, dtype=float))
    return tuple(bounds)


def _common_support(components, batched: bool, k: int):
    """The support every component shares (on the mixture's batch shape), or a ModelDefinitionError:
    a value outside one component's support would get that component's formula, not zero density."""
    first = components[0]
    family = (type(first.support).__name__ if getattr(first.support, "lower", None) is None
              and getattr(first.support, "upper", None) is None else "bounded")
    first_bounds = _bound_values(first.support)
    problem = None
    if first_bounds is None:
        problem = f"{first!r} has a support whose bounds are parameters ({first.support!r})"
    elif batched:
        for bound in first_bounds:
            if bound is not None and bound.ndim and bound.shape[-1] == k and not np.all(bound == bound[..., :1]):
                problem = f"the components of {first!r} have different supports ({first.support!r})"
    else:
        for component in components[1:]:
            bounds = _bound_values(component.support)
            other = (type(component.support).__name__ if getattr(component.support, "lower", None) is None
                     and getattr(component.support, "upper", None) is None else "bounded")
            same = (bounds is not None and other == family and component.is_discrete == first.is_discrete
                    and all((a is None) == (b is None) and (a is None or np.array_equal(*np.broadcast_arrays(a, b)))
                            for a, b in zip(first_bounds, bounds)))
            if not same:
                problem = (f"the components' supports differ ({first!r} on {first.support!r}, {component!r} on "
                           f"{component.support!r})")
                break
    if problem is not None:
        raise ModelDefinitionError(f"Mixture: {problem}; every component needs the same support, with constant bounds")
    support = first.support
    if batched and any(b is not None and b.ndim and b.shape[-1] in (1, k) for b in first_bounds):
        support = copy.copy(support)  # the bounds without the mixture axis
        for name, bound in zip(("lower", "upper"), first_bounds):
            if bound is not None and bound.ndim and bound.shape[-1] in (1, k):
                setattr(support, name, bound[..., 0])
    return support
