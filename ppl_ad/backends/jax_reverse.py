"""The ``jax`` backend: reverse mode, ``jax.value_and_grad`` under ``jax.jit`` in float64.

The whole log density (model, transforms, Jacobians) is traced once into one XLA program;
each call then costs the dispatch plus the compiled gradient.
"""

from __future__ import annotations

import numpy as np

from ppl_ad.backends.base import Prepared


def jitted_functions(compiled, transform):
    """Return jitted ``(value_fn, value_and_grad_fn)``; ``transform`` builds the gradient."""
    import jax

    jax.config.update("jax_enable_x64", True)
    logdensity_fn = compiled.make_logdensity_fn("jax")
    return jax.jit(logdensity_fn), jax.jit(transform(logdensity_fn))


def wrap(compiled, value_fn, value_and_grad_fn) -> Prepared:
    """Wrap jitted JAX functions into float64 NumPy in/out callables and compile them once."""
    import jax

    def value(theta):
        return float(value_fn(theta))

    def value_and_gradient(theta):
        v, g = jax.device_get(value_and_grad_fn(theta))
        return float(v), g

    warm = np.zeros(compiled.dimension)
    value_and_gradient(warm)
    value(warm)
    return Prepared(value, value_and_gradient)


def prepare(compiled, backend) -> Prepared:
    import jax

    return wrap(compiled, *jitted_functions(compiled, jax.value_and_grad))
