"""Support constraints of distributions.

A constraint says where a value may lie (``real``, ``positive``, ``interval(0, 1)``,
``simplex``, ...). Continuous constraints map to a bijection from the unconstrained space in
:mod:`ppl_ad.transforms`; discrete ones only check observed values. Bounds may be constants
or depend on other parameters (Stan's ``real<lower=0, upper=1 - alpha1>``).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "Constraint", "real", "positive", "nonnegative", "unit_interval", "probability", "simplex", "corr_cholesky",
    "boolean", "nonnegative_integer", "real_vector", "greater_than", "less_than", "interval",
    "integer_interval", "ordered_vector", "positive_ordered_vector",
]


def _bound(value) -> str:
    """A bound as written in a message: its value when it is a constant, ``<parameter>`` when it is
    another parameter (a placeholder while the model compiles, or a backend's array)."""
    if isinstance(value, (int, float, np.generic)) or type(value) is np.ndarray:
        return repr(value)
    return "<parameter>"


class Constraint:
    """Base class: ``check(value)`` says elementwise whether ``value`` is in the support."""

    is_discrete = False
    event_dim = 0
    #: names of the attributes that hold the support's bounds (which may be other parameters)
    bounds: tuple = ()

    def check(self, value) -> np.ndarray:
        raise NotImplementedError

    def check_observed(self, value) -> np.ndarray:
        """:meth:`check` for observed data: a continuous support's bounds belong to it, as in Stan
        and SciPy (an exponential waiting time of 0, a proportion of 1; the density decides
        whether the value has any mass), while a parameter stays strictly inside."""
        return self.check(value)

    def inside(self, value):
        """Elementwise: ``value`` lies within the bounds, compared with Python's operators, so that
        bounds which are parameters (a backend's arrays or tracers) work; only for constraints
        with :attr:`bounds` (whether a value is an integer, say, is :meth:`check`'s)."""
        raise NotImplementedError(f"{self!r} has no bounds to compare with")

    def __repr__(self) -> str:
        return type(self).__name__.lstrip("_").lower()


class _Real(Constraint):
    def check(self, value):
        return np.isfinite(value)


class _RealVector(Constraint):
    event_dim = 1

    def check(self, value):
        return np.all(np.isfinite(value), axis=-1)

    def __repr__(self):
        return "real_vector"


class _GreaterThan(Constraint):
    bounds = ("lower",)

    def __init__(self, lower):
        self.lower = lower

    def check(self, value):
        return np.asarray(value) > np.asarray(self.lower)

    def check_observed(self, value):
        return np.asarray(value) >= np.asarray(self.lower)

    def inside(self, value):
        return value >= self.lower

    def __repr__(self):
        return f"greater_than({_bound(self.lower)})"


class _Positive(_GreaterThan):
    def __init__(self):
        super().__init__(0.0)

    def __repr__(self):
        return "positive"


class _LessThan(Constraint):
    bounds = ("upper",)

    def __init__(self, upper):
        self.upper = upper

    def check(self, value):
        return np.asarray(value) < np.asarray(self.upper)

    def check_observed(self, value):
        return np.asarray(value) <= np.asarray(self.upper)

    def inside(self, value):
        return value <= self.upper

    def __repr__(self):
        return f"less_than({_bound(self.upper)})"


class _Interval(Constraint):
    bounds = ("lower", "upper")

    def __init__(self, lower, upper):
        self.lower = lower
        self.upper = upper

    def check(self, value):
        value = np.asarray(value)
        return (value > np.asarray(self.lower)) & (value < np.asarray(self.upper))

    def check_observed(self, value):
        value = np.asarray(value)
        return (value >= np.asarray(self.lower)) & (value <= np.asarray(self.upper))

    def inside(self, value):
        return (value >= self.lower) & (value <= self.upper)

    def __repr__(self):
        return f"interval({_bound(self.lower)}, {_bound(self.upper)})"


class _UnitInterval(_Interval):
    def __init__(self):
        super().__init__(0.0, 1.0)

    def __repr__(self):
        return "unit_interval"


class _NonNegative(Constraint):
    """``[0, inf)``: a parameter that may be exactly 0 (a Poisson rate, as in Stan, PyMC and SciPy;
    a parameter's constraint only, no support of a sampled site)."""

    def check(self, value):
        return np.asarray(value) >= 0.0

    def __repr__(self):
        return "nonnegative"


class _Probability(Constraint):
    """``[0, 1]``, both ends included: the probability parameters of discrete distributions (a
    parameter's constraint only; a sampled probability lives in ``unit_interval``)."""

    def check(self, value):
        value = np.asarray(value)
        return (value >= 0.0) & (value <= 1.0)

    def __repr__(self):
        return "probability in [0, 1]"


class _Simplex(Constraint):
    event_dim = 1

    def check(self, value):
        value = np.asarray(value)
        return np.all(value >= 0, axis=-1) & (np.abs(value.sum(-1) - 1.0) < 1e-6)


class _CorrCholesky(Constraint):
    event_dim = 2

    def check(self, value):
        value = np.asarray(value)
        lower = np.all(np.triu(value, 1) == 0, axis=(-2, -1))
        positive = np.all(np.diagonal(value, axis1=-2, axis2=-1) > 0, axis=-1)
        unit = np.all(np.abs(np.sum(value**2, -1) - 1.0) < 1e-6, axis=-1)
        return lower & positive & unit

    def __repr__(self):
        return "corr_cholesky"


class _OrderedVector(Constraint):
    """Strictly increasing along the last axis (Stan's ``ordered[K]``)."""

    event_dim = 1

    def check(self, value):
        value = np.asarray(value, dtype=float)
        return np.all(np.isfinite(value), axis=-1) & np.all(np.diff(value, axis=-1) > 0, axis=-1)

    def __repr__(self):
        return "ordered_vector"


class _PositiveOrderedVector(_OrderedVector):
    """Positive and strictly increasing along the last axis (Stan's ``positive_ordered[K]``)."""

    def check(self, value):
        value = np.asarray(value, dtype=float)
        return super().check(value) & np.all(value > 0, axis=-1)

    def __repr__(self):
        return "positive_ordered_vector"


class _IntegerInterval(Constraint):
    is_discrete = True
    bounds = ("lower", "upper")

    def __init__(self, lower, upper):
        self.lower = lower
        self.upper = upper

    def check(self, value):
        value = np.asarray(value)
        return (value == np.floor(value)) & (value >= self.lower) & (value <= np.asarray(self.upper))

    def inside(self, value):
        return (value >= self.lower) & (value <= self.upper)

    def __repr__(self):
        return f"integer_interval({_bound(self.lower)}, {_bound(self.upper)})"


class _NonNegativeInteger(Constraint):
    is_discrete = True

    def check(self, value):
        value = np.asarray(value)
        return (value == np.floor(value)) & (value >= 0)

    def __repr__(self):
        return "nonnegative_integer"


class _Boolean(_IntegerInterval):
    def __init__(self):
        super().__init__(0, 1)

    def __repr__(self):
        return "boolean"


real = _Real()
real_vector = _RealVector()
positive = _Positive()
nonnegative = _NonNegative()
unit_interval = _UnitInterval()
probability = _Probability()
simplex = _Simplex()
corr_cholesky = _CorrCholesky()
boolean = _Boolean()
nonnegative_integer = _NonNegativeInteger()
ordered_vector = _OrderedVector()
positive_ordered_vector = _PositiveOrderedVector()
greater_than = _GreaterThan
less_than = _LessThan
interval = _Interval
integer_interval = _IntegerInterval
