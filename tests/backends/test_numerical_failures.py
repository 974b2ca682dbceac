"""A numerical failure inside the log density rejects the point on every backend (issue 12 item 4).

A Cholesky of a matrix that is not positive definite raises under the tape backends (PyTorch's
``torch.linalg.LinAlgError``, NumPy's ``LinAlgError`` under autograd) and gives NaN under JAX. It
must give a non-finite log density, never an exception, so that the sampler counts a divergence
(or rejects an initial point); errors of the model's own code still raise.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad import math as M
from ppl_ad.errors import ModelEvaluationError, SamplingWarning

BACKENDS = ["torch", "autograd", "jax", "jax-forward", "torch-forward", "finite-difference"]


@pa.model
def gp_poisson(x, y):
    rho = pa.sample("rho", dist.LogNormal(0.0, 2.0))
    alpha = pa.sample("alpha", dist.HalfNormal(1.0))
    z = pa.sample("z", dist.Normal(0.0, 1.0), shape=(len(x),))
    d2 = M.square(M.asarray(x)[:, None] - M.asarray(x)[None, :])
    K = alpha**2 * M.exp(-0.5 * d2 / rho**2)  # no jitter: singular for a long length scale
    f = M.matmul(M.cholesky(K), z)
    pa.deterministic("f", f)
    pa.observe("y", dist.Poisson(M.exp(f)), y)


X = np.linspace(0.0, 5.0, 12)
Y = np.array([1, 2, 1, 0, 3, 4, 2, 1, 0, 1, 2, 3])
FAILING = np.concatenate([[6.0, 0.0], np.zeros(12)])  # rho = e^6: K is all alpha^2, rank one


@pytest.mark.parametrize("backend", BACKENDS)
def test_failed_cholesky_gives_a_non_finite_log_density(backend):
    ld = pa.logdensity(gp_poisson(X, Y), backend=backend)
    value = ld.logdensity(FAILING)
    value_and_gradient, gradient = ld.logdensity_and_gradient(FAILING)
    assert not np.isfinite(value) and not np.isfinite(value_and_gradient)
    assert gradient.shape == (14,)
    # a good point still evaluates
    good = np.zeros(14)
    assert np.isfinite(ld.logdensity_and_gradient(good)[0])


@pytest.mark.parametrize("backend", ["torch", "autograd"])
def test_trace_at_a_failing_point_marks_values_nan(backend):
    ld = pa.logdensity(gp_poisson(X, Y), backend=backend)
    values = ld.constrain(FAILING, deterministics=True)
    assert np.isclose(values["rho"], np.exp(6.0)) and np.all(np.isnan(values["f"]))
    assert "z" in ld.non_finite_sites(FAILING)


@pa.model
def typo(x):
    sigma = pa.sample("sigma", dist.HalfNormal(1.0))
    L = M.cholesky(M.eye(2) * sigma)
    pa.factor("f", M.sum(L) + undefined_name)  # noqa: F821 - the bug under test


@pytest.mark.parametrize("backend", ["torch", "autograd", "finite-difference"])
def test_errors_of_the_model_code_still_raise(backend):
    with pytest.raises(ModelEvaluationError, match="NameError"):
        pa.logdensity(typo(1.0), backend=backend).logdensity_and_gradient(np.zeros(1))


@pa.model
def correlated_pairs(y):
    # Cholesky of [[1, r], [r, 1]] with r on the real line: it fails whenever |r| >= 1, and the
    # data (correlation 0.95) put the posterior next to that edge.
    r = pa.sample("r", dist.Normal(0.0, 1.0))
    L = M.cholesky(M.eye(2) + r * (M.ones((2, 2)) - M.eye(2)))
    z = M.transpose(M.solve_triangular(L, M.transpose(M.asarray(y)), lower=True))
    pa.factor("likelihood", -0.5 * M.sum(M.square(z)) - len(y) * M.sum(M.log(M.diagonal(L))))


@pytest.mark.parametrize("backend", ["torch", "autograd"])
def test_sampling_through_cholesky_failures_completes(backend):
    rng = np.random.default_rng(1)
    y = rng.multivariate_normal([0.0, 0.0], [[1.0, 0.95], [0.95, 1.0]], size=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        idata = pa.sample(
            correlated_pairs(y), backend=backend, chains=1, cores=1, tune=100, draws=50, seed=3,
            progressbar=False,
        )
    r = idata.posterior["r"].values
    assert r.shape == (1, 50) and np.all(np.abs(r) < 1.0) and abs(float(r.mean()) - 0.95) < 0.05
