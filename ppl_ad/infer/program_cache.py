"""Compiled chunk programs kept on disk, found again without tracing them.

This module owns ``$PPL_AD_CACHE_DIR/programs`` (:func:`folder`, below
:func:`ppl_ad.config.cache_root`): executables of the compiled engine's chunk program
(:mod:`ppl_ad.infer.jax_engine`), serialised with :mod:`jax.experimental.serialize_executable`,
one file per key. A new process that finds its program there skips tracing, lowering and
compiling it; JAX's persistent compilation cache (``xla/``) only skips the compile, and tracing
and lowering a NUTS program takes about half a second.

**Key.** :func:`fingerprint` hashes what the program is a deterministic function of, without
tracing the program itself: the jaxpr of ``jax.value_and_grad`` of the log density
``fn(theta, data)`` (the only way the sampler evaluates it; unlike the jaxpr of ``fn``, it holds
the bodies of the derivative rules, ``custom_jvp``/``custom_vjp``, that ``fn``'s names only),
every constant, literal and array parameter in it (dtype,
shape, bytes), the shapes and dtypes of the data arguments, the caller's ``parts`` (sampler
settings, chunk size, the avals of the state: see :func:`describe`), the versions of Python,
jax, jaxlib, blackjax, numpy and ppl_ad, a digest of the source of ``ppl_ad.infer`` (so an edit
of the engine in a development install changes the key), the device (platform, kind,
platform version, count), the host CPU (XLA:CPU code uses its instruction set), the JAX
configuration and ``XLA_FLAGS``. The model's *source* is not hashed: an edited helper
function, global constant or data value baked in as a constant changes the jaxpr or its
constants. Whatever the text cannot show faithfully (a Python callback, a function object
in a parameter) gives no key (None): such models are not cached.

**Fresh executables only.** On CPU, an executable that JAX itself loaded from its persistent
cache serialises to bytes that load but fail when run (``Function ... not found``). So
programs to be stored are compiled by :func:`compile_fresh`, which keeps them out of JAX's
persistent cache (a key of their own, never written there) and checks that JAX did not
supply them from it; :func:`store` keeps only executables that :func:`compile_fresh`
compiled.

**Files.** ``<key>.program``: a magic line, a JSON header (format version, key, size and
SHA-256 of the payload), then the pickled ``(serialized, in_tree, out_tree, device_id)``.
Written atomically (temporary file in the same folder, ``fsync``, ``os.replace``), so a reader
sees a whole file or none. :func:`load` checks the header and the checksum; a corrupt,
truncated or foreign file is removed and counts as a miss. Loading unpickles and loads
native code: like JAX's own cache, the folder must only be writable by its user.

**Failures** never reach the user: :func:`fingerprint` and :func:`load` return None,
:func:`store` does nothing; the reason is logged at debug level on the ``ppl_ad`` logger.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import pickle
import platform
import re
import sys
import tempfile
import threading
import weakref
from pathlib import Path

import numpy as np

from ppl_ad.config import cache_root

__all__ = ["fingerprint", "describe", "compile_fresh", "stored", "load", "store", "evict", "clear", "folder", "FORMAT", "MAX_BYTES"]

logger = logging.getLogger("ppl_ad")

#: version of the file layout; files of another version are removed by :func:`load`
FORMAT = 1
_MAGIC = b"ppl_ad-program\n"
_SUFFIX = ".program"
_KEY = re.compile(r"[0-9a-f]{64}")
#: text that stands for something the jaxpr does not spell out (an object's address, a callback)
_OPAQUE = re.compile(r"0x[0-9a-fA-FX]{4,}|<function |<bound method | object at |callback=|\.\.\.")
#: JAX options that do not change a program (caches, logging, dumps, error messages)
_IGNORED_OPTIONS = re.compile(
    r"cache|log|dump|traceback|pprint|timeout|captured_constants|tracer_error|proxy_envs|source_url|debug_info|explain"
)
#: a compile option at its default value: gives the fresh compile its own key in JAX's cache
_FRESH_OPTIONS = {"xla_embed_ir_in_executable": False}


def folder() -> Path:
    """The folder of the stored programs: ``cache_root() / "programs"``."""
    return cache_root() / "programs"


# ---------------------------------------------------------------------------------------- key


def fingerprint(fn, dim: int, data, parts) -> str | None:
    """The key of a program built from the log density ``fn``, or None when it cannot have one.

    Parameters
    ----------
    fn : callable
        ``fn(theta, data) -> scalar``, traceable by JAX (``LogDensity.traceable()``).
    dim : int
        Length of ``theta`` (float64).
    data : dict
        The data arguments of ``fn`` (NumPy or JAX arrays); only their shapes and dtypes are
        used, their values are arguments of the program.
    parts : tuple
        Everything else the program depends on, as plain values (None, bool, int, float,
        str, bytes, NumPy scalars and dtypes, and tuples, lists and dicts of them): sampler
        settings, chunk size, number of chains, :func:`describe` of the state.

    Returns
    -------
    str or None
        A SHA-256 hex digest; None when tracing fails, ``parts`` holds another type, or the
        jaxpr holds something its text does not spell out (a callback, a function object).
    """
    try:
        digest = hashlib.sha256()
        for label, text in _jaxpr_parts(fn, dim, data, digest):
            _add(digest, label, text)
        _add(digest, "data", _plain_text(describe(data)))
        _add(digest, "parts", _plain_text(parts))
        _add(digest, "environment", _environment())
        return digest.hexdigest()
    except Exception as error:  # noqa: BLE001 - no key means no caching, never an error
        logger.debug("program cache: no key (%s: %s)", type(error).__name__, error)
        return None


def derived(base: str, parts) -> str | None:
    """The key of a program built from the same log density as the key ``base`` (a
    :func:`fingerprint`, which covers the density, its data's shapes and the environment) and
    from ``parts``, without tracing the density again; None when ``parts`` holds another type
    than :func:`fingerprint` takes."""
    try:
        digest = hashlib.sha256()
        _add(digest, "derived from", base)
        _add(digest, "parts", _plain_text(parts))
        return digest.hexdigest()
    except Exception as error:  # noqa: BLE001 - no key means no caching, never an error
        logger.debug("program cache: no key (%s: %s)", type(error).__name__, error)
        return None


def describe(tree) -> tuple:
    """Plain values for a pytree of arrays: its structure and each leaf's shape, dtype, weak type.

    For the ``parts`` of :func:`fingerprint` (the state and flags a program is lowered with).
    """
    import jax

    leaves, treedef = jax.tree.flatten(tree)
    avals = tuple(jax.typeof(leaf) for leaf in leaves)
    return str(treedef), tuple((tuple(a.shape), str(a.dtype), bool(getattr(a, "weak_type", False))) for a in avals)


def _jaxpr_parts(fn, dim, data, digest):
    """Yield ``(label, text)`` of the jaxpr of ``fn``'s value and gradient; hash its
    constants, literals and array parameters into ``digest`` on the way."""
    import jax

    theta = jax.ShapeDtypeStruct((int(dim),), np.float64)
    avals = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(jax.typeof(leaf).shape, jax.typeof(leaf).dtype), data)
    # The sampler evaluates the log density only through its value and gradient, and that
    # jaxpr holds the primal computation and the derivative rules' bodies in full.
    closed = jax.make_jaxpr(jax.value_and_grad(fn))(theta, avals)
    text = closed.jaxpr.pretty_print(source_info=False, name_stack=False, print_effects=True, use_color=False)
    opaque = _OPAQUE.search(text)
    if opaque:
        raise TypeError(f"the jaxpr holds {opaque.group(0)!r}, which its text does not spell out")
    yield "value_and_grad", text
    _add_values(digest, closed)


def _add_values(digest, closed) -> None:
    """Hash the constants of ``closed``, then every literal, array parameter and nested
    constant of its equations, in order (the text shows where they go, not all their bytes)."""
    for const in closed.consts:
        _add_array(digest, const)
    _add_jaxpr_values(digest, closed.jaxpr)


def _add_jaxpr_values(digest, jaxpr) -> None:
    # by their attributes, not jax.extend.core's classes: importing jax.extend costs 0.25 s
    for eqn in jaxpr.eqns:
        for var in eqn.invars:
            if type(var).__name__ == "Literal":
                _add_array(digest, var.val)
        for name in sorted(eqn.params):
            for item in _flatten_param(eqn.params[name]):
                if hasattr(item, "jaxpr") and hasattr(item, "consts"):  # a ClosedJaxpr
                    _add_values(digest, item)
                elif hasattr(item, "eqns") and hasattr(item, "invars"):  # a Jaxpr
                    _add_jaxpr_values(digest, item)
                elif _is_array(item):
                    _add_array(digest, item)


def _flatten_param(value):
    if isinstance(value, (tuple, list)):
        for item in value:
            yield from _flatten_param(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _flatten_param(item)
    else:
        yield value


def _is_array(value) -> bool:
    return isinstance(value, np.ndarray) or type(value).__module__.startswith("jax") and hasattr(value, "__array__")


def _add(digest, label: str, text: str | bytes) -> None:
    """Hash ``label`` and ``text``, each preceded by its length (no two sequences collide)."""
    for part in (label.encode(), text if isinstance(text, bytes) else text.encode()):
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)


def _add_array(digest, value) -> None:
    """Hash an array's dtype, shape and bytes; TypeError for object or structured dtypes."""
    array = np.asarray(value)
    if array.dtype.hasobject or array.dtype.fields is not None or array.dtype.kind not in "biufcV":
        raise TypeError(f"a constant of dtype {array.dtype} cannot be hashed by value")
    _add(digest, "array", f"{array.dtype.str}{array.dtype.name}{array.shape}")
    digest.update(np.ascontiguousarray(array).tobytes())


def _plain_text(value) -> str:
    """:func:`_canonical` of ``value``; TypeError when it shows an object's address."""
    text = _canonical(value)
    opaque = _OPAQUE.search(text)
    if opaque:
        raise TypeError(f"{opaque.group(0)!r} in the parts of the key")
    return text


def _canonical(value) -> str:
    """An exact, type-tagged text of a plain value; TypeError for anything else."""
    if isinstance(value, np.generic):  # before float: numpy.float64 is a float
        return f"np.{value.dtype.str}:{np.asarray(value).tobytes().hex()}"
    if value is None or isinstance(value, (bool, int, str, bytes)):
        return f"{type(value).__name__}:{value!r}"
    if isinstance(value, float):
        return f"float:{value.hex()}"
    if isinstance(value, np.dtype):
        return f"dtype:{value.str}:{value.name}"
    if isinstance(value, (tuple, list)):
        fields = getattr(value, "_fields", None)
        head = f"{type(value).__qualname__}{fields}" if fields else type(value).__name__
        return f"{head}[" + ",".join(_canonical(v) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted((_canonical(k), _canonical(v)) for k, v in value.items())
        return "dict{" + ",".join(f"{k}={v}" for k, v in items) + "}"
    raise TypeError(f"{type(value).__name__} is not a plain value")


def _environment() -> str:
    """Device, JAX options and ``XLA_FLAGS`` now, with :func:`_installation`."""
    import jax

    device = jax.devices()[0]
    options = {}
    for name, value in sorted(jax.config.values.items()):
        if not _IGNORED_OPTIONS.search(name):
            text = repr(value)
            options[name] = type(value).__qualname__ if _OPAQUE.search(text) else text
    return _canonical((
        device.platform, device.device_kind, getattr(device.client, "platform_version", ""), jax.device_count(),
        bool(jax.config.jax_enable_x64), options,
        os.environ.get("XLA_FLAGS", ""), os.environ.get("LIBTPU_INIT_ARGS", ""), _installation(),
    ))


@functools.lru_cache(maxsize=1)
def _installation() -> tuple:
    """Versions, the host CPU and a digest of ``ppl_ad.infer``'s source (fixed in a process)."""
    from importlib.metadata import version

    import jax
    import jaxlib

    from ppl_ad._version import __version__

    return (sys.version, jax.__version__, jaxlib.__version__, version("blackjax"), np.__version__, __version__,
            platform.machine(), _host_cpu(), _source_digest())


def _host_cpu() -> str:
    """The CPU model and its instruction-set flags (Linux), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            info = handle.read().split("\n\n", 1)[0]
    except OSError:
        return platform.processor()
    wanted = ("vendor_id", "model name", "flags", "Features", "CPU implementer", "CPU part")
    return "\n".join(line for line in info.splitlines() if line.split(":", 1)[0].strip() in wanted)


def _source_digest() -> str:
    """SHA-256 of the ``.py`` files of ``ppl_ad.infer`` (the engine that builds the program)."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        _add(digest, path.relative_to(root).as_posix(), path.read_bytes())
    return digest.hexdigest()


# ------------------------------------------------------------------------------------ compile

#: executables that :func:`compile_fresh` compiled without JAX's persistent cache
_FRESH = weakref.WeakSet()
_COMPILE_LOCK = threading.Lock()
_watch = threading.local()
_listening = []


def compile_fresh(lowered, compiler_options=None):
    """Compile ``lowered`` (a ``jax.stages.Lowered``) into an executable :func:`store` keeps,
    with XLA's ``compiler_options`` (a dict, as ``Lowered.compile`` takes them) if given.

    The compile gets its own key in JAX's persistent cache (one compile option set to its
    default value) and, while it runs, JAX writes no entries there, so JAX neither supplies
    this executable from its cache nor keeps it there. Should JAX still report a hit in its
    cache, the executable is used but not stored.

    Returns
    -------
    jax.stages.Compiled
    """
    import jax

    _listen_for_cache_hits()
    with _COMPILE_LOCK:
        previous = jax.config.jax_persistent_cache_min_compile_time_secs
        jax.config.update("jax_persistent_cache_min_compile_time_secs", math.inf)
        _watch.active, _watch.hit = True, False
        try:
            compiled = lowered.compile(compiler_options={**(compiler_options or {}), **_FRESH_OPTIONS})
        finally:
            _watch.active = False
            jax.config.update("jax_persistent_cache_min_compile_time_secs", previous)
    if _watch.hit:
        logger.debug("program cache: JAX's persistent cache supplied the program; it will not be stored")
    else:
        _FRESH.add(compiled)
    return compiled


def _listen_for_cache_hits() -> None:
    import jax

    with _COMPILE_LOCK:
        if not _listening:
            jax.monitoring.register_event_listener(_on_event)
            _listening.append(True)


def _on_event(event: str, **kwargs) -> None:
    if event == "/jax/compilation_cache/cache_hits" and getattr(_watch, "active", False):
        _watch.hit = True


# ------------------------------------------------------------------------------------- files


def _path(key) -> Path | None:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        return None
    return folder() / f"{key}{_SUFFIX}"


def stored(key) -> bool:
    """Whether a program is stored under ``key`` (:func:`load` may still find it unusable)."""
    path = _path(key)
    return path is not None and path.is_file()


def load(key: str):
    """The executable stored under ``key``, or None (not stored, or unusable: then removed).

    Returns
    -------
    jax.stages.Compiled or None
        Called like the executable that was stored.
    """
    path = _path(key)
    if path is None:
        return None
    try:
        blob = path.read_bytes()
    except OSError as error:
        if not isinstance(error, FileNotFoundError):
            logger.debug("program cache: cannot read %s: %s", path, error)
        return None
    try:
        _initialize_kernels()
    except Exception as error:  # noqa: BLE001 - without them a loaded program could crash: no cache
        logger.debug("program cache: not loading (%s: %s)", type(error).__name__, error)
        return None
    try:
        compiled = _decode(key, blob)
    except Exception as error:  # noqa: BLE001 - a bad file is a miss, never an error
        logger.debug("program cache: removing unusable %s (%s: %s)", path, type(error).__name__, error)
        _discard(path)
        return None
    try:
        os.utime(path)  # recently used: the last to be evicted
    except OSError:
        pass
    return compiled


def _initialize_kernels() -> None:
    """Initialise the custom-call kernels that JAX sets up only while it lowers a program that
    uses them: on CPU, LAPACK (Cholesky, triangular solves, ...). A program loaded from disk
    is never lowered in this process, and called them uninitialised: a segmentation fault
    (seen on the 100-d Gaussian, whose log density solves with its Cholesky factor)."""
    from jax._src.lax import linalg

    linalg.initialize_lapack()


def store(key: str, compiled) -> None:
    """Keep ``compiled`` (from :func:`compile_fresh`) under ``key``; never raises.

    Executables that :func:`compile_fresh` did not compile, or that run on more than one
    device, are not stored; nor is anything when the folder cannot be written (the reason
    goes to the debug log).
    """
    path = _path(key)
    try:
        if path is None:
            raise ValueError(f"not a key: {key!r}")
        if compiled not in _FRESH:
            raise ValueError("not compiled by compile_fresh (an executable from JAX's cache cannot be re-serialised)")
        _write_atomically(path, _encode(key, compiled))
        evict(MAX_BYTES)
    except Exception as error:  # noqa: BLE001 - storing is best effort
        logger.debug("program cache: not storing %s (%s: %s)", key, type(error).__name__, error)


#: the folder's size limit: :func:`store` removes the least recently used programs beyond it
MAX_BYTES = 2 * 1024**3


def evict(max_bytes: int) -> int:
    """Remove the least recently used programs (by modification time, which :func:`load`
    refreshes) until the folder holds at most ``max_bytes``; the number removed."""
    files = []
    for path in folder().glob(f"*{_SUFFIX}"):
        try:
            stat = path.stat()
        except OSError:
            continue
        files.append((stat.st_mtime, stat.st_size, path))
    total, removed = sum(size for _, size, _ in files), 0
    for _, size, path in sorted(files):
        if total <= max_bytes:
            break
        _discard(path)
        total -= size
        removed += 1
    return removed


def clear() -> int:
    """Remove every file of :func:`folder`; the number removed.

    Raises
    ------
    OSError
        A file could not be removed (as ``ppl-ad cache --clear`` should then say).
    """
    root = folder()
    if not root.is_dir():
        return 0
    count = 0
    for path in root.iterdir():
        if path.is_file() or path.is_symlink():
            path.unlink(missing_ok=True)
            count += 1
    return count


def _encode(key: str, compiled) -> bytes:
    from jax.experimental.serialize_executable import serialize

    serialized, in_tree, out_tree = serialize(compiled)
    payload = pickle.dumps((serialized, in_tree, out_tree, _device_id(compiled)), protocol=pickle.HIGHEST_PROTOCOL)
    header = {"format": FORMAT, "key": key, "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    return _MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + payload


def _decode(key: str, blob: bytes):
    import jax
    from jax.experimental.serialize_executable import deserialize_and_load

    if not blob.startswith(_MAGIC):
        raise ValueError("not a program file")
    line, _, payload = blob[len(_MAGIC):].partition(b"\n")
    header = json.loads(line)
    if header.get("format") != FORMAT or header.get("key") != key:
        raise ValueError(f"format {header.get('format')} (expected {FORMAT}) or another key")
    if header.get("size") != len(payload) or header.get("sha256") != hashlib.sha256(payload).hexdigest():
        raise ValueError("truncated or corrupt payload")
    serialized, in_tree, out_tree, device_id = pickle.loads(payload)
    devices = [d for d in jax.devices() if d.id == device_id]
    if not devices:
        raise ValueError(f"no device {device_id}")
    return deserialize_and_load(serialized, in_tree, out_tree, execution_devices=devices)


def _device_id(compiled) -> int:
    """The one device ``compiled`` runs on; ValueError for a program on several devices."""
    import jax

    shardings = jax.tree.leaves((compiled.input_shardings, compiled.output_shardings))
    devices = {device for sharding in shardings for device in sharding.device_set}
    if len(devices) != 1:
        raise ValueError(f"the program runs on {len(devices)} devices (only one-device programs are stored)")
    return next(iter(devices)).id


def _write_atomically(path: Path, blob: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=".tmp-", suffix=_SUFFIX, delete=False)
    try:
        with handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        _discard(Path(handle.name))
        raise


def _discard(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        logger.debug("program cache: cannot remove %s: %s", path, error)
