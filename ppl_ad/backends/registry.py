"""The registry of AD backends: lookup by name, listing, the tested set, preparation.

Every backend implementation module has the same contract::

    prepare(compiled: CompiledModel, backend: Backend) -> Prepared

and is imported only by :func:`prepare`, so ``import ppl_ad`` imports no AD library.
"""

from __future__ import annotations

import difflib
import importlib
import time

from ppl_ad._deprecations import check_backend
from ppl_ad.backends.base import (
    REFERENCE, REMOVED, SUPPORTED, JAX, Autograd, Backend, FiniteDifference, JAXForward, Prepared,
    SymPy, Torch, TorchForward,
)
from ppl_ad.table import Table
from ppl_ad.errors import BackendUnavailableError, UnknownBackendError

__all__ = [
    "REGISTRY", "get", "names", "all_backends", "tested", "list", "prepare", "check_preparable", "BackendTable",
    "sampling_warning",
]

_list = list

REGISTRY: dict[str, type[Backend]] = {
    cls.name: cls for cls in (JAX, JAXForward, Torch, TorchForward, Autograd, FiniteDifference, SymPy)
}


def names() -> _list[str]:
    """Names of every registered backend."""
    return _list(REGISTRY)


def get(backend, *, warn: bool = True) -> Backend:
    """Return the backend value for a name or a value.

    Raises
    ------
    UnknownBackendError
        For an unknown name; the message lists the valid names and the closest match.
    """
    if isinstance(backend, Backend):
        value = backend
    elif isinstance(backend, str):
        cls = REGISTRY.get(backend.strip().lower())
        if cls is None:
            close = difflib.get_close_matches(backend.lower(), REGISTRY, n=1, cutoff=0.5)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise UnknownBackendError(
                f"unknown AD backend {backend!r}.{hint} Valid names: {', '.join(REGISTRY)}"
                + (", auto" if backend != "auto" else "")
            )
        value = cls()
    else:
        raise UnknownBackendError(
            f"a backend is a name ({', '.join(REGISTRY)}) or a value such as "
            f"ppl_ad.backends.JAX(); got {backend!r}"
        )
    if warn:
        check_backend(value.name)
    return value


def all_backends() -> _list[Backend]:
    """One default value of every registered backend."""
    return [cls() for cls in REGISTRY.values()]


def tested() -> _list[Backend]:
    """The backends our test matrix runs: supported ones, except the finite-difference reference.

    Deprecated, experimental and removed backends are excluded.
    """
    return [b for b in all_backends() if b.status == SUPPORTED and b.mode != "reference"]


class BackendTable(Table):
    """Rows describing backends (a list of dicts) that prints as a table."""

    columns = ("name", "mode", "library", "version", "status")


def list() -> BackendTable:  # noqa: A001 - public name pa.backends.list()
    """Every backend with its mode, library, installed version (or "not installed") and status."""
    rows = BackendTable()
    for backend in all_backends():
        version = backend.library_version() if backend.is_available() else None
        rows.append(
            {
                "name": backend.name,
                "mode": backend.mode,
                "library": backend.library,
                "version": version or "not installed",
                "status": backend.status,
            }
        )
    return rows


def check_preparable(backend: Backend) -> None:
    """Raise now what :func:`prepare` would raise before any work: removed or not installed."""
    if backend.status == REMOVED:
        check_backend(backend.name)
    if not backend.is_available():
        raise BackendUnavailableError(
            f"AD backend '{backend.name}' needs the '{backend.library}' library, which is not "
            f"installed; install it with: pip install 'ppl_ad[{backend.extra}]'"
        )


def prepare(compiled, backend: Backend) -> Prepared:
    """Prepare ``compiled`` for ``backend`` (import its library, trace/compile once)."""
    check_preparable(backend)
    module = importlib.import_module(backend.implementation)
    start = time.perf_counter()
    prepared = module.prepare(compiled, backend)
    prepared.prepare_seconds = time.perf_counter() - start
    return prepared


def sampling_warning(backend) -> str | None:
    """The warning to give when someone samples with ``backend``, or None when there is none.

    A backend whose status is ``reference`` (``finite-difference``) is correct but costs
    ``4 d + 1`` log-density evaluations per gradient and is meant for tests and
    :func:`ppl_ad.check_gradients`, never for sampling. ``pa.sample`` emits the message as a
    :class:`~ppl_ad.errors.SamplingWarning`.

    Parameters
    ----------
    backend : str or Backend
        A name or a value (an unknown name raises :class:`~ppl_ad.errors.UnknownBackendError`).

    Returns
    -------
    str or None
    """
    value = get(backend, warn=False)
    if value.status != REFERENCE:
        return None
    installed = [name for name in ("jax", "autograd", "torch") if get(name, warn=False).is_available()]
    advice = (
        f"Use backend='{installed[0]}' or backend='auto'." if installed
        else "Install an AD backend (pip install 'ppl_ad[jax]') and use backend='jax'."
    )
    return (
        f"sampling with backend '{value.name}', a reference implementation for tests and check_gradients: "
        f"each gradient costs 4 d + 1 log-density evaluations (d = the dimension) and is exact only to "
        f"about 1e-9. {advice}"
    )
