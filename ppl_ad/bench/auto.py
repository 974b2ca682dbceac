"""``backend="auto"`` and ``pa.backends.recommend``: one measurement, one decision.

The candidates are the installed supported and experimental backends (never the
finite-difference reference, never deprecated or removed ones). :func:`measure` prepares
each, checks it against finite differences at one point, and times its value-and-gradient
call in interleaved rounds (so a burst of load on a shared machine hits every candidate
alike), under the thread limits of the sampler's worker processes
(:func:`ppl_ad.bench.measure.thread_limits`). :func:`decide` picks the fastest correct
backend, except that a near tie goes to the default backend (``jax``): when the default is
slower than the fastest by no more than the noise of the measurement (the spread between
rounds, at least :data:`TIE_TOLERANCE`), the default wins. The decision records its margin.

:func:`recommend` returns the measurement and the decision as a table, and
:func:`choose_backend` (``backend="auto"``) uses the decision of :func:`recommend`, so the
two always agree: both read the same cached measurement. It is cached as JSON under
``platformdirs.user_cache_dir("ppl_ad")/auto`` (or ``$PPL_AD_CACHE_DIR/auto``), keyed by a
fingerprint of the model and the candidates: the model function's source, the data names,
shapes and dtypes (and scalar values, which may set shapes), the candidates' names and
library versions and the ppl_ad version (the source digest and versions are memoised per
process). A cached decision is read back without preparing anything;
``recommend(..., refresh=True)`` measures again.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import os
from pathlib import Path

import numpy as np

from ppl_ad.backends import registry
from ppl_ad.backends.base import EXPERIMENTAL, SUPPORTED
from ppl_ad.bench.measure import thread_limits, time_calls
from ppl_ad.table import Table, format_microseconds, format_scientific

__all__ = [
    "choose_backend", "recommend", "measure", "decide", "Recommendation", "fingerprint", "cache_dir",
    "clear_cache", "candidates", "TIE_TOLERANCE",
]

#: the smallest relative time difference that is not a near tie
TIE_TOLERANCE = 0.05
_FORMAT = 2  # version of the cached JSON

logger = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Folder of cached decisions: ``$PPL_AD_CACHE_DIR/auto`` or the platform cache dir."""
    from ppl_ad.config import cache_root

    return cache_root() / "auto"


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
    """A hex digest identifying ``model``'s structure and the candidates (default :func:`candidates`)."""
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


def measure(model, *, backends=None, budget: float = 0.25, rounds: int = 5, seed: int = 0,
            rtol: float = 1e-6, compiled=None) -> list[dict]:
    """Check and time the candidate backends on ``model`` (one row each, unordered).

    Parameters
    ----------
    model : ppl_ad.model.Model
    backends : list, optional
        Names or values to consider (default: :func:`candidates`).
    budget : float
        Approximate seconds of timed calls per candidate.
    rounds : int
        Interleaved timing rounds.
    seed : int
        Seed of the point (an initial point, drawn as the sampler draws it).
    rtol : float
        Largest relative error of a correct candidate.
    compiled : CompiledModel, optional
        ``model`` already compiled.

    Returns
    -------
    list of dict
        ``{"name", "mode", "status", "correct", "gradient_us", "spread", "gradient_rel_error",
        "value_rel_error", "prepare_s", "note"}``; ``spread`` is the relative spread of the
        round medians (:class:`ppl_ad.bench.measure.Timing`).
    """
    from ppl_ad.bench.benchmark import check_against_reference
    from ppl_ad._deprecations import quiet
    from ppl_ad.logdensity import logdensity
    from ppl_ad.model.compiled import compile_model

    compiled = compiled or compile_model(model)
    values = candidates() if backends is None else [registry.get(b, warn=False) for b in backends]
    theta = compiled.initial_point(np.random.default_rng(seed))
    reference = logdensity(model, "finite-difference", compiled=compiled)
    rows, live = [], {}
    with thread_limits():  # as the sampler's worker processes
        for backend in values:
            row = {"name": backend.name, "mode": backend.mode, "status": backend.status, "correct": "error",
                   "gradient_us": None, "spread": None, "gradient_rel_error": None, "value_rel_error": None,
                   "prepare_s": None, "note": ""}
            rows.append(row)
            try:
                with quiet():
                    ld = logdensity(model, backend, compiled=compiled)
                    row["prepare_s"] = ld.prepare_seconds
                    row["correct"], row["gradient_rel_error"], row["value_rel_error"] = check_against_reference(
                        ld, reference, [theta], rtol)
                if row["correct"] == "ok":
                    ld.logdensity_and_gradient(theta)
                    live[backend.name] = ld.logdensity_and_gradient
            except Exception as exc:
                row["note"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        try:
            timings = time_calls(live, theta, budget=budget, rounds=rounds)
        except Exception as exc:  # a backend that fails only when timed fails every timing
            timings = {}
            for row in rows:
                if row["name"] in live:
                    row["correct"], row["note"] = "error", f"{type(exc).__name__}: {str(exc)[:200]}"
    for row in rows:
        if row["name"] in timings:
            row["gradient_us"] = timings[row["name"]].median * 1e6
            row["spread"] = timings[row["name"]].spread
    return rows


def decide(rows, default: str | None = None, tolerance: float = TIE_TOLERANCE) -> dict:
    """The backend to use, from the rows of :func:`measure`.

    The fastest correct backend wins, except that a near tie goes to ``default`` (the
    built-in default backend, ``jax``): when the default is correct and its time is within
    ``max(tolerance, noise)`` of the fastest, where ``noise`` is the larger spread of the two
    measurements.

    Returns
    -------
    dict
        ``backend`` (None when no candidate is correct), ``fastest``, ``runner_up`` (the
        fastest correct alternative to ``backend``), ``margin`` (how much faster
        ``backend`` is than ``runner_up``, as a fraction: ``t_runner_up / t_backend - 1``;
        negative when a near tie went to the default), ``noise``, ``tie`` (whether the
        near-tie rule chose) and ``reason`` (one sentence).
    """
    from ppl_ad.config import DEFAULT_BACKEND

    default = DEFAULT_BACKEND if default is None else default
    correct = sorted((r for r in rows if r["correct"] == "ok" and r.get("gradient_us")), key=lambda r: r["gradient_us"])
    decision = {"backend": None, "fastest": None, "runner_up": None, "margin": None, "noise": None, "tie": False,
                "reason": "no candidate's gradient matches finite differences"}
    if not correct:
        return decision
    fastest = correct[0]
    chosen, tie = fastest, False
    by_name = {r["name"]: r for r in correct}
    if default in by_name and default != fastest["name"]:
        candidate = by_name[default]
        noise = max(candidate.get("spread") or 0.0, fastest.get("spread") or 0.0)
        if candidate["gradient_us"] <= fastest["gradient_us"] * (1.0 + max(tolerance, noise)):
            chosen, tie = candidate, True
    others = [r for r in correct if r is not chosen]
    runner_up = others[0] if others else None
    noise = max((r.get("spread") or 0.0) for r in ([chosen, runner_up] if runner_up else [chosen]))
    decision.update(backend=chosen["name"], fastest=fastest["name"], tie=tie, noise=noise)
    if runner_up is None:
        decision["reason"] = f"only correct candidate: {chosen['name']} {chosen['gradient_us']:.1f} µs"
        return decision
    margin = runner_up["gradient_us"] / chosen["gradient_us"] - 1.0
    decision.update(runner_up=runner_up["name"], margin=margin)
    if tie:
        decision["reason"] = (
            f"near tie goes to the default: {chosen['name']} {chosen['gradient_us']:.1f} µs is "
            f"{-margin:.0%} slower than {runner_up['name']} {runner_up['gradient_us']:.1f} µs, within the noise "
            f"({max(tolerance, noise):.0%})"
        )
    else:
        decision["reason"] = (
            f"fastest correct gradient: {chosen['name']} {chosen['gradient_us']:.1f} µs, {margin:.0%} faster than "
            f"{runner_up['name']} {runner_up['gradient_us']:.1f} µs (noise {noise:.0%})"
        )
    return decision


class Recommendation(Table):
    """What :func:`recommend` returns: the measured candidates, the chosen one first.

    Attributes
    ----------
    decision : dict
        :func:`decide`'s decision (``backend``, ``margin``, ``noise``, ``tie``, ``reason``, ...).
    model : str
    dimension : int
    cached : str or None
        The cache key when the measurement was read from the cache.
    """

    columns = ("name", "mode", "status", "correct", "gradient_us", "spread", "gradient_rel_error", "prepare_s", "note")
    formats = {"gradient_us": format_microseconds, "spread": "{:.0%}", "gradient_rel_error": format_scientific,
               "prepare_s": "{:.3f}"}

    def __init__(self, rows=(), *, decision=None, model: str = "", dimension=None, cached=None):
        super().__init__(rows)
        self.decision = dict(decision or {})
        self.model = model
        self.dimension = dimension
        self.cached = cached

    @property
    def title(self) -> str:
        return f"model '{self.model}' (dimension {self.dimension}): {self.decision.get('reason', '')}"

    def metadata(self) -> dict:
        return {"model": self.model, "dimension": self.dimension, "decision": self.decision}


def _ranked(rows, decision) -> list[dict]:
    order = {"ok": 0, "wrong": 1, "error": 2}
    chosen = decision.get("backend")
    return sorted(rows, key=lambda r: (r["name"] != chosen, order.get(r["correct"], 3),
                                       r["gradient_us"] if r["gradient_us"] is not None else np.inf))


def _read_cache(path: Path):
    try:
        cached = json.loads(path.read_text())
        if cached.get("format") == _FORMAT and isinstance(cached.get("ranking"), list):
            return cached
    except (ValueError, OSError, AttributeError):
        pass
    return None


def _write_cache(path: Path, payload: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(payload, indent=1))
        os.replace(tmp, path)
    except OSError as exc:  # a read-only cache only costs a re-measurement next time
        logger.warning("could not cache the auto backend decision in %s: %s", path, exc)


def recommend(model, *, backends=None, budget: float = 0.25, rounds: int = 5, seed: int = 0,
              rtol: float = 1e-6, compiled=None, refresh: bool = False) -> Recommendation:
    """Rank the candidate backends for ``model``: the measurement ``backend="auto"`` decides from.

    Reads the cached measurement of this model and these candidates when there is one
    (the one ``backend="auto"`` made or will use), otherwise measures with :func:`measure`,
    decides with :func:`decide` and caches both.

    Parameters
    ----------
    model : ppl_ad.model.Model
    backends : list, optional
        Names or values to consider (default: :func:`candidates`, as ``backend="auto"``).
    budget : float
        Approximate seconds of timed calls per candidate.
    rounds : int
        Interleaved timing rounds.
    seed, rtol, compiled
        See :func:`measure`.
    refresh : bool
        Measure again even when a cached measurement exists (and replace it).

    Returns
    -------
    Recommendation
        One row per candidate, the chosen backend first, then correct candidates fastest
        first; ``.decision`` holds the choice, its margin and the reason.
    """
    from ppl_ad.model.compiled import compile_model

    values = candidates() if backends is None else [registry.get(b, warn=False) for b in backends]
    key = fingerprint(model, values)
    path = cache_dir() / f"{key}.json"
    cached = None if refresh else _read_cache(path) if path.is_file() else None
    if cached is not None:
        return Recommendation(cached["ranking"], decision=cached["decision"], model=model.name,
                              dimension=cached.get("dimension"), cached=key)
    compiled = compiled or compile_model(model)
    rows = measure(model, backends=values, budget=budget, rounds=rounds, seed=seed, rtol=rtol, compiled=compiled)
    decision = decide(rows)
    decision["reason"] += f" at d = {compiled.dimension}"
    ranking = _ranked(rows, decision)
    _write_cache(path, {"format": _FORMAT, "model": model.name, "dimension": compiled.dimension,
                        "backend": decision["backend"], "decision": decision, "ranking": ranking})
    return Recommendation(ranking, decision=decision, model=model.name, dimension=compiled.dimension)


def choose_backend(compiled) -> tuple[str, str]:
    """The backend ``backend="auto"`` uses for a compiled model, and why.

    The decision of :func:`recommend` with the default candidates: read from the cache
    when this model has one, else measured, cached and logged (INFO).

    Returns
    -------
    (backend_name, reason)
    """
    from ppl_ad.errors import BackendError

    model = compiled.model
    ranking = recommend(model, compiled=compiled)
    decision = ranking.decision
    name = decision.get("backend")
    if ranking.cached and name and not registry.get(name, warn=False).is_available():
        ranking = recommend(model, compiled=compiled, refresh=True)
        decision, name = ranking.decision, ranking.decision.get("backend")
    if name is None:
        raise BackendError(
            f"backend='auto' found no installed backend whose gradient matches finite differences "
            f"for model '{model.name}': {[(r['name'], r['correct'], r['note']) for r in ranking]}"
        )
    reason = decision["reason"] + (f"; cached decision {ranking.cached[:12]}" if ranking.cached else "")
    logger.info("auto backend for model '%s': %s (%s)", model.name, name, reason)
    return name, reason


def _after_failure(compiled, failed: str, error: Exception) -> tuple[str, str]:
    """Measure again when the backend ``backend="auto"`` chose fails on the model: a cached
    decision goes stale when something the model uses but its fingerprint does not cover
    changes (a helper function, a global flag). Re-raises ``error`` when the new measurement
    picks ``failed`` again or nothing."""
    ranking = recommend(compiled.model, compiled=compiled, refresh=True)
    name = ranking.decision.get("backend")
    if name is None or name == failed:
        raise error
    logger.warning("backend='auto': '%s' failed on model '%s' (%s: %s); measured again and chose '%s'",
                   failed, compiled.model.name, type(error).__name__, str(error)[:200], name)
    return name, f"{ranking.decision['reason']}; measured again after '{failed}' failed"


choose_backend.after_failure = _after_failure
