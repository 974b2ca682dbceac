"""The ``finite-difference`` reference backend: 5-point central differences with NumPy.

For tests and :func:`ppl_ad.check_gradients` only (it costs ``4 d + 1`` log-density
evaluations per gradient): its status is ``reference``, and sampling with it gets the warning of
:func:`ppl_ad.backends.registry.sampling_warning`. The 5-point stencil has truncation error ``O(h^4)``, so with the
default relative step ``h = 1e-3`` it agrees with exact gradients to about 1e-9 relative.
"""

from __future__ import annotations

import numpy as np

from ppl_ad.backends.base import Prepared


def gradient(fn, theta: np.ndarray, step: float) -> np.ndarray:
    """5-point central-difference gradient of scalar ``fn`` at ``theta``."""
    theta = np.asarray(theta, dtype=np.float64)
    out = np.empty_like(theta)
    x = theta.copy()
    for i in range(theta.size):
        h = step * max(1.0, abs(theta[i]))
        values = []
        for k in (-2, -1, 1, 2):
            x[i] = theta[i] + k * h
            values.append(float(fn(x)))
        x[i] = theta[i]
        out[i] = (values[0] - 8.0 * values[1] + 8.0 * values[2] - values[3]) / (12.0 * h)
    return out


def prepare(compiled, backend) -> Prepared:
    logdensity_fn = compiled.make_logdensity_fn("numpy")

    def value(theta):
        with np.errstate(all="ignore"):
            return float(logdensity_fn(theta))

    def value_and_gradient(theta):
        with np.errstate(all="ignore"):
            return float(logdensity_fn(theta)), gradient(logdensity_fn, theta, backend.step)

    return Prepared(value, value_and_gradient)
