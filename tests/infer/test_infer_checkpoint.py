"""Tests of checkpointed sampling (ppl_ad.infer.checkpoint, ppl_ad.infer.state).

The acceptance tests kill a real sampling process with SIGKILL once the checkpoint shows 100
draws, then rerun the same call: the draws must equal an uninterrupted run's exactly. The
property test kills (in-process, by an exception where a save would happen) at random
iterations of warmup and sampling.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad.errors import CheckpointError
from ppl_ad.infer import checkpoint as checkpoint_module
from ppl_ad.infer.adaptation import window_adaptation_init
from ppl_ad.infer.state import ChainState, NumpyRNGState, from_jsonable, to_jsonable
from ppl_ad.testing import get_scenario

pytest.importorskip("zarr")

SMALL = dict(draws=60, tune=60, chains=2, cores=1, seed=4, progressbar=False)


@pa.model
def normal_mean(y):
    mu = pa.sample("mu", dist.Normal(0.0, 5.0))
    sigma = pa.sample("sigma", dist.HalfNormal(2.0))
    pa.observe("y", dist.Normal(mu, sigma), y)


def _model(offset=0.0):
    return normal_mean(y=np.linspace(-1.0, 2.0, 12) + offset)


def _posterior(idata):
    return {name: idata.posterior[name].to_numpy() for name in idata.posterior.data_vars}


def _assert_same(a, b):
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


class _Killed(BaseException):
    """Stands for a kill -9 between two saves."""


def test_state_round_trips_exactly_through_json():
    rng = np.random.default_rng(1)
    adaptation = window_adaptation_init(0.37, np.array([1.0, 2.5]))
    state = ChainState(rng.normal(size=2), -1.2345678901234567, rng.normal(size=2), adaptation,
                       NumpyRNGState(rng.bit_generator.state, (0.1, 0.7)))
    back = from_jsonable(__import__("json").loads(__import__("json").dumps(to_jsonable(state))))
    np.testing.assert_array_equal(back.position, state.position)
    assert back.logdensity == state.logdensity and back.rng == state.rng
    assert back.adaptation.dual_averaging == adaptation.dual_averaging
    np.testing.assert_array_equal(back.adaptation.welford.m2, adaptation.welford.m2)


@pytest.mark.parametrize("backend", ["autograd", "jax"])
def test_a_run_that_completes_reads_back_and_a_rerun_does_not_sample_again(backend, tmp_path, monkeypatch):
    path = tmp_path / "run.zarr"
    idata = pa.sample(_model(), backend=backend, checkpoint=path, **SMALL)
    assert idata.attrs["checkpoint"] == str(path)
    stored = pa.read_checkpoint(path)
    _assert_same(_posterior(idata), {k: v for k, v in _posterior(stored).items() if k in idata.posterior})
    assert stored.attrs["iterations"] == [120, 120]

    # finished chains are not rerun: no transition may happen
    from ppl_ad.infer import chain, jax_engine

    monkeypatch.setattr(chain.nuts, "build_kernel", lambda *a, **k: pytest.fail("a finished chain ran again"))
    monkeypatch.setattr(jax_engine, "_build_chunk", lambda *a, **k: lambda *b: pytest.fail("ran again"))
    again = pa.sample(_model(), backend=backend, checkpoint=path, **SMALL)
    _assert_same(_posterior(idata), _posterior(again))


_REFERENCE = {}


def _reference(backend):
    if backend not in _REFERENCE:
        _REFERENCE[backend] = _posterior(pa.sample(_model(), backend=backend, **SMALL))
    return _REFERENCE[backend]


def _killed_then_resumed(path, kill_at, every, monkeypatch, **kw):
    """Run with checkpoints at ``path``, die (chain 1) at the first save due at or after
    ``kill_at``, then rerun the same call: the posterior of the resumed run."""
    due = checkpoint_module.ChainCheckpoint.due

    def dying_due(self, done):
        if self.chain == 1 and done >= kill_at:
            raise _Killed
        return due(self, done)

    monkeypatch.setattr(checkpoint_module.ChainCheckpoint, "due", dying_due)
    with pytest.raises(_Killed):
        pa.sample(_model(), checkpoint=path, checkpoint_every=every, **kw)
    monkeypatch.setattr(checkpoint_module.ChainCheckpoint, "due", due)
    return _posterior(pa.sample(_model(), checkpoint=path, **kw))


@pytest.mark.parametrize("backend", ["autograd", "jax"])
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kill_at=st.integers(min_value=1, max_value=119), every=st.sampled_from([7, 50]))
def test_any_kill_resumes_to_the_identical_result(backend, kill_at, every, tmp_path_factory, monkeypatch):
    """Warmup is iterations 1-60, sampling 61-120; the JAX engine saves between its calls."""
    path = tmp_path_factory.mktemp("kill") / "run.zarr"
    _assert_same(_reference(backend), _killed_then_resumed(path, kill_at, every, monkeypatch, backend=backend, **SMALL))


@pytest.mark.parametrize(("backend", "kill_at"), [("jax", 25), ("jax", 90), ("autograd", 40)])
def test_a_low_rank_metric_resumes_to_the_identical_result(backend, kill_at, tmp_path, monkeypatch):
    """The low-rank metric's ring of draws is part of the saved state (warmup: 1-60)."""
    kw = dict(SMALL, backend=backend, metric="low_rank")
    reference = _posterior(pa.sample(_model(), **kw))
    _assert_same(reference, _killed_then_resumed(tmp_path / "run.zarr", kill_at, 7, monkeypatch, **kw))


def test_a_torn_save_is_ignored(tmp_path, monkeypatch):
    """Draws written but the commit file not: the reader and the resume trust the commit file."""
    reference = _reference("autograd")
    path = tmp_path / "run.zarr"
    write = checkpoint_module._write_atomic
    calls = []

    def failing_write(target, data):
        if target.name.startswith("chain_") and len(calls) == 4:  # model.pkl, then chain 0 at 20, 40, 60
            raise _Killed
        calls.append(target)
        write(target, data)

    monkeypatch.setattr(checkpoint_module, "_write_atomic", failing_write)
    with pytest.raises(_Killed):
        pa.sample(_model(), backend="autograd", checkpoint=path, checkpoint_every=20, **SMALL)
    monkeypatch.setattr(checkpoint_module, "_write_atomic", write)
    partial = pa.read_checkpoint(path)
    # chain 0 wrote draws 1-20 of iteration 80 but did not commit them; chain 1 had not started
    assert partial.attrs["iterations"] == [60, 0] and partial.posterior.sizes["draw"] == 0
    _assert_same(reference, _posterior(pa.sample(_model(), backend="autograd", checkpoint=path, **SMALL)))


def test_more_draws_extend_a_finished_run(tmp_path):
    path = tmp_path / "run.zarr"
    pa.sample(_model(), backend="autograd", checkpoint=path, **SMALL)
    longer = dict(SMALL, draws=90)
    extended = pa.sample(_model(), backend="autograd", checkpoint=path, **longer)
    _assert_same(_posterior(pa.sample(_model(), backend="autograd", **longer)), _posterior(extended))
    fewer = pa.sample(_model(), backend="autograd", checkpoint=path, **dict(SMALL, draws=30))
    _assert_same({k: v[:, :30] for k, v in _posterior(extended).items()}, _posterior(fewer))


@pytest.mark.parametrize(
    "change, expected",
    [
        (dict(model=_model(offset=1.0)), "data: .*other data"),
        (dict(backend="jax"), "backend: .*another backend"),
        (dict(tune=80), "tune: .*other sampler settings"),
        (dict(seed=5), "seed: .*another seed"),
        (dict(metric="dense"), "metric"),
    ],
    ids=["data", "backend", "tune", "seed", "metric"],
)
def test_a_checkpoint_of_another_run_is_refused(change, expected, tmp_path):
    path = tmp_path / "run.zarr"
    pa.sample(_model(), backend="autograd", checkpoint=path, **dict(SMALL, draws=10, tune=10))
    kwargs = dict(SMALL, draws=10, tune=10, backend="autograd")
    model = change.pop("model", _model())
    kwargs.update(change)
    with pytest.raises(CheckpointError, match=expected) as info:
        pa.sample(model, checkpoint=path, **kwargs)
    assert "overwrite=True" in str(info.value)
    idata = pa.sample(model, checkpoint=path, overwrite=True, **kwargs)
    assert idata.posterior.sizes["draw"] == 10


def test_read_checkpoint_of_nothing_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no ppl_ad checkpoint"):
        pa.read_checkpoint(tmp_path / "missing")


def test_vectorized_chains_cannot_checkpoint(tmp_path):
    with pytest.raises(pa.ConfigError, match="vectorized"):
        pa.sample(_model(), backend="jax", chain_method="vectorized", checkpoint=tmp_path / "x", **SMALL)


SCRIPT = """
import sys
import numpy as np
import ppl_ad as pa
from ppl_ad.testing import get_scenario

if __name__ == "__main__":
    backend, path, out = sys.argv[1], sys.argv[2], sys.argv[3]
    idata = pa.sample(get_scenario("eight_schools").model(), backend=backend, draws={draws}, tune={tune},
                      chains=2, cores=2, seed=21, progressbar=False, target_accept=0.9, checkpoint=path,
                      checkpoint_every={every})
    np.save(out, np.concatenate([idata.posterior[n].to_numpy().reshape(2, {draws}, -1) for n in ("mu", "tau", "theta")], -1))
"""


def _wait_for_draws(path, process, minimum, timeout=240.0):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if process.poll() is not None:
            pytest.fail(f"the sampling process ended (code {process.returncode}) before {minimum} draws")
        try:
            idata = pa.read_checkpoint(path)
            if idata.posterior.sizes["draw"] >= minimum:
                return idata
        except CheckpointError:
            pass
        time.sleep(0.2)
    pytest.fail("no checkpointed draws in time")


@pytest.mark.parametrize(
    "backend, draws, tune, every",
    [("torch", 400, 300, 10), ("jax", 6000, 300, 10)],
    ids=["torch-python-engine", "jax-compiled-engine"],
)
@pytest.mark.filterwarnings("ignore::ppl_ad.errors.SamplingWarning")
def test_kill_9_then_rerun_gives_the_uninterrupted_draws(backend, draws, tune, every, tmp_path):
    pytest.importorskip(backend)
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(SCRIPT.format(draws=draws, tune=tune, every=every)))
    path, out = tmp_path / "ckpt.zarr", tmp_path / "resumed.npy"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    process = subprocess.Popen([sys.executable, str(script), backend, str(path), str(out)], env=env,
                               start_new_session=True, stderr=subprocess.DEVNULL)
    try:
        partial = _wait_for_draws(path, process, 100)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert partial.posterior.sizes["draw"] >= 100
    pa.read_checkpoint(path)  # the store reads after the kill
    subprocess.run([sys.executable, str(script), backend, str(path), str(out)], env=env, check=True,
                   stderr=subprocess.DEVNULL)
    fresh = tmp_path / "fresh.npy"
    subprocess.run([sys.executable, str(script), backend, str(tmp_path / "fresh.zarr"), str(fresh)], env=env,
                   check=True, stderr=subprocess.DEVNULL)
    assert np.array_equal(np.load(out), np.load(fresh))


def test_sigint_saves_and_the_rerun_resumes(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(SCRIPT.format(draws=400, tune=300, every=1000)).replace("cores=2", "cores=1"))
    path, out = tmp_path / "ckpt.zarr", tmp_path / "resumed.npy"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    process = subprocess.Popen([sys.executable, str(script), "autograd", str(path), str(out)], env=env,
                               start_new_session=True, stderr=subprocess.PIPE)
    # the run saves at the end of warmup (every=1000 never fires): wait for it, then interrupt
    start = time.monotonic()
    while not (path / "chain_0.json").exists() and time.monotonic() - start < 120:
        time.sleep(0.1)
    time.sleep(0.3)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0 and b"KeyboardInterrupt" in stderr
    saved = checkpoint_module.ChainCheckpoint(str(path), 0, 300).load()
    assert saved["iteration"] > 300  # saved at the interrupt, not only at the end of warmup
    subprocess.run([sys.executable, str(script), "autograd", str(path), str(out)], env=env, check=True)
    reference = pa.sample(get_scenario("eight_schools").model(), backend="autograd", draws=400, tune=300, chains=2,
                          cores=1, seed=21, progressbar=False, target_accept=0.9)
    expected = np.concatenate([reference.posterior[n].to_numpy().reshape(2, 400, -1) for n in ("mu", "tau", "theta")], -1)
    assert np.array_equal(np.load(out), expected)


def test_the_finished_chains_of_an_interrupted_run_can_be_read(tmp_path, monkeypatch):
    # chains one after another: chain 0 finished, chain 1 killed before its first draw; the default
    # reads what every chain has (nothing), chains="started" the finished chain
    path = tmp_path / "run.zarr"
    write = checkpoint_module._write_atomic

    def killed_in_chain_1(target, data):
        if target.name.startswith("chain_1"):
            raise _Killed
        write(target, data)

    monkeypatch.setattr(checkpoint_module, "_write_atomic", killed_in_chain_1)
    with pytest.raises(_Killed):
        pa.sample(_model(), backend="autograd", checkpoint=path, checkpoint_every=20, **SMALL)
    monkeypatch.setattr(checkpoint_module, "_write_atomic", write)
    assert pa.read_checkpoint(path).posterior.sizes["draw"] == 0
    started = pa.read_checkpoint(path, chains="started")
    assert started.posterior.sizes["chain"] == 1 and started.posterior.sizes["draw"] == 60
    assert started.attrs["chains_read"] == [0] and started.attrs["draws_per_chain"] == [60, 0]
    np.testing.assert_array_equal(_posterior(started)["mu"][0], _reference("autograd")["mu"][0])
    assert pa.read_checkpoint(path, chains=[0]).posterior.sizes["draw"] == 60
    with pytest.raises(CheckpointError, match="chains 0..1"):
        pa.read_checkpoint(path, chains=[2])


PRIOR_SD = 5.0


@pa.model
def global_prior(y):
    mu = pa.sample("mu", dist.Normal(0.0, PRIOR_SD))  # read from the module: not in the model's source
    pa.observe("y", dist.Normal(mu, 1.0), y)


def test_a_changed_global_the_model_reads_is_another_run(tmp_path, monkeypatch):
    # the source hash missed it: the old adaptation ran on the new density (200 of 200 divergent)
    path = tmp_path / "run.zarr"
    kwargs = dict(SMALL, draws=10, tune=10, backend="autograd", checkpoint=path)
    pa.sample(global_prior(np.array([0.5])), **kwargs)
    monkeypatch.setattr(sys.modules[__name__], "PRIOR_SD", 0.01)
    with pytest.raises(CheckpointError, match="density: .*the model's log density changed"):
        pa.sample(global_prior(np.array([0.5])), **dict(kwargs, draws=20))


def test_without_a_seed_the_same_call_resumes_with_the_checkpoints_seed(tmp_path):
    # each call without a seed drew new entropy: a run without a seed could never be resumed
    path = tmp_path / "run.zarr"
    kwargs = dict(SMALL, tune=20, backend="autograd", seed=None)
    first = pa.sample(_model(), checkpoint=path, **dict(kwargs, draws=10))
    longer = pa.sample(_model(), checkpoint=path, **dict(kwargs, draws=20))
    assert longer.attrs["seed"] == first.attrs["seed"]
    fresh = pa.sample(_model(), **dict(kwargs, draws=20, seed=int(first.attrs["seed"])))
    _assert_same(_posterior(fresh), _posterior(longer))


def test_children_of_one_seed_sequence_are_different_seeds(tmp_path):
    path = tmp_path / "run.zarr"
    first, second = np.random.SeedSequence(5).spawn(2)
    kwargs = dict(SMALL, draws=10, tune=10, backend="autograd")
    idata = pa.sample(_model(), checkpoint=path, **dict(kwargs, seed=first))
    assert idata.attrs["seed"] == "SeedSequence(entropy=5, spawn_key=(0,))"
    with pytest.raises(CheckpointError, match="seed: .*spawn_key=\\(1,\\).*another seed"):
        pa.sample(_model(), checkpoint=path, **dict(kwargs, seed=second))


@pytest.mark.parametrize("seed", [1.0, -1, "x", [1, -2]])
def test_an_invalid_seed_is_named(seed):
    with pytest.raises(pa.ConfigError, match="invalid seed="):
        pa.sample(_model(), backend="autograd", **dict(SMALL, seed=seed))


@pytest.mark.filterwarnings("ignore::ppl_ad.errors.SamplingWarning")  # 5 warmup iterations: divergences are possible
def test_a_generator_seeds_the_run_as_in_pymc():
    kwargs = dict(SMALL, draws=5, tune=5, backend="autograd")
    a = pa.sample(_model(), **dict(kwargs, seed=np.random.default_rng(3)))
    b = pa.sample(_model(), **dict(kwargs, seed=np.random.default_rng(3)))
    _assert_same(_posterior(a), _posterior(b))


def test_a_store_killed_while_it_was_created_is_made_again(tmp_path):
    import zarr

    path = tmp_path / "run.zarr"
    path.mkdir()
    group = zarr.open_group(str(path / "draws.zarr"), mode="w")  # killed here: no attributes yet
    group.create_group("chain_0")
    idata = pa.sample(_model(), backend="autograd", checkpoint=path, **dict(SMALL, draws=10, tune=10))
    assert idata.posterior.sizes["draw"] == 10
    other = tmp_path / "foreign.zarr"
    other.mkdir()
    zarr.open_group(str(other / "draws.zarr"), mode="w").create_group("something_else")
    with pytest.raises(CheckpointError, match="not a ppl_ad checkpoint"):
        pa.sample(_model(), backend="autograd", checkpoint=other, **dict(SMALL, draws=10, tune=10))


@pytest.mark.filterwarnings("ignore::ppl_ad.errors.SamplingWarning")
def test_sigterm_to_the_parent_alone_stops_parallel_workers_and_the_rerun_resumes(tmp_path):
    # kill PID, docker stop, a scheduler: the workers ran every remaining iteration first
    draws = 6000
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(SCRIPT.format(draws=draws, tune=300, every=10)))
    path, out = tmp_path / "ckpt.zarr", tmp_path / "resumed.npy"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    process = subprocess.Popen([sys.executable, str(script), "jax", str(path), str(out)], env=env,
                               start_new_session=True, stderr=subprocess.DEVNULL)
    try:
        _wait_for_draws(path, process, 100)
        process.send_signal(signal.SIGTERM)  # the parent only, not its process group
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode != 0
    stopped = pa.read_checkpoint(path, chains="started")
    saved = [checkpoint_module.ChainCheckpoint(str(path), c, 300).load() for c in range(2)]
    assert all(s is not None and s["iteration"] < 300 + draws for s in saved), "a worker ran to the end"
    assert stopped.posterior.sizes["draw"] < draws
    subprocess.run([sys.executable, str(script), "jax", str(path), str(out)], env=env, check=True,
                   stderr=subprocess.DEVNULL)
    fresh = tmp_path / "fresh.npy"
    subprocess.run([sys.executable, str(script), "jax", str(tmp_path / "fresh.zarr"), str(fresh)], env=env,
                   check=True, stderr=subprocess.DEVNULL)
    assert np.array_equal(np.load(out), np.load(fresh))


def test_damaged_or_misused_checkpoint_paths_get_checkpoint_errors(tmp_path):
    path = tmp_path / "run.zarr"
    kwargs = dict(SMALL, draws=10, tune=10, backend="autograd")
    pa.sample(_model(), checkpoint=path, **kwargs)
    for chains, message in (("all", "chains='all'"), (True, "chains=True"), (5, "chains 0..1")):
        with pytest.raises(CheckpointError, match=message):
            pa.read_checkpoint(path, chains=chains)
    assert pa.read_checkpoint(path, chains=1).posterior.sizes["chain"] == 1
    (path / "chain_0.json").write_text('{"iteration": 3')  # damaged from outside
    with pytest.raises(CheckpointError, match="chain_0.json is damaged"):
        pa.sample(_model(), checkpoint=path, **dict(kwargs, draws=20))
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(CheckpointError, match="is a file"):
        pa.sample(_model(), checkpoint=a_file, **kwargs)
    with pytest.raises(pa.ConfigError, match="checkpoint_every=... needs checkpoint=PATH"):
        pa.sample(_model(), checkpoint_every=10, **kwargs)
    pa.sample(_model(), **dict(kwargs, target_accept=np.float32(0.9)))


def test_one_seed_sequence_object_twice_gives_the_same_draws():
    # pa.sample spawned the user's object in place: the second run drew other chains under the same attrs["seed"]
    seed = np.random.SeedSequence(1)
    kwargs = dict(SMALL, draws=10, tune=10, backend="autograd", seed=seed)
    first, second = pa.sample(_model(), **kwargs), pa.sample(_model(), **kwargs)
    _assert_same(_posterior(first), _posterior(second))
    assert seed.n_children_spawned == 0


def test_the_recorded_seed_can_be_passed_back():
    kwargs = dict(SMALL, draws=10, tune=10, backend="autograd")
    for seed in (None, np.random.SeedSequence(5).spawn(2)[1]):
        first = pa.sample(_model(), **dict(kwargs, seed=seed))
        again = pa.sample(_model(), **dict(kwargs, seed=first.attrs["seed"]))
        _assert_same(_posterior(first), _posterior(again))


@pa.model
def grouped(y):
    z = pa.sample("z", dist.Normal(0.0, 1.0), shape=(3,), dims="group")
    pa.observe("y", dist.Normal(z, 1.0), y, dims="group")


def test_read_checkpoint_keeps_dims_coords_and_observed_data_and_xarray_opens_the_store(tmp_path):
    """read_checkpoint gave 'z_dim_0' for 'group' and no observed_data; xarray refused the store for want
    of dimension names."""
    import xarray as xr

    path = tmp_path / "run"
    coords = {"group": ["a", "b", "c"]}
    idata = pa.sample(grouped(np.array([1.0, 2.0, 3.0])), draws=30, tune=30, chains=1, seed=1, progressbar=False,
                      checkpoint=path, coords=coords)
    plain = pa.read_checkpoint(path)
    assert plain.posterior["z"].dims == ("chain", "draw", "group")
    np.testing.assert_array_equal(plain.observed_data["y"], [1.0, 2.0, 3.0])
    labelled = pa.read_checkpoint(path, coords=coords)
    assert list(labelled.posterior["group"].values) == ["a", "b", "c"]
    np.testing.assert_array_equal(labelled.posterior["z"], idata.posterior["z"])
    chain = xr.open_zarr(str(path / "draws.zarr"), group="chain_0", consolidated=False)
    assert chain["draws"].dims == ("draw", "unconstrained") and chain["lp"].dims == ("draw",)
    np.testing.assert_array_equal(chain["lp"].values, idata.sample_stats["lp"].values[0])
    with pytest.raises(pa.ConfigError, match="read_checkpoint"):
        pa.read_checkpoint(path, coords={"groups": ["a", "b", "c"]})
