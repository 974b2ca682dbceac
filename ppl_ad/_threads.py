"""Per-thread state of model evaluations.

This module owns :class:`ThreadStack`: the stacks that say which handler receives a model's
primitives (:data:`ppl_ad.model.primitives.HANDLERS`) and which array library Python numbers
follow (:func:`ppl_ad.math.using`). An evaluation pushes onto them and pops when it ends; with
one process-wide list, two threads evaluating at once (chains under a ``ThreadPoolExecutor``, a
user's own threads) would hand their primitives to each other's handlers.
"""

from __future__ import annotations

import threading

__all__ = ["ThreadStack"]


class ThreadStack(threading.local):
    """A stack of which each thread sees its own copy, starting from ``initial``.

    Parameters
    ----------
    *initial
        The bottom items of every thread's stack.
    """

    def __init__(self, *initial):
        self._items = list(initial)

    def append(self, item) -> None:
        self._items.append(item)

    def pop(self):
        return self._items.pop()

    def __getitem__(self, index):
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __iter__(self):
        return iter(self._items)

    def __repr__(self) -> str:
        return f"ThreadStack({self._items!r})"
