"""The velocity-Verlet (leapfrog) integrator for Hamiltonian dynamics.

This module owns one integration step of ``H(q, p) = -log pi(q) + K(p)``::

    p_half = p + eps/2 * grad log pi(q)
    q'     = q + eps * M^{-1} p_half
    p'     = p_half + eps/2 * grad log pi(q')

It is symplectic and time-reversible, with a global energy error of order
``eps^2``. A failure of the log-density callable (``ArithmeticError`` such as
``FloatingPointError``/``OverflowError``, or ``ValueError``) is reported as a
log density of ``-inf`` so that the samplers treat it as a divergence.

References
----------
Betancourt, M. (2017). *A Conceptual Introduction to Hamiltonian Monte Carlo*,
section 5.1 (symplectic integrators). arXiv:1701.02434.

Stan Development Team. *Stan Reference Manual*, "HMC algorithm parameters"
(leapfrog integrator).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

__all__ = ["velocity_verlet", "EVALUATION_ERRORS"]

#: Exceptions from the log-density callable that count as a divergence.
EVALUATION_ERRORS = (ArithmeticError, ValueError)

_NEG_INF = -math.inf


def velocity_verlet(
    logdensity_and_gradient: Callable[[np.ndarray], tuple[float, np.ndarray]],
    velocity: Callable[[np.ndarray], np.ndarray],
):
    """Build a leapfrog step.

    Parameters
    ----------
    logdensity_and_gradient : callable
        ``theta -> (log density, gradient)``.
    velocity : callable
        ``p -> M^{-1} p`` (see :mod:`ppl_ad.infer.metrics`).

    Returns
    -------
    callable
        ``step(position, momentum, logdensity_grad, step_size) ->
        (position, momentum, logdensity, logdensity_grad)``. The inputs are not
        modified; new arrays are returned. ``step_size`` may be negative
        (integration backwards in time). If the log density callable raises one of
        :data:`EVALUATION_ERRORS`, the returned log density is ``-inf``.
    """

    def step(position, momentum, logdensity_grad, step_size):
        half = 0.5 * step_size
        momentum = momentum + half * logdensity_grad
        position = position + step_size * velocity(momentum)
        try:
            logdensity, logdensity_grad = logdensity_and_gradient(position)
        except EVALUATION_ERRORS:
            return position, momentum, _NEG_INF, logdensity_grad
        return position, momentum + half * logdensity_grad, float(logdensity), logdensity_grad

    return step
