"""Tests of the compiled engine (ppl_ad.infer.jax_engine) and engine selection (ppl_ad.infer.engine)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad.errors import ConfigError
from ppl_ad.infer import jax_engine
from ppl_ad.infer.adaptation import build_nutpie_schedule, build_schedule
from ppl_ad.infer.chain import stat_dtypes
from ppl_ad.infer.engine import select_chain_method, select_engine
from ppl_ad.infer.sample import sample
from ppl_ad.testing import get_scenario

pytest.importorskip("jax")
pytest.importorskip("blackjax")

FAST = dict(draws=200, tune=200, progressbar=False)


@pa.model
def conjugate(y, prior_sd, noise_sd):
    mu = pa.sample("mu", dist.Normal(0.0, prior_sd))
    pa.observe("y", dist.Normal(mu, noise_sd), y)


@pa.model
def scale_model(y):
    s = pa.sample("s", dist.HalfNormal(2.0))
    pa.observe("y", dist.Normal(0.0, s), y)


def _conjugate_model(rng=np.random.default_rng(3)):
    y = rng.normal(1.0, 2.0, size=30)
    return conjugate(y=y, prior_sd=3.0, noise_sd=2.0), y


def test_default_engine_follows_the_backend():
    model, _ = _conjugate_model()
    assert select_engine(pa.logdensity(model, backend="jax", prepare=False)) == "jax"
    assert select_engine(pa.logdensity(model, backend="jax-forward", prepare=False)) == "jax"
    assert select_engine(pa.logdensity(model, backend="torch", prepare=False)) == "python"
    assert select_engine(pa.logdensity(model, backend="jax", prepare=False), sampler="hmc") == "python"


def test_jax_engine_with_a_tape_backend_names_the_backend():
    model, _ = _conjugate_model()
    with pytest.raises(ConfigError, match="backend 'torch' supports only engine='python'"):
        sample(model, backend="torch", engine="jax", **FAST)
    with pytest.raises(ConfigError, match="unknown engine|engine="):
        sample(model, backend="jax", engine="xla", **FAST)


def test_vectorized_needs_the_jax_engine():
    with pytest.raises(ConfigError, match="vectorized"):
        select_chain_method("python", "vectorized", 4, 2)
    assert select_chain_method("jax", None, 4, 1) == ("sequential", 1)
    assert select_chain_method("jax", None, 4, 2) == ("parallel", 2)  # cores asked for processes
    assert select_chain_method("jax", None, 4, None) == ("sequential", 1)  # a compiled chain is fast
    assert select_chain_method("python", None, 4, None)[0] == ("parallel" if (os.cpu_count() or 1) > 1 else "sequential")


def test_phases_follow_the_shared_schedule():
    flags = jax_engine._phases(1000, 10, "fisher")
    schedule = np.array(build_schedule(1000), dtype=np.int8)
    np.testing.assert_array_equal(flags[:1000, :2], schedule)
    assert flags[:1000, 2].all() and not flags[1000:, 2].any()
    assert flags[999, 3] == 1 and flags[:, 3].sum() == 1
    # the heuristic runs first and right after every window end
    assert list(np.flatnonzero(flags[:, 4])) == [0] + [i + 1 for i in np.flatnonzero(schedule[:, 1])]
    # nutpie's schedule (the default): estimators and metric after each draw of the first 85 %,
    # switches from the shared schedule, the heuristic only before the first draw
    flags = jax_engine._phases(1000, 10)
    nutpie = np.array(build_nutpie_schedule(1000), dtype=np.int8)
    np.testing.assert_array_equal(flags[:1000, :2], nutpie)
    assert flags[:850, 0].all() and not flags[850:, 0].any()
    assert list(np.flatnonzero(flags[:, 4])) == [0] and list(np.flatnonzero(flags[:, 5])) == [0]
    # a dense metric keeps Stan's windows
    np.testing.assert_array_equal(jax_engine._phases(1000, 10, "nutpie", dense=True)[:1000, :2], schedule)


def test_conjugate_posterior_matches_the_closed_form():
    model, y = _conjugate_model()
    idata = sample(model, backend="jax", chains=2, cores=1, seed=5, draws=1000, tune=500, progressbar=False)
    precision = 1 / 3.0**2 + len(y) / 2.0**2
    mean, sd = (y.sum() / 2.0**2) / precision, precision**-0.5
    draws = idata.posterior["mu"].to_numpy().ravel()
    assert idata.attrs["engine"] == "jax"
    assert abs(draws.mean() - mean) < 5 * sd / np.sqrt(500)
    assert abs(draws.std() / sd - 1) < 0.1


def test_same_seed_same_draws_and_python_engine_names():
    model, _ = _conjugate_model()
    a = sample(model, backend="jax", chains=2, cores=1, seed=7, **FAST)
    b = sample(model, backend="jax", chains=2, cores=1, seed=7, **FAST)
    np.testing.assert_array_equal(a.posterior["mu"].to_numpy(), b.posterior["mu"].to_numpy())
    c = sample(model, backend="jax", chains=2, cores=1, seed=8, **FAST)
    assert not np.array_equal(a.posterior["mu"].to_numpy(), c.posterior["mu"].to_numpy())
    python = sample(model, backend="jax", engine="python", chains=2, cores=1, seed=7, **FAST)
    assert set(a.sample_stats.data_vars) == set(python.sample_stats.data_vars) == set(stat_dtypes("nuts"))
    for name, dtype in stat_dtypes("nuts").items():
        assert a.sample_stats[name].dtype == np.dtype(dtype), name
    for key in ("gradient_evaluations", "gradient_time", "tuning_time", "sampling_time", "wall_time"):
        assert key in a.attrs and key in python.attrs
    assert a.attrs["compile_time"] >= 0
    # one NUTS step per leapfrog step, plus the heuristic's trials and the initial point
    n_steps = int(a.sample_stats["n_steps"].sum())
    assert a.attrs["gradient_evaluations"] > n_steps
    assert python.attrs["engine"] == "python"


def test_vectorized_chains_sample_the_same_posterior():
    model, _ = _conjugate_model()
    seq = sample(model, backend="jax", chains=2, cores=1, seed=9, **FAST)
    vec = sample(model, backend="jax", chains=2, seed=9, chain_method="vectorized", **FAST)
    assert vec.attrs["chain_method"] == "vectorized"
    # the same chains with the same keys: equal up to floating-point reassociation under vmap
    np.testing.assert_allclose(seq.posterior["mu"].to_numpy(), vec.posterior["mu"].to_numpy(), rtol=1e-6, atol=1e-8)


def test_dense_metric_and_forward_mode():
    idata = sample(get_scenario("eight_schools").model(), backend="jax-forward", chains=1, seed=2,
                   metric="dense", target_accept=0.9, draws=300, tune=300, progressbar=False)
    assert idata.attrs["engine"] == "jax" and idata.attrs["backend"] == "jax-forward"
    assert np.isfinite(idata.sample_stats["lp"]).all()
    assert 0.5 < float(idata.posterior["tau"].mean()) < 8


def test_warmup_adapts_step_size_and_metric():
    rng = np.random.default_rng(0)
    model = scale_model(y=rng.normal(0.0, 0.05, size=200))
    idata = sample(model, backend="jax", chains=1, seed=1, draws=200, tune=300, progressbar=False)
    step = idata.sample_stats["step_size"].to_numpy()
    assert np.all(step == step.flat[0]) and 0.1 < step.flat[0] < 3
    assert 0.6 < float(idata.sample_stats["acceptance_rate"].mean()) < 0.97


def test_a_new_process_loads_the_compiled_sampler_from_disk(tmp_path):
    import json
    import subprocess
    import sys

    script = (
        "import json, sys, warnings\n"
        "import ppl_ad as pa\n"
        "from ppl_ad.testing import get_scenario\n"
        "warnings.simplefilter('ignore', pa.SamplingWarning)\n"
        "idata = pa.sample(get_scenario('eight_schools').model(), backend='jax', chains=2, cores=1, seed=3,\n"
        "                  draws=30, tune=30, progressbar=False)\n"
        "print(json.dumps({'blackjax': 'blackjax' in sys.modules, 'mu': idata.posterior['mu'].values.tolist()}))\n"
    )
    env = {**os.environ, "PPL_AD_CACHE_DIR": str(tmp_path)}

    def run():
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    first, second = run(), run()
    assert any((tmp_path / "programs").iterdir())
    assert first["blackjax"] and not second["blackjax"]  # no tracing: the program came from disk
    assert first["mu"] == second["mu"]


def test_a_program_from_disk_that_calls_lapack_runs(tmp_path):
    """A loaded program is never lowered, and JAX initialises its LAPACK kernels only when it
    lowers one that uses them: without ppl_ad initialising them, this crashed (SIGSEGV)."""
    import subprocess
    import sys

    script = (
        "import numpy as np, ppl_ad as pa\n"
        "from ppl_ad import dist\n"
        "@pa.model\n"
        "def correlated(L):\n"
        "    pa.sample('x', dist.MvNormalCholesky(np.zeros(3), L))\n"
        "L = np.linalg.cholesky(np.array([[1.0, 0.5, 0.2], [0.5, 2.0, 0.3], [0.2, 0.3, 1.5]]))\n"
        "idata = pa.sample(correlated(L), backend='jax', chains=1, seed=2, draws=20, tune=20, progressbar=False)\n"
        "print(float(idata.posterior['x'].sum()))\n"
    )
    env = {**os.environ, "PPL_AD_CACHE_DIR": str(tmp_path)}
    outputs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
        outputs.append(done.stdout.strip().splitlines()[-1])
    assert any((tmp_path / "programs").iterdir()) and outputs[0] == outputs[1]


def test_small_data_are_constants():
    ld = pa.logdensity(get_scenario("logistic_regression").model(), backend="jax")
    assert ld.data_mode == "constants" and ld.traceable()[1] == {}


def test_large_data_enter_as_arguments(monkeypatch):
    from ppl_ad.backends import jax_reverse

    monkeypatch.setattr(jax_reverse, "ARGUMENT_MIN_BYTES", 100_000)  # X is 2 MB, y 40 kB
    ld = pa.logdensity(get_scenario("logistic_regression").model(), backend="jax")
    assert ld.data_mode == "arguments"
    fn, data = ld.traceable()
    assert set(data) == {"X"}
    theta = np.full(ld.dimension, 0.1)
    np.testing.assert_allclose(float(fn(theta, data)), ld.logdensity(theta), rtol=1e-12)


def test_new_data_of_the_same_shapes_reuse_the_compiled_program(monkeypatch):
    from ppl_ad.backends import jax_reverse

    monkeypatch.setattr(jax_reverse, "ARGUMENT_MIN_BYTES", 0)  # every array an argument
    model, y = _conjugate_model()
    first = sample(model, backend="jax", chains=1, seed=1, draws=50, tune=50, progressbar=False)
    other = conjugate(y=y + 10.0, prior_sd=3.0, noise_sd=2.0)
    second = sample(other, backend="jax", chains=1, seed=1, draws=50, tune=50, progressbar=False)
    assert second.attrs["compile_time"] == 0.0  # the program of the first fit, with the new data as arguments
    assert float(second.posterior["mu"].mean()) > float(first.posterior["mu"].mean()) + 5
    # a non-array argument is part of the program: a new value compiles a new one
    third = sample(conjugate(y=y, prior_sd=30.0, noise_sd=2.0), backend="jax", chains=1, seed=1, draws=50, tune=50,
                   progressbar=False)
    assert third.attrs["compile_time"] > 0


# --------------------------------------------------------------------------- #
# The initial point, searched inside the program
# --------------------------------------------------------------------------- #


@pa.model
def impossible(y):
    # y beyond every upper bound the parameter can take: -inf wherever the sampler starts (data outside a
    # constant support would be refused when the model is built)
    upper = pa.sample("upper", dist.Beta(2.0, 2.0))
    pa.observe("y", dist.Uniform(0.0, upper), y)


@pa.model
def walled(y):
    a = pa.sample("a", dist.Normal(0.0, 1.0))
    b = pa.sample("b", dist.Normal(0.0, 1.0))
    # finite only where a < 0.5: a wall the jitter can hit
    pa.factor("wall", pa.math.where(a < 0.5, 0.0, -np.inf))
    pa.observe("y", dist.Normal(a + b, 1.0), y)


def test_no_backend_compile_and_a_finite_start():
    ld = pa.logdensity(_conjugate_model()[0], backend="jax", prepare=False)
    idata = sample(ld, chains=2, cores=1, seed=1, draws=5, tune=5, progressbar=False)
    assert not ld.is_prepared  # the program found and checked the start itself
    assert np.isfinite(idata.sample_stats["lp"].to_numpy()).all()


def test_no_finite_initial_point_names_the_model_and_site():
    with pytest.raises(pa.SamplingError, match=r"chain 0: could not find an initial point of model 'impossible'.*'y'"):
        sample(impossible(np.array([0.5, 2.0])), backend="jax", chains=1, seed=0, **FAST)


@pytest.mark.filterwarnings("ignore::ppl_ad.errors.SamplingWarning")  # the wall makes divergences
def test_jitter_is_retried_inside_the_program():
    # half of the jitter of `a` is past the wall: chains still start, and inside it
    for seed in range(3):
        idata = sample(walled(np.array([0.1])), backend="jax", chains=2, cores=1, seed=seed, draws=1, tune=0,
                       max_treedepth=1, progressbar=False)
        assert (idata.posterior["a"].to_numpy() < 0.5).all()


@pytest.mark.filterwarnings("ignore::ppl_ad.errors.SamplingWarning")  # a divergence is possible out there
def test_full_and_partial_init_under_the_jax_engine():
    model = walled(np.array([0.1]))
    idata = sample(model, backend="jax", chains=2, cores=1, seed=0, draws=1, tune=0, max_treedepth=1,
                   progressbar=False, init={"b": 30.0})
    assert (idata.posterior["b"].to_numpy() > 20).all()  # fixed far out; `a` jittered
    with pytest.raises(pa.SamplingError, match="initial values given in init"):
        sample(model, backend="jax", chains=1, seed=0, draws=1, tune=0, progressbar=False,
               init={"a": 0.7, "b": 0.0})
    for chain_method in ("vectorized", "sequential"):
        idata = sample(model, backend="jax", chains=2, cores=1, seed=0, draws=1, tune=0, max_treedepth=1,
                       progressbar=False, chain_method=chain_method,
                       init=[{"a": -3.0, "b": 30.0}, {"a": -3.0, "b": -30.0}])
        b = idata.posterior["b"].to_numpy()
        assert (b[0] > 20).all() and (b[1] < -20).all()


@pa.model
def two_scales():
    pa.sample("a", dist.Normal(0.0, 0.1))
    pa.sample("b", dist.Normal(0.0, 10.0))


@pytest.mark.parametrize("engine_name", ["jax", "python"])
def test_nutpie_warmup_finds_the_variances_in_both_engines(engine_name):
    from ppl_ad.infer.chain import ChainSettings
    from ppl_ad.infer.engine import run_one_chain

    ld = pa.logdensity(two_scales(), backend="jax", prepare=False)
    settings = ChainSettings(draws=20, tune=300, engine=engine_name)
    assert settings.metric_adaptation == "nutpie"
    result = run_one_chain(ld, 0, np.random.SeedSequence(4), settings, "jitter", None)
    # nutpie's estimator is exact for a diagonal Gaussian: the gradient is linear in the draws
    np.testing.assert_allclose(result.inverse_mass_matrix, [0.01, 100.0], rtol=1e-6)
    assert 0.5 < result.step_size < 2.5  # near the unit-scale optimum, not the smallest scale


def test_the_kernel_stops_where_stans_does():
    """Same target, metric and step size: ppl_ad's compiled NUTS kernel (Stan's criterion with
    its extra sub-tree checks) takes as many leapfrog steps as the Python kernel (Stan's)."""
    import jax
    import jax.numpy as jnp
    from blackjax.mcmc.hmc import HMCState

    from ppl_ad.infer.hmc import HMCState as PythonState
    from ppl_ad.infer.jax_nuts import build_kernel
    from ppl_ad.infer.metrics import gaussian_euclidean
    from ppl_ad.infer.nuts import build_kernel as python_kernel
    from ppl_ad.infer.uniforms import UniformStream

    # the 100-d Gaussian benchmark with nutpie's diagonal metric and its adapted step size,
    # where BlackJAX's own criterion stops at 20.6 steps on average and Stan's at 26.6
    L = get_scenario("gaussian_100d").model().data["L"]
    covariance = L @ L.T
    precision = np.linalg.inv(covariance)
    imm = np.sqrt(np.diag(covariance) / np.diag(precision))
    dim = imm.shape[0]
    rng = np.random.default_rng(0)

    def value_and_grad(x):
        return -0.5 * x @ precision @ x, -(precision @ x)

    step_size, n = 0.32, 300
    metric = gaussian_euclidean(imm)
    kernel = python_kernel(value_and_grad, metric, max_treedepth=10)
    start = L @ rng.standard_normal(dim)
    uniform, state, python_steps = UniformStream(rng), PythonState(start, *value_and_grad(start)), []
    for _ in range(n):
        state, info = kernel(state, step_size, metric.sample_momentum(rng), uniform)
        python_steps.append(info.num_integration_steps)

    precision_j = jnp.asarray(precision)
    logdensity = lambda x: -0.5 * x @ precision_j @ x  # noqa: E731
    step = jax.jit(lambda key, s: build_kernel()(key, s, logdensity, step_size, jnp.asarray(imm), 10))
    s, key, jax_steps = HMCState(jnp.asarray(start), *jax.value_and_grad(logdensity)(jnp.asarray(start))), jax.random.key(1), []
    for _ in range(n):
        key, sub = jax.random.split(key)
        s, info = step(sub, s)
        jax_steps.append(int(info.num_integration_steps))
    assert np.mean(jax_steps) == pytest.approx(np.mean(python_steps), rel=0.08)


def test_arviz_is_preloaded_once_per_run_after_the_model_is_traced(monkeypatch, tmp_path):
    """``pa.sample`` starts its background ArviZ import when XLA takes over (compiling, loading
    or running the program), not while Python traces the model; once per run, whichever of the
    three happens."""
    from ppl_ad.infer import program_cache

    monkeypatch.setenv("PPL_AD_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(jax_engine, "_PROGRAMS", {})
    events = []
    monkeypatch.setattr("ppl_ad.infer.sample.preload_arviz", lambda: events.append("preload"))
    fingerprint = program_cache.fingerprint
    monkeypatch.setattr(program_cache, "fingerprint", lambda *a, **k: events.append("trace") or fingerprint(*a, **k))
    model, _ = _conjugate_model()
    kw = dict(backend="jax", draws=20, tune=20, chains=2, seed=4, progressbar=False)
    # every run traces the log density once, for this process's key (a changed global must not get
    # the old program); the stored program's key is derived from that trace
    for expected in (["trace", "preload"],  # compiled (and stored)
                     ["trace", "preload"]):  # this process's program, reused
        events.clear()
        sample(model, **kw)
        assert events == expected
    monkeypatch.setattr(jax_engine, "_PROGRAMS", {})  # as a new process: loaded from disk
    events.clear()
    sample(model, **kw)
    assert events == ["trace", "preload"]
    assert len(list((tmp_path / "programs").glob("*.program"))) == 1  # found again under the derived key


def test_the_background_import_has_finished_when_sample_returns(monkeypatch):
    # catch_warnings in that thread is not thread-safe: it must never overlap the caller's own
    # warning filters (it once left "ignore every warning" behind, and lost the divergence warnings)
    import time as _time

    done = []
    model, _ = _conjugate_model()
    kw = dict(backend="jax", draws=20, tune=20, chains=2, seed=4, progressbar=False)
    sample(model, **kw)  # compiled: the next run takes a fraction of a second
    monkeypatch.setattr("ppl_ad.infer.sample.preload_arviz", lambda: _time.sleep(2.0) or done.append(True))
    sample(model, **kw)
    assert done == [True]


@pa.model
def rejects_subtrees(y):
    s = pa.sample("s", dist.HalfNormal(1.0))
    p = pa.sample("p", dist.Beta(2.0, 3.0))
    pa.sample("w", dist.Dirichlet(np.ones(3)))
    pa.observe("y", dist.Normal(p, s), y)


@pytest.mark.parametrize("engine", ["jax", "python"])
def test_tree_depth_counts_the_kept_doublings_as_stan(engine):
    # Stan's depth: a last doubling whose subtree turned or diverged inside is thrown away and not
    # counted, though its leapfrog steps are; a tree at the maximum depth kept all 2^depth - 1 steps
    with pytest.warns(pa.SamplingWarning, match="maximum tree depth"):
        stats = sample(rejects_subtrees(np.array([0.1, 0.5, 0.9, 0.3])), backend="jax", engine=engine, draws=300,
                       tune=300, chains=1, seed=1, max_treedepth=3, progressbar=False).sample_stats
    depth, steps = stats["tree_depth"].values.ravel(), stats["n_steps"].values.ravel()
    reached = stats["reached_max_treedepth"].values.ravel()
    assert np.all(steps >= 2 ** depth - 1) and np.all(steps <= 2 ** (depth + 1) - 1)
    assert np.array_equal(reached, depth >= 3)
    assert np.all(steps[reached] == 7)
    assert np.any(steps > 2 ** depth - 1)  # some last subtrees were thrown away: not counted in the depth


_SCALE = 1.0


@pa.model
def scaled_mean(y):
    mu = pa.sample("mu", dist.Normal(0.0, 10.0))
    pa.observe("y", dist.Normal(mu * _SCALE, 1.0), y)


def test_a_changed_global_gets_a_new_program_in_the_same_process(monkeypatch):
    # the in-process programs are keyed by the traced log density: the model function is the same
    # object after a global it reads changes, and reusing its program gave the old posterior
    y = np.full(20, 3.0)
    kw = dict(backend="jax", draws=200, tune=200, chains=1, seed=1, progressbar=False)
    first = sample(scaled_mean(y), **kw)
    assert abs(float(first.posterior["mu"].mean()) - 3.0 * 200 / 200.05) < 0.2
    again = sample(scaled_mean(y), **kw)  # nothing changed: the same program
    assert again.attrs["compile_time"] == 0.0
    monkeypatch.setattr(sys.modules[__name__], "_SCALE", 2.0)
    changed = sample(scaled_mean(y), **kw)
    assert changed.attrs["compile_time"] > 0.0
    assert abs(float(changed.posterior["mu"].mean()) - 1.5) < 0.1  # posterior mean 3 * 20 * 2 / (80 + 0.01)


def test_low_rank_iterations_compile_as_whole_as_diagonal_ones(tmp_path, monkeypatch):
    """The low-rank metric's estimate (LAPACK calls, sorts) runs between segments of iterations:
    XLA:CPU compiles every loop of the chunk program whole (one function, not a kernel per
    operation), as with the diagonal metric, except the loop over segments. With the estimate
    inside the iteration, the loop of iterations ran as kernels (24 against 12.7 µs per
    leapfrog step on the 100-d Gaussian)."""
    from ppl_ad.infer.lowering import small_loop_hoisting_available

    if not small_loop_hoisting_available():
        pytest.skip("this JAX cannot pass XLA the small-loop option")
    monkeypatch.setenv("PPL_AD_CACHE_DIR", str(tmp_path))  # compiled here, not loaded from disk
    model = get_scenario("eight_schools").model()
    hoisted = {}
    for metric in ("diag", "low_rank"):
        jax_engine._PROGRAMS.clear()
        pa.sample(model, backend="jax", chains=1, seed=1, draws=5, tune=30, progressbar=False, metric=metric)
        (program,) = jax_engine._PROGRAMS.values()
        text = program.as_text()
        loops = [line for line in text.splitlines() if " while(" in line]
        hoisted[metric] = (text.count('xla_cpu_small_call="true"'), sum(not line.lstrip().startswith("ROOT")
                                                                       for line in loops))
    assert hoisted["low_rank"] == (hoisted["diag"][0], 1)  # the same loops whole; the segments' loop not
    assert hoisted["diag"][1] == 0
