"""Stan's windowed warmup: when to adapt the step size and the metric.

This module owns the warmup schedule and the combined adaptation state.

Schedule (Stan defaults, for ``num_warmup`` iterations):

* an initial fast buffer of 75 iterations (step size only);
* slow windows, the first of 25 iterations, each following one twice as long;
  the last slow window is stretched to the start of the terminal buffer when the
  next one would not fit; at the end of each window the inverse metric is
  replaced by the regularised (co)variance of the window's draws, the step size
  is re-initialised with the heuristic and dual averaging restarts with
  ``mu = log(10 * step_size)``;
* a terminal fast buffer of 50 iterations (step size only).

If ``75 + 25 + 50 > num_warmup`` the buffers become 15 % / 75 % / 10 % of warmup,
as in Stan; below 20 warmup iterations the metric is not adapted. Dual averaging
runs at every warmup iteration; after warmup the step size is ``exp(x_bar)``.

References
----------
Stan Development Team. *Stan Reference Manual*, "Adaptation" (HMC algorithm
parameters: "Automatic parameter tuning", warmup windows);
``stan::mcmc::windowed_adaptation``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ppl_ad.errors import SamplingError
from ppl_ad.infer.adaptation.mass_matrix import (
    WelfordState,
    fisher_diagonal,
    regularized_covariance,
    welford_init,
    welford_update,
)
from ppl_ad.infer.adaptation.step_size import (
    DualAveragingState,
    dual_averaging_final,
    dual_averaging_init,
    dual_averaging_update,
)

__all__ = [
    "WindowAdaptationState",
    "build_schedule",
    "window_adaptation_init",
    "window_adaptation_update",
    "window_adaptation_restart_step_size",
    "window_adaptation_final",
    "welford_width",
]


class WindowAdaptationState(NamedTuple):
    """State of the windowed warmup.

    Attributes
    ----------
    step_size : float
        Step size to use at the next iteration.
    inverse_mass_matrix : numpy.ndarray
        Current inverse metric (1-D diag or 2-D dense).
    dual_averaging : DualAveragingState
    welford : WelfordState
        Moments of the current slow window.
    """

    step_size: float
    inverse_mass_matrix: np.ndarray
    dual_averaging: DualAveragingState
    welford: WelfordState


def build_schedule(
    num_warmup: int,
    initial_buffer: int = 75,
    first_window: int = 25,
    final_buffer: int = 50,
) -> list[tuple[bool, bool]]:
    """Stan's warmup schedule.

    Parameters
    ----------
    num_warmup : int
        Number of warmup iterations.
    initial_buffer, first_window, final_buffer : int, optional
        Stan's ``init_buffer``, ``window`` and ``term_buffer``.

    Returns
    -------
    list of (bool, bool)
        For each warmup iteration: whether its draw enters the metric estimate
        (slow window), and whether the metric is updated after it (window end).

    Examples
    --------
    >>> s = build_schedule(1000)
    >>> [i for i, (_, end) in enumerate(s) if end]
    [99, 149, 249, 449, 949]
    """
    num_warmup = int(num_warmup)
    schedule = [(False, False)] * num_warmup
    if num_warmup < 20:
        return schedule
    if initial_buffer + first_window + final_buffer > num_warmup:
        initial_buffer = int(0.15 * num_warmup)
        final_buffer = int(0.1 * num_warmup)
        first_window = num_warmup - (initial_buffer + final_buffer)
    slow_end = num_warmup - final_buffer  # first iteration of the terminal buffer
    window_size = first_window
    next_window_end = initial_buffer + window_size - 1
    for i in range(num_warmup):
        in_slow = initial_buffer <= i < slow_end
        is_end = in_slow and i == next_window_end
        if is_end and next_window_end != slow_end - 1:
            window_size *= 2
            next_window_end = i + window_size
            if next_window_end + 2 * window_size >= slow_end:
                next_window_end = slow_end - 1
        schedule[i] = (in_slow, is_end)
    return schedule


def window_adaptation_init(step_size: float, inverse_mass_matrix: np.ndarray,
                           estimator: str = "stan") -> WindowAdaptationState:
    """Start warmup.

    Parameters
    ----------
    step_size : float
        Initial step size (after the initialisation heuristic).
    inverse_mass_matrix : numpy.ndarray
        Initial inverse metric; 1-D for a diagonal metric, 2-D for a dense one.
    estimator : {"stan", "fisher"}, optional
        How a window's draws become the inverse metric: Stan's regularised sample (co)variance,
        or (diagonal only) :func:`~ppl_ad.infer.adaptation.fisher_diagonal` of the draws and their
        gradients, whose moments are then kept for ``2 d`` values.

    Returns
    -------
    WindowAdaptationState
    """
    inverse_mass_matrix = np.asarray(inverse_mass_matrix, dtype=np.float64)
    dim = inverse_mass_matrix.shape[0]
    return WindowAdaptationState(
        float(step_size),
        inverse_mass_matrix,
        dual_averaging_init(step_size),
        welford_init(welford_width(dim, inverse_mass_matrix.ndim == 2, estimator), dense=inverse_mass_matrix.ndim == 2),
    )


def welford_width(dim: int, dense: bool, estimator: str) -> int:
    """Length of the vectors whose moments the windows keep: ``[x]``, or ``[x, grad]`` (fisher, diagonal)."""
    if estimator not in ("stan", "fisher"):
        raise ValueError(f"unknown metric estimator {estimator!r}; expected 'stan' or 'fisher'")
    return 2 * dim if estimator == "fisher" and not dense else dim


def window_adaptation_update(
    state: WindowAdaptationState,
    schedule_entry: tuple[bool, bool],
    position: np.ndarray,
    acceptance_rate: float,
    target_accept: float = 0.8,
    gradient: np.ndarray | None = None,
    estimator: str = "stan",
) -> tuple[WindowAdaptationState, bool]:
    """Adapt after one warmup transition.

    Parameters
    ----------
    state : WindowAdaptationState
    schedule_entry : (bool, bool)
        This iteration's entry of :func:`build_schedule`.
    position : numpy.ndarray
        The position after the transition.
    acceptance_rate : float
        The transition's acceptance statistic.
    target_accept : float, optional
    gradient : numpy.ndarray, optional
        The log density's gradient at ``position`` (needed by ``estimator="fisher"``).
    estimator : {"stan", "fisher"}, optional
        See :func:`window_adaptation_init` (the same value).

    Returns
    -------
    state : WindowAdaptationState
    metric_updated : bool
        The inverse metric changed: the caller must rebuild its kernel, run the
        step-size heuristic and call :func:`window_adaptation_restart_step_size`.
    """
    in_slow, is_end = schedule_entry
    da = dual_averaging_update(state.dual_averaging, acceptance_rate, target_accept)
    step_size = float(np.exp(da.log_step_size))
    welford = state.welford
    inverse_mass_matrix = state.inverse_mass_matrix
    dense = inverse_mass_matrix.ndim == 2
    fisher = estimator == "fisher" and not dense
    if in_slow:
        welford = welford_update(welford, np.concatenate([position, gradient]) if fisher else position)
    if is_end:
        inverse_mass_matrix = fisher_diagonal(welford) if fisher else regularized_covariance(welford)
        if not np.all(np.isfinite(inverse_mass_matrix)):
            raise SamplingError("the metric estimated during warmup is not finite")
        dim = inverse_mass_matrix.shape[0]
        welford = welford_init(welford_width(dim, dense, estimator), dense=dense)
    return WindowAdaptationState(step_size, inverse_mass_matrix, da, welford), is_end


def window_adaptation_restart_step_size(state: WindowAdaptationState, step_size: float) -> WindowAdaptationState:
    """Restart dual averaging from ``step_size`` (after a metric update).

    Parameters
    ----------
    state : WindowAdaptationState
    step_size : float
        The re-initialised step size; ``mu`` becomes ``log(10 * step_size)``.

    Returns
    -------
    WindowAdaptationState
    """
    return state._replace(step_size=float(step_size), dual_averaging=dual_averaging_init(step_size))


def window_adaptation_final(state: WindowAdaptationState) -> tuple[float, np.ndarray]:
    """Step size and inverse metric to sample with after warmup.

    Returns
    -------
    step_size : float
        ``exp(x_bar)`` of dual averaging.
    inverse_mass_matrix : numpy.ndarray
    """
    return dual_averaging_final(state.dual_averaging), state.inverse_mass_matrix
