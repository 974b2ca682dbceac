"""How the compiled engine's program is lowered: Threefry without a loop on the CPU.

This module owns :func:`unrolled_threefry`, the context in which :mod:`ppl_ad.infer.jax_engine`
lowers its chunk program.

On the CPU, JAX lowers every Threefry-2x32 hash (each ``jax.random.split``, ``fold_in``,
``bernoulli``, ``normal``...) to a ``while`` loop of five iterations, which keeps the programs
small for XLA to compile. On other platforms it writes the twenty rounds out. A NUTS transition
calls the hash a few times per leapfrog step (BlackJAX's progressive sampling splits a key and
draws a uniform at every step), and on the CPU each loop iteration is a separate dispatch of the
runtime. On small models that costs as much as the gradient: on eight schools (d = 10) the rolled
hash made a leapfrog step of BlackJAX's kernel under ``lax.scan`` about 1.4x slower (CPU time,
interleaved in one process).

Inside :func:`unrolled_threefry` the CPU uses JAX's own unrolled lowering (the one the GPU
uses). It is the same hash: draws are bit for bit the same, and the lowering only changes while
ppl_ad lowers its program (the rule is put back afterwards, so programs of the user's are not
affected). The lowering registry is private to JAX; when it is not where this module expects it
(another JAX version), the context does nothing and programs keep the rolled hash.

References
----------
Salmon, J. K., Moraes, M. A., Dror, R. O. & Shaw, D. E. (2011). Parallel random numbers: as easy
as 1, 2, 3. *SC '11* (the Threefry hash).
"""

from __future__ import annotations

import contextlib
import threading

__all__ = ["unrolled_threefry", "threefry_unrolled_available"]

_LOCK = threading.RLock()  # one lowering at a time under the changed rule (re-entrant)


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
