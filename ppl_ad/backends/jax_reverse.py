"""The ``jax`` backend: reverse mode, ``jax.value_and_grad`` under ``jax.jit`` in float64.

The whole log density (model, transforms, Jacobians) is traced once into one XLA program;
each call then costs the dispatch plus the compiled gradient.

**Large data are arguments, small data constants.** A NumPy array bound to the model of at
least :data:`ARGUMENT_MIN_BYTES` enters the compiled function as an argument, so XLA does not
fold it into the program: with 10^6 x 100 data, folding them as constants took 35 s and 6.7x
the data's memory to compile. Smaller arrays stay constants, because XLA then precomputes what
depends on data alone (``gammaln(y + 1)`` of a Poisson likelihood, a Cholesky factor's log
determinant): measured per gradient, the hierarchical Poisson model took 54 µs with its data as
constants and 190 µs with them as arguments. A model that computes on its data with NumPy
inside the model (``np.square(x[:, None] - x)``) cannot take them as tracers; it is traced again
with all its data as constants. ``LogDensity.data_mode`` says which: ``"arguments"`` (some
arrays are arguments) or ``"constants"``.

This module also hands the compiled sampling engine (:mod:`ppl_ad.infer.jax_engine`) a
*traceable* log density, ``fn(theta, data) -> scalar`` with its data (:func:`traceable`).
Both trace the density through :func:`ppl_ad.backends._jax_rewrites.simplify`, which rewrites
``log(exp(x))`` and its relatives (``Poisson(M.exp(eta))``, ``Bernoulli(M.sigmoid(eta))``) before
JAX differentiates them.
"""

from __future__ import annotations

import numpy as np

from ppl_ad.backends._jax_rewrites import simplify
from ppl_ad.backends.base import Prepared

__all__ = ["traceable", "prepare", "split_data", "ARGUMENT_MIN_BYTES"]

#: the errors JAX raises when a model needs the concrete value of a traced array
_TRACER_ERRORS = (
    "TracerArrayConversionError", "TracerBoolConversionError", "TracerIntegerConversionError",
    "ConcretizationTypeError", "NonConcreteBooleanIndexError",
)


def _needs_concrete_data(error: BaseException) -> bool:
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if type(error).__name__ in _TRACER_ERRORS:
            return True
        error = error.__cause__ or error.__context__
    return False


#: numeric arrays of at least this many bytes are passed to compiled programs as arguments
ARGUMENT_MIN_BYTES = 4 * 2**20


def split_data(data: dict) -> tuple[dict, dict]:
    """``(arrays, rest)``: the large numeric arrays that become arguments, and the rest."""
    arrays = {
        k: v for k, v in data.items()
        if isinstance(v, np.ndarray) and v.ndim >= 1 and v.dtype.kind in "biuf" and v.nbytes >= ARGUMENT_MIN_BYTES
    }
    return arrays, {k: v for k, v in data.items() if k not in arrays}


def traceable(compiled, backend=None):
    """A log density JAX can trace, with the model's array data as an argument.

    Parameters
    ----------
    compiled : ppl_ad.model.compiled.CompiledModel
    backend : Backend, optional

    Returns
    -------
    fn : callable
        ``fn(theta, data) -> scalar`` (pure; ``jax.value_and_grad`` differentiates it).
    data : dict
        The data to pass as ``data`` (NumPy arrays; empty when the model needs its data as
        constants, see the module docstring).
    """
    import jax

    from ppl_ad.config import enable_compilation_cache

    jax.config.update("jax_enable_x64", True)
    enable_compilation_cache()
    arrays, rest = split_data(compiled.model.data)

    def fn(theta, data):
        return compiled.make_logdensity_fn("jax", data={**rest, **data})(theta)

    if arrays:
        try:
            jax.eval_shape(fn, jax.ShapeDtypeStruct((compiled.dimension,), np.float64), arrays)
        except Exception as error:  # noqa: BLE001 - only the "needs concrete data" kind falls back
            if not _needs_concrete_data(error):
                raise
            everything = compiled.model.data

            def fn(theta, data):  # noqa: F811 - the constants version
                return compiled.make_logdensity_fn("jax", data=everything)(theta)

            arrays = {}
    return simplify(fn), arrays


def jitted_functions(compiled, transform):
    """Jitted ``(value_fn, value_and_grad_fn, data)``; both take ``(theta, data)``.

    ``transform`` builds the value-and-gradient function from ``fn(theta)``.
    """
    import jax

    fn, data = traceable(compiled)

    def value_and_grad(theta, data):
        return transform(lambda t: fn(t, data))(theta)

    return jax.jit(fn), jax.jit(value_and_grad), jax.device_put(data)


def wrap(compiled, value_fn, value_and_grad_fn, data) -> Prepared:
    """Wrap jitted JAX functions into float64 NumPy in/out callables and compile them once."""

    def value(theta):
        return float(value_fn(theta, data))

    def value_and_gradient(theta):
        v, g = value_and_grad_fn(theta, data)
        return float(v), np.array(g)  # a writable copy, as the other backends return

    warm = np.zeros(compiled.dimension)
    value_and_gradient(warm)
    prepared = Prepared(value, value_and_gradient)
    prepared.data_mode = "arguments" if data else "constants"
    return prepared


def prepare(compiled, backend) -> Prepared:
    import jax

    return wrap(compiled, *jitted_functions(compiled, jax.value_and_grad))
