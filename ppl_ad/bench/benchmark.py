"""``pa.benchmark``: time and check every installed AD backend on one model.

For each backend the table reports the preparation time, the median time of a log-density
call and of a value-and-gradient call, their ratio (the "cheap gradient principle" says a
reverse-mode gradient costs a small constant multiple of the value, while forward mode
costs about ``dimension`` times the value; Griewank & Walther, *Evaluating Derivatives*,
2nd ed., SIAM 2008, ch. 3-4), and whether the gradient agrees with 5-point central finite
differences (:func:`ppl_ad.bench.measure.relative_error`, in the ``gradient_rel_error`` and
``value_rel_error`` columns). A backend that fails becomes an ``"error"`` row; it never aborts
the table. Calls are timed under the sampler's thread limits
(:func:`ppl_ad.bench.measure.thread_limits`).
"""

from __future__ import annotations

import warnings

import numpy as np

from ppl_ad.backends import registry
from ppl_ad.backends.base import DEPRECATED, REMOVED
from ppl_ad.bench.measure import relative_error, thread_limits, time_call, worst_errors
from ppl_ad.table import Table, format_microseconds, format_scientific
from ppl_ad._deprecations import BACKEND_DEPRECATIONS, quiet

__all__ = [
    "benchmark", "BenchmarkTable", "time_call", "relative_error", "check_against_reference",
    "default_backends", "COLUMNS",
]

#: Columns of :class:`BenchmarkTable` in display order.
COLUMNS = (
    "name", "mode", "status", "prepare_s", "logdensity_us", "gradient_us", "ratio",
    "correct", "gradient_rel_error", "value_rel_error", "repeats", "note",
)


def default_backends() -> list:
    """Installed backends other than the finite-difference reference (removed ones excluded)."""
    return [
        b for b in registry.all_backends()
        if b.mode != "reference" and b.status != REMOVED and b.is_available()
    ]


def check_against_reference(ld, reference, points, rtol: float = 1e-6) -> tuple[str, float, float]:
    """Compare ``ld`` with ``reference`` at ``points``.

    Returns
    -------
    (correct, gradient_rel_error, value_rel_error)
        ``correct`` is ``"ok"`` when both errors (:func:`~ppl_ad.bench.measure.relative_error`,
        the largest over the points) are at most ``rtol``, else ``"wrong"``.
    """
    got = [ld.logdensity_and_gradient(theta) for theta in points]
    ref = [reference.logdensity_and_gradient(theta) for theta in points]
    gradient_error, value_error = worst_errors(got, ref)
    return ("ok" if max(gradient_error, value_error) <= rtol else "wrong"), gradient_error, value_error


class BenchmarkTable(Table):
    """Rows of :func:`benchmark` (a list of dicts) that print as a table.

    Attributes
    ----------
    model : str
        The model's name.
    dimension : int or None
        Length of the unconstrained vector.
    """

    columns = COLUMNS
    formats = {
        "prepare_s": "{:.3f}", "logdensity_us": format_microseconds, "gradient_us": format_microseconds,
        "ratio": "{:.2f}", "gradient_rel_error": format_scientific, "value_rel_error": format_scientific,
    }

    def __init__(self, rows=(), model: str = "", dimension=None, *, columns=None):
        super().__init__(rows, columns=columns)
        self.model = model
        self.dimension = dimension

    @property
    def title(self) -> str:
        return f"model '{self.model}' (dimension {self.dimension})"

    def metadata(self) -> dict:
        return {"model": self.model, "dimension": self.dimension}

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
        Compare each value and gradient with 5-point central finite differences at
        ``points`` points.
    points, seed : int
        How many initial points (drawn as the sampler draws them, from ``seed``) to check.
    budget : float
        Approximate seconds of timed calls per measurement (when ``repeats`` is None).
    rtol : float
        Largest relative error (value and gradient) of a correct backend.

    Returns
    -------
    BenchmarkTable
        One row per backend: ``name, mode, status, prepare_s, logdensity_us, gradient_us,
        ratio, correct ("ok"/"wrong"/"error"/"unchecked"), gradient_rel_error,
        value_rel_error, repeats, note``. The errors are
        :func:`~ppl_ad.bench.measure.relative_error` (max norm) against finite differences,
        the largest over the points.

    Notes
    -----
    The calls are timed under the thread limits of the sampler's worker processes
    (:func:`ppl_ad.bench.measure.thread_limits`), so the times are those NUTS will see.
    """
    from ppl_ad.logdensity import logdensity
    from ppl_ad.model.compiled import compile_model

    for name, value in (("repeats", repeats), ("points", points)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
            raise ValueError(f"pa.benchmark: {name} must be a positive integer, got {value!r}")
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
    with thread_limits():  # as the sampler's worker processes
        for backend in values:
            row = _row(backend)
            table.append(row)
            try:
                deprecation = BACKEND_DEPRECATIONS.get(backend.name)
                if deprecation is not None:  # noted here; the user's own use of it still warns
                    _add_note(row, deprecation.message().split('. ')[0])
                with warnings.catch_warnings(record=True) as caught, quiet():
                    ld = logdensity(model, backend, compiled=compiled)
                    row["prepare_s"] = ld.prepare_seconds
                    theta = theta_points[0]
                    if check:
                        row["correct"], row["gradient_rel_error"], row["value_rel_error"] = check_against_reference(
                            ld, reference, theta_points, rtol)
                    else:
                        row["correct"] = "unchecked"
                    ld_time, n = time_call(ld.logdensity, theta, repeats, budget)[:2]
                    grad_time = time_call(ld.logdensity_and_gradient, theta, repeats, budget).median
                for w in caught:  # not ours to swallow
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
                row.update(logdensity_us=ld_time * 1e6, gradient_us=grad_time * 1e6,
                           ratio=grad_time / ld_time if ld_time > 0 else None, repeats=n)
            except Exception as exc:
                row["correct"] = "error"
                _add_note(row, f"{type(exc).__name__}: {str(exc)[:300]}")
    return table
