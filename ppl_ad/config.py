"""Configuration: ``[tool.ppl_ad]`` in the nearest ``pyproject.toml``, or ``ppl_ad.toml``.

Read with :mod:`tomllib`. The schema::

    [tool.ppl_ad]                      # in ppl_ad.toml the [tool.ppl_ad] header is optional
    backend = "jax"                    # default backend for every model
    [tool.ppl_ad.models.eight_schools]
    backend = "jax-forward"            # per-model backend

Invalid configuration (unknown key, unknown backend, wrong type) raises
:class:`~ppl_ad.errors.ConfigError` naming the file and key. :func:`resolve_backend`
applies the precedence rules and says which rule chose the backend. Model names are only
known when a model is resolved, so a ``[tool.ppl_ad.models.NAME]`` section whose name is a
near miss of the model being resolved (``eight_shools`` for ``eight_schools``) gives a
``UserWarning`` then, once per file, section and model. An unknown backend name in the
``PPL_AD_BACKEND`` environment variable raises an error that names the variable.
"""

from __future__ import annotations

import difflib
import os
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ppl_ad.errors import ConfigError, UnknownBackendError

__all__ = ["Config", "load_config", "find_config_file", "resolve_backend", "ENV_VAR", "DEFAULT_BACKEND"]

ENV_VAR = "PPL_AD_BACKEND"
DEFAULT_BACKEND = "jax"
_TOP_KEYS = {"backend", "models"}
_MODEL_KEYS = {"backend"}


@dataclass
class Config:
    """Parsed configuration: default backend, per-model backends, and the file they came from."""

    path: Path | None = None
    backend: str | None = None
    models: dict = field(default_factory=dict)
    #: every ``[tool.ppl_ad.models.NAME]`` section name, with or without a backend
    model_sections: list = field(default_factory=list)


def find_config_file(start: Path | None = None) -> Path | None:
    """The nearest ``ppl_ad.toml`` or ``pyproject.toml`` with a ``[tool.ppl_ad]`` table."""
    directory = Path(start or os.getcwd()).resolve()
    for folder in (directory, *directory.parents):
        candidate = folder / "ppl_ad.toml"
        if candidate.is_file():
            return candidate
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            try:
                if "ppl_ad" in _read(candidate).get("tool", {}):
                    return candidate
            except ConfigError:
                raise
    return None


def _read(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None


def _check_backend_name(path, key, value):
    from ppl_ad.backends import registry

    if not isinstance(value, str):
        raise ConfigError(f"{path}: key '{key}' must be a string backend name, got {value!r}")
    if value == "auto":
        return value
    try:
        registry.get(value, warn=False)
    except UnknownBackendError as error:
        raise ConfigError(f"{path}: key '{key}': {error}") from None
    return value


def load_config(path: Path | None = None) -> Config:
    """Load and validate the configuration file (the nearest one when ``path`` is None)."""
    path = path or find_config_file()
    if path is None:
        return Config()
    path = Path(path)
    raw = _read(path)
    section = raw.get("tool", {}).get("ppl_ad") if path.name == "pyproject.toml" else raw.get("tool", {}).get("ppl_ad", raw)
    if section is None:
        return Config(path=path)
    prefix = "tool.ppl_ad"
    unknown = sorted(set(section) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key '{prefix}.{unknown[0]}' (known: {sorted(_TOP_KEYS)})")
    config = Config(path=path)
    if "backend" in section:
        config.backend = _check_backend_name(path, f"{prefix}.backend", section["backend"])
    models = section.get("models", {})
    if not isinstance(models, dict):
        raise ConfigError(f"{path}: key '{prefix}.models' must be a table of model names")
    config.model_sections = list(models)
    for name, entry in models.items():
        key = f"{prefix}.models.{name}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: key '{key}' must be a table, e.g. [{key}] backend = \"jax\"")
        bad = sorted(set(entry) - _MODEL_KEYS)
        if bad:
            raise ConfigError(f"{path}: unknown key '{key}.{bad[0]}' (known: {sorted(_MODEL_KEYS)})")
        if "backend" in entry:
            config.models[name] = _check_backend_name(path, f"{key}.backend", entry["backend"])
    return config


_warned: set = set()


def _warn_near_miss(config: Config, name: str) -> None:
    """Warn when a model section's name is a near miss of ``name`` (a likely misspelling)."""
    if name in config.model_sections:
        return
    close = difflib.get_close_matches(name, config.model_sections, n=1, cutoff=0.8)
    if not close or (config.path, close[0], name) in _warned:
        return
    _warned.add((config.path, close[0], name))
    warnings.warn(
        f"{config.path}: [tool.ppl_ad.models.{close[0]}] does not apply to model '{name}' (model sections "
        f"match the model's name exactly); did you mean [tool.ppl_ad.models.{name}]?",
        UserWarning,
        stacklevel=3,
    )


def _check_environment(value: str) -> str:
    """``value`` of ``PPL_AD_BACKEND`` when it names a backend (or ``auto``), else an error saying so."""
    from ppl_ad.backends import registry

    if value.strip().lower() == "auto":
        return value.strip().lower()
    try:
        registry.get(value, warn=False)
    except UnknownBackendError as error:
        raise UnknownBackendError(
            f"environment variable {ENV_VAR}={value!r} (unset it or set a valid backend): {error}"
        ) from None
    return value


def resolve_backend(model, backend=None, config: Config | None = None):
    """Choose the backend for ``model``; return ``(backend spec, source)``.

    Precedence, highest first: the ``backend=`` argument > ``@pa.model(backend=...)`` > a
    per-model entry in the config file > the ``PPL_AD_BACKEND`` environment variable > the
    config file's default > the built-in default (``jax``, or the first installed of
    autograd / torch when JAX is missing).

    The spec is a backend name or value (possibly ``"auto"``); ``source`` says which rule chose it.
    """
    if backend is not None:
        return backend, "argument backend="
    if model.backend is not None:
        return model.backend, f"@pa.model(backend=...) on '{model.name}'"
    config = load_config() if config is None else config
    if model.name in config.models:
        return config.models[model.name], f"{config.path} [tool.ppl_ad.models.{model.name}]"
    _warn_near_miss(config, model.name)
    env = os.environ.get(ENV_VAR)
    if env:
        return _check_environment(env), f"environment variable {ENV_VAR}"
    if config.backend is not None:
        return config.backend, f"{config.path} [tool.ppl_ad] backend"
    from ppl_ad.backends import registry

    for name in (DEFAULT_BACKEND, "autograd", "torch"):
        if registry.get(name, warn=False).is_available():
            return name, "built-in default"
    return "finite-difference", "built-in default (no AD library installed)"


def cache_root() -> Path:
    """ppl_ad's cache folder: ``$PPL_AD_CACHE_DIR`` or the platform's user cache folder.

    ``backend="auto"`` keeps its decisions in ``auto/`` below it, the JAX backends and the
    compiled engine their compiled programs in ``xla/`` (JAX's persistent compilation cache).
    """
    root = os.environ.get("PPL_AD_CACHE_DIR")
    if not root:
        import platformdirs

        root = platformdirs.user_cache_dir("ppl_ad")
    return Path(root)


def enable_compilation_cache() -> Path:
    """Turn on JAX's persistent compilation cache in ``cache_root() / "xla"`` (call before compiling).

    Programs that take longer than 0.2 s to compile are kept, keyed by JAX on the program itself
    (so on the model, its data shapes and the sampler settings), so a new process skips compiling
    them again.

    Returns
    -------
    pathlib.Path
    """
    import jax

    folder = cache_root() / "xla"
    if jax.config.jax_compilation_cache_dir != str(folder):
        folder.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(folder))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder
