"""Static Hamiltonian Monte Carlo with a jittered number of integration steps.

This module owns the chain state shared by the samplers (:class:`HMCState`) and
the static HMC transition: draw a momentum, take ``num_steps`` leapfrog steps,
and accept the end point with probability ``min(1, exp(H0 - H))``.

The number of steps is ``round(path_length / step_size)`` (at least 1, at most
``max_num_steps``), jittered at each iteration uniformly over the integers in
``[floor(0.9 n), ceil(1.1 n)]`` (at least 1), see :func:`jittered_num_steps`.
Jittering the integration time avoids the periodic, non-ergodic trajectories a
fixed path length can produce (Neal 2011, section 5.4.2.3; Stan jitters the
step size instead). As with NUTS, a trajectory whose energy error exceeds
``max_energy_error`` or becomes non-finite is a divergence and is rejected.

References
----------
Neal, R. M. (2011). MCMC using Hamiltonian dynamics. *Handbook of Markov Chain
Monte Carlo*, ch. 5.

Betancourt, M. (2017). *A Conceptual Introduction to Hamiltonian Monte Carlo*.
arXiv:1701.02434.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np

from ppl_ad.infer.integrators import velocity_verlet
from ppl_ad.infer.metrics import EuclideanMetric

__all__ = ["HMCState", "HMCInfo", "build_kernel", "jittered_num_steps"]


class HMCState(NamedTuple):
    """Position of a chain with its log density and gradient there.

    Attributes
    ----------
    position : numpy.ndarray
        Point on the unconstrained space (1-D, float64).
    logdensity : float
        Log density at ``position``.
    logdensity_grad : numpy.ndarray
        Gradient of the log density at ``position``.
    """

    position: np.ndarray
    logdensity: float
    logdensity_grad: np.ndarray


class HMCInfo(NamedTuple):
    """Diagnostics of one static HMC transition.

    Attributes
    ----------
    acceptance_rate : float
        ``min(1, exp(H0 - H))`` of the proposal (0 for a divergence).
    is_accepted : bool
        Whether the proposal was accepted.
    is_divergent : bool
        Energy error above ``max_energy_error`` or non-finite.
    energy : float
        Hamiltonian at the returned state (with the momentum it had there).
    energy_error : float
        ``H(returned state) - H0``.
    num_integration_steps : int
        Leapfrog steps taken.
    """

    acceptance_rate: float
    is_accepted: bool
    is_divergent: bool
    energy: float
    energy_error: float
    num_integration_steps: int


def jittered_num_steps(path_length: float, step_size: float, uniform: float, max_num_steps: int = 1024) -> int:
    """Number of leapfrog steps for one static-HMC iteration.

    Parameters
    ----------
    path_length : float
        Nominal integration time.
    step_size : float
        Current step size.
    uniform : float
        A uniform(0, 1) draw choosing among the jittered values.
    max_num_steps : int, optional
        Upper bound on the (nominal and jittered) number of steps.

    Returns
    -------
    int
        A number uniformly distributed over the integers in
        ``[max(1, floor(0.9 n)), max(lo, ceil(1.1 n))]``, ``n`` the nominal number
        ``round(path_length / step_size)`` clipped to ``[1, max_num_steps]``.
    """
    ratio = path_length / step_size
    nominal = max(1, min(max_num_steps, int(round(ratio)) if math.isfinite(ratio) else max_num_steps))
    low = max(1, math.floor(0.9 * nominal))
    high = min(max_num_steps, max(low, math.ceil(1.1 * nominal)))
    return low + min(int(uniform * (high - low + 1)), high - low)


def build_kernel(
    logdensity_and_gradient: Callable[[np.ndarray], tuple[float, np.ndarray]],
    metric: EuclideanMetric,
    *,
    max_energy_error: float = 1000.0,
):
    """Build a static HMC transition.

    Parameters
    ----------
    logdensity_and_gradient : callable
        ``theta -> (log density, gradient)``.
    metric : EuclideanMetric
        Kinetic energy (see :mod:`ppl_ad.infer.metrics`).
    max_energy_error : float, optional
        Energy error above which a trajectory is divergent.

    Returns
    -------
    callable
        ``kernel(state, step_size, momentum, num_steps, uniform) -> (HMCState,
        HMCInfo)``; ``uniform`` is a uniform(0, 1) float for the accept step.
    """
    velocity = metric.velocity
    leapfrog = velocity_verlet(logdensity_and_gradient, velocity)

    def kernel(state: HMCState, step_size: float, momentum: np.ndarray, num_steps: int, uniform: float):
        q0, logp0, g0 = state
        H0 = 0.5 * float(momentum.dot(velocity(momentum))) - logp0
        q, p, logp, g = q0, momentum, logp0, g0
        n = 0
        for n in range(1, num_steps + 1):
            q, p, logp, g = leapfrog(q, p, g, step_size)
            if not math.isfinite(logp):
                break
        h = 0.5 * float(p.dot(velocity(p))) - logp
        energy_error = h - H0
        if not (energy_error <= max_energy_error):  # also catches NaN
            info = HMCInfo(0.0, False, True, H0, 0.0, n)
            return state, info
        acceptance_rate = 1.0 if energy_error <= 0.0 else math.exp(-energy_error)
        if uniform < acceptance_rate:
            return HMCState(q, logp, g), HMCInfo(acceptance_rate, True, False, h, energy_error, n)
        return state, HMCInfo(acceptance_rate, False, False, H0, 0.0, n)

    return kernel
