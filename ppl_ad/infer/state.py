"""The explicit state of a chain, shared by both engines (and what checkpoints save).

A chain is a deterministic function of its state: after iteration ``i`` everything that the
next iteration reads is in :class:`ChainState` — the position with its log density and
gradient, the warmup state (:class:`~ppl_ad.infer.adaptation.WindowAdaptationState`: the step
size for the next transition, the inverse metric, dual averaging and Welford moments) and the
random-number state. Only the random-number state differs in kind between the engines:

* Python engine: the NumPy ``bit_generator.state`` of the chain's generator plus the uniforms
  already drawn and not yet used by :class:`~ppl_ad.infer.uniforms.UniformStream`
  (:class:`NumpyRNGState`);
* JAX engine: the chain's raw ``uint32[2]`` PRNG key.

:func:`to_jsonable` / :func:`from_jsonable` turn a state into plain JSON data and back, exactly
(floats are written with ``repr``, so they round-trip bit for bit).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ppl_ad.infer.adaptation import DualAveragingState, WelfordState, WindowAdaptationState
from ppl_ad.infer.adaptation.low_rank import LowRankDraws
from ppl_ad.infer.metrics import LowRankMetric

__all__ = ["ChainState", "NumpyRNGState", "capture_rng", "restore_rng", "to_jsonable", "from_jsonable"]


class NumpyRNGState(NamedTuple):
    """The Python engine's random-number state.

    Attributes
    ----------
    bit_generator : dict
        ``numpy.random.Generator.bit_generator.state``.
    uniforms : tuple of float
        Uniforms drawn in a block and not used yet (consumed from the end).
    """

    bit_generator: dict
    uniforms: tuple


class ChainState(NamedTuple):
    """Everything the next iteration of a chain reads.

    Attributes
    ----------
    position : numpy.ndarray
        Current point on the unconstrained space.
    logdensity : float
        Log density there.
    logdensity_grad : numpy.ndarray
        Its gradient there.
    adaptation : WindowAdaptationState
        Step size for the next transition, inverse metric, dual averaging and Welford state
        (after warmup the step size and metric stay fixed).
    rng : NumpyRNGState or numpy.ndarray
        Random-number state (Python engine) or raw JAX key (JAX engine).
    """

    position: object
    logdensity: object
    logdensity_grad: object
    adaptation: WindowAdaptationState
    rng: object


def capture_rng(rng: np.random.Generator, uniform) -> NumpyRNGState:
    """A snapshot of a generator and its :class:`~ppl_ad.infer.uniforms.UniformStream`."""
    return NumpyRNGState(rng.bit_generator.state, tuple(uniform._buffer))


def restore_rng(rng: np.random.Generator, uniform, saved: NumpyRNGState) -> None:
    """Put a generator and its uniform stream back to ``saved`` (in place)."""
    rng.bit_generator.state = saved.bit_generator
    uniform._buffer = list(saved.uniforms)


def _plain(value):
    if isinstance(value, np.ndarray):
        return {"__array__": value.tolist(), "dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _array(value):
    if isinstance(value, dict) and "__array__" in value:
        return np.asarray(value["__array__"], dtype=value["dtype"]).reshape(value["shape"])
    return value


def _count(count):
    """A Welford count: an int, or (nutpie's two estimators) an array of them."""
    count = np.asarray(count)
    return int(count) if count.ndim == 0 else _plain(count.astype(np.int64))


def _inverse_metric(imm):
    if isinstance(imm, LowRankMetric):
        return {"low_rank": [_plain(np.asarray(a, dtype=np.float64)) for a in imm]}
    return _plain(np.asarray(imm, dtype=np.float64))


def to_jsonable(state: ChainState) -> dict:
    """``state`` as JSON-serialisable data (arrays as nested lists with their dtype)."""
    adaptation = state.adaptation
    rng = state.rng
    if isinstance(rng, NumpyRNGState):
        rng = {"kind": "numpy", "bit_generator": _plain(rng.bit_generator), "uniforms": list(rng.uniforms)}
    else:
        rng = {"kind": "jax", "key": _plain(np.asarray(rng))}
    return {
        "position": _plain(np.asarray(state.position, dtype=np.float64)),
        "logdensity": float(state.logdensity),
        "logdensity_grad": _plain(np.asarray(state.logdensity_grad, dtype=np.float64)),
        "adaptation": {
            "step_size": float(adaptation.step_size),
            "inverse_mass_matrix": _inverse_metric(adaptation.inverse_mass_matrix),
            "dual_averaging": [float(x) if i != 2 else int(x) for i, x in enumerate(adaptation.dual_averaging)],
            "welford": [_count(adaptation.welford.count), _plain(np.asarray(adaptation.welford.mean)),
                        _plain(np.asarray(adaptation.welford.m2))],
            "draws": None if adaptation.draws is None else {
                "positions": _plain(np.asarray(adaptation.draws.positions, dtype=np.float64)),
                "gradients": _plain(np.asarray(adaptation.draws.gradients, dtype=np.float64)),
                "count": int(adaptation.draws.count)},
            "metric_stage": int(adaptation.metric_stage),
        },
        "rng": rng,
    }


def from_jsonable(data: dict) -> ChainState:
    """The inverse of :func:`to_jsonable` (NumPy arrays and Python scalars)."""
    a = data["adaptation"]
    count = a["welford"][0]
    welford = WelfordState(_array(count) if isinstance(count, dict) else int(count), _array(a["welford"][1]),
                           _array(a["welford"][2]))
    da = DualAveragingState(*a["dual_averaging"])
    imm = a["inverse_mass_matrix"]
    imm = LowRankMetric(*(_array(x) for x in imm["low_rank"])) if "low_rank" in imm else _array(imm)
    draws = a.get("draws")
    if draws is not None:
        draws = LowRankDraws(_array(draws["positions"]), _array(draws["gradients"]), int(draws["count"]))
    # checkpoints written before the stage existed: taken as past the first metric estimate (no restart)
    adaptation = WindowAdaptationState(float(a["step_size"]), imm, da, welford, draws, int(a.get("metric_stage", 2)))
    rng = data["rng"]
    if rng["kind"] == "numpy":
        rng = NumpyRNGState(rng["bit_generator"], tuple(rng["uniforms"]))
    else:
        rng = _array(rng["key"])
    return ChainState(_array(data["position"]), float(data["logdensity"]), _array(data["logdensity_grad"]),
                      adaptation, rng)


def seed_label(seed_seq: np.random.SeedSequence) -> str:
    """The text that names a run's seed (``attrs["seed"]``, checkpoints): the entropy, and the
    ``spawn_key`` when there is one (two children of one ``SeedSequence`` are different seeds)."""
    key = tuple(int(k) for k in seed_seq.spawn_key)
    entropy = seed_seq.entropy
    entropy = [int(e) for e in entropy] if isinstance(entropy, (list, tuple, np.ndarray)) else int(entropy)
    return str(entropy) if not key else f"SeedSequence(entropy={entropy}, spawn_key={key})"


def seed_from_label(label: str) -> np.random.SeedSequence:
    """The ``SeedSequence`` that :func:`seed_label` named."""
    import ast
    import re

    match = re.fullmatch(r"SeedSequence\(entropy=(.*), spawn_key=(\(.*\))\)", label.strip())
    if match is None:
        return np.random.SeedSequence(ast.literal_eval(label))
    return np.random.SeedSequence(ast.literal_eval(match.group(1)), spawn_key=ast.literal_eval(match.group(2)))


def fresh_seed_sequence(seed_seq: np.random.SeedSequence) -> np.random.SeedSequence:
    """A copy of ``seed_seq`` with no children spawned yet: ``spawn`` changes the object it is
    called on, so spawning from a user's ``SeedSequence`` twice would give two runs different
    chains under the same recorded seed."""
    return np.random.SeedSequence(seed_seq.entropy, spawn_key=seed_seq.spawn_key, pool_size=seed_seq.pool_size)
