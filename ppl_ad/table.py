"""The one table class of ppl_ad: rows (dicts) that print as text, markdown or JSON.

``pa.backends.list()``, ``pa.benchmark``, ``pa.check_gradients``, ``pa.backends.recommend``
and the reports of ``ppl-ad bench`` all return or print a :class:`Table` subclass. A subclass
only names its ``columns``, how each is formatted (``formats``) and, optionally, a title and
metadata; printing, markdown and JSON are written once, here. This module imports nothing
from ppl_ad, so the backend registry can use it without importing the benchmark machinery.
"""

from __future__ import annotations

import json
import math
from typing import Callable, ClassVar

__all__ = ["Table", "format_microseconds", "format_scientific"]


def format_microseconds(value: float) -> str:
    """A time in µs: one decimal below 1000, none above."""
    return f"{value:.1f}" if abs(value) < 1000 else f"{value:.0f}"


def format_scientific(value: float) -> str:
    """A relative error or tolerance: ``1.2e-09``."""
    return f"{value:.1e}"


class Table(list):
    """Rows (a list of dicts) with named columns that print as an aligned table.

    Parameters
    ----------
    rows : iterable of dict
        The rows; keys that are not columns are kept (and written by :meth:`to_json`) but
        not printed.
    columns : tuple of str, optional
        Overrides the class's ``columns`` for this table.
    title : str, optional
        A line printed above the table by ``str(table)``.
    formats : dict, optional
        Formats for this table, added to the class's ``formats``.

    Notes
    -----
    Subclasses set ``columns`` and ``formats`` (column -> a format string such as
    ``"{:.3f}"`` or a function of the value). Missing values (None) print as ``-``;
    floats without a format print with 3 significant digits; ``|`` and newlines in text
    are replaced so every row stays one markdown row.
    """

    columns: ClassVar[tuple[str, ...]] = ()
    formats: ClassVar[dict[str, str | Callable]] = {}
    missing: ClassVar[str] = "-"

    def __init__(self, rows=(), *, columns=None, title: str = "", formats=None):
        super().__init__(rows)
        if columns is not None:
            self.columns = tuple(columns)
        if formats:
            self.formats = {**type(self).formats, **formats}
        self._title = title

    @property
    def title(self) -> str:
        """The line printed above the table ('' for none)."""
        return self._title

    def metadata(self) -> dict:
        """Table-level fields written by :meth:`to_json` beside the rows."""
        return {}

    def format_cell(self, column: str, value) -> str:
        """The text of one cell."""
        if value is None:
            return self.missing
        spec = self.formats.get(column)
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if spec is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            return spec(value) if callable(spec) else spec.format(value)
        if isinstance(value, float):
            return f"{value:.3g}"
        return str(value).replace("|", "/").replace("\n", " ")

    def cells(self) -> list[list[str]]:
        """Every row as a list of cell texts, in column order."""
        return [[self.format_cell(c, row.get(c)) for c in self.columns] for row in self]

    def __str__(self) -> str:
        rows = [list(self.columns), *self.cells()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(self.columns))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(rows[0], widths)).rstrip()]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows[1:]]
        return "\n".join(([self.title] if self.title else []) + lines)

    def to_markdown(self) -> str:
        """A markdown table (no title)."""
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(r) + " |" for r in self.cells()]
        return "\n".join(lines)

    def to_json(self, **kwargs) -> str:
        """JSON ``{**metadata, "rows": [...]}``; non-finite numbers become null.

        Keyword arguments go to :func:`json.dumps` (``indent=2`` by default).
        """

        def clean(value):
            if isinstance(value, float) and not math.isfinite(value):
                return None
            return value

        kwargs.setdefault("indent", 2)
        kwargs.setdefault("default", str)
        rows = [{k: clean(v) for k, v in row.items()} for row in self]
        return json.dumps({**self.metadata(), "rows": rows}, **kwargs)
