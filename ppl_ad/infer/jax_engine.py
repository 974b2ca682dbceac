"""The compiled engine: NUTS and its warmup inside one XLA program.

This module owns the ``"jax"`` engine (see :mod:`ppl_ad.infer.engine`). One jitted function
advances a chain by a *chunk* of ``n`` iterations with ``jax.lax.fori_loop`` (``n`` is an argument:
Python picks it so that a call takes about :data:`CHUNK_SECONDS`); each iteration is a NUTS
transition (:mod:`ppl_ad.infer.jax_nuts`: BlackJAX's iterative trajectory with multinomial
sampling, Stan's generalised no-U-turn criterion with its extra sub-tree checks, divergences at
an energy error of
``max_energy_error``, at most ``max_treedepth`` doublings) followed, during warmup, by the
adaptation step. Between chunks control returns to Python for the progress bars (and for
checkpoints), so no Python runs per leapfrog step and at most one program is compiled per model,
shapes and settings: warmup and sampling share it (the phase is data, not code).

Warmup follows the same schedules as the Python engine
(:func:`ppl_ad.infer.adaptation.warmup_schedule`, turned into per-iteration flags by
:func:`_phases`) with the same state types (:class:`~ppl_ad.infer.adaptation.WindowAdaptationState`,
:class:`~ppl_ad.infer.adaptation.DualAveragingState`, :class:`~ppl_ad.infer.adaptation.WelfordState`):
dual averaging of the log step size at every warmup iteration and ``exp(x_bar)`` after warmup;
by default nutpie's foreground and background estimators of draws and gradients with the metric
re-estimated after every draw (``metric_adaptation="nutpie"``, see
:mod:`ppl_ad.infer.adaptation.window`), or Stan's windows, with the metric estimated at each window
end followed by Stan's step-size heuristic and a dual-averaging restart.

The chain state is the same :class:`~ppl_ad.infer.state.ChainState` as the Python engine's, as
pure data (a pytree of arrays): position, log density and gradient, the adaptation state (step
size, inverse metric, dual averaging, Welford moments) and, as its ``rng``, the chain's raw JAX
PRNG key. The key comes from the chain's ``numpy.random.SeedSequence``, so the same
seed gives the same draws whether the chain runs in this process or in a worker; with
``chain_method="vectorized"`` (``jax.vmap`` over chains) results agree up to floating-point
reassociation.

Data enter the program as arguments (see :mod:`ppl_ad.backends.jax_reverse`). Compiled
programs go to JAX's persistent compilation cache (``$PPL_AD_CACHE_DIR/xla`` or the user cache
directory), keyed by the program (model, shapes, settings), so a second ``pa.sample`` of the
same model in a new process skips compilation.

Why BlackJAX's trajectory but our own warmup and termination: BlackJAX's iterative trajectory
is well tested and compiles to one ``while_loop``; its window adaptation runs all warmup in one
``scan`` (no chunks, so no progress or checkpoints between them) and restarts the step size
without Stan's heuristic, and its U-turn check differs from Stan's (see
:mod:`ppl_ad.infer.jax_nuts`).

References
----------
Hoffman, M. D. & Gelman, A. (2014). The No-U-Turn Sampler. *JMLR* 15, 1593-1623.

Betancourt, M. (2017). *A Conceptual Introduction to Hamiltonian Monte Carlo*. arXiv:1701.02434.

Cabezas, A. et al. (2024). BlackJAX: Composable Bayesian inference in JAX. arXiv:2402.10797.

Stan Development Team. *Stan Reference Manual*, "HMC algorithm parameters" and "Adaptation".
"""

from __future__ import annotations

import math
import time

import numpy as np

from ppl_ad.config import enable_compilation_cache
from ppl_ad.errors import SamplingError
from ppl_ad.infer.adaptation import (
    DualAveragingState,
    WelfordState,
    WindowAdaptationState,
    restart_end,
    uses_nutpie_schedule,
    warmup_schedule,
)
from ppl_ad.infer.adaptation import low_rank
from ppl_ad.infer.adaptation.mass_matrix import FISHER_MAX, FISHER_MIN
from ppl_ad.infer.adaptation.window import welford_width
from ppl_ad.infer.chain import ChainResult, stat_dtypes
from ppl_ad.infer.init import MAX_INIT_ATTEMPTS, no_initial_point
from ppl_ad.infer.lowering import (SMALL_LOOP_BYTES, compile_options, hoisted_small_loops, small_loop_hoisting_available,
                                   unrolled_threefry)
from ppl_ad.infer.metrics import dense_inverse_metric
from ppl_ad.infer.state import ChainState
from ppl_ad.infer.threads import one_lapack_thread

__all__ = ["run_chains", "MAX_CHUNK", "CHUNK_SECONDS"]

#: most iterations in one call of the program (fewer for large models: see :func:`_capacity`)
MAX_CHUNK = 1000
#: wall time a call aims at; the number of iterations per call adapts to it (progress bars,
#: checkpoints and Ctrl-C are handled between calls)
CHUNK_SECONDS = 0.25
#: iterations of the first call, before the speed of an iteration is known
FIRST_CHUNK = 5

_LOG_08 = math.log(0.8)


#: columns of the per-iteration flags (see :func:`_phases`): six booleans, the refit code, the restart permission
_FLAGS = 8
_IN_SLOW, _REFIT, _MAY_RESTART = 0, 6, 7


def _phases(tune: int, draws: int, estimator: str = "nutpie", dense: bool = False) -> np.ndarray:
    """Per-iteration flags as an int8 array of shape ``(tune + draws, 8)``.

    Columns: the draw enters the metric estimate (Stan: a slow window; nutpie: both
    estimators, and the metric is re-estimated), a window ends (Stan: new metric; nutpie: the
    background estimator becomes the foreground), adapting (warmup), the last warmup iteration
    (switch to ``exp(x_bar)``), run the step-size heuristic first (the first iteration, and with
    Stan's windows the one after each window end), find the initial point first (the first
    iteration), and (``metric="low_rank"``, nutpie's schedule) re-estimate the metric after this
    draw (:func:`ppl_ad.infer.adaptation.low_rank.refits`), and (nutpie's schedule) the first
    metric estimate may restart the step size here (:func:`ppl_ad.infer.adaptation.restart_end`).
    The schedules are :func:`ppl_ad.infer.adaptation.warmup_schedule`'s.
    """
    flags = np.zeros((tune + draws, _FLAGS), dtype=np.int8)
    schedule = warmup_schedule(tune, estimator, dense)
    for i, (enters, is_end) in enumerate(schedule):
        flags[i, :4] = (enters, is_end, 1, i == tune - 1)
    if uses_nutpie_schedule(estimator, dense) and tune:
        flags[:tune, _REFIT] = low_rank.refits(schedule)
        flags[:restart_end(tune), _MAY_RESTART] = 1
    flags[0, 4] = 1
    if not uses_nutpie_schedule(estimator, dense):
        flags[1:, 4] |= flags[:-1, 1]
    if tune + draws:
        flags[0, 5] = 1
    return flags


def _start(logdensity_fn, init, state, inverse_mass_matrix, step_size, key, initialize, search):
    """The chain's initial point and Stan's step-size heuristic, in one loop; no work unless asked.

    Both evaluate the log density and its gradient at one point per trial, so they share one
    ``while_loop`` with one call of the gradient: the program then holds two copies of the
    gradient (this one and the trajectory's), not three (measured on eight schools: compiling
    the sampler took 0.4 s less).

    With ``initialize``, first the initial point: ``init = (base, mask, key)``; coordinates with
    ``mask`` start at ``base``, the others uniform(-2, 2) (Stan's), drawn again until the log
    density and its gradient are finite, at most :data:`~ppl_ad.infer.init.MAX_INIT_ATTEMPTS`
    times (once when ``mask`` fixes every coordinate), as :func:`ppl_ad.infer.init.initial_position`
    does with the backend.

    Then, with ``search``, Stan's step-size heuristic (``base_hmc::init_stepsize``), as
    :func:`ppl_ad.infer.adaptation.find_reasonable_step_size` in the Python engine: one leapfrog
    step with a fresh momentum per trial; if the first trial's acceptance probability
    ``exp(H0 - H)`` is above 0.8 the step size doubles until it falls below, otherwise it halves
    until it rises above (at most 200 trials).

    Returns
    -------
    (position, logdensity, gradient, attempts, step_size, trials)
        ``attempts`` is 0 without ``initialize``, and ``MAX_INIT_ATTEMPTS + 1`` when no finite
        point was found (the search is then skipped); ``trials`` is 0 without ``search``.
    """
    import jax
    import jax.numpy as jnp

    from ppl_ad.infer.jax_nuts import metric_functions

    base, mask, init_key = init
    dim = base.shape[0]
    value_and_grad = jax.value_and_grad(logdensity_fn)
    sample_momentum, kinetic_energy, velocity = metric_functions(inverse_mass_matrix)
    limit = jnp.where(jnp.all(mask), 1, MAX_INIT_ATTEMPTS)
    _INIT, _SEARCH, _DONE = 0, 1, 2

    def finite(lp, grad):
        return jnp.isfinite(lp) & jnp.all(jnp.isfinite(grad))

    def body(c):
        phase, attempts, trials, x0, lp0, g0, eps, direction, k = c
        # the trial point: a jittered start, or one leapfrog step's new position
        jitter = jax.random.uniform(jax.random.fold_in(init_key, attempts), (dim,), jnp.float64, -2.0, 2.0)
        next_k, sub = jax.random.split(k)
        p = sample_momentum(sub, x0)
        half = p + eps * 0.5 * g0
        searching = phase == _SEARCH
        x = jnp.where(searching, x0 + eps * 1.0 * velocity(half), jnp.where(mask, base, jitter))
        lp, g = value_and_grad(x)
        # the initial point: accept a finite one, give up after the last attempt
        attempts = attempts + (~searching)
        found = ~searching & finite(lp, g)
        init_phase = jnp.where(found, jnp.where(search, _SEARCH, _DONE), jnp.where(attempts >= limit, _DONE, _INIT))
        # the heuristic: the first trial fixes the direction (grow while acceptance > 0.8, else shrink)
        h = kinetic_energy(half + eps * 0.5 * g) - lp
        dh = (kinetic_energy(p) - lp0) - jnp.where(jnp.isnan(h), jnp.inf, h)
        first = trials == 0
        direction = jnp.where(searching & first, jnp.where(dh > _LOG_08, 1, -1), direction)
        stop = ~first & jnp.where(direction == 1, ~(dh > _LOG_08), ~(dh < _LOG_08))
        grown = jnp.where(stop | first, eps, jnp.where(direction == 1, 2.0 * eps, 0.5 * eps))
        trials = trials + searching
        search_phase = jnp.where(stop | (trials >= 200), _DONE, _SEARCH)
        return (jnp.where(searching, search_phase, init_phase), attempts, trials,
                jnp.where(found, x, x0), jnp.where(found, lp, lp0), jnp.where(found, g, g0),
                jnp.where(searching, grown, eps), direction, jnp.where(searching, next_k, k))

    phase = jnp.where(initialize, _INIT, jnp.where(search, _SEARCH, _DONE))
    zero = jnp.zeros((), jnp.int64)
    carry = (phase, zero, zero, state.position, state.logdensity, state.logdensity_grad,
             jnp.asarray(step_size, jnp.float64), jnp.ones((), jnp.int64), key)
    _, attempts, trials, position, lp, grad, eps, _, _ = jax.lax.while_loop(lambda c: c[0] != _DONE, body, carry)
    attempts = jnp.where(initialize & ~finite(lp, grad), MAX_INIT_ATTEMPTS + 1, attempts)
    return position, lp, grad, attempts, eps, trials


def _build_chunk(fn, settings, dim: int):
    """The jitted ``chunk(state, data, init, flags, n) -> (state, outputs)`` of one chain."""
    import jax
    import jax.numpy as jnp
    from blackjax.mcmc.hmc import HMCState
    from ppl_ad.infer.jax_nuts import build_kernel, metric_functions

    dense = settings.metric == "dense"
    lowrank = settings.metric == "low_rank"
    nutpie = uses_nutpie_schedule(settings.metric_adaptation, dense)
    fisher = settings.metric_adaptation != "stan" and not dense
    target = float(settings.target_accept)
    max_depth = int(settings.max_treedepth)
    kernel = build_kernel(divergence_threshold=float(settings.max_energy_error))

    def dual_averaging_init(step_size):
        log_eps = jnp.log(step_size)
        zero = jnp.zeros_like(log_eps)
        return DualAveragingState(log_eps, zero, jnp.zeros((), jnp.int64), zero, jnp.log(10.0) + log_eps)

    def dual_averaging_update(da, acceptance_rate, gamma=0.05, t0=10.0, kappa=0.75):
        acceptance_rate = jnp.where(jnp.isnan(acceptance_rate), 0.0, jnp.minimum(acceptance_rate, 1.0))
        step = da.step + 1
        eta = 1.0 / (step + t0)
        avg_error = (1.0 - eta) * da.avg_error + eta * (target - acceptance_rate)
        x = da.mu - avg_error * jnp.sqrt(step) / gamma
        x_eta = step ** (-kappa)
        x_bar = (1.0 - x_eta) * da.log_step_size_avg + x_eta * x
        return DualAveragingState(x, x_bar, step, avg_error, da.mu)

    width = welford_width(dim, dense, settings.metric_adaptation)  # positions, then gradients (fisher)

    def welford_init():
        m2 = jnp.zeros((dim, dim) if dense else (width,))
        return WelfordState(jnp.zeros((), jnp.int64), jnp.zeros(width), m2)

    def welford_update(w, x):
        count = w.count + 1
        delta = x - w.mean
        mean = w.mean + delta / count
        m2 = w.m2 + (jnp.outer(x - mean, delta) if dense else delta * (x - mean))
        return WelfordState(count, mean, m2)

    def fisher_diagonal(count, m2, fallback):
        """As :func:`ppl_ad.infer.adaptation.fisher_diagonal`."""
        var = m2 / (count.astype(jnp.float64) - 1.0)
        imm = jnp.sqrt(var[:dim] / var[dim:])
        return jnp.where(jnp.isfinite(imm) & (imm > 0), jnp.clip(imm, FISHER_MIN, FISHER_MAX), fallback)

    def regularized_covariance(w, current):
        n = w.count.astype(jnp.float64)
        if fisher:  # a coordinate without a valid ratio keeps the current metric (nutpie's fallback)
            return fisher_diagonal(w.count, w.m2, current)
        cov = w.m2 / (n - 1.0)
        if dense:
            cov = 0.5 * (cov + cov.T)
        cov = (n / (n + 5.0)) * cov
        shrink = 1e-3 * (5.0 / (n + 5.0))
        return cov + (shrink * jnp.eye(dim) if dense else shrink)

    def nutpie_estimators(w, seen, enters, switch, good):
        """nutpie's foreground and background estimators (rows 0 and 1 of ``welford``) after a
        draw, as :mod:`ppl_ad.infer.adaptation.window` (``good``: the draw enters them; the
        switch happens either way)."""
        count = w.count + 1
        delta = seen - w.mean
        mean = w.mean + delta / count[:, None]
        m2 = w.m2 + delta * (seen - mean)
        count, mean, m2 = (jnp.where(good, a, b) for a, b in zip((count, mean, m2), w))
        switched = [jnp.stack([a[1], jnp.zeros_like(a[1])]) for a in (count, mean, m2)]
        count, mean, m2 = (jnp.where(switch, b, a) for a, b in zip((count, mean, m2), switched))
        return jax.tree.map(lambda a, b: jnp.where(enters, a, b), WelfordState(count, mean, m2), w)

    def adaptation_step(adapt, acceptance_rate, new, in_slow, window_end, last_warmup, refit, good, may_restart):
        """Warmup: dual averaging always; Stan: Welford in slow windows, a new metric at window
        ends; nutpie: both estimators (draws that moved and did not diverge) and a new metric
        after each draw of the metric phase; the first one makes the step-size heuristic due."""
        da = dual_averaging_update(adapt.dual_averaging, acceptance_rate)
        seen = jnp.concatenate([new.position, new.logdensity_grad]) if fisher else new.position
        ring = adapt.draws
        old = adapt.inverse_mass_matrix
        stage = adapt.metric_stage
        if nutpie:
            welford = nutpie_estimators(adapt.welford, seen, in_slow, window_end, good)
            ready = in_slow & (welford.count[0] >= 3)
            changed = ready & (refit != 0) if lowrank else ready
            # the heuristic runs at the next iteration (in nutpie's early window; later, no restart)
            stage = jnp.where(changed & (stage == 0), jnp.where(may_restart, 1, 2), stage)
        if lowrank:  # the draw enters the ring; the metric is re-estimated after the iteration (refit_metric)
            ring = jax.tree.map(lambda a, b: jnp.where(in_slow & good, a, b),
                                low_rank.window_draws(ring, new.position, new.logdensity_grad, jnp), ring)
            imm = old
        elif nutpie:  # the metric follows the foreground after every draw
            imm = jnp.where(ready, fisher_diagonal(welford.count[0], welford.m2[0], old), old)
        else:
            welford = jax.tree.map(
                lambda a, b: jnp.where(in_slow, a, b), welford_update(adapt.welford, seen), adapt.welford
            )
            imm = jnp.where(window_end, regularized_covariance(welford, old), adapt.inverse_mass_matrix)
            welford = jax.tree.map(lambda a, b: jnp.where(window_end, a, b), welford_init(), welford)
        final_step_size = jnp.where(da.step > 0, jnp.exp(da.log_step_size_avg), jnp.exp(da.log_step_size))
        step_size = jnp.where(last_warmup, final_step_size, jnp.exp(da.log_step_size))
        return WindowAdaptationState(step_size, imm, da, welford, ring, stage)

    def refit_metric(state: ChainState, flags):
        """``metric="low_rank"``: the state after an iteration whose flags ask for a new estimate
        (nutpie's schedule: the foreground estimator holds at least 3 draws), from the newest draws
        of the ring. Kept out of :func:`iteration`: the estimate's LAPACK calls (``eigh``, ``qr``)
        and sorts would keep XLA from compiling the loop of iterations whole (see ``chunk``)."""
        adapt = state.adaptation
        old = adapt.inverse_mass_matrix
        ready = flags[_IN_SLOW].astype(bool) & (adapt.welford.count[0] >= 3)  # refits are warmup's only
        newest = adapt.welford.count[0]

        def refit_from(rows):
            fitted = low_rank.fit(low_rank.newest_rows(adapt.draws, rows, jnp), newest, old, jnp)
            return jax.tree.map(lambda a, b: jnp.where(ready, a, b), fitted, old)

        imm = jax.lax.switch(flags[_REFIT].astype(jnp.int32),
                             [lambda: old, lambda: refit_from(low_rank.SHORT_WINDOW),
                              lambda: refit_from(low_rank.MAX_WINDOW)])
        return state._replace(adaptation=adapt._replace(inverse_mass_matrix=imm))

    def iteration(data, init, state: ChainState, flags):
        logdensity_fn = lambda x: fn(x, data)  # noqa: E731
        in_slow, window_end, adapting, last_warmup, search, initialize = (flags[k].astype(bool) for k in range(6))
        search = search | (state.adaptation.metric_stage == 1)  # the first metric estimate came last iteration
        refit = flags[_REFIT].astype(jnp.int32)  # a low_rank.refits code
        may_restart = flags[_MAY_RESTART].astype(bool)
        adapt = state.adaptation
        key, k_nuts = jax.random.split(state.rng)
        # the initial point at the first iteration; Stan's step-size heuristic then and after
        # each metric update (the window ended at the previous iteration), after which dual
        # averaging restarts from it
        def start(adapt):
            position, logdensity, grad, attempts, eps, trials = _start(
                logdensity_fn, init, state, adapt.inverse_mass_matrix, adapt.step_size, jax.random.fold_in(k_nuts, 1),
                initialize, search)
            adapt = adapt._replace(metric_stage=jnp.where(adapt.metric_stage == 1, 2, adapt.metric_stage),
                                   step_size=eps, dual_averaging=jax.tree.map(
                lambda a, b: jnp.where(search, a, b), dual_averaging_init(eps), adapt.dual_averaging))
            return position, logdensity, grad, attempts, trials, adapt

        def carry_on(adapt):
            zero = jnp.zeros((), jnp.int64)
            return state.position, state.logdensity, state.logdensity_grad, zero, zero, adapt

        # the start is the rare case: skipped as a whole otherwise (measured: 2 % of a step on eight schools)
        position, logdensity, grad, attempts, trials, adapt = jax.lax.cond(initialize | search, start, carry_on, adapt)
        hmc_state = HMCState(position, logdensity, grad)

        new, info = kernel(k_nuts, hmc_state, logdensity_fn, adapt.step_size, adapt.inverse_mass_matrix, max_depth)
        kinetic0 = metric_functions(adapt.inverse_mass_matrix)[1](info.momentum)
        energy_error = info.energy - (kinetic0 - logdensity)

        # skipped at run time after warmup (under vmap both branches run, selected per chain)
        # (only what the step reads is passed: every operand of a cond costs on each iteration)
        good = ~info.is_divergent & jnp.any(new.position != position)  # the draw may enter nutpie's estimators
        adaptation = jax.lax.cond(adapting, adaptation_step, lambda adapt, *_: adapt, adapt, info.acceptance_rate,
                                  new, in_slow, window_end, last_warmup, refit, good, may_restart)

        next_state = ChainState(new.position, new.logdensity, new.logdensity_grad, adaptation, key)
        depth = info.num_trajectory_expansions
        out = {
            "position": new.position,
            "lp": new.logdensity,
            "acceptance_rate": jnp.minimum(info.acceptance_rate, 1.0),  # exp(logsumexp) / n rounds above 1
            "step_size": adapt.step_size,
            "n_steps": info.num_integration_steps,
            "diverging": info.is_divergent,
            "energy": info.energy,
            "energy_error": energy_error,
            "tree_depth": depth,
            "reached_max_treedepth": depth >= max_depth,
            "heuristic_steps": trials,
            "init_attempts": attempts,
        }
        return next_state, {name: jnp.asarray(value, outputs[name][1]) for name, value in out.items()}

    outputs = _outputs(dim)

    # the statistics are written into two tables (floats, integers and flags) rather than one
    # buffer each: fewer in-place updates per iteration (measured: 3 % of a step on eight schools)
    scalars = [name for name in outputs if name != "position"]
    floats = [name for name in scalars if np.dtype(outputs[name][1]).kind == "f"]
    integers = [name for name in scalars if np.dtype(outputs[name][1]).kind != "f"]

    def chunk(state, data, init, flags, n):
        """``n`` iterations (at most ``len(flags)``, the capacity); rows past ``n`` stay zero."""
        capacity = flags.shape[0]
        tables = (jnp.zeros((capacity, dim)), jnp.zeros((capacity, len(floats))),
                  jnp.zeros((capacity, len(integers)), jnp.int64))

        def body(i, carry):
            s, (positions, float_rows, integer_rows) = carry
            s, out = iteration(data, init, s, flags[i])
            return s, (positions.at[i].set(out["position"]),
                       float_rows.at[i].set(jnp.stack([out[name].astype(jnp.float64) for name in floats])),
                       integer_rows.at[i].set(jnp.stack([out[name].astype(jnp.int64) for name in integers])))

        if lowrank:
            # Iterations run in segments that end at an iteration with a metric estimate, which
            # follows the segment. XLA:CPU compiles a loop that holds a LAPACK call or a sort as
            # a sequence of kernels, dispatched one by one at every iteration; the loop of a
            # segment holds neither, and compiles whole (see ppl_ad.infer.lowering). On the 100-d
            # Gaussian a leapfrog step of the sampling phase took 24 µs with the estimate inside
            # the iteration, 12.7 in segments (4 x (500 + 500), one process, one core).
            refits = flags[:, _REFIT] != 0
            index = jnp.arange(capacity)

            def segment(carry):
                i, s, rows = carry
                last = jnp.min(jnp.where(refits & (index >= i) & (index < n), index, n - 1))
                s, rows = jax.lax.fori_loop(i, last + 1, body, (s, rows))
                s = jax.lax.cond(refits[last], refit_metric, lambda s, _: s, s, flags[last])
                return last + 1, s, rows

            _, state, (positions, float_rows, integer_rows) = jax.lax.while_loop(
                lambda carry: carry[0] < n, segment, (jnp.zeros_like(n), state, tables))
        else:
            state, (positions, float_rows, integer_rows) = jax.lax.fori_loop(0, n, body, (state, tables))
        buffers = {"position": positions}
        buffers.update({name: float_rows[:, j].astype(outputs[name][1]) for j, name in enumerate(floats)})
        buffers.update({name: integer_rows[:, j].astype(outputs[name][1]) for j, name in enumerate(integers)})
        return state, buffers

    return chunk


def _outputs(dim: int) -> dict:
    """Name -> (shape, dtype) of what an iteration reports: the draw, the sample statistics
    (:func:`ppl_ad.infer.chain.stat_dtypes`) and the warmup's own counts."""
    out = {"position": ((dim,), np.float64)}
    out.update({name: ((), np.dtype(dtype)) for name, dtype in stat_dtypes("nuts").items()})
    out.update(heuristic_steps=((), np.int64), init_attempts=((), np.int64))
    return out


def _capacity(dim: int) -> int:
    """Most iterations per call: :data:`MAX_CHUNK`, fewer when the draws would pass 16 MiB."""
    return max(1, min(MAX_CHUNK, 2**21 // (dim + 16)))


def _initial_state(dim: int, key, settings) -> ChainState:
    """The state before the first iteration, as NumPy arrays (no JAX operation runs here): the
    unit metric and ``initial_step_size`` for the heuristic to start from; the position, log
    density and gradient are placeholders that the first iteration's search replaces
    (:func:`_start`)."""
    dense = settings.metric == "dense"
    imm = np.eye(dim) if dense else np.ones(dim)
    ring = None
    if settings.metric == "low_rank":
        imm, ring = low_rank.identity(dim), low_rank.window_draws_init(dim)
    zero, count = np.zeros(()), np.zeros((), np.int64)
    da = DualAveragingState(zero, zero, count, zero, zero)
    width = welford_width(dim, dense, settings.metric_adaptation)
    if uses_nutpie_schedule(settings.metric_adaptation, dense):  # a foreground and a background row
        welford = WelfordState(np.zeros(2, np.int64), np.zeros((2, width)), np.zeros((2, width)))
    else:
        welford = WelfordState(count, np.zeros(width), np.zeros((dim, dim) if dense else (width,)))
    adaptation = WindowAdaptationState(np.asarray(float(settings.initial_step_size)), imm, da, welford, ring,
                                       np.asarray(0, np.int32))
    return ChainState(np.zeros(dim), np.asarray(-np.inf), np.zeros(dim), adaptation, np.asarray(key, np.uint32))


def _chain_key(seed_seq, purpose: int = 0x6A6178) -> np.ndarray:
    """A raw ``uint32[2]`` JAX key of a chain, from its ``SeedSequence`` (not the NumPy stream):
    the sampler's, or (``purpose=_INIT_KEY``) the initial point's."""
    child = np.random.SeedSequence(seed_seq.entropy, spawn_key=tuple(seed_seq.spawn_key) + (purpose,))
    return child.generate_state(2, dtype=np.uint32)


_INIT_KEY = 0x696E6974


def run_chains(ld, seeds, inits, settings, progress=None, vectorized: bool = True, checkpoints=None,
               init="jitter", when_compiling=None) -> list[ChainResult]:
    """Run chains with the compiled engine.

    Parameters
    ----------
    ld : LogDensity
        With a traceable backend (``ld.traceable()``).
    seeds : list of numpy.random.SeedSequence
        One per chain.
    inits : list
        Per chain, ``(base, mask)`` from :func:`ppl_ad.infer.init.initial_spec`: the program
        searches the initial point itself (no separate compile of the backend); None for a
        chain that resumes from its checkpoint.
    settings : ppl_ad.infer.chain.ChainSettings
    progress : list of callable, optional
        One ``progress(done, tuning, divergences)`` per chain, called between chunks.
    vectorized : bool, optional
        All chains at once in one program (``jax.vmap``); else one after another, with the
        program compiled once.
    checkpoints : list of ppl_ad.infer.checkpoint.ChainCheckpoint, optional
        One per chain (not with ``vectorized``): resume from and save to them between chunks.
    init : optional
        ``pa.sample``'s ``init``, for the message when no finite initial point is found.
    when_compiling : callable, optional
        Called once, without arguments, when the Python work of the run is done (the program is
        traced and lowered, or its stored copy found) and XLA compiles, loads or runs it, all of
        which release the GIL: background work started there (``pa.sample`` imports ArviZ and
        builds its first dataset) competes with XLA rather than with tracing. Started before
        tracing instead, that work made a cold eight-schools run 0.5 s slower.

    Returns
    -------
    list of ChainResult

    Raises
    ------
    ppl_ad.errors.SamplingError
        No finite initial point, or warmup failed (non-finite step size or metric: the
        posterior is probably improper).
    """
    import jax

    enable_compilation_cache()  # before anything compiles (also done by the JAX backends)
    fn, data = ld.traceable()
    data = jax.device_put(data)
    vectorized = bool(vectorized) and len(seeds) > 1
    if vectorized and checkpoints:
        raise ValueError("checkpointed chains run one per program (not vectorized)")
    groups = [list(range(len(seeds)))] if vectorized else [[c] for c in range(len(seeds))]
    capacity = _capacity(int(ld.dimension))
    flags = _flags(int(settings.tune), int(settings.draws), capacity, settings.metric_adaptation,
                   settings.metric == "dense")
    key = _program_key(ld, fn, data, settings, capacity, len(seeds) if vectorized else 1)
    compiled = _PROGRAMS.get(key)
    compile_time = 0.0
    results = []
    # LAPACK (a low-rank or dense metric's estimates, a model's Cholesky) on one thread while
    # the program runs: its threads spin and wait for each other on busy cores (ppl_ad.infer.threads)
    with one_lapack_thread():
        for group in groups:
            start = time.perf_counter()
            run = _GroupRun(ld, settings, len(group), checkpoints[group[0]] if checkpoints else None)
            if run.done >= run.total:  # a finished chain of a resumed run: nothing to compute
                results += run.results(compile_time, vectorized)
                continue
            dim = int(ld.dimension)
            if run.resumed is not None:
                state = _from_chain_state(run.resumed)
                starts = [(np.asarray(run.resumed.position, np.float64), np.ones(dim, bool), _chain_key(seeds[group[0]]))]
            else:
                state = _stack([_initial_state(dim, _chain_key(seeds[c]), settings) for c in group], vectorized)
                starts = [(*inits[c], _chain_key(seeds[c], _INIT_KEY)) for c in group]
            start_spec = _stack(starts, vectorized)
            if compiled is None:
                compile_start = time.perf_counter()
                compiled = _compile(fn, settings, dim, vectorized,
                                    (state, data, start_spec, flags[:capacity], np.asarray(capacity, np.int64)),
                                    when_compiling, density_key=key[0] if key is not None else None)
                when_compiling = None
                compile_time = time.perf_counter() - compile_start
                start += compile_time
                if key is not None:
                    _PROGRAMS[key] = compiled
                    while len(_PROGRAMS) > 16:
                        _PROGRAMS.pop(next(iter(_PROGRAMS)))
            if when_compiling is not None:  # the program was compiled earlier in this process
                when_compiling()
                when_compiling = None
            reports = [progress[c] for c in group] if progress else None
            run.advance(compiled, state, data, start_spec, flags, capacity, reports, start, vectorized)
            for i, attempts in enumerate(run.init_attempts):
                if attempts > MAX_INIT_ATTEMPTS:
                    raise no_initial_point(ld, init, group[i], _last_candidate(starts[i], MAX_INIT_ATTEMPTS))
            results += run.results(compile_time, vectorized)
    return results


def _compile(fn, settings, dim: int, vectorized: bool, args, when_compiling=None, density_key=None):
    """The compiled chunk program for ``args``: from the on-disk program cache when it has it
    (no tracing, and BlackJAX is not even imported), else traced, compiled and stored there.
    ``when_compiling()`` (see :func:`run_chains`) is called before XLA loads or compiles;
    ``density_key`` is :func:`_program_key`'s fingerprint of the density, when it has one (the
    program's key is derived from it instead of tracing the density again)."""
    import jax

    from ppl_ad.infer import program_cache

    started = when_compiling or (lambda: None)
    options = compile_options(jax.default_backend())  # LLVM at -O1 on the CPU (see ppl_ad.infer.lowering)
    parts = ("jax_engine.chunk", tuple(settings._replace(draws=0, tune=0)), vectorized, program_cache.describe(args),
             ("small loops", SMALL_LOOP_BYTES, small_loop_hoisting_available()), ("options", sorted(options.items())))
    if density_key is not None:
        key = program_cache.derived(density_key, (parts, program_cache.describe(args[1])))
    else:
        key = program_cache.fingerprint(fn, dim, args[1], parts)
    stored = program_cache.stored(key) if key else False
    if stored:
        started()
        compiled = program_cache.load(key)
        if compiled is not None:
            return compiled
    chunk = _build_chunk(fn, settings, dim)
    if vectorized:
        chunk = jax.vmap(chunk, in_axes=(0, None, 0, None, None))
    with unrolled_threefry():  # the hash without a loop on the CPU (see ppl_ad.infer.lowering)
        lowered = jax.jit(chunk).lower(*args)
    if not stored:
        started()
    with hoisted_small_loops(SMALL_LOOP_BYTES):  # small loops as one function (see ppl_ad.infer.lowering)
        if key is None:
            return lowered.compile(compiler_options=options)
        compiled = program_cache.compile_fresh(lowered, options)
    program_cache.store(key, compiled)
    return compiled


def _stack(trees, vectorized: bool):
    """One chain's tree, or the chains' trees stacked along a new first axis (NumPy)."""
    if not vectorized:
        return trees[0]
    import jax

    return jax.tree.map(lambda *xs: np.stack(xs), *trees)


def _last_candidate(start, attempts: int) -> np.ndarray:
    """The point :func:`_start` tried last (for the error message)."""
    import jax

    base, mask, key = start
    jitter = jax.random.uniform(jax.random.fold_in(key, attempts - 1), base.shape, np.float64, -2.0, 2.0)
    return np.where(mask, base, np.asarray(jitter))


#: compiled chunk programs of this process, by :func:`_program_key` (a model refitted to new data
#: of the same shapes, as in simulation-based calibration, reuses its program)
_PROGRAMS: dict = {}


def _program_key(ld, fn, data, settings, size: int, n_chains: int):
    """What a compiled chunk program depends on: the log density as traced (the jaxpr of its value
    and gradient, with its constants: :func:`ppl_ad.infer.program_cache.fingerprint`), the shapes
    and dtypes of its array data, backend, settings and chunk size; None when it cannot be told.

    The trace (tens of milliseconds) is what makes the key safe: a model function's identity does
    not change when a global constant it reads or a helper it calls does, and such a key handed
    the old program (and the old posterior) to the changed model."""
    from ppl_ad.infer import program_cache
    from ppl_ad.infer.checkpoint import data_hash

    model = getattr(ld, "model", None)
    if getattr(model, "data", None) is None:
        return None
    try:
        rest_key = data_hash({k: v for k, v in model.data.items() if k not in data})  # exact, not a repr
    except Exception:  # noqa: BLE001 - an unhashable argument: do not cache
        return None
    traced = program_cache.fingerprint(fn, int(ld.dimension), data, ("jax_engine.density",))
    if traced is None:
        return None
    shapes = tuple(sorted((k, tuple(v.shape), str(v.dtype)) for k, v in data.items()))
    options = (settings.metric, settings.metric_adaptation, float(settings.target_accept), int(settings.max_treedepth),
               float(settings.max_energy_error), float(settings.initial_step_size))
    return (traced, getattr(ld.backend, "name", None), getattr(ld.compiled, "jacobian", True), rest_key, shapes,
            int(ld.dimension), options, int(size), int(n_chains))


def _flags(tune: int, draws: int, capacity: int, estimator: str, dense: bool) -> np.ndarray:
    """Per-iteration flags (:func:`_phases`) padded so that a call at any iteration can take a
    window of ``capacity`` rows."""
    return np.concatenate([_phases(tune, draws, estimator, dense), np.zeros((capacity, _FLAGS), np.int8)])


def _next_chunk(begin: int, tune: int, total: int, capacity: int, wanted: int, every: int | None) -> int:
    """Iterations of the call that starts at ``begin``: ``wanted``, within the capacity, not past
    the end of warmup (its times and checkpoint stay apart) or a save that ``every`` asks for."""
    n = min(wanted, capacity, total - begin)
    if begin < tune:
        n = min(n, tune - begin)
    if every:
        n = min(n, every - begin % every)
    return max(1, n)


def _from_chain_state(saved: ChainState) -> ChainState:
    import jax
    import jax.numpy as jnp

    a = saved.adaptation
    da = a.dual_averaging
    ring = a.draws
    if ring is not None:
        ring = low_rank.LowRankDraws(jnp.asarray(ring.positions, jnp.float64), jnp.asarray(ring.gradients, jnp.float64),
                                     jnp.asarray(ring.count, jnp.int64))
    adaptation = WindowAdaptationState(
        jnp.asarray(a.step_size, jnp.float64),
        jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), a.inverse_mass_matrix),
        DualAveragingState(*(jnp.asarray(x, jnp.int64 if i == 2 else jnp.float64) for i, x in enumerate(da))),
        WelfordState(jnp.asarray(a.welford.count, jnp.int64), jnp.asarray(a.welford.mean, jnp.float64),
                     jnp.asarray(a.welford.m2, jnp.float64)),
        ring,
        jnp.asarray(a.metric_stage, jnp.int32),
    )
    return ChainState(jnp.asarray(saved.position, jnp.float64), jnp.asarray(saved.logdensity, jnp.float64),
                         jnp.asarray(saved.logdensity_grad, jnp.float64), adaptation,
                         jnp.asarray(saved.rng, jnp.uint32))


def _to_chain_state(state: ChainState) -> ChainState:
    import jax

    s = jax.device_get(state)
    return ChainState(np.asarray(s.position), float(s.logdensity), np.asarray(s.logdensity_grad), s.adaptation,
                      np.asarray(s.rng))


class _GroupRun:
    """The outputs of one chain (or a vectorized group) filled chunk by chunk, with its checkpoint."""

    def __init__(self, ld, settings, n_chains, checkpoint):
        self.ld, self.settings, self.checkpoint = ld, settings, checkpoint
        self.tune, self.draws = int(settings.tune), int(settings.draws)
        self.total = self.tune + self.draws
        dim = int(ld.dimension)
        self.positions = np.empty((n_chains, self.draws, dim))
        self.stats = [{name: np.empty(self.draws, dtype=dt) for name, dt in stat_dtypes("nuts").items()}
                      for _ in range(n_chains)]
        keep = bool(getattr(settings, "keep_warmup", False))  # discard_tuned_samples=False (no checkpoint)
        self.warmup_positions = np.empty((n_chains, self.tune, dim)) if keep else None
        self.warmup_stats = [{name: np.empty(self.tune, dtype=dt) for name, dt in stat_dtypes("nuts").items()}
                             for _ in range(n_chains)] if keep else None
        self.totals = [{"tuning_time": 0.0, "sampling_time": 0.0, "warmup_divergences": 0,
                        "gradient_evaluations": 0, "gradient_time": math.nan} for _ in range(n_chains)]
        self.adaptation = [None] * n_chains
        self.init_attempts = [0] * n_chains
        self.done, self.resumed = 0, None
        if checkpoint is not None:
            resumed = checkpoint.resume(self.positions[0], self.stats[0])
            if resumed is not None:
                self.done, self.resumed, saved_totals = resumed
                self.totals[0].update(saved_totals, gradient_time=math.nan)
                self.adaptation[0] = self.resumed.adaptation

    def advance(self, compiled, state, data, init, flags, capacity, progress, start, vectorized):
        """Run the chain(s) to the end, in calls of about :data:`CHUNK_SECONDS` each."""
        import jax

        tune, total = self.tune, self.total
        n_chains = len(self.stats)
        sampling_divergences = [int(s["diverging"][: max(0, self.done - tune)].sum()) for s in self.stats]
        cp = self.checkpoint
        last, wanted = start, FIRST_CHUNK
        while self.done < total:
            begin = self.done
            n = _next_chunk(begin, tune, total, capacity, wanted, cp.every if cp is not None else None)
            state, out = compiled(state, data, init, flags[begin:begin + capacity], np.asarray(n, np.int64))
            out = jax.device_get(out)
            for c in range(n_chains):
                o = {k: (v[c] if vectorized else v)[:n] for k, v in out.items()}
                warm = min(n, max(0, tune - begin))
                totals = self.totals[c]
                attempts = int(o["init_attempts"].sum())
                self.init_attempts[c] = max(self.init_attempts[c], attempts)
                totals["warmup_divergences"] += int(o["diverging"][:warm].sum())
                if self.warmup_positions is not None and warm:
                    self.warmup_positions[c, begin:begin + warm] = o["position"][:warm]
                    for name, values in self.warmup_stats[c].items():
                        values[begin:begin + warm] = o[name][:warm]
                totals["gradient_evaluations"] += int(o["n_steps"].sum() + o["heuristic_steps"].sum()
                                                      + min(attempts, MAX_INIT_ATTEMPTS))
                if n > warm:
                    rows = slice(begin + warm - tune, begin + n - tune)
                    self.positions[c, rows] = o["position"][warm:]
                    for name, values in self.stats[c].items():
                        values[rows] = o[name][warm:]
                    sampling_divergences[c] += int(o["diverging"][warm:].sum())
            if max(self.init_attempts) > MAX_INIT_ATTEMPTS:
                return  # no finite initial point: the caller raises
            self.done = begin + n
            _check_adaptation(state, self.ld)
            now = time.perf_counter()
            for totals in self.totals:
                totals["tuning_time" if begin < tune else "sampling_time"] += (now - last) / n_chains
            # as many iterations as take CHUNK_SECONDS at this call's pace, growing at most 4x
            wanted = max(1, min(4 * n, int(CHUNK_SECONDS * n / max(now - last, 1e-6))))
            last = now
            for c, report in enumerate(progress or ()):
                if self.done <= tune:
                    report(self.done, True, self.totals[c]["warmup_divergences"])
                else:
                    report(self.done - tune, False, sampling_divergences[c])
            if cp is not None and (cp.due(self.done) or self.done >= total or self.done == tune):
                chain_state = _to_chain_state(state)
                cp.save(self.done, chain_state, self.positions[0], self.stats[0], self.totals[0])
        final = jax.device_get(state.adaptation)
        for c in range(n_chains):
            self.adaptation[c] = jax.tree.map(lambda a: a[c], final) if vectorized else final

    def results(self, compile_time, vectorized) -> list[ChainResult]:
        out = []
        for c, stats in enumerate(self.stats):
            totals, adaptation = self.totals[c], self.adaptation[c]
            step_size = float(adaptation.step_size) if adaptation is not None else float(stats["step_size"][-1])
            imm = dense_inverse_metric(adaptation.inverse_mass_matrix) if adaptation is not None else np.empty(0)
            out.append(ChainResult(
                draws=self.positions[c],
                stats=stats,
                step_size=step_size,
                inverse_mass_matrix=imm,
                tuning_time=float(totals["tuning_time"]),
                sampling_time=float(totals["sampling_time"]),
                warmup_divergences=int(totals["warmup_divergences"]),
                gradient_evaluations=int(totals["gradient_evaluations"]),
                gradient_time=math.nan,
                compile_time=compile_time,
                warmup_draws=self.warmup_positions[c] if self.warmup_positions is not None else None,
                warmup_stats=self.warmup_stats[c] if self.warmup_stats is not None else None,
            ))
        return out


def _check_adaptation(state, ld) -> None:
    import jax

    step_size = np.asarray(state.adaptation.step_size)
    imm = np.concatenate([np.ravel(a) for a in jax.tree.leaves(state.adaptation.inverse_mass_matrix)])
    if not (np.all(np.isfinite(step_size)) and np.all(step_size > 0) and np.all(step_size <= 1e7)):
        raise SamplingError(
            f"model '{getattr(ld.model, 'name', '?')}': warmup produced the step size(s) {step_size.tolist()}: "
            "the posterior is probably improper (or the log density is not finite where the sampler goes). "
            "Please check the model."
        )
    if not np.all(np.isfinite(imm)):
        raise SamplingError("the metric estimated during warmup is not finite")
