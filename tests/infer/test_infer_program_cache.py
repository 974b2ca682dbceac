"""Tests of the on-disk cache of compiled programs (ppl_ad.infer.program_cache)."""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ppl_ad.infer import program_cache
from ppl_ad.logdensity import logdensity
from ppl_ad.testing.scenarios import EIGHT_SCHOOLS_SIGMA, EIGHT_SCHOOLS_Y, eight_schools

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

#: prints the fingerprint of the eight-schools scenario
FINGERPRINT_SCRIPT = """
from ppl_ad.infer import program_cache
from ppl_ad.logdensity import logdensity
from ppl_ad.testing.scenarios import get_scenario

ld = logdensity(get_scenario("eight_schools").model(), backend="jax")
fn, data = ld.traceable()
print(program_cache.fingerprint(fn, ld.dimension, data, ("chunk", 50, 4)))
"""

#: a small program: gradient steps on a Gaussian log density in a scan (imported by the test
#: and run by a new process, which loads the program by its key and prints its outputs)
PROGRAM_SCRIPT = """
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from ppl_ad.infer import program_cache

jax.config.update("jax_enable_x64", True)


def fn(theta, data):
    return -0.5 * jnp.sum(((theta - data["mean"]) / data["scale"]) ** 2)


def steps(theta, data):
    def body(t, _):
        value, grad = jax.value_and_grad(fn)(t, data)
        return t + 0.1 * grad, value

    return jax.lax.scan(body, theta, None, length=7)


def arguments():
    return jnp.arange(3.0), {"mean": jnp.asarray([1.0, -2.0, 0.5]), "scale": jnp.asarray([1.0, 2.0, 3.0])}


def key():
    return program_cache.fingerprint(fn, 3, arguments()[1], ("steps", 7, program_cache.describe(arguments())))


def outputs(compiled):
    return [np.asarray(x).tolist() for x in jax.tree.leaves(compiled(*arguments()))]


def warm_then_store():
    # compile with JAX's persistent cache (a hit when it holds the program), then store a fresh
    # compile; print the number of hits in JAX's cache and the key
    from ppl_ad.config import enable_compilation_cache

    enable_compilation_cache()
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    hits = []
    jax.monitoring.register_event_listener(lambda event, **kw: hits.append(event) if "cache_hits" in event else None)
    jax.jit(steps).lower(*arguments()).compile()
    program_cache.store(key(), program_cache.compile_fresh(jax.jit(steps).lower(*arguments())))
    print(json.dumps([len(hits), key()]))


if __name__ == "__main__":
    if sys.argv[1] == "warm-then-store":
        warm_then_store()
    else:
        compiled = program_cache.load(sys.argv[1])
        print(json.dumps(None if compiled is None else outputs(compiled)))
"""

MODULE_TEMPLATE = """
import ppl_ad as pa
from ppl_ad import dist

SCALE = {scale}


def helper(mu, tau):
    return {body}


@pa.model
def model(y, sigma):
    mu = pa.sample("mu", dist.Normal(0.0, SCALE))
    tau = pa.sample("tau", dist.HalfNormal(1.0))
    pa.observe("y", dist.Normal(helper(mu, tau), sigma), y)
"""


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A cache folder of this test (``PPL_AD_CACHE_DIR``, as tests/conftest.py sets it per session)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("PPL_AD_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def program(tmp_path, monkeypatch):
    """The module of PROGRAM_SCRIPT, importable here and runnable as a script in a new process."""
    (tmp_path / "cached_program.py").write_text(PROGRAM_SCRIPT)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    module = importlib.import_module("cached_program")
    yield module
    sys.modules.pop("cached_program", None)


def _key_of(model, parts=("chunk", 50, 4)):
    ld = logdensity(model, backend="jax")
    fn, data = ld.traceable()
    return program_cache.fingerprint(fn, ld.dimension, data, parts)


def _fresh(module):
    args = module.arguments()
    return program_cache.compile_fresh(jax.jit(module.steps).lower(*args)), args


def _run(args, **kwargs):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, check=True, **kwargs)


# ------------------------------------------------------------------------------------------ key


def test_fingerprint_is_the_same_in_two_fresh_processes(tmp_path):
    script = tmp_path / "fingerprint.py"
    script.write_text(FINGERPRINT_SCRIPT)
    processes = [
        subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONHASHSEED": seed})
        for seed in ("1", "2")
    ]
    keys = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        keys.append(out.strip().splitlines()[-1])
    assert keys[0] == keys[1]
    assert len(keys[0]) == 64 and int(keys[0], 16) >= 0


def test_fingerprint_is_a_function_of_its_inputs():
    model = eight_schools(EIGHT_SCHOOLS_Y, EIGHT_SCHOOLS_SIGMA)
    assert _key_of(model) == _key_of(eight_schools(EIGHT_SCHOOLS_Y.copy(), EIGHT_SCHOOLS_SIGMA.copy())) is not None


def _reload_model(path, **fields):
    path.write_text(MODULE_TEMPLATE.format(**fields))
    module = importlib.reload(sys.modules["cache_user_model"]) if "cache_user_model" in sys.modules else (
        importlib.import_module("cache_user_model"))
    return module.model(EIGHT_SCHOOLS_Y, EIGHT_SCHOOLS_SIGMA)


@pytest.fixture
def user_model(tmp_path, monkeypatch):
    """Write, import and re-import a model module as a user editing it would."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    yield lambda **fields: _reload_model(tmp_path / "cache_user_model.py", **fields)
    sys.modules.pop("cache_user_model", None)


def test_fingerprint_changes_with_a_helper_function_body(user_model):
    before = _key_of(user_model(scale="5.0", body="mu + tau"))
    after = _key_of(user_model(scale="5.0", body="mu - tau"))
    assert None not in (before, after) and before != after
    assert _key_of(user_model(scale="5.0", body="mu + tau")) == before


def test_fingerprint_changes_with_a_module_constant(user_model):
    before = _key_of(user_model(scale="5.0", body="mu + tau"))
    after = _key_of(user_model(scale="5.000001", body="mu + tau"))
    assert None not in (before, after) and before != after


def test_fingerprint_changes_with_data_baked_in_as_constants():
    y = EIGHT_SCHOOLS_Y.copy()
    before = _key_of(eight_schools(y, EIGHT_SCHOOLS_SIGMA))
    y[3] += 1e-12
    after = _key_of(eight_schools(y, EIGHT_SCHOOLS_SIGMA))
    assert None not in (before, after) and before != after


def test_fingerprint_changes_with_data_shapes():
    eight = _key_of(eight_schools(EIGHT_SCHOOLS_Y, EIGHT_SCHOOLS_SIGMA))
    nine = _key_of(eight_schools(np.append(EIGHT_SCHOOLS_Y, 3.0), np.append(EIGHT_SCHOOLS_SIGMA, 10.0)))
    assert None not in (eight, nine) and eight != nine

    def fn(theta, data):  # data as arguments: their values are not part of the key, their avals are
        return jnp.sum(theta) + jnp.sum(data["x"])

    keys = [program_cache.fingerprint(fn, 3, {"x": x}, ()) for x in (
        np.zeros(4), np.ones(4), np.zeros(5), np.zeros(4, np.float32), np.zeros((4, 1)),
    )]
    assert None not in keys and keys[0] == keys[1] and len(set(keys[1:])) == 4


def test_fingerprint_changes_with_parts():
    model = eight_schools(EIGHT_SCHOOLS_Y, EIGHT_SCHOOLS_SIGMA)
    ld = logdensity(model, backend="jax")
    fn, data = ld.traceable()
    parts = [("chunk", 50, 4), ("chunk", 50, 1), ("chunk", 25, 4), ("chunk", 50.0, 4), ("chunk", 50, 4, True),
             ("chunk", 50, (4,)), {"chunk": 50, "chains": 4}, (np.float32(0.8),), (np.float64(0.8),), (0.8,)]
    keys = [program_cache.fingerprint(fn, ld.dimension, data, p) for p in parts]
    assert None not in keys and len(set(keys)) == len(parts)
    assert program_cache.fingerprint(fn, ld.dimension, data, {"chains": 4, "chunk": 50}) == keys[6]


def test_describe_gives_plain_values_with_weak_types():
    strong, weak = program_cache.describe(jnp.asarray(1.0, jnp.float32)), program_cache.describe(1.0)
    assert strong != weak and strong[1] == (((), "float32", False),)
    assert program_cache.describe({"a": np.zeros((2, 3), np.int8)})[1] == (((2, 3), "int8", False),)


def test_no_fingerprint_for_what_cannot_be_hashed():
    def fn(theta, data):
        return jnp.sum(theta)

    def callback(theta, data):
        out = jax.ShapeDtypeStruct((), jnp.float64)
        return jnp.sum(theta) + jax.pure_callback(lambda x: np.float64(1.0), out, theta[0])

    def failing(theta, data):
        raise RuntimeError("not traceable")

    assert program_cache.fingerprint(fn, 2, {}, (object(),)) is None
    assert program_cache.fingerprint(callback, 2, {}, ()) is None  # a Python callback's body is not in the jaxpr
    assert program_cache.fingerprint(failing, 2, {}, ()) is None
    assert program_cache.fingerprint(fn, 2, {}, ()) is not None


# ---------------------------------------------------------------------------------- store/load


def test_store_and_load_give_the_same_outputs(cache_dir, program):
    compiled, args = _fresh(program)
    key = program.key()
    program_cache.store(key, compiled)
    assert [p.name for p in (cache_dir / "programs").iterdir()] == [f"{key}.program"]
    loaded = program_cache.load(key)
    assert loaded is not None
    for a, b in zip(jax.tree.leaves(compiled(*args)), jax.tree.leaves(loaded(*args)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_new_process_loads_and_runs_the_stored_program(cache_dir, program, tmp_path):
    compiled, args = _fresh(program)
    key = program.key()
    program_cache.store(key, compiled)
    done = _run([str(tmp_path / "cached_program.py"), key], env={**os.environ})
    outputs = json.loads(done.stdout.strip().splitlines()[-1])
    assert outputs is not None, done.stderr
    expected = [np.asarray(x) for x in jax.tree.leaves(compiled(*args))]
    for a, b in zip(expected, outputs, strict=True):
        np.testing.assert_array_equal(a, np.asarray(b))


def test_a_program_stored_while_jax_cache_holds_it_runs_in_a_new_process(cache_dir, program, tmp_path):
    # an executable that JAX loaded from its persistent cache serialises to bytes that fail to run
    # (XLA:CPU); compile_fresh must not take the program from there
    script = str(tmp_path / "cached_program.py")
    first = json.loads(_run([script, "warm-then-store"]).stdout.strip().splitlines()[-1])
    assert program_cache.clear() == 1
    hits, key = json.loads(_run([script, "warm-then-store"]).stdout.strip().splitlines()[-1])
    assert first[0] == 0 and hits >= 1 and key == first[1]
    outputs = json.loads(_run([script, key]).stdout.strip().splitlines()[-1])
    assert outputs is not None
    expected = jax.tree.leaves(jax.jit(program.steps)(*program.arguments()))
    for a, b in zip(expected, outputs, strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-12)


class _HitLowered:
    """A ``Lowered`` whose compile reports a hit in JAX's persistent cache."""

    def __init__(self, lowered):
        self.lowered = lowered

    def compile(self, **kwargs):
        jax.monitoring.record_event("/jax/compilation_cache/cache_hits")
        return self.lowered.compile(**kwargs)


def test_a_program_from_jax_cache_is_not_stored(cache_dir, program):
    compiled = program_cache.compile_fresh(_HitLowered(jax.jit(program.steps).lower(*program.arguments())))
    program_cache.store(program.key(), compiled)
    assert program_cache.load(program.key()) is None


def test_only_freshly_compiled_programs_are_stored(cache_dir, program):
    args = program.arguments()
    plain = jax.jit(program.steps).lower(*args).compile()  # may come from JAX's persistent cache
    program_cache.store(program.key(), plain)
    assert program_cache.load(program.key()) is None
    assert not (cache_dir / "programs").exists() or not any((cache_dir / "programs").iterdir())


def test_missing_and_invalid_keys_give_none(cache_dir):
    assert program_cache.load("0" * 64) is None
    assert program_cache.load("../../etc/passwd") is None
    assert program_cache.load(None) is None


def _damage_truncate(blob):
    return blob[: len(blob) // 2]


def _damage_flip(blob):
    flipped = bytearray(blob)
    flipped[-100] ^= 0xFF
    return bytes(flipped)


def _damage_format(blob):
    return blob.replace(b'"format": 1', b'"format": 9', 1)


@pytest.mark.parametrize("damage", [
    _damage_truncate, _damage_flip, _damage_format, lambda blob: b"", lambda blob: b"not a program\n",
    lambda blob: blob[:20],
], ids=["truncated", "flipped-byte", "other-format", "empty", "garbage", "cut-header"])
def test_a_damaged_file_gives_none_and_is_removed(cache_dir, program, damage):
    compiled, _ = _fresh(program)
    key = program.key()
    program_cache.store(key, compiled)
    path = cache_dir / "programs" / f"{key}.program"
    path.write_bytes(damage(path.read_bytes()))
    assert program_cache.load(key) is None
    assert not path.exists()


def test_a_file_under_another_key_is_not_used(cache_dir, program):
    compiled, _ = _fresh(program)
    key = program.key()
    program_cache.store(key, compiled)
    other = "f" * 64 if key != "f" * 64 else "e" * 64
    source, target = (cache_dir / "programs" / f"{k}.program" for k in (key, other))
    target.write_bytes(source.read_bytes())
    assert program_cache.load(other) is None
    assert not target.exists() and source.exists()


def test_an_unwritable_cache_folder_does_not_raise(tmp_path, monkeypatch, program, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("PPL_AD_CACHE_DIR", str(blocker))
    compiled, _ = _fresh(program)
    caplog.set_level(logging.DEBUG, logger="ppl_ad")
    program_cache.store(program.key(), compiled)
    assert "not storing" in caplog.text
    assert program_cache.load(program.key()) is None
    assert program_cache.clear() == 0


def test_clear_removes_every_file(cache_dir, program):
    compiled, _ = _fresh(program)
    keys = [program.key(), "a" * 64]
    for key in keys:
        program_cache.store(key, compiled)
    (cache_dir / "programs" / ".tmp-left-over.program").write_bytes(b"")
    assert program_cache.clear() == 3
    assert all(program_cache.load(key) is None for key in keys)
    assert program_cache.clear() == 0


def test_importing_the_module_does_not_import_jax():
    code = textwrap.dedent("""
        import sys
        import ppl_ad.infer.program_cache
        print("jax" in sys.modules)
    """)
    assert _run(["-c", code]).stdout.strip() == "False"


def test_eviction_removes_the_least_recently_used(cache_dir, program):
    import os
    import time

    compiled, _ = _fresh(program)
    keys = ["a" * 64, "b" * 64, "c" * 64]
    for age, key in enumerate(keys):
        program_cache.store(key, compiled)
        path = cache_dir / "programs" / f"{key}.program"
        os.utime(path, (time.time() - 100 + age, time.time() - 100 + age))  # a oldest, c newest
    assert program_cache.load("a" * 64) is not None  # a use makes it the most recent
    size = (cache_dir / "programs" / f"{keys[0]}.program").stat().st_size
    assert program_cache.evict(2 * size) == 1
    assert program_cache.load("b" * 64) is None  # b was the least recently used
    assert program_cache.load("a" * 64) is not None and program_cache.load("c" * 64) is not None
