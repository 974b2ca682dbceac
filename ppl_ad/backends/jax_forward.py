"""The ``jax-forward`` backend: forward mode with ``jax.jacfwd`` under ``jax.jit``.

``jacfwd`` pushes one tangent per coordinate (vectorised with ``vmap``), so its cost grows
with the dimension; it wins on models with few parameters.
"""

from __future__ import annotations

from ppl_ad.backends.base import Prepared
from ppl_ad.backends.jax_reverse import jitted_functions, wrap


def _value_and_jacfwd(fn):
    import jax

    def both(theta):
        value = fn(theta)
        return value, value

    def value_and_grad(theta):
        gradient, value = jax.jacfwd(both, has_aux=True)(theta)
        return value, gradient

    return value_and_grad


def prepare(compiled, backend) -> Prepared:
    return wrap(compiled, *jitted_functions(compiled, _value_and_jacfwd))
