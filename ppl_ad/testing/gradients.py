"""``check_gradients``: every backend's value and gradient against finite differences.

Like Turing's ``run_ad`` / DifferentiationInterfaceTest: for each requested backend,
evaluate value and gradient at several points, compare with the 5-point finite-difference
reference and with each other, and return a table. A backend that raises is an ``error``
row, never a crash. Errors are :func:`relative_error` (max norm, defined here), the
same measure as ``pa.benchmark``'s columns of the same names.
"""

from __future__ import annotations

import numpy as np

from ppl_ad._deprecations import quiet
from ppl_ad.backends import registry
from ppl_ad.backends.base import EXPERIMENTAL, SUPPORTED
from ppl_ad.table import Table, format_scientific
from ppl_ad.model.compiled import compile_model

__all__ = ["check_gradients", "GradientCheck", "relative_error", "worst_errors"]


class GradientCheck(Table):
    """Rows (dicts) of :func:`check_gradients`, one per backend; prints as a table.

    The columns are explained in :func:`check_gradients`.
    """

    columns = (
        "backend", "mode", "status", "points", "gradient_rel_error", "value_rel_error",
        "gradient_rel_error_vs_others", "tolerance_needed", "error",
    )
    formats = {
        "gradient_rel_error": format_scientific, "value_rel_error": format_scientific,
        "gradient_rel_error_vs_others": format_scientific, "tolerance_needed": format_scientific,
    }

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



def relative_error(value, reference, floor: float = 1e-8) -> float:
    """Relative error in the max norm: ``max|value - reference| / max(max|reference|, floor)``.

    The one definition of every ``*_rel_error`` column in ppl_ad. For a gradient it bounds
    the error of every component by a fraction of the largest reference component, however
    many components there are; for a scalar (a log density) it is the ordinary relative
    error. ``floor`` keeps a reference of (nearly) zero from dividing by zero.

    Parameters
    ----------
    value, reference : float or array_like
        The value checked and the reference (e.g. finite differences).
    floor : float
        Smallest scale used as denominator.

    Returns
    -------
    float
        0.0 for identical inputs (non-finite entries included); ``inf`` when the shapes
        differ or only one side is non-finite.
    """
    value, reference = np.asarray(value, dtype=float), np.asarray(reference, dtype=float)
    if value.shape != reference.shape:
        return float("inf")
    if not (np.all(np.isfinite(value)) and np.all(np.isfinite(reference))):
        return 0.0 if np.array_equal(value, reference) else float("inf")
    scale = max(float(np.max(np.abs(reference), initial=0.0)), floor)
    return float(np.max(np.abs(value - reference), initial=0.0) / scale)


def worst_errors(results, references) -> tuple[float, float]:
    """The largest :func:`relative_error` of gradients and of values over several points.

    Parameters
    ----------
    results, references : list of (float, array)
        ``(value, gradient)`` pairs of the checked backend and of the reference, point by point.

    Returns
    -------
    (gradient_rel_error, value_rel_error)
    """
    gradient = max((relative_error(g, rg) for (_, g), (_, rg) in zip(results, references)), default=0.0)
    value = max((relative_error(v, rv) for (v, _), (rv, _) in zip(results, references)), default=0.0)
    return gradient, value


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


def _reliable_reference(compiled, thetas, ref, rtol):
    """``(thetas, ref, unreliable)``: the points where the finite-difference gradient is accurate to
    well within ``rtol``, judged by the same stencil with twice the step (its O(h^4) truncation
    error is then 16 times larger, and rounding error shows as disagreement too); far out towards a
    constraint boundary, where the log density is steep or nearly flat in floating point, the
    reference can be wrong by more than the tolerance while every AD backend is right."""
    from ppl_ad.backends.finite_difference import gradient as fd_gradient

    if not thetas:
        return thetas, ref, 0
    logdensity_fn = compiled.make_logdensity_fn("numpy")
    step = registry.get("finite-difference").step
    kept_thetas, kept_ref = [], []
    for theta, (value, grad) in zip(thetas, ref):
        with np.errstate(all="ignore"):
            coarse = fd_gradient(logdensity_fn, theta, 2.0 * step)
        if np.all(np.isfinite(coarse)) and relative_error(grad, coarse) <= rtol / 10.0:
            kept_thetas.append(theta)
            kept_ref.append((value, grad))
    return kept_thetas, kept_ref, len(thetas) - len(kept_thetas)


def check_gradients(model, backends=None, points=None, rtol: float = 1e-6, seed: int = 0) -> GradientCheck:
    """Compare value and gradient of ``model`` across AD backends and finite differences.

    Parameters
    ----------
    model : ppl_ad.model.Model
        A model with its data bound.
    backends : list of str or Backend, optional
        Backends to check; default: every installed backend that is supported or experimental
        (not the finite-difference reference, nor a deprecated backend such as ``sympy``: name it to
        check it).
    points : int or list of array, optional
        Unconstrained points, or how many random points (uniform(-2, 2), plus one point far
        out towards the constraint boundaries). Default 3 (+1).
    rtol : float
        Largest relative error, on the value and on the gradient, of a passing backend.
    seed : int
        Seed of the random points.

    Returns
    -------
    GradientCheck
        One row per backend, with the columns

        ``backend``, ``mode``
            The backend's name and AD mode (reverse, forward, tape, ...).
        ``status``
            ``"pass"`` when both relative errors are at most ``rtol``, ``"fail"`` when
            one is larger, ``"error"`` when the backend raised (then see ``error``),
            ``"unchecked"`` when no point had a finite reference (nothing was compared).
        ``points``
            How many points were compared (those with a finite, accurate reference).
        ``gradient_rel_error``
            The largest relative error of the gradient against 5-point central finite
            differences over the points: ``max|g - g_ref| / max(max|g_ref|, 1e-8)``
            (:func:`ppl_ad.bench.measure.relative_error`, the max norm). Finite
            differences are accurate to about 1e-9 relative, so errors near that are
            the reference's own.
        ``value_rel_error``
            The same for the log density value.
        ``gradient_rel_error_vs_others``
            The largest relative error of the gradient against every other backend that
            ran, at the same points: two exact AD backends agree to about 1e-12, far
            closer than either agrees with finite differences.
        ``tolerance_needed``
            The smallest power of ten ``rtol`` that this backend would have passed.
        ``error``
            The exception (type and message) of a backend that raised, else empty.

    Points where the reference itself is not finite are left out, and so are points where it is
    not accurate to ``rtol / 10`` (the same stencil with twice the step disagrees by more: far out
    towards a constraint boundary, rounding can make finite differences wrong by more than the
    tolerance while the AD backends agree with each other). When that leaves none of the
    random points (a log density that is ``-inf`` far from zero, e.g. a logistic likelihood on
    large predictors), the origin of the unconstrained space is tried; if even that is not
    finite, every row is ``"unchecked"``: pass ``points`` where the log density is finite.
    """
    from ppl_ad.logdensity import LogDensity

    compiled = compile_model(model)
    rng = np.random.default_rng(seed)
    thetas = _points(compiled, points, rng)
    reference = registry.prepare(compiled, registry.get("finite-difference"))
    ref = [reference.value_and_gradient(t) for t in thetas]
    keep = [i for i, (v, g) in enumerate(ref) if np.isfinite(v) and np.all(np.isfinite(g))]
    tried = len(thetas)
    thetas, ref = [thetas[i] for i in keep], [ref[i] for i in keep]
    thetas, ref, unreliable = _reliable_reference(compiled, thetas, ref, rtol)
    if not thetas and (points is None or isinstance(points, int)):
        origin = np.zeros(compiled.dimension)
        value, gradient = reference.value_and_gradient(origin)
        if np.isfinite(value) and np.all(np.isfinite(gradient)):
            thetas, ref = [origin], [(value, gradient)]
        tried += 1
    if backends is None:
        backends = [b for b in registry.all_backends() if b.mode != "reference" and b.is_available() and b.status in (SUPPORTED, EXPERIMENTAL)]
    table = GradientCheck()
    results = {}
    for spec in backends:
        name = spec if isinstance(spec, str) else spec.name
        row = {"backend": name, "mode": "", "status": "error", "points": len(thetas), "gradient_rel_error": None,
               "value_rel_error": None, "gradient_rel_error_vs_others": None, "tolerance_needed": None,
               "error": None}
        try:
            with quiet():
                backend = registry.get(spec)
            row["mode"] = backend.mode
            prepared = registry.prepare(compiled, backend)
            ld = LogDensity(compiled, backend, prepared, "check_gradients")
            got = [ld.logdensity_and_gradient(t) for t in thetas]
        except Exception as error:  # a failing backend is a row, never a crash
            row["error"] = f"{type(error).__name__}: {error}"
            row["points"] = 0  # nothing was compared
            table.append(row)
            continue
        if not thetas:
            why = (f"the finite-difference reference is not finite at any of the {tried} points tried"
                   if not unreliable else
                   f"the finite-difference reference is not finite or not accurate to rtol at any of the {tried} "
                   "points tried")
            row.update(status="unchecked", error=f"{why}: pass points= where the log density is finite and smooth")
            table.append(row)
            continue
        gradient_error, value_error = worst_errors(got, ref)
        results[name] = got
        worst = max(gradient_error, value_error)
        row.update(
            gradient_rel_error=gradient_error,
            value_rel_error=value_error,
            status="pass" if worst <= rtol else "fail",
            tolerance_needed=float(10.0 ** np.ceil(np.log10(max(worst, 1e-16)))),
        )
        table.append(row)
    for row in table:
        if row["backend"] in results:
            mine = results[row["backend"]]
            others = [worst_errors(mine, results[other])[0] for other in results if other != row["backend"]]
            row["gradient_rel_error_vs_others"] = max(others, default=0.0)
    return table
