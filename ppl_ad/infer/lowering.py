"""How the compiled engine's program is lowered and compiled on the CPU.

This module owns how :mod:`ppl_ad.infer.jax_engine` lowers and compiles its chunk program (and
only that program): :func:`unrolled_threefry` while it lowers it, :func:`hoisted_small_loops`
while XLA compiles it, with the options of :func:`compile_options`. The two contexts change a
private part of JAX for the calling thread and put it back on exit; when that part is not where
this module expects it (another JAX version), they do nothing and the program is only slower. ``tests/infer/test_infer_lowering.py`` fails when that happens.

**Threefry without a loop.** On the CPU, JAX lowers every Threefry-2x32 hash (each
``jax.random.split``, ``fold_in``, ``bernoulli``, ``normal``...) to a ``while`` loop of five
iterations, which keeps the programs small for XLA to compile. On other platforms it writes the
twenty rounds out. A NUTS transition calls the hash a few times per leapfrog step (BlackJAX's
progressive sampling splits a key and draws a uniform at every step), and on the CPU each loop
iteration is a separate dispatch of the runtime. On small models that costs as much as the
gradient: on eight schools (d = 10) the rolled hash made a leapfrog step of BlackJAX's kernel
under ``lax.scan`` about 1.4x slower (CPU time, interleaved in one process). Inside
:func:`unrolled_threefry` the CPU uses JAX's own unrolled lowering (the one the GPU uses). It is
the same hash: draws are bit for bit the same.

**Small loops compiled whole.** XLA:CPU runs a program as a sequence of *thunks*, one per
kernel, with a dispatch between them; every scalar operation of the sampler's bookkeeping is a
kernel of its own, compiled separately (about 15 ms of CPU each) and dispatched separately at
run time. XLA's ``SmallWhileLoopHoistingPass`` instead compiles a ``while`` loop whose cost
analysis reads fewer bytes than ``xla_cpu_small_while_loop_byte_threshold`` into one function.
Its default threshold only catches tiny loops; :func:`hoisted_small_loops` raises it to
:data:`SMALL_LOOP_BYTES` for the chunk program. XLA keeps loops with custom calls (LAPACK) or
scatters of computed values (the gradient of an indexing) as thunks, and large data make the cost
exceed the threshold, so it takes effect on small models, where the runtime's dispatch costs most: on eight schools the whole sampler becomes one function and a
gradient evaluation, with the sampler's work around it, costs about a third of what it did
(6.5-7.5 against 1.9-2.5 µs, 4 chains x 2000 iterations on a loaded 2-core machine). The
option lives in a map of XLA's ``DebugOptions`` that ``compiler_options`` cannot set, so the
context adds it to the serialised ``CompileOptions`` JAX hands to the backend, copies back the
build options the round trip drops, and compiles with JAX's options unchanged if any visible
option differs afterwards. Draws stay deterministic (same seed, same program, same draws) but
differ in the last bits from the program compiled as thunks: XLA fuses the arithmetic
differently.

**LLVM at -O1 on the CPU.** XLA:CPU hands the code it generates to LLVM at ``-O2`` by default
(``xla_backend_optimization_level``), and on the CPU LLVM takes most of a cold run: 4.4 of the
6.6 s of a 4 x (500 + 500) run of the 100-d Gaussian. :func:`compile_options` asks for ``-O1``.
The sampler's arithmetic is scalar bookkeeping and small vectors, and the heavy operations
(matrix products, large reductions) run in XLA's runtime libraries, which the level does not
touch: measured per leapfrog step (4 x (500 + 4000), one process per run, three runs each,
interleaved) eight schools, the 100-d Gaussian and hierarchical Poisson ran as fast at
``-O1`` (3.1-3.3 against 3.3-3.6 µs on the Gaussian, 36.2-36.5 against 35.6-36.4 µs on
hierarchical Poisson), while XLA compiled the Gaussian's program in 3.1 instead of 4.5 s and
the low-rank one in 4.4 instead of 6.1 s. (At ``-O0`` the program compiles in 1.7 s but a step
takes five times as long.) Like the small-loop rule, the level changes how the arithmetic is
fused and so the draws' last bits, not their distribution.

References
----------
Salmon, J. K., Moraes, M. A., Dror, R. O. & Shaw, D. E. (2011). Parallel random numbers: as easy
as 1, 2, 3. *SC '11* (the Threefry hash).

OpenXLA, ``xla/service/cpu/small_while_loop_hoisting_pass.cc`` (the pass and its threshold).
"""

from __future__ import annotations

import contextlib
import threading

__all__ = ["unrolled_threefry", "threefry_unrolled_available", "hoisted_small_loops", "small_loop_hoisting_available",
           "SMALL_LOOP_BYTES", "CPU_OPTIMIZATION_LEVEL", "compile_options"]

_LOCK = threading.RLock()  # one lowering or compile at a time under a changed rule (re-entrant)

#: bytes a ``while`` loop may read (XLA's cost analysis) and still be compiled as one function
SMALL_LOOP_BYTES = 2_000_000_000
_THRESHOLD_OPTION = "xla_cpu_small_while_loop_byte_threshold"
#: LLVM's optimisation level for the chunk program on the CPU (XLA's default is 2)
CPU_OPTIMIZATION_LEVEL = 1
_hoisting = threading.local()  # .extra: the CompileOptions bytes to merge, in this thread only


def _registry():
    """``(cpu_rules, primitive, unrolled_rule, entry_type)`` of JAX's lowering registry, or None
    when this JAX does not have them where expected."""
    try:
        from jax._src.interpreters import mlir
        from jax._src.random import threefry2x32 as threefry
    except ImportError:
        return None
    rules = getattr(mlir, "_platform_specific_lowerings", {}).get("cpu")
    primitive = getattr(threefry, "threefry2x32_p", None)
    unrolled = getattr(threefry, "_threefry2x32_lowering_rule", None)
    entry = getattr(mlir, "LoweringRuleEntry", None)
    if rules is None or primitive is None or unrolled is None or entry is None or primitive not in rules:
        return None
    return rules, primitive, unrolled, entry


def threefry_unrolled_available() -> bool:
    """Whether :func:`unrolled_threefry` can change the CPU lowering with this JAX."""
    return _registry() is not None


@contextlib.contextmanager
def unrolled_threefry():
    """Lower Threefry-2x32 without a loop on the CPU inside this context (see the module
    docstring); the previous rule comes back on exit, also on an error."""
    found = _registry()
    if found is None:
        yield
        return
    rules, primitive, unrolled, entry = found
    with _LOCK:
        previous = rules[primitive]
        rules[primitive] = entry(unrolled, True)
        try:
            yield
        finally:
            rules[primitive] = previous


def _compiler():
    """JAX's ``compiler`` module when it has ``backend_compile_and_load`` and the
    ``CompileOptions`` type can be serialised and parsed; else None."""
    try:
        from jax._src import compiler
        from jax._src.lib import xla_client
    except ImportError:
        return None
    options = getattr(xla_client, "CompileOptions", None)
    if not callable(getattr(compiler, "backend_compile_and_load", None)) or options is None:
        return None
    if not all(hasattr(options, name) for name in ("SerializeAsString", "ParseFromString")):
        return None
    return compiler


def small_loop_hoisting_available() -> bool:
    """Whether :func:`hoisted_small_loops` can pass its option to XLA with this JAX."""
    return _compiler() is not None


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _extra_option(key: str, value: str) -> bytes:
    """``CompileOptionsProto`` bytes setting ``executable_build_options`` (field 3) ->
    ``debug_options`` (field 3) -> ``xla_backend_extra_options[key] = value`` (map field 500);
    appended to a serialised ``CompileOptionsProto``, protobuf merges them into it."""
    entry = _length_delimited(1, key.encode()) + _length_delimited(2, value.encode())
    return _length_delimited(3, _length_delimited(3, _length_delimited(500, entry)))


def _visible(options) -> dict:
    """The attributes of a ``CompileOptions`` or ``ExecutableBuildOptions`` Python can read."""
    found = {}
    for name in dir(options):
        if name.startswith("_"):
            continue
        try:
            value = getattr(options, name)
        except Exception:  # noqa: BLE001 - an attribute the binding cannot read is not compared
            continue
        if not callable(value):
            found[name] = value
    return found


def _levels(new, old):
    """``(new, old, nested)`` for the options and their build options, outermost first; ``nested``
    names the attribute that holds the next level."""
    return ((new, old, "executable_build_options"),
            (new.executable_build_options, old.executable_build_options, "debug_options"))


def _with_extra(options, extra: bytes):
    """A copy of ``options`` (``xla_client.CompileOptions``) with ``extra`` merged into its
    proto, or None when the copy differs from ``options`` in any other visible option."""
    merged = type(options).ParseFromString(options.SerializeAsString() + extra)  # a new object
    # what the proto does not carry (device assignment, option overrides, SPMD flags...)
    for target, source, nested in _levels(merged, options):
        for name, value in _visible(source).items():
            if name != nested:
                try:
                    setattr(target, name, value)
                except (TypeError, AttributeError, ValueError):  # read-only or None: compared below
                    pass
    for new, old, nested in _levels(merged, options):
        seen, wanted = _visible(new), _visible(old)
        if any(repr(seen.get(name)) != repr(value) for name, value in wanted.items() if name != nested):
            return None
    return merged


@contextlib.contextmanager
def hoisted_small_loops(threshold: int = SMALL_LOOP_BYTES):
    """XLA:CPU compiles ``while`` loops that read fewer than ``threshold`` bytes as one function,
    for programs this thread compiles inside this context (see the module docstring)."""
    compiler = _compiler()
    if compiler is None:
        yield
        return
    with _LOCK:
        original = compiler.backend_compile_and_load

        def compile_and_load(backend, module, executable_devices, options, *args, **kwargs):
            extra = getattr(_hoisting, "extra", None)
            if extra is not None and getattr(backend, "platform", None) == "cpu":
                merged = _with_extra(options, extra)
                if merged is not None:
                    options = merged
            return original(backend, module, executable_devices, options, *args, **kwargs)

        compiler.backend_compile_and_load = compile_and_load
        previous, _hoisting.extra = getattr(_hoisting, "extra", None), _extra_option(_THRESHOLD_OPTION, str(int(threshold)))
        try:
            yield
        finally:
            _hoisting.extra = previous
            compiler.backend_compile_and_load = original


def compile_options(platform: str) -> dict:
    """XLA compile options (``jax.stages.Lowered.compile``'s ``compiler_options``) for the chunk
    program on ``platform``: LLVM at :data:`CPU_OPTIMIZATION_LEVEL` on the CPU (see the module
    docstring), XLA's defaults elsewhere."""
    if platform == "cpu":
        return {"xla_backend_optimization_level": CPU_OPTIMIZATION_LEVEL}
    return {}
