"""The backend registry: names, values, listing, availability errors."""

from __future__ import annotations

import dataclasses

import pytest

import ppl_ad as pa
from ppl_ad.backends import registry


def test_backend_values_are_small_immutable_values():
    value = pa.backends.JAX()
    assert value.name == "jax" and value.mode == "reverse" and value.status == "supported"
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.name = "x"  # type: ignore[misc]
    assert pa.backends.FiniteDifference(step=1e-4) == pa.backends.FiniteDifference(step=1e-4)
    assert repr(pa.backends.FiniteDifference(step=1e-4)) == "FiniteDifference(step=0.0001)"
    assert repr(pa.backends.JAX()) == "JAX()"


def test_get_accepts_names_and_values():
    assert registry.get("jax") == pa.backends.JAX()
    assert registry.get(pa.backends.Torch()) == pa.backends.Torch()


def test_unknown_name_lists_valid_names_with_suggestion():
    with pytest.raises(pa.UnknownBackendError, match="Did you mean 'jax-forward'.*Valid names: jax, jax-forward"):
        registry.get("jax-foward")
    with pytest.raises(pa.UnknownBackendError):
        registry.get(42)


def test_list_shows_every_backend_with_version_and_status():
    table = pa.backends.list()
    names = [row["name"] for row in table]
    assert names == registry.names()
    for row in table:
        assert set(row) == {"name", "mode", "library", "version", "status"}
        assert row["status"] in pa.backends.STATUSES
    assert "torch-forward" in str(table) and "experimental" in str(table)
    assert table.to_markdown().startswith("| name | mode |")


def test_missing_library_names_the_extra(monkeypatch):
    from ppl_ad.testing import get_scenario

    monkeypatch.setattr(pa.backends.Autograd, "is_available", lambda self: False)
    with pytest.raises(pa.BackendUnavailableError, match=r"pip install 'ppl_ad\[autograd\]'"):
        pa.logdensity(get_scenario("normal_normal").model(), backend="autograd")


def test_cli_backends_lists_the_table(capsys):
    from ppl_ad.cli import main

    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "jax-forward" in out and "finite-difference" in out


def test_finite_difference_is_reference_only():
    from ppl_ad.backends.base import REFERENCE

    assert pa.backends.FiniteDifference().status == REFERENCE == "reference"
    assert REFERENCE in pa.backends.STATUSES
    row = next(r for r in pa.backends.list() if r["name"] == "finite-difference")
    assert row["status"] == "reference"
    assert all(b.name != "finite-difference" for b in registry.tested())


def test_sampling_warning_for_reference_backends_only():
    message = registry.sampling_warning("finite-difference")
    assert "reference implementation" in message and "backend='jax'" in message
    assert registry.sampling_warning(pa.backends.FiniteDifference(step=1e-4)) == message
    for name in ("jax", "jax-forward", "torch", "autograd", "torch-forward"):
        assert registry.sampling_warning(name) is None
    with pytest.raises(pa.UnknownBackendError):
        registry.sampling_warning("nope")
