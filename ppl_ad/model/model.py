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


def _numeric_objects(array: np.ndarray, where: str) -> np.ndarray:
    """An object array (``df.values`` of a mixed DataFrame, ``np.array(..., dtype=object)``) whose
    entries are all numbers, as a numeric array; with numbers and ``None``, a :class:`DataError`
    (missing values); anything else unchanged."""
    try:
        converted = np.array(array.tolist())
    except (ValueError, TypeError):  # ragged
        return array
    if converted.shape == array.shape and converted.dtype.kind in "biuf":
        return converted
    if converted.dtype.kind == "O":
        missing = np.flatnonzero(np.equal(array, None).ravel())
        if missing.size and np.array(np.delete(array.ravel(), missing).tolist()).dtype.kind in "biuf":
            raise DataError(
                f"{where}: an object array with {missing.size} None entries (first at flat index {missing[0]}); "
                "ppl_ad does not impute missing values: drop them (with the matching rows of the covariates) or "
                "model them as parameters")
    return array


def _as_data(value, model_name: str = "?", name: str = "?"):
    """Bound data as every backend takes them: numeric lists and tuples (nested too), pandas
    objects (``Series``, ``DataFrame``, ``Index``: ``to_numpy()``, as ``pm.Data`` does), xarray
    ``DataArray``s, JAX arrays, PyTorch tensors and object arrays of numbers become NumPy arrays,
    and floats of less than
    double precision become float64 (ppl_ad computes in float64; a float32 scale would otherwise
    make JAX evaluate part of the density in float32). Anything else (strings, ragged lists,
    objects the model uses itself) is bound as given.

    Raises
    ------
    DataError
        A masked array with masked entries, an object array of numbers and ``None``, a DataFrame
        with non-numeric columns, or an xarray
        ``Dataset``: their missing values or mixed columns would otherwise reach the backends
        unchecked (pandas and xarray reductions skip NaN, so a tape backend dropped those rows).
    """
    library = type(value).__module__.partition(".")[0]
    where = f"model '{model_name}', argument '{name}'"
    if isinstance(value, np.ma.MaskedArray):
        if np.ma.is_masked(value):
            raise DataError(
                f"{where}: a masked array with {int(np.ma.count_masked(value))} masked entries; ppl_ad does not "
                "impute missing values: drop them (y.compressed(), with the matching rows of the covariates) or "
                "model them as parameters (not y.filled(): the fill value would be taken as data)")
        value = np.asarray(value.data)
    elif library in ("pandas", "xarray") and type(value).__name__ == "Dataset":
        raise DataError(
            f"{where}: an xarray Dataset is not converted; pass its variables as arrays "
            "(ds['x'].to_numpy()) or as a dict of arrays")
    elif library in ("pandas", "xarray") and hasattr(value, "to_numpy"):
        array = value.to_numpy()
        if array.dtype.kind == "O":
            array = _numeric_objects(array, where)
        if array.dtype.kind in "biuf":
            value = array
        elif type(value).__name__ == "DataFrame":
            columns = [str(c) for c, kind in zip(value.columns, value.dtypes) if getattr(kind, "kind", "O") not in "biuf"]
            raise DataError(
                f"{where}: the DataFrame has non-numeric columns {columns}; bind the numeric columns "
                "(df[['x', 'y']], or each column as its own argument), with categories as integer codes")
    elif library in ("jax", "jaxlib") and hasattr(value, "__array__"):
        value = np.asarray(value)
    elif library == "torch" and hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    elif isinstance(value, np.ndarray) and value.dtype.kind == "O":
        value = _numeric_objects(value, where)
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
        self.data = {key: _as_data(value, function.name, key) for key, value in data.items()}

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
