"""Misspelled and foreign keyword arguments of the public functions: a did-you-mean error.

This module owns :func:`check_keywords` and the decorator :func:`checks_keywords`. Users coming
from PyMC, NumPyro, Stan or BlackJAX type ``num_warmup=``, ``random_seed=`` or ``trace=``; Python's
own ``TypeError`` names the keyword but not what to write instead. The error raised here, an
:class:`UnexpectedKeywordError`, is both a :class:`~ppl_ad.errors.ConfigError` and the
``TypeError`` Python would raise, names the closest accepted keyword (or the ppl_ad name of the
other library's), and lists the accepted ones.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Mapping

from ppl_ad.errors import ConfigError

__all__ = ["check_keywords", "checks_keywords", "UnexpectedKeywordError", "ALIASES"]

#: what users of other PPLs type, and the ppl_ad names it may mean (the first one the function takes)
ALIASES = {
    "num_warmup": ("tune",), "warmup": ("tune",), "n_warmup": ("tune",), "iter_warmup": ("tune",),
    "num_tune": ("tune",), "num_samples": ("draws",), "samples": ("draws",), "n_samples": ("draws",),
    "iter_sampling": ("draws",), "num_draws": ("draws",), "num_chains": ("chains",), "n_chains": ("chains",),
    "random_seed": ("seed",), "rng_key": ("seed",), "adapt_delta": ("target_accept",),
    "max_depth": ("max_treedepth",), "max_tree_depth": ("max_treedepth",), "initvals": ("init", "start"),
    "inits": ("init", "start"), "progress_bar": ("progressbar",), "dense_mass": ("metric",),
    "step_size": ("target_accept",), "num_cores": ("cores",), "n_jobs": ("cores",),
    "idata_kwargs": ("log_likelihood",), "nuts_sampler": ("engine",), "trace": ("idata",), "extend_inference_data": ("extend_inferencedata",),
}


class UnexpectedKeywordError(ConfigError, TypeError):
    """A misspelled keyword: a ConfigError that is also the TypeError Python would raise."""


def _accepted(function) -> list[str]:
    import inspect

    return [name for name, p in inspect.signature(function).parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def check_keywords(function, given: Mapping) -> None:
    """Raise an :class:`UnexpectedKeywordError` for keywords ``function`` does not take.

    Parameters
    ----------
    function : callable
        The function whose signature lists the accepted keywords.
    given : mapping
        The keywords passed.

    Raises
    ------
    UnexpectedKeywordError
        Naming each unknown keyword with the closest accepted one.
    """
    accepted = _accepted(function)
    unknown = [name for name in given if name not in accepted]
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = next((a for a in ALIASES.get(name, ()) if a in accepted), None)
        close = close or next(iter(difflib.get_close_matches(name, accepted, n=1, cutoff=0.6)), None)
        hints.append(f"{name!r} (did you mean {close!r}?)" if close else repr(name))
    raise UnexpectedKeywordError(
        f"{function.__name__}() got unexpected keyword argument{'s' if len(unknown) > 1 else ''} "
        f"{', '.join(hints)}; it accepts: {', '.join(accepted)}"
    )


def checks_keywords(function):
    """``function`` that raises :func:`check_keywords`'s error for a keyword it does not take (the
    signature is read on the first call with keywords)."""
    accepted: list = []

    @functools.wraps(function)
    def checked(*args, **kwargs):
        if kwargs:
            if not accepted:
                accepted.append(frozenset(_accepted(function)))
            if not accepted[0].issuperset(kwargs):
                check_keywords(function, kwargs)
        return function(*args, **kwargs)

    return checked
