"""``pa.benchmark``: time and check every installed AD backend on one model.

For each backend the table reports the preparation time, the median time of a log-density
call and of a value-and-gradient call, their ratio (the "cheap gradient principle" says a
reverse-mode gradient costs a small constant multiple of the value, while forward mode
costs about ``dimension`` times the value; Griewank & Walther, *Evaluating Derivatives*,
2nd ed., SIAM 2008, ch. 3-4), and whether the gradient agrees with 5-point central finite
differences. A backend that fails becomes an ``"error"`` row; it never aborts the table.
"""

from __future__ import annotations

import json
import statistics
import time
import warnings

import numpy as np

from ppl_ad.backends import registry
from ppl_ad.backends.base import DEPRECATED, REMOVED
from ppl_ad.errors import PplAdDeprecationWarning

__all__ = ["benchmark", "BenchmarkTable", "time_call", "check_against_reference", "default_backends"]

#: Columns of :class:`BenchmarkTable` in display order.
COLUMNS = (
    "name", "mode", "status", "prepare_s", "logdensity_us", "gradient_us", "ratio",
    "correct", "max_rel_error", "repeats", "note",
)


def default_backends() -> list:
    """Installed backends other than the finite-difference reference (removed ones excluded)."""
    return [
        b for b in registry.all_backends()
        if b.mode != "reference" and b.status != REMOVED and b.is_available()
    ]


def time_call(fn, theta, repeats: int | None = None, budget: float = 0.3) -> tuple[float, int]:
    """Median seconds of ``fn(theta)`` after warm-up calls.

    Parameters
    ----------
    repeats : int, optional
        Timed calls; None chooses them so the timed calls take about ``budget`` seconds
        (at least 1, at most 100 000).

    Returns
    -------
    (median_seconds, repeats)
    """
    fn(theta)
    fn(theta)
    if repeats is None:
        calls, start = 0, time.perf_counter()
        while calls < 20 and time.perf_counter() - start < 0.02:
            fn(theta)
            calls += 1
        once = (time.perf_counter() - start) / calls
        repeats = int(min(100_000, max(1, budget / max(once, 1e-7))))
    times = []
    clock = time.perf_counter
    for _ in range(repeats):
        start = clock()
        fn(theta)
        times.append(clock() - start)
    return statistics.median(times), repeats


def relative_error(value, gradient, ref_value, ref_gradient) -> float:
    """Norm-wise relative error of a gradient (and of the value) against a reference."""
    gradient = np.asarray(gradient, dtype=float)
    ref_gradient = np.asarray(ref_gradient, dtype=float)
    if not (np.all(np.isfinite(gradient)) and np.isfinite(value)):
        return float("inf")
    scale = max(float(np.linalg.norm(ref_gradient)), 1e-300)
    grad_err = float(np.linalg.norm(gradient - ref_gradient)) / scale
    value_err = abs(float(value) - float(ref_value)) / max(abs(float(ref_value)), 1.0)
    return max(grad_err, value_err)


def check_against_reference(ld, reference, points, rtol: float = 1e-6) -> tuple[str, float]:
    """``("ok" | "wrong", max relative error)`` of ``ld`` against ``reference`` at ``points``."""
    worst = 0.0
    for theta in points:
        value, gradient = ld.logdensity_and_gradient(theta)
        ref_value, ref_gradient = reference.logdensity_and_gradient(theta)
        worst = max(worst, relative_error(value, gradient, ref_value, ref_gradient))
    return ("ok" if worst <= rtol else "wrong"), worst


class BenchmarkTable(list):
    """Rows of :func:`benchmark` (a list of dicts) that print as a table.

    Attributes
    ----------
    model : str
        The model's name.
    dimension : int or None
        Length of the unconstrained vector.
    """

    columns = COLUMNS

    def __init__(self, rows=(), model: str = "", dimension=None):
        super().__init__(rows)
        self.model = model
        self.dimension = dimension

    @staticmethod
    def _fmt(column, value) -> str:
        if value is None:
            return "-"
        if column == "prepare_s":
            return f"{value:.3f}"
        if column in ("logdensity_us", "gradient_us"):
            return f"{value:.1f}" if value < 1000 else f"{value:.0f}"
        if column == "ratio":
            return f"{value:.2f}"
        if column == "max_rel_error":
            return f"{value:.1e}"
        return str(value).replace("|", "/").replace("\n", " ")

    def _cells(self):
        return [[self._fmt(c, row.get(c)) for c in self.columns] for row in self]

    def __str__(self) -> str:
        cells = self._cells()
        widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(self.columns)]
        head = f"model '{self.model}' (dimension {self.dimension})\n"
        lines = ["  ".join(c.ljust(w) for c, w in zip(self.columns, widths))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
        return head + "\n".join(lines)

    def to_markdown(self) -> str:
        """A markdown table (times in µs, preparation in seconds)."""
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(r) + " |" for r in self._cells()]
        return "\n".join(lines)

    def to_json(self, **kwargs) -> str:
        """JSON ``{"model", "dimension", "rows"}`` (non-finite numbers become null)."""

        def clean(value):
            if isinstance(value, float) and not np.isfinite(value):
                return None
            return value

        rows = [{k: clean(v) for k, v in row.items()} for row in self]
        return json.dumps({"model": self.model, "dimension": self.dimension, "rows": rows}, **kwargs)

    def plot(self, ax=None):
        """Bar chart of the gradient time per backend (log scale); returns the Axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        rows = [r for r in self if r.get("gradient_us")]
        colors = ["tab:blue" if r["correct"] == "ok" else "tab:red" for r in rows]
        ax.bar([r["name"] for r in rows], [r["gradient_us"] for r in rows], color=colors)
        ax.set_yscale("log")
        ax.set_ylabel("value and gradient (µs, median)")
        ax.set_title(f"{self.model} (d = {self.dimension})")
        ax.tick_params(axis="x", rotation=30)
        return ax


def _row(backend) -> dict:
    row = dict.fromkeys(COLUMNS)
    row.update(name=backend.name, mode=backend.mode, status=backend.status, note="")
    if backend.status == DEPRECATED:
        row["note"] = "deprecated: benchmark to plan a migration"
    return row


def _add_note(row, text):
    row["note"] = f"{row['note']}; {text}" if row["note"] else text


def benchmark(model, backends=None, repeats: int | None = None, check: bool = True, *,
              points: int = 2, seed: int = 0, budget: float = 0.3, rtol: float = 1e-6) -> BenchmarkTable:
    """Time every installed backend on ``model`` and check its gradient.

    Parameters
    ----------
    model : ppl_ad.model.Model
        A model with its data bound.
    backends : list of str or Backend, optional
        Default: every installed backend (experimental and deprecated included) except the
        finite-difference reference.
    repeats : int, optional
        Timed calls per measurement; None chooses them adaptively (about ``budget`` seconds).
    check : bool
        Compare each gradient with 5-point central finite differences at ``points`` points.

    Returns
    -------
    BenchmarkTable
        One row per backend: ``name, mode, status, prepare_s, logdensity_us, gradient_us,
        ratio, correct ("ok"/"wrong"/"error"/"unchecked"), max_rel_error, repeats, note``.
    """
    from ppl_ad.logdensity import logdensity
    from ppl_ad.model.compiled import compile_model

    compiled = compile_model(model)
    table = BenchmarkTable(model=model.name, dimension=compiled.dimension)
    rng = np.random.default_rng(seed)
    theta_points = [compiled.initial_point(rng) for _ in range(points)]
    reference = logdensity(model, "finite-difference", compiled=compiled) if check else None
    if backends is None:
        values = default_backends()
    else:
        values = []
        for b in backends:
            try:
                values.append(registry.get(b, warn=False))
            except Exception as exc:  # an unknown name is reported, not raised
                row = dict.fromkeys(COLUMNS)
                row.update(name=str(b), mode="?", status="?", correct="error", note=f"{type(exc).__name__}: {exc}")
                table.append(row)
    for backend in values:
        row = _row(backend)
        table.append(row)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", PplAdDeprecationWarning)
                ld = logdensity(model, backend, compiled=compiled)
                row["prepare_s"] = ld.prepare_seconds
                theta = theta_points[0]
                if check:
                    row["correct"], row["max_rel_error"] = check_against_reference(ld, reference, theta_points, rtol)
                else:
                    row["correct"] = "unchecked"
                ld_time, n = time_call(ld.logdensity, theta, repeats, budget)
                grad_time, _ = time_call(ld.logdensity_and_gradient, theta, repeats, budget)
            for w in caught:
                if issubclass(w.category, PplAdDeprecationWarning):
                    _add_note(row, f"warned: {str(w.message).split('. ')[0]}")
                else:  # not ours to swallow
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            row.update(logdensity_us=ld_time * 1e6, gradient_us=grad_time * 1e6,
                       ratio=grad_time / ld_time if ld_time > 0 else None, repeats=n)
        except Exception as exc:
            row["correct"] = "error"
            _add_note(row, f"{type(exc).__name__}: {str(exc)[:300]}")
    return table
