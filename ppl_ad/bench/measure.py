"""What every ppl_ad measurement shares: one error measure, one call timer, one thread setting.

:func:`relative_error`
    The relative error used by ``pa.check_gradients``, ``pa.benchmark``, ``backend="auto"``
    and ``ppl-ad bench`` (columns ``gradient_rel_error`` and ``value_rel_error``).
:func:`time_calls` / :func:`time_call`
    Median time of a call, in interleaved rounds when several functions are compared (so a
    burst of load on a shared machine hits every one alike), with the spread between rounds
    as the noise of the measurement.
:func:`thread_limits` / :func:`measurement_environment`
    The thread limits of the sampler's worker processes
    (``ppl_ad.infer``'s ``worker_environment`` for the default 4 chains), applied to an
    in-process measurement or passed to a measuring subprocess, so that a gradient is timed
    the way NUTS will call it. Without them, on a loaded 2-core machine, ``jax-forward``
    measured 12 000 µs per gradient against 144 µs with one thread.

This module imports no AD library.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import statistics
import sys
import time
from typing import Callable, Mapping, NamedTuple

import numpy as np

from ppl_ad.testing.gradients import relative_error, worst_errors

__all__ = [
    "relative_error", "worst_errors", "Timing", "time_call", "time_calls", "thread_limits", "measurement_environment",
    "SAMPLER_CHAINS",
]

logger = logging.getLogger(__name__)

#: chains of ``pa.sample``'s default, whose worker processes the measurements imitate
SAMPLER_CHAINS = 4


class Timing(NamedTuple):
    """A timed call.

    Attributes
    ----------
    median : float
        Seconds per call: the median over the rounds of each round's median call.
    repeats : int
        Timed calls per round.
    rounds : int
        Rounds.
    spread : float
        ``(max - min) / median`` of the round medians: the noise of the measurement
        (0.0 with one round).
    """

    median: float
    repeats: int
    rounds: int = 1
    spread: float = 0.0


def _calibrate(fn, x, budget: float) -> int:
    """Calls of ``fn(x)`` that take about ``budget`` seconds (at least 1, at most 100 000)."""
    calls, start = 0, time.perf_counter()
    while calls < 20 and time.perf_counter() - start < 0.02:
        fn(x)
        calls += 1
    once = (time.perf_counter() - start) / calls
    return int(min(100_000, max(1, budget / max(once, 1e-7))))


def time_calls(functions: Mapping[str, Callable], x, *, repeats: int | None = None, budget: float = 0.3,
               rounds: int = 1, warmup: int = 2) -> dict[str, Timing]:
    """Median time of ``fn(x)`` for each function, measured in interleaved rounds.

    Parameters
    ----------
    functions : mapping of str to callable
        The functions compared; each is called as ``fn(x)``.
    x : object
        The argument.
    repeats : int, optional
        Timed calls per function and round; None chooses them so that each function's
        timed calls take about ``budget`` seconds in all.
    budget : float
        Seconds of timed calls per function (when ``repeats`` is None).
    rounds : int
        Each round times every function in turn; a function's time is the median of its
        round medians and the spread between rounds is the noise.
    warmup : int
        Untimed calls of each function first (compilation, caches).

    Returns
    -------
    dict of str to Timing
    """
    rounds = max(1, int(rounds))
    counts = {}
    for name, fn in functions.items():
        for _ in range(warmup):
            fn(x)
        counts[name] = repeats if repeats is not None else max(1, _calibrate(fn, x, budget) // rounds)
    medians: dict[str, list[float]] = {name: [] for name in functions}
    clock = time.perf_counter
    for _ in range(rounds):
        for name, fn in functions.items():
            times = []
            for _ in range(counts[name]):
                start = clock()
                fn(x)
                times.append(clock() - start)
            medians[name].append(statistics.median(times))
    out = {}
    for name, values in medians.items():
        median = statistics.median(values)
        spread = (max(values) - min(values)) / median if median > 0 else 0.0
        out[name] = Timing(median, counts[name], rounds, spread)
    return out


def time_call(fn, x, repeats: int | None = None, budget: float = 0.3, rounds: int = 1) -> Timing:
    """Median time of ``fn(x)`` after two warm-up calls (:func:`time_calls` for one function)."""
    return time_calls({"call": fn}, x, repeats=repeats, budget=budget, rounds=rounds)["call"]


def _worker_environment():
    """``worker_environment`` of the sampler, wherever ``ppl_ad.infer`` keeps it."""
    for module in ("ppl_ad.infer.parallel", "ppl_ad.infer.run"):
        try:
            return getattr(importlib.import_module(module), "worker_environment")
        except (ImportError, AttributeError):
            continue
    raise ImportError("ppl_ad.infer has no worker_environment (looked in ppl_ad.infer.parallel and .run)")


def measurement_environment(chains: int = SAMPLER_CHAINS) -> dict[str, str]:
    """The environment variables the sampler gives its workers for ``chains`` default chains.

    ``min(chains, os.cpu_count())`` processes share the CPUs, each with
    ``cpus // processes`` threads (and XLA's Eigen pool off at one thread); variables the
    user has set are left alone. Pass them to a measuring subprocess.
    """
    processes = max(1, min(chains, os.cpu_count() or 1))
    return dict(_worker_environment()(processes))


@contextlib.contextmanager
def thread_limits(chains: int = SAMPLER_CHAINS):
    """Measure in this process under the thread limits of the sampler's workers.

    For the block: the variables of :func:`measurement_environment` are set in
    ``os.environ`` (read by a library that starts its thread pools inside the block: XLA
    reads ``XLA_FLAGS`` when JAX first initialises its CPU backend, and keeps it for the rest
    of the process), PyTorch's intra-op threads are set with ``torch.set_num_threads`` when
    PyTorch is imported, and BLAS/OpenMP pools are limited with ``threadpoolctl`` when it is
    installed. Everything but XLA's setting is restored afterwards.
    """
    changes = measurement_environment(chains)
    threads = max(1, (os.cpu_count() or 1) // max(1, min(chains, os.cpu_count() or 1)))
    if "OMP_NUM_THREADS" in os.environ and "OMP_NUM_THREADS" not in changes:
        try:  # the user's own setting wins, as in the workers
            threads = max(1, int(os.environ["OMP_NUM_THREADS"]))
        except ValueError:
            pass
    saved = {name: os.environ.get(name) for name in changes}
    if "XLA_FLAGS" in changes and "jax" in sys.modules:
        logger.debug("JAX was imported before the measurement; XLA_FLAGS apply only if its backend is not yet started")
    os.environ.update(changes)
    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch is not None else None
    with contextlib.ExitStack() as stack:
        if torch is not None:
            torch.set_num_threads(threads)
        if importlib.util.find_spec("threadpoolctl") is not None:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(limits=threads))
        try:
            yield changes
        finally:
            if torch is not None and torch_threads is not None:
                torch.set_num_threads(torch_threads)
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
