"""Simulation-based calibration: uniform ranks for a correct sampler, tiny p-values for a wrong
one, the same ranks wherever the simulations run, and a run that survives a killed Dask worker."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

import ppl_ad as pa
from ppl_ad.backends.base import Backend, Prepared
from ppl_ad.errors import ConfigError
from ppl_ad.sbc import SBCResult, chi_square_pvalue
from ppl_ad.testing.scenarios import EIGHT_SCHOOLS_SIGMA, EIGHT_SCHOOLS_Y, eight_schools, normal_normal

distributed = pytest.importorskip("distributed")

#: the backend of the test fits: the fastest on these tiny models (measured in docs/scaling.md)
FAST = {"backend": "jax", "sample_kwargs": {"engine": "python"}}
#: small fits: a 1-d posterior mixes at once, every second draw is kept (L = 50)
SMALL = {"draws": 100, "tune": 100, "chains": 1, "thin": 2, "progressbar": False, **FAST}
#: eight schools diverges and hits the tree depth with so short a warmup: cap the trees
HIERARCHICAL = {**SMALL, "sample_kwargs": {**FAST["sample_kwargs"], "max_treedepth": 6}}


def conjugate():
    return normal_normal(np.zeros(10), 1.0, 1.0)


def hierarchical():
    return eight_schools(EIGHT_SCHOOLS_Y, EIGHT_SCHOOLS_SIGMA)


# --------------------------------------------------------------------------- #
# A deliberately wrong sampler: a backend whose log density is shifted by 0.75 on the
# unconstrained space (value and gradient consistently, so NUTS targets a wrong posterior).
# Note that scaling only the gradient by 1.1 would not do: the scaled gradient is the gradient of
# 1.1 * log p, so leapfrog stays reversible and volume-preserving, and NUTS's multinomial
# weights, which use the true density, still sample the right posterior.
# --------------------------------------------------------------------------- #

SHIFT = 0.75


@dataclass(frozen=True)
class ShiftedJAX(Backend):
    """The ``jax`` backend evaluated at ``theta - 0.75``."""

    name: ClassVar[str] = "test-shifted-jax"
    mode: ClassVar[str] = "reverse"
    library: ClassVar[str] = "jax"
    distribution: ClassVar[str] = "jax"
    extra: ClassVar[str] = "jax"
    implementation: ClassVar[str] = __name__


def prepare(compiled, backend):
    """The implementation of :class:`ShiftedJAX` (the registry's module contract)."""
    from ppl_ad.backends import registry
    from ppl_ad.backends.base import JAX

    inner = registry.prepare(compiled, JAX())
    return Prepared(lambda theta: inner.value(theta - SHIFT), lambda theta: inner.value_and_gradient(theta - SHIFT))


# --------------------------------------------------------------------------- #
# Fixtures
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def reference():
    """Eight simulations of eight schools run in this process: what every executor must match."""
    return pa.sbc(hierarchical(), simulations=8, seed=7, cores=1, **HIERARCHICAL)


def _same(a: SBCResult, b: SBCResult):
    assert list(a.ranks) == list(b.ranks)
    for name in a.ranks:
        np.testing.assert_array_equal(a.ranks[name], b.ranks[name])
    np.testing.assert_array_equal(a.divergences, b.divergences)
    assert a.warnings == b.warnings
    assert a.rank_draws == b.rank_draws


# --------------------------------------------------------------------------- #
# On the cluster
# --------------------------------------------------------------------------- #


def test_ranks_are_uniform_for_a_conjugate_model_on_a_cluster(client):
    result = pa.sbc(conjugate(), simulations=60, seed=2026, executor=client, **SMALL)
    ranks = result.ranks["mu"]
    assert ranks.shape == (60,) and ranks.dtype.kind == "i"
    assert result.rank_draws == 50 and ranks.min() >= 0 and ranks.max() <= 50
    assert result.pvalues["mu"] > 1e-3
    assert result.ecdf_pvalues["mu"] > 1e-3
    assert result.settings["executor"] == "dask (2 workers)"
    assert len(result.divergences) == 60 and len(result.seconds) == 60


def test_the_cluster_gives_the_ranks_of_the_local_run(client, reference):
    result = pa.sbc(hierarchical(), simulations=8, seed=7, executor=client, **HIERARCHICAL)
    _same(result, reference)
    assert result.ranks["theta_tilde"].shape == (8, 8)
    assert set(result.ranks) == {"mu", "tau", "theta_tilde"}  # parameters only, not theta


def test_a_killed_worker_is_replaced_and_the_result_is_complete_and_identical(client, reference, wait_until_replaced):
    pids = client.run(os.getpid)
    victim = pids[sorted(pids)[0]]
    killed = {}

    def finished(dask_scheduler=None):
        return sum(ts.state == "memory" and str(ts.key).startswith("ppl_ad-sbc-") for ts in dask_scheduler.tasks.values())

    def kill_after_two_fits():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = client.run_on_scheduler(finished)
            if done >= 2:
                os.kill(victim, signal.SIGKILL)
                killed["after"] = done
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_after_two_fits)
    killer.start()
    try:
        result = pa.sbc(hierarchical(), simulations=8, seed=7, executor=client, **HIERARCHICAL)
    finally:
        killer.join()
    assert 2 <= killed["after"] < 8, killed  # the worker died in the middle of the run
    _same(result, reference)
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it
    wait_until_replaced(client, victim)


# --------------------------------------------------------------------------- #
# Other executors
# --------------------------------------------------------------------------- #


@pytest.mark.slow  # two spawned processes importing JAX and ArviZ: about 20 s on two cores
def test_local_worker_processes_give_the_ranks_of_the_in_process_run(reference):
    result = pa.sbc(hierarchical(), simulations=4, seed=7, cores=2, **HIERARCHICAL)
    assert result.settings["executor"] == "2 local processes"
    for name in reference.ranks:  # SeedSequence.spawn(4) is the first 4 of spawn(8)
        np.testing.assert_array_equal(result.ranks[name], reference.ranks[name][:4])


def test_a_wrong_sampler_is_detected_with_any_executor():
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        result = pa.sbc(
            conjugate(), simulations=30, seed=3, executor=executor, backend=ShiftedJAX(),
            draws=100, tune=100, thin=2, progressbar=False, sample_kwargs={"engine": "python"},
        )
    assert result.settings["executor"] == "ThreadPoolExecutor"
    assert result.pvalues["mu"] < 1e-8
    assert result.ecdf_pvalues["mu"] < 1e-3  # the Monte Carlo p-value's floor is 1/2001
    assert np.mean(result.ranks["mu"]) < 10  # the posterior sits above the truth


@pa.model
def funnel(y):
    """Neal's funnel with one observation: NUTS diverges in its neck in nearly every fit."""
    v = pa.sample("v", pa.dist.Normal(0.0, 3.0))
    x = pa.sample("x", pa.dist.Normal(0.0, pa.math.exp(v / 2.0)), shape=(4,))
    pa.observe("y", pa.dist.Normal(x[0], 1.0), y)


def test_divergence_warnings_are_collected_not_raised():
    # pytest turns warnings into errors: had a fit's SamplingWarning escaped, this call had failed
    settings = {**SMALL, "sample_kwargs": {**SMALL["sample_kwargs"], "target_accept": 0.6}}
    result = pa.sbc(funnel(0.0), simulations=6, seed=1, cores=1, **settings)
    assert result.divergences.sum() > 0
    flagged = [i for i, d in enumerate(result.divergences) if d > 0]
    assert set(flagged) <= set(result.warnings)
    assert all("SamplingWarning" in " ".join(result.warnings[i]) for i in flagged)


# --------------------------------------------------------------------------- #
# The result: tests, plots, report
# --------------------------------------------------------------------------- #


def _result(ranks: dict, rank_draws=50) -> SBCResult:
    n = len(next(iter(ranks.values())))
    return SBCResult(ranks, rank_draws, np.zeros(n, dtype=int), {}, np.ones(n), 10.0, settings={"model": "m", "backend": "b"})


def test_uniformity_tests_accept_uniform_and_reject_skewed_ranks():
    rng = np.random.default_rng(0)
    uniform = rng.integers(0, 51, size=(200, 3))
    skewed = np.minimum(rng.integers(0, 51, size=200), rng.integers(0, 51, size=200))
    result = _result({"u": uniform, "s": skewed})
    assert result.pvalues["u"] > 0.01 and result.ecdf_pvalues["u"] > 0.01
    assert result.pvalues["s"] < 1e-6 and result.ecdf_pvalues["s"] < 1e-3
    assert result.element_pvalues()["u"].shape == (3,)
    # 51 rank values in 20 bins: the bins are unequal and the test uses their exact probabilities
    assert chi_square_pvalue(np.arange(51).repeat(4), 50, 20) == pytest.approx(1.0)


def test_plots_and_markdown():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(1)
    result = _result({"mu": rng.integers(0, 51, size=60), "theta": rng.integers(0, 51, size=(60, 4))})
    for kind in ("ecdf", "hist"):
        fig = result.plot(kind=kind)
        assert len([ax for ax in fig.axes if ax.get_visible()]) == 2
        plt.close(fig)
    with pytest.raises(ValueError, match="kind"):
        result.plot(kind="bars")
    text = result.to_markdown()
    assert "| `theta` | 4 |" in text and "chi-square p" in text and "fits/min" in text
    assert "SBCResult(model='m', simulations=60" in repr(result)


def test_arguments_are_checked_and_sbc_stays_the_function():
    import ppl_ad.sbc  # noqa: F401 - binding the module must not hide the function

    assert callable(pa.sbc)
    with pytest.raises(ConfigError, match="simulations must be a positive integer"):
        pa.sbc(conjugate(), simulations=0)
    with pytest.raises(TypeError, match="bound model"):
        pa.sbc(normal_normal, simulations=2)
    with pytest.raises(ConfigError, match="tune must be an integer >= 0"):
        pa.sbc(conjugate(), simulations=2, tune=-5)


def test_a_model_with_a_factor_is_warned_about():
    @pa.model
    def with_factor(y):
        mu = pa.sample("mu", pa.dist.Normal(0.0, 1.0))
        pa.factor("shrink", -0.5 * mu**2)
        pa.observe("y", pa.dist.Normal(mu, 1.0), y)

    with pytest.warns(pa.SamplingWarning, match="pa.factor terms \\(shrink\\).*ranks are not uniform"):
        pa.sbc(with_factor(0.0), simulations=1, seed=1, cores=1, **SMALL)


def test_a_script_without_a_main_guard_runs_once_with_local_workers(tmp_path):
    # the spawned workers re-ran the script: it printed three times, then BrokenProcessPool
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent("""
        import numpy as np
        import ppl_ad as pa
        from ppl_ad.testing.scenarios import normal_normal
        print("script body runs", flush=True)
        result = pa.sbc(normal_normal(np.zeros(10), 1.0, 1.0), simulations=2, draws=50, tune=50, thin=2, seed=1,
                        cores=2, backend="jax", progressbar=False)
        print(sorted(result.ranks))
    """))
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("script body runs") == 1 and "['mu']" in done.stdout


def test_one_seed_sequence_object_twice_gives_the_same_ranks():
    # spawn() changes the object it is called on: the second run had other seeds
    seed = np.random.SeedSequence(11)
    first = pa.sbc(conjugate(), simulations=2, seed=seed, cores=1, **SMALL)
    second = pa.sbc(conjugate(), simulations=2, seed=seed, cores=1, **SMALL)
    np.testing.assert_array_equal(first.ranks["mu"], second.ranks["mu"])


def test_data_that_do_not_pickle_run_in_process_and_are_refused_for_an_executor():
    lock = threading.Lock()

    @pa.model
    def locked(y, guard):
        mu = pa.sample("mu", pa.dist.Normal(0.0, 1.0))
        pa.observe("y", pa.dist.Normal(mu, 1.0), y)

    model = locked(np.zeros(3), lock)
    assert pa.sbc(model, simulations=1, seed=1, cores=1, **SMALL).ranks["mu"].shape == (1,)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        with pytest.raises(ConfigError, match="cannot be sent to the executor's workers"):
            pa.sbc(model, simulations=1, seed=1, executor=executor, **SMALL)


def test_a_forking_process_pool_after_jax_is_refused():
    import multiprocessing

    import jax  # noqa: F401 - JAX started in this process

    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as executor:
        with pytest.raises(ConfigError, match="forks .* JAX has started"):
            pa.sbc(conjugate(), simulations=1, seed=1, executor=executor, **SMALL)
        with pytest.raises(ConfigError, match="forks .* JAX has started"):
            pa.sample(conjugate(), backend="jax", draws=5, tune=5, chains=1, executor=executor, progressbar=False)


def test_the_report_names_the_backend_the_fits_ran_with():
    # backend=None was reported as "backend `None`"
    result = pa.sbc(conjugate(), simulations=2, draws=20, tune=20, chains=1, seed=1, cores=1, progressbar=False)
    resolved = pa.logdensity(conjugate()).backend.name
    assert result.settings["backend"] == resolved
    assert f"with backend `{resolved}`" in result.to_markdown()
