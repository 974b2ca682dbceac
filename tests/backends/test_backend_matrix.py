"""Every tested backend matches finite differences and the other backends on every scenario."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import ppl_ad as pa
from ppl_ad.backends import registry
from ppl_ad.model.compiled import compile_model
from ppl_ad.testing import scenarios
from ppl_ad.testing.gradients import relative_error

TESTED = registry.tested()
SCENARIOS = scenarios()


def _model(scenario):
    return scenario.model()


@functools.lru_cache(maxsize=None)
def _reference(name):
    scenario = next(s for s in SCENARIOS if s.name == name)
    compiled = compile_model(_model(scenario))
    rng = np.random.default_rng(7)
    points = [rng.uniform(-2, 2, compiled.dimension)]
    # near the constraint boundaries: far out on the unconstrained scale
    points.append(rng.choice([-1.0, 1.0], compiled.dimension) * rng.uniform(3.0, 5.0, compiled.dimension))
    fd = registry.prepare(compiled, registry.get("finite-difference"))
    refs = [fd.value_and_gradient(p) for p in points]
    keep = [i for i, (v, g) in enumerate(refs) if np.isfinite(v) and np.all(np.isfinite(g))]
    return compiled, [points[i] for i in keep], [refs[i] for i in keep]


def test_every_supported_backend_is_installed():
    """A silently missing library must not pass: CI installs every supported backend."""
    missing = [b.name for b in TESTED if not b.is_available()]
    assert not missing, f"supported backends not installed: {missing} (pip install 'ppl_ad[all]')"


def test_tested_set_is_the_supported_set():
    names = {b.name for b in TESTED}
    assert names == {"jax", "jax-forward", "torch", "autograd"}
    assert all(b.status == pa.backends.SUPPORTED for b in TESTED)


@pytest.mark.parametrize("backend", TESTED, ids=lambda b: b.name)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_gradient_matches_finite_differences(scenario, backend):
    compiled, points, refs = _reference(scenario.name)
    assert points, "no finite reference point"
    ld = pa.logdensity(compiled.model, backend=backend, compiled=compiled)
    assert ld.backend.name == backend.name
    for theta, (ref_value, ref_gradient) in zip(points, refs):
        value, gradient = ld.logdensity_and_gradient(theta)
        assert isinstance(value, float)
        assert gradient.dtype == np.float64 and gradient.shape == (compiled.dimension,)
        assert relative_error(value, ref_value) < 1e-10
        assert relative_error(gradient, ref_gradient) < 1e-6, scenario.name
        assert ld.logdensity(theta) == pytest.approx(ref_value, rel=1e-10)


@pytest.mark.parametrize("backend", TESTED, ids=lambda b: b.name)
def test_wrong_input_shape_names_the_difference(backend):
    compiled, points, _ = _reference("eight_schools")
    ld = pa.logdensity(compiled.model, backend=backend, compiled=compiled)
    with pytest.raises(ValueError, match=r"shape \(9,\).*prepared for shape \(10,\)"):
        ld.logdensity_and_gradient(np.zeros(9))


@pytest.mark.parametrize("backend", TESTED, ids=lambda b: b.name)
def test_gradient_dict_splits_by_site(backend):
    compiled, points, refs = _reference("eight_schools")
    ld = pa.logdensity(compiled.model, backend=backend, compiled=compiled)
    parts = ld.gradient_dict(points[0])
    assert set(parts) == {"mu", "tau", "theta_tilde"}
    assert parts["theta_tilde"].shape == (8,)
    np.testing.assert_allclose(np.concatenate([np.ravel(parts[k]) for k in ("mu", "tau", "theta_tilde")]), refs[0][1], rtol=1e-6)
