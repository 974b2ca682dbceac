"""Step-size adaptation: dual averaging and the initialisation heuristic.

This module owns

* Nesterov dual averaging of ``log(step_size)`` towards a target mean acceptance
  statistic, exactly as Stan does it (Hoffman & Gelman 2014, section 3.2.1, with
  Stan's defaults ``gamma = 0.05``, ``t0 = 10``, ``kappa = 0.75`` and
  ``mu = log(10 * step_size)``; acceptance statistics above 1 are clipped);
* Stan's heuristic that doubles or halves the step size until the acceptance
  probability of a single leapfrog step crosses 0.8 (``init_stepsize``), used at
  the start of warmup and after every metric update.

References
----------
Hoffman, M. D. & Gelman, A. (2014). The No-U-Turn Sampler. *JMLR* 15,
1593-1623, algorithms 4-6.

Nesterov, Y. (2009). Primal-dual subgradient methods for convex problems.
*Mathematical Programming* 120, 221-259.

Stan Development Team. *Stan Reference Manual*, "Adaptation" (step-size
adaptation).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np

from ppl_ad.errors import SamplingError
from ppl_ad.infer.hmc import HMCState
from ppl_ad.infer.integrators import velocity_verlet
from ppl_ad.infer.metrics import EuclideanMetric

__all__ = [
    "DualAveragingState",
    "dual_averaging_init",
    "dual_averaging_update",
    "dual_averaging_final",
    "find_reasonable_step_size",
]


class DualAveragingState(NamedTuple):
    """State of the dual-averaging step-size adaptation.

    Attributes
    ----------
    log_step_size : float
        ``x``, the log step size to use at the next iteration.
    log_step_size_avg : float
        ``x_bar``, the weighted average of the iterates (the final log step size).
    step : int
        Number of updates since the last restart.
    avg_error : float
        ``s_bar``, running average of ``target - acceptance``.
    mu : float
        Shrinkage point, ``log(10 * step_size)``.
    """

    log_step_size: float
    log_step_size_avg: float
    step: int
    avg_error: float
    mu: float


def dual_averaging_init(step_size: float) -> DualAveragingState:
    """Start (or restart) dual averaging from ``step_size``.

    Parameters
    ----------
    step_size : float
        Current step size; ``mu`` is set to ``log(10 * step_size)``.

    Returns
    -------
    DualAveragingState
    """
    return DualAveragingState(math.log(step_size), 0.0, 0, 0.0, math.log(10.0 * step_size))


def dual_averaging_update(
    state: DualAveragingState,
    acceptance_rate: float,
    target_accept: float = 0.8,
    gamma: float = 0.05,
    t0: float = 10.0,
    kappa: float = 0.75,
) -> DualAveragingState:
    """One dual-averaging update (Stan's ``stepsize_adaptation::learn_stepsize``).

    Parameters
    ----------
    state : DualAveragingState
    acceptance_rate : float
        Acceptance statistic of the last transition (clipped to at most 1;
        NaN counts as 0).
    target_accept : float, optional
        Target mean acceptance statistic ``delta``.
    gamma, t0, kappa : float, optional
        Dual-averaging constants (Stan's defaults).

    Returns
    -------
    DualAveragingState
        ``exp(log_step_size)`` is the step size for the next iteration.
    """
    if not acceptance_rate <= 1.0:
        acceptance_rate = 1.0 if acceptance_rate > 1.0 else 0.0
    step = state.step + 1
    eta = 1.0 / (step + t0)
    avg_error = (1.0 - eta) * state.avg_error + eta * (target_accept - acceptance_rate)
    x = state.mu - avg_error * math.sqrt(step) / gamma
    x_eta = step ** (-kappa)
    x_bar = (1.0 - x_eta) * state.log_step_size_avg + x_eta * x
    return DualAveragingState(x, x_bar, step, avg_error, state.mu)


def dual_averaging_final(state: DualAveragingState) -> float:
    """Step size at the end of adaptation, ``exp(x_bar)``.

    Returns the current iterate ``exp(x)`` when no update was made.
    """
    if state.step == 0:
        return math.exp(state.log_step_size)
    return math.exp(state.log_step_size_avg)


def find_reasonable_step_size(
    logdensity_and_gradient: Callable[[np.ndarray], tuple[float, np.ndarray]],
    state: HMCState,
    metric: EuclideanMetric,
    step_size: float,
    rng: np.random.Generator,
    max_iterations: int = 200,
) -> float:
    """Stan's step-size initialisation heuristic (``base_hmc::init_stepsize``).

    Takes one leapfrog step with a fresh momentum; if the acceptance probability
    ``exp(H0 - H)`` is above 0.8, doubles the step size until it falls below,
    otherwise halves it until it rises above.

    Parameters
    ----------
    logdensity_and_gradient : callable
    state : HMCState
        Current position with its log density and gradient.
    metric : EuclideanMetric
    step_size : float
        Starting step size.
    rng : numpy.random.Generator
        Source of the momenta (one ``standard_normal`` draw per trial).
    max_iterations : int, optional
        Bound on the number of doublings/halvings.

    Returns
    -------
    float
        The new step size.

    Raises
    ------
    SamplingError
        If the step size grows beyond 1e7 (the posterior is probably improper) or
        shrinks to zero.
    """
    if not (0.0 < step_size <= 1e7):
        return step_size
    leapfrog = velocity_verlet(logdensity_and_gradient, metric.velocity)
    kinetic = metric.kinetic_energy
    log_08 = math.log(0.8)

    def delta_h(eps):
        p = metric.sample_momentum(rng)
        H0 = kinetic(p) - state.logdensity
        _, p1, logp1, _ = leapfrog(state.position, p, state.logdensity_grad, eps)
        h = kinetic(p1) - logp1
        if math.isnan(h):
            h = math.inf
        return H0 - h

    direction = 1 if delta_h(step_size) > log_08 else -1
    for _ in range(max_iterations):
        dh = delta_h(step_size)
        if direction == 1 and not dh > log_08:
            break
        if direction == -1 and not dh < log_08:
            break
        step_size = 2.0 * step_size if direction == 1 else 0.5 * step_size
        if step_size > 1e7:
            raise SamplingError(
                "the step size grew beyond 1e7 while looking for a reasonable value: "
                "the posterior is probably improper. Please check the model."
            )
        if step_size == 0.0:
            raise SamplingError(
                "no acceptably small step size could be found: the log density is "
                "probably not continuous or not finite around the current point."
            )
    return step_size
