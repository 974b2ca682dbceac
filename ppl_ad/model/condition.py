"""``condition``: give a model's observed sites new values, by site name.

NumPyro's ``handlers.condition`` is the reference: ``pa.condition(model, {"y": y_new})``
returns a new bound :class:`~ppl_ad.model.Model` that is the same model except that the
observed site ``"y"`` takes the value ``y_new`` instead of the data the model function passes to
``pa.observe``. The model function and its bound data are unchanged, so the site may observe
any expression of the data (``y - offset``, a slice, ...): the value is replaced where the
site is declared, not where the data are bound.

How it works: the conditioned model's function runs the original one with a small handler
pushed on top of the handler stack (:mod:`ppl_ad.model.primitives`). That handler forwards
every primitive to the handler below it (compiling, evaluating the log density with any
backend, predictive sampling) and replaces the value of the conditioned ``observe`` sites on
the way. Conditioned models pickle (by reference to the original model function), so they run
in worker processes and on Dask workers like any model.

Simulation-based calibration (:func:`ppl_ad.sbc`) uses this to refit a model to data simulated
from its prior.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import numpy as np

from ppl_ad.errors import DataError
from ppl_ad.model import primitives
from ppl_ad.model.model import Model, ModelFunction

__all__ = ["condition", "ConditionedModelFunction", "observed_site_names"]


class _ConditionHandler:
    """Forward every primitive to ``below``; replace the values of conditioned observe sites."""

    def __init__(self, below, values: Mapping):
        self.below = below
        self.values = values

    def observe(self, name, distribution, value=None, *args, **kwargs):
        if name in self.values:
            value = self.values[name]
        return self.below.observe(name, distribution, value, *args, **kwargs)

    def __getattr__(self, attribute):
        # sample, deterministic, factor and anything a handler grows later: unchanged
        return getattr(self.below, attribute)


class _ConditionedFn:
    """The original model function, run under :class:`_ConditionHandler`.

    Attribute names are private and prefixed: :class:`ModelFunction` copies a function's
    ``__dict__`` onto itself (``functools.update_wrapper``).
    """

    def __init__(self, fn, values: dict):
        self._ppl_ad_condition_fn = fn
        self._ppl_ad_condition_values = values
        self.__signature__ = inspect.signature(fn)
        for attribute in ("__name__", "__qualname__", "__module__", "__doc__"):
            if hasattr(fn, attribute):
                setattr(self, attribute, getattr(fn, attribute))

    def __call__(self, *args, **kwargs):
        fn = self._ppl_ad_condition_fn
        if not primitives.HANDLERS:  # called outside a model evaluation: the primitives raise
            return fn(*args, **kwargs)
        primitives.HANDLERS.append(_ConditionHandler(primitives.HANDLERS[-1], self._ppl_ad_condition_values))
        try:
            return fn(*args, **kwargs)
        finally:
            primitives.HANDLERS.pop()

    def __reduce__(self):
        return (_ConditionedFn, (self._ppl_ad_condition_fn, self._ppl_ad_condition_values))


class ConditionedModelFunction(ModelFunction):
    """A model function whose observed sites ``values`` take fixed values.

    Parameters
    ----------
    base : ModelFunction
        The unconditioned model function (its name and preferred backend are kept).
    values : dict
        Observed site name -> value.
    """

    def __init__(self, base: ModelFunction, values: dict):
        super().__init__(_ConditionedFn(base.fn, values), name=base.name, backend=base.backend)
        self.base = base
        self.values = values

    def __reduce__(self):
        return (ConditionedModelFunction, (self.base, self.values))

    def __repr__(self) -> str:
        return f"<ppl_ad model function '{self.name}' conditioned on {sorted(self.values)}>"


class _SiteNames:
    """A handler that records site names by kind, drawing parameters from their priors."""

    def __init__(self, rng):
        from ppl_ad.model.handlers import PredictiveHandler

        self.predictive = PredictiveHandler(rng, exact=False)
        self.kinds: dict[str, str] = {}
        self.current = None

    def __enter__(self):
        primitives.HANDLERS.append(self)
        return self

    def __exit__(self, *exc):
        primitives.HANDLERS.pop()

    def sample(self, name, *args, **kwargs):
        self.kinds[name], self.current = "sample", name
        return self.predictive.sample(name, *args, **kwargs)

    def observe(self, name, distribution, value=None, *args, **kwargs):
        self.kinds[name], self.current = "observe", name
        return value

    def deterministic(self, name, value, *args, **kwargs):
        self.kinds[name], self.current = "deterministic", name
        return value

    def factor(self, name, log_weight, *args, **kwargs):
        self.kinds[name], self.current = "factor", name
        return log_weight


def _site_kinds(model) -> dict[str, str]:
    from ppl_ad import math as M
    from ppl_ad.model.handlers import run_model

    with np.errstate(all="ignore"), M.using("numpy"):
        return run_model(model, _SiteNames(np.random.default_rng(0))).kinds


def observed_site_names(model) -> list[str]:
    """Names of the observed (``pa.observe``) sites of a bound model, in model order."""
    return [name for name, kind in _site_kinds(model).items() if kind == "observe"]


def condition(model, values: Mapping) -> Model:
    """Return ``model`` with its observed sites taking ``values`` (by site name).

    Parameters
    ----------
    model : ppl_ad.model.Model
        A bound model (a model function called with its data). A conditioned model may be
        conditioned again: the new values are added to (and override) the earlier ones.
    values : mapping of str to array_like
        Observed site name -> the value it observes instead of the model's own data.

    Returns
    -------
    ppl_ad.model.Model
        A new bound model with the same name, data and preferred backend; ``model`` is unchanged.

    Raises
    ------
    DataError
        A name that is not an observed site of the model; the message names the model and its
        observed sites.

    Examples
    --------
    >>> import numpy as np
    >>> import ppl_ad as pa
    >>> from ppl_ad import dist
    >>> @pa.model
    ... def coin(heads, n):
    ...     p = pa.sample("p", dist.Beta(1.0, 1.0))
    ...     pa.observe("heads", dist.Binomial(n, p), heads)
    >>> fair = pa.condition(coin(heads=7, n=10), {"heads": 5})
    >>> pa.logdensity(fair, backend="finite-difference").logdensity(np.zeros(1)) > pa.logdensity(
    ...     coin(heads=7, n=10), backend="finite-difference").logdensity(np.zeros(1))
    True
    """
    if not isinstance(model, Model):
        raise TypeError(
            f"pa.condition needs a bound model (a @pa.model function called with its data), got {model!r}"
        )
    if not isinstance(values, Mapping):
        raise TypeError(f"pa.condition: values must be a mapping of site name to value, got {type(values).__name__}")
    kinds = _site_kinds(model)
    observed = [name for name, kind in kinds.items() if kind == "observe"]
    unknown = [name for name in values if kinds.get(name) != "observe"]
    if unknown:
        detail = "; ".join(
            f"'{name}' is a {kinds[name]} site" if name in kinds else f"no site '{name}'" for name in unknown
        )
        raise DataError(
            f"model '{model.name}': cannot condition on {unknown} ({detail}); "
            f"its observed sites are {observed}"
        )
    function = model.function
    merged = {name: np.asarray(value) for name, value in values.items()}
    if isinstance(function, ConditionedModelFunction):
        merged = {**function.values, **merged}
        function = function.base
    return Model(ConditionedModelFunction(function, merged), model.data)
