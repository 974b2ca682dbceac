"""User-facing sampling: chains, worker processes, progress, ``InferenceData``.

This module owns :func:`sample` (re-exported as ``ppl_ad.sample``). It

1. builds the model's ``LogDensity`` (``ppl_ad.logdensity(model, backend)``);
2. seeds chain ``c`` with ``numpy.random.SeedSequence(seed).spawn(chains)[c]``
   (initial point, momenta and uniforms all come from that chain's generator, so
   the same ``seed`` gives the same draws whether chains run in-process or in
   worker processes);
3. runs the chains (:func:`ppl_ad.infer.chain.run_chain`) in parallel worker
   processes started with the **spawn** method (JAX and PyTorch are not
   fork-safe). Each worker rebuilds its own ``LogDensity`` from the picklable
   ``(model, backend)`` pair. Chains run sequentially in this process when
   ``chains == 1``, ``cores == 1``, or the model cannot be sent to a fresh
   process (``pickle`` fails, or the model refers to ``__main__``, e.g. it was
   defined in a notebook or a script);
4. shows one progress bar per chain (workers report through a queue);
5. converts the unconstrained draws to model space in this process
   (``ld.constrain(theta, deterministics=True)``), and returns an
   ``arviz.InferenceData`` with ``posterior``, ``sample_stats`` and
   ``observed_data``;
6. warns once (:class:`ppl_ad.errors.SamplingWarning`) when draws diverged or hit
   the maximum tree depth.

References
----------
Stan Development Team. *Stan Reference Manual*, "HMC algorithm parameters".
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import contextlib
import math
import multiprocessing
import os
import pickle
import sys
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ppl_ad.errors import ConfigError, SamplingError, SamplingWarning
from ppl_ad.infer.chain import ChainResult, ChainSettings, run_chain
from ppl_ad.infer.integrators import EVALUATION_ERRORS
from ppl_ad.infer.progress import ChainProgress, ProgressBars, progress_enabled

__all__ = ["sample", "MAX_INIT_ATTEMPTS"]

#: Attempts at a finite initial point with ``init="jitter"``.
MAX_INIT_ATTEMPTS = 100


# --------------------------------------------------------------------------- #
# Log density and initial points
# --------------------------------------------------------------------------- #


def _is_logdensity(obj) -> bool:
    return hasattr(obj, "logdensity_and_gradient") and hasattr(obj, "dimension")


def resolve_logdensity(model, backend=None, prepare: bool = True):
    """The ``LogDensity`` of ``model`` (returned as is if it already is one).

    Parameters
    ----------
    model : ppl_ad.model.Model or LogDensity
    backend : str, optional
        AD backend name; must be None when ``model`` is a ``LogDensity``.
    prepare : bool, optional
        False defers the backend's preparation to the first evaluation
        (see :func:`ppl_ad.logdensity.logdensity`).

    Returns
    -------
    LogDensity
    """
    if _is_logdensity(model):
        if backend is not None:
            raise ConfigError(
                "backend=... cannot be combined with an already built LogDensity; "
                "pass the model instead, or build the LogDensity with the backend you want"
            )
        return model
    from ppl_ad.logdensity import logdensity

    return logdensity(model, backend=backend, prepare=prepare)


def _model_name(ld) -> str:
    model = getattr(ld, "model", None)
    return str(getattr(model, "name", None) or type(ld).__name__)


def _is_finite_point(ld, theta) -> tuple[bool, BaseException | None]:
    """Whether log density and gradient are finite at ``theta``, and the error raised if any."""
    try:
        logp, grad = ld.logdensity_and_gradient(theta)
    except EVALUATION_ERRORS as error:
        return False, error
    return bool(math.isfinite(float(logp)) and np.all(np.isfinite(grad))), None


def _failure_detail(ld, theta, error) -> str:
    sites = _non_finite_sites(ld, theta)
    detail = f"sites {sites}" if sites else "no site's value or log-density term (so: the gradient)"
    if error is not None:
        backend = getattr(getattr(ld, "backend", None), "name", "the backend")
        detail += f"; backend '{backend}' raised {type(error).__name__}: {str(error)[:300]}"
    return detail


def _non_finite_sites(ld, theta) -> list[str]:
    try:
        return list(ld.non_finite_sites(theta))
    except EVALUATION_ERRORS:
        return ["<could not be determined>"]


def initial_position(ld, rng: np.random.Generator, init, chain: int = 0) -> np.ndarray:
    """A finite starting point on the unconstrained space.

    Parameters
    ----------
    ld : LogDensity
    rng : numpy.random.Generator
    init : "jitter" or dict or sequence of dicts
        ``"jitter"``: ``ld.initial_point(rng)`` (uniform(-2, 2) on the
        unconstrained space), retried up to :data:`MAX_INIT_ATTEMPTS` times until
        the log density and gradient are finite. A dict of model-space values by
        site name: that point. A sequence of dicts: one per chain.
    chain : int, optional
        Chain index (for the per-chain list and error messages).

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    SamplingError
        No finite point; the message names the model and the offending sites.
    """
    name = _model_name(ld)
    with np.errstate(all="ignore"):
        if isinstance(init, str):
            theta, error = None, None
            for _ in range(MAX_INIT_ATTEMPTS):
                theta = np.asarray(ld.initial_point(rng), dtype=np.float64)
                finite, error = _is_finite_point(ld, theta)
                if finite:
                    return theta
            raise SamplingError(
                f"chain {chain}: could not find an initial point of model {name!r} with a finite "
                f"log density and gradient after {MAX_INIT_ATTEMPTS} attempts (uniform(-2, 2) on the "
                f"unconstrained space). Non-finite at the last attempt: {_failure_detail(ld, theta, error)}. "
                "Check the priors, supports and data of these sites, or pass init={site: value, ...}."
            )
        values = init
        if not isinstance(init, Mapping):
            values = init[chain]
        theta = np.asarray(ld.unconstrain(values), dtype=np.float64)
        finite, error = _is_finite_point(ld, theta)
        if not finite:
            raise SamplingError(
                f"chain {chain}: the log density of model {name!r} or its gradient is not finite at "
                f"the initial values given in init: {_failure_detail(ld, theta, error)}."
            )
        return theta


# --------------------------------------------------------------------------- #
# Worker processes
# --------------------------------------------------------------------------- #

_WORKER: dict[str, Any] = {}


def _rebuild_logdensity(model, backend):
    from ppl_ad.logdensity import logdensity

    return logdensity(model, backend=backend)


def _is_ppl_ad_logdensity(ld) -> bool:
    try:
        from ppl_ad.logdensity import LogDensity
    except ImportError:
        return False
    return isinstance(ld, LogDensity)


def _rebuild_from_function(fn, name, preferred_backend, data, backend):
    """Rebuild a log density from a model function sent by value (see :func:`_by_value_spec`)."""
    from ppl_ad.model.model import Model, ModelFunction

    return _rebuild_logdensity(Model(ModelFunction(fn, name, preferred_backend), data), backend)


def _interactive_main() -> bool:
    """Whether ``__main__`` is an interactive session (notebook, REPL, ``python -c``), not a script.

    A spawned worker re-runs the parent's main *script*, but there is none to re-run here.
    """
    main = sys.modules.get("__main__")
    return main is not None and not getattr(main, "__file__", None)


def _by_value_spec(ld) -> bytes | None:
    """The recipe with the model function pickled by value (cloudpickle), or None.

    For models defined in a notebook or REPL: a fresh process cannot import them by name, but
    cloudpickle sends the function's code and the globals it uses, as PyMC and Dask do.
    """
    try:
        import cloudpickle
    except ImportError:
        return None
    function = ld.model.function
    spec = (_rebuild_from_function, (function.fn, function.name, function.backend, ld.model.data, ld.backend))
    try:
        data = cloudpickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(data)
    except Exception:  # noqa: BLE001 - any failure means "run in-process"
        return None
    return data


def _worker_spec(ld) -> bytes | None:
    """Pickled recipe for rebuilding ``ld`` in a fresh process, or None if impossible."""
    is_ppl_ad = _is_ppl_ad_logdensity(ld)
    spec = (_rebuild_logdensity, (ld.model, ld.backend)) if is_ppl_ad else (None, ld)
    try:
        data = pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - any pickling failure means "run in-process"
        data = None
    if data is not None and (b"__main__" in data or b"<locals>" in data):
        # Objects defined in __main__ (a notebook, a script) or inside a function
        # cannot be imported by name in a spawned process.
        data = None
    if data is None:
        # A model typed into a notebook or REPL still runs in parallel, sent by value. A script's
        # models do not: the workers would re-run the script (without a __main__ guard, sampling
        # again in every worker), so they run in this process.
        return _by_value_spec(ld) if is_ppl_ad and _interactive_main() else None
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


def _worker_logdensity():
    ld = _WORKER.get("ld")
    if ld is None:
        from ppl_ad.errors import PplAdDeprecationWarning

        factory, arg = pickle.loads(_WORKER["spec"])
        with warnings.catch_warnings():
            # The parent warned about a deprecated backend at the user's line; one copy per worker
            # on stderr would only repeat it.
            warnings.simplefilter("ignore", PplAdDeprecationWarning)
            ld = arg if factory is None else factory(*arg)
        _WORKER["ld"] = ld
    return ld


def _queue_sink(chain, done, tuning, divergences):
    _WORKER["queue"].put((chain, done, tuning, divergences))


def _worker_run_chain(chain: int, seed_seq, settings: ChainSettings, init) -> ChainResult:
    ld = _worker_logdensity()
    progress = None
    if _WORKER.get("queue") is not None:
        progress = ChainProgress(chain, _queue_sink, settings.tune, settings.draws)
    return _run_one_chain(ld, chain, seed_seq, settings, init, progress)


def _run_one_chain(ld, chain, seed_seq, settings, init, progress) -> ChainResult:
    rng = np.random.default_rng(seed_seq)
    theta0 = initial_position(ld, rng, init, chain)
    return run_chain(ld.logdensity_and_gradient, theta0, rng, settings, progress)


def _run_sequential(ld, seeds, settings, init, bars) -> list[ChainResult]:
    results = []
    for chain, seed_seq in enumerate(seeds):
        progress = ChainProgress(chain, bars.update, settings.tune, settings.draws) if bars else None
        results.append(_run_one_chain(ld, chain, seed_seq, settings, init, progress))
    return results


def _drain(queue, bars) -> None:
    import queue as queue_module

    while True:
        try:
            message = queue.get_nowait()
        except queue_module.Empty:
            return
        bars.update(*message)


#: variables that cap the intra-op threads of BLAS, OpenMP (PyTorch) and MKL in a process
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
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
    env = {name: str(threads) for name in _THREAD_VARIABLES if name not in os.environ}
    flags = os.environ.get("XLA_FLAGS", "")
    if threads == 1 and "xla_cpu_multi_thread_eigen" not in flags:
        env["XLA_FLAGS"] = f"{flags} {_XLA_ONE_THREAD}".strip()
    return env


@contextlib.contextmanager
def _environment(changes: dict[str, str]):
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


def _run_parallel(spec, seeds, settings, init, cores, bars) -> list[ChainResult]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue() if bars is not None else None
    executor = concurrent.futures.ProcessPoolExecutor(
        max_workers=cores, mp_context=ctx, initializer=_worker_init, initargs=(spec, queue)
    )
    try:
        with _environment(worker_environment(cores)):  # the workers start during these submits
            futures = [
                executor.submit(_worker_run_chain, chain, seed_seq, settings, init)
                for chain, seed_seq in enumerate(seeds)
            ]
        pending = set(futures)
        while pending:
            done, pending = concurrent.futures.wait(
                pending, timeout=0.1, return_when=concurrent.futures.FIRST_EXCEPTION
            )
            if queue is not None:
                _drain(queue, bars)
            for future in done:
                future.result()  # re-raise a worker's exception now
        if queue is not None:
            _drain(queue, bars)
        return [future.result() for future in futures]
    except BaseException as exc:
        # A chain failed or the user interrupted: stop the other chains now rather
        # than waiting for them to finish.
        for process in list((getattr(executor, "_processes", None) or {}).values()):
            process.terminate()
        if isinstance(exc, concurrent.futures.process.BrokenProcessPool):
            raise SamplingError(
                "a worker process running chains ended before returning its result. Chains run in "
                "processes started with the 'spawn' method, which re-import your main script: in a "
                "script, call pa.sample(...) under 'if __name__ == \"__main__\":'. It can also mean "
                "the worker ran out of memory or was killed. To sample in this process instead, "
                "pass cores=1."
            ) from exc
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        if queue is not None:
            queue.close()
            queue.join_thread()


# --------------------------------------------------------------------------- #
# InferenceData
# --------------------------------------------------------------------------- #


def _import_arviz():
    with warnings.catch_warnings():
        # arviz 0.23 announces its refactor with a FutureWarning at import time.
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    return arviz


def _preload_arviz() -> None:
    """Import ArviZ in a background thread; a failure is left for the real import to report."""
    try:
        _import_arviz()
    except Exception:  # noqa: BLE001 - _to_inference_data imports it again and raises there
        pass


def _dims_for(values: Mapping[str, np.ndarray], leading: int) -> dict[str, list[str]]:
    return {
        name: [f"{name}_dim_{k}" for k in range(np.ndim(value) - leading)]
        for name, value in values.items()
        if np.ndim(value) > leading
    }


def _posterior_arrays(ld, results: Sequence[ChainResult]) -> dict[str, np.ndarray]:
    chains, draws = len(results), results[0].draws.shape[0]
    arrays: dict[str, np.ndarray] = {}
    if draws == 0:
        return {
            name: np.empty((chains, 0) + tuple(shape))
            for name, shape in {**ld.site_shapes, **getattr(ld, "deterministic_shapes", {})}.items()
        }
    for c, result in enumerate(results):
        for i in range(draws):
            values = ld.constrain(result.draws[i], deterministics=True)
            if not arrays:
                for name, value in values.items():
                    value = np.asarray(value)
                    arrays[name] = np.empty((chains, draws) + value.shape, dtype=np.result_type(value, np.float64))
            for name, value in values.items():
                arrays[name][c, i] = value
    return arrays


def _sampling_warning(name, stats, settings) -> str | None:
    div = stats["diverging"].sum(axis=1)
    parts = []
    if div.sum():
        parts.append(
            f"{int(div.sum())} divergent transitions after warmup (per chain: {div.tolist()}). "
            "Divergences mean the sampler could not follow the posterior's geometry and the draws "
            f"may be biased: increase target_accept (now {settings.target_accept}, e.g. 0.95) or "
            "reparameterise the model (e.g. a non-centred parameterisation of hierarchical effects)."
        )
    if "reached_max_treedepth" in stats:
        hit = stats["reached_max_treedepth"].sum(axis=1)
        if hit.sum():
            parts.append(
                f"{int(hit.sum())} transitions hit the maximum tree depth of {settings.max_treedepth} "
                f"(per chain: {hit.tolist()}); this costs efficiency, not validity: increase "
                "max_treedepth or reparameterise the model (strong posterior correlations or "
                "very different scales)."
            )
    if not parts:
        return None
    return f"Sampling model {name!r}: " + " ".join(parts)


# --------------------------------------------------------------------------- #
# sample
# --------------------------------------------------------------------------- #


def _validate(draws, tune, chains, cores, sampler, target_accept, max_treedepth, metric, init, path_length):
    def bad(name, value, expected):
        raise ConfigError(f"sample: invalid {name}={value!r}; expected {expected}")

    for name, value, low in (("draws", draws, 1), ("tune", tune, 0), ("chains", chains, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            bad(name, value, f"an integer >= {low}")
    if cores is not None and (isinstance(cores, bool) or not isinstance(cores, (int, np.integer)) or cores < 1):
        bad("cores", cores, "None or an integer >= 1")
    if sampler not in ("nuts", "hmc"):
        bad("sampler", sampler, "'nuts' or 'hmc'")
    if not (isinstance(target_accept, (int, float)) and 0.0 < target_accept < 1.0):
        bad("target_accept", target_accept, "a number strictly between 0 and 1")
    if isinstance(max_treedepth, bool) or not isinstance(max_treedepth, (int, np.integer)) or not 1 <= max_treedepth <= 30:
        bad("max_treedepth", max_treedepth, "an integer between 1 and 30")
    if metric not in ("diag", "dense"):
        bad("metric", metric, "'diag' or 'dense'")
    if not (isinstance(path_length, (int, float)) and path_length > 0 and math.isfinite(path_length)):
        bad("path_length", path_length, "a positive number")
    if isinstance(init, str):
        if init != "jitter":
            bad("init", init, "'jitter', a dict of initial values, or a list of such dicts (one per chain)")
    elif not isinstance(init, Mapping):
        if not (isinstance(init, Sequence) and len(init) == chains and all(isinstance(v, Mapping) for v in init)):
            bad("init", init, "'jitter', a dict of initial values, or a list of such dicts (one per chain)")


def sample(
    model,
    backend=None,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    cores: int | None = None,
    seed=None,
    sampler: str = "nuts",
    target_accept: float = 0.8,
    max_treedepth: int = 10,
    metric: str = "diag",
    init="jitter",
    progressbar: bool = True,
    *,
    path_length: float = 2.0,
):
    """Draw posterior samples of a model with NUTS (or static HMC).

    Parameters
    ----------
    model : ppl_ad.model.Model or LogDensity
        The model (with its data bound), or an already built ``LogDensity``.
    backend : str, optional
        AD backend name; None chooses one (recorded in ``attrs["backend_source"]``).
    draws : int, optional
        Draws kept per chain.
    tune : int, optional
        Warmup iterations per chain (discarded). Stan's windowed adaptation of the
        step size and metric.
    chains : int, optional
    cores : int, optional
        Worker processes; default ``min(chains, os.cpu_count())``.
    seed : int or numpy.random.SeedSequence, optional
        Same seed, same draws (for a given backend), in-process or parallel. The
        seed actually used is recorded in ``attrs["seed"]``.
    sampler : {"nuts", "hmc"}, optional
        ``"hmc"`` is static HMC with ``round(path_length / step_size)`` leapfrog
        steps jittered uniformly by +-10 % (see :mod:`ppl_ad.infer.hmc`).
    target_accept : float, optional
        Target mean acceptance statistic of step-size adaptation.
    max_treedepth : int, optional
        NUTS maximum tree depth (HMC: at most ``2**max_treedepth`` steps).
    metric : {"diag", "dense"}, optional
        Diagonal or dense metric, adapted during warmup.
    init : "jitter" or dict or list of dict, optional
        ``"jitter"``: uniform(-2, 2) on the unconstrained space, retried until
        finite. A dict of model-space values by site name (all chains), or one
        dict per chain.
    progressbar : bool, optional
        One bar per chain on stderr (only when stderr is a terminal).
    path_length : float, optional
        Static HMC nominal integration time (keyword only; unused by NUTS).

    Returns
    -------
    arviz.InferenceData
        ``posterior`` (sampled and deterministic sites, constrained, in model
        shapes, vector dimensions named ``"{site}_dim_{k}"``), ``sample_stats``
        (``lp``, ``acceptance_rate``, ``step_size``, ``n_steps``, ``diverging``,
        ``energy``, ``energy_error``; NUTS adds ``tree_depth`` and
        ``reached_max_treedepth``), ``observed_data``, and ``attrs`` (model,
        backend, backend_source, ppl_ad version, seed, sampler settings,
        ``tuning_time`` and ``sampling_time``: seconds summed over chains,
        ``gradient_evaluations`` and ``gradient_time``: calls of the backend's
        value-and-gradient and the seconds inside them, summed over chains (the rest of
        ``tuning_time + sampling_time`` is the sampler's own time), ``wall_time``:
        seconds for the whole call).

    Raises
    ------
    ppl_ad.errors.ConfigError
        An invalid argument.
    ppl_ad.errors.SamplingError
        No finite initial point (the message names the sites), or warmup failed.

    Warns
    -----
    ppl_ad.errors.SamplingWarning
        Divergences or maximum-tree-depth hits after warmup (counts per chain).
    """
    wall_start = time.perf_counter()
    _validate(draws, tune, chains, cores, sampler, target_accept, max_treedepth, metric, init, path_length)
    # Chains in worker processes prepare their own backend: the parent's would go unused.
    ld = resolve_logdensity(model, backend, prepare=False)
    chains, draws, tune = int(chains), int(draws), int(tune)
    settings = ChainSettings(
        draws=draws,
        tune=tune,
        sampler=sampler,
        target_accept=float(target_accept),
        max_treedepth=int(max_treedepth),
        metric=metric,
        path_length=float(path_length),
    )
    seed_seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    chain_seeds = seed_seq.spawn(chains)

    if cores is None:
        cores = os.cpu_count() or 1
    cores = max(1, min(int(cores), chains))
    spec = _worker_spec(ld) if cores > 1 else None
    parallel = spec is not None
    if not parallel and hasattr(ld, "prepare"):
        ld.prepare()  # in-process chains: a preparation error is raised here, before sampling

    bars = ProgressBars(chains, tune, draws) if progress_enabled(progressbar) else None
    try:
        if parallel:
            # This process waits while the workers sample: import ArviZ (about 1.5 s) meanwhile.
            threading.Thread(target=_preload_arviz, name="ppl_ad-import-arviz", daemon=True).start()
            results = _run_parallel(spec, chain_seeds, settings, init, cores, bars)
        else:
            results = _run_sequential(ld, chain_seeds, settings, init, bars)
    finally:
        if bars is not None:
            bars.close()

    return _to_inference_data(ld, results, settings, chains, cores if parallel else 1, seed_seq, init, wall_start)


def _to_inference_data(ld, results, settings, chains, processes, seed_seq, init, wall_start):
    az = _import_arviz()
    import ppl_ad

    name = _model_name(ld)
    posterior = _posterior_arrays(ld, results)
    stats = {key: np.stack([r.stats[key] for r in results]) for key in results[0].stats}
    observed = {k: np.asarray(v) for k, v in (ld.observed_data() or {}).items()}
    dims = {**_dims_for(posterior, 2), **_dims_for(observed, 0)}
    backend = getattr(ld, "backend", None)
    attrs = {
        "model": name,
        "backend": str(getattr(backend, "name", backend)),
        "backend_source": str(getattr(ld, "backend_source", "")),
        "ppl_ad_version": str(getattr(ppl_ad, "__version__", "unknown")),
        "inference_library": "ppl_ad",
        "inference_library_version": str(getattr(ppl_ad, "__version__", "unknown")),
        "sampler": settings.sampler,
        "draws": settings.draws,
        "tune": settings.tune,
        "chains": chains,
        "processes": processes,
        "target_accept": settings.target_accept,
        "max_treedepth": settings.max_treedepth,
        "metric": settings.metric,
        "init": init if isinstance(init, str) else "user",
        "seed": str(seed_seq.entropy),
        "tuning_time": float(sum(r.tuning_time for r in results)),
        "sampling_time": float(sum(r.sampling_time for r in results)),
        "warmup_divergences": int(sum(r.warmup_divergences for r in results)),
        "gradient_evaluations": int(sum(r.gradient_evaluations for r in results)),
        "gradient_time": float(sum(r.gradient_time for r in results)),
    }
    if settings.sampler == "hmc":
        attrs["path_length"] = settings.path_length
    message = _sampling_warning(name, stats, settings)
    attrs["wall_time"] = float(time.perf_counter() - wall_start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        # The arrays are (chain, draw, ...) by construction; arviz's shape guess
        # would warn whenever chains > draws.
        warnings.filterwarnings("ignore", message="More chains", category=UserWarning)
        idata = az.from_dict(
            posterior=posterior,
            sample_stats=stats,
            observed_data=observed or None,
            dims=dims,
            attrs=attrs,
        )
    if message is not None:
        warnings.warn(message, SamplingWarning, stacklevel=_user_stacklevel())
    return idata


def _user_stacklevel() -> int:
    """``stacklevel`` that points a warning at the first caller outside ppl_ad."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name != "ppl_ad" and not name.startswith("ppl_ad."):
            return level
        frame = frame.f_back
        level += 1
    return 1
