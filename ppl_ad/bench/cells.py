"""What every benchmark cell process shares: its output protocol, names, models and machine.

This module owns the plumbing below :mod:`ppl_ad.bench.cli`, :mod:`ppl_ad.bench._cell` and
:mod:`ppl_ad.bench.sampling`: a cell prints its rows as JSON lines prefixed :data:`PREFIX`
(so a crash, a hang or a library printing to stdout cannot corrupt a matrix) and
:func:`run_subprocess` collects them; :func:`check_names` turns an unknown backend or model
name into an error with the closest known name; :func:`load_model` finds the user's bound
model behind ``--model path/to/file.py:NAME``; :func:`machine_info` describes the machine for
the reports.
"""

from __future__ import annotations

import datetime
import difflib
import importlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from ppl_ad.errors import ModelError, UnknownBackendError

__all__ = ["PREFIX", "run_subprocess", "check_names", "load_model", "machine_info", "split_names", "command_line"]

#: the prefix of a cell's result lines on its stdout
PREFIX = "CELL "


def check_names(given: list[str], known, what: str) -> list[str]:
    """``given`` when every name is in ``known``; else an error naming the first unknown one.

    Raises
    ------
    UnknownBackendError
        For ``what == "backend"``, with the closest known name (:mod:`difflib`).
    ModelError
        For ``what == "model"``.
    """
    known = list(known)
    for name in given:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            error = UnknownBackendError if what == "backend" else ModelError
            raise error(f"unknown {what} {name!r}.{hint} Known {what}s: {', '.join(known)}")
    return given


def load_model(reference: str):
    """The bound model named by ``path/to/file.py:NAME`` or ``package.module:NAME``.

    ``NAME`` (dotted for an attribute of an attribute) must be a :class:`ppl_ad.model.Model`,
    i.e. a ``@pa.model`` function already called with its data. A file is executed as a
    module with its own folder on ``sys.path``; a module is imported with the current folder
    on ``sys.path``.

    Raises
    ------
    ModelError
        When the file, module or name does not exist, or the object is not a bound model.
    """
    from ppl_ad.model.model import Model, ModelFunction

    source, sep, name = reference.rpartition(":")
    if not sep or not source or not name:
        raise ModelError(f"--model {reference!r}: expected path/to/file.py:NAME or module:NAME")
    if source.endswith(".py") or os.sep in source or "/" in source:
        path = Path(source).expanduser().resolve()
        if not path.is_file():
            raise ModelError(f"--model {reference!r}: no file {path}")
        module_name = f"_ppl_ad_bench_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        sys.path.insert(0, str(path.parent))
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ModelError(f"--model {reference!r}: running {path} raised {type(exc).__name__}: {exc}") from exc
        finally:
            sys.path.remove(str(path.parent))
    else:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(source)
        except ModuleNotFoundError as exc:
            raise ModelError(f"--model {reference!r}: cannot import module {source!r} ({exc})") from exc
    obj = module
    for part in name.split("."):
        if not hasattr(obj, part):
            models = [k for k, v in vars(module).items() if isinstance(v, Model)]
            close = difflib.get_close_matches(part, models or list(vars(module)), n=1, cutoff=0.5)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            found = f" Bound models there: {', '.join(models)}." if models else ""
            raise ModelError(f"--model {reference!r}: {source} has no {part!r}.{hint}{found}")
        obj = getattr(obj, part)
    if isinstance(obj, ModelFunction):
        raise ModelError(
            f"--model {reference!r} is the @pa.model function '{obj.name}' without its data; bind the data in "
            f"{source} (e.g. my_model = {name}(y=y, ...)) and pass that name"
        )
    if not isinstance(obj, Model):
        raise ModelError(f"--model {reference!r} is a {type(obj).__name__}, not a ppl_ad model with its data bound")
    return obj


def run_subprocess(cmd: list[str], base: dict, status_key: str, timeout: float, env=None) -> list[dict]:
    """Rows printed by the cell process ``cmd``; a timeout or crash becomes a row of its own."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=None if env is None else {**os.environ, **env})
    except subprocess.TimeoutExpired:
        return [{**base, status_key: "timeout", "note": f"no result within {timeout:g} s"}]
    rows = [json.loads(line[len(PREFIX):]) for line in done.stdout.splitlines() if line.startswith(PREFIX)]
    if done.returncode != 0 or not rows:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        message = lines[-1] if lines else f"exit status {done.returncode}"
        rows.append({**base, status_key: "error", "note": f"cell process failed ({done.returncode}): {message[:300]}"})
    return rows


def machine_info(command: str = "") -> dict:
    """CPU, cores, Python and library versions, date and the command line."""
    import importlib.metadata

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {}
    for dist_name in ("ppl_ad", "numpy", "jax", "jaxlib", "torch", "autograd", "sympy", "pymc", "numpyro"):
        try:
            versions[dist_name] = importlib.metadata.version(dist_name)
        except importlib.metadata.PackageNotFoundError:
            versions[dist_name] = "not installed"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
    }


def split_names(text) -> list[str]:
    """Comma-separated names as a list (empty for None or "")."""
    return [x.strip() for x in text.split(",") if x.strip()] if text else []


def command_line(default: str) -> str:
    """The ``ppl-ad ...`` command this process runs, else ``default`` (for the reports)."""
    return "ppl-ad " + " ".join(sys.argv[1:]) if sys.argv and "ppl" in sys.argv[0] else default
