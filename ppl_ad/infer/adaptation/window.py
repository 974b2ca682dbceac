"""Warmup schedules: when to adapt the step size and the metric (Stan's windows, nutpie's).

This module owns the warmup schedules and the combined adaptation state, for both engines
(the JAX engine turns the same schedules into per-iteration flags).

Two schedules, chosen by the ``estimator`` (``pa.sample``'s ``metric_adaptation``):

``"nutpie"`` (diagonal metric; the default), as nutpie (nuts-rs 0.17) adapts:

* two running estimators of the moments of ``[x, grad log p(x)]``, a *foreground* and a
  *background*; every draw of the first 85 % of warmup enters both, and after each such draw
  the inverse metric becomes nutpie's ``sqrt(Var x / Var grad)`` of the foreground
  (:func:`~ppl_ad.infer.adaptation.fisher_diagonal`; once it holds 3 draws);
* when the background holds 10 draws (during the first 30 % of warmup) or 80 draws (later),
  it becomes the foreground and a new background starts empty, unless the next switch would
  come after the 85 % mark: the metric follows the draws closely early and forgets the
  first, far-from-typical draws;
* a draw enters the estimators only if the transition moved and did not diverge (nutpie's
  ``DrawGradCollector::is_good``; nutpie also keeps a divergent transition's draw when it lies
  more than 4 leapfrog steps from the start, which ppl_ad's kernels do not report): a chain
  stuck early in warmup otherwise gives the first metric estimates repeated draws, whose
  variance is zero;
* dual averaging of the step size runs at every warmup iteration; it restarts once, from Stan's
  step-size heuristic, when the first estimate replaces the initial metric (nutpie's "first time
  we change the mass matrix"), if that happens in the first 30 % of warmup (:func:`restart_end`);
  the last 15 % adapt the step size only.

The metric is usable after a handful of draws, so warmup trajectories shorten early: on the
hierarchical Poisson benchmark, warmup took 28 k gradients instead of 95 k. The restart at the
first estimate and the filter of stuck draws took the first 10 iterations of the 100-d Gaussian
benchmark from 4.9 k gradients to 1.4 k (5 seeds x 4 chains; PyMC's warmup: 1.3 k), as the step
size no longer collapses after a divergence under a metric estimated from 3 draws.

``"fisher"`` and ``"stan"`` (and every dense metric): Stan's windows (below), the metric
estimated at each window end with nutpie's estimator (``"fisher"``, diagonal only) or Stan's
regularised (co)variance (``"stan"``).

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

Seyboldt, A. et al. nutpie and nuts-rs (https://github.com/pymc-devs/nuts-rs),
``adapt_strategy.rs``: ``EuclideanAdaptOptions`` (early window 0.3, step-size window 0.15,
switch frequencies 10 and 80).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ppl_ad.errors import SamplingError
from ppl_ad.infer.adaptation import low_rank
from ppl_ad.infer.metrics import LowRankMetric
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
    "ESTIMATORS",
    "build_schedule",
    "build_nutpie_schedule",
    "warmup_schedule",
    "uses_nutpie_schedule",
    "window_adaptation_init",
    "window_adaptation_update",
    "window_adaptation_restart_step_size",
    "window_adaptation_final",
    "welford_width",
    "restart_end",
]


class WindowAdaptationState(NamedTuple):
    """State of the windowed warmup.

    Attributes
    ----------
    step_size : float
        Step size to use at the next iteration.
    inverse_mass_matrix : numpy.ndarray or LowRankMetric
        Current inverse metric (1-D diag, 2-D dense, or low-rank).
    dual_averaging : DualAveragingState
    welford : WelfordState
        Moments of the current slow window.
    draws : LowRankDraws or None
        The recent draws and gradients (``metric="low_rank"`` only; see
        :mod:`ppl_ad.infer.adaptation.low_rank`, whose
        :class:`~ppl_ad.infer.metrics.LowRankMetric` is then the inverse metric).
    metric_stage : int
        nutpie's schedule: 0 while the metric is the initial one, 1 when the first estimate
        replaced it and the step-size heuristic is due (the JAX engine runs it at the next
        iteration), 2 afterwards. Stan's schedule leaves it at 0.
    """

    step_size: float
    inverse_mass_matrix: np.ndarray
    dual_averaging: DualAveragingState
    welford: WelfordState
    draws: object = None
    metric_stage: object = 0


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
    # Stan's rule can leave a last window shorter than the one before it (num_warmup = 151: 25
    # draws, then 1, whose variance is undefined; 152-159: 2-9 draws, a poor metric): merge it
    # into the window before, so that windows never shrink
    ends = [i for i, (_, end) in enumerate(schedule) if end]
    if len(ends) >= 2:
        before = ends[-3] if len(ends) >= 3 else initial_buffer - 1
        if ends[-1] - ends[-2] < ends[-2] - before:
            schedule[ends[-2]] = (True, False)
    return schedule


#: ``metric_adaptation`` values: nutpie's schedule, or Stan's windows with nutpie's or Stan's estimator
ESTIMATORS = ("nutpie", "fisher", "stan")


#: nutpie's early window: the first 30 % of warmup (short estimator windows, and the step-size restart)
EARLY_WINDOW = 0.3


def build_nutpie_schedule(
    num_warmup: int,
    early_window: float = EARLY_WINDOW,
    step_size_window: float = 0.15,
    switch_freq: int = 80,
    early_switch_freq: int = 10,
) -> list[tuple[bool, bool]]:
    """nutpie's warmup schedule (see the module docstring).

    Parameters
    ----------
    num_warmup : int
    early_window, step_size_window : float, optional
        Fractions of warmup: the early phase with short estimator windows, and the final phase
        that adapts the step size only.
    switch_freq, early_switch_freq : int, optional
        Draws in the background estimator before it replaces the foreground.

    Returns
    -------
    list of (bool, bool)
        For each warmup iteration: whether its draw enters both estimators (and the metric is
        re-estimated after it), and whether the background then becomes the foreground.

    Examples
    --------
    >>> s = build_nutpie_schedule(500)
    >>> [i for i, (_, switch) in enumerate(s) if switch][:3], sum(enters for enters, _ in s)
    ([9, 19, 29], 425)
    """
    num_warmup = int(num_warmup)
    metric_end = num_warmup - int(step_size_window * num_warmup)  # the step-size-only phase starts here
    early_end = int(early_window * num_warmup)
    schedule = [(False, False)] * num_warmup
    background = 0
    for i in range(metric_end):
        background += 1
        window = early_switch_freq if i < early_end else switch_freq
        switch = background >= window and i + window <= metric_end
        if switch:
            background = 0
        schedule[i] = (True, switch)
    return schedule


def restart_end(num_warmup: int, early_window: float = EARLY_WINDOW) -> int:
    """nutpie's schedule: the iterations ``i < restart_end`` in which the first metric estimate
    restarts the step size (nutpie's early window). A later first estimate (a short warmup, or
    a chain stuck for long) keeps dual averaging going: a restart leaves too few iterations for
    it, and ``exp(x_bar)`` after one or two steps from ``log(10 * step_size)`` diverges."""
    return int(early_window * int(num_warmup))


def uses_nutpie_schedule(estimator: str, dense: bool) -> bool:
    """Whether warmup follows nutpie's schedule (``estimator="nutpie"``, diagonal metric); a dense
    metric, and the other estimators, use Stan's windows."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown metric estimator {estimator!r}; expected one of {list(ESTIMATORS)}")
    return estimator == "nutpie" and not dense


def warmup_schedule(num_warmup: int, estimator: str, dense: bool) -> list[tuple[bool, bool]]:
    """The schedule of ``estimator``: :func:`build_nutpie_schedule` or Stan's :func:`build_schedule`."""
    if uses_nutpie_schedule(estimator, dense):
        return build_nutpie_schedule(num_warmup)
    return build_schedule(num_warmup)


def window_adaptation_init(step_size: float, inverse_mass_matrix: np.ndarray,
                           estimator: str = "stan") -> WindowAdaptationState:
    """Start warmup.

    Parameters
    ----------
    step_size : float
        Initial step size (after the initialisation heuristic).
    inverse_mass_matrix : numpy.ndarray or LowRankMetric
        Initial inverse metric; 1-D for a diagonal metric, 2-D for a dense one, or a
        :class:`~ppl_ad.infer.metrics.LowRankMetric` (nutpie's schedule only).
    estimator : {"nutpie", "fisher", "stan"}, optional
        How draws become the inverse metric: Stan's regularised sample (co)variance, or
        (diagonal only) :func:`~ppl_ad.infer.adaptation.fisher_diagonal` of the draws and their
        gradients, whose moments are then kept for ``2 d`` values; ``"nutpie"`` keeps two such
        estimators (``welford`` then holds a foreground and a background row).

    Returns
    -------
    WindowAdaptationState
    """
    draws = None
    if isinstance(inverse_mass_matrix, LowRankMetric):  # its ring of recent draws
        dim, dense = inverse_mass_matrix.scale.shape[0], False
        draws = low_rank.window_draws_init(dim)
        if not uses_nutpie_schedule(estimator, dense):
            raise ValueError("a low-rank metric is adapted with nutpie's schedule (estimator='nutpie')")
    else:
        inverse_mass_matrix = np.asarray(inverse_mass_matrix, dtype=np.float64)
        dim, dense = inverse_mass_matrix.shape[0], inverse_mass_matrix.ndim == 2
    width = welford_width(dim, dense, estimator)
    if uses_nutpie_schedule(estimator, dense):
        welford = WelfordState(np.zeros(2, dtype=np.int64), np.zeros((2, width)), np.zeros((2, width)))
    else:
        welford = welford_init(width, dense=dense)
    return WindowAdaptationState(float(step_size), inverse_mass_matrix, dual_averaging_init(step_size), welford, draws)


def welford_width(dim: int, dense: bool, estimator: str) -> int:
    """Length of the vectors whose moments warmup keeps: ``[x]``, or ``[x, grad]`` (nutpie's
    estimator with a diagonal metric)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown metric estimator {estimator!r}; expected one of {list(ESTIMATORS)}")
    return 2 * dim if estimator != "stan" and not dense else dim


def _nutpie_update(welford: WelfordState, inverse_mass_matrix, entry, draw, ring=None, refit=0, good=True):
    """nutpie's estimators after one draw: ``(welford, inverse_mass_matrix, ring, changed)`` (see
    the module docstring); a low-rank metric is re-estimated from ``ring`` when ``refit`` says
    (:func:`~ppl_ad.infer.adaptation.low_rank.refits`). ``good``: the draw enters the estimators
    (the switch of the schedule happens either way); ``changed``: a new metric was estimated."""
    enters, switch = entry
    if not enters:
        return welford, inverse_mass_matrix, ring, False
    count, mean, m2 = welford
    if good:
        count = count + 1
        delta = draw - mean
        mean = mean + delta / count[:, None]
        m2 = m2 + delta * (draw - mean)
    if switch:  # the background becomes the foreground; a new background starts empty
        count, mean, m2 = (np.stack([a[1], np.zeros_like(a[1])]) for a in (count, mean, m2))
    welford = WelfordState(count, mean, m2)
    if ring is not None:
        dim = draw.shape[0] // 2
        if good:
            ring = low_rank.window_draws(ring, draw[:dim], draw[dim:])
        if refit and count[0] >= 3:
            rows = low_rank.SHORT_WINDOW if refit == low_rank.SHORT_REFIT else low_rank.MAX_WINDOW
            inverse_mass_matrix = low_rank.fit(low_rank.newest_rows(ring, rows), int(count[0]), inverse_mass_matrix)
            return welford, inverse_mass_matrix, ring, True
        return welford, inverse_mass_matrix, ring, False
    if count[0] >= 3:
        estimate = fisher_diagonal(WelfordState(int(count[0]), mean[0], m2[0]), fallback=inverse_mass_matrix)
        return welford, estimate, ring, True
    return welford, inverse_mass_matrix, ring, False


def window_adaptation_update(
    state: WindowAdaptationState,
    schedule_entry: tuple[bool, bool],
    position: np.ndarray,
    acceptance_rate: float,
    target_accept: float = 0.8,
    gradient: np.ndarray | None = None,
    estimator: str = "stan",
    refit: int = 0,
    good: bool = True,
    may_restart: bool = True,
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
    estimator : {"nutpie", "fisher", "stan"}, optional
        See :func:`window_adaptation_init` (the same value).
    refit : int, optional
        With a low-rank metric, this iteration's code of
        :func:`~ppl_ad.infer.adaptation.low_rank.refits`.
    good : bool, optional
        nutpie's schedule: the transition moved and did not diverge, so its draw enters the
        estimators (see the module docstring).
    may_restart : bool, optional
        nutpie's schedule: the first estimate may restart the step size at this iteration
        (``i < restart_end(num_warmup)``); later, the stage still advances, without a restart.

    Returns
    -------
    state : WindowAdaptationState
    metric_updated : bool
        The caller must rebuild its kernel, run the step-size heuristic and call
        :func:`window_adaptation_restart_step_size`: a window ended (Stan's schedule), or the
        first estimate replaced the initial metric (nutpie's, once). Otherwise, with nutpie's
        schedule the metric changes after every draw that enters the estimators without a
        restart, and the caller rebuilds its kernel whenever ``inverse_mass_matrix`` is a new
        array.
    """
    in_slow, is_end = schedule_entry
    da = dual_averaging_update(state.dual_averaging, acceptance_rate, target_accept)
    step_size = float(np.exp(da.log_step_size))
    welford = state.welford
    inverse_mass_matrix = state.inverse_mass_matrix
    dense = not isinstance(inverse_mass_matrix, LowRankMetric) and inverse_mass_matrix.ndim == 2
    if uses_nutpie_schedule(estimator, dense):
        welford, inverse_mass_matrix, ring, changed = _nutpie_update(
            welford, inverse_mass_matrix, schedule_entry, np.concatenate([position, gradient]), state.draws, refit, good)
        first = changed and state.metric_stage == 0  # the restart runs now: the stage goes to 2 at once
        stage = 2 if first else state.metric_stage
        return WindowAdaptationState(step_size, inverse_mass_matrix, da, welford, ring, stage), first and may_restart
    fisher = estimator == "fisher" and not dense
    if in_slow:
        welford = welford_update(welford, np.concatenate([position, gradient]) if fisher else position)
    if is_end:
        inverse_mass_matrix = (fisher_diagonal(welford, fallback=inverse_mass_matrix) if fisher
                               else regularized_covariance(welford))
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
