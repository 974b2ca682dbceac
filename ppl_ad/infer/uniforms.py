"""Buffered uniform random numbers for the samplers' accept/reject decisions.

NUTS needs one uniform draw per direction choice and per subtree merge, i.e.
about one per leapfrog step. Calling ``Generator.random()`` for each costs about
a microsecond; :class:`UniformStream` draws them in blocks from the chain's
generator and hands them out as Python floats. The stream is a deterministic
function of the generator state, so a seeded chain is reproducible.
"""

from __future__ import annotations

import numpy as np

__all__ = ["UniformStream"]


class UniformStream:
    """Callable returning uniform(0, 1) Python floats drawn in blocks.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the draws (``rng.random(block_size)`` per block).
    block_size : int, optional
        Number of draws per block.

    Examples
    --------
    >>> u = UniformStream(np.random.default_rng(0))
    >>> 0.0 <= u() < 1.0
    True
    """

    __slots__ = ("_rng", "_buffer", "_block_size")

    def __init__(self, rng: np.random.Generator, block_size: int = 256):
        self._rng = rng
        self._block_size = int(block_size)
        self._buffer: list[float] = []

    def __call__(self) -> float:
        try:
            return self._buffer.pop()
        except IndexError:
            self._buffer = self._rng.random(self._block_size).tolist()
            return self._buffer.pop()
