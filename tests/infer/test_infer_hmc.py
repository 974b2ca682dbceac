"""Tests of ppl_ad.infer.hmc (static HMC kernel and jittered path length)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ppl_ad.infer import hmc
from ppl_ad.infer.metrics import gaussian_euclidean


@pytest.mark.parametrize("path_length,step_size", [(2.0, 0.1), (1.0, 0.7), (3.0, 0.011), (1e-9, 1.0), (5.0, 1e-12)])
def test_jittered_num_steps_range(path_length, step_size):
    nominal = max(1, min(1024, round(path_length / step_size)))
    low = max(1, math.floor(0.9 * nominal))
    high = min(1024, max(low, math.ceil(1.1 * nominal)))
    values = {hmc.jittered_num_steps(path_length, step_size, u) for u in np.linspace(0, 1, 1001, endpoint=False)}
    assert values == set(range(low, high + 1))


def test_hmc_kernel_half_period_of_a_standard_normal():
    # For a standard normal with unit metric, the leapfrog keeps energy almost
    # exactly at small step sizes: acceptance ~ 1.
    def f(x):
        return -0.5 * float(x.dot(x)), -x

    metric = gaussian_euclidean(np.ones(1))
    kernel = hmc.build_kernel(f, metric)
    state = hmc.HMCState(np.array([1.0]), *f(np.array([1.0])))
    new, info = kernel(state, 0.01, np.array([0.0]), 314, 0.5)
    assert info.is_accepted and not info.is_divergent
    assert info.acceptance_rate > 0.999
    assert new.position[0] == pytest.approx(-1.0, abs=1e-3)  # half a period: x -> -x
    assert info.num_integration_steps == 314


def test_hmc_non_finite_is_divergence():
    def f(x):
        if x[0] > 0.5:
            return math.nan, np.full_like(x, np.nan)
        return -0.5 * float(x.dot(x)), -x

    metric = gaussian_euclidean(np.ones(2))
    kernel = hmc.build_kernel(f, metric)
    state = hmc.HMCState(np.zeros(2), *f(np.zeros(2)))
    with np.errstate(all="ignore"):
        new, info = kernel(state, 0.1, np.array([3.0, 0.0]), 20, 0.5)
    assert info.is_divergent and not info.is_accepted
    assert new is state
    assert info.num_integration_steps < 20  # stopped at the first non-finite step
