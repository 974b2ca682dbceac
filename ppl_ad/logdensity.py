"""``LogDensity``: a compiled model with a prepared AD backend (what samplers consume).

:func:`logdensity` compiles the model, resolves the backend (argument, decorator, config,
environment, default; see :mod:`ppl_ad.config`), prepares it once, and returns a
:class:`LogDensity` whose ``logdensity_and_gradient(theta)`` takes and returns float64
NumPy arrays. Which backend was used and why is kept in ``backend`` / ``backend_source``.

Names such as ``"auto"`` stand for a backend that is *chosen* rather than named; choosing
one means measuring the candidates, which is the benchmark layer's job. That layer sits
above this one, so it is reached through :func:`register_backend_resolver` (``ppl_ad``'s
``__init__`` registers ``"auto"``) and this module never imports it.
"""

from __future__ import annotations

import importlib

import numpy as np

from ppl_ad._keywords import checks_keywords
from ppl_ad.backends import registry
from ppl_ad.config import resolve_backend
from ppl_ad.errors import BackendCompilationError, ModelEvaluationError
from ppl_ad.model.compiled import CompiledModel, compile_model

__all__ = ["LogDensity", "logdensity", "register_backend_resolver"]

#: backend name -> resolver ``compiled -> (backend name, reason)``, or ``"module:function"``
#: naming one (imported on first use, so registering costs no import)
_RESOLVERS: dict = {}


def register_backend_resolver(name: str, resolver) -> None:
    """Let ``backend=name`` be decided by ``resolver`` when a log density is built.

    Parameters
    ----------
    name : str
        The pseudo-backend name, e.g. ``"auto"`` (case-insensitive).
    resolver : callable or str
        ``resolver(compiled) -> (backend_name, reason)``, or ``"module:function"`` naming it.
        When preparing the chosen backend raises a ``ModelEvaluationError`` or
        ``BackendCompilationError`` and the resolver has an attribute
        ``after_failure(compiled, failed_name, error) -> (backend_name, reason)``, that is asked
        for another choice (it re-raises ``error`` when it has none).
    """
    _RESOLVERS[name.strip().lower()] = resolver


def _resolver(name: str):
    resolver = _RESOLVERS[name]
    if isinstance(resolver, str):
        module, _, attribute = resolver.partition(":")
        resolver = _RESOLVERS[name] = getattr(importlib.import_module(module), attribute)
    return resolver


class LogDensity:
    """A model's log density on the unconstrained space, with value and gradient.

    Attributes
    ----------
    model : ppl_ad.model.Model
    backend : ppl_ad.backends.Backend
        The backend that computes gradients.
    backend_source : str
        Which rule chose the backend (argument, decorator, config file, environment, default).
    dimension : int
        Length of the unconstrained vector.
    jacobian : bool
        Whether the log density includes the log-Jacobians of the constraining transforms
        (see :func:`logdensity`).
    """

    def __init__(self, compiled: CompiledModel, backend, prepared, backend_source: str):
        self.compiled = compiled
        self.model = compiled.model
        self.backend = backend
        self.backend_source = backend_source
        self.dimension = compiled.dimension
        self._shape = (compiled.dimension,)
        if prepared is None:  # prepared at the first evaluation (see prepare)
            self._prepared = None
            self.prepare_seconds = None
            self._value = self._prepare_then_value
            self._value_and_gradient = self._prepare_then_value_and_gradient
        else:
            self._install(prepared)

    def _install(self, prepared) -> None:
        self._prepared = prepared
        self.prepare_seconds = prepared.prepare_seconds
        self._value = prepared.value
        self._value_and_gradient = prepared.value_and_gradient

    @property
    def jacobian(self) -> bool:
        """Whether the log density includes the log-Jacobians of the transforms."""
        return self.compiled.jacobian

    def with_jacobian(self, jacobian: bool) -> "LogDensity":
        """The same model and backend with or without the log-Jacobians (``self`` if unchanged).

        The backend is prepared again for the other function (deferred if ``self`` was).
        """
        if bool(jacobian) == self.jacobian:
            return self
        compiled = self.compiled.with_jacobian(jacobian)
        prepared = registry.prepare(compiled, self.backend) if self.is_prepared else None
        return LogDensity(compiled, self.backend, prepared, self.backend_source)

    @property
    def is_prepared(self) -> bool:
        """Whether the backend has been prepared (library imported, function traced/compiled)."""
        return self._prepared is not None

    def prepare(self) -> "LogDensity":
        """Prepare the backend now if that was deferred (``pa.logdensity(..., prepare=False)``).

        Returns
        -------
        LogDensity
            ``self``.
        """
        if self._prepared is None:
            self._install(registry.prepare(self.compiled, self.backend))
        return self

    def _prepare_then_value(self, theta):
        return self.prepare()._value(theta)

    def _prepare_then_value_and_gradient(self, theta):
        return self.prepare()._value_and_gradient(theta)

    def _check(self, theta) -> np.ndarray:
        if (type(theta) is np.ndarray and theta.dtype == np.float64 and theta.shape == self._shape
                and theta.flags.c_contiguous and theta.flags.writeable):
            return theta
        array = np.asarray(theta)
        if array.shape != self._shape:
            raise ValueError(
                f"model '{self.model.name}' (backend '{self.backend.name}'): theta has shape "
                f"{array.shape}, but the log density was prepared for shape {self._shape} "
                f"(parameters: {', '.join(self.site_shapes)})"
            )
        if array.dtype.kind not in "biuf":
            raise TypeError(f"model '{self.model.name}': theta must be numeric, got dtype {array.dtype}")
        # a copy: contiguous and writable (PyTorch refuses negative strides and warns on read-only)
        return np.array(array, dtype=np.float64, order="C")

    def logdensity(self, theta) -> float:
        """Log density at unconstrained ``theta`` (a float; -inf outside the support)."""
        return self._value(self._check(theta))

    def logdensity_and_gradient(self, theta) -> tuple[float, np.ndarray]:
        """Log density and its gradient at ``theta`` (float64 NumPy in and out)."""
        return self._value_and_gradient(self._check(theta))

    def gradient_dict(self, theta) -> dict:
        """The gradient split per site, in the unconstrained shapes."""
        _, gradient = self.logdensity_and_gradient(theta)
        return {name: np.reshape(gradient[s], shape) for name, shape, s in self.compiled.layout()}

    def constrain(self, theta, deterministics: bool = False) -> dict:
        """Model-space values of the parameters (and deterministics) at ``theta``."""
        return self.compiled.constrain(theta, deterministics)

    def unconstrain(self, values: dict, fill=None) -> np.ndarray:
        """The unconstrained vector for a dict of model-space parameter values.

        With ``fill`` (an unconstrained vector), parameters missing from ``values`` keep its
        coordinates; see :meth:`ppl_ad.model.CompiledModel.unconstrain`.
        """
        return self.compiled.unconstrain(values, fill)

    def initial_point(self, rng: np.random.Generator) -> np.ndarray:
        """A starting vector, uniform(-2, 2) in each unconstrained coordinate."""
        return self.compiled.initial_point(rng)

    def non_finite_sites(self, theta, gradient=None) -> list[str]:
        """Sites whose value, log-density term or gradient is not finite at ``theta``."""
        if gradient is None:
            try:
                _, gradient = self.logdensity_and_gradient(theta)
            except Exception:
                gradient = None
        return self.compiled.non_finite_sites(theta, gradient)

    @property
    def site_shapes(self) -> dict:
        """Model-space shapes of the sampled sites."""
        return self.compiled.site_shapes

    @property
    def deterministic_shapes(self) -> dict:
        """Shapes of the deterministic sites."""
        return self.compiled.deterministic_shapes

    def traceable(self):
        """A log density the compiled sampling engine can trace: ``(fn, data)``.

        ``fn(theta, data) -> scalar`` is pure JAX; ``jax.value_and_grad`` of it differentiates
        with this backend's mode. ``data`` holds the model's array data, passed as arguments
        so that compiled programs do not embed them as constants.

        Raises
        ------
        ppl_ad.errors.ConfigError
            The backend cannot be traced (its ``traceable`` trait is False).
        """
        if not getattr(self.backend, "traceable", False):
            from ppl_ad.errors import ConfigError

            raise ConfigError(f"backend '{self.backend.name}' does not provide a traceable log density")
        module = importlib.import_module(self.backend.implementation)
        return module.traceable(self.compiled, self.backend)

    @property
    def data_mode(self) -> str | None:
        """``"arguments"`` or ``"constants"``: how a compiled backend received the data (else None)."""
        return getattr(self._prepared, "data_mode", None)

    def observed_data(self) -> dict:
        """Observed values by site name (NumPy arrays)."""
        return {s.name: np.asarray(s.value) for s in self.compiled.sites.values() if s.kind == "observe"}

    def source(self) -> str:
        """Generated source code, for backends that generate code (the sympy backend)."""
        if self._prepared.source is None:
            raise AttributeError(f"backend '{self.backend.name}' does not generate source code")
        return self._prepared.source

    def __repr__(self) -> str:
        return (
            f"<LogDensity model='{self.model.name}' dimension={self.dimension} "
            f"backend='{self.backend.name}' ({self.backend_source})>"
        )


@checks_keywords
def logdensity(model, backend=None, *, compiled: CompiledModel | None = None, prepare: bool = True,
               jacobian: bool = True) -> LogDensity:
    """Compile ``model`` and prepare an AD backend for it.

    Parameters
    ----------
    model : ppl_ad.model.Model
        A model with its data bound (``my_model(data...)``).
    backend : str or Backend, optional
        ``"jax"``, ``"jax-forward"``, ``"torch"``, ``"autograd"``, ``"finite-difference"``,
        ``"auto"`` or a backend value; None applies the configured precedence.
    prepare : bool, optional
        False defers importing the backend's library and tracing/compiling the log density to
        the first evaluation (or :meth:`LogDensity.prepare`); the backend is still resolved and
        checked to be installed now. ``pa.sample`` uses this when the chains run in worker
        processes, which prepare their own copy, so the parent does not compile one for nothing.
    jacobian : bool, optional
        True (default): the log density of the unconstrained vector, log-Jacobians of the
        constraining transforms included (what samplers need). False: the log density of the
        model-space values at the point the vector maps to, without those terms (its mode is the
        MAP estimate in model space; :func:`ppl_ad.find_MAP` uses it). The gradient comes from
        the same backend either way.

    Returns
    -------
    LogDensity
    """
    from ppl_ad.model.model import Model

    if not isinstance(model, Model):
        raise TypeError(
            f"pa.logdensity needs a model with its data bound (call the @pa.model function with "
            f"its data first), got {model!r}"
        )
    spec, source = resolve_backend(model, backend)
    compiled = compiled.with_jacobian(jacobian) if compiled is not None else compile_model(model, jacobian=jacobian)
    key = spec.strip().lower() if isinstance(spec, str) else None
    if key in _RESOLVERS:
        resolver = _resolver(key)
        chosen, reason = resolver(compiled)
        try:
            ld = logdensity(model, chosen, compiled=compiled, prepare=prepare, jacobian=jacobian)
        except (ModelEvaluationError, BackendCompilationError) as error:
            # e.g. a cached decision that no longer holds: a helper or global the model uses changed
            after_failure = getattr(resolver, "after_failure", None)
            if after_failure is None:
                raise
            chosen, reason = after_failure(compiled, chosen, error)
            ld = logdensity(model, chosen, compiled=compiled, prepare=prepare, jacobian=jacobian)
        return ld._with_source(f"{key} ({reason}); requested by {source}")
    value = registry.get(spec)
    if not prepare:
        registry.check_preparable(value)
        return LogDensity(compiled, value, None, source)
    prepared = registry.prepare(compiled, value)
    return LogDensity(compiled, value, prepared, source)


def _with_source(self, source):
    self.backend_source = source
    return self


LogDensity._with_source = _with_source
