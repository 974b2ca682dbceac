"""Checkpointed, resumable sampling: draws and chain states streamed to a zarr store.

This module owns ``pa.sample(..., checkpoint=PATH)`` and :func:`read_checkpoint`.

**Store.** PATH is a folder holding

* ``draws.zarr``: a zarr (v3) group, the format PyMC's ``ZarrTrace`` uses for the same job and
  that xarray/ArviZ read. Its ``attrs["ppl_ad_checkpoint"]`` hold the run's fingerprint (model
  name and source, a hash of the data, backend, engine, sampler settings, seed, ppl_ad
  version) and its shape (chains, draws, dimension, flat parameter names); per chain ``c`` a
  group ``chain_c`` holds the unconstrained ``draws`` (draws x dimension) and one array per
  sampler statistic;
* ``model.pkl``: the model function and data (cloudpickle), used by :func:`read_checkpoint`
  to convert draws to model space in another process;
* ``chain_c.json`` per chain: the iteration reached, the chain's full
  :class:`~ppl_ad.infer.state.ChainState` (position, log density and gradient, step size,
  metric, dual-averaging and Welford state, random-number state including buffered uniforms)
  and the running totals (times, gradient evaluations, warmup divergences).

**Crash safety.** zarr writes every chunk and metadata document to a temporary file and
renames it; ``chain_c.json`` is written the same way (temporary file, ``fsync``, ``os.replace``)
*after* the draws it covers. ``chain_c.json`` is the commit point: a reader trusts the draws up to
the iteration it names and ignores anything written after it, so a ``kill -9`` at any instant
leaves a store that reads and resumes.

**Resuming.** The same call with the same PATH resumes each chain from its saved state; the
result is identical, draw for draw, to an uninterrupted run with the same seed (both engines:
the chain is a deterministic function of its state). Chains that had finished are not rerun.
``draws`` is not part of the fingerprint: asking for more draws extends a finished run (the
chains continue from their final state, exactly as a longer run would have), asking for fewer
returns the first ones. Anything else that differs raises :class:`~ppl_ad.errors.CheckpointError`
naming what differs; ``overwrite=True`` (or another path) starts over.

**When.** A chain saves every ``checkpoint_every`` iterations if given, else whenever
:data:`DEFAULT_SECONDS` seconds of work have passed since its last save, at the end of warmup
and at the end. The JAX engine saves between compiled chunks.

**Interrupts.** While a checkpointed run samples in this process, SIGINT (Ctrl-C) and SIGTERM
make the chains save at the next iteration (JAX engine: the next chunk) and stop;
``pa.sample`` then re-raises ``KeyboardInterrupt`` (SIGINT) or exits with ``SystemExit(143)``
(SIGTERM). Worker processes do the same when the parent stops them. ``pa.read_checkpoint(PATH)``
returns the draws so far; rerunning the call resumes.

References
----------
PyMC developers, ``pymc.backends.zarr.ZarrTrace`` (PyMC 5.28).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np

from ppl_ad._version import __version__
from ppl_ad.errors import CheckpointError
from ppl_ad.infer.state import from_jsonable, seed_from_label, seed_label, to_jsonable

__all__ = ["DEFAULT_SECONDS", "CheckpointStore", "ChainCheckpoint", "fingerprint", "read_checkpoint",
           "stop_requested", "handle_signals"]

#: default seconds of work between two saves of a chain
DEFAULT_SECONDS = 2.0

_ATTR = "ppl_ad_checkpoint"
_STOP = threading.Event()
_SIGNAL = {"number": None}


# --------------------------------------------------------------------------- #
# Fingerprint
# --------------------------------------------------------------------------- #


def _hash_value(h, value) -> None:
    if isinstance(value, np.ndarray) or np.isscalar(value) and isinstance(value, np.generic):
        array = np.ascontiguousarray(value)
        h.update(f"{array.dtype.str}{array.shape}".encode())
        h.update(array.tobytes() if array.dtype.kind != "O" else repr(array.tolist()).encode())
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            h.update(repr(key).encode())
            _hash_value(h, value[key])
    elif isinstance(value, (list, tuple)):
        h.update(f"{type(value).__name__}{len(value)}".encode())
        for item in value:
            _hash_value(h, item)
    else:
        h.update(repr(value).encode())


def data_hash(data: dict) -> str:
    """A short SHA-256 of ``data`` (arrays by dtype, shape and bytes; other values by ``repr``)."""
    h = hashlib.sha256()
    _hash_value(h, dict(data))
    return h.hexdigest()[:16]


def _model_source(ld) -> str:
    function = getattr(getattr(getattr(ld, "model", None), "function", None), "fn", None)
    if function is None:
        return type(ld).__name__
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        code = getattr(function, "__code__", None)
        return hashlib.sha256(code.co_code).hexdigest() if code is not None else repr(function)


def density_probe(ld) -> str:
    """A short hash of the model's log density at two fixed points (NumPy, no compile), or "".

    The model's source alone misses what it reads from outside: a global constant, a helper
    function, a model typed at a prompt (no source to read). Two runs whose densities differ at
    these points are different runs."""
    compiled = getattr(ld, "compiled", None)
    numpy_fn = getattr(compiled, "_numpy_fn", None)
    if numpy_fn is None:
        return ""
    dim = int(ld.dimension)
    values = []
    from ppl_ad.model.compiled import probe_points

    for point in probe_points(dim):
        try:
            with np.errstate(all="ignore"):
                values.append(f"{float(numpy_fn(point)):.12g}")
        except Exception as error:  # noqa: BLE001 - a failing evaluation is part of what the density is
            values.append(type(error).__name__)
    return hashlib.sha256(" ".join(values).encode()).hexdigest()[:16]


def stored_seed(path):
    """The seed of the checkpoint at ``path`` (a ``SeedSequence``), or None when there is none:
    ``pa.sample(..., checkpoint=path)`` without a seed resumes with it."""
    store = Path(path) / "draws.zarr"
    if not (store / "zarr.json").exists():
        return None
    try:
        saved = _zarr().open_group(str(store), mode="r").attrs.get(_ATTR)
        return seed_from_label(saved["fingerprint"]["seed"]) if saved else None
    except Exception:  # noqa: BLE001 - not a readable checkpoint: the store's own checks say why
        return None


def fingerprint(ld, settings, chains: int, seed_seq, init) -> dict:
    """What a checkpoint belongs to (everything but ``draws``).

    Parameters
    ----------
    ld : LogDensity
    settings : ppl_ad.infer.chain.ChainSettings
    chains : int
    seed_seq : numpy.random.SeedSequence
    init : str or dict or list of dict

    Returns
    -------
    dict of str to JSON values
    """
    model = getattr(ld, "model", None)
    backend = getattr(ld, "backend", None)
    return {
        "model": str(getattr(model, "name", type(ld).__name__)),
        "model_source": hashlib.sha256(_model_source(ld).encode()).hexdigest()[:16],
        "data": data_hash(getattr(model, "data", {}) or {}),
        "backend": str(getattr(backend, "name", backend)),
        "engine": settings.engine,
        "sampler": settings.sampler,
        "tune": int(settings.tune),
        "chains": int(chains),
        "target_accept": float(settings.target_accept),
        "max_treedepth": int(settings.max_treedepth),
        "metric": settings.metric,
        "metric_adaptation": settings.metric_adaptation,
        "path_length": float(settings.path_length),
        "seed": seed_label(seed_seq),
        "density": density_probe(ld),
        "init": init if isinstance(init, str) else data_hash({"init": init}),
        "ppl_ad_version": __version__,
    }


_HOW = {
    "model": "another model", "model_source": "the model's code changed", "data": "other data",
    "backend": "another backend", "engine": "another engine", "seed": "another seed",
    "density": "the model's log density changed: its code, or a constant or function it uses",
    "ppl_ad_version": "another ppl_ad version",
}


#: fingerprint entries added after checkpoints were first written: a checkpoint without one is not
#: refused for it
_ADDED_LATER = {"density"}


def _differences(saved: dict, wanted: dict) -> list[str]:
    out = []
    for key in sorted(set(saved) | set(wanted)):
        if key in _ADDED_LATER and key not in saved:
            continue
        if saved.get(key) != wanted.get(key):
            why = _HOW.get(key, "other sampler settings")
            out.append(f"{key}: checkpoint {saved.get(key)!r}, this call {wanted.get(key)!r} ({why})")
    return out


# --------------------------------------------------------------------------- #
# Atomic files
# --------------------------------------------------------------------------- #


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------------- #
# Store
# --------------------------------------------------------------------------- #


def _zarr():
    try:
        import zarr
    except ImportError as error:  # pragma: no cover - zarr is in the 'checkpoint' extra
        raise CheckpointError("checkpoint=... needs zarr: pip install 'ppl_ad[checkpoint]'") from error
    return zarr


def _unfinished_creation(group) -> bool:
    """A store killed while :meth:`CheckpointStore._create` made it: no attribute yet, and nothing
    but (some of) its ``chain_c`` groups."""
    import re

    return all(re.fullmatch(r"chain_\d+", str(name)) for name in group.keys())


def _ours(name: str) -> bool:
    """A file a checkpoint folder holds (what ``overwrite=True`` may delete with it)."""
    import re

    return bool(re.fullmatch(r"draws\.zarr|model\.pkl|chain_\d+\.json|\..*\.tmp", name))


class CheckpointStore:
    """The zarr store of one checkpointed run (created, checked against the call, or resized).

    Parameters
    ----------
    path : str or os.PathLike
    print_ : dict
        The fingerprint of this call (:func:`fingerprint`).
    chains, draws, dimension : int
    stat_dtypes : dict of str to dtype
    names : list of str
        Flat names of the unconstrained coordinates.
    recipe : bytes or None
        Pickled recipe of the log density (see :func:`ppl_ad.infer.parallel.worker_spec`).
    overwrite : bool
        Start over even if PATH holds another run's checkpoint.

    Raises
    ------
    ppl_ad.errors.CheckpointError
        PATH holds a checkpoint of another run (the message lists what differs).
    """

    def __init__(self, path, print_: dict, chains: int, draws: int, dimension: int, stat_dtypes: dict,
                 names, recipe: bytes | None, overwrite: bool = False):
        zarr = _zarr()
        self.path = Path(path)
        self.tune = int(print_["tune"])
        if self.path.exists() and not self.path.is_dir():
            raise CheckpointError(f"checkpoint path {str(self.path)!r} is a file; pass a folder (new or one that "
                                  "holds a checkpoint)")
        existing = None
        if (self.path / "draws.zarr" / "zarr.json").exists() and not overwrite:
            group = zarr.open_group(str(self.path / "draws.zarr"), mode="r")
            existing = group.attrs.get(_ATTR)
            if existing is None and not _unfinished_creation(group):
                raise CheckpointError(
                    f"checkpoint path {str(self.path)!r} holds a zarr store that is not a ppl_ad checkpoint; "
                    "pass another path, or overwrite=True to replace it"
                )
            diffs = _differences(existing["fingerprint"], print_) if existing is not None else []
            if diffs:
                raise CheckpointError(
                    f"checkpoint {str(self.path)!r} belongs to another run: " + "; ".join(diffs)
                    + ". To start over, pass overwrite=True (the old draws are deleted) or another checkpoint path."
                )
        if existing is None:
            self._create(zarr, print_, chains, draws, dimension, stat_dtypes, names, recipe)
        elif int(existing["draws"]) < draws:
            self._resize(zarr, existing, chains, draws, dimension)

    def _create(self, zarr, print_, chains, draws, dimension, stat_dtypes, names, recipe):
        import shutil

        if self.path.exists():
            if not (self.path / "draws.zarr").exists() and any(not _ours(f.name) for f in self.path.iterdir()):
                raise CheckpointError(
                    f"checkpoint path {str(self.path)!r} is a folder with other files in it; pass an empty or new path"
                )
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True)
        group = zarr.open_group(str(self.path / "draws.zarr"), mode="w")
        rows = max(1, min(draws, 256))
        for c in range(chains):
            chain = group.create_group(f"chain_{c}")
            # dimension_names: xarray reads a chain group, xr.open_zarr(..., group="chain_0", consolidated=False)
            chain.create_array("draws", shape=(draws, dimension), chunks=(rows, max(1, dimension)),
                               dtype="f8", fill_value=np.nan, dimension_names=("draw", "unconstrained"))
            for name, dtype in stat_dtypes.items():
                chain.create_array(name, shape=(draws,), chunks=(rows,), dtype=np.dtype(dtype).str,
                                   fill_value=0, dimension_names=("draw",))
        if recipe is not None:
            _write_atomic(self.path / "model.pkl", recipe)
        # written last: a store without it is an unfinished creation and is made again
        group.attrs[_ATTR] = {"fingerprint": print_, "draws": int(draws), "chains": int(chains),
                              "dimension": int(dimension), "names": list(names)}

    def _resize(self, zarr, existing, chains, draws, dimension):
        group = zarr.open_group(str(self.path / "draws.zarr"), mode="r+")
        for c in range(chains):
            chain = group[f"chain_{c}"]
            for name in chain.array_keys():
                array = chain[name]
                array.resize((draws,) + tuple(array.shape[1:]))
        group.attrs[_ATTR] = {**existing, "draws": int(draws)}

    def chain(self, c: int, every: int | None = None, seconds: float | None = None) -> "ChainCheckpoint":
        """The (picklable) checkpoint of chain ``c``."""
        return ChainCheckpoint(str(self.path), c, self.tune, every, seconds)


class ChainCheckpoint:
    """One chain's part of a checkpoint: resume from it and save to it (picklable).

    Parameters
    ----------
    path : str
    chain : int
    tune : int
    every : int, optional
        Save every ``every`` iterations; default: when ``seconds`` have passed.
    seconds : float, optional
        Default :data:`DEFAULT_SECONDS`.
    """

    def __init__(self, path: str, chain: int, tune: int, every: int | None = None, seconds: float | None = None):
        self.path = path
        self.chain = int(chain)
        self.tune = int(tune)
        self.every = int(every) if every else None
        self.seconds = DEFAULT_SECONDS if seconds is None else float(seconds)
        self._last = time.monotonic()
        self._rows = 0
        self._group = None

    def __getstate__(self):
        return {"path": self.path, "chain": self.chain, "tune": self.tune, "every": self.every,
                "seconds": self.seconds}

    def __setstate__(self, state):
        self.__init__(**state)

    @property
    def _state_path(self) -> Path:
        return Path(self.path) / f"chain_{self.chain}.json"

    def _arrays(self):
        if self._group is None:
            self._group = _zarr().open_group(str(Path(self.path) / "draws.zarr"), mode="r+")[f"chain_{self.chain}"]
        return self._group

    def load(self) -> dict | None:
        """The saved ``chain_c.json`` of this chain, or None."""
        try:
            return json.loads(self._state_path.read_text())
        except FileNotFoundError:
            return None
        except (ValueError, UnicodeDecodeError) as error:  # written atomically: only damage from outside
            raise CheckpointError(
                f"checkpoint {self.path!r}: {self._state_path.name} is damaged ({error}); pass overwrite=True to "
                "start over, or restore the file") from None

    def resume(self, draws: np.ndarray, stats: dict):
        """Fill ``draws``/``stats`` with the saved rows and return ``(iteration, state, totals)``.

        Returns None when the chain has not saved yet. With fewer draws asked for than saved,
        the iteration is capped at ``tune + len(draws)`` only if the chain had reached it.
        """
        saved = self.load()
        if saved is None:
            return None
        iteration = int(saved["iteration"])
        total = self.tune + draws.shape[0]
        if iteration > total:
            iteration = total  # fewer draws than saved: the first ones are the result
        rows = max(0, iteration - self.tune)
        if rows:
            group = self._arrays()
            draws[:rows] = group["draws"][:rows]
            for name, values in stats.items():
                values[:rows] = group[name][:rows]
        self._rows = rows
        self._last = time.monotonic()
        return iteration, from_jsonable(saved["state"]), saved["totals"]

    def due(self, done: int) -> bool:
        """Whether to save after iteration ``done`` (also when a stop was requested)."""
        if _STOP.is_set():
            return True
        if self.every:
            return done % self.every == 0
        return time.monotonic() - self._last >= self.seconds

    def save(self, done: int, state, draws: np.ndarray, stats: dict, totals: dict) -> None:
        """Write the draws since the last save, then commit ``state`` at iteration ``done``.

        Raises ``KeyboardInterrupt`` / ``SystemExit`` afterwards when a stop was requested.
        """
        rows = max(0, min(done - self.tune, draws.shape[0]))
        if rows > self._rows:
            group = self._arrays()
            group["draws"][self._rows:rows] = draws[self._rows:rows]
            for name, values in stats.items():
                group[name][self._rows:rows] = values[self._rows:rows]
        payload = {"iteration": int(done), "state": to_jsonable(state),
                   "totals": {k: (float(v) if isinstance(v, float) else int(v)) for k, v in totals.items()}}
        _write_atomic(self._state_path, json.dumps(payload).encode())
        self._rows = rows
        self._last = time.monotonic()
        if _STOP.is_set():
            _raise_stop()


def _raise_stop():
    if _SIGNAL["number"] == signal.SIGTERM:
        raise SystemExit(128 + signal.SIGTERM)
    raise KeyboardInterrupt


def stop_requested() -> bool:
    """Whether SIGINT/SIGTERM asked the checkpointed chains of this process to stop."""
    return _STOP.is_set()


def stop_signal():
    """The signal number (SIGINT or SIGTERM) that asked this process's chains to stop, or None."""
    return _SIGNAL["number"] if _STOP.is_set() else None


@contextlib.contextmanager
def handle_signals():
    """While active (main thread only), SIGINT and SIGTERM ask the chains to save and stop."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(number, frame):
        _SIGNAL["number"] = number
        _STOP.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    _STOP.clear()
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        stopped = _STOP.is_set()
        _STOP.clear()
    if stopped:
        _raise_stop()


# --------------------------------------------------------------------------- #
# Reading
# --------------------------------------------------------------------------- #


def read_checkpoint(path, model=None, *, chains=None, coords=None):
    """The draws of a checkpoint so far, as ``arviz.InferenceData`` (also while the run goes on).

    Parameters
    ----------
    path : str or os.PathLike
        The ``checkpoint=`` path of a ``pa.sample`` call.
    model : ppl_ad.model.Model or LogDensity, optional
        To convert the draws to model space; default: the model recipe saved in the
        checkpoint. Without one that loads, the posterior holds the unconstrained coordinates
        (named as in ``LogDensity``'s flat layout) and a warning says so.
    chains : list of int or "started", optional
        The chains to read (their indices). Default: every chain. ``"started"``: the chains
        with at least one draw, so that chains run one after another give the finished ones
        while the later ones have not started.
    coords : dict, optional
        Labels of the axes the sites name with ``dims=``, as for :func:`ppl_ad.sample` (the axes
        are named by the sites' dims without them too).

    Returns
    -------
    arviz.InferenceData
        ``posterior``, ``sample_stats`` and (with the model) ``observed_data``, with as many draws as
        every chain read has committed
        (``attrs["draws_per_chain"]`` gives each chain's count, ``attrs["iterations"]`` the
        iterations each chain has done, warmup included, and ``attrs["chains_read"]`` the chains
        in the posterior).

    Raises
    ------
    ppl_ad.errors.CheckpointError
        PATH holds no ppl_ad checkpoint, or ``chains`` names a chain it does not have (or
        ``"started"`` finds none).
    """
    zarr = _zarr()
    root = Path(path)
    try:
        group = zarr.open_group(str(root / "draws.zarr"), mode="r")
        meta = group.attrs[_ATTR]
    except Exception as error:  # noqa: BLE001 - any failure: there is no readable checkpoint
        raise CheckpointError(f"{str(root)!r} holds no ppl_ad checkpoint ({type(error).__name__}: {error})") from None
    tune, total = int(meta["fingerprint"]["tune"]), int(meta["chains"])
    iterations = []
    for c in range(total):
        saved = ChainCheckpoint(str(root), c, tune).load()
        iterations.append(int(saved["iteration"]) if saved else 0)
    per_chain = [max(0, min(i - tune, int(meta["draws"]))) for i in iterations]
    if chains is None:
        chains = list(range(total))
    elif isinstance(chains, str) and chains == "started":
        chains = [c for c in range(total) if per_chain[c] > 0]
        if not chains:
            raise CheckpointError(f"{str(root)!r}: no chain has committed a draw yet (iterations so far: {iterations})")
    else:
        if isinstance(chains, (int, np.integer)) and not isinstance(chains, bool):
            chains = [chains]
        if isinstance(chains, str) or not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool)
                                              for c in (chains if hasattr(chains, "__iter__") else [chains])):
            raise CheckpointError(f"read_checkpoint: chains={chains!r}; expected None, 'started', a chain index or "
                                  "a list of them")
        chains = [int(c) for c in chains]
        if not chains or any(not 0 <= c < total for c in chains):
            raise CheckpointError(f"{str(root)!r} has chains 0..{total - 1}; chains={chains} asks for others")
    n = min(per_chain[c] for c in chains)
    from ppl_ad.infer.chain import ChainResult

    results = []
    for c in chains:
        chain = group[f"chain_{c}"]
        stats = {name: np.asarray(chain[name][:n]) for name in chain.array_keys() if name != "draws"}
        results.append(ChainResult(np.asarray(chain["draws"][:n]), stats, np.nan, np.empty(0), 0.0, 0.0, 0))
    if model is None and (root / "model.pkl").exists():
        model = _load_model(root / "model.pkl")
    attrs = {**meta["fingerprint"], "draws_per_chain": per_chain, "iterations": iterations, "checkpoint": str(root),
             "chains_read": chains}
    return _inference_data(model, results, meta["names"], attrs, coords)


def model_recipe(ld) -> bytes | None:
    """The bytes that :func:`read_checkpoint` turns back into the model (cloudpickle), or None."""
    model = getattr(ld, "model", None)
    function = getattr(model, "function", None)
    if function is None:
        return None
    try:
        import cloudpickle

        return cloudpickle.dumps((function.fn, function.name, function.backend, model.data))
    except Exception:  # noqa: BLE001 - read_checkpoint then shows unconstrained draws
        return None


def _load_model(path: Path):
    import pickle

    from ppl_ad.model.model import Model, ModelFunction

    try:
        fn, name, backend, data = pickle.loads(path.read_bytes())
        return Model(ModelFunction(fn, name, backend), data)
    except Exception:  # noqa: BLE001 - the caller falls back to unconstrained draws
        return None


def _inference_data(model, results, names, attrs, coords=None):
    import warnings

    from ppl_ad.infer.results import group_labels, make_groups, model_space_draws, site_dims

    stats = {key: np.stack([r.stats[key] for r in results]) for key in results[0].stats}
    if model is not None and not hasattr(model, "constrain"):
        from ppl_ad.logdensity import logdensity

        model = logdensity(model, backend="finite-difference", prepare=False)  # only to constrain
    if model is None:
        warnings.warn(
            f"read_checkpoint: the model could not be rebuilt from {attrs['checkpoint']!r}; the posterior holds "
            "the unconstrained coordinates (pass model=... to get model-space values)", UserWarning, stacklevel=3,
        )
        flat = np.stack([r.draws for r in results])
        posterior = {name: flat[..., k] for k, name in enumerate(names)}
        return make_groups({"posterior": posterior, "sample_stats": stats}, {}, {}, attrs=attrs)
    groups = {"posterior": model_space_draws(model, results), "sample_stats": stats,
              "observed_data": {k: np.asarray(v) for k, v in (model.observed_data() or {}).items()}}
    named = site_dims(getattr(getattr(model, "compiled", None), "sites", None) or {})
    dims, used = group_labels(groups, named, coords, where="read_checkpoint")
    return make_groups(groups, dims, used, attrs=attrs)
