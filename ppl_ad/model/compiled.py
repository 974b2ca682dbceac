"""A compiled model: fixed parameter layout, the generic log-density function, conversions.

:func:`compile_model` runs the model once under the compile handler. The resulting
:class:`CompiledModel` owns the flat-vector layout (names, shapes, slices), the NumPy
value-only log density (the floor AD backends are compared with), ``constrain`` /
``unconstrain`` and :meth:`CompiledModel.make_logdensity_fn`, the array-library-agnostic
function that every AD backend differentiates.
"""

from __future__ import annotations

import numpy as np

from ppl_ad import math as M
from ppl_ad.errors import DataError
from ppl_ad.model.handlers import CompileHandler, EvaluateHandler, SampleSite, run_model
from ppl_ad.model.primitives import HANDLERS
from ppl_ad.distributions import base as _dist_base

__all__ = ["CompiledModel", "compile_model", "check_finite_data"]


class CompiledModel:
    """The model with its parameter layout fixed.

    Attributes
    ----------
    model : ppl_ad.model.Model
    sites : dict
        Site name -> site record, in model order.
    dimension : int
        Length of the unconstrained parameter vector.
    """

    def __init__(self, model, sites: dict, dimension: int):
        self.model = model
        self.sites = sites
        self.dimension = dimension
        self.parameters = [s for s in sites.values() if s.kind == "sample"]
        self._numpy_fn = self.make_logdensity_fn("numpy")

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def site_shapes(self) -> dict:
        """Model-space shapes of the sampled sites."""
        return {s.name: s.shape for s in self.parameters}

    @property
    def deterministic_shapes(self) -> dict:
        """Shapes of the deterministic sites."""
        return {s.name: s.shape for s in self.sites.values() if s.kind == "deterministic"}

    def layout(self) -> list[tuple[str, tuple, slice]]:
        """``(name, unconstrained shape, slice)`` for each parameter, in vector order."""
        return [(s.name, s.unconstrained_shape, slice(s.start, s.stop)) for s in self.parameters]

    def flat_names(self) -> list[str]:
        """A name per coordinate of the unconstrained vector: ``mu``, ``theta[0]``, ..."""
        names = []
        for site in self.parameters:
            if site.unconstrained_shape == ():
                names.append(site.name)
            else:
                names.extend(f"{site.name}[{','.join(map(str, i))}]" for i in np.ndindex(*site.unconstrained_shape))
        return names

    def check_theta(self, theta) -> np.ndarray:
        """Return ``theta`` as a 1-D float64 array, or raise naming the expected length."""
        theta = np.asarray(theta, dtype=np.float64)
        if theta.ndim != 1 or theta.shape[0] != self.dimension:
            raise ValueError(
                f"model '{self.name}': theta must be a 1-D vector of length {self.dimension} "
                f"(parameters {[s.name for s in self.parameters]}), got shape {theta.shape}"
            )
        return theta

    def make_logdensity_fn(self, namespace: str = "numpy", data: dict | None = None):
        """Return ``f(theta) -> scalar log density`` evaluated with array library ``namespace``.

        Parameters
        ----------
        namespace : str
            ``"numpy"``, ``"jax"``, ``"torch"``, ``"autograd"`` or ``"sympy"``: the library of
            Python constants during evaluation. ``theta`` must be an array of that library.
        data : dict, optional
            The model's data converted to that library (defaults to the bound data).
        """
        ns = M.namespace_named(namespace)
        model, sites, name = self.model, self.sites, self.model.name
        run = model.function.fn
        data = model.data if data is None else data
        state = M._state
        validate = _dist_base._VALIDATE

        def logdensity_fn(theta):
            handler = EvaluateHandler(theta, sites, name)
            HANDLERS.append(handler)
            validate.append(False)
            state.append(ns)
            try:
                run(**data)
            except Exception as error:
                _reraise(model, handler, error)
            finally:
                state.pop()
                validate.pop()
                HANDLERS.pop()
            return handler.total

        return logdensity_fn

    def logdensity(self, theta) -> float:
        """Value-only NumPy log density at unconstrained ``theta`` (-inf outside support)."""
        theta = self.check_theta(theta)
        with np.errstate(all="ignore"):
            value = float(self._numpy_fn(theta))
        return value if not np.isnan(value) else -np.inf

    def trace(self, theta, log_density: bool = True) -> EvaluateHandler:
        """Evaluate at ``theta`` with NumPy and return the handler holding values and terms.

        ``log_density=False`` records the values only (no log-density terms are computed).
        """
        theta = self.check_theta(theta)
        handler = EvaluateHandler(theta, self.sites, self.name, record=True, log_density=log_density)
        with np.errstate(all="ignore"), M.using("numpy"):
            run_model(self.model, handler)
        return handler

    def constrain(self, theta, deterministics: bool = False) -> dict:
        """Model-space values of the parameters (and deterministics) at ``theta``."""
        values = self.trace(theta, log_density=False).values
        keep = {s.name for s in self.sites.values() if s.kind == "sample" or (deterministics and s.kind == "deterministic")}
        return {k: np.asarray(v, dtype=float) for k, v in values.items() if k in keep}

    def unconstrain(self, values: dict) -> np.ndarray:
        """The unconstrained vector for model-space ``values`` (one entry per parameter)."""
        missing = [s.name for s in self.parameters if s.name not in values]
        unknown = sorted(set(values) - {s.name for s in self.parameters} - set(self.deterministic_shapes))
        if missing or unknown:
            raise DataError(
                f"model '{self.name}': unconstrain needs exactly the parameters "
                f"{[s.name for s in self.parameters]}; missing {missing}, unknown {unknown}"
            )
        theta = np.zeros(self.dimension)
        # Transforms may depend on earlier parameters (dependent bounds): fill in model order.
        for site in self.parameters:
            value = np.asarray(values[site.name], dtype=float)
            if value.shape != site.shape:
                try:
                    value = np.broadcast_to(value, site.shape)
                except ValueError:
                    raise DataError(
                        f"model '{self.name}', site '{site.name}': value of shape {value.shape}, "
                        f"expected {site.shape}"
                    ) from None
            transform = site.transform or self._transform_at(theta, site)
            theta[site.start:site.stop] = np.reshape(transform.inverse(value), -1)
        return theta

    def _transform_at(self, theta, site: SampleSite):
        from ppl_ad.transforms import biject_to

        found = {}

        class _Capture(EvaluateHandler):
            def sample(self, name, distribution, shape):
                if name == site.name:
                    found["transform"] = biject_to(distribution.support)
                    raise _Stop
                return super().sample(name, distribution, shape)

        handler = _Capture(theta, self.sites, self.name)
        try:
            with M.using("numpy"), np.errstate(all="ignore"):
                run_model(self.model, handler)
        except _Stop:
            pass
        return found["transform"]

    def initial_point(self, rng: np.random.Generator, radius: float = 2.0) -> np.ndarray:
        """A random point, uniform on ``(-radius, radius)`` in every unconstrained coordinate."""
        return rng.uniform(-radius, radius, size=self.dimension)

    def non_finite_sites(self, theta, gradient=None) -> list[str]:
        """Names of the sites whose value or log-density term is not finite at ``theta``.

        A non-finite ``gradient`` (when given) blames the parameters whose slice holds it.
        """
        try:
            handler = self.trace(theta)
        except Exception:
            return [s.name for s in self.parameters]
        bad = []
        for name, term in handler.terms.items():
            value = handler.values.get(name)
            if not np.all(np.isfinite(np.asarray(term, dtype=float))) or (
                value is not None and not np.all(np.isfinite(np.asarray(value, dtype=float)))
            ):
                bad.append(name)
        if gradient is not None:
            gradient = np.asarray(gradient)
            for site in self.parameters:
                if not np.all(np.isfinite(gradient[site.start:site.stop])) and site.name not in bad:
                    bad.append(site.name)
        return bad


class _Stop(BaseException):
    """Stops the model run once the wanted site is reached (a BaseException, so that
    :func:`run_model` does not wrap it as an error of the model)."""


def _reraise(model, handler, error):
    from ppl_ad.errors import ModelEvaluationError, PplAdError

    if isinstance(error, PplAdError) or type(error).__module__.startswith("jax"):
        raise error
    where = f"at or after site '{handler.current}'" if handler.current else "before its first site"
    raise ModelEvaluationError(f"model '{model.name}' raised {type(error).__name__} {where}: {error}") from error


def check_finite_data(model) -> None:
    """Raise :class:`DataError` when data bound to ``model`` contain NaN or infinite values.

    Every argument is checked (covariates, not only observed values): a NaN in ``x`` would
    otherwise make the log density NaN everywhere. The rule: NaN is refused everywhere; an
    infinite value is refused in an array of one or more dimensions, and allowed in a scalar
    argument (an explicit ``upper=np.inf`` bound). Lists, tuples and dicts of arrays are checked
    element by element; other objects are not inspected.
    """
    for name, value in model.data.items():
        _check_finite(model.name, name, value, depth=0)


def _check_finite(model_name, name, value, depth):
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, dict) and depth < 2:
        for key, item in value.items():
            _check_finite(model_name, f"{name}[{key!r}]", item, depth + 1)
        return
    if isinstance(value, (list, tuple)) and depth < 2:
        if not all(isinstance(v, (int, float, np.number)) for v in value):
            for index, item in enumerate(value):
                _check_finite(model_name, f"{name}[{index}]", item, depth + 1)
            return
    elif isinstance(value, float) or isinstance(value, np.generic):
        pass
    elif hasattr(value, "to_numpy") and type(value).__module__.partition(".")[0] == "pandas":
        value = value.to_numpy()
    elif not isinstance(value, np.ndarray):
        return
    try:
        array = np.asarray(value)
    except Exception:  # noqa: BLE001 - not array-like: nothing to check
        return
    if array.dtype.kind not in "fc":
        return
    bad = np.isnan(array) if array.ndim == 0 else ~np.isfinite(array)
    count = int(np.count_nonzero(bad))
    if not count:
        return
    if array.ndim == 0:
        raise DataError(
            f"model '{model_name}', argument '{name}': the value is NaN; bind a number "
            "(ppl_ad refuses NaN data: it makes the log density NaN)"
        )
    indices = [tuple(int(i) for i in index) if array.ndim > 1 else int(index[0]) for index in np.argwhere(bad)[:5]]
    kinds = sorted({"NaN" if np.isnan(v) else "inf" for v in array[bad][:100]})
    where = ", ".join(map(str, indices)) + (", ..." if count > 5 else "")
    raise DataError(
        f"model '{model_name}', argument '{name}': the data contain NaN or inf ({count} of "
        f"{array.size} entries, {' and '.join(kinds)}, at indices [{where}]); drop or impute "
        "them before binding the data (non-finite data make the log density NaN)"
    )


def compile_model(model) -> CompiledModel:
    """Run ``model`` once to fix its sites and parameter layout; validate data and constants."""
    check_finite_data(model)
    handler = CompileHandler(model.name)
    with np.errstate(all="ignore"), M.using("numpy"):
        run_model(model, handler)
    return CompiledModel(model, handler.sites, handler.size)
