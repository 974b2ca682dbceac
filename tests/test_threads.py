"""ppl_ad._threads: model evaluations in several threads at once do not see each other's state."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad import math as M
from ppl_ad._threads import ThreadStack
from ppl_ad.model import primitives


def test_each_thread_has_its_own_stack():
    stack = ThreadStack("bottom")
    stack.append("main")
    seen = {}

    def other():
        seen["start"] = list(stack)
        stack.append("other")
        seen["after"] = list(stack)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen == {"start": ["bottom"], "after": ["bottom", "other"]}
    assert list(stack) == ["bottom", "main"] and stack[-1] == "main" and len(stack) == 2 and stack
    assert stack.pop() == "main" and list(stack) == ["bottom"]


def test_the_handler_and_namespace_stacks_are_per_thread():
    with M.using("torch"):
        result = ThreadPoolExecutor(1).submit(lambda: (M.active().name, len(primitives.HANDLERS))).result()
        assert M.active().name == "torch"
    assert result == ("numpy", 0)


@pa.model
def regression(x, y):
    alpha = pa.sample("alpha", dist.Normal(0.0, 5.0))
    beta = pa.sample("beta", dist.Normal(0.0, 5.0))
    sigma = pa.sample("sigma", dist.HalfNormal(2.0))
    pa.observe("y", dist.Normal(alpha + beta * x, sigma), y)


@pytest.mark.parametrize("backend", ["torch", "torch-forward", "autograd", "jax"])
def test_two_threads_evaluating_at_once_get_the_single_thread_numbers(backend):
    x = np.linspace(-1.0, 1.0, 40)
    y = 0.5 + 2 * x + 0.3 * np.sin(7 * x)
    ld = pa.logdensity(regression(x, y), backend=backend)
    points = np.random.default_rng(3).normal(size=(200, 3)) * 0.5
    reference = [ld.logdensity_and_gradient(p) for p in points]

    def run(offset):
        wrong = 0
        for i in range(len(points)):
            j = (i + offset) % len(points)
            value, grad = ld.logdensity_and_gradient(points[j])
            wrong += value != reference[j][0] or not np.array_equal(grad, reference[j][1])
        return wrong

    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(run, [0, 100])) == [0, 0]
