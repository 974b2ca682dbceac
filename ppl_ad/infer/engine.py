"""Which engine runs the chains, and how: the seam between ``sample`` and the engines.

Two engines run the same algorithm (NUTS with Stan's windowed warmup) side by side:

``"python"`` (:mod:`ppl_ad.infer.chain`)
    A NumPy loop that calls the backend's ``logdensity_and_gradient`` once per leapfrog step.
    Works with every backend.
``"jax"`` (:mod:`ppl_ad.infer.jax_engine`)
    The whole trajectory and warmup inside one XLA program (BlackJAX's NUTS kernel), for
    backends that can hand over a traceable log density (the ``traceable`` trait of a backend:
    ``jax`` and ``jax-forward``).

``engine=None`` picks ``"jax"`` when the backend is traceable and ``"python"`` otherwise. Both
engines share the warmup schedule (:func:`ppl_ad.infer.adaptation.build_schedule`), the
per-chain seeding (``SeedSequence(seed).spawn(chains)``), the initial points
(:mod:`ppl_ad.infer.init`) and the results code (:mod:`ppl_ad.infer.results`).

Chain methods: ``"sequential"`` (one chain after another in this process), ``"parallel"``
(one worker process per chain, :mod:`ppl_ad.infer.parallel`) and, for the JAX engine,
``"vectorized"`` (all chains in one program with ``jax.vmap``). The sampler modules never
import a backend.
"""

from __future__ import annotations

import os

import numpy as np

from ppl_ad.errors import ConfigError
from ppl_ad.infer.chain import ChainResult, run_chain
from ppl_ad.infer.init import initial_position, initial_spec
from ppl_ad.infer.progress import ChainProgress

__all__ = ["ENGINES", "CHAIN_METHODS", "select_engine", "select_chain_method", "run_one_chain", "run_sequential"]

ENGINES = ("python", "jax")
CHAIN_METHODS = ("sequential", "parallel", "vectorized")


def _is_traceable(ld) -> bool:
    backend = getattr(ld, "backend", None)
    return bool(getattr(backend, "traceable", False)) and hasattr(ld, "traceable")


def select_engine(ld, engine=None, sampler: str = "nuts") -> str:
    """The engine that will run the chains of ``ld``.

    Parameters
    ----------
    ld : LogDensity
    engine : {None, "python", "jax"}
        None: ``"jax"`` when the backend is traceable and the sampler is NUTS, else ``"python"``.
    sampler : str

    Returns
    -------
    str

    Raises
    ------
    ppl_ad.errors.ConfigError
        An unknown engine, or ``"jax"`` with a backend that cannot be traced (the message
        names the backend and the engines it supports).
    """
    if engine is None:
        return "jax" if _is_traceable(ld) and sampler == "nuts" else "python"
    if engine not in ENGINES:
        raise ConfigError(f"sample: unknown engine={engine!r}; expected one of {list(ENGINES)} or None")
    if engine == "jax":
        backend = getattr(getattr(ld, "backend", None), "name", type(ld).__name__)
        if not _is_traceable(ld):
            raise ConfigError(
                f"engine='jax' needs a backend whose log density JAX can trace (jax, jax-forward); "
                f"backend '{backend}' supports only engine='python'"
            )
        if sampler != "nuts":
            raise ConfigError(f"engine='jax' runs NUTS only; sampler={sampler!r} needs engine='python'")
    return engine


def select_chain_method(engine: str, chain_method, chains: int, cores: int | None) -> tuple[str, int]:
    """The chain method and the number of worker processes.

    Parameters
    ----------
    engine : str
    chain_method : {None, "sequential", "parallel", "vectorized"}
        None: with the Python engine, ``"parallel"`` when more than one core and chain; with the
        JAX engine, ``"sequential"`` unless ``cores`` asks for more than one process (a compiled
        chain is fast, and worker processes would each import JAX and load the program: on 2 cores
        eight schools took 0.7 s sequential against 4.3 s in two workers).
    chains : int
    cores : int or None
        Worker processes; default ``min(chains, os.cpu_count())`` (Python engine).

    Returns
    -------
    (str, int)
    """
    if chain_method is None and engine == "jax" and cores is None:
        chain_method = "sequential"
    cores = max(1, min(int(cores or os.cpu_count() or 1), chains))
    if chain_method is None:
        chain_method = "parallel" if cores > 1 else "sequential"
    if chain_method not in CHAIN_METHODS:
        raise ConfigError(f"sample: unknown chain_method={chain_method!r}; expected one of {list(CHAIN_METHODS)}")
    if chain_method == "vectorized" and engine != "jax":
        raise ConfigError("chain_method='vectorized' needs engine='jax' (a traceable backend: jax, jax-forward)")
    if chain_method != "parallel":
        cores = 1
    return chain_method, cores


def _resumes(checkpoint) -> bool:
    return checkpoint is not None and checkpoint.load() is not None


def _start(ld, rng, init, chain, checkpoint):
    """The initial point, or a placeholder for a chain that resumes from its checkpoint."""
    if _resumes(checkpoint):
        return np.zeros(int(ld.dimension))
    return initial_position(ld, rng, init, chain)


def _jax_start(ld, seed_seq, init, chain, checkpoint):
    """What the compiled engine needs to search the initial point (None: the chain resumes)."""
    return None if _resumes(checkpoint) else initial_spec(ld, np.random.default_rng(seed_seq), init, chain)


def run_one_chain(ld, chain: int, seed_seq, settings, init, progress, checkpoint=None) -> ChainResult:
    """Run chain number ``chain`` of ``ld`` with the engine named in ``settings.engine``.

    With a ``checkpoint`` (:class:`ppl_ad.infer.checkpoint.ChainCheckpoint`) the chain resumes
    from its saved state and saves as it goes.
    """
    if settings.engine == "jax":
        from ppl_ad.infer import jax_engine

        return jax_engine.run_chains(ld, [seed_seq], [_jax_start(ld, seed_seq, init, chain, checkpoint)], settings,
                                     [progress] if progress else None, False,
                                     [checkpoint] if checkpoint is not None else None, init=init)[0]
    rng = np.random.default_rng(seed_seq)
    theta0 = _start(ld, rng, init, chain, checkpoint)
    return run_chain(ld.logdensity_and_gradient, theta0, rng, settings, progress, checkpoint)


def run_sequential(ld, seeds, settings, init, bars, vectorized: bool = False, checkpoints=None,
                   when_compiling=None) -> list[ChainResult]:
    """Run the chains in this process, one after another (or all at once, ``vectorized``).

    ``when_compiling`` goes to :func:`ppl_ad.infer.jax_engine.run_chains` (JAX engine only)."""
    progress = [ChainProgress(c, bars.update, settings.tune, settings.draws) for c in range(len(seeds))] if bars else None
    checkpoints = checkpoints or [None] * len(seeds)
    if settings.engine == "jax":
        from ppl_ad.infer import jax_engine

        starts = [_jax_start(ld, s, init, c, checkpoints[c]) for c, s in enumerate(seeds)]
        return jax_engine.run_chains(ld, seeds, starts, settings, progress, vectorized=vectorized,
                                     checkpoints=checkpoints if checkpoints[0] is not None else None, init=init,
                                     when_compiling=when_compiling)
    return [
        run_one_chain(ld, chain, seed_seq, settings, init, progress[chain] if progress else None, checkpoints[chain])
        for chain, seed_seq in enumerate(seeds)
    ]
