"""``pa.sample`` on a model: check the arguments, choose engine and chain method, run, convert.

This module owns the user-facing :func:`sample` (re-exported as ``ppl_ad.sample``). It

1. checks the arguments (:class:`~ppl_ad.errors.ConfigError` naming the argument, with a
   did-you-mean for misspelled keywords such as ``num_warmup``);
2. builds the model's ``LogDensity`` (:mod:`ppl_ad.infer.init`);
3. chooses the engine (``"jax"``: the whole sampler in XLA, for traceable backends;
   ``"python"``: the NumPy loop, for every backend; see :mod:`ppl_ad.infer.engine`) and the
   chain method (sequential, parallel worker processes, vectorized, or one task per chain on an
   ``executor``: a Dask client or any ``concurrent.futures.Executor``, :mod:`ppl_ad.infer.distributed`);
4. seeds chain ``c`` with ``numpy.random.SeedSequence(seed).spawn(chains)[c]``, so the same
   ``seed`` gives the same draws whether chains run in this process or in workers;
5. converts the draws to ``arviz.InferenceData`` (:mod:`ppl_ad.infer.results`).

References
----------
Stan Development Team. *Stan Reference Manual*, "HMC algorithm parameters".
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from ppl_ad._keywords import UnexpectedKeywordError, check_keywords  # noqa: F401 - re-exported
from ppl_ad.errors import ConfigError, SamplingError, SamplingWarning
from ppl_ad.infer.adaptation import ESTIMATORS
from ppl_ad.infer.chain import ChainSettings
from ppl_ad.infer.engine import run_sequential, select_chain_method, select_engine
from ppl_ad.infer.init import resolve_logdensity
from ppl_ad.infer.parallel import run_parallel, worker_spec
from ppl_ad.infer.progress import ProgressBars, progress_enabled
from ppl_ad.infer.results import check_sample_coords, preload_arviz, to_inference_data, user_stacklevel

__all__ = ["sample", "check_keywords"]


class _Preload:
    """The background import of ArviZ (:func:`~ppl_ad.infer.results.preload_arviz`): started at
    most once, and joined before the results are built."""

    def __init__(self):
        self.thread = None

    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=preload_arviz, name="ppl_ad-import-arviz", daemon=True)
            self.thread.start()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()


def _validate(draws, tune, chains, cores, sampler, target_accept, max_treedepth, metric, init, path_length,
              engine, chain_method, metric_adaptation="nutpie", discard_tuned_samples=True):
    def bad(name, value, expected):
        raise ConfigError(f"sample: invalid {name}={value!r}; expected {expected}")

    if not isinstance(discard_tuned_samples, (bool, np.bool_)):
        bad("discard_tuned_samples", discard_tuned_samples, "True or False")
    for name, value, low in (("draws", draws, 1), ("tune", tune, 0), ("chains", chains, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            bad(name, value, f"an integer >= {low}")
    if cores is not None and (isinstance(cores, bool) or not isinstance(cores, (int, np.integer)) or cores < 1):
        bad("cores", cores, "None or an integer >= 1")
    if sampler not in ("nuts", "hmc"):
        bad("sampler", sampler, "'nuts' or 'hmc'")
    if isinstance(target_accept, bool) or not (isinstance(target_accept, (int, float, np.integer, np.floating))
                                               and 0.0 < target_accept < 1.0):
        bad("target_accept", target_accept, "a number strictly between 0 and 1")
    if isinstance(max_treedepth, bool) or not isinstance(max_treedepth, (int, np.integer)) or not 1 <= max_treedepth <= 30:
        bad("max_treedepth", max_treedepth, "an integer between 1 and 30")
    if metric not in ("diag", "dense", "low_rank"):
        bad("metric", metric, "'diag', 'dense' or 'low_rank'")
    if isinstance(path_length, bool) or not (isinstance(path_length, (int, float, np.integer, np.floating))
                                             and path_length > 0 and math.isfinite(path_length)):
        bad("path_length", path_length, "a positive number")
    if isinstance(init, str):
        if init != "jitter":
            bad("init", init, "'jitter', a dict of initial values, or a list of such dicts (one per chain)")
    elif not isinstance(init, Mapping):
        if not (isinstance(init, Sequence) and all(isinstance(v, Mapping) for v in init)):
            bad("init", init, "'jitter', a dict of initial values, or a list of such dicts (one per chain)")
        if len(init) != chains:
            raise ConfigError(f"sample: init is a list of {len(init)} dict{'s' * (len(init) != 1)} of initial values "
                              f"for {chains} chain{'s' * (chains != 1)}; give one per chain, or one dict for all")
    if metric_adaptation not in ESTIMATORS:
        bad("metric_adaptation", metric_adaptation, "'nutpie', 'fisher' or 'stan'")
    if metric == "low_rank" and metric_adaptation != "nutpie":
        raise ConfigError(f"sample: metric='low_rank' is adapted with nutpie's schedule; "
                          f"metric_adaptation={metric_adaptation!r} works with metric='diag' only")
    if engine is not None and engine not in ("python", "jax"):
        bad("engine", engine, "None, 'python' or 'jax'")
    if chain_method is not None and chain_method not in ("sequential", "parallel", "vectorized"):
        bad("chain_method", chain_method, "None, 'sequential', 'parallel' or 'vectorized'")


def _seed_sequence(seed, checkpoint=None, overwrite=False) -> np.random.SeedSequence:
    """The run's ``SeedSequence``: from ``seed``; without one, a checkpoint's own (so that the same
    call resumes), else fresh entropy."""
    if isinstance(seed, np.random.SeedSequence):
        from ppl_ad.infer.state import fresh_seed_sequence

        return fresh_seed_sequence(seed)  # the same seed object twice gives the same draws
    if isinstance(seed, np.random.Generator):  # as PyMC's random_seed: one draw from it
        return np.random.SeedSequence(int(seed.integers(2**63)))
    if seed is None:
        if checkpoint is not None and not overwrite:
            from ppl_ad.infer.checkpoint import stored_seed

            saved = stored_seed(checkpoint)
            if saved is not None:
                return saved
        return np.random.SeedSequence()
    if isinstance(seed, str):  # a recorded attrs["seed"], passed back
        from ppl_ad.infer.state import seed_from_label

        try:
            return seed_from_label(seed)
        except (ValueError, SyntaxError, TypeError):
            raise ConfigError(f"sample: invalid seed={seed!r}; a string seed must be an attrs['seed'] of an earlier "
                              "run") from None
    values = list(seed) if isinstance(seed, (list, tuple)) else [seed]
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0 for v in values):
        raise ConfigError(f"sample: invalid seed={seed!r}; expected None, an integer >= 0 (or a list of them), a "
                          "numpy.random.SeedSequence or a numpy.random.Generator")
    return np.random.SeedSequence([int(v) for v in values] if isinstance(seed, (list, tuple)) else int(seed))


def _open_checkpoint(path, every, overwrite, ld, settings, chains, seed_seq, init, chain_method):
    """One :class:`~ppl_ad.infer.checkpoint.ChainCheckpoint` per chain, or None without a path."""
    if every is not None and (isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1):
        raise ConfigError(f"sample: invalid checkpoint_every={every!r}; expected None or an integer >= 1")
    if path is None:
        if every is not None:
            raise ConfigError("sample: checkpoint_every=... needs checkpoint=PATH (where to save the chains)")
        return None
    if chain_method == "vectorized":
        raise ConfigError(
            "checkpoint=... cannot be combined with chain_method='vectorized' (checkpointed chains run one per "
            "program): use chain_method='sequential' or 'parallel'"
        )
    if getattr(settings, "keep_warmup", False):
        raise ConfigError(
            "checkpoint=... cannot be combined with discard_tuned_samples=False: a checkpoint keeps the draws after "
            "warmup only, so a resumed run would lack the warmup iterations before the interruption")
    from ppl_ad.infer.chain import stat_dtypes
    from ppl_ad.infer.checkpoint import CheckpointStore, fingerprint, model_recipe

    compiled = getattr(ld, "compiled", None)
    names = compiled.flat_names() if compiled is not None else [f"theta[{k}]" for k in range(ld.dimension)]
    store = CheckpointStore(path, fingerprint(ld, settings, chains, seed_seq, init), chains, settings.draws,
                            int(ld.dimension), stat_dtypes(settings.sampler), names, model_recipe(ld), overwrite)
    return [store.chain(c, every) for c in range(chains)]


def _signals(checkpoints):
    """While checkpointed chains run, SIGINT/SIGTERM save them and stop (see ppl_ad.infer.checkpoint)."""
    if not checkpoints:
        return contextlib.nullcontext()
    from ppl_ad.infer.checkpoint import handle_signals

    return handle_signals()


def _warn_reference_backend(ld) -> None:
    """A :class:`SamplingWarning` when ``ld``'s backend is for reference only (finite differences)."""
    from ppl_ad.backends import registry
    from ppl_ad.backends.base import Backend

    backend = getattr(ld, "backend", None)
    if not isinstance(backend, Backend):  # a hand-made log density
        return

    message = registry.sampling_warning(backend)
    if message:
        warnings.warn(message, SamplingWarning, stacklevel=user_stacklevel())


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
    engine: str | None = None,
    chain_method: str | None = None,
    path_length: float = 2.0,
    coords=None,
    log_likelihood: bool = False,
    checkpoint=None,
    checkpoint_every: int | None = None,
    overwrite: bool = False,
    metric_adaptation: str = "nutpie",
    executor=None,
    discard_tuned_samples: bool = True,
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
        Warmup iterations per chain (discarded), which adapt the step size and the metric
        (as ``metric_adaptation`` says: nutpie's schedule by default, or Stan's windows).
    chains : int, optional
    cores : int, optional
        Worker processes for ``chain_method="parallel"``; default ``min(chains, os.cpu_count())``.
        With the JAX engine, chains run in this process unless ``cores`` is 2 or more.
    seed : int, list of int, numpy.random.SeedSequence or numpy.random.Generator, optional
        Same seed, same draws (for a given backend and engine), in-process or parallel. The
        seed actually used is recorded in ``attrs["seed"]`` (with its ``spawn_key`` for a child
        ``SeedSequence``), which can be passed back as ``seed=``. A ``Generator`` gives one draw to
        seed the run, as in PyMC. Without a seed, a call with an existing ``checkpoint`` resumes with
        the checkpoint's seed.
    sampler : {"nuts", "hmc"}, optional
        ``"hmc"`` is static HMC with ``round(path_length / step_size)`` leapfrog
        steps jittered uniformly by +-10 % (see :mod:`ppl_ad.infer.hmc`; Python engine).
    target_accept : float, optional
        Target mean acceptance statistic of step-size adaptation.
    max_treedepth : int, optional
        NUTS maximum tree depth (HMC: at most ``2**max_treedepth`` steps).
    metric : {"diag", "dense", "low_rank"}, optional
        Diagonal or dense metric, adapted during warmup, or (nutpie's warmup)
        ``"low_rank"``: nutpie's diagonal metric corrected along the directions where the
        posterior's variance differs most from it, estimated from the draws and their
        gradients (at most 32 directions; see :mod:`ppl_ad.infer.adaptation.low_rank`). For
        correlated posteriors: on the 100-d Gaussian benchmark it gave twice the
        effective sample size per gradient of ``"diag"`` (35.4 against 17.7, medians over
        six seeds); on models without strong
        correlations it costs time per step and gains nothing.
    init : "jitter" or dict or list of dict, optional
        ``"jitter"``: uniform(-2, 2) on the unconstrained space, retried until
        finite. A dict of model-space values by site name (all chains), or one
        dict per chain.
    progressbar : bool, optional
        One bar per chain on stderr (only when stderr is a terminal).
    engine : {None, "jax", "python"}, optional
        ``"jax"`` runs NUTS and warmup inside one XLA program (backends ``jax`` and
        ``jax-forward``); ``"python"`` runs the NumPy loop that calls the backend once per
        leapfrog step (every backend). None: ``"jax"`` when the backend allows it. Recorded in
        ``attrs["engine"]``.
    chain_method : {None, "sequential", "parallel", "vectorized"}, optional
        ``"parallel"``: one worker process per core; ``"sequential"``: one chain after another
        in this process; ``"vectorized"`` (engine ``"jax"``): all chains in one program with
        ``jax.vmap`` (good on a GPU). None: the Python engine runs parallel when more than one core
        and chain; the JAX engine runs sequential unless ``cores`` is 2 or more.
    path_length : float, optional
        Static HMC nominal integration time (keyword only; unused by NUTS).
    coords : dict, optional
        Labels of the dimensions that sites name with ``dims=`` (``{"school": names}``), as in
        PyMC; checked against the sites' shapes before sampling. Without them the axes are
        still named by the dims, with labels ``0..n-1``.
    log_likelihood : bool, optional
        Add the pointwise ``log_likelihood`` group (one variable per observed site), which
        ``az.loo``, ``az.waic`` and ``az.compare`` need; see
        :func:`ppl_ad.compute_log_likelihood`.

    discard_tuned_samples : bool, optional
        False keeps the warmup iterations too, as PyMC does: groups ``warmup_posterior`` and
        ``warmup_sample_stats`` (each iteration's draw, and the step size it ran with), to see
        how warmup went. Not with ``checkpoint=`` (a checkpoint keeps the draws after warmup).

    Returns
    -------
    arviz.InferenceData
        ``posterior`` (sampled and deterministic sites, constrained, in model
        shapes), ``sample_stats`` (``lp``, ``acceptance_rate``, ``step_size``, ``n_steps``,
        ``diverging``, ``energy``, ``energy_error``; NUTS adds ``tree_depth`` and
        ``reached_max_treedepth``), ``observed_data``, and ``attrs`` (model,
        backend, backend_source, engine, chain_method, ppl_ad version, seed, sampler settings,
        ``tuning_time`` and ``sampling_time``: seconds summed over chains,
        ``gradient_evaluations``: calls of the gradient summed over chains; ``gradient_time``:
        seconds inside those calls (Python engine; NaN for the JAX engine, where the gradient
        runs inside the compiled program); ``compile_time``: seconds spent compiling the
        sampler (JAX engine; near zero when the on-disk compilation cache had it);
        ``wall_time``: seconds for the whole call). With ``log_likelihood=True``, also
        ``log_likelihood``.

    metric_adaptation : {"nutpie", "fisher", "stan"}, optional
        How warmup adapts a diagonal metric. ``"nutpie"`` (the default), as nutpie: from the
        draws and their gradients, ``sqrt(Var(x) / Var(grad log p))`` (which minimises a Fisher
        divergence and needs few draws), re-estimated after every draw of the first 85 % of
        warmup from estimators that are replaced every 10, later 80 draws, with the step size
        adapted throughout; the metric is usable after a few draws, so warmup costs fewer
        gradients. ``"fisher"``: the same estimator at the ends of Stan's windows. ``"stan"``: the
        draws' regularised variances at the ends of Stan's windows, as Stan and PyMC. A dense
        metric always uses Stan's windows and estimator. See :mod:`ppl_ad.infer.adaptation.window`.
    checkpoint : str or os.PathLike, optional
        Stream draws, statistics and each chain's full state to this zarr store as the run
        proceeds; the same call with the same path resumes where the chains stopped and gives
        the same draws as an uninterrupted run (see :mod:`ppl_ad.infer.checkpoint` and
        :func:`ppl_ad.read_checkpoint`). Not with ``chain_method="vectorized"``.
    checkpoint_every : int, optional
        Save every this many iterations; default: every 2 seconds of work.
    overwrite : bool, optional
        Start over when ``checkpoint`` holds another run's checkpoint (else
        :class:`~ppl_ad.errors.CheckpointError`).
    executor : distributed.Client or concurrent.futures.Executor, optional
        Run each chain as one task there (``attrs["chain_method"] == "executor"``,
        ``attrs["executor"]``: ``"dask"`` or the executor's class name). A Dask client gets the
        model with each task (scattered to every worker once above 8 MiB) and reruns the chains
        of a worker that died; the
        draws equal those of a local run with the same seed. A ``checkpoint`` path must be on
        storage that the workers share. See :mod:`ppl_ad.infer.distributed`.

    Raises
    ------
    ppl_ad.errors.ConfigError
        An invalid argument or an engine the backend does not support.
    ppl_ad.errors.CheckpointError
        ``checkpoint`` holds a checkpoint of another run (the message says what differs).
    ppl_ad.errors.SamplingError
        No finite initial point (the message names the sites), or warmup failed.

    Warns
    -----
    ppl_ad.errors.SamplingWarning
        Divergences or maximum-tree-depth hits after warmup (counts per chain).
    """
    wall_start = time.perf_counter()
    _validate(draws, tune, chains, cores, sampler, target_accept, max_treedepth, metric, init, path_length,
              engine, chain_method, metric_adaptation, discard_tuned_samples)
    # Chains in worker processes prepare their own backend: the parent's would go unused.
    ld = resolve_logdensity(model, backend, prepare=False)
    if ld.dimension == 0:
        raise SamplingError(
            f"model '{ld.model.name}' has no parameters to sample: every site is observed, deterministic "
            "or a factor. Evaluate it with pa.logdensity, or simulate its observed sites with "
            "pa.sample_prior_predictive")
    _warn_reference_backend(ld)
    check_sample_coords(ld, coords, log_likelihood)
    chains, draws, tune = int(chains), int(draws), int(tune)
    engine = select_engine(ld, engine, sampler)
    if executor is not None:
        if chain_method is not None:
            raise ConfigError(f"sample: executor=... runs one task per chain; chain_method={chain_method!r} must be "
                              "left at None")
        chain_method, cores = "executor", 1
    else:
        chain_method, cores = select_chain_method(engine, chain_method, chains, cores)
    settings = ChainSettings(
        draws=draws,
        tune=tune,
        sampler=sampler,
        target_accept=float(target_accept),
        max_treedepth=int(max_treedepth),
        metric=metric,
        path_length=float(path_length),
        engine=engine,
        metric_adaptation=metric_adaptation,
        keep_warmup=not discard_tuned_samples,
    )
    seed_seq = _seed_sequence(seed, checkpoint, overwrite)
    chain_seeds = seed_seq.spawn(chains)

    spec = worker_spec(ld) if chain_method == "parallel" else None
    if spec is None and chain_method == "parallel":
        chain_method, cores = "sequential", 1
    checkpoints = _open_checkpoint(checkpoint, checkpoint_every, overwrite, ld, settings, chains, seed_seq, init,
                                   chain_method)
    if spec is None and chain_method != "executor" and engine == "python" and hasattr(ld, "prepare"):
        # in-process chains: a preparation error is raised here, before sampling (the JAX
        # engine traces the model into its own program and needs no compiled backend)
        ld.prepare()

    bars = ProgressBars(chains, tune, draws) if progress_enabled(progressbar) else None
    preload = _Preload()
    try:
        # Chains on an executor are not this process's to stop: Ctrl-C cancels their tasks.
        with _signals(checkpoints if chain_method != "executor" else None):
            if chain_method == "executor":
                from ppl_ad.infer.distributed import run_chains

                preload.start()
                results, cores, executor_kind = run_chains(executor, ld, chain_seeds, settings, init, bars,
                                                           checkpoints)
            elif spec is not None:
                # This process waits while the workers sample: import ArviZ (about 1.5 s) meanwhile.
                preload.start()
                results = run_parallel(spec, chain_seeds, settings, init, cores, bars, checkpoints)
            else:
                # XLA compiles, loads and runs without the GIL: import ArviZ meanwhile (not while
                # the model is traced, which needs the GIL)
                results = run_sequential(ld, chain_seeds, settings, init, bars,
                                         vectorized=chain_method == "vectorized", checkpoints=checkpoints,
                                         when_compiling=preload.start if engine == "jax" else None)
    finally:
        if bars is not None:
            bars.close()
        preload.join()  # before any warning filter of this thread changes (see preload_arviz)

    extra = {"engine": engine, "chain_method": chain_method}
    if chain_method == "executor":
        extra["executor"] = executor_kind
    if checkpoint is not None:
        extra["checkpoint"] = str(checkpoint)
    if engine == "jax":
        extra["compile_time"] = float(max(r.compile_time for r in results))
    return to_inference_data(ld, results, settings, chains, cores, seed_seq, init, wall_start, extra,
                             coords=coords, log_likelihood=log_likelihood)
