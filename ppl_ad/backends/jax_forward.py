"""The ``jax-forward`` backend: forward mode with ``jax.jacfwd`` under ``jax.jit``.

``jacfwd`` pushes one tangent per coordinate (vectorised with ``vmap``), so its cost grows
with the dimension; it wins on models with few parameters. Data enter as arguments, as for
the ``jax`` backend (see :mod:`ppl_ad.backends.jax_reverse`).

For the compiled sampling engine, :func:`traceable` wraps the log density in a
``jax.custom_jvp`` whose derivative is the forward-mode gradient, so that the engine's
``jax.value_and_grad`` computes the gradient in forward mode too.
"""

from __future__ import annotations

from ppl_ad.backends.base import Prepared
from ppl_ad.backends import jax_reverse

__all__ = ["traceable", "prepare"]


def _value_and_jacfwd(fn):
    import jax

    def both(theta):
        value = fn(theta)
        return value, value

    def value_and_grad(theta):
        gradient, value = jax.jacfwd(both, has_aux=True)(theta)
        return value, gradient

    return value_and_grad


def traceable(compiled, backend=None):
    """Like :func:`ppl_ad.backends.jax_reverse.traceable`, differentiated in forward mode."""
    import jax
    import jax.numpy as jnp

    fn, data = jax_reverse.traceable(compiled, backend)

    def forward_fn(theta, data):
        @jax.custom_jvp
        def f(t):
            return fn(t, data)

        @f.defjvp
        def f_jvp(primals, tangents):
            value, gradient = _value_and_jacfwd(lambda t: fn(t, data))(primals[0])
            return value, jnp.dot(gradient, tangents[0])

        return f(theta)

    return forward_fn, data


def prepare(compiled, backend) -> Prepared:
    return jax_reverse.wrap(compiled, *jax_reverse.jitted_functions(compiled, _value_and_jacfwd))
