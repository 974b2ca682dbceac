"""``backend="auto"``: measure the correct candidate backends briefly and pick the fastest.

The candidates are the installed supported and experimental backends (never the
finite-difference reference, never deprecated or removed ones). Each is prepared, checked
against finite differences at one point, and its value-and-gradient call is timed in
interleaved rounds (so a burst of load on a shared machine hits every candidate alike);
the fastest median wins. The decision is cached as JSON under
``platformdirs.user_cache_dir("ppl_ad")/auto`` (or ``$PPL_AD_CACHE_DIR/auto``), keyed by a
fingerprint of the model: the model function's source, the data names, shapes and dtypes
(and scalar values, which may set shapes), the candidates' library versions and the ppl_ad
version (the source digest and versions are memoised per process). A cached decision is
read back without preparing anything.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

from ppl_ad.backends import registry
from ppl_ad.backends.base import EXPERIMENTAL, SUPPORTED

__all__ = ["choose_backend", "recommend", "fingerprint", "cache_dir", "clear_cache", "candidates"]

logger = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Folder of cached decisions: ``$PPL_AD_CACHE_DIR/auto`` or the platform cache dir."""
    root = os.environ.get("PPL_AD_CACHE_DIR")
    if not root:
        import platformdirs

        root = platformdirs.user_cache_dir("ppl_ad")
    return Path(root) / "auto"


def clear_cache() -> int:
    """Delete every cached decision; returns how many were deleted."""
    folder = cache_dir()
    count = 0
    if folder.is_dir():
        for path in folder.glob("*.json"):
            path.unlink()
            count += 1
    return count


def candidates() -> list:
    """Installed supported and experimental backends, the reference excluded."""
    return [
        b for b in registry.all_backends()
        if b.status in (SUPPORTED, EXPERIMENTAL) and b.mode != "reference" and b.is_available()
    ]


def _describe(value):
    array = np.asarray(value) if not hasattr(value, "shape") else value
    shape = tuple(int(n) for n in getattr(array, "shape", ()))
    dtype = str(getattr(array, "dtype", type(value).__name__))
    if shape == () and isinstance(value, (bool, int, float, str, np.number)):
        return {"shape": [], "dtype": dtype, "value": repr(value)}
    return {"shape": list(shape), "dtype": dtype}


@functools.lru_cache(maxsize=256)
def _source_digest(fn) -> str:
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        source = f"{fn.__module__}.{fn.__qualname__}"
    return hashlib.sha256(source.encode()).hexdigest()


@functools.lru_cache(maxsize=64)
def _library_version(backend) -> str | None:
    return backend.library_version()


def fingerprint(model, backends=None) -> str:
    """A hex digest identifying ``model``'s structure and the installed candidate libraries."""
    from ppl_ad._version import __version__

    backends = candidates() if backends is None else backends
    payload = {
        "name": model.name,
        "source": _source_digest(model.function.fn),
        "data": {k: _describe(v) for k, v in sorted(model.data.items())},
        "backends": {b.name: _library_version(b) for b in backends},
        "ppl_ad": __version__,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def recommend(model, *, backends=None, budget: float = 0.25, rounds: int = 5, seed: int = 0,
              rtol: float = 1e-6, compiled=None) -> list[dict]:
    """Rank the candidate backends for ``model`` by measured gradient time.

    Parameters
    ----------
    model : ppl_ad.model.Model
    backends : list, optional
        Names or values to consider (default: :func:`candidates`).
    budget : float
        Approximate seconds of timed calls per candidate.
    rounds : int
        Interleaved timing rounds.

    Returns
    -------
    list of dict
        ``{"name", "mode", "status", "correct", "max_rel_error", "gradient_us", "prepare_s",
        "note"}``, correct candidates first, fastest first.
    """
    from ppl_ad.bench.benchmark import check_against_reference
    from ppl_ad.errors import PplAdDeprecationWarning
    from ppl_ad.logdensity import logdensity
    from ppl_ad.model.compiled import compile_model

    compiled = compiled or compile_model(model)
    values = candidates() if backends is None else [registry.get(b, warn=False) for b in backends]
    theta = compiled.initial_point(np.random.default_rng(seed))
    reference = logdensity(model, "finite-difference", compiled=compiled)
    rows, live = [], []
    for backend in values:
        row = {"name": backend.name, "mode": backend.mode, "status": backend.status, "correct": "error",
               "max_rel_error": None, "gradient_us": None, "prepare_s": None, "note": ""}
        rows.append(row)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PplAdDeprecationWarning)
                ld = logdensity(model, backend, compiled=compiled)
                row["prepare_s"] = ld.prepare_seconds
                row["correct"], row["max_rel_error"] = check_against_reference(ld, reference, [theta], rtol)
            if row["correct"] == "ok":
                fn = ld.logdensity_and_gradient
                fn(theta)
                start, calls = time.perf_counter(), 0
                while calls < 20 and time.perf_counter() - start < 0.02:
                    fn(theta)
                    calls += 1
                once = (time.perf_counter() - start) / calls
                live.append((row, fn, max(1, int(budget / rounds / max(once, 1e-7)))))
        except Exception as exc:
            row["note"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    samples = {id(row): [] for row, _, _ in live}
    clock = time.perf_counter
    for _ in range(rounds):
        for row, fn, n in live:
            times = []
            for _ in range(n):
                start = clock()
                fn(theta)
                times.append(clock() - start)
            samples[id(row)].append(statistics.median(times))
    for row, _, _ in live:
        row["gradient_us"] = statistics.median(samples[id(row)]) * 1e6
    order = {"ok": 0, "wrong": 1, "error": 2}
    rows.sort(key=lambda r: (order.get(r["correct"], 3), r["gradient_us"] if r["gradient_us"] is not None else np.inf))
    return rows


def choose_backend(compiled) -> tuple[str, str]:
    """The backend ``backend="auto"`` uses for a compiled model, and why.

    Reads the cached decision when the model's fingerprint has one; otherwise measures
    with :func:`recommend`, caches and logs (INFO) the decision.

    Returns
    -------
    (backend_name, reason)
    """
    model = compiled.model
    key = fingerprint(model)
    path = cache_dir() / f"{key}.json"
    if path.is_file():
        try:
            cached = json.loads(path.read_text())
            name = cached["backend"]
            if registry.get(name, warn=False).is_available():
                reason = f"{cached['reason']}; cached decision {key[:12]}"
                logger.info("auto backend for model '%s': %s (%s)", model.name, name, reason)
                return name, reason
        except (ValueError, KeyError, OSError):
            pass
    ranking = recommend(model, compiled=compiled)
    correct = [r for r in ranking if r["correct"] == "ok"]
    if not correct:
        raise RuntimeError(
            f"backend='auto' found no installed backend whose gradient matches finite differences "
            f"for model '{model.name}': {[(r['name'], r['correct'], r['note']) for r in ranking]}"
        )
    best = correct[0]
    others = ", ".join(f"{r['name']} {r['gradient_us']:.1f} µs" for r in correct[1:])
    reason = (
        f"fastest correct gradient: {best['name']} {best['gradient_us']:.1f} µs"
        + (f" (vs {others})" if others else "")
        + f" at d = {compiled.dimension}"
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"backend": best["name"], "reason": reason, "model": model.name,
                                   "ranking": ranking}, indent=1))
        os.replace(tmp, path)
    except OSError as exc:  # a read-only cache only costs a re-measurement next time
        logger.warning("could not cache the auto backend decision in %s: %s", path, exc)
    logger.info("auto backend for model '%s': %s (%s)", model.name, best["name"], reason)
    return best["name"], reason
