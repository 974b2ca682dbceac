"""Chains in worker processes: pickling the model, thread limits, the process pool.

This module owns how chains leave the parent process. Chains run in worker processes
started with the **spawn** method (JAX and PyTorch are not fork-safe). Each worker rebuilds its
own ``LogDensity`` from a picklable recipe (:func:`worker_spec`) and runs its chains with the
engine the parent chose; progress comes back through a queue. Every worker gets
``cpus // workers`` intra-op threads (:func:`worker_environment`), and a worker ends as soon
as its parent is gone.

Workers never run the user's main script. Spawn would re-run it in every worker (as
``__mp_main__``) so that objects defined there can be unpickled: a script without an
``if __name__ == "__main__":`` guard would then sample again in each worker, and a script read
from stdin (``python -``) cannot be re-run at all. Instead, models defined in ``__main__`` (a
script, a notebook, a REPL, ``python -c``) or inside a function travel by value (cloudpickle:
their code and the globals they use, as PyMC and Dask send them), and the workers start with the
main module hidden from spawn's preparation data (:func:`main_module_hidden`); they still get the
parent's ``sys.path`` and working directory.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import contextlib
import multiprocessing
import os
import pickle
import sys
import threading
import types
import warnings
from typing import Any

from ppl_ad.errors import SamplingError
from ppl_ad.infer.progress import ChainProgress

__all__ = [
    "worker_spec", "logdensity_from_spec", "worker_environment", "environment", "main_module_hidden", "run_parallel",
    "THREAD_VARIABLES",
]

_WORKER: dict[str, Any] = {}


def _rebuild_logdensity(model, backend, jacobian=True):
    from ppl_ad.logdensity import logdensity

    return logdensity(model, backend=backend, jacobian=jacobian)


def _is_ppl_ad_logdensity(ld) -> bool:
    try:
        from ppl_ad.logdensity import LogDensity
    except ImportError:
        return False
    return isinstance(ld, LogDensity)


def _rebuild_from_function(fn, name, preferred_backend, data, backend, jacobian=True):
    """Rebuild a log density from a model function sent by value (see :func:`_by_value_spec`)."""
    from ppl_ad.model.model import Model, ModelFunction

    return _rebuild_logdensity(Model(ModelFunction(fn, name, preferred_backend), data), backend, jacobian)


def _by_value_spec(ld) -> bytes | None:
    """The recipe with the model function pickled by value (cloudpickle), or None.

    For models defined in ``__main__`` (a script, a notebook, a REPL) or inside a function: a
    fresh process cannot import them by name, but cloudpickle sends the function's code and the
    globals it uses, as PyMC and Dask do.
    """
    try:
        import cloudpickle
    except ImportError:
        return None
    function = ld.model.function
    jacobian = getattr(ld, "jacobian", True)
    spec = (_rebuild_from_function, (function.fn, function.name, function.backend, ld.model.data, ld.backend, jacobian))
    try:
        data = cloudpickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(data)
    except Exception:  # noqa: BLE001 - any failure means "run in-process"
        return None
    return data


def worker_spec(ld) -> bytes | None:
    """Pickled recipe for rebuilding ``ld`` in a fresh process, or None if impossible.

    A ppl_ad model is pickled by reference to its module when it can be imported from there,
    and by value (cloudpickle) when it was defined in ``__main__`` or inside a function. Other
    log densities must pickle by reference (None otherwise: the chains then run in this process).
    """
    is_ppl_ad = _is_ppl_ad_logdensity(ld)
    spec = (_rebuild_logdensity, (ld.model, ld.backend, ld.jacobian)) if is_ppl_ad else (None, ld)
    try:
        data = pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - any pickling failure means "run in-process"
        data = None
    if data is not None and (b"__main__" in data or b"<locals>" in data):
        # Objects defined in __main__ (a notebook, a script) or inside a function
        # cannot be imported by name in a spawned process.
        data = None
    if data is None:
        # A model defined in __main__ (script, notebook, REPL) or in a function still runs in
        # parallel, sent by value; the workers never re-run the main script (main_module_hidden).
        return _by_value_spec(ld) if is_ppl_ad else None
    try:
        pickle.loads(data)  # objects pickled by name must be found again
    except Exception:  # noqa: BLE001
        return None
    return data


def _exit_with_parent() -> None:
    """Start a daemon thread that ends this worker as soon as its parent process is gone.

    A worker of a ``ProcessPoolExecutor`` would otherwise run its chain to the end after the
    parent was killed (SIGTERM, SIGKILL, a closed notebook kernel), using the cores for nothing.
    The thread blocks on the parent's sentinel, so it costs nothing while sampling.
    """
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    if parent is None:  # pragma: no cover - only a spawned worker calls this
        return

    def watch():
        wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="ppl_ad-parent-watch", daemon=True).start()


def _worker_init(spec: bytes, queue) -> None:
    _exit_with_parent()
    _WORKER.clear()
    _WORKER["spec"] = spec
    _WORKER["queue"] = queue


def logdensity_from_spec(spec: bytes):
    """The log density that :func:`worker_spec` pickled, rebuilt in this process.

    The parent already warned about a deprecated backend at the user's line; the rebuild does
    not warn again.
    """
    from ppl_ad.errors import PplAdDeprecationWarning

    factory, arg = pickle.loads(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PplAdDeprecationWarning)
        return arg if factory is None else factory(*arg)


def _worker_logdensity():
    ld = _WORKER.get("ld")
    if ld is None:
        ld = _WORKER["ld"] = logdensity_from_spec(_WORKER["spec"])
    return ld


def _queue_sink(chain, done, tuning, divergences):
    _WORKER["queue"].put((chain, done, tuning, divergences))


def _worker_run_chain(chain: int, seed_seq, settings, init, checkpoint=None):
    from ppl_ad.infer.engine import run_one_chain

    ld = _worker_logdensity()
    progress = None
    if _WORKER.get("queue") is not None:
        progress = ChainProgress(chain, _queue_sink, settings.tune, settings.draws)
    if checkpoint is None:
        return run_one_chain(ld, chain, seed_seq, settings, init, progress)
    from ppl_ad.infer.checkpoint import handle_signals

    with handle_signals():  # SIGINT/SIGTERM: save this chain at the next iteration, then stop
        return run_one_chain(ld, chain, seed_seq, settings, init, progress, checkpoint)


def _drain(queue, bars) -> None:
    import queue as queue_module

    while True:
        try:
            message = queue.get_nowait()
        except queue_module.Empty:
            return
        bars.update(*message)


#: variables that cap the intra-op threads of BLAS, OpenMP (PyTorch) and MKL in a process
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def worker_environment(processes: int, cpus: int | None = None) -> dict[str, str]:
    """Environment for ``processes`` chain workers that share ``cpus`` CPUs without oversubscribing.

    Each worker gets ``cpus // processes`` intra-op threads (at least one), as joblib does for its
    workers: with one process per core, a library's thread pool in every worker (XLA's Eigen pool,
    PyTorch's OpenMP threads, BLAS) fights the other workers for the same cores; measured on 2 cores
    with 2 chains, ``jax-forward`` on the 100-d Gaussian took 1.8-2.7 ms per gradient that way and
    0.23-0.39 ms with one thread per worker. Variables the user has set are left alone.

    Parameters
    ----------
    processes : int
        Worker processes running at the same time.
    cpus : int, optional
        Default ``os.cpu_count()``.

    Returns
    -------
    dict of str to str
        Variables to add to the workers' environment.
    """
    threads = max(1, (cpus or os.cpu_count() or 1) // max(1, processes))
    env = {name: str(threads) for name in THREAD_VARIABLES if name not in os.environ}
    flags = os.environ.get("XLA_FLAGS", "")
    if threads == 1 and "xla_cpu_multi_thread_eigen" not in flags:
        env["XLA_FLAGS"] = f"{flags} {_XLA_ONE_THREAD}".strip()
    return env


@contextlib.contextmanager
def environment(changes: dict[str, str]):
    """``os.environ`` with ``changes`` applied for the block (what spawned processes inherit)."""
    saved = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def main_module_hidden():
    """Hide the main module from spawn's preparation data while worker processes start.

    A spawned process re-runs the parent's main module (by ``__spec__`` name, or ``__file__``
    path) before it unpickles its task. The workers here never need it (models from ``__main__``
    travel by value, see :func:`worker_spec`), and re-running it is wrong or impossible: a script
    without an ``if __name__ == "__main__":`` guard would sample again in every worker, and
    ``python -`` has no file to re-run. For the block, ``sys.modules["__main__"]`` is a bare
    stand-in module, so the workers start like those of an interactive session; ``sys.path`` and
    the working directory still go to the workers. The user's module is put back afterwards.
    """
    main = sys.modules.get("__main__")
    if main is None or (getattr(main, "__spec__", None) is None and getattr(main, "__file__", None) is None):
        yield  # nothing to hide (notebook, REPL, python -c)
        return
    stand_in = types.ModuleType("__main__")
    stand_in.__spec__ = None
    sys.modules["__main__"] = stand_in
    try:
        yield
    finally:
        if sys.modules.get("__main__") is stand_in:
            sys.modules["__main__"] = main


def _exit_reason(codes) -> str:
    import signal

    names = []
    for code in codes:
        if code < 0:
            try:
                names.append(f"killed by {signal.Signals(-code).name}")
            except ValueError:
                names.append(f"killed by signal {-code}")
        else:
            names.append("exited")
    return ", ".join(names) + (" (SIGKILL often means the out-of-memory killer)" if -9 in codes else "")


def _forward_stop(executor) -> bool:
    """Pass a SIGINT/SIGTERM that reached this (parent) process on to the workers, which save
    their chains at the next iteration and stop; True once passed on. (A terminal's Ctrl-C reaches
    every process of the group; ``kill PID``, ``docker stop`` or a scheduler signal the parent only.)"""
    import signal

    from ppl_ad.infer.checkpoint import stop_signal

    number = stop_signal()
    if number is None:
        return False
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        try:
            os.kill(process.pid, number)
        except (ProcessLookupError, OSError):  # already gone
            pass
    return number in (signal.SIGINT, signal.SIGTERM)


def _broken_pool_error(codes, lost, checkpointed: bool) -> BaseException:
    """What to raise when worker processes ended without their results: the stop that a SIGINT or
    SIGTERM asked for (a worker still starting up when the signal was passed on to it has no
    handler yet and dies of it: that is the stop, not a crash), else a SamplingError naming the
    exit codes and the chains lost."""
    from ppl_ad.infer.checkpoint import _raise_stop, stop_signal

    if checkpointed and stop_signal() is not None:
        try:
            _raise_stop()
        except BaseException as stop:  # noqa: BLE001 - KeyboardInterrupt or SystemExit(143), returned
            return stop
    how = f" (exit code {', '.join(map(str, codes))}: {_exit_reason(codes)})" if codes else ""
    saved = (" The chains' checkpoints hold their draws up to their last save: rerun the same call to "
             "resume them.") if checkpointed else ""
    return SamplingError(
        f"a worker process ended before returning its result{how}; chains {lost} did not finish. "
        "It ran out of memory, was killed, or crashed inside a native library. To sample in this "
        f"process instead, pass cores=1.{saved}"
    )


def run_parallel(spec, seeds, settings, init, cores, bars, checkpoints=None) -> list:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue() if bars is not None else None
    executor = concurrent.futures.ProcessPoolExecutor(
        max_workers=cores, mp_context=ctx, initializer=_worker_init, initargs=(spec, queue)
    )
    chain_of = {}
    try:
        # The workers start during these submits, with the thread limits and without re-running
        # the user's main script.
        with environment(worker_environment(cores)), main_module_hidden():
            futures = [
                executor.submit(_worker_run_chain, chain, seed_seq, settings, init,
                                checkpoints[chain] if checkpoints else None)
                for chain, seed_seq in enumerate(seeds)
            ]
        chain_of = {future: chain for chain, future in enumerate(futures)}
        pending = set(futures)
        forwarded = False
        while pending:
            done, pending = concurrent.futures.wait(
                pending, timeout=0.1, return_when=concurrent.futures.FIRST_EXCEPTION
            )
            if queue is not None:
                _drain(queue, bars)
            if checkpoints and not forwarded:
                forwarded = _forward_stop(executor)
            for future in done:
                error = future.exception()
                if forwarded and isinstance(error, (KeyboardInterrupt, SystemExit)):
                    continue  # a chain saved and stopped as asked: wait for the others to save too
                if error is not None and not isinstance(error, concurrent.futures.process.BrokenProcessPool):
                    error.add_note(f"(raised in chain {chain_of[future]}, in a worker process)")
                    raise error  # a worker's exception, now
                future.result()
        if queue is not None:
            _drain(queue, bars)
        return [future.result() for future in futures]
    except BaseException as exc:
        # A chain failed or the user interrupted: stop the other chains now rather
        # than waiting for them to finish.
        processes = list((getattr(executor, "_processes", None) or {}).values())
        codes = sorted({p.exitcode for p in processes if p.exitcode is not None and p.exitcode != 0})
        for process in processes:
            process.terminate()
        if isinstance(exc, concurrent.futures.process.BrokenProcessPool):
            lost = [c for f, c in chain_of.items() if not (f.done() and not f.cancelled() and f.exception() is None)]
            raise _broken_pool_error(codes, lost, bool(checkpoints)) from exc
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        if queue is not None:
            queue.close()
            queue.join_thread()

