"""``check_gradients``: every backend's value and gradient against finite differences.

Like Turing's ``run_ad`` / DifferentiationInterfaceTest: for each requested backend,
evaluate value and gradient at several points, compare with the 5-point finite-difference
reference and with each other, and return a table. A backend that raises is an ``error``
row, never a crash.
"""

from __future__ import annotations

import json
import warnings

import numpy as np

from ppl_ad.backends import registry
from ppl_ad.errors import PplAdDeprecationWarning
from ppl_ad.model.compiled import compile_model

__all__ = ["check_gradients", "GradientCheck", "relative_error"]


def relative_error(value, reference) -> float:
    """Norm-wise relative error ``max|a - b| / max(max|b|, 1e-8)``."""
    value, reference = np.asarray(value, dtype=float), np.asarray(reference, dtype=float)
    if value.shape != reference.shape:
        return float("inf")
    if not (np.all(np.isfinite(value)) and np.all(np.isfinite(reference))):
        return 0.0 if np.array_equal(value, reference) else float("inf")
    scale = max(float(np.max(np.abs(reference), initial=0.0)), 1e-8)
    return float(np.max(np.abs(value - reference), initial=0.0) / scale)


class GradientCheck(list):
    """Rows (dicts) of a gradient check; prints as a table.

    Each row: ``backend``, ``mode``, ``status`` ("pass" / "fail" / "error"),
    ``max_rel_error`` (gradient, against finite differences), ``value_rel_error``,
    ``max_rel_error_vs_others`` (against the other backends), ``tolerance_needed`` (the
    smallest power of ten that would have passed) and ``error`` (the message, for errors).
    """

    columns = ("backend", "mode", "status", "max_rel_error", "value_rel_error", "max_rel_error_vs_others", "tolerance_needed", "error")

    @property
    def all_passed(self) -> bool:
        """True when every row passed."""
        return all(row["status"] == "pass" for row in self)

    def row(self, backend: str) -> dict:
        """The row of ``backend``."""
        for row in self:
            if row["backend"] == backend:
                return row
        raise KeyError(backend)

    def _cells(self, row):
        out = []
        for column in self.columns:
            value = row.get(column)
            out.append(f"{value:.1e}" if isinstance(value, float) else ("" if value is None else str(value)))
        return out

    def __str__(self) -> str:
        rows = [list(self.columns)] + [self._cells(r) for r in self]
        widths = [max(len(r[i]) for r in rows) for i in range(len(self.columns))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)

    def to_markdown(self) -> str:
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(self._cells(r)) + " |" for r in self]
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(list(self), indent=2, default=str)


def _points(compiled, points, rng):
    if points is None:
        points = 3
    if isinstance(points, int):
        dimension = compiled.dimension
        out = [rng.uniform(-2.0, 2.0, size=dimension) for _ in range(points)]
        # one point near the constraint boundaries: large unconstrained magnitudes
        out.append(rng.choice([-1.0, 1.0], size=dimension) * rng.uniform(4.0, 6.0, size=dimension))
        return out
    return [compiled.check_theta(p) for p in points]


def check_gradients(model, backends=None, points=None, rtol: float = 1e-6, seed: int = 0) -> GradientCheck:
    """Compare value and gradient of ``model`` across AD backends and finite differences.

    Parameters
    ----------
    model : ppl_ad.model.Model
        A model with its data bound.
    backends : list of str or Backend, optional
        Backends to check; default: every installed backend except the reference.
    points : int or list of array, optional
        Unconstrained points, or how many random points (uniform(-2, 2), plus one point far
        out towards the constraint boundaries). Default 3 (+1).
    rtol : float
        Norm-wise relative tolerance on value and gradient.
    seed : int
        Seed of the random points.

    Returns
    -------
    GradientCheck
        One row per backend.
    """
    from ppl_ad.logdensity import LogDensity

    compiled = compile_model(model)
    rng = np.random.default_rng(seed)
    thetas = _points(compiled, points, rng)
    reference = registry.prepare(compiled, registry.get("finite-difference"))
    ref = [reference.value_and_gradient(t) for t in thetas]
    keep = [i for i, (v, g) in enumerate(ref) if np.isfinite(v) and np.all(np.isfinite(g))]
    thetas, ref = [thetas[i] for i in keep], [ref[i] for i in keep]
    if backends is None:
        backends = [b for b in registry.all_backends() if b.mode != "reference" and b.is_available() and b.status in ("supported", "experimental")]
    table = GradientCheck()
    results = {}
    for spec in backends:
        name = spec if isinstance(spec, str) else spec.name
        row = {"backend": name, "mode": "", "status": "error", "max_rel_error": None, "value_rel_error": None,
               "max_rel_error_vs_others": None, "tolerance_needed": None, "error": None}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PplAdDeprecationWarning)
                backend = registry.get(spec)
            row["mode"] = backend.mode
            prepared = registry.prepare(compiled, backend)
            ld = LogDensity(compiled, backend, prepared, "check_gradients")
            got = [ld.logdensity_and_gradient(t) for t in thetas]
        except Exception as error:  # a failing backend is a row, never a crash
            row["error"] = f"{type(error).__name__}: {error}"
            table.append(row)
            continue
        gradient_error = max((relative_error(g, rg) for (_, g), (_, rg) in zip(got, ref)), default=0.0)
        value_error = max((relative_error(v, rv) for (v, _), (rv, _) in zip(got, ref)), default=0.0)
        results[name] = got
        worst = max(gradient_error, value_error)
        row.update(
            max_rel_error=gradient_error,
            value_rel_error=value_error,
            status="pass" if worst <= rtol else "fail",
            tolerance_needed=float(10.0 ** np.ceil(np.log10(max(worst, 1e-16)))),
        )
        table.append(row)
    for row in table:
        if row["backend"] in results:
            mine = results[row["backend"]]
            others = [
                max(relative_error(g, og) for (_, g), (_, og) in zip(mine, results[other]))
                for other in results if other != row["backend"]
            ]
            row["max_rel_error_vs_others"] = max(others, default=0.0)
    return table
