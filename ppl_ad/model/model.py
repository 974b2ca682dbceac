"""The ``@model`` decorator and the ``Model`` object (a model function with its data bound).

``@pa.model`` turns a function into a :class:`ModelFunction`; calling it with data returns a
:class:`Model`. The model's name (the function's name or ``@pa.model(name=...)``) identifies
it for per-model configuration. Models pickle by reference to their module-level function,
so parallel chains can rebuild them in worker processes.
"""

from __future__ import annotations

import functools
import importlib
import inspect

import numpy as np

from ppl_ad.errors import DataError

__all__ = ["model", "ModelFunction", "Model"]


class ModelFunction:
    """A model function awaiting its data. Call it with the data to get a :class:`Model`.

    Parameters
    ----------
    fn : callable
        The function that calls ``pa.sample`` / ``pa.observe`` / ...
    name : str, optional
        Model name (defaults to ``fn.__name__``).
    backend : str or Backend, optional
        Preferred AD backend for this model (see "Choosing an AD backend").
    """

    def __init__(self, fn, name: str | None = None, backend=None):
        if not callable(fn):
            raise TypeError(f"@pa.model needs a function, got {fn!r}")
        self.fn = fn
        self.name = name or fn.__name__
        self.backend = backend
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs) -> "Model":
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as error:
            accepted = ", ".join(self.signature.parameters) or "no arguments"
            unknown = [k for k in kwargs if k not in self.signature.parameters]
            what = f"unknown data {unknown}" if unknown else str(error)
            raise DataError(f"model '{self.name}': {what}; it accepts: {accepted}") from None
        bound.apply_defaults()
        return Model(self, dict(bound.arguments))

    def __reduce__(self):
        return (_load_model_function, (self.fn.__module__, self.fn.__qualname__))

    def __repr__(self) -> str:
        return f"<ppl_ad model function '{self.name}'>"


def _load_model_function(module: str, qualname: str):
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _as_data(value):
    """Bound data as every backend takes them: numeric lists and tuples (nested too) and pandas
    objects (``Series``, ``DataFrame``, ``Index``: ``to_numpy()``, as ``pm.Data`` does) become
    NumPy arrays, and floats of less than double precision become float64 (ppl_ad computes in
    float64; a float32 scale would otherwise make JAX evaluate part of the density in float32).
    Anything else (strings, ragged lists, objects the model uses itself) is bound as given."""
    if type(value).__module__.partition(".")[0] == "pandas" and hasattr(value, "to_numpy"):
        array = value.to_numpy()
        if array.dtype.kind in "biuf":
            value = array
    elif isinstance(value, (list, tuple)) and value:
        try:
            array = np.asarray(value)
        except (ValueError, TypeError):  # ragged, or not array-like
            return value
        if array.dtype.kind in "biuf":
            value = array
    if isinstance(value, (np.ndarray, np.floating)) and value.dtype.kind == "f" and value.dtype.itemsize < 8:
        value = np.asarray(value, dtype=np.float64) if isinstance(value, np.ndarray) else np.float64(value)
    return value


class Model:
    """A model function with its data bound; what ``pa.logdensity`` and ``pa.sample`` take.

    Attributes
    ----------
    name : str
        The model's name.
    data : dict
        The bound arguments (lists of numbers become NumPy arrays).
    """

    def __init__(self, function: ModelFunction, data: dict):
        self.function = function
        self.data = {key: _as_data(value) for key, value in data.items()}

    @property
    def name(self) -> str:
        return self.function.name

    @property
    def backend(self):
        """The backend requested by ``@pa.model(backend=...)``, or None."""
        return self.function.backend

    def run(self, data: dict | None = None):
        """Call the model function with its data (or ``data``) under the active handler."""
        return self.function.fn(**(self.data if data is None else data))

    def __reduce__(self):
        return (Model, (self.function, self.data))

    def __repr__(self) -> str:
        return f"<ppl_ad Model '{self.name}' data={sorted(self.data)}>"


def model(fn=None, *, name: str | None = None, backend=None):
    """Decorate a model function: ``@pa.model`` or ``@pa.model(name=..., backend=...)``.

    Examples
    --------
    >>> import ppl_ad as pa
    >>> from ppl_ad import dist
    >>> @pa.model
    ... def coin(heads, n):
    ...     p = pa.sample("p", dist.Beta(1.0, 1.0))
    ...     pa.observe("heads", dist.Binomial(n, p), heads)
    >>> m = coin(heads=7, n=10)
    >>> pa.logdensity(m, backend="finite-difference").dimension
    1
    """
    if fn is None:
        return lambda f: ModelFunction(f, name=name, backend=backend)
    return ModelFunction(fn, name=name, backend=backend)
