"""A compiled model: fixed parameter layout, the generic log-density function, conversions.

:func:`compile_model` runs the model once under the compile handler. The resulting
:class:`CompiledModel` owns the flat-vector layout (names, shapes, slices), the NumPy
value-only log density (the floor AD backends are compared with), ``constrain`` /
``unconstrain`` and :meth:`CompiledModel.make_logdensity_fn`, the array-library-agnostic
function that every AD backend differentiates.
"""

from __future__ import annotations

import difflib
import linecache
import sys

import numpy as np

from ppl_ad import math as M
from ppl_ad.errors import DataError, ModelEvaluationError
from ppl_ad.model.handlers import CompileHandler, EvaluateHandler, run_model
from ppl_ad.model.primitives import HANDLERS
from ppl_ad.transforms import biject_to
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
    jacobian : bool
        Whether the log density includes the log-Jacobians of the constraining transforms
        (True: the density of the unconstrained vector, what samplers need; False: the density of
        the model-space values, whose mode is the MAP estimate in model space).
    """

    def __init__(self, model, sites: dict, dimension: int, jacobian: bool = True):
        self.model = model
        self.sites = sites
        self.dimension = dimension
        self.jacobian = bool(jacobian)
        self.parameters = [s for s in sites.values() if s.kind == "sample"]
        self._numpy_fn = self.make_logdensity_fn("numpy")

    @property
    def name(self) -> str:
        return self.model.name

    def with_jacobian(self, jacobian: bool) -> "CompiledModel":
        """This compiled model with or without the log-Jacobian terms (``self`` if unchanged).

        Every log-density function made from the result (:meth:`make_logdensity_fn`, hence every
        AD backend) follows its ``jacobian`` attribute.
        """
        if bool(jacobian) == self.jacobian:
            return self
        return CompiledModel(self.model, self.sites, self.dimension, jacobian)

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

        The log-Jacobians of the transforms are included when :attr:`jacobian` is True.

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
        state, links = M._state, M._links
        validate = _dist_base._VALIDATE
        jacobian = self.jacobian

        def logdensity_fn(theta):
            handler = EvaluateHandler(theta, sites, name, jacobian=jacobian)
            HANDLERS.append(handler)
            validate.append(False)
            state.append(ns)
            links.append({})
            try:
                run(**data)
            except Exception as error:
                if not is_numerical_failure(error):
                    _reraise(model, handler, error, ns.name)
                # A numerical failure (a Cholesky of a matrix that is not positive definite at
                # this theta) rejects the point, as a NaN does under JAX: -inf, zero gradient.
                return ns.sum(theta, None) * 0.0 - np.inf
            finally:
                links.pop()
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
        A numerical failure of the model at ``theta`` (a failed Cholesky) does not raise: the
        values it prevents from being computed are NaN, and the term of the last site reached
        is -inf.
        """
        theta = self.check_theta(theta)
        handler = EvaluateHandler(theta, self.sites, self.name, record=True, log_density=log_density,
                                  jacobian=self.jacobian)
        with np.errstate(all="ignore"), M.using("numpy"):
            try:
                run_model(self.model, handler)
            except ModelEvaluationError as error:
                if not is_numerical_failure(error.__cause__):
                    raise
                self._fill_after_failure(theta, handler)
        return handler

    def _fill_after_failure(self, theta, handler) -> None:
        """Complete a trace cut short by a numerical failure: NaN for what was not reached."""
        if handler.current is not None:
            handler.terms[handler.current] = -np.inf
        for site in self.sites.values():
            if site.name in handler.values or site.kind not in ("sample", "deterministic"):
                continue
            if site.kind == "sample" and site.transform is not None:
                u = theta[site.start:site.stop].reshape(site.unconstrained_shape)
                handler.values[site.name] = np.asarray(site.transform.forward(u), dtype=float)
            else:
                handler.values[site.name] = np.full(site.shape, np.nan)

    def constrain(self, theta, deterministics: bool = False) -> dict:
        """Model-space values of the parameters (and deterministics) at ``theta``."""
        values = self.trace(theta, log_density=False).values
        keep = {s.name for s in self.sites.values() if s.kind == "sample" or (deterministics and s.kind == "deterministic")}
        return {k: _model_space_array(v, self.sites[k].kind) for k, v in values.items() if k in keep}

    def unconstrain(self, values: dict, fill=None) -> np.ndarray:
        """The unconstrained vector for model-space ``values`` (one entry per parameter).

        Parameters
        ----------
        values : dict
            Model-space values by site name. A deterministic site's value is accepted when it equals
            what the parameters give (a whole draw, or ``find_MAP``'s result) and refused otherwise.
        fill : numpy.ndarray, optional
            An unconstrained vector whose coordinates the parameters missing from ``values``
            keep (partial initial values); None: every parameter must be given.

        Returns
        -------
        numpy.ndarray

        Raises
        ------
        ppl_ad.errors.DataError
            An unknown site name (with the closest one), a missing parameter (without ``fill``),
            a value of the wrong shape, or a value outside its site's support or on its boundary
            (naming the site, the support and the distribution).
        """
        parameters = [s.name for s in self.parameters]
        unknown = sorted(set(values) - set(parameters) - set(self.deterministic_shapes))
        missing = [name for name in parameters if name not in values] if fill is None else []
        if unknown or missing:
            problems = []
            lowered = {p.lower(): p for p in parameters}
            for name in unknown:
                close = difflib.get_close_matches(str(name).lower(), lowered, n=1, cutoff=0.6)
                hint = f" (did you mean {lowered[close[0]]!r}?)" if close else ""
                problems.append(f"unknown site {name!r}{hint}")
            if missing:
                problems.append(f"no value for {missing} (unconstrain needs every parameter)")
            raise DataError(f"model '{self.name}': {'; '.join(problems)}; the parameters are {parameters}")
        given = {}
        for site in self.parameters:
            if site.name not in values:
                continue
            value = np.asarray(values[site.name], dtype=float)
            if value.shape != site.shape:
                try:
                    value = np.broadcast_to(value, site.shape)
                except ValueError:
                    raise DataError(
                        f"model '{self.name}', site '{site.name}': value of shape {value.shape}, "
                        f"expected {site.shape}"
                    ) from None
            given[site.name] = value
        theta = np.zeros(self.dimension) if fill is None else np.array(fill, dtype=np.float64)
        # Transforms may depend on earlier parameters (dependent bounds): fill in model order,
        # during one run of the model that sees the values already filled in.
        handler = _Unconstrain(theta, self.sites, self.name, given)
        with M.using("numpy"), np.errstate(all="ignore"):
            run_model(self.model, handler)
        self._check_deterministics(values, theta)
        return theta

    def _check_deterministics(self, values: dict, theta) -> None:
        """Deterministics among ``values`` are accepted (a whole draw, or ``find_MAP``'s result, can
        start a chain) only when they equal what the parameters give: a deterministic cannot be set."""
        named = [n for n in values if n in self.deterministic_shapes]
        if not named:
            return
        computed = self.constrain(theta, deterministics=True)
        for name in named:
            want = np.asarray(computed[name], dtype=float)
            with np.errstate(all="ignore"):
                try:
                    same = np.allclose(np.asarray(values[name], dtype=float), want, rtol=1e-6, atol=1e-9, equal_nan=True)
                except (TypeError, ValueError):
                    same = False
            if not same:
                raise DataError(
                    f"model '{self.name}', site '{name}' is a deterministic, computed from the parameters "
                    f"{[s.name for s in self.parameters]}: a value for it cannot be set ({_short(values[name])} "
                    f"given, the parameters give {_short(want)}); give values for the parameters instead"
                )

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


class _Unconstrain(EvaluateHandler):
    """Write the unconstrained value of each given site into ``theta`` as the model reaches it."""

    def __init__(self, theta, sites, model_name, given):
        super().__init__(theta, sites, model_name, log_density=False)
        self.given = given

    def sample(self, name, distribution, shape, transform=None):
        value = self.given.get(name)
        if value is not None:
            self.current = name
            site = self.sites[name]
            support = getattr(site.transform, "constraint", None) or distribution.support
            if not np.all(support.check(value)) or not np.all(distribution.support.check(value)):
                raise DataError(
                    f"model '{self.model_name}', site '{name}': the value {_short(value)} is outside "
                    f"its support {support!r} ({distribution!r})"
                )
            u = np.reshape(np.asarray((site.transform or biject_to(support)).inverse(value), dtype=float), -1)
            if not np.all(np.isfinite(u)):
                raise DataError(
                    f"model '{self.model_name}', site '{name}': the value {_short(value)} lies on the "
                    f"boundary of its support {support!r} ({distribution!r}); give a value inside it"
                )
            self.theta[site.start:site.stop] = u
        return super().sample(name, distribution, shape, transform)


def _model_space_array(value, kind: str) -> np.ndarray:
    """A site's value as a float64 array; a boolean or integer deterministic keeps its type (as in
    PyMC, and as the predictive groups have it)."""
    array = np.asarray(value)
    if kind == "deterministic" and array.dtype.kind in "biu":
        return array
    return np.asarray(array, dtype=float)


def _short(value) -> str:
    return np.array2string(np.asarray(value), threshold=6, precision=6)


def is_numerical_failure(error: BaseException) -> bool:
    """Whether ``error`` is a numerical failure of the log density at one point, not a bug.

    A failed factorisation (NumPy/SciPy ``LinAlgError``, PyTorch ``torch.linalg.LinAlgError``),
    a ``FloatingPointError`` or an ``OverflowError`` depend on the parameter values: the point
    is rejected (log density -inf; a divergence inside a trajectory). Errors of the model's
    code (``NameError``, shape mismatches, ...) are not numerical failures.
    """
    if isinstance(error, (np.linalg.LinAlgError, FloatingPointError, OverflowError)):
        return True
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(error, torch.linalg.LinAlgError)


#: JAX's errors for a NumPy function (or ``if``/``int``) applied to a traced parameter
_JAX_CONCRETE_ERRORS = frozenset({
    "TracerArrayConversionError", "TracerBoolConversionError", "TracerIntegerConversionError",
    "ConcretizationTypeError",
})

#: messages of the errors PyTorch, NumPy and autograd raise when NumPy meets a parameter
_NUMPY_ON_PARAMETER_MESSAGES = (
    "Can't call numpy() on Tensor that requires grad",
    "returned NotImplemented from __array_ufunc__",
    "which has no callable",  # autograd: np.exp(ArrayBox) "... of type ArrayBox which has no callable exp method"
    "'numpy.ndarray' and 'Tensor'",
    "'Tensor' and 'numpy.ndarray'",
    "Concatenation operation is not implemented for NumPy arrays",
    "Cannot access data pointer of Tensor that doesn't have storage",  # torch.func (torch-forward)
)


def is_numpy_on_parameter(error: BaseException) -> bool:
    """Whether ``error`` says that a NumPy function was applied to a parameter."""
    if type(error).__module__.startswith("jax"):
        return type(error).__name__ in _JAX_CONCRETE_ERRORS
    message = str(error)
    return any(text in message for text in _NUMPY_ON_PARAMETER_MESSAGES)


def _model_line(model, error) -> str:
    """``line N of file: <source>`` for the deepest traceback frame in the model's own code."""
    code = getattr(getattr(model.function, "fn", None), "__code__", None)
    filename = code.co_filename if code is not None else None
    found = None
    tb = error.__traceback__
    while tb is not None:
        frame_file = tb.tb_frame.f_code.co_filename
        if frame_file == filename or found is None and not _is_library_file(frame_file):
            found = (frame_file, tb.tb_lineno)
        tb = tb.tb_next
    if found is None:
        return ""
    source = linecache.getline(found[0], found[1]).strip()
    return f" (line {found[1]} of {found[0]}{': ' + source if source else ''})"


def _is_library_file(filename: str) -> bool:
    import os

    parts = filename.replace("\\", "/").split("/")
    return "site-packages" in parts or "ppl_ad" in parts or filename.startswith("<frozen") or filename.startswith(
        os.path.dirname(os.__file__)
    )


def probe_points(dimension: int) -> list:
    """Two fixed points of the unconstrained space where a log density is compared or hashed: the
    origin, and a point whose coordinates all differ (so that a statistic of equal values, such as a
    standard deviation, is not 0 there)."""
    return [np.zeros(dimension), np.linspace(-0.3, 0.4, dimension) if dimension > 1 else np.full(dimension, 0.3)]


def _reraise(model, handler, error, library: str | None = None):
    from ppl_ad.errors import ModelEvaluationError, PplAdError

    if isinstance(error, PplAdError):
        raise error
    where = f"at or after site '{handler.current}'" if handler.current else "before its first site"
    if type(error).__name__ in ("TracerBoolConversionError", "ConcretizationTypeError"):  # JAX's
        raise ModelEvaluationError(
            f"model '{model.name}' branches on a parameter's value {where}{_model_line(model, error)} (if/while, "
            f"and/or, or a comparison used as a bool): {type(error).__name__}. The {library or 'traced'} backend "
            "records the model once for all parameter values, so it cannot follow the branch: write it with "
            "M.where(condition, a, b), or use a tape backend (backend=\"torch\" or \"autograd\"), which "
            "records every call anew"
        ) from error
    if is_numpy_on_parameter(error):
        raise ModelEvaluationError(
            f"model '{model.name}' applied a NumPy function or operation to a parameter {where}"
            f"{_model_line(model, error)}: {type(error).__name__}: {str(error).splitlines()[0][:200]}. "
            "Use pa.math (from ppl_ad import math as M: M.exp, M.square, M.matmul, M.eye, ...) on "
            "values that depend on parameters; NumPy is fine for computations on data only"
        ) from error
    if type(error).__module__.startswith("jax"):
        raise error
    hint = ""
    if isinstance(error, ValueError) and "step must be greater than zero" in str(error):
        hint = (" (PyTorch tensors have no negative slice steps, x[::-1]: index with an integer array instead, "
                "x[np.arange(len(x) - 1, -1, -1)], which every backend supports)")
    arrays = f" (evaluated with {library.replace('-numpy', '')} arrays)" if library and library != "numpy" else ""
    raise ModelEvaluationError(
        f"model '{model.name}' raised {type(error).__name__} {where}{arrays}: {error}{hint}") from error


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
    hint = ("; infinite censoring bounds (no censoring for those rows) are built inside the model from "
            "finite data, e.g. dist.Censored(d, upper=M.where(censored, t, np.inf)) with ppl_ad.math as M") if kinds == ["inf"] else ""
    raise DataError(
        f"model '{model_name}', argument '{name}': the data contain NaN or inf ({count} of "
        f"{array.size} entries, {' and '.join(kinds)}, at indices [{where}]); drop or impute "
        f"them before binding the data (non-finite data make the log density NaN){hint}"
    )


def _refuse_unobserved(model_name, sites) -> None:
    for site in sites.values():
        if site.kind == "observe" and site.value is None:
            raise DataError(
                f"model '{model_name}', site '{site.name}': the observed value is None; a model with "
                "unobserved sites serves prediction only (pa.sample_posterior_predictive and "
                "pa.sample_prior_predictive simulate them); bind the observed data to evaluate or "
                "sample its log density"
            )


def compile_model(model, jacobian: bool = True) -> CompiledModel:
    """Run ``model`` once to fix its sites and parameter layout; validate data and constants.

    ``jacobian=False`` leaves the log-Jacobians of the transforms out of the log density (see
    :attr:`CompiledModel.jacobian`).
    """
    check_finite_data(model)
    handler = CompileHandler(model.name)
    with np.errstate(all="ignore"), M.using("numpy"):
        run_model(model, handler)
    _refuse_unobserved(model.name, handler.sites)
    return CompiledModel(model, handler.sites, handler.size, jacobian)
