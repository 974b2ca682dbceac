"""Backend values: small immutable descriptions of an AD backend (the ADTypes idea).

A backend value holds only configuration (``JAX()``, ``FiniteDifference(step=1e-4)``) plus
class-level traits: ``name``, ``mode`` (reverse / forward / tape / source-transform /
reference), ``library``, the pip ``extra`` that installs it, and its support ``status``
(supported / experimental / reference / deprecated / removed; ``reference`` marks a backend
kept to check the others, never to sample with). Code asks these traits, never the
concrete type. The implementation of each backend is one module of this package with the
same contract (see :mod:`ppl_ad.backends.registry`), imported only when it is prepared.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "Backend", "JAX", "JAXForward", "Torch", "TorchForward", "Autograd", "FiniteDifference",
    "SymPy", "SUPPORTED", "EXPERIMENTAL", "REFERENCE", "DEPRECATED", "REMOVED", "STATUSES", "Prepared",
]

SUPPORTED = "supported"
EXPERIMENTAL = "experimental"
#: a reference implementation for tests and ``check_gradients``: correct but slow, never for sampling
REFERENCE = "reference"
DEPRECATED = "deprecated"
REMOVED = "removed"
STATUSES = (SUPPORTED, EXPERIMENTAL, REFERENCE, DEPRECATED, REMOVED)


@dataclass(frozen=True)
class Backend:
    """Base class of backend values. Subclasses set the class-level traits."""

    name: ClassVar[str]
    mode: ClassVar[str]
    library: ClassVar[str]  # the import name of the library
    distribution: ClassVar[str]  # the PyPI distribution name (for versions)
    extra: ClassVar[str]  # pip extra: ppl_ad[extra]
    implementation: ClassVar[str]  # module with is_available / prepare
    status: ClassVar[str] = SUPPORTED
    #: whether the implementation module hands over a log density JAX can trace
    #: (``traceable(compiled, backend) -> (fn(theta, data), data)``), so that the compiled
    #: sampling engine can run it
    traceable: ClassVar[bool] = False

    def is_available(self) -> bool:
        """Whether the backend's library is importable (checked without importing it)."""
        return all(importlib.util.find_spec(lib) is not None for lib in self.library.split("+"))

    def library_version(self) -> str | None:
        """Installed version of the backend's library, or None when not installed."""
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None

    def __repr__(self) -> str:
        options = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != f.default
        ]
        return f"{type(self).__name__}({', '.join(options)})"

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class JAX(Backend):
    """Reverse mode: ``jax.value_and_grad`` under ``jax.jit``, float64."""

    name: ClassVar[str] = "jax"
    mode: ClassVar[str] = "reverse"
    library: ClassVar[str] = "jax"
    distribution: ClassVar[str] = "jax"
    extra: ClassVar[str] = "jax"
    implementation: ClassVar[str] = "ppl_ad.backends.jax_reverse"
    traceable: ClassVar[bool] = True


@dataclass(frozen=True)
class JAXForward(Backend):
    """Forward mode: ``jax.jacfwd`` (one JVP per dimension, vectorised) under ``jax.jit``."""

    name: ClassVar[str] = "jax-forward"
    mode: ClassVar[str] = "forward"
    library: ClassVar[str] = "jax"
    distribution: ClassVar[str] = "jax"
    extra: ClassVar[str] = "jax"
    implementation: ClassVar[str] = "ppl_ad.backends.jax_forward"
    traceable: ClassVar[bool] = True


@dataclass(frozen=True)
class Torch(Backend):
    """Tape: PyTorch autograd records the model on each call, then ``backward()``."""

    name: ClassVar[str] = "torch"
    mode: ClassVar[str] = "tape"
    library: ClassVar[str] = "torch"
    distribution: ClassVar[str] = "torch"
    extra: ClassVar[str] = "torch"
    implementation: ClassVar[str] = "ppl_ad.backends.torch_tape"
    num_threads: int | None = 1


@dataclass(frozen=True)
class TorchForward(Backend):
    """Forward mode with ``torch.func.jacfwd`` (experimental: slow for more than a few parameters)."""

    name: ClassVar[str] = "torch-forward"
    mode: ClassVar[str] = "forward"
    library: ClassVar[str] = "torch"
    distribution: ClassVar[str] = "torch"
    extra: ClassVar[str] = "torch"
    implementation: ClassVar[str] = "ppl_ad.backends.torch_forward"
    status: ClassVar[str] = EXPERIMENTAL
    num_threads: int | None = 1


@dataclass(frozen=True)
class Autograd(Backend):
    """Tape: HIPS autograd's ``value_and_grad`` (traces the NumPy model on each call)."""

    name: ClassVar[str] = "autograd"
    mode: ClassVar[str] = "tape"
    library: ClassVar[str] = "autograd"
    distribution: ClassVar[str] = "autograd"
    extra: ClassVar[str] = "autograd"
    implementation: ClassVar[str] = "ppl_ad.backends.autograd_tape"


@dataclass(frozen=True)
class FiniteDifference(Backend):
    """Reference: 5-point central differences on the NumPy log density (tests only, never a default).

    ``step`` is relative: the step for coordinate ``i`` is ``step * max(1, |theta_i|)``.
    """

    name: ClassVar[str] = "finite-difference"
    mode: ClassVar[str] = "reference"
    library: ClassVar[str] = "numpy"
    distribution: ClassVar[str] = "numpy"
    extra: ClassVar[str] = ""
    implementation: ClassVar[str] = "ppl_ad.backends.finite_difference"
    status: ClassVar[str] = REFERENCE
    step: float = 1e-3


@dataclass(frozen=True)
class SymPy(Backend):
    """Source transform (deprecated): SymPy differentiates the log density symbolically and
    generates NumPy code with common-subexpression elimination."""

    name: ClassVar[str] = "sympy"
    mode: ClassVar[str] = "source-transform"
    library: ClassVar[str] = "sympy"
    distribution: ClassVar[str] = "sympy"
    extra: ClassVar[str] = "sympy"
    implementation: ClassVar[str] = "ppl_ad.backends.sympy_source"
    status: ClassVar[str] = DEPRECATED
    max_operations: int = 2_000


class Prepared:
    """What a backend's ``prepare`` returns: value and gradient on float64 NumPy vectors.

    Attributes
    ----------
    value : callable
        ``value(theta) -> float``.
    value_and_gradient : callable
        ``value_and_gradient(theta) -> (float, numpy.ndarray)``.
    prepare_seconds : float
        Time spent preparing (tracing, compiling).
    """

    def __init__(self, value, value_and_gradient, prepare_seconds: float = 0.0, source=None):
        self.value = value
        self.value_and_gradient = value_and_gradient
        self.prepare_seconds = prepare_seconds
        self.source = source
