"""The ``Scenario`` record: a named model with its data, shared by tests and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Scenario"]


@dataclass(frozen=True)
class Scenario:
    """A named model with its data, used by tests and benchmarks.

    Attributes
    ----------
    name : str
    build : callable
        ``build() -> Model`` (data are created lazily).
    tags : tuple
        ``"standard"`` (the four benchmark models), ``"small"``, ``"posteriordb"``, ...
    reference : dict
        Known facts for tests, e.g. closed-form posterior moments.
    """

    name: str
    build: object
    tags: tuple = ()
    reference: dict = field(default_factory=dict)

    def model(self):
        """The model with its data bound."""
        return self.build()

    def __repr__(self) -> str:
        return f"Scenario({self.name!r})"
