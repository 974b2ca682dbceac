"""Tests of ppl_ad.infer.distributed: chains as tasks on a Dask cluster or another executor.

Same seed, same draws: chains on a real two-process ``LocalCluster``, on a thread pool and on a
process pool must equal the chains of a local run, also after a worker was killed in the middle
of the run. A small model travels with each task, a large one goes to each Dask worker once;
progress and checkpoints follow the chains.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import signal
import threading
import time

import numpy as np
import pytest

import ppl_ad as pa
from ppl_ad.errors import ConfigError
from ppl_ad.infer import distributed as remote
from ppl_ad.infer.chain import ChainSettings
from ppl_ad.infer.gaussian import GaussianLogDensity
from ppl_ad.infer.init import resolve_logdensity
from ppl_ad.testing.scenarios import normal_normal

distributed = pytest.importorskip("distributed")

#: the Python engine with the jax backend: the fastest chains of these tiny models
PYTHON = {"backend": "jax", "engine": "python", "draws": 100, "tune": 100, "chains": 2, "seed": 11,
          "progressbar": False}


def model():
    return normal_normal(np.array([0.5, 1.5, 2.0]), 10.0, 1.0)


def _same_draws(a, b):
    np.testing.assert_array_equal(a.posterior.mu.values, b.posterior.mu.values)
    for name in a.sample_stats.data_vars:
        np.testing.assert_array_equal(a.sample_stats[name].values, b.sample_stats[name].values)


@pytest.fixture(scope="module")
def local():
    """Two chains of the Python engine in this process: what every executor must match."""
    return pa.sample(model(), cores=1, **PYTHON)


# --------------------------------------------------------------------------- #
# On the cluster
# --------------------------------------------------------------------------- #


def test_chains_on_a_cluster_give_the_draws_of_the_local_run(client, local):
    idata = pa.sample(model(), executor=client, **PYTHON)
    _same_draws(idata, local)
    assert idata.attrs["chain_method"] == "executor"
    assert idata.attrs["executor"] == "dask"
    assert idata.attrs["processes"] == 2


def test_compiled_engine_chains_on_a_cluster_equal_the_local_ones(client):
    kwargs = {**PYTHON, "engine": "jax", "draws": 50, "tune": 50}
    remote_run = pa.sample(model(), executor=client, **kwargs)
    local_run = pa.sample(model(), cores=1, **kwargs)
    assert remote_run.attrs["engine"] == "jax"
    _same_draws(remote_run, local_run)  # a JAX chain is a deterministic function of its seed


class _Recording:
    """A Dask client that records what is scattered and submitted."""

    def __init__(self, client):
        self._client = client
        self.scattered, self.submitted = [], []

    def __getattr__(self, name):
        return getattr(self._client, name)

    def scatter(self, data, **kwargs):
        self.scattered.append((len(data), kwargs))
        return self._client.scatter(data, **kwargs)

    def submit(self, function, *args, **kwargs):
        self.submitted.append(args)
        return self._client.submit(function, *args, **kwargs)


@pytest.mark.filterwarnings("ignore::ppl_ad.errors.SamplingWarning")  # 20 warmup iterations: transport only
def test_a_small_model_travels_inside_each_task_so_a_dead_worker_loses_nothing(client):
    recording = _Recording(client)
    idata = pa.sample(model(), executor=recording, **{**PYTHON, "chains": 3, "draws": 20, "tune": 20})
    assert idata.posterior.mu.shape == (3, 20)
    assert recording.scattered == []
    assert len(recording.submitted) == 3
    for args in recording.submitted:
        assert isinstance(args[0], bytes) and len(args[0]) <= remote.INLINE_RECIPE


@pytest.mark.filterwarnings("ignore::ppl_ad.errors.SamplingWarning")  # 20 warmup iterations: transport only
def test_a_large_model_goes_to_every_worker_once_not_with_each_chain(client, monkeypatch):
    monkeypatch.setattr(remote, "INLINE_RECIPE", 100_000)  # stands for a model with much more data
    y = np.random.default_rng(0).normal(size=20_000)  # 160 kB of data
    recording = _Recording(client)
    idata = pa.sample(normal_normal(y, 10.0, 1.0), executor=recording, **{**PYTHON, "chains": 4, "draws": 20,
                                                                             "tune": 20})
    assert idata.posterior.mu.shape == (4, 20)
    assert len(recording.scattered) == 1
    size, options = recording.scattered[0]
    assert size > 160_000 and options["broadcast"] is True
    assert len(recording.submitted) == 4
    for args in recording.submitted:  # each task names the scattered copy
        assert isinstance(args[0], distributed.Future)
        assert not any(isinstance(a, bytes) for a in args)


class _Bars:
    def __init__(self):
        self.messages = []

    def update(self, chain, done, tuning, divergences):
        self.messages.append((chain, done, tuning, divergences))


def test_progress_follows_the_remote_chains(client):
    ld = resolve_logdensity(model(), "jax", prepare=False)
    settings = ChainSettings(draws=200, tune=200, engine="python")
    bars = _Bars()
    seeds = np.random.SeedSequence(3).spawn(2)
    results, workers, kind = remote.run_chains(client, ld, seeds, settings, "jitter", bars)
    assert (len(results), workers, kind) == (2, 2, "dask")
    for chain in (0, 1):
        mine = [m for m in bars.messages if m[0] == chain]
        assert any(tuning for _, _, tuning, _ in mine), mine  # warmup reported while it ran
        assert mine[-1][1:3] == (200, False)  # and the end of sampling
        assert all(b[1] >= a[1] for a, b in zip(mine, mine[1:]) if a[2] == b[2])


def test_checkpoints_on_shared_storage(client, local, tmp_path):
    path = tmp_path / "run.ckpt"
    idata = pa.sample(model(), executor=client, checkpoint=path, checkpoint_every=25, **PYTHON)
    _same_draws(idata, local)
    assert sorted(p.name for p in path.glob("chain_*.json")) == ["chain_0.json", "chain_1.json"]
    # the same call in this process finds both chains finished on the cluster
    again = pa.sample(model(), cores=1, checkpoint=path, **PYTHON)
    _same_draws(again, local)


def test_a_killed_worker_is_replaced_and_the_draws_are_complete_and_identical(client, wait_until_replaced):
    kwargs = {**PYTHON, "chains": 4, "draws": 500, "tune": 500}
    reference = pa.sample(model(), cores=1, **kwargs)
    pids = client.run(os.getpid)
    address = sorted(pids)[0]
    victim = pids[address]
    killed, finished = {}, threading.Event()

    def executing(dask_worker=None):
        return sum(str(ts.key).startswith("ppl_ad-chain-") for ts in dask_worker.state.executing)

    def kill_while_a_chain_runs():
        while not finished.is_set():
            if client.run(executing, workers=[address])[address]:
                time.sleep(0.2)  # well into the chain
                os.kill(victim, signal.SIGKILL)
                killed["while_running"] = not finished.is_set()
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_while_a_chain_runs)
    killer.start()
    try:
        idata = pa.sample(model(), executor=client, **kwargs)
    finally:
        finished.set()
        killer.join()
    assert killed.get("while_running"), "the worker was not killed during the run"
    _same_draws(idata, reference)
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it
    wait_until_replaced(client, victim)


def test_a_chain_error_is_raised_from_the_cluster(client):
    with pytest.raises(Exception, match="mu"):
        pa.sample(model(), executor=client, init={"mu": np.nan}, **PYTHON)


# --------------------------------------------------------------------------- #
# Other executors
# --------------------------------------------------------------------------- #


def test_chains_on_a_thread_pool_give_the_draws_of_the_local_run(local):
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as executor:
        idata = pa.sample(model(), executor=executor, **PYTHON)
    _same_draws(idata, local)
    assert idata.attrs["executor"] == "ThreadPoolExecutor"


def test_thread_pool_progress_is_live():
    ld = resolve_logdensity(model(), "jax", prepare=False)
    bars = _Bars()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        remote.run_chains(executor, ld, np.random.SeedSequence(1).spawn(2), ChainSettings(draws=30, tune=30), "jitter",
                          bars)
    assert {(c, tuning) for c, _, tuning, _ in bars.messages} == {(0, True), (0, False), (1, True), (1, False)}


def test_chains_on_a_process_pool_give_the_draws_of_the_local_run():
    ld = GaussianLogDensity(np.arange(3.0), np.eye(3))  # NumPy only: the worker starts fast
    kwargs = dict(draws=60, tune=60, chains=2, seed=5, progressbar=False)
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        idata = pa.sample(ld, executor=pool, **kwargs)
    reference = pa.sample(ld, cores=1, **kwargs)
    np.testing.assert_array_equal(idata.posterior.x.values, reference.posterior.x.values)
    assert (idata.attrs["executor"], idata.attrs["processes"]) == ("ProcessPoolExecutor", 1)


def test_executor_arguments_are_checked():
    with pytest.raises(ConfigError, match="chain_method"):
        with concurrent.futures.ThreadPoolExecutor(1) as executor:
            pa.sample(model(), executor=executor, chain_method="parallel", **PYTHON)
    with pytest.raises(ConfigError, match="not an executor"):
        pa.sample(model(), executor="tcp://127.0.0.1:8786", **PYTHON)


def test_map_tasks_keeps_the_order_and_reports_each_task(client):
    done = []
    assert remote.map_tasks(client, pow, [(2, k) for k in range(5)], on_done=lambda i, r: done.append(i)) == [
        1, 2, 4, 8, 16]
    assert sorted(done) == list(range(5))
    with concurrent.futures.ThreadPoolExecutor(2) as executor:
        assert remote.map_tasks(executor, pow, [(3, 2), (2, 3)]) == [9, 8]


def test_a_package_missing_on_the_workers_is_named_as_such(client):
    with pytest.raises(ConfigError, match="a Dask worker could not import 'ppl_ad_absent_package'"):
        remote.map_tasks(client, __import__, [("ppl_ad_absent_package",)])
    with concurrent.futures.ThreadPoolExecutor(1) as executor:  # this machine's environment: as raised
        with pytest.raises(ModuleNotFoundError):
            remote.map_tasks(executor, __import__, [("ppl_ad_absent_package",)])


def test_data_that_do_not_pickle_are_named_for_a_process_executor():
    @pa.model
    def locked(y, guard):
        mu = pa.sample("mu", pa.dist.Normal(0.0, 1.0))
        pa.observe("y", pa.dist.Normal(mu, 1.0), y)

    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as executor:
        with pytest.raises(pa.ConfigError, match="its data do not pickle \\('guard': TypeError"):
            pa.sample(locked(np.zeros(3), threading.Lock()), backend="jax", draws=5, tune=5, chains=1,
                      executor=executor, progressbar=False)
