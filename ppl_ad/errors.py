"""Exception and warning types that users of ppl_ad catch.

Every error raised on bad user input is one of these, and its message names the model,
site, parameter, backend or file at fault.
"""

from __future__ import annotations

__all__ = [
    "PplAdError",
    "ModelError",
    "ModelDefinitionError",
    "ModelEvaluationError",
    "DataError",
    "BackendError",
    "BackendUnavailableError",
    "BackendRemovedError",
    "UnknownBackendError",
    "BackendCompilationError",
    "ConfigError",
    "SamplingError",
    "PplAdDeprecationWarning",
    "SamplingWarning",
]


class PplAdError(Exception):
    """Base class of every error raised by ppl_ad."""


class ModelError(PplAdError):
    """A model is defined or used wrongly."""


class ModelDefinitionError(ModelError, ValueError):
    """The model is malformed: duplicate site names, bad shapes, invalid constants."""


class ModelEvaluationError(ModelError):
    """The model function raised while ppl_ad evaluated it; names model and site."""


class DataError(ModelError, ValueError):
    """Data bound to a model is invalid (unknown name, NaN/inf, bad shape)."""


class BackendError(PplAdError):
    """Base class of the AD-backend errors."""


class UnknownBackendError(BackendError, ValueError):
    """A backend name that is not registered."""


class BackendUnavailableError(BackendError, ImportError):
    """The library behind a backend is not installed."""


class BackendRemovedError(BackendError):
    """The backend was removed after its deprecation window."""


class BackendCompilationError(BackendError):
    """A backend could not prepare a model (e.g. the symbolic expression is too large)."""


class ConfigError(PplAdError, ValueError):
    """Invalid ppl_ad configuration (file, key and value are named)."""


class CheckpointError(PplAdError):
    """A checkpoint belongs to another run (model, data, backend, settings...) or cannot be read."""


class SamplingError(PplAdError, RuntimeError):
    """The sampler could not start or run (e.g. no finite initial point)."""


class PplAdDeprecationWarning(FutureWarning):
    """A ppl_ad feature is deprecated. A FutureWarning, so users see it by default."""


class SamplingWarning(UserWarning):
    """Sampling finished with problems worth a look (divergences, max tree depth)."""
