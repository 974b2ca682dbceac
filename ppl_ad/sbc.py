"""Simulation-based calibration (SBC): does the sampler recover the prior from its own fits?

For each of ``simulations`` simulations, :func:`sbc`

1. draws the parameters from their priors and the observed sites from the likelihood given
   them (the model's NumPy predictive path, :class:`ppl_ad.model.handlers.PredictiveHandler`,
   as :func:`ppl_ad.sample_prior_predictive` does);
2. conditions the model on the simulated observations by site name (:func:`ppl_ad.condition`);
3. refits it with ``pa.sample(..., cores=1, progressbar=False)``;
4. records the rank of each true parameter value (per element for vector parameters) among the
   thinned posterior draws: the number of draws smaller than it, an integer in ``0..L``.

If the sampler draws from the right posterior, every rank is uniform on ``0..L`` (Talts et
al. 2018). :class:`SBCResult` tests that with a chi-square test on binned ranks
(:attr:`SBCResult.pvalues`) and with the simultaneous ECDF bands of Säilynoja et al. 2022
(:attr:`SBCResult.ecdf_pvalues`, :meth:`SBCResult.plot`).

Each simulation is one task. Its seeds come from ``numpy.random.SeedSequence(seed).spawn(
simulations)`` alone, so the ranks do not depend on where or in which order the tasks run, nor on
whether a task was retried after its worker died. Tasks run on ``executor``: a Dask
``distributed.Client`` (the model is scattered to every worker once, then each task names it),
or any ``concurrent.futures.Executor`` (the model travels with each task). Without an
executor they run on the local cores in spawned worker processes (the model is sent to each
worker once), or in this process when ``cores == 1``.

References
----------
Talts, S., Betancourt, M., Simpson, D., Vehtari, A. and Gelman, A. (2018). Validating Bayesian
inference algorithms with simulation-based calibration. arXiv:1804.06788.

Säilynoja, T., Bürkner, P.-C. and Vehtari, A. (2022). Graphical test for discrete uniformity
and its applications in goodness-of-fit evaluation and multiple sample comparison. *Statistics
and Computing* 32, 32. doi:10.1007/s11222-022-10090-6.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import math
import multiprocessing
import os
import pickle
import sys
import time
import types
import uuid
import warnings
from dataclasses import dataclass, field

import numpy as np

from ppl_ad._keywords import checks_keywords
from ppl_ad.infer.distributed import is_dask_client

__all__ = ["sbc", "SBCResult", "SBCSettings"]


# --------------------------------------------------------------------------- #
# One simulation (runs in a worker)
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class SBCSettings:
    """What every simulation needs besides its model and seed (small, sent with each task)."""

    backend: object = None
    draws: int = 1000
    tune: int = 1000
    chains: int = 1
    thin: int = 10
    sample_kwargs: tuple = ()

    @property
    def rank_draws(self) -> int:
        """``L``, the number of thinned posterior draws a rank is counted among."""
        return self.chains * len(range(0, self.draws, self.thin))


def _child_seed(seed_seq: np.random.SeedSequence, k: int) -> np.random.SeedSequence:
    # A pure function of seed_seq (unlike seed_seq.spawn, which counts its calls): a retried
    # task draws the same numbers.
    return np.random.SeedSequence(seed_seq.entropy, spawn_key=tuple(seed_seq.spawn_key) + (k,))


def _warning_text(record) -> str:
    return f"{record.category.__name__}: {record.message}"


def simulate_and_rank(model, index: int, seed_seq: np.random.SeedSequence, settings: SBCSettings) -> dict:
    """Run simulation ``index``: simulate from the prior, refit, rank the true values.

    Parameters
    ----------
    model : ppl_ad.model.Model
    index : int
        Simulation number (reported back, and in error messages).
    seed_seq : numpy.random.SeedSequence
        This simulation's seed; its child 0 simulates, its child 1 seeds the fit.
    settings : SBCSettings

    Returns
    -------
    dict
        ``index``, ``ranks`` (parameter -> int array in model shape), ``divergences``,
        ``warnings`` (distinct messages raised during the fit), ``seconds`` (wall) and
        ``cpu_seconds`` (CPU time of the worker process, all its threads).
    """
    import ppl_ad as pa
    from ppl_ad import math as M
    from ppl_ad.model.condition import condition
    from ppl_ad.model.handlers import draw_prior

    start, cpu_start = time.perf_counter(), time.process_time()
    rng = np.random.default_rng(_child_seed(seed_seq, 0))
    fit_seed = int(_child_seed(seed_seq, 1).generate_state(1)[0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with np.errstate(all="ignore"), M.using("numpy"):
            simulated = draw_prior(model, rng)
        conditioned = condition(model, simulated.observed)
        try:
            idata = pa.sample(
                conditioned, backend=settings.backend, draws=settings.draws, tune=settings.tune,
                chains=settings.chains, cores=1, seed=fit_seed, progressbar=False,
                **dict(settings.sample_kwargs),
            )
        except Exception as error:
            error.add_note(f"in SBC simulation {index} of model '{model.name}' (seed {fit_seed})")
            raise
    posterior = idata.posterior
    parameters = _parameter_names(model)
    names = [name for name in simulated.values if name in parameters]
    ranks = {}
    for name in names:
        draws = np.asarray(posterior[name].values)[:, :: settings.thin]
        draws = draws.reshape((-1,) + draws.shape[2:])
        truth = np.asarray(simulated.values[name], dtype=float)
        ranks[name] = np.sum(draws < truth, axis=0).astype(np.int64)
    diverging = idata.sample_stats.get("diverging")
    messages = list(dict.fromkeys(_warning_text(record) for record in caught))
    return {
        "index": index,
        "ranks": ranks,
        "divergences": int(np.sum(diverging.values)) if diverging is not None else 0,
        "backend": idata.attrs.get("backend"),
        "warnings": messages,
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu_start,
    }


def _parameter_names(model) -> list[str]:
    from ppl_ad.model.condition import _site_kinds

    return [name for name, kind in _site_kinds(model).items() if kind == "sample"]


# --------------------------------------------------------------------------- #
# Shipping the model
# --------------------------------------------------------------------------- #


def _rebuild_model(fn, name, preferred_backend, data):
    from ppl_ad.model.model import Model, ModelFunction

    return Model(ModelFunction(fn, name, preferred_backend), data)


class _ByValue:
    """Pickles a model with its function by value (cloudpickle), for models in ``__main__``."""

    def __init__(self, model):
        self.model = model

    def __reduce__(self):
        function = self.model.function
        return (_rebuild_model, (function.fn, function.name, function.backend, self.model.data))


def _interactive_main() -> bool:
    main = sys.modules.get("__main__")
    return main is not None and not getattr(main, "__file__", None)


def model_payload(model) -> bytes:
    """The pickled model, loadable in a fresh process.

    A model pickles by reference to its module-level function. A function defined in a
    notebook or REPL, or inside another function, is sent by value with cloudpickle (as Dask
    and :func:`ppl_ad.sample` do).
    """
    try:
        data = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - fall back to by-value below
        data = None
    if data is not None and b"__main__" not in data and b"<locals>" not in data:
        return data
    import cloudpickle

    return cloudpickle.dumps(_ByValue(model), protocol=pickle.HIGHEST_PROTOCOL)


_MODELS: dict[str, object] = {}


def _load(payload: bytes):
    key = hashlib.sha1(payload).hexdigest()
    model = _MODELS.get(key)
    if model is None:
        model = pickle.loads(payload)
        _MODELS.clear()
        _MODELS[key] = model
    return model


def _task(payload: bytes, index: int, seed_seq, settings: SBCSettings) -> dict:
    """A simulation task on a remote worker (Dask or a generic executor)."""
    return simulate_and_rank(_load(payload), index, seed_seq, settings)


_LOCAL: dict = {}


def _local_init(payload: bytes) -> None:
    _LOCAL["payload"] = payload


def _local_task(index: int, seed_seq, settings: SBCSettings) -> dict:
    """A simulation task in a local worker process (the model arrived once, at start-up)."""
    return simulate_and_rank(_load(_LOCAL["payload"]), index, seed_seq, settings)


@contextlib.contextmanager
def _one_thread_per_worker(processes: int):
    """Cap the intra-op threads of the spawned workers (they start during the submits), as the
    sampler does for its chain workers, and hide the main module from them: a script without an
    ``if __name__ == "__main__":`` guard is not run again in each of them."""
    from ppl_ad.infer.parallel import environment, main_module_hidden, worker_environment

    with environment(worker_environment(processes)), main_module_hidden():
        yield


# --------------------------------------------------------------------------- #
# Running the simulations
# --------------------------------------------------------------------------- #


def _progress(total: int, progressbar: bool, name: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"SBC {name}", unit="fit", disable=None if progressbar else True, leave=False)


def _run_dask(client, payload, seeds, settings, bar) -> list[dict]:
    from distributed import as_completed

    from ppl_ad.infer.distributed import INLINE_RECIPE

    # a small model travels inside each task: scattered data that Dask's replica cleanup left on a
    # worker that then died cannot be recovered, and the whole run failed (FutureCancelledError)
    model = payload if len(payload) <= INLINE_RECIPE else client.scatter(payload, broadcast=True, hash=False)
    token = uuid.uuid4().hex[:8]
    futures = [
        client.submit(_task, model, index, seed_seq, settings, key=f"ppl_ad-sbc-{token}-{index}", pure=False)
        for index, seed_seq in enumerate(seeds)
    ]
    results = []
    try:
        for future in as_completed(futures):
            results.append(future.result())
            bar.update(1)
    finally:
        client.cancel(futures + ([] if isinstance(model, bytes) else [model]))
    return results


def _run_executor(executor, submit, seeds, bar) -> list[dict]:
    futures = [submit(index, seed_seq) for index, seed_seq in enumerate(seeds)]
    results = []
    try:
        for future in concurrent.futures.as_completed(futures):
            results.append(future.result())
            bar.update(1)
    finally:
        for future in futures:
            future.cancel()
    return results


@checks_keywords
def sbc(
    model,
    simulations: int = 100,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 1,
    thin: int = 10,
    backend=None,
    seed=None,
    executor=None,
    cores: int | None = None,
    progressbar: bool = True,
    bins: int | None = None,
    sample_kwargs: dict | None = None,
) -> "SBCResult":
    """Simulation-based calibration of ``model`` with ppl_ad's sampler (Talts et al. 2018).

    Parameters
    ----------
    model : ppl_ad.model.Model
        A bound model. Its data fix the shapes (and any covariates); its observed values are
        replaced by simulated ones in every simulation.
    simulations : int, optional
        Number of prior draws, each refitted once.
    draws, tune, chains : int, optional
        Passed to :func:`ppl_ad.sample` for every fit (which runs with ``cores=1``).
    thin : int, optional
        Keep every ``thin``-th posterior draw of each chain, so that the ranks are computed among
        roughly independent draws (autocorrelated draws make the rank histogram U-shaped
        even for a correct sampler). Ranks lie in ``0..L`` with
        ``L = chains * ceil(draws / thin)``.
    backend : str or Backend, optional
        AD backend of the fits (see :func:`ppl_ad.sample`).
    seed : int or numpy.random.SeedSequence, optional
        Simulation ``i`` is seeded from ``SeedSequence(seed).spawn(simulations)[i]`` alone: the
        same seed gives the same ranks in-process, on local workers or on a cluster.
    executor : distributed.Client or concurrent.futures.Executor, optional
        Where the simulations run, one task each. A Dask client gets the model scattered to
        every worker once; lost tasks (a worker died) are rerun by Dask. Any other executor
        receives the pickled model with each task. None: local worker processes.
    cores : int, optional
        Without an executor: the number of local worker processes (spawned); default
        ``min(simulations, os.cpu_count())``. ``cores=1`` runs in this process. A model defined
        in a script's ``__main__`` runs in this process too (the workers would re-run the
        script); pass an executor to run it in parallel.
    progressbar : bool, optional
        A tqdm bar over the simulations (shown when stderr is a terminal).
    bins : int, optional
        Bins of the chi-square test and the rank histograms (see :class:`SBCResult`).
    sample_kwargs : dict, optional
        Further keyword arguments of :func:`ppl_ad.sample` (``target_accept``, ``metric``, ...).
        The fits use ``engine="python"`` unless this says otherwise: every simulation brings new
        data, and the compiled JAX engine compiles its program again for each (measured: about
        3 s of CPU per fit, against 0.1 s for a whole 200-iteration fit of a 1-d model with the
        Python engine and the ``jax`` backend, and 0.9 s for 2000 iterations of eight schools).

    Returns
    -------
    SBCResult

    Notes
    -----
    Warnings raised inside the fits (divergences, maximum tree depth) are collected per
    simulation in :attr:`SBCResult.warnings`, not shown; divergences are counted in
    :attr:`SBCResult.divergences`.

    Examples
    --------
    >>> import numpy as np
    >>> import ppl_ad as pa
    >>> from ppl_ad.testing.scenarios import normal_normal
    >>> result = pa.sbc(normal_normal(np.zeros(10), 1.0, 1.0), simulations=20, draws=100,
    ...                 tune=100, thin=2, backend="jax", seed=1, cores=1, progressbar=False)
    >>> result.ranks["mu"].shape
    (20,)
    """
    from ppl_ad.errors import ConfigError
    from ppl_ad.model.model import Model

    if not isinstance(model, Model):
        raise TypeError(f"pa.sbc needs a bound model (a @pa.model function called with its data), got {model!r}")
    for name, value in (("simulations", simulations), ("draws", draws), ("chains", chains), ("thin", thin)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"pa.sbc: {name} must be a positive integer, got {value!r}")
    if isinstance(tune, bool) or not isinstance(tune, (int, np.integer)) or tune < 0:
        raise ConfigError(f"pa.sbc: tune must be an integer >= 0, got {tune!r}")
    from ppl_ad.predictive import warn_unsimulated_factors

    warn_unsimulated_factors(model, "pa.sbc")
    settings = SBCSettings(
        backend=backend, draws=int(draws), tune=int(tune), chains=int(chains), thin=int(thin),
        sample_kwargs=tuple(sorted({"engine": "python", **(sample_kwargs or {})}.items())),
    )
    from ppl_ad.infer.state import fresh_seed_sequence

    root = fresh_seed_sequence(seed) if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    seeds = root.spawn(simulations)
    try:
        payload, unpicklable = model_payload(model), None
    except Exception as error:  # noqa: BLE001 - data that cannot be pickled: fine in this process
        payload, unpicklable = None, error
    if executor is not None and payload is None:
        raise ConfigError(f"pa.sbc: model '{model.name}' cannot be sent to the executor's workers: "
                          f"{type(unpicklable).__name__}: {unpicklable} (its data must pickle)")
    where = "in-process"
    start = time.perf_counter()
    with _progress(simulations, progressbar, model.name) as bar:
        if executor is not None and is_dask_client(executor):
            if getattr(executor, "status", None) in ("closing", "closed"):
                raise ConfigError("pa.sbc: the Dask client passed as executor= is closed")
            where = f"dask ({len(executor.nthreads())} workers)"
            results = _run_dask(executor, payload, seeds, settings, bar)
        elif executor is not None:
            from ppl_ad.infer.distributed import _check_executor

            _check_executor(executor)
            where = type(executor).__name__
            results = _run_executor(
                executor, lambda i, s: executor.submit(_task, payload, i, s, settings), seeds, bar
            )
        else:
            cores = min(simulations, cores or os.cpu_count() or 1)
            in_main = payload is None or (b"__main__" in payload and not _interactive_main())
            if cores <= 1 or in_main:
                results = []
                for index, seed_seq in enumerate(seeds):
                    results.append(simulate_and_rank(model, index, seed_seq, settings))
                    bar.update(1)
            else:
                where = f"{cores} local processes"
                ctx = multiprocessing.get_context("spawn")
                with _one_thread_per_worker(cores):
                    pool = concurrent.futures.ProcessPoolExecutor(
                        max_workers=cores, mp_context=ctx, initializer=_local_init, initargs=(payload,)
                    )
                    try:
                        results = _run_executor(
                            pool, lambda i, s: pool.submit(_local_task, i, s, settings), seeds, bar
                        )
                    finally:
                        pool.shutdown(wait=True, cancel_futures=True)
    wall = time.perf_counter() - start
    results.sort(key=lambda r: r["index"])
    names = list(results[0]["ranks"]) if results else []
    return SBCResult(
        ranks={name: np.stack([r["ranks"][name] for r in results]) for name in names},
        rank_draws=settings.rank_draws,
        divergences=np.array([r["divergences"] for r in results], dtype=np.int64),
        warnings={r["index"]: r["warnings"] for r in results if r["warnings"]},
        seconds=np.array([r["seconds"] for r in results]),
        wall_seconds=wall,
        cpu_seconds=np.array([r["cpu_seconds"] for r in results]),
        bins=bins,
        settings={
            "model": model.name, "simulations": simulations, "draws": draws, "tune": tune,
            "chains": chains, "thin": thin, "backend": _backends_used(results, backend),
            "seed": seed if not isinstance(seed, np.random.SeedSequence) else repr(seed),
            "executor": where,
        },
    )


def _backends_used(results, requested) -> str | None:
    """The backend the fits ran with (``backend=None`` resolves per the configuration, as
    ``pa.sample`` does), or the requested one when no fit reported it."""
    used = list(dict.fromkeys(str(r["backend"]) for r in results if r.get("backend")))
    if used:
        return ", ".join(used)
    return str(requested) if requested is not None else None


# --------------------------------------------------------------------------- #
# Uniformity tests and the result
# --------------------------------------------------------------------------- #


def _default_bins(simulations: int, rank_draws: int) -> int:
    # about 5 expected ranks per bin (the chi-square approximation), at most 20 bins
    return int(max(2, min(rank_draws + 1, 20, simulations // 5)))


def _binned(ranks: np.ndarray, rank_draws: int, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts of ``ranks`` (in ``0..L``) in ``bins`` bins, and each bin's probability under uniformity."""
    values = rank_draws + 1
    which = (np.arange(values) * bins) // values
    probabilities = np.bincount(which, minlength=bins) / values
    counts = np.bincount((np.asarray(ranks) * bins) // values, minlength=bins)
    return counts, probabilities


def chi_square_pvalue(ranks, rank_draws: int, bins: int) -> float:
    """Chi-square test of uniformity of integer ranks in ``0..rank_draws`` over ``bins`` bins."""
    from scipy import stats

    counts, probabilities = _binned(ranks, rank_draws, bins)
    return float(stats.chisquare(counts, probabilities * counts.sum()).pvalue)


def _ecdf_points(rank_draws: int, points: int = 100) -> np.ndarray:
    """Ranks ``k`` at which the ECDF is evaluated: ``F(k) = #{rank < k} / N``, ``z = k / (L+1)``."""
    return np.unique(np.linspace(1, rank_draws, min(rank_draws, points)).round().astype(int))


def _ecdf_statistic(counts_below: np.ndarray, simulations: int, z: np.ndarray) -> np.ndarray:
    """Smallest two-sided binomial tail probability over the evaluation points (Säilynoja et al.)."""
    from scipy import stats

    lower = stats.binom.cdf(counts_below, simulations, z)
    upper = stats.binom.sf(counts_below - 1, simulations, z)
    return np.min(np.minimum(1.0, 2.0 * np.minimum(lower, upper)), axis=-1)


@dataclass(frozen=True)
class _ECDFReference:
    z: np.ndarray
    points: np.ndarray
    null_statistics: np.ndarray  # sorted

    def gamma(self, probability: float) -> float:
        return float(np.quantile(self.null_statistics, 1.0 - probability))

    def pvalue(self, statistic: float) -> float:
        below = np.searchsorted(self.null_statistics, statistic, side="right")
        return float((below + 1) / (len(self.null_statistics) + 1))


def _ecdf_reference(simulations: int, rank_draws: int, trials: int = 2000) -> _ECDFReference:
    """The null distribution of the ECDF statistic, by simulating uniform ranks (fixed seed)."""
    points = _ecdf_points(rank_draws)
    z = points / (rank_draws + 1)
    rng = np.random.default_rng(20220101)
    uniform = rng.integers(0, rank_draws + 1, size=(trials, simulations))
    below = (uniform[:, :, None] < points[None, None, :]).sum(axis=1)
    statistics = _ecdf_statistic(below, simulations, z[None, :])
    return _ECDFReference(z, points, np.sort(statistics))


@dataclass
class SBCResult:
    """What :func:`sbc` returns: the ranks and their uniformity tests.

    Attributes
    ----------
    ranks : dict of str to numpy.ndarray
        Parameter -> integer ranks in ``0..rank_draws``, shape ``(simulations,)`` for a scalar
        parameter and ``(simulations, *shape)`` for a vector one.
    rank_draws : int
        ``L``, the number of thinned posterior draws per fit.
    divergences : numpy.ndarray
        Divergent transitions of each fit.
    warnings : dict of int to list of str
        Simulation -> the distinct warnings its fit raised (only simulations that raised some).
    seconds : numpy.ndarray
        Time of each simulation (simulate, fit, rank) where it ran.
    wall_seconds : float
        Wall time of the whole run.
    cpu_seconds : numpy.ndarray or None
        CPU time of each simulation in its process (less sensitive than ``seconds`` to other
        load on the machine).
    bins : int or None
        Bins of the chi-square test and the histograms; None: about five ranks per bin expected,
        at most 20.
    settings : dict
        The model name and the arguments of the run.
    """

    ranks: dict
    rank_draws: int
    divergences: np.ndarray
    warnings: dict
    seconds: np.ndarray
    wall_seconds: float
    cpu_seconds: np.ndarray | None = None
    bins: int | None = None
    settings: dict = field(default_factory=dict)

    @property
    def simulations(self) -> int:
        """Number of simulations."""
        return int(len(self.divergences))

    @property
    def fits_per_minute(self) -> float:
        """Throughput of the run: simulations per minute of wall time."""
        return 60.0 * self.simulations / self.wall_seconds if self.wall_seconds > 0 else math.inf

    def _bins(self) -> int:
        return int(self.bins) if self.bins else _default_bins(self.simulations, self.rank_draws)

    def _elements(self, name):
        ranks = self.ranks[name]
        flat = ranks.reshape(ranks.shape[0], -1)
        labels = [name] if ranks.ndim == 1 else [f"{name}[{','.join(map(str, i))}]" for i in np.ndindex(*ranks.shape[1:])]
        return flat, labels

    def element_pvalues(self) -> dict:
        """Chi-square p-value of every element: parameter -> array in the parameter's shape."""
        bins = self._bins()
        out = {}
        for name, ranks in self.ranks.items():
            flat, _ = self._elements(name)
            values = [chi_square_pvalue(flat[:, j], self.rank_draws, bins) for j in range(flat.shape[1])]
            out[name] = np.asarray(values).reshape(ranks.shape[1:])
        return out

    @property
    def pvalues(self) -> dict:
        """Uniformity p-value per parameter: chi-square on the binned ranks.

        A vector parameter's p-value is the smallest of its elements' times their number
        (Bonferroni; valid although the elements' ranks are dependent).
        """
        return {
            name: float(min(1.0, np.min(p) * np.size(p))) for name, p in self.element_pvalues().items()
        }

    @property
    def ecdf_pvalues(self) -> dict:
        """Uniformity p-value per parameter from the ECDF test of Säilynoja et al. 2022.

        The statistic is the smallest two-sided binomial tail probability of the rank ECDF over
        up to 100 evaluation points; its null distribution is simulated (2000 draws, so
        p-values are at least 1/2001). Vector parameters: Bonferroni over the elements.
        """
        reference = _ecdf_reference(self.simulations, self.rank_draws)
        out = {}
        for name in self.ranks:
            flat, _ = self._elements(name)
            below = (flat[:, :, None] < reference.points[None, None, :]).sum(axis=0)
            statistics = _ecdf_statistic(below, self.simulations, reference.z[None, :])
            p = min(reference.pvalue(s) for s in statistics)
            out[name] = float(min(1.0, p * flat.shape[1]))
        return out

    def plot(self, kind: str = "ecdf", probability: float = 0.99, parameters=None, max_elements: int = 50):
        """Rank histograms or ECDF-difference plots with the band expected under uniformity.

        Parameters
        ----------
        kind : {"ecdf", "hist"}
            ``"ecdf"``: the ECDF of the fractional ranks minus the uniform CDF, with the
            simultaneous ``probability`` band of Säilynoja et al. 2022 (one line per element
            of a vector parameter). ``"hist"``: rank histograms (elements pooled) with the
            pointwise ``probability`` interval of each bin's count (Talts et al. 2018, Fig. 1).
        probability : float
            Coverage of the band.
        parameters : list of str, optional
            Default: every parameter.
        max_elements : int
            At most this many elements of a vector parameter are drawn.

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt
        from scipy import stats

        if kind not in ("ecdf", "hist"):
            raise ValueError(f"SBCResult.plot: kind must be 'ecdf' or 'hist', got {kind!r}")
        names = list(parameters or self.ranks)
        columns = min(4, len(names)) or 1
        rows = math.ceil(len(names) / columns) or 1
        fig, axes = plt.subplots(rows, columns, figsize=(max(4.5, 3.2 * columns), 0.5 + 2.6 * rows), squeeze=False)
        n, big_l = self.simulations, self.rank_draws
        reference = _ecdf_reference(n, big_l) if kind == "ecdf" else None
        for ax, name in zip(axes.flat, names):
            flat, labels = self._elements(name)
            if kind == "ecdf":
                gamma = reference.gamma(probability)
                z = reference.z
                lower = stats.binom.ppf(gamma / 2, n, z) / n - z
                upper = stats.binom.ppf(1 - gamma / 2, n, z) / n - z
                ax.fill_between(z, lower, upper, color="0.85", step="mid", label=f"{probability:.0%} band")
                for j in range(min(flat.shape[1], max_elements)):
                    below = (flat[:, j][:, None] < reference.points[None, :]).mean(axis=0)
                    ax.step(z, below - z, where="mid", lw=1.0, alpha=0.8 if flat.shape[1] == 1 else 0.5)
                ax.axhline(0.0, color="0.4", lw=0.5)
                ax.set_xlabel("fractional rank")
                ax.set_ylabel("ECDF difference")
            else:
                bins = self._bins()
                counts, probabilities = _binned(flat.ravel(), big_l, bins)
                total = flat.size
                edges = np.arange(bins + 1)
                lo = stats.binom.ppf((1 - probability) / 2, total, probabilities)
                hi = stats.binom.ppf(1 - (1 - probability) / 2, total, probabilities)
                ax.fill_between(edges, np.append(lo, lo[-1]), np.append(hi, hi[-1]), step="post", color="0.85", zorder=0)
                ax.bar(edges[:-1], counts, width=1.0, align="edge", color="C0", alpha=0.7, zorder=1)
                ax.set_xlabel(f"rank bin (L={big_l})")
                ax.set_ylabel("count")
            suffix = f" ({flat.shape[1]} elements)" if flat.shape[1] > 1 else ""
            ax.set_title(f"{name}{suffix}", fontsize=9)
        for ax in list(axes.flat)[len(names):]:
            ax.set_visible(False)
        fig.suptitle(
            f"SBC of '{self.settings.get('model', '?')}'\n{n} simulations, L={big_l}, "
            f"backend {self.settings.get('backend')}", fontsize=9,
        )
        fig.tight_layout()
        return fig

    def to_markdown(self) -> str:
        """A markdown summary: settings, throughput, and a table of p-values per parameter."""
        chi, ecdf = self.pvalues, self.ecdf_pvalues
        s = self.settings
        lines = [
            f"SBC of `{s.get('model')}` with backend `{s.get('backend')}`: {self.simulations} simulations, "
            f"draws={s.get('draws')}, tune={s.get('tune')}, chains={s.get('chains')}, thin={s.get('thin')} "
            f"(L={self.rank_draws}), seed={s.get('seed')}, {s.get('executor')}; "
            f"{self.wall_seconds:.1f} s wall, {self.fits_per_minute:.1f} fits/min, "
            f"{int(self.divergences.sum())} divergences in {int((self.divergences > 0).sum())} fits.",
            "",
            "| parameter | elements | chi-square p | ECDF p |",
            "|---|---:|---:|---:|",
        ]
        for name, ranks in self.ranks.items():
            size = int(np.prod(ranks.shape[1:], dtype=int))
            lines.append(f"| `{name}` | {size} | {chi[name]:.3g} | {ecdf[name]:.3g} |")
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        pvalues = ", ".join(f"{k}={v:.3g}" for k, v in self.pvalues.items())
        return (
            f"SBCResult(model={self.settings.get('model')!r}, simulations={self.simulations}, "
            f"L={self.rank_draws}, pvalues={{{pvalues}}})"
        )


class _CallableModule(types.ModuleType):
    """``ppl_ad.sbc`` is both this module and the function :func:`sbc`.

    ``pa.sbc`` is the function; but importing this module by name (``from ppl_ad.sbc import
    SBCResult``, or unpickling a task in a worker) binds the module to ``ppl_ad.sbc`` first, so the
    module calls the function too.
    """

    def __call__(self, *args, **kwargs):
        return sbc(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
