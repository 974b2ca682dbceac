"""The Distribution base class: parameters, validation, support and log density.

Log densities are written with :mod:`ppl_ad.math` so they run on every array library.
Constant parameters are checked against their constraints when a distribution is built
outside a log-density evaluation (at model-compile time, or directly by a user); invalid
ones raise :class:`ppl_ad.errors.ModelDefinitionError` (a ``ValueError``) naming the
distribution and the parameter.
"""

from __future__ import annotations

import copy
import functools

import numpy as np

from ppl_ad import constraints as C
from ppl_ad import math as M
from ppl_ad.errors import ModelDefinitionError

__all__ = ["Distribution", "validation", "data_term", "log_rising_factorial"]

_VALIDATE = [True]


class validation:
    """Context manager that switches parameter validation on or off (used by the evaluator)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __enter__(self):
        _VALIDATE.append(self.enabled)

    def __exit__(self, *exc):
        _VALIDATE.pop()


_CONVERT = (np.ndarray, list, tuple)
_DATA_TERMS: dict = {}


def data_term(key: str, function, value, *, numpy_result: bool = False):
    """``function(value)`` for a term that depends on data only, cached per data array.

    Tape backends (torch, autograd) re-run the model on every call; terms such as
    ``gammaln(y + 1)`` of observed counts would be recomputed each time. Concrete arrays
    that carry no gradient (NumPy arrays, torch tensors without ``requires_grad``) are
    cached by identity (the array is kept alive with its result, so the identity cannot be
    reused) and checked against a copy of their values: an array changed in place (a
    buffer reused for the next dataset) gets its term computed again, not the old one.
    Anything else (traced JAX values, autograd boxes, parameters) is computed.

    The term of a NumPy array is computed with NumPy, whichever backend evaluates the model,
    and returned as an array of the active namespace (as it is with ``numpy_result=True``):
    computed with the active namespace, it would be a JAX tracer of one trace reused in the
    next, or a torch tensor reused under JAX.
    """
    cls = type(value)
    is_numpy = cls is np.ndarray
    if not (is_numpy or (cls.__module__.startswith("torch") and not value.requires_grad)):
        return function(value)
    entry = _DATA_TERMS.get((key, id(value)))
    if entry is not None and entry[0] is value and (
            np.array_equal(entry[1], value) if is_numpy
            else entry[1].shape == value.shape and bool((entry[1] == value).all())):
        result = entry[2]
    else:
        if is_numpy:
            with M.using("numpy"):
                result = function(value)
        else:
            result = function(value)
        if len(_DATA_TERMS) > 256:
            _DATA_TERMS.clear()
        _DATA_TERMS[(key, id(value))] = (value, value.copy() if is_numpy else value.clone(), result)
    if not is_numpy or numpy_result or result is None:
        return result
    return M.asarray(result)


def _as_values(value):
    """A Python list or tuple of values as a NumPy array (``Gamma(2, 3).logpdf([0.5])``): left as
    it is, it skips the support check and meets list arithmetic (``3 * [0.5]`` repeats the list)."""
    return np.asarray(value) if isinstance(value, (list, tuple)) else value


def _is_constant(value) -> bool:
    return isinstance(value, (int, float, np.generic)) or type(value) is np.ndarray


#: How far a probability vector's sum may be from 1 (a Dirichlet draw, a softmax: rounding only), as
#: :data:`ppl_ad.constraints.simplex` checks constants
SIMPLEX_TOLERANCE = 1e-6


def off_simplex(p):
    """Where the vectors on the last axis of ``p`` (any array library) are not probabilities: a
    negative entry, or a sum away from 1. For parameters that must be a simplex but are computed
    from other parameters, which no check at build time can see: their log density is ``-inf``
    there (PyMC's ``check_parameters``), never a finite, wrong value."""
    negative = M.sum(M.where(p < 0, 1.0, 0.0), -1)
    return (negative > 0) | (M.abs(M.sum(p, -1) - 1.0) >= SIMPLEX_TOLERANCE)


def require_simplex(owner: str, name: str, p) -> None:
    """Refuse ``p`` (NumPy) unless the vectors on its last axis are probabilities (for draws, where a
    simplex that parameters compute is first seen as numbers)."""
    p = np.asarray(p, dtype=float)
    if not (np.all(np.isfinite(p)) and np.all(C.simplex.check(p))):
        raise ModelDefinitionError(
            f"{owner}: parameter '{name}' must be non-negative and sum to 1 along its last axis, got {_short(p)}")


def not_increasing(c):
    """Whether the vector ``c`` (any array library) fails to increase strictly (cut points)."""
    return M.sum(M.where(c[1:] - c[:-1] <= 0, 1.0, 0.0), -1) > 0


_PRECISION = "PyMC's precision: pass sigma=1 / tau ** 0.5"
#: keywords of PyMC's (and Stan's) distributions that ppl_ad's spell otherwise, with what to write
#: instead: a user who types ``Normal(0, tau=4)`` hears how, not just "unexpected keyword"
KEYWORD_HINTS = {
    "Normal": {"tau": _PRECISION, "sd": "pass sigma="},
    "HalfNormal": {"tau": _PRECISION, "sd": "pass sigma="},
    "LogNormal": {"tau": _PRECISION, "sd": "pass sigma="},
    "TruncatedNormal": {"tau": _PRECISION, "sd": "pass sigma="},
    "SkewNormal": {"tau": _PRECISION, "sd": "pass sigma="},
    "StudentT": {"lam": "PyMC's precision: pass sigma=1 / lam ** 0.5", "sd": "pass sigma="},
    "HalfStudentT": {"lam": "PyMC's precision: pass sigma=1 / lam ** 0.5", "sd": "pass sigma="},
    "Cauchy": {"alpha": "PyMC's location: pass mu=", "beta": "PyMC's scale: pass sigma="},
    "HalfCauchy": {"beta": "PyMC's scale: pass sigma="},
    "Exponential": {"scale": "ppl_ad's Exponential takes the rate: pass lam=1 / scale",
                    "rate": "pass lam="},
    "Gamma": {"mu": "Gamma(alpha, beta) takes a shape and a rate: alpha = mu**2 / sigma**2, beta = mu / sigma**2",
              "sigma": "Gamma(alpha, beta) takes a shape and a rate: alpha = mu**2 / sigma**2, beta = mu / sigma**2",
              "scale": "Gamma(alpha, beta) takes a rate: pass beta=1 / scale",
              "rate": "pass beta="},
    "InverseGamma": {"mu": "InverseGamma(alpha, beta) takes a shape and a scale: alpha = mu**2 / sigma**2 + 2, "
                           "beta = mu * (alpha - 1)",
                     "sigma": "InverseGamma(alpha, beta) takes a shape and a scale: alpha = mu**2 / sigma**2 + 2, "
                              "beta = mu * (alpha - 1)"},
    "Beta": {"mu": "Beta(alpha, beta) takes two shapes: alpha = mu * kappa, beta = (1 - mu) * kappa (kappa the "
                   "concentration, PyMC's nu)",
             "nu": "PyMC's concentration: alpha = mu * nu, beta = (1 - mu) * nu",
             "kappa": "alpha = mu * kappa, beta = (1 - mu) * kappa",
             "sigma": "Beta(alpha, beta) takes two shapes: kappa = mu * (1 - mu) / sigma**2 - 1, then "
                      "alpha = mu * kappa, beta = (1 - mu) * kappa"},
    "Poisson": {"mu": "ppl_ad's Poisson rate is lam: pass lam= (or PoissonLog(log_lam) on the log scale)"},
    "NegativeBinomial2": {"alpha": "PyMC's alpha is the dispersion phi: pass phi=",
                          "n": "PyMC's (n, p): pass mu=n * (1 - p) / p, phi=n",
                          "p": "PyMC's (n, p): pass mu=n * (1 - p) / p, phi=n"},
    "Bernoulli": {"logit_p": "use BernoulliLogit(logit_p)"},
    "Binomial": {"logit_p": "use BinomialLogit(n, logit_p)"},
    "Categorical": {"logit_p": "pass p=M.softmax(logit_p) (evaluated as a log-softmax)"},
    "Multinomial": {"logit_p": "pass p=M.softmax(logit_p) (evaluated as a log-softmax)"},
    "Dirichlet": {"a": "pass alpha="},
    "DirichletMultinomial": {"a": "pass alpha="},
    "ZeroInflatedNegativeBinomial": {"alpha": "PyMC's alpha is the dispersion phi: pass phi=",
                                     "n": "PyMC's (n, p): pass mu=n * (1 - p) / p, phi=n",
                                     "p": "PyMC's (n, p): pass mu=n * (1 - p) / p, phi=n"},
    "Wald": {"phi": "PyMC's phi is lam / mu: pass lam=phi * mu",
             "alpha": "a shifted Wald is not offered: observe y - alpha instead"},
    "Mixture": {"comp_dists": "pass components="},
    "MvStudentT": {"chol": "pass scale=L @ L.T", "cov": "MvStudentT takes the scale matrix (the covariance is "
                                                      "nu / (nu - 2) * scale): pass scale=",
                   "Sigma": "pass scale=", "tau": "pass scale=, the inverse of the precision tau"},
    "MvNormal": {"chol": "use MvNormalCholesky(mu, L)", "tau": "pass cov=, the inverse of the precision tau",
                 "Sigma": "pass cov="},
    "LKJCholesky": {"n": "pass dim=", "sd_dist": "LKJCholesky is the correlation factor only: multiply its rows "
                                                "by a vector of scales (PyMC's LKJCholeskyCov)"},
}


def _explained_keywords(init):
    """``init`` that, given a keyword it does not take, raises a TypeError saying what to pass (the
    cost is one call frame; the hint is looked up only after the TypeError)."""

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        try:
            return init(self, *args, **kwargs)
        except TypeError as error:
            name = type(self).__name__
            hints = KEYWORD_HINTS.get(name, {})
            unknown = [k for k in kwargs if k in hints and f"'{k}'" in str(error)]
            if not unknown or "unexpected keyword" not in str(error):
                raise
            raise TypeError(f"{name}() got an unexpected keyword argument '{unknown[0]}': {hints[unknown[0]]} "
                            f"(ppl_ad's {name} takes {_arguments(init)})") from None

    return __init__


def _arguments(init) -> str:
    import inspect

    names = list(inspect.signature(init).parameters)[1:]
    return "(" + ", ".join(names) + ")"


class Distribution:
    """Base class of ppl_ad distributions.

    Subclasses set ``arg_constraints`` (parameter name -> constraint, in the order of the
    constructor's arguments), ``support``, ``event_dim`` and implement :meth:`log_prob` and
    :meth:`sample`.
    """

    arg_constraints: dict = {}
    support: C.Constraint = C.real
    event_dim = 0
    is_discrete = False
    #: a likelihood for observed data only, never a parameter's prior (``Censored``)
    observed_only = False
    #: the parameters whose leading axes are the batch shape (``MvNormal``'s ``mu``, not its ``cov``),
    #: which :meth:`expand` widens even when they have no batch axes yet
    batch_parameters: tuple = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _explained_keywords(cls.__dict__["__init__"])

    def __init__(self, **params):
        for name, value in params.items():
            setattr(self, name, M.asarray(value) if type(value) in _CONVERT else value)
        self._validated = _VALIDATE[-1]
        if self._validated:  # the converted values: a Python list of constants is checked as an array
            self._validate({name: getattr(self, name) for name in params})

    def _checked(self, name: str) -> bool:
        """Whether parameter ``name`` was checked against its constraint when the distribution was
        built (a constant); a parameter computed from others is checked by ``log_prob`` where needed."""
        return getattr(self, "_validated", False) and _is_constant(getattr(self, name))

    def _validate(self, params):
        for name, constraint in self.arg_constraints.items():
            value = params.get(name)
            if constraint.is_discrete and getattr(value, "depends_on_parameters", False):
                # HMC's parameters are continuous: a count computed from them is never a count (and
                # BetaBinomial(alpha, beta, n), PyMC's order, lands here with alpha as n)
                order = ", ".join(self.arg_constraints)
                raise ModelDefinitionError(
                    f"{type(self).__name__}: parameter '{name}' must be a count ({constraint!r}): a constant or "
                    f"data, not a value computed from the model's parameters. The arguments are ({order}); "
                    "pass them by keyword if you meant another order")
            if value is None or not _is_constant(value):
                continue
            array = np.asarray(value, dtype=float)
            if not (np.all(constraint.check(array)) and np.all(np.isfinite(array))):  # Exponential(inf): NaN later
                raise ModelDefinitionError(
                    f"{type(self).__name__}: parameter '{name}' must satisfy {constraint!r}, "
                    f"got {_short(array)}"
                )

    @property
    def params(self) -> dict:
        """Parameter name -> value."""
        return {name: getattr(self, name) for name in self.arg_constraints}

    @property
    def batch_shape(self) -> tuple:
        """Shape obtained by broadcasting the parameters (event dimensions excluded)."""
        shapes = []
        for name, constraint in self.arg_constraints.items():
            shape = tuple(np.shape(getattr(self, name)))
            drop = getattr(constraint, "event_dim", 0)
            shapes.append(shape[: len(shape) - drop] if drop else shape)
        return tuple(np.broadcast_shapes(*shapes)) if shapes else ()

    @property
    def event_shape(self) -> tuple:
        """Shape of one draw's event (``()`` for univariate distributions)."""
        return ()

    def log_prob(self, value):
        """Log density of ``value``, assumed inside the support (no check); broadcasts."""
        raise NotImplementedError

    def log_cdf(self, value):
        """``log P(X <= value)`` (Stan's ``_lcdf``), on every backend; for censored data
        (:class:`ppl_ad.distributions.Censored`) and ``pa.factor`` terms. Only the continuous
        distributions with a closed-form cumulative distribution function have it
        (:data:`ppl_ad.distributions.censored.WITH_CDF`). Below the support it is ``-inf``, above
        it 0 (the support's bounds may be parameters)."""
        if type(self)._log_cdf is Distribution._log_cdf:
            raise NotImplementedError(f"{type(self).__name__} has no log_cdf")
        return self._outside_support(_as_values(value), self._log_cdf, -np.inf, 0.0)

    def log_ccdf(self, value):
        """``log P(X > value)``, the log survival function (Stan's ``_lccdf``, SciPy's ``logsf``);
        0 below the support, ``-inf`` above it; see :meth:`log_cdf`."""
        if type(self)._log_ccdf is Distribution._log_ccdf:
            raise NotImplementedError(f"{type(self).__name__} has no log_ccdf")
        return self._outside_support(_as_values(value), self._log_ccdf, 0.0, -np.inf)

    def _log_cdf(self, value):
        """The closed form of :meth:`log_cdf` inside the support (subclasses)."""
        raise NotImplementedError

    def _log_ccdf(self, value):
        """The closed form of :meth:`log_ccdf` inside the support (subclasses)."""
        raise NotImplementedError

    def _outside_support(self, value, formula, below_value, above_value):
        """``formula(value)`` inside the support, the constants beyond its bounds; the formula only
        sees points inside (a point between the bounds, or one past the lower bound, stands in for
        the others), so neither its value nor its gradient can be NaN where it is not taken."""
        lower = getattr(self.support, "lower", None)
        upper = getattr(self.support, "upper", None)
        if lower is None and upper is None:
            return formula(value)
        if isinstance(value, (int, float)):
            value = np.asarray(value, dtype=float)
        below = value < lower if lower is not None else None
        above = value > upper if upper is not None else None
        if lower is not None and upper is not None:
            inner, outside = 0.5 * (lower + upper), below | above
        elif lower is not None:
            inner, outside = lower + 1.0, below
        else:
            inner, outside = upper - 1.0, above
        result = formula(M.where(outside, inner, value))
        if below is not None:
            result = M.where(below, below_value, result)
        if above is not None:
            result = M.where(above, above_value, result)
        return result

    def logcdf(self, value):
        """SciPy's name (and PyMC's ``pm.logcdf``) for :meth:`log_cdf`."""
        return self.log_cdf(value)

    def logsf(self, value):
        """SciPy's name for :meth:`log_ccdf`, the log survival function."""
        return self.log_ccdf(value)

    logccdf = logsf

    def logpdf(self, value):
        """Log density (log mass for discrete distributions) with all normalising constants.

        Values outside the support give ``-inf``, also where the support's bounds are other
        parameters (``Uniform(0, theta).logpdf(y)`` in a ``pa.factor``): the value is then compared
        with the bounds in the backend's arrays.
        """
        value = _as_values(value)
        support = self.support
        if support.bounds and not all(_is_constant(getattr(support, b)) for b in support.bounds):
            data = M.asarray(value) if type(value) is np.ndarray else value
            return M.where(support.inside(data), self.log_prob(data), -np.inf)
        if _is_constant(value):
            inside = np.asarray(self.support.check_observed(value))
            if not np.all(inside):
                if not np.any(inside):
                    shape = np.broadcast_shapes(inside.shape, tuple(self.batch_shape))
                    return np.full(shape, -np.inf) if shape else -np.inf
                # Evaluate on NumPy arrays (a Python 0.0 would raise ZeroDivisionError) with the
                # outside entries replaced by an inside one (an out-of-range index would raise).
                array = np.asarray(value)
                if self.event_dim == 0 and array.shape == inside.shape:
                    array = np.where(inside, array, array[inside].flat[0])
                with np.errstate(all="ignore"):
                    log_prob = self.log_prob(array)
                return M.where(inside, log_prob, -np.inf)
            with np.errstate(divide="ignore", invalid="ignore"):  # log(0) of a value on a bound
                return self.log_prob(np.asarray(value) if isinstance(value, (int, float)) else value)
        return self.log_prob(value)

    logpmf = logpdf

    def sample(self, rng: np.random.Generator, shape: tuple = ()):
        """Draw NumPy samples of shape ``shape + batch_shape + event_shape``."""
        raise NotImplementedError

    def expand(self, batch_shape: tuple) -> "Distribution":
        """This distribution with its parameters broadcast to ``batch_shape``: independent draws
        along axes where the parameters have size 1 (as NumPyro's ``expand``).

        Parameters
        ----------
        batch_shape : tuple of int
            A shape the current :attr:`batch_shape` broadcasts to.

        Returns
        -------
        Distribution
            ``self`` when the batch shape is already ``batch_shape``, else a copy.

        Raises
        ------
        ValueError
            The batch shape does not broadcast to ``batch_shape``, or the distribution's batch
            shape does not follow its parameters (``LKJCholesky``).
        """
        batch_shape = tuple(int(n) for n in batch_shape)
        if batch_shape == tuple(self.batch_shape):
            return self
        if np.broadcast_shapes(tuple(self.batch_shape), batch_shape) != batch_shape:
            raise ValueError(f"{self!r}: batch shape {tuple(self.batch_shape)} does not broadcast to {batch_shape}")
        new = copy.copy(self)
        for name, constraint in self.arg_constraints.items():
            value = getattr(self, name, None)
            if value is None:
                continue
            shape = tuple(np.shape(value))
            event = shape[len(shape) - getattr(constraint, "event_dim", 0):]
            # a parameter without batch axes already broadcasts, unless it carries the batch shape
            if len(shape) > len(event) or name in self.batch_parameters:
                setattr(new, name, np.broadcast_to(np.asarray(value), batch_shape + event))
        if tuple(new.batch_shape) != batch_shape:
            raise ValueError(f"{self!r}: cannot expand batch shape {tuple(self.batch_shape)} to {batch_shape}")
        return new

    def _np(self, name):
        return np.asarray(getattr(self, name), dtype=float)

    def _size(self, shape):
        return tuple(shape) + self.batch_shape

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={_short(v)}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


def _short(value) -> str:
    if type(value).__name__ == "_Traced":  # a parameter's placeholder while the model compiles
        return "<parameter>"
    try:
        array = np.asarray(value)
    except Exception:  # a traced array: show its type only
        return type(value).__name__
    if array.size <= 4:
        return np.array2string(array, precision=4) if array.ndim else f"{array.item()!r}"
    return f"array(shape={array.shape}, min={np.min(array):.4g}, max={np.max(array):.4g})"


#: from here on, :func:`log_rising_factorial` uses Stirling's series
_STIRLING_FROM = 100.0


def _stirling_remainder(x):
    """``gammaln(x) - ((x - 1/2) log x - x + log(2 pi) / 2)`` for ``x >= 100`` (three terms of
    Stirling's series; the next is below 1e-17)."""
    inverse = 1.0 / x
    square = inverse * inverse
    return inverse * (1.0 / 12.0 - square * (1.0 / 360.0 - square / 1260.0))


def log_factorial(k):
    """``log(k!)`` as ``gammaln(k + 1)`` (counts of the discrete distributions; use it through
    :func:`data_term` for observed counts, so tape backends compute it once per array)."""
    return M.gammaln(k + 1.0)


def log_rising_factorial(a, n):
    """``gammaln(a + n) - gammaln(a)``: directly for ``a`` up to 100, above from Stirling's series,
    ``(a - 1/2) log1p(n / a) + n log(a + n) - n`` plus the remainders, whose absolute error stays
    near 1e-16 n log(a) where the difference of two ``gammaln`` of size ``a log a`` loses
    ``1e-16 a log a`` (1e-3 at a = 1e12)."""
    direct = M.gammaln(a + n) - M.gammaln(a)
    large = M.maximum(a, _STIRLING_FROM)  # the branch not taken stays finite, so do its derivatives
    series = ((large - 0.5) * M.log1p(n / large) + n * M.log(large + n) - n
              + _stirling_remainder(large + n) - _stirling_remainder(large))
    return M.where(a > _STIRLING_FROM, series, direct)
