"""The distribution base layer: terms of data computed once (``data_term``)."""

from __future__ import annotations

import numpy as np
import pytest

from ppl_ad import math as M
from ppl_ad.distributions.base import data_term


def test_a_term_of_numpy_data_is_computed_once_with_numpy_and_given_in_each_backend():
    # computed with JAX inside one trace and reused in the next, it would be a leaked tracer
    jax = pytest.importorskip("jax")
    torch = pytest.importorskip("torch")
    computed_with = []

    def term(value):
        computed_with.append(M.active().name)
        return M.log(value)

    y = np.array([1.0, 2.0, 3.0])
    traced = [jax.jit(lambda t: t * 0.0 + M.sum(data_term("log", term, y)))(1.0) for _ in range(2)]
    with M.using("torch"):
        as_torch = data_term("log", term, y)
        grad_carrying = torch.ones(3, dtype=torch.float64, requires_grad=True) + as_torch  # mixes with a tape
    as_numpy = data_term("log", term, y)
    assert computed_with == ["numpy"]
    assert [float(t) for t in traced] == pytest.approx([np.log(6.0)] * 2, rel=1e-6)  # float32 without x64
    assert isinstance(as_torch, torch.Tensor) and grad_carrying.requires_grad
    np.testing.assert_allclose(as_torch.numpy(), np.log(y))
    assert type(as_numpy) is np.ndarray
    y[0] = 2.0  # changed in place: computed again
    np.testing.assert_allclose(data_term("log", term, y), np.log(y))
    assert computed_with == ["numpy", "numpy"]


def test_numpy_result_keeps_the_numpy_array():
    factor = np.array([[2.0, 0.0], [1.0, 1.0]])
    with M.using("torch"):
        kept = data_term("identity-test", lambda v: v * 1.0, factor, numpy_result=True)
    assert type(kept) is np.ndarray
    np.testing.assert_array_equal(kept, factor)
