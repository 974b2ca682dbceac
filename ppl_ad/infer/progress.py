"""Progress bars for sampling: one tqdm bar per chain.

This module owns the display of sampling progress. The parent process draws one
bar per chain (:class:`ProgressBars`); a chain reports through a throttled
callback (:class:`ChainProgress`), which either updates the bars directly (chains
run in-process) or puts ``(chain, done, tuning, divergences)`` messages on a
``multiprocessing`` queue that the parent drains (chains run in worker
processes). Bars are shown only when asked for and when ``stderr`` is a terminal.
"""

from __future__ import annotations

import sys
import time
from typing import Callable

__all__ = ["ProgressBars", "ChainProgress", "progress_enabled"]


def progress_enabled(progressbar: bool) -> bool:
    """Whether to draw bars: requested, and ``sys.stderr`` is a terminal."""
    if not progressbar:
        return False
    stream = sys.stderr
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):
        return False


class ProgressBars:
    """One bar per chain, showing the phase and the divergences so far.

    Parameters
    ----------
    chains : int
    tune, draws : int
        Warmup and sampling iterations per chain.
    """

    def __init__(self, chains: int, tune: int, draws: int):
        from tqdm.auto import tqdm

        self._tune = tune
        self._bars = [
            tqdm(
                total=tune + draws,
                desc=self._describe(c, tune > 0),
                position=c,
                file=sys.stderr,
                leave=True,
                dynamic_ncols=True,
                unit="it",
            )
            for c in range(chains)
        ]
        self._tuning = [tune > 0] * chains

    @staticmethod
    def _describe(chain: int, tuning: bool) -> str:
        return f"Chain {chain} {'warmup' if tuning else 'sampling'}"

    def update(self, chain: int, done: int, tuning: bool, divergences: int) -> None:
        """Show that ``chain`` has finished ``done`` iterations of its phase.

        Parameters
        ----------
        chain : int
        done : int
            Iterations done in the current phase.
        tuning : bool
            The chain is in warmup.
        divergences : int
            Divergences so far in the current phase.
        """
        bar = self._bars[chain]
        total_done = done if tuning else self._tune + done
        if tuning != self._tuning[chain]:
            self._tuning[chain] = tuning
            bar.set_description_str(self._describe(chain, tuning), refresh=False)
        bar.set_postfix_str(f"{divergences} divergences", refresh=False)
        bar.update(total_done - bar.n)

    def close(self) -> None:
        for bar in self._bars:
            bar.close()


class ChainProgress:
    """Throttled progress callback of one chain (``run_chain``'s ``progress``).

    Parameters
    ----------
    chain : int
    sink : callable
        ``sink(chain, done, tuning, divergences)``: :meth:`ProgressBars.update`
        or a queue's ``put`` wrapped accordingly.
    tune, draws : int
        Lengths of the phases (the last iteration of each is always reported).
    min_interval : float, optional
        Seconds between reports.
    """

    __slots__ = ("_chain", "_sink", "_tune", "_draws", "_min_interval", "_next_time", "_tuning")

    def __init__(self, chain: int, sink: Callable, tune: int, draws: int, min_interval: float = 0.1):
        self._chain = chain
        self._sink = sink
        self._tune = tune
        self._draws = draws
        self._min_interval = min_interval
        self._next_time = 0.0
        self._tuning = None

    def __call__(self, done: int, tuning: bool, divergences: int) -> None:
        now = time.monotonic()
        last = done == (self._tune if tuning else self._draws)
        if now >= self._next_time or last or tuning != self._tuning:
            self._tuning = tuning
            self._next_time = now + self._min_interval
            self._sink(self._chain, done, tuning, divergences)
