"""Sampling efficiency: ppl_ad's NUTS (both engines) beside PyMC, NumPyro, BlackJAX and nutpie.

This module owns ``ppl-ad bench --sampling``. One *cell* is one (model, sampler) pair run in
its own process (``python -m ppl_ad.bench._cell --task sampling``): 4 chains x (1000 warmup +
1000 draws) of NUTS by default, on **one core** for every sampler (``--cores 1``, one thread
per library: chains one after another, NumPyro's vectorized in one program), and it reports
what a user pays for a posterior:

``min_ess_per_s``
    the smallest bulk effective sample size over every sampled quantity (Vehtari et al.
    2021, *Rank-normalization, folding, and localization: an improved R-hat*, as computed by
    ``arviz.ess``) divided by the **total wall time** of the call: model build, compilation,
    warmup and sampling. Libraries are imported before the clock starts, for every sampler:
    JAX, BlackJAX, PyTorch, PyMC, NumPyro, nutpie and ArviZ (for ppl_ad: the backend's library,
    BlackJAX under the compiled engine, and ArviZ);
``ess_per_1k_grad``
    the same ESS per 1000 gradient evaluations, warmup included (``gradient_evaluations``);
``steps_per_draw``
    leapfrog steps (one gradient evaluation each) per kept draw, and ``evals_per_draw``,
    every gradient evaluation of the run (warmup included) per kept draw;
``us_per_step``
    sampling-phase time divided by the leapfrog steps of the sampling phase (ppl_ad and
    BlackJAX, whose sampling phase is timed apart from compilation and warmup);
``step_size``, ``acceptance_rate``
    the sampling phase's step size and mean acceptance statistic (ppl_ad and PyMC);
``compile_s``
    compilation time where the sampler reports it (ppl_ad's JAX engine, BlackJAX's two
    programs, nutpie's ``compile_pymc_model``);
``gradient_us``, ``sampler_us_per_step``
    ppl_ad's Python engine only: time per backend call, and the sampler's own time per
    gradient evaluation outside the backend.

Every (model, sampler) runs twice, each time in a fresh process (:func:`run_pair`): ``cold``
with empty compilation caches (a new ``$PPL_AD_CACHE_DIR``, so ppl_ad's XLA cache under
``$PPL_AD_CACHE_DIR/xla`` is empty, and a new PyTensor ``base_compiledir`` for PyMC and nutpie),
then ``warm`` with the caches the cold run filled. BlackJAX and NumPyro keep no compilation
cache by default, so their warm run is a second cold one.

Samplers: a ppl_ad backend name (its default engine and chain method), ``BACKEND:ENGINE``
(``jax:python``) or ``BACKEND:CHAIN_METHOD`` (``jax:vectorized``), or a peer
(:mod:`ppl_ad.bench.peers`): PyMC 5 ``pm.sample`` (PyTensor C backend), NumPyro
``MCMC(NUTS)`` with vectorized chains, BlackJAX's NUTS with ``blackjax.window_adaptation``
jitted on a hand-written JAX density (:func:`ppl_ad.bench.peers.jax_logdensity`), and
nutpie (``nutpie.compile_pymc_model`` on the PyMC twin, numba backend). All follow Hoffman &
Gelman (2014), *The No-U-Turn Sampler*, JMLR 15, with a windowed warmup (nutpie: its own
gradient-based mass-matrix adaptation), so ESS per second compares implementations.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

__all__ = ["sampling_cell", "run_sampling_cell", "run_pair", "main", "parse_sampler", "summarize", "METRICS",
           "to_markdown", "plot", "SAMPLING_DEFAULTS", "DEFAULT_SAMPLERS"]

#: the benchmark protocol of ``benchmark-models.md``
SAMPLING_DEFAULTS = {"draws": 1000, "tune": 1000, "chains": 4}

#: ppl_ad's samplers in the matrix unless ``--backends`` says otherwise
DEFAULT_SAMPLERS = ("jax", "jax:python")

_PEER_LABELS = {"pymc": "PyMC", "numpyro": "NumPyro", "blackjax": "BlackJAX", "nutpie": "nutpie"}


#: metrics a sampler name may ask for (``"jax:low_rank"``)
METRICS = ("diag", "dense", "low_rank")


def parse_sampler(sampler: str) -> tuple[str, str | None, str | None, str | None]:
    """``(backend_or_peer, engine, chain_method, metric)`` of a sampler name.

    ``"jax"`` -> ``("jax", None, None, None)``; ``"jax:python"`` -> ``("jax", "python", None, None)``;
    ``"jax:vectorized"`` -> ``("jax", None, "vectorized", None)``; ``"jax:low_rank"`` ->
    ``("jax", None, None, "low_rank")``; a peer -> ``(peer, None, None, None)``.

    Raises
    ------
    ValueError
        An option that is neither an engine, a chain method nor a metric.
    """
    from ppl_ad.infer.engine import CHAIN_METHODS, ENGINES

    name, _, option = sampler.partition(":")
    if not option:
        return name, None, None, None
    if option in ENGINES:
        return name, option, None, None
    if option in CHAIN_METHODS:
        return name, None, option, None
    if option in METRICS:
        return name, None, None, option
    raise ValueError(f"sampler {sampler!r}: {option!r} is neither an engine {list(ENGINES)}, "
                     f"a chain method {list(CHAIN_METHODS)} nor a metric {list(METRICS)}")


def label(sampler: str) -> str:
    """The sampler's name in the report."""
    if sampler in _PEER_LABELS:
        return _PEER_LABELS[sampler]
    name, engine, method, metric = parse_sampler(sampler)
    if engine:
        return f"ppl_ad `{name}`, engine {engine}"
    if method:
        return f"ppl_ad `{name}`, {method}"
    if metric:
        return f"ppl_ad `{name}`, metric {metric}"
    return f"ppl_ad `{name}` (default)"


def _row(model: str, sampler: str) -> dict:
    return {
        "model": model, "sampler": sampler, "phase": "cold", "repeat": 0, "dimension": None,
        "engine": None, "chain_method": None, "wall_s": None, "compile_s": None, "tuning_s": None,
        "sampling_s": None, "min_ess_bulk": None, "min_ess_per_s": None, "ess_per_1k_grad": None,
        "max_rhat": None, "divergences": None, "steps_per_draw": None, "evals_per_draw": None,
        "gradient_evaluations": None, "sampling_steps": None, "us_per_step": None,
        "gradient_us": None, "sampler_us_per_step": None, "draws": None, "tune": None,
        "chains": None, "cores": None, "step_size": None, "acceptance_rate": None, "status": "ok", "note": "",
    }


def _ess_rhat(posterior, names) -> tuple[float, float]:
    """Smallest bulk ESS and largest R-hat over every element of the variables ``names``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az

        ess = az.ess(posterior, method="bulk", var_names=list(names))
        rhat = az.rhat(posterior, var_names=list(names))
    min_ess = min(float(np.min(ess[n].values)) for n in names)
    max_rhat = max(float(np.max(rhat[n].values)) for n in names)
    return min_ess, max_rhat


def _sampled_sites(model_name: str) -> tuple[list[str], int]:
    from ppl_ad.model.compiled import compile_model
    from ppl_ad.testing.scenarios import get_scenario

    compiled = compile_model(get_scenario(model_name).model())
    return list(compiled.site_shapes), int(compiled.dimension)


def _dataset(positions, layout):
    """An xarray Dataset from ``positions`` of shape (chains, draws, dim) and a peers layout."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az

        chains, draws = positions.shape[:2]
        return az.convert_to_dataset(
            {name: positions[:, :, s].reshape((chains, draws) + shape) for name, s, shape in layout})


def _sampling_stats(row, stats) -> None:
    """Step size and mean acceptance statistic of the sampling phase (means over chains and draws)."""
    row["steps_per_draw"] = float(stats["n_steps"].mean())
    row["sampling_steps"] = int(stats["n_steps"].sum())
    row["divergences"] = int(stats["diverging"].sum())
    row["step_size"] = float(stats["step_size"].mean())
    row["acceptance_rate"] = float(stats["acceptance_rate"].mean())


def _ppl_ad(row, model_name, sampler, draws, tune, chains, cores, seed, options=None):
    import ppl_ad as pa
    from ppl_ad.testing.scenarios import get_scenario

    backend, engine, chain_method, metric = parse_sampler(sampler)
    library = {"jax": "jax", "jax-forward": "jax", "torch": "torch", "torch-forward": "torch"}.get(backend)
    if library:  # imported before the clock starts, as the peers' libraries are
        __import__(library)
    if library == "jax":  # idem: the library the compiled engine's NUTS is built on (0.3-0.45 s to import)
        __import__("blackjax")
    from ppl_ad.infer.results import import_arviz

    import_arviz()  # idem: PyMC and nutpie import ArviZ with themselves, outside their timers
    start = time.perf_counter()
    model = get_scenario(model_name).model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pa.SamplingWarning)  # divergences are a column here
        idata = pa.sample(model, backend=backend, engine=engine, chain_method=chain_method, draws=draws,
                          tune=tune, chains=chains, cores=cores, seed=seed, progressbar=False,
                          **({"metric": metric} if metric else {}), **(options or {}))
    row["wall_s"] = time.perf_counter() - start
    attrs, stats = idata.attrs, idata.sample_stats
    row["engine"], row["chain_method"] = attrs.get("engine"), attrs.get("chain_method")
    row["compile_s"] = attrs.get("compile_time")
    row["tuning_s"], row["sampling_s"] = attrs["tuning_time"], attrs["sampling_time"]
    row["cores"] = attrs["processes"]
    row["gradient_evaluations"] = int(attrs["gradient_evaluations"])
    _sampling_stats(row, stats)
    gradient_time = attrs.get("gradient_time")
    if gradient_time is not None and math.isfinite(gradient_time) and gradient_time > 0:
        evaluations = row["gradient_evaluations"]
        row["gradient_us"] = gradient_time / evaluations * 1e6
        own = attrs["tuning_time"] + attrs["sampling_time"] - gradient_time
        row["sampler_us_per_step"] = own / evaluations * 1e6
    return idata.posterior


def _pymc(row, model_name, draws, tune, chains, cores, seed):
    import pymc as pm

    from ppl_ad.bench.peers import pymc_model

    start = time.perf_counter()
    with pymc_model(model_name):
        idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=cores, random_seed=seed,
                          progressbar=False, compute_convergence_checks=False,
                          discard_tuned_samples=False)
    row["wall_s"] = time.perf_counter() - start
    stats, warm = idata.sample_stats, idata.warmup_sample_stats
    row["cores"] = cores
    _sampling_stats(row, stats)
    row["gradient_evaluations"] = int(stats["n_steps"].sum() + warm["n_steps"].sum())
    if "sampling_time" in idata.posterior.attrs:  # PyMC's: warmup and sampling together
        row["note"] = f"PyMC's own sampling_time (warmup + draws): {float(idata.posterior.attrs['sampling_time']):.1f} s"
    return idata.posterior


def _numpyro(row, model_name, draws, tune, chains, seed):
    import jax
    from numpyro.infer import MCMC, NUTS

    from ppl_ad.bench.peers import numpyro_model

    start = time.perf_counter()
    mcmc = MCMC(NUTS(numpyro_model(model_name)), num_warmup=tune, num_samples=draws, num_chains=chains,
                chain_method="vectorized", progress_bar=False)
    fields = ("num_steps", "diverging")
    mcmc.warmup(jax.random.PRNGKey(seed), collect_warmup=True, extra_fields=fields)
    warm_steps = int(np.sum(np.asarray(mcmc.get_extra_fields()["num_steps"])))
    tuned = time.perf_counter()
    mcmc.run(mcmc.post_warmup_state.rng_key, extra_fields=fields)
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    extra = mcmc.get_extra_fields(group_by_chain=True)
    end = time.perf_counter()
    row["wall_s"], row["tuning_s"], row["sampling_s"] = end - start, tuned - start, end - tuned
    row["cores"] = 1
    row["chain_method"] = "vectorized"
    steps = np.asarray(extra["num_steps"], dtype=float)
    row["sampling_steps"] = int(steps.sum())
    row["steps_per_draw"] = float(steps.mean())
    row["gradient_evaluations"] = int(steps.sum()) + warm_steps
    row["divergences"] = int(np.sum(np.asarray(extra["diverging"])))
    row["note"] = "sampling phase includes compiling the sampling program"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az

        return az.convert_to_dataset(samples)


#: BlackJAX's compiled programs per (model, tune, draws), reused by later cells in this process
_BLACKJAX_PROGRAMS: dict = {}


def _blackjax(row, model_name, draws, tune, chains, seed):
    """BlackJAX NUTS + ``window_adaptation``, jitted (compiled ahead of time, then timed), chains
    one after another with the two programs compiled once (and reused by a later cell in the same
    process, as ppl_ad's engine reuses its program: see ``benchmarks/bench_step_time.py``)."""
    import jax
    import jax.numpy as jnp

    import blackjax

    from ppl_ad.bench.peers import jax_logdensity

    start = time.perf_counter()
    key_programs = (model_name, tune, draws)
    programs = _BLACKJAX_PROGRAMS.setdefault(key_programs, {})
    if "posterior" not in programs:
        try:
            logdensity, layout = jax_logdensity(model_name)
            programs["dim"] = layout[-1][1].stop
            programs["posterior"] = functools.partial(_dataset, layout=layout)
        except ValueError:  # no hand-written density (posteriordb models): ppl_ad's own
            logdensity, programs["dim"], programs["posterior"] = _ppl_ad_density(model_name)
            programs["note"] = "on ppl_ad's JAX density"
        programs["logdensity"] = logdensity
    row["note"] = programs.get("note", "")
    logdensity, dim = programs["logdensity"], programs["dim"]

    def warmup(key, position):
        adaptation = blackjax.window_adaptation(blackjax.nuts, logdensity)
        (state, params), info = adaptation.run(key, position, num_steps=tune)
        return (state, params["step_size"], params["inverse_mass_matrix"],
                jnp.sum(info.info.num_integration_steps), jnp.sum(info.info.is_divergent))

    def sample(key, state, step_size, inverse_mass_matrix):
        kernel = blackjax.nuts(logdensity, step_size=step_size, inverse_mass_matrix=inverse_mass_matrix)

        def one(s, k):
            s, info = kernel.step(k, s)
            return s, (s.position, info.num_integration_steps, info.is_divergent)

        _, out = jax.lax.scan(one, state, jax.random.split(key, draws))
        return out

    keys = jax.random.split(jax.random.PRNGKey(seed), chains)
    compile_s = warm_s = sample_s = 0.0
    positions, steps, divergences, warm_steps = [], [], 0, 0
    for c in range(chains):
        k_init, k_warm, k_sample = jax.random.split(keys[c], 3)
        position = jax.random.uniform(k_init, (dim,), jnp.float64, -2.0, 2.0)  # Stan's init
        if "warmup" not in programs:
            t = time.perf_counter()
            programs["warmup"] = jax.jit(warmup).lower(k_warm, position).compile()
            compile_s += time.perf_counter() - t
        t = time.perf_counter()
        state, step_size, imm, n_warm, _ = jax.block_until_ready(programs["warmup"](k_warm, position))
        warm_s += time.perf_counter() - t
        warm_steps += int(n_warm)
        if "sample" not in programs:
            t = time.perf_counter()
            programs["sample"] = jax.jit(sample).lower(k_sample, state, step_size, imm).compile()
            compile_s += time.perf_counter() - t
        t = time.perf_counter()
        pos, n, div = jax.block_until_ready(programs["sample"](k_sample, state, step_size, imm))
        sample_s += time.perf_counter() - t
        positions.append(np.asarray(pos))
        steps.append(np.asarray(n))
        divergences += int(np.sum(np.asarray(div)))
    row["wall_s"] = time.perf_counter() - start
    row["compile_s"], row["tuning_s"], row["sampling_s"] = compile_s, warm_s, sample_s
    row["cores"], row["chain_method"] = 1, "sequential"
    steps = np.asarray(steps, dtype=float)
    row["sampling_steps"] = int(steps.sum())
    row["steps_per_draw"] = float(steps.mean())
    row["gradient_evaluations"] = int(steps.sum()) + warm_steps
    row["divergences"] = divergences
    return programs["posterior"](np.stack(positions))


def _ppl_ad_density(model_name):
    """``(logdensity, dim, posterior)`` for a peer that samples ppl_ad's own JAX log density of a
    model without a hand-written one: ``logdensity(theta)``, the unconstrained dimension, and
    ``posterior(positions)``, the dataset of the constrained sampled sites of draws of shape
    (chains, draws, dim) (the rows' ESS are then of the same quantities as ppl_ad's)."""
    import jax

    import ppl_ad as pa
    from ppl_ad.testing.scenarios import get_scenario

    ld = pa.logdensity(get_scenario(model_name).model(), backend="jax")
    fn, data = ld.traceable()
    data = jax.device_put(data)

    def logdensity(theta):
        return fn(theta, data)

    def posterior(positions):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            import arviz as az

            chains, draws = positions.shape[:2]
            values = [ld.constrain(theta) for theta in positions.reshape(chains * draws, -1)]
            return az.convert_to_dataset({
                name: np.stack([np.asarray(v[name]) for v in values]).reshape((chains, draws) + tuple(shape))
                for name, shape in ld.site_shapes.items()})

    return logdensity, int(ld.dimension), posterior


def _nutpie(row, model_name, draws, tune, chains, seed):
    import nutpie

    from ppl_ad.bench.peers import pymc_model

    start = time.perf_counter()
    compiled = nutpie.compile_pymc_model(pymc_model(model_name))
    row["compile_s"] = time.perf_counter() - start
    trace = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, cores=1, seed=seed,
                          progress_bar=False, save_warmup=True)
    row["wall_s"] = time.perf_counter() - start
    stats, warm = trace.sample_stats, trace.warmup_sample_stats
    row["cores"] = 1
    row["sampling_steps"] = int(stats["n_steps"].sum())
    row["steps_per_draw"] = float(stats["n_steps"].mean())
    row["gradient_evaluations"] = int(stats["n_steps"].sum() + warm["n_steps"].sum())
    row["divergences"] = int(stats["diverging"].sum())
    return trace.posterior


def sampling_cell(model: str, sampler: str, *, draws: int = 1000, tune: int = 1000, chains: int = 4,
                  cores: int | None = 1, seed: int = 1, options: dict | None = None) -> dict:
    """Run NUTS on the standard model ``model`` with ``sampler`` and measure its efficiency.

    Parameters
    ----------
    model : str
        A scenario name (:func:`ppl_ad.testing.scenarios.get_scenario`). PyMC, NumPyro and nutpie
        know the four standard models only; BlackJAX runs a hand-written density for those and
        ppl_ad's own JAX density for any other model.
    sampler : str
        A ppl_ad backend name, optionally with ``:ENGINE`` or ``:CHAIN_METHOD``
        (:func:`parse_sampler`; or ``:METRIC``), or a peer: ``"pymc"``, ``"numpyro"``, ``"blackjax"``,
        ``"nutpie"``.
    draws, tune, chains : int
    cores : int, optional
        Processes for the chains (ppl_ad, PyMC); default 1 (the benchmark's equal cores);
        None: ``min(chains, os.cpu_count())``. NumPyro, BlackJAX and nutpie run on one core.
    seed : int
    options : dict, optional
        More keyword arguments of ``pa.sample`` (ppl_ad samplers only), e.g.
        ``{"target_accept": 0.85}``.

    Returns
    -------
    dict
        The row (see the module docstring for the columns); a failure gives ``status`` "error"
        and the exception in ``note`` instead of raising.
    """
    row = _row(model, sampler)
    row.update(draws=draws, tune=tune, chains=chains)
    cores = max(1, min(chains, cores or os.cpu_count() or 1))
    try:
        if options and _is_peer(sampler):
            raise ValueError(f"options {sorted(options)} are pa.sample's: the peer {sampler!r} takes none")
        names, row["dimension"] = _sampled_sites(model)
        if sampler == "pymc":
            posterior = _pymc(row, model, draws, tune, chains, cores, seed)
        elif sampler == "numpyro":
            posterior = _numpyro(row, model, draws, tune, chains, seed)
        elif sampler == "blackjax":
            posterior = _blackjax(row, model, draws, tune, chains, seed)
        elif sampler == "nutpie":
            posterior = _nutpie(row, model, draws, tune, chains, seed)
        else:
            posterior = _ppl_ad(row, model, sampler, draws, tune, chains, cores, seed, options)
        row["min_ess_bulk"], row["max_rhat"] = _ess_rhat(posterior, names)
        row["min_ess_per_s"] = row["min_ess_bulk"] / row["wall_s"]
        row["evals_per_draw"] = row["gradient_evaluations"] / (chains * draws)
        row["ess_per_1k_grad"] = 1000.0 * row["min_ess_bulk"] / row["gradient_evaluations"]
        if row["sampling_s"] and row["sampling_steps"] and sampler not in ("pymc", "numpyro", "nutpie"):
            row["us_per_step"] = row["sampling_s"] / row["sampling_steps"] * 1e6
    except Exception as exc:  # a failing cell is a row, never a crash of the matrix
        row["status"] = "error"
        row["note"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    return row


def cell_environment(cache_dir: str | None, threads: int = 1) -> dict[str, str]:
    """Environment of a sampling cell: ``threads`` per library, and the caches under ``cache_dir``.

    ``PPL_AD_CACHE_DIR`` (ppl_ad's XLA cache is its ``xla`` folder) and PyTensor's
    ``base_compiledir`` (PyMC's C modules, nutpie's numba modules) point into ``cache_dir``.
    """
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads), "NUMBA_NUM_THREADS": str(threads),
           "RAYON_NUM_THREADS": str(threads)}
    if threads == 1:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    if cache_dir is not None:
        env["PPL_AD_CACHE_DIR"] = cache_dir
        flags = [f for f in os.environ.get("PYTENSOR_FLAGS", "").split(",") if f and "compiledir" not in f]
        env["PYTENSOR_FLAGS"] = ",".join(flags + [f"base_compiledir={os.path.join(cache_dir, 'pytensor')}"])
    return env


def run_sampling_cell(model: str, sampler: str, *, draws: int, tune: int, chains: int,
                      timeout: float = 1800.0, seed: int = 1, cores: int = 1, cache_dir: str | None = None,
                      phase: str = "cold", repeat: int = 0) -> dict:
    """Run one NUTS cell (:func:`sampling_cell`) in a fresh subprocess (:func:`cell_environment`)."""
    from ppl_ad.bench.cells import run_subprocess

    cmd = [sys.executable, "-m", "ppl_ad.bench._cell", "--task", "sampling", "--model", model,
           "--backend", sampler, "--draws", str(draws), "--tune", str(tune), "--chains", str(chains),
           "--seed", str(seed), "--cores", str(cores)]
    base = {**_row(model, sampler), "draws": draws, "tune": tune, "chains": chains}
    row = run_subprocess(cmd, base, "status", timeout, env=cell_environment(cache_dir, threads=1))[-1]
    row.update(phase=phase, repeat=repeat)
    return row


def run_pair(model: str, sampler: str, *, warm: bool = True, repeat: int = 0, **kw) -> list[dict]:
    """A cold cell (empty caches) and, with ``warm``, a warm one (the caches it filled)."""
    cache_dir = tempfile.mkdtemp(prefix="ppl-ad-bench-cache-")
    try:
        rows = [run_sampling_cell(model, sampler, cache_dir=cache_dir, phase="cold", repeat=repeat, **kw)]
        if warm:
            rows.append(run_sampling_cell(model, sampler, cache_dir=cache_dir, phase="warm", repeat=repeat, **kw))
        return rows
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)


def _load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main(args) -> int:
    """``ppl-ad bench --sampling``: NUTS per sampler (and peers) on the standard models.

    ``args`` has ``models``, ``backends`` (samplers, :func:`parse_sampler`), ``peers``,
    ``draws``, ``tune``, ``chains``, ``timeout``, ``out``, ``no_progress`` and ``repeats``
    (cold/warm pairs per cell, default 1); ``args.warm = False`` skips the warm runs.
    """
    import json
    from pathlib import Path

    from tqdm import tqdm

    from ppl_ad.backends import registry
    from ppl_ad.bench import cells
    from ppl_ad.bench.peers import PEERS, available_peers
    from ppl_ad.errors import ModelError
    from ppl_ad.testing.scenarios import STANDARD, scenarios

    if getattr(args, "model", None):
        raise ModelError("--model benchmarks gradients only; ppl-ad bench --sampling runs the scenario models (--models)")
    models = cells.check_names(cells.split_names(args.models), [s.name for s in scenarios()], "model") or list(STANDARD)
    given = cells.split_names(args.backends)
    for sampler in given:
        try:
            name = parse_sampler(sampler)[0]
        except ValueError as error:  # an unknown ':option': a usage error, with the closest option
            import difflib

            from ppl_ad.errors import ConfigError
            from ppl_ad.infer.engine import CHAIN_METHODS, ENGINES

            option = sampler.partition(":")[2]
            close = difflib.get_close_matches(option, [*ENGINES, *CHAIN_METHODS, *METRICS], n=1)
            raise ConfigError(f"{error}{f' (did you mean {close[0]!r}?)' if close else ''}") from None
        cells.check_names([name], [*registry.names(), *PEERS], "backend")
    samplers = given or list(DEFAULT_SAMPLERS)
    if args.peers:
        present = available_peers()
        missing = [p for p in PEERS if p not in present]
        if missing:
            print(f"peers not installed (skipped): {', '.join(missing)}; pip install 'ppl_ad[bench]'")
        samplers += [p for p in PEERS if p in present and p not in samplers]
    repeats = max(1, int(getattr(args, "repeats", None) or 1))
    warm = bool(getattr(args, "warm", True))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"draws": args.draws, "tune": args.tune, "chains": args.chains, "timeout": args.timeout,
                "cores": 1, "repeats": repeats, "warm": warm}
    machine = cells.machine_info(cells.command_line("ppl-ad bench --sampling"))
    for lib in ("blackjax", "nutpie"):
        machine.setdefault("versions", {})[lib] = _version(lib)
    result = {"machine": machine, "settings": settings, "cells": [], "load_average": [_load_average()]}
    jobs = [(m, s, r) for r in range(repeats) for m in models for s in samplers]
    bar = tqdm(jobs, disable=args.no_progress, unit="cell", desc="ppl-ad bench --sampling")
    for model, sampler, repeat in bar:
        bar.set_postfix_str(f"{model} × {sampler}")
        result["cells"] += run_pair(model, sampler, warm=warm, repeat=repeat, draws=args.draws, tune=args.tune,
                                    chains=args.chains, timeout=args.timeout)
        result["load_average"].append(_load_average())
        # written after every cell: a long run that is stopped keeps what it measured
        (out / "sampling.json").write_text(json.dumps(result, indent=1))
        (out / "sampling.md").write_text(to_markdown(result))
    plot(result, out / "sampling.png")
    print(to_markdown(result))
    print(f"wrote {out / 'sampling.json'}, {out / 'sampling.md'}, {out / 'sampling.png'}")
    return 0


def _version(lib: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(lib)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _fmt(value, digits=1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value).replace("|", "/").replace("\n", " ")


_METRICS = ("min_ess_per_s", "min_ess_bulk", "wall_s", "compile_s", "ess_per_1k_grad", "steps_per_draw",
            "evals_per_draw", "us_per_step", "gradient_us", "sampler_us_per_step", "divergences", "max_rhat")


def _is_peer(sampler: str) -> bool:
    return sampler in _PEER_LABELS


def summarize(cells) -> dict:
    """Medians over repeats: ``{(model, sampler, phase): {metric: median or None, "n": runs}}``.

    A cell that failed in every repeat keeps its note (and ``status``) instead of numbers.
    """
    groups: dict = {}
    for c in cells:
        groups.setdefault((c["model"], c["sampler"], c.get("phase", "cold")), []).append(c)
    summary = {}
    for key, rows in groups.items():
        ok = [r for r in rows if r.get("status") == "ok" and r.get("min_ess_per_s")]
        entry = {"n": len(ok), "dimension": next((r["dimension"] for r in rows if r.get("dimension")), None)}
        for metric in _METRICS:
            values = [r[metric] for r in ok if r.get(metric) is not None]
            entry[metric] = statistics.median(values) if values else None
        failed = [r for r in rows if r not in ok]
        entry["status"] = "ok" if ok else (failed[-1].get("status") or "error")
        entry["note"] = "; ".join(dict.fromkeys(r.get("note", "") for r in failed if r.get("note")))
        summary[key] = entry
    return summary


def _samplers(cells) -> list[str]:
    order = list(dict.fromkeys(c["sampler"] for c in cells))
    return [s for s in order if not _is_peer(s)] + [s for s in order if _is_peer(s)]


def _grid(summary, models, samplers, phase, metric, digits) -> list[str]:
    lines = ["| sampler | " + " | ".join(models) + " |", "|---|" + "---:|" * len(models)]
    for sampler in samplers:
        vals = []
        for model in models:
            entry = summary.get((model, sampler, phase))
            v = entry.get(metric) if entry else None
            vals.append(_fmt(float(v), digits) if v is not None else ("-" if entry is None or entry["status"] == "ok"
                                                                    else entry["status"]))
        lines.append(f"| {label(sampler)} | " + " | ".join(vals) + " |")
    return lines


def _ratio_lines(summary, models, samplers, phase) -> list[str]:
    default = next((s for s in samplers if not _is_peer(s) and ":" not in s), None)
    peers = [s for s in samplers if _is_peer(s)]
    if default is None or not peers:
        return []
    lines = [f"| ratio ({phase}) | " + " | ".join(models) + " |", "|---|" + "---:|" * len(models)]
    best_row, pymc_row = [], []
    for model in models:
        mine = (summary.get((model, default, phase)) or {}).get("min_ess_per_s")
        peer_values = {p: (summary.get((model, p, phase)) or {}).get("min_ess_per_s") for p in peers}
        peer_values = {p: v for p, v in peer_values.items() if v}
        best = max(peer_values, key=peer_values.get) if peer_values else None
        best_row.append(f"{mine / peer_values[best]:.2f} ({_PEER_LABELS[best]})" if mine and best else "-")
        pymc = peer_values.get("pymc")
        pymc_row.append(f"{mine / pymc:.2f}" if mine and pymc else "-")
    lines.append(f"| {label(default)} ÷ best peer | " + " | ".join(best_row) + " |")
    lines.append(f"| {label(default)} ÷ PyMC | " + " | ".join(pymc_row) + " |")
    return lines


def _step_lines(summary, models, samplers) -> list[str]:
    mine = [s for s in samplers if not _is_peer(s) and parse_sampler(s)[1] != "python"]
    if "blackjax" not in samplers or not mine:
        return []
    lines = ["| µs per leapfrog step (sampling phase, cold run) | " + " | ".join(models) + " |",
             "|---|" + "---:|" * len(models)]
    for sampler in [*mine, "blackjax"]:
        vals = [(summary.get((m, sampler, "cold")) or {}).get("us_per_step") for m in models]
        lines.append(f"| {label(sampler)} | " + " | ".join(_fmt(v, 1) if v else "-" for v in vals) + " |")
    for sampler in mine:
        vals = []
        for m in models:
            a = (summary.get((m, sampler, "cold")) or {}).get("us_per_step")
            b = (summary.get((m, "blackjax", "cold")) or {}).get("us_per_step")
            vals.append(f"{a / b:.2f}" if a and b else "-")
        lines.append(f"| {label(sampler)} ÷ BlackJAX | " + " | ".join(vals) + " |")
    return lines


_COLUMNS = (
    ("sampler", "sampler", 0), ("phase", "run", 0), ("min_ess_per_s", "min ESS-bulk / s", 1),
    ("ratio", "÷ best", 2), ("min_ess_bulk", "min ESS-bulk", 0), ("wall_s", "total wall s", 1),
    ("compile_s", "compile s", 1), ("ess_per_1k_grad", "ESS / 1000 grads", 1),
    ("steps_per_draw", "steps / draw", 1), ("evals_per_draw", "grad evals / draw (incl. warmup)", 1),
    ("us_per_step", "µs / step (sampling)", 1), ("gradient_us", "µs / gradient (python engine)", 1),
    ("sampler_us_per_step", "sampler µs / step (python engine)", 1),
    ("divergences", "divergences", 0), ("max_rhat", "max R-hat", 3), ("note", "note", 0),
)


def to_markdown(result: dict) -> str:
    """The ``sampling.md`` report: summary grids, ratios, time per step, then one table per model."""
    info = result["machine"]
    settings = result["settings"]
    cells = result["cells"]
    summary = summarize(cells)
    models = list(dict.fromkeys(c["model"] for c in cells))
    samplers = _samplers(cells)
    phases = [p for p in ("cold", "warm") if any(c.get("phase", "cold") == p for c in cells)]
    repeats = settings.get("repeats", 1)
    loads = result.get("load_average") or []
    lines = [
        "# Sampling efficiency: ppl_ad's NUTS beside PyMC, NumPyro, BlackJAX and nutpie",
        "",
        f"- command: `{info['command']}`",
        f"- date: {info['date']}",
        f"- CPU: {info['cpu']} ({info['cores']} cores; shared with other work while measured)",
        f"- Python {info['python']}; " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        f"- protocol: {settings['chains']} chains x ({settings['tune']} warmup + {settings['draws']} draws), "
        "NUTS with default settings (target acceptance 0.8, diagonal metric); every sampler on "
        f"{settings.get('cores', 1)} core with one thread per library (ppl_ad and PyMC `cores=1`: chains one "
        "after another; NumPyro vectorized; BlackJAX sequential, programs compiled once; nutpie `cores=1`); "
        f"one fresh process per cell, time limit {settings['timeout']:g} s per cell; "
        + (f"medians over {repeats} repeats" if repeats > 1 else "one run per cell (no repeats)"),
        "- runs: `cold` = empty compilation caches (new `$PPL_AD_CACHE_DIR` and PyTensor compiledir); "
        "`warm` = a second fresh process with the caches the cold run filled (BlackJAX and NumPyro "
        "keep no compilation cache by default: their warm run is another cold one)",
        "- BlackJAX runs on a hand-written JAX density (`ppl_ad.bench.peers.jax_logdensity`), "
        "nutpie on the PyMC twin (`nutpie.compile_pymc_model`, numba)",
    ]
    if loads:
        lines.append(f"- load average (1, 5, 15 min) at the start and after each cell: first {loads[0]}, "
                     f"last {loads[-1]}, highest 1-min {max(float(x.split()[0]) for x in loads if x != '?'):.2f}")
    lines += [
        "",
        "`min ESS-bulk / s` divides the smallest bulk ESS over every sampled quantity by the total wall "
        "time of the call (model build, compilation, warmup, sampling). `ESS / 1000 grads` divides it by "
        "every gradient evaluation of the run, warmup included. `steps / draw` is the mean number of "
        "leapfrog steps per kept draw. `µs / step` is sampling-phase time over sampling-phase leapfrog "
        "steps (ppl_ad and BlackJAX). A shared machine: compare ratios within a table.",
        "",
    ]
    for phase in phases:
        lines += [f"## min ESS-bulk per second of total wall time ({phase})", ""]
        lines += _grid(summary, models, samplers, phase, "min_ess_per_s", 1) + [""]
        ratio = _ratio_lines(summary, models, samplers, phase)
        if ratio:
            lines += ratio + [""]
    lines += ["## min ESS-bulk per 1000 gradient evaluations, warmup included (cold run)", ""]
    lines += _grid(summary, models, samplers, "cold", "ess_per_1k_grad", 1) + [""]
    lines += ["## leapfrog steps per draw (cold run)", ""]
    lines += _grid(summary, models, samplers, "cold", "steps_per_draw", 1) + [""]
    steps = _step_lines(summary, models, samplers)
    if steps:
        lines += ["## time per leapfrog step: ppl_ad's compiled engine against BlackJAX", ""] + steps + [""]
    lines += ["## per model", ""]
    for model in models:
        keys = [k for k in summary if k[0] == model]
        dim = next((summary[k]["dimension"] for k in keys if summary[k]["dimension"]), "?")
        lines += [f"### {model} (d = {dim})", "", "| " + " | ".join(h for _, h, _ in _COLUMNS) + " |",
                  "|---|---|" + "---:|" * (len(_COLUMNS) - 3) + "---|"]
        for phase in phases:
            rows = [(k, summary[k]) for k in keys if k[2] == phase]
            best = max((e["min_ess_per_s"] for _, e in rows if e.get("min_ess_per_s")), default=None)
            rows.sort(key=lambda ke: -(ke[1].get("min_ess_per_s") or -1.0))
            for (_, sampler, _), e in rows:
                vals = []
                for key, _, digits in _COLUMNS:
                    if key == "ratio":
                        v = e["min_ess_per_s"] / best if best and e.get("min_ess_per_s") else None
                    elif key == "note":
                        v = e.get("note") or ("" if e.get("status") == "ok" else e.get("status"))
                    elif key == "sampler":
                        v = label(sampler)
                    elif key == "phase":
                        v = phase
                    else:
                        v = e.get(key)
                    vals.append(_fmt(float(v) if isinstance(v, (int, float)) and digits else v, digits))
                lines.append("| " + " | ".join(vals) + " |")
        lines.append("")
    lines += ["![min ESS-bulk per second of total wall time](sampling.png)", ""]
    return "\n".join(lines)


def plot(result: dict, path) -> None:
    """Grouped bar chart (log scale) of min ESS-bulk per second, one group per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarize(result["cells"])
    models = list(dict.fromkeys(c["model"] for c in result["cells"]))
    samplers = _samplers(result["cells"])
    width = 0.8 / max(len(samplers), 1)
    fig, ax = plt.subplots(figsize=(8, 4.6))
    for k, sampler in enumerate(samplers):
        xs, ys = [], []
        for i, model in enumerate(models):
            value = (summary.get((model, sampler, "cold")) or {}).get("min_ess_per_s")
            if value:
                xs.append(i + (k - (len(samplers) - 1) / 2) * width)
                ys.append(value)
        ax.bar(xs, ys, width=width, label=label(sampler).replace("`", ""))
    ax.set_xticks(range(len(models)), models)
    ax.set_yscale("log")
    ax.set_ylabel("min ESS-bulk per second of wall time (cold)")
    ax.set_title("NUTS efficiency (higher is better; missing bar = error or time limit)")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(len(samplers), 4), loc="upper center", bbox_to_anchor=(0.5, -0.08),
              frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
