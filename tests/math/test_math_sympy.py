"""The SymPy namespace of ppl_ad.math agrees with the NumPy one after substituting numbers."""

from __future__ import annotations

import numpy as np
import pytest

from ppl_ad.errors import BackendCompilationError
from ppl_ad.math._namespace import NUMPY, namespace_named

sympy = pytest.importorskip("sympy")

VALUES = np.array([[-1.3, 0.2, 2.5], [0.7, -0.4, 1.1]])


@pytest.fixture
def symbolic():
    symbols = np.array([[sympy.Symbol(f"a_{i}_{j}", real=True) for j in range(3)] for i in range(2)], dtype=object)
    substitutions = {s: v for s, v in zip(symbols.ravel(), VALUES.ravel())}

    def numeric(result):
        result = np.asarray(result, dtype=object)
        return np.vectorize(lambda e: float(sympy.sympify(e).evalf(subs=substitutions)), otypes=[float])(result)

    return namespace_named("sympy"), symbols, numeric


@pytest.mark.parametrize(
    "name", ["exp", "log1p", "expm1", "square", "abs", "tanh", "erf", "erfc", "sigmoid", "log_sigmoid", "softplus", "log_ndtr"]
)
def test_unary(symbolic, name):
    ns, symbols, numeric = symbolic
    x = symbols if name != "log1p" else symbols * symbols
    v = VALUES if name != "log1p" else VALUES**2
    np.testing.assert_allclose(numeric(getattr(ns, name)(x)), getattr(NUMPY, name)(v), rtol=1e-12)


def test_gammaln_digamma_and_positive_domain(symbolic):
    ns, symbols, numeric = symbolic
    positive = ns.exp(symbols)
    for name in ("gammaln", "digamma", "log", "sqrt"):
        np.testing.assert_allclose(numeric(getattr(ns, name)(positive)), getattr(NUMPY, name)(np.exp(VALUES)), rtol=1e-12)


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_reductions(symbolic, axis):
    ns, symbols, numeric = symbolic
    for name in ("sum", "mean", "prod", "logsumexp"):
        np.testing.assert_allclose(numeric(getattr(ns, name)(symbols, axis)), getattr(NUMPY, name)(VALUES, axis), rtol=1e-12)
    if axis is not None:
        np.testing.assert_allclose(numeric(ns.cumsum(symbols, axis)), np.cumsum(VALUES, axis), rtol=1e-12)


def test_matmul_where_and_data_mixing(symbolic):
    ns, symbols, numeric = symbolic
    data = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.25]])
    np.testing.assert_allclose(numeric(ns.matmul(symbols, data)), VALUES @ data, rtol=1e-12)
    np.testing.assert_allclose(numeric(ns.matmul(symbols[0], data)), VALUES[0] @ data, rtol=1e-12)
    np.testing.assert_allclose(numeric(ns.matmul(symbols[0], symbols[1])), VALUES[0] @ VALUES[1], rtol=1e-12)
    np.testing.assert_allclose(numeric(ns.where(VALUES > 0, symbols, 0.0)), np.where(VALUES > 0, VALUES, 0.0))
    positive = np.vectorize(lambda s: s > 0, otypes=[object])(symbols)  # symbolic conditions
    np.testing.assert_allclose(numeric(ns.where(positive, symbols, -symbols)), np.abs(VALUES))


def test_unsupported_functions_name_themselves():
    ns = namespace_named("sympy")
    with pytest.raises(BackendCompilationError, match="ppl_ad.math.cholesky"):
        ns.cholesky(np.eye(2, dtype=object))
