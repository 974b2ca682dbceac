"""The ``autograd`` backend: HIPS autograd traces the NumPy model on each call (a tape)."""

from __future__ import annotations

import numpy as np

from ppl_ad.backends.base import Prepared


def prepare(compiled, backend) -> Prepared:
    import autograd

    logdensity_fn = compiled.make_logdensity_fn("autograd")
    value_and_grad = autograd.value_and_grad(logdensity_fn)

    def value(theta):
        return float(logdensity_fn(theta))

    def value_and_gradient(theta):
        v, g = value_and_grad(theta)
        return float(v), np.asarray(g, dtype=np.float64)

    return Prepared(value, value_and_gradient)
