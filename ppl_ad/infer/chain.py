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
    build_schedule,
    find_reasonable_step_size,
    window_adaptation_final,
    window_adaptation_init,
    window_adaptation_restart_step_size,
    window_adaptation_update,
)
from ppl_ad.infer.hmc import HMCState
from ppl_ad.infer.integrators import EVALUATION_ERRORS
from ppl_ad.infer.metrics import gaussian_euclidean
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
    metric : {"diag", "dense"}
    path_length : float
        Static HMC nominal integration time (unused by NUTS).
    max_energy_error : float
        Energy error above which a transition is divergent.
    initial_step_size : float
        Starting point of the step-size heuristic.
    engine : {"python", "jax"}
        The engine that runs the chain (see :mod:`ppl_ad.infer.engine`).
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


def run_chain(
    logdensity_and_gradient: Callable[[np.ndarray], tuple[float, np.ndarray]],
    initial_position: np.ndarray,
    rng: np.random.Generator,
    settings: ChainSettings,
    progress: Callable[[int, bool, int], None] | None = None,
) -> ChainResult:
    """Run one chain: ``settings.tune`` warmup iterations, then ``settings.draws``.

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
    state = _initial_state(logdensity_and_gradient, initial_position)
    dim = state.position.shape[0]
    dense = settings.metric == "dense"
    is_nuts = settings.sampler == "nuts"
    max_energy_error = settings.max_energy_error
    max_num_steps = 2 ** int(settings.max_treedepth)
    path_length = settings.path_length
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
    draws = np.empty((n_draws, dim))
    dtypes = stat_dtypes(settings.sampler)
    stats = {name: np.empty(n_draws, dtype=dt) for name, dt in dtypes.items()}

    with np.errstate(all="ignore"):
        start = time.perf_counter()
        metric = gaussian_euclidean(np.eye(dim) if dense else np.ones(dim))
        step_size = find_reasonable_step_size(
            logdensity_and_gradient, state, metric, float(settings.initial_step_size), rng
        )
        kernel = make_kernel(metric)
        adapt = window_adaptation_init(step_size, metric.inverse_mass_matrix)
        schedule = build_schedule(n_tune)
        warmup_divergences = 0
        for i in range(n_tune):
            momentum = metric.sample_momentum(rng)
            state, info = transition(kernel, state, step_size, momentum)
            warmup_divergences += info.is_divergent
            adapt, metric_updated = window_adaptation_update(
                adapt, schedule[i], state.position, info.acceptance_rate, settings.target_accept
            )
            if metric_updated:
                metric = gaussian_euclidean(adapt.inverse_mass_matrix)
                kernel = make_kernel(metric)
                new_step_size = find_reasonable_step_size(logdensity_and_gradient, state, metric, adapt.step_size, rng)
                adapt = window_adaptation_restart_step_size(adapt, new_step_size)
            step_size = adapt.step_size
            if progress is not None:
                progress(i + 1, True, warmup_divergences)
        if n_tune > 0:
            step_size, inverse_mass_matrix = window_adaptation_final(adapt)
            metric = gaussian_euclidean(inverse_mass_matrix)
            kernel = make_kernel(metric)
        tuning_time = time.perf_counter() - start

        start = time.perf_counter()
        divergences = 0
        lp = stats["lp"]
        acc = stats["acceptance_rate"]
        n_steps = stats["n_steps"]
        diverging = stats["diverging"]
        energy = stats["energy"]
        energy_error = stats["energy_error"]
        stats["step_size"][:] = step_size
        tree_depth = stats.get("tree_depth")
        max_depth_hit = stats.get("reached_max_treedepth")
        for i in range(n_draws):
            momentum = metric.sample_momentum(rng)
            state, info = transition(kernel, state, step_size, momentum)
            draws[i] = state.position
            lp[i] = state.logdensity
            acc[i] = info.acceptance_rate
            n_steps[i] = info.num_integration_steps
            diverging[i] = info.is_divergent
            energy[i] = info.energy
            energy_error[i] = info.energy_error
            if is_nuts:
                tree_depth[i] = info.tree_depth
                max_depth_hit[i] = info.reached_max_treedepth
            divergences += info.is_divergent
            if progress is not None:
                progress(i + 1, False, divergences)
        sampling_time = time.perf_counter() - start

    return ChainResult(
        draws,
        stats,
        float(step_size),
        np.array(metric.inverse_mass_matrix),
        tuning_time,
        sampling_time,
        int(warmup_divergences),
        int(gradient_counters[0]),
        float(gradient_counters[1]),
    )
