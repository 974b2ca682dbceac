"""One Markov chain: warmup with adaptation, then draws.

This module owns the loop that runs a single chain on the unconstrained space. It
only needs a ``logdensity_and_gradient(theta) -> (float, ndarray)`` callable, an
initial point, a random generator and a :class:`ChainSettings`; it knows nothing
about models, sites or backends, so it can run in the parent process or in a
worker process alike. It returns the unconstrained draws and the per-draw sampler
statistics (ArviZ names); converting draws to model space is the caller's job.

Per iteration it draws one momentum vector (one ``standard_normal`` call) and takes
all other random numbers from a :class:`~ppl_ad.infer.uniforms.UniformStream` on
the same generator, so a chain is a deterministic function of its seed.

Warmup follows Stan (see :mod:`ppl_ad.infer.adaptation`): initial step size from
the heuristic, dual averaging at each warmup iteration, metric updates at the
ends of the slow windows.

References
----------
Stan Development Team. *Stan Reference Manual*, "HMC algorithm parameters" and
"Adaptation".
"""

from __future__ import annotations

import math
import time
from typing import Callable, NamedTuple

import numpy as np

from ppl_ad.errors import SamplingError
from ppl_ad.infer import hmc, nuts
from ppl_ad.infer.adaptation import (
    find_reasonable_step_size,
    window_adaptation_final,
    window_adaptation_init,
    window_adaptation_restart_step_size,
    window_adaptation_update,
    restart_end,
    warmup_schedule,
)
from ppl_ad.infer.adaptation import low_rank
from ppl_ad.infer.hmc import HMCState
from ppl_ad.infer.integrators import EVALUATION_ERRORS
from ppl_ad.infer.metrics import dense_inverse_metric, gaussian_euclidean
from ppl_ad.infer.state import ChainState, capture_rng, restore_rng
from ppl_ad.infer.uniforms import UniformStream

__all__ = ["ChainSettings", "ChainResult", "run_chain", "stat_dtypes"]


class ChainSettings(NamedTuple):
    """Settings of one chain (picklable; sent to worker processes).

    Attributes
    ----------
    draws : int
        Draws kept after warmup.
    tune : int
        Warmup iterations (discarded).
    sampler : {"nuts", "hmc"}
    target_accept : float
        Target mean acceptance statistic of dual averaging.
    max_treedepth : int
        NUTS maximum tree depth; for HMC, ``2**max_treedepth`` bounds the number
        of leapfrog steps per iteration.
    metric : {"diag", "dense", "low_rank"}
    path_length : float
        Static HMC nominal integration time (unused by NUTS).
    max_energy_error : float
        Energy error above which a transition is divergent.
    initial_step_size : float
        Starting point of the step-size heuristic.
    engine : {"python", "jax"}
        The engine that runs the chain (see :mod:`ppl_ad.infer.engine`).
    metric_adaptation : {"nutpie", "fisher", "stan"}
        How warmup adapts a diagonal metric: nutpie's schedule and estimator (``"nutpie"``), or
        Stan's windows with nutpie's estimator from the draws and their gradients (``"fisher"``,
        :func:`~ppl_ad.infer.adaptation.fisher_diagonal`) or with the draws' regularised
        variances (``"stan"``); see :mod:`ppl_ad.infer.adaptation.window`. A dense metric always
        uses Stan's windows and estimator.
    keep_warmup : bool
        Also return the warmup iterations' draws and statistics (``pa.sample``'s
        ``discard_tuned_samples=False``).
    """

    draws: int = 1000
    tune: int = 1000
    sampler: str = "nuts"
    target_accept: float = 0.8
    max_treedepth: int = 10
    metric: str = "diag"
    path_length: float = 2.0
    max_energy_error: float = 1000.0
    initial_step_size: float = 1.0
    engine: str = "python"
    metric_adaptation: str = "nutpie"
    keep_warmup: bool = False


class ChainResult(NamedTuple):
    """What one chain returns.

    Attributes
    ----------
    draws : numpy.ndarray
        ``(settings.draws, dimension)`` unconstrained draws.
    stats : dict of str to numpy.ndarray
        Per-draw sampler statistics with ArviZ names (see :func:`stat_dtypes`).
    step_size : float
        Step size used after warmup.
    inverse_mass_matrix : numpy.ndarray
        Inverse metric used after warmup.
    tuning_time, sampling_time : float
        Seconds spent in warmup and in drawing.
    warmup_divergences : int
        Divergences during warmup (not in ``stats``).
    gradient_evaluations : int
        Calls of ``logdensity_and_gradient`` over the whole chain (initial point, step-size
        heuristics, warmup and draws): one per leapfrog step plus a few.
    gradient_time : float
        Seconds spent inside those calls; ``tuning_time + sampling_time - gradient_time``
        is the sampler's own time (NaN for the JAX engine: the gradient runs inside XLA).
    compile_time : float
        Seconds spent compiling the sampler (JAX engine; 0 for the Python engine).
    warmup_draws, warmup_stats : numpy.ndarray and dict, or None
        The warmup iterations' draws ``(settings.tune, dimension)`` and statistics (each with
        the step size it ran with), when ``settings.keep_warmup``; else None.
    """

    draws: np.ndarray
    stats: dict
    step_size: float
    inverse_mass_matrix: np.ndarray
    tuning_time: float
    sampling_time: float
    warmup_divergences: int
    gradient_evaluations: int = 0
    gradient_time: float = 0.0
    compile_time: float = 0.0
    warmup_draws: np.ndarray | None = None
    warmup_stats: dict | None = None


def _timed(fn):
    """``fn`` wrapped to count its calls and the seconds spent in them (about 0.2 µs a call).

    Returns ``(wrapped, counters)``; ``counters`` is a two-element list ``[calls, seconds]``.
    """
    counters = [0, 0.0]
    clock = time.perf_counter

    def wrapped(theta):
        start = clock()
        try:
            return fn(theta)
        finally:
            counters[0] += 1
            counters[1] += clock() - start

    return wrapped, counters


def stat_dtypes(sampler: str) -> dict[str, type]:
    """Names and dtypes of the per-draw statistics of ``sampler``.

    Parameters
    ----------
    sampler : {"nuts", "hmc"}

    Returns
    -------
    dict of str to numpy dtype
    """
    stats = {
        "lp": np.float64,
        "acceptance_rate": np.float64,
        "step_size": np.float64,
        "n_steps": np.int64,
        "diverging": np.bool_,
        "energy": np.float64,
        "energy_error": np.float64,
    }
    if sampler == "nuts":
        stats["tree_depth"] = np.int64
        stats["reached_max_treedepth"] = np.bool_
    return stats


def _initial_state(logdensity_and_gradient, position) -> HMCState:
    position = np.array(position, dtype=np.float64, copy=True)
    try:
        logp, grad = logdensity_and_gradient(position)
    except EVALUATION_ERRORS as exc:
        raise SamplingError(f"the log density could not be evaluated at the initial point: {exc}") from exc
    logp = float(logp)
    grad = np.asarray(grad, dtype=np.float64)
    if not (math.isfinite(logp) and np.all(np.isfinite(grad))):
        raise SamplingError("the log density or its gradient is not finite at the initial point")
    return HMCState(position, logp, grad)


def initial_chain_state(logdensity_and_gradient, position, rng, settings: ChainSettings) -> tuple[ChainState, HMCState]:
    """The state before the first iteration: the initial point, Stan's step-size heuristic with
    the unit metric, and fresh warmup state."""
    hmc_state = _initial_state(logdensity_and_gradient, position)
    dim = hmc_state.position.shape[0]
    if settings.metric == "low_rank":
        metric = gaussian_euclidean(low_rank.identity(dim))
    else:
        metric = gaussian_euclidean(np.eye(dim) if settings.metric == "dense" else np.ones(dim))
    step_size = find_reasonable_step_size(
        logdensity_and_gradient, hmc_state, metric, float(settings.initial_step_size), rng
    )
    adaptation = window_adaptation_init(step_size, metric.inverse_mass_matrix, settings.metric_adaptation)
    return ChainState(hmc_state.position, hmc_state.logdensity, hmc_state.logdensity_grad, adaptation, None), hmc_state


def run_chain(
    logdensity_and_gradient: Callable[[np.ndarray], tuple[float, np.ndarray]],
    initial_position: np.ndarray,
    rng: np.random.Generator,
    settings: ChainSettings,
    progress: Callable[[int, bool, int], None] | None = None,
    checkpoint=None,
) -> ChainResult:
    """Run one chain: ``settings.tune`` warmup iterations, then ``settings.draws``.

    The loop carries an explicit :class:`~ppl_ad.infer.state.ChainState`; with a
    ``checkpoint`` it starts from the saved state and saves as it goes, and the result is the
    same, draw for draw, as a run that was never interrupted.

    Parameters
    ----------
    logdensity_and_gradient : callable
        ``theta -> (log density, gradient)`` on the unconstrained space.
        Exceptions of type ``ArithmeticError`` or ``ValueError`` and non-finite
        values during sampling are divergences.
    initial_position : numpy.ndarray
        Starting point; the log density and gradient must be finite there.
    rng : numpy.random.Generator
        The chain's only source of randomness.
    settings : ChainSettings
    progress : callable, optional
        ``progress(iterations_done, tuning, divergences)`` called after every
        iteration; ``divergences`` counts the current phase only.
    checkpoint : ppl_ad.infer.checkpoint.ChainCheckpoint, optional
        Where this chain's state and draws are saved (and resumed from).

    Returns
    -------
    ChainResult

    Raises
    ------
    SamplingError
        The log density is not finite at ``initial_position``, or warmup failed
        (improper posterior, non-finite metric).
    """
    if settings.sampler not in ("nuts", "hmc"):
        raise ValueError(f"unknown sampler {settings.sampler!r}")
    logdensity_and_gradient, gradient_counters = _timed(logdensity_and_gradient)
    is_nuts = settings.sampler == "nuts"
    max_energy_error = settings.max_energy_error
    max_num_steps = 2 ** int(settings.max_treedepth)
    path_length = settings.path_length
    target_accept = settings.target_accept
    uniform = UniformStream(rng)

    def make_kernel(metric):
        if is_nuts:
            return nuts.build_kernel(
                logdensity_and_gradient, metric, max_treedepth=settings.max_treedepth, max_energy_error=max_energy_error
            )
        return hmc.build_kernel(logdensity_and_gradient, metric, max_energy_error=max_energy_error)

    def transition(kernel, state, step_size, momentum):
        if is_nuts:
            return kernel(state, step_size, momentum, uniform)
        num_steps = hmc.jittered_num_steps(path_length, step_size, uniform(), max_num_steps)
        return kernel(state, step_size, momentum, num_steps, uniform())

    n_draws, n_tune = int(settings.draws), int(settings.tune)
    total = n_tune + n_draws
    dim = int(np.shape(initial_position)[0])
    draws = np.empty((n_draws, dim))
    dtypes = stat_dtypes(settings.sampler)
    stats = {name: np.empty(n_draws, dtype=dt) for name, dt in dtypes.items()}
    keep_warmup = bool(getattr(settings, "keep_warmup", False))
    warmup_draws = np.empty((n_tune, dim)) if keep_warmup else None
    warmup_stats = {name: np.empty(n_tune, dtype=dt) for name, dt in dtypes.items()} if keep_warmup else None

    def record(into_draws, into_stats, j, state, info, step_size):
        into_draws[j] = state.position
        into_stats["lp"][j] = state.logdensity
        into_stats["acceptance_rate"][j] = info.acceptance_rate
        into_stats["step_size"][j] = step_size
        into_stats["n_steps"][j] = info.num_integration_steps
        into_stats["diverging"][j] = info.is_divergent
        into_stats["energy"][j] = info.energy
        into_stats["energy_error"][j] = info.energy_error
        if is_nuts:
            into_stats["tree_depth"][j] = info.tree_depth
            into_stats["reached_max_treedepth"][j] = info.reached_max_treedepth
    totals = {"tuning_time": 0.0, "sampling_time": 0.0, "warmup_divergences": 0, "gradient_evaluations": 0,
              "gradient_time": 0.0}

    with np.errstate(all="ignore"):
        phase_start = time.perf_counter()
        resumed = checkpoint.resume(draws, stats) if checkpoint is not None else None
        if resumed is None:
            start = 0
            chain_state, hmc_state = initial_chain_state(logdensity_and_gradient, initial_position, rng, settings)
        else:
            start, chain_state, saved_totals = resumed
            totals.update(saved_totals)
            restore_rng(rng, uniform, chain_state.rng)
            hmc_state = HMCState(np.asarray(chain_state.position, dtype=np.float64), float(chain_state.logdensity),
                                 np.asarray(chain_state.logdensity_grad, dtype=np.float64))
        adapt = chain_state.adaptation
        metric_source = adapt.inverse_mass_matrix  # the array the kernel's metric was built from
        metric = gaussian_euclidean(metric_source)
        kernel = make_kernel(metric) if start < total else None  # a finished chain does not run
        schedule = warmup_schedule(n_tune, settings.metric_adaptation, settings.metric == "dense")
        refits = low_rank.refits(schedule) if settings.metric == "low_rank" else [0] * n_tune
        restarts_end = restart_end(n_tune)  # nutpie's: the first metric estimate restarts the step size before this
        divergences = 0 if start <= n_tune else int(stats["diverging"][: start - n_tune].sum())
        warmup_divergences = int(totals["warmup_divergences"])
        marks = [phase_start, 0, 0.0]  # time and gradient counters at the last accounting

        def account(done: int) -> None:
            """Add the time and gradient calls since the last accounting to the totals."""
            now = time.perf_counter()
            totals["tuning_time" if done <= n_tune else "sampling_time"] += now - marks[0]
            totals["gradient_evaluations"] += gradient_counters[0] - marks[1]
            totals["gradient_time"] += gradient_counters[1] - marks[2]
            totals["warmup_divergences"] = warmup_divergences
            marks[:] = [now, gradient_counters[0], gradient_counters[1]]

        for i in range(start, total):
            tuning = i < n_tune
            momentum = metric.sample_momentum(rng)
            previous = hmc_state.position
            hmc_state, info = transition(kernel, hmc_state, adapt.step_size, momentum)
            if tuning:
                if keep_warmup:
                    record(warmup_draws, warmup_stats, i, hmc_state, info, adapt.step_size)
                warmup_divergences += info.is_divergent
                # nutpie's estimators take draws that moved and did not diverge
                good = not info.is_divergent and not np.array_equal(hmc_state.position, previous)
                adapt, metric_updated = window_adaptation_update(
                    adapt, schedule[i], hmc_state.position, info.acceptance_rate, target_accept,
                    hmc_state.logdensity_grad, settings.metric_adaptation, refits[i], good, i < restarts_end,
                )
                if adapt.inverse_mass_matrix is not metric_source:  # a new metric
                    metric_source = adapt.inverse_mass_matrix
                    metric = gaussian_euclidean(metric_source)
                    kernel = make_kernel(metric)
                if metric_updated:  # a window ended (Stan's), or the first estimate (nutpie's): restart the step size
                    new_step_size = find_reasonable_step_size(
                        logdensity_and_gradient, hmc_state, metric, adapt.step_size, rng
                    )
                    adapt = window_adaptation_restart_step_size(adapt, new_step_size)
                if i == n_tune - 1:
                    step_size, inverse_mass_matrix = window_adaptation_final(adapt)
                    adapt = adapt._replace(step_size=step_size, inverse_mass_matrix=inverse_mass_matrix)
                    metric = gaussian_euclidean(inverse_mass_matrix)
                    kernel = make_kernel(metric)
                if progress is not None:
                    progress(i + 1, True, warmup_divergences)
            else:
                j = i - n_tune
                record(draws, stats, j, hmc_state, info, adapt.step_size)
                divergences += info.is_divergent
                if progress is not None:
                    progress(j + 1, False, divergences)
            done = i + 1
            if done == n_tune:
                account(done)  # the phases are timed apart
            if checkpoint is not None and (checkpoint.due(done) or done == total):
                account(done)
                state = ChainState(hmc_state.position, hmc_state.logdensity, hmc_state.logdensity_grad, adapt,
                                   capture_rng(rng, uniform))
                checkpoint.save(done, state, draws, stats, totals)
        if start < total:
            account(total)

    return ChainResult(
        draws,
        stats,
        float(adapt.step_size),
        dense_inverse_metric(adapt.inverse_mass_matrix),
        float(totals["tuning_time"]),
        float(totals["sampling_time"]),
        int(warmup_divergences),
        int(totals["gradient_evaluations"]),
        float(totals["gradient_time"]),
        warmup_draws=warmup_draws,
        warmup_stats=warmup_stats,
    )
