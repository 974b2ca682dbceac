"""Tests of ppl_ad.infer.parallel: chains in spawned worker processes.

Same seed, same draws: chains in workers must equal chains run in this process. The workers
must start from a script read from stdin, from ``python -c``, from a script without an
``if __name__ == "__main__":`` guard and from a notebook, without re-running the user's code.
"""

from __future__ import annotations

import multiprocessing.spawn
import os
import subprocess
import sys
import types

import numpy as np
import pytest

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad.infer import parallel
from ppl_ad.infer.gaussian import GaussianLogDensity
from ppl_ad.infer.sample import sample
from ppl_ad.testing.scenarios import normal_normal


def correlated_cov(scales, rho):
    d = len(scales)
    corr = rho ** np.abs(np.subtract.outer(np.arange(d), np.arange(d)))
    return corr * np.outer(scales, scales)


# --------------------------------------------------------------------------- #
# Same draws in workers and in this process; what can be sent to a worker
# --------------------------------------------------------------------------- #


def test_sequential_and_parallel_give_identical_draws():
    ld = GaussianLogDensity(np.arange(3.0), correlated_cov(np.ones(3), 0.5))
    kwargs = dict(draws=100, tune=100, chains=2, seed=7, progressbar=False)
    parallel = sample(ld, cores=2, **kwargs)
    sequential = sample(ld, cores=1, **kwargs)
    assert parallel.attrs["processes"] == 2
    assert sequential.attrs["processes"] == 1
    np.testing.assert_array_equal(parallel.posterior.x.values, sequential.posterior.x.values)
    for name in sequential.sample_stats.data_vars:
        np.testing.assert_array_equal(parallel.sample_stats[name].values, sequential.sample_stats[name].values)


# the reference backend: a cheap, deterministic gradient for this test
@pytest.mark.filterwarnings("ignore:sampling with backend 'finite-difference':ppl_ad.errors.SamplingWarning")
def test_parallel_with_a_dsl_model_matches_sequential():
    model = normal_normal(np.array([0.5, 1.5, 2.0]), 10.0, 1.0)
    kwargs = dict(backend="finite-difference", draws=60, tune=60, chains=2, seed=3, progressbar=False)
    parallel = sample(model, cores=2, **kwargs)
    sequential = sample(model, cores=1, **kwargs)
    assert parallel.attrs["processes"] == 2
    np.testing.assert_array_equal(parallel.posterior.mu.values, sequential.posterior.mu.values)
    assert parallel.attrs["backend"] == "finite-difference"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_parallel_with_fork_unsafe_backends(backend):
    pytest.importorskip(backend)
    model = normal_normal(np.array([0.5, 1.5, 2.0]), 10.0, 1.0)
    kwargs = dict(backend=backend, draws=50, tune=50, chains=2, seed=3, progressbar=False)
    parallel = sample(model, cores=2, **kwargs)
    sequential = sample(model, cores=1, **kwargs)
    assert parallel.attrs["processes"] == 2
    np.testing.assert_array_equal(parallel.posterior.mu.values, sequential.posterior.mu.values)


class _Holder:
    def __init__(self, fn):
        self.fn = fn


def test_unpicklable_or_main_models_run_in_process():
    assert parallel.worker_spec(GaussianLogDensity(np.zeros(2), [1.0, 1.0])) is not None
    assert parallel.worker_spec(_Holder(lambda x: x)) is None  # a lambda does not pickle

    def local(x):
        return x

    assert parallel.worker_spec(_Holder(local)) is None

    class Local:  # defined in a function: not importable in a fresh process
        pass

    assert parallel.worker_spec(_Holder(Local)) is None
    import __main__

    __main__._ppl_ad_test_main_object = _Holder(1)
    try:
        _Holder.__module__ = "__main__"
        __main__._Holder = _Holder
        assert parallel.worker_spec(_Holder(2)) is None
    finally:
        _Holder.__module__ = __name__
        del __main__._ppl_ad_test_main_object
        del __main__._Holder


# the reference backend: a cheap, deterministic gradient for this test
@pytest.mark.filterwarnings("ignore:sampling with backend 'finite-difference':ppl_ad.errors.SamplingWarning")
def test_a_model_defined_in_a_function_samples_in_parallel():
    @pa.model
    def local_model(y):
        mu = pa.sample("mu", dist.Normal(0.0, 10.0))
        pa.observe("y", dist.Normal(mu, 1.0), y)

    kwargs = dict(backend="finite-difference", draws=30, tune=30, chains=2, seed=1, progressbar=False)
    model = local_model(np.array([1.0, 2.0]))
    parallel_run = sample(model, cores=2, **kwargs)  # sent by value (cloudpickle)
    sequential_run = sample(model, cores=1, **kwargs)
    assert parallel_run.attrs["processes"] == 2 and parallel_run.attrs["chain_method"] == "parallel"
    np.testing.assert_array_equal(parallel_run.posterior.mu.values, sequential_run.posterior.mu.values)


# --------------------------------------------------------------------------- #
# Worker processes and their parent
# --------------------------------------------------------------------------- #

_LONG_RUN = """
import numpy as np
import ppl_ad as pa
from ppl_ad.infer.gaussian import GaussianLogDensity

def main():
    pa.sample(GaussianLogDensity(np.zeros(2), [1.0, 1.0]), draws=10**7, tune=10, chains=2, cores=2,
              progressbar=False)
"""


def _spawn_workers_of(pid: int) -> list[int]:
    path = f"/proc/{pid}/task/{pid}/children"
    try:
        with open(path) as handle:
            children = [int(c) for c in handle.read().split()]
    except OSError:
        return []
    out = []
    for child in children:
        try:
            with open(f"/proc/{child}/cmdline", "rb") as handle:
                if b"spawn_main" in handle.read():
                    out.append(child)
        except OSError:
            pass
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except OSError:
        return False


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux /proc")
def test_workers_stop_when_the_parent_is_killed(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "long_run.py"
    script.write_text(_LONG_RUN + "\nif __name__ == '__main__':\n    main()\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        workers = []
        while len(workers) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            workers = _spawn_workers_of(parent.pid)
        assert len(workers) == 2, "the chains' worker processes did not start"
        time.sleep(1.0)  # let them start sampling
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 20
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(w) for w in workers), "worker processes outlived their parent"
    finally:
        if parent.poll() is None:
            parent.kill()
        for worker in workers:
            if _alive(worker):
                os.kill(worker, signal.SIGKILL)


class ReportsItsEnvironment(GaussianLogDensity):
    """Fails at its first evaluation with the thread settings of the process it runs in."""

    def logdensity_and_gradient(self, theta):
        names = ("OMP_NUM_THREADS", "XLA_FLAGS")
        raise RuntimeError("environment " + repr({n: os.environ.get(n) for n in names}))


def test_worker_environment_shares_the_cpus(monkeypatch):
    for name in parallel.THREAD_VARIABLES + ("XLA_FLAGS",):
        monkeypatch.delenv(name, raising=False)
    env = parallel.worker_environment(2, cpus=2)
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "1"
    assert "--xla_cpu_multi_thread_eigen=false" in env["XLA_FLAGS"]
    env = parallel.worker_environment(4, cpus=16)
    assert env["OMP_NUM_THREADS"] == "4" and "XLA_FLAGS" not in env
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true")
    assert "OMP_NUM_THREADS" not in parallel.worker_environment(2, cpus=2)  # the user's choice stands
    assert "XLA_FLAGS" not in parallel.worker_environment(2, cpus=2)


def test_workers_start_with_one_thread_per_core(monkeypatch):
    for name in parallel.THREAD_VARIABLES + ("XLA_FLAGS",):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    ld = ReportsItsEnvironment(np.zeros(2), [1.0, 1.0])
    assert parallel.worker_spec(ld) is not None
    with pytest.raises(RuntimeError, match="environment") as info:
        sample(ld, draws=5, tune=5, chains=2, cores=2, progressbar=False)
    assert "'OMP_NUM_THREADS': '1'" in str(info.value) and "xla_cpu_multi_thread_eigen=false" in str(info.value)
    assert "OMP_NUM_THREADS" not in os.environ  # the parent's environment is restored


# --------------------------------------------------------------------------- #
# Parallel chains from anywhere: stdin, python -c, a script without a guard, a notebook
# --------------------------------------------------------------------------- #

_TOY_MODEL = """
import ppl_ad as pa
from ppl_ad import dist

@pa.model
def toy(y):
    mu = pa.sample("mu", dist.Normal(0.0, 1.0))
    s = pa.sample("s", dist.HalfNormal(1.0))
    pa.observe("y", dist.Normal(mu, s), y)
"""



@pa.model
def toy(y):  # _TOY_MODEL, here for the reference draws
    mu = pa.sample("mu", dist.Normal(0.0, 1.0))
    s = pa.sample("s", dist.HalfNormal(1.0))
    pa.observe("y", dist.Normal(mu, s), y)


_TOY_Y = [0.1, -0.3, 0.5]
_TOY_KWARGS = dict(backend="autograd", draws=50, tune=50, chains=2, seed=4, progressbar=False)

#: The user's code; ``{model}`` imports the model from a module or defines it here, in __main__.
_USER_CODE = """
import os
print("user code ran in process", os.getpid(), flush=True)
import numpy as np
import ppl_ad as pa
{model}
idata = pa.sample(toy(np.array({y})), cores=2, **{kwargs})
np.save("draws.npy", np.stack([idata.posterior.mu.values, idata.posterior.s.values]))
print("attrs", idata.attrs["processes"], idata.attrs["chain_method"], flush=True)
"""


def _user_code(model_defined_here: bool) -> str:
    model = _TOY_MODEL if model_defined_here else "from toy_models import toy"
    return _USER_CODE.format(model=model, y=_TOY_Y, kwargs=_TOY_KWARGS)


@pytest.fixture(scope="module")
def toy_reference():
    """The draws of the same chains run in this process."""
    idata = sample(toy(np.array(_TOY_Y)), cores=1, **_TOY_KWARGS)
    assert idata.attrs["processes"] == 1
    return np.stack([idata.posterior.mu.values, idata.posterior.s.values])


def _check_run(done, folder, reference):
    assert done.returncode == 0, done.stderr[-3000:]
    assert "attrs 2 parallel" in done.stdout  # two worker processes ran the chains
    assert done.stdout.count("user code ran in process") == 1, done.stdout  # never in a worker
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    np.testing.assert_array_equal(np.load(folder / "draws.npy"), reference)


@pytest.mark.parametrize(
    ("how", "model_defined_here"),
    [("stdin", False), ("stdin", True), ("-c", False), ("script without a main guard", False),
     ("script without a main guard", True)],
)
def test_parallel_chains_from_anywhere(how, model_defined_here, tmp_path, toy_reference):
    (tmp_path / "toy_models.py").write_text(_TOY_MODEL)
    code = _user_code(model_defined_here)
    env = {k: v for k, v in os.environ.items() if k != "PPL_AD_BACKEND"}
    run = dict(cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    if how == "stdin":
        done = subprocess.run([sys.executable, "-"], input=code, **run)
    elif how == "-c":
        done = subprocess.run([sys.executable, "-c", code], **run)
    else:
        (tmp_path / "no_guard.py").write_text(code)
        done = subprocess.run([sys.executable, "no_guard.py"], **run)
    _check_run(done, tmp_path, toy_reference)


def test_parallel_chains_of_a_model_defined_in_a_notebook(tmp_path, toy_reference):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(_user_code(model_defined_here=True))])
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = notebook.cells[0].outputs
    assert not [o for o in outputs if o.output_type == "error"], outputs
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream" and o.name == "stdout")
    assert "attrs 2 parallel" in text and text.count("user code ran in process") == 1
    np.testing.assert_array_equal(np.load(tmp_path / "draws.npy"), toy_reference)


def test_main_module_is_hidden_from_spawn_while_workers_start():
    main = sys.modules["__main__"]
    stand_in = types.ModuleType("__main__")
    stand_in.__file__ = "/nowhere/user_script.py"  # a script, as spawn would re-run it
    sys.modules["__main__"] = stand_in
    try:
        assert "init_main_from_path" in multiprocessing.spawn.get_preparation_data("w")
        with parallel.main_module_hidden():
            data = multiprocessing.spawn.get_preparation_data("w")
            assert "init_main_from_path" not in data and "init_main_from_name" not in data
            assert data["sys_path"] and data["dir"] == os.getcwd()  # the workers still get these
        assert sys.modules["__main__"] is stand_in
    finally:
        sys.modules["__main__"] = main


def test_a_model_from_main_is_sent_by_value():
    import pickle

    code = compile(_TOY_MODEL, "<user script>", "exec")
    namespace = {"__name__": "__main__"}
    exec(code, namespace)  # noqa: S102 - a model function whose __module__ is __main__
    model = namespace["toy"](np.array(_TOY_Y))
    ld = pa.logdensity(model, "finite-difference", prepare=False)
    spec = parallel.worker_spec(ld)
    assert spec is not None
    factory, args = pickle.loads(spec)
    rebuilt = factory(*args)
    theta = np.array([0.3, -0.2])
    assert rebuilt.logdensity(theta) == pa.logdensity(model, "finite-difference").logdensity(theta)


def test_a_dead_worker_is_explained():
    from ppl_ad.infer.parallel import _exit_reason

    assert "SIGKILL" in _exit_reason([-9]) and "out-of-memory" in _exit_reason([-9])
    assert _exit_reason([1]) == "exited"


@pytest.mark.parametrize("number, expected", [("SIGTERM", SystemExit), ("SIGINT", KeyboardInterrupt)])
def test_workers_killed_by_a_forwarded_stop_signal_are_the_stop_not_a_crash(monkeypatch, number, expected):
    # a worker still starting up when the parent passes SIGINT/SIGTERM on has no handler yet and dies
    # of it: pa.sample must then stop as documented (exit 143, KeyboardInterrupt), not report a crash
    import signal

    from ppl_ad.errors import SamplingError
    from ppl_ad.infer import checkpoint

    monkeypatch.setitem(checkpoint._SIGNAL, "number", getattr(signal, number))
    checkpoint._STOP.set()
    try:
        error = parallel._broken_pool_error([-getattr(signal, number)], [0, 1], checkpointed=True)
        assert isinstance(error, expected)
        if expected is SystemExit:
            assert error.code == 143
        # without checkpoints, or without a stop asked for, it is the crash it looks like
        assert isinstance(parallel._broken_pool_error([-15], [0, 1], checkpointed=False), SamplingError)
    finally:
        checkpoint._STOP.clear()
    crash = parallel._broken_pool_error([-9], [1], checkpointed=True)
    assert isinstance(crash, SamplingError) and "exit code -9" in str(crash) and "chains [1]" in str(crash)
