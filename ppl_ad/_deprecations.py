"""The one deprecation mechanism of ppl_ad.

A :class:`Deprecation` records what is deprecated, since which version, the version that
removes it (two minor releases later), why, and what to use instead. :func:`check` warns
once per process with :class:`~ppl_ad.errors.PplAdDeprecationWarning` while the feature is
deprecated and raises :class:`~ppl_ad.errors.BackendRemovedError` once the running version
reaches the removal version. The warning points at the first frame outside ppl_ad (the
user's line).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import warnings
from dataclasses import dataclass

from ppl_ad.errors import BackendRemovedError, PplAdDeprecationWarning

__all__ = ["Deprecation", "BACKEND_DEPRECATIONS", "check_backend", "current_version", "user_stacklevel", "reset",
           "quiet"]


@dataclass(frozen=True)
class Deprecation:
    """A deprecated feature and its timeline."""

    what: str
    since: str
    removed_in: str
    reason: str
    replacement: str
    docs: str = "docs/migration.md"

    def message(self, removed: bool = False) -> str:
        if removed:
            head = f"{self.what} was deprecated in ppl_ad {self.since} and removed in {self.removed_in}."
        else:
            head = (
                f"{self.what} is deprecated since ppl_ad {self.since} and will be removed in "
                f"ppl_ad {self.removed_in}."
            )
        return f"{head} Why: {self.reason} Instead: {self.replacement} Read more: {self.docs}"


BACKEND_DEPRECATIONS = {
    "sympy": Deprecation(
        what="The 'sympy' AD backend (mode: source-transform)",
        since="0.1.0",
        removed_in="0.3.0",
        reason=(
            "its symbolic expression grows with the data (a logistic regression with thousands "
            "of rows takes minutes to compile), it cannot follow Python control flow on "
            "parameter values, and every distribution needs a symbolic twin."
        ),
        replacement=(
            "backend='jax' for most models (backend='jax-forward' can match it on models with a "
            "handful of parameters); compare them on your model with "
            "pa.benchmark(model) and check for uses with `ppl-ad migrate`."
        ),
    ),
}

_WARNED: set = set()
_QUIET = threading.local()


@contextlib.contextmanager
def quiet():
    """Inside this block :func:`check_backend` neither warns nor counts the warning as shown: for
    ppl_ad's own tools that try every backend (``pa.benchmark``, ``pa.check_gradients``,
    ``recommend``), after which the user's own use of a deprecated backend must still warn."""
    previous = getattr(_QUIET, "on", False)
    _QUIET.on = True
    try:
        yield
    finally:
        _QUIET.on = previous


def reset() -> None:
    """Forget which deprecation warnings were shown, so they show again (for tests)."""
    _WARNED.clear()


def current_version() -> str:
    """The running ppl_ad version (tests patch this to simulate a later release)."""
    from ppl_ad._version import __version__

    return __version__


def _version_tuple(version: str) -> tuple:
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def user_stacklevel() -> int:
    """``stacklevel`` for ``warnings.warn`` called from here that lands on the user's frame."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] == "ppl_ad":
        frame = frame.f_back
        level += 1
    return level


def check_backend(name: str) -> None:
    """Warn (once per process) or raise if backend ``name`` is deprecated or removed."""
    deprecation = BACKEND_DEPRECATIONS.get(name)
    if deprecation is None:
        return
    if _version_tuple(current_version()) >= _version_tuple(deprecation.removed_in):
        raise BackendRemovedError(deprecation.message(removed=True))
    if name in _WARNED or getattr(_QUIET, "on", False):
        return
    _WARNED.add(name)
    warnings.warn(deprecation.message(), PplAdDeprecationWarning, stacklevel=user_stacklevel())
