"""Chains as tasks on an executor: a Dask ``distributed.Client`` or any ``concurrent.futures.Executor``.

``pa.sample(model, ..., executor=client)`` runs each chain as one task (:func:`run_chains`), next
to the local worker processes of :mod:`ppl_ad.infer.parallel`, and reuses their recipe: the
log density travels as :func:`ppl_ad.infer.parallel.worker_spec` (the model pickled by
reference, or by value when it was defined in ``__main__`` or a function), and a worker process
rebuilds it once per recipe (:func:`_logdensity`, a cache keyed by the recipe's hash) however
many chains it runs.

What goes where
    * **Dask**: a recipe of up to :data:`INLINE_RECIPE` bytes travels inside each task, so the
      scheduler can always rerun a task whose worker died; a larger one is scattered to every
      worker once (``client.scatter(..., broadcast=True)``). Even broadcast, scattered data may be
      left on one worker (Dask's active memory manager drops extra replicas, its ``ReduceReplicas``
      policy), and a run whose only copy was on a worker that died fails with
      ``FutureCancelledError``: when every recipe was scattered, the killed-worker test failed so,
      with the scheduler reporting the scattered data lost, in one of four ``make test`` runs on a
      2-worker cluster. Each task also carries the chain number, its ``SeedSequence``, the settings, the initial values and its
      checkpoint handle (a few hundred bytes). Progress comes back as worker events
      (``Worker.log_event`` on a topic of this run, ``Client.subscribe_topic`` in this process),
      drained into the :class:`~ppl_ad.infer.progress.ProgressBars`. A task whose worker dies is
      rerun elsewhere by Dask (up to ``distributed.scheduler.allowed-failures`` times).
    * **Another Executor** (``ProcessPoolExecutor``, mpi4py's ``MPIPoolExecutor``, ...): the recipe
      travels with each task; the bars move when a chain finishes. A ``ThreadPoolExecutor`` runs
      the chains in this process on this log density (nothing is pickled) and its bars follow
      the chains live.

Chain ``c`` is seeded by ``SeedSequence(seed).spawn(chains)[c]`` alone (see
:mod:`ppl_ad.infer.sample`) and both engines' chains are deterministic functions of that seed, so
the draws equal those of a local run, whichever worker ran the chain and however often.
Checkpoints (:class:`~ppl_ad.infer.checkpoint.ChainCheckpoint`, picklable) go with their chain's
task; they work when the checkpoint path is on storage that the workers share, and a chain rerun
after its worker died resumes from its last save.

The module also runs other work on an executor, one task per call (:func:`map_tasks`,
:func:`connect`): ``ppl-ad bench --executor`` and ``benchmarks/validate_posteriordb.py
--executor`` use them.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import queue as queue_module
import sys
import threading
import time
import uuid
import warnings
from collections import OrderedDict
from typing import Any, Callable, Iterable

from ppl_ad.errors import ConfigError

__all__ = ["run_chains", "map_tasks", "connect", "executor_kind", "is_dask_client"]

#: seconds between looks at the futures while waiting (the progress queue wakes the loop sooner)
_POLL = 0.1
#: largest recipe (bytes) sent inside each Dask task rather than scattered (see the module docstring)
INLINE_RECIPE = 8 * 2**20
#: rebuilt log densities per worker process, by recipe hash (most recent last)
_CACHE: "OrderedDict[str, Any]" = OrderedDict()
_CACHE_SIZE = 2
_CACHE_LOCK = threading.Lock()


# --------------------------------------------------------------------------- #
# Executors
# --------------------------------------------------------------------------- #


def is_dask_client(executor) -> bool:
    """Whether ``executor`` is a Dask ``distributed.Client`` (duck-typed: ``submit``, ``gather``, ``scatter``)."""
    return all(hasattr(executor, name) for name in ("submit", "gather", "scatter"))


def executor_kind(executor) -> str:
    """``"dask"`` for a Dask client, else the executor's class name (``"ThreadPoolExecutor"``)."""
    return "dask" if is_dask_client(executor) else type(executor).__name__


def _check_executor(executor) -> None:
    if not callable(getattr(executor, "submit", None)):
        raise ConfigError(
            f"executor={executor!r} is not an executor: pass a distributed.Client or a "
            "concurrent.futures.Executor (something with a submit method)"
        )
    context = getattr(executor, "_mp_context", None)
    method = context.get_start_method() if context is not None and hasattr(context, "get_start_method") else None
    if method == "fork" and "jax" in sys.modules:
        raise ConfigError(
            "executor= is a process pool that forks (the Linux default of ProcessPoolExecutor()), and JAX has "
            "started in this process: forked workers deadlock in JAX's threads. Use "
            "ProcessPoolExecutor(mp_context=multiprocessing.get_context('spawn')), as ppl_ad's own pools do"
        )


def _workers(executor, tasks: int) -> int:
    """Worker threads that can run these tasks at once (for ``attrs["processes"]``)."""
    if is_dask_client(executor):
        try:
            threads = sum(executor.nthreads().values())
        except Exception:  # noqa: BLE001 - only a number in the attrs
            threads = tasks
    else:
        threads = getattr(executor, "_max_workers", None) or tasks
    return max(1, min(int(threads), tasks))


@contextlib.contextmanager
def connect(address: str, timeout: float = 10.0):
    """A Dask client of the scheduler at ``address`` (``tcp://host:8786``), closed afterwards.

    Parameters
    ----------
    address : str
    timeout : float, optional
        Seconds to wait for the scheduler.

    Raises
    ------
    ppl_ad.errors.ConfigError
        When ``distributed`` is not installed or no scheduler answers at ``address``.
    """
    try:
        import distributed
    except ImportError as error:
        raise ConfigError(
            "--executor needs Dask distributed: pip install 'ppl_ad[distributed]'"
        ) from error
    try:
        client = distributed.Client(address, timeout=timeout)
    except (OSError, TimeoutError) as error:
        raise ConfigError(f"no Dask scheduler answered at {address!r}: {error}") from error
    try:
        yield client
    finally:
        client.close()


def _submit(executor, function, args, key: str | None):
    if key is not None:
        return executor.submit(function, *args, key=key, pure=False)
    return executor.submit(function, *args)


def _cancel(executor, futures) -> None:
    if is_dask_client(executor):
        executor.cancel(list(futures))
    else:
        for future in futures:
            future.cancel()


def _wait_all(futures, on_done: Callable[[int, Any], None], wake=None, drain=None) -> list:
    """Results of ``futures`` in order; ``on_done(i, result)`` as each finishes (the first error raises).

    ``wake`` is a :class:`queue.Queue` whose messages end a wait early, ``drain(message)`` handles
    each (progress from the tasks).
    """
    pending = dict(enumerate(futures))
    results: list = [None] * len(futures)
    while pending:
        for index in [i for i, f in pending.items() if f.done()]:
            results[index] = _result(pending.pop(index))  # a task's error is raised here
            on_done(index, results[index])
        if not pending:
            break
        if wake is None:
            time.sleep(_POLL)
            continue
        try:
            drain(wake.get(timeout=_POLL))
        except queue_module.Empty:
            pass
        _drain_all(wake, drain)
    if wake is not None:
        _drain_all(wake, drain)
    return results


def _result(future):
    """``future.result()``; a Dask worker's failed import becomes a ConfigError that says where."""
    try:
        return future.result()
    except ImportError as error:
        if not type(future).__module__.startswith("distributed"):
            raise  # this machine's own environment: the error as it is
        missing = getattr(error, "name", None)
        raise ConfigError(
            f"a Dask worker could not import {missing or 'a module'!r} ({error}): every worker needs "
            "ppl_ad and the libraries of the model and its backend (jax, torch, ...) installed, as on this "
            "machine; check with client.get_versions(check=True)"
        ) from error


def _drain_all(wake, drain) -> None:
    while True:
        try:
            drain(wake.get_nowait())
        except queue_module.Empty:
            return


def map_tasks(executor, function: Callable, calls: Iterable[tuple], *, name: str = "ppl_ad-task",
              on_done: Callable[[int, Any], None] | None = None) -> list:
    """Run ``function(*args)`` for every ``args`` in ``calls`` on ``executor``, one task each.

    Parameters
    ----------
    executor : distributed.Client or concurrent.futures.Executor
    function : callable
        Importable by name on the workers (a module-level function of an installed package).
    calls : iterable of tuple
        The positional arguments of each task.
    name : str, optional
        Prefix of the Dask task keys (``{name}-{run}-{i}``; tasks are never deduplicated).
    on_done : callable, optional
        ``on_done(i, result)`` in this process as task ``i`` finishes (a progress bar).

    Returns
    -------
    list
        The results in the order of ``calls``.

    Raises
    ------
    Exception
        The first error raised by a task; the other tasks are cancelled.
    """
    _check_executor(executor)
    token = uuid.uuid4().hex[:8]
    dask = is_dask_client(executor)
    futures = [
        _submit(executor, function, args, f"{name}-{token}-{i}" if dask else None) for i, args in enumerate(calls)
    ]
    try:
        return _wait_all(futures, on_done or (lambda i, r: None))
    finally:
        _cancel(executor, futures)


# --------------------------------------------------------------------------- #
# One chain on a worker
# --------------------------------------------------------------------------- #


def _logdensity(recipe, key: str):
    """The log density of ``recipe`` (bytes of :func:`worker_spec`), built once per process.

    A log density object (the in-process ``ThreadPoolExecutor`` case) is returned as it is.
    """
    if not isinstance(recipe, (bytes, bytearray)):
        return recipe
    with _CACHE_LOCK:  # threads of one worker build it once and share it
        ld = _CACHE.get(key)
        if ld is None:
            from ppl_ad.infer.parallel import logdensity_from_spec

            ld = logdensity_from_spec(bytes(recipe))
            _CACHE[key] = ld
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        else:
            _CACHE.move_to_end(key)
        return ld


class _EventSink:
    """Progress of a chain on a Dask worker, sent as worker events on ``topic`` (picklable).

    At most one event per chain every :attr:`interval` seconds: each goes through the scheduler.
    """

    interval = 0.25

    def __init__(self, topic: str):
        self.topic = topic

    def __call__(self, chain: int, done: int, tuning: bool, divergences: int) -> None:
        from distributed import get_worker

        try:
            get_worker().log_event(self.topic, [int(chain), int(done), bool(tuning), int(divergences)])
        except ValueError:  # not on a worker (a client-side test run): no bars to feed
            pass


class _QueueSink:
    """Progress of a chain on a thread of this process: a :class:`queue.Queue` the parent drains."""

    def __init__(self, messages: queue_module.Queue):
        self.messages = messages

    def __call__(self, chain: int, done: int, tuning: bool, divergences: int) -> None:
        self.messages.put((chain, done, tuning, divergences))


def chain_task(recipe, key: str, chain: int, seed_seq, settings, init, checkpoint=None, sink=None):
    """Run chain ``chain`` of the log density ``recipe`` on a worker (one executor task).

    Parameters
    ----------
    recipe : bytes or LogDensity
        :func:`ppl_ad.infer.parallel.worker_spec` (a Dask task receives the scattered copy), or
        the log density itself for threads of this process.
    key : str
        Hash of ``recipe``: the worker rebuilds the log density once per key.
    chain : int
    seed_seq : numpy.random.SeedSequence
        This chain's seed; the chain is a deterministic function of it.
    settings : ppl_ad.infer.chain.ChainSettings
    init : str or dict or list of dict
    checkpoint : ppl_ad.infer.checkpoint.ChainCheckpoint, optional
        On storage the workers share.
    sink : callable, optional
        ``sink(chain, done, tuning, divergences)``, throttled by
        :class:`~ppl_ad.infer.progress.ChainProgress`.

    Returns
    -------
    ppl_ad.infer.chain.ChainResult
    """
    from ppl_ad.infer.engine import run_one_chain
    from ppl_ad.infer.progress import ChainProgress

    ld = _logdensity(recipe, key)
    progress = None
    if sink is not None:
        progress = ChainProgress(chain, sink, settings.tune, settings.draws, getattr(sink, "interval", 0.1))
    return run_one_chain(ld, chain, seed_seq, settings, init, progress, checkpoint)


# --------------------------------------------------------------------------- #
# The chains of one sample() call
# --------------------------------------------------------------------------- #


def _recipe(executor, ld):
    """What the tasks rebuild the log density from: the :func:`worker_spec` bytes, or ``ld`` for threads."""
    from ppl_ad.infer.parallel import worker_spec

    if isinstance(executor, concurrent.futures.ThreadPoolExecutor):
        if hasattr(ld, "prepare"):
            ld.prepare()  # once, here, before the threads share it
        return ld
    spec = worker_spec(ld)
    if spec is None:
        data_error = _data_pickling_error(ld)
        advice = (f"its data do not pickle ({data_error}): bind data that do (arrays, numbers, lists)" if data_error
                  else "define the model with @pa.model (models in __main__ or a function go by value)")
        raise ConfigError(
            f"executor={executor_kind(executor)}: this log density ({type(ld).__name__}) cannot be pickled for the "
            f"workers; {advice}, or sample without executor="
        )
    return spec


def _data_pickling_error(ld) -> str:
    """Why the data bound to ``ld``'s model do not pickle, or "" (they do, or there is no model)."""
    import pickle

    for name, value in (getattr(getattr(ld, "model", None), "data", None) or {}).items():
        try:
            pickle.dumps(value)
        except Exception as error:  # noqa: BLE001 - reported to the user
            return f"'{name}': {type(error).__name__}: {error}"
    return ""


class _Bars:
    """Feeds the bars: progress messages while a chain runs, its end when its task returns.

    Messages that arrive after the chain's result (Dask events travel through the scheduler) are
    dropped, so that a bar never moves back.
    """

    def __init__(self, bars, settings):
        self.bars = bars
        self.draws = settings.draws
        self.finished: set[int] = set()

    def message(self, message) -> None:
        if self.bars is not None and message[0] not in self.finished:
            self.bars.update(*message)

    def done(self, chain: int, result) -> None:
        self.finished.add(chain)
        if self.bars is not None:
            diverging = result.stats.get("diverging")
            self.bars.update(chain, self.draws, False, int(diverging.sum()) if diverging is not None else 0)


def run_chains(executor, ld, seeds, settings, init, bars=None, checkpoints=None) -> tuple[list, int, str]:
    """Run one task per chain on ``executor`` and return their results in chain order.

    Parameters
    ----------
    executor : distributed.Client or concurrent.futures.Executor
    ld : LogDensity
        Built in this process (unprepared: the workers prepare their own copies).
    seeds : list of numpy.random.SeedSequence
        One per chain.
    settings : ppl_ad.infer.chain.ChainSettings
    init : str or dict or list of dict
    bars : ppl_ad.infer.progress.ProgressBars, optional
    checkpoints : list of ppl_ad.infer.checkpoint.ChainCheckpoint, optional
        One per chain; its path must be on storage the workers share.

    Returns
    -------
    (list of ChainResult, int, str)
        The results, the number of workers that could run chains at once, and
        :func:`executor_kind`.

    Raises
    ------
    ppl_ad.errors.ConfigError
        ``executor`` is not an executor, or ``ld`` cannot be sent to worker processes.
    Exception
        The first error raised by a chain (the other chains are cancelled). Dask raises
        ``distributed.KilledWorker`` when a chain's workers died more than
        ``distributed.scheduler.allowed-failures`` times.
    """
    _check_executor(executor)
    recipe = _recipe(executor, ld)
    key = hashlib.sha1(recipe).hexdigest() if isinstance(recipe, bytes) else f"object-{id(recipe)}"
    kind = executor_kind(executor)
    checkpoints = checkpoints or [None] * len(seeds)
    token = uuid.uuid4().hex[:8]
    messages: queue_module.Queue | None = queue_module.Queue() if bars is not None else None
    sink = None
    dask = kind == "dask"
    topic = f"ppl_ad-progress-{token}"
    shared = None
    futures: list = []
    try:
        if dask:
            if len(recipe) > INLINE_RECIPE:  # every worker holds one copy (see the module docstring)
                shared = executor.scatter(recipe, broadcast=True, hash=False)
            if messages is not None:
                executor.subscribe_topic(topic, lambda event: messages.put(tuple(event[1])))
                sink = _EventSink(topic)
            futures = [
                executor.submit(chain_task, recipe if shared is None else shared, key, chain, seed_seq, settings,
                                init, checkpoints[chain], sink,
                                key=f"ppl_ad-chain-{token}-{chain}", pure=False)
                for chain, seed_seq in enumerate(seeds)
            ]
        else:
            if messages is not None and recipe is ld:  # threads of this process: live bars
                sink = _QueueSink(messages)
            futures = [
                executor.submit(chain_task, recipe, key, chain, seed_seq, settings, init, checkpoints[chain], sink)
                for chain, seed_seq in enumerate(seeds)
            ]
        feed = _Bars(bars, settings)
        results = _wait_all(futures, feed.done, wake=messages, drain=feed.message)
    finally:
        if futures:
            _cancel(executor, futures)
        if dask:
            if shared is not None:
                executor.cancel([shared])
            if messages is not None:
                with contextlib.suppress(Exception), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    executor.unsubscribe_topic(topic)
    return results, _workers(executor, len(seeds)), kind
