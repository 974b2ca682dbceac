"""check_gradients: a table per backend; failing backends are rows, not crashes."""

from __future__ import annotations

import json

import numpy as np

import ppl_ad as pa
from ppl_ad.testing import get_scenario


def test_all_backends_pass_on_eight_schools():
    table = pa.check_gradients(get_scenario("eight_schools").model(), points=2)
    assert table.all_passed, str(table)
    assert {row["backend"] for row in table} >= {"jax", "jax-forward", "torch", "autograd"}
    for row in table:
        assert row["gradient_rel_error"] < 1e-6 and row["gradient_rel_error_vs_others"] < 1e-9
        assert row["value_rel_error"] < 1e-6 and row["tolerance_needed"] <= 1e-6
    assert json.loads(table.to_json())["rows"][0]["backend"] == table[0]["backend"]
    assert "| backend |" in table.to_markdown()


def test_raising_backend_becomes_error_row(monkeypatch):
    import ppl_ad.backends.autograd_tape as module

    def broken(compiled, backend):
        raise RuntimeError("boom")

    monkeypatch.setattr(module, "prepare", broken)
    table = pa.check_gradients(get_scenario("normal_normal").model(), backends=["autograd", "jax"], points=1)
    assert table.row("autograd")["status"] == "error" and "boom" in table.row("autograd")["error"]
    assert table.row("jax")["status"] == "pass"
    assert not table.all_passed


def test_wrong_gradient_fails(monkeypatch):
    import ppl_ad.backends.autograd_tape as module

    original = module.prepare

    def skewed(compiled, backend):
        prepared = original(compiled, backend)
        inner = prepared.value_and_gradient
        prepared.value_and_gradient = lambda theta: (inner(theta)[0], inner(theta)[1] * 1.01)
        return prepared

    monkeypatch.setattr(module, "prepare", skewed)
    table = pa.check_gradients(get_scenario("normal_normal").model(), backends=["autograd"], points=[np.array([0.3])])
    row = table.row("autograd")
    assert row["status"] == "fail" and 1e-3 < row["gradient_rel_error"] < 2e-2 and row["tolerance_needed"] == 0.1


def test_every_column_is_explained_in_the_docstring():
    from ppl_ad.testing.gradients import GradientCheck

    doc = pa.check_gradients.__doc__
    for column in GradientCheck.columns:
        assert f"``{column}``" in doc, column
    assert "relative_error" in doc and "max|g - g_ref|" in doc
