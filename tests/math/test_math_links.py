"""``ppl_ad.math.link_argument``: which argument a link function's result came from, within one
evaluation only."""

from __future__ import annotations

import numpy as np

from ppl_ad import math as M


def test_the_argument_is_known_inside_an_evaluation_only():
    a = np.array([0.5, 40.0])
    outside = M.sigmoid(a)
    assert M.link_argument(outside, "sigmoid") is None
    with M.using("numpy"):
        p, rate = M.sigmoid(a), M.exp(a)
        assert M.link_argument(p, "sigmoid") is a
        assert M.link_argument(rate, "exp") is a
        assert M.link_argument(p, "exp") is None  # the kind must match
        assert M.link_argument(p * 1.0, "sigmoid") is None  # a derived value is not the result
        assert M.link_argument(outside, "sigmoid") is None
        with M.using("numpy"):  # an inner evaluation starts empty
            assert M.link_argument(p, "sigmoid") is None
        assert M.link_argument(p, "sigmoid") is a
    assert M.link_argument(p, "sigmoid") is None  # nothing outlives the evaluation
    assert not M._links


def test_python_numbers_are_not_recorded():
    with M.using("numpy"):
        assert isinstance(M.sigmoid(0.5), float) and isinstance(M.exp(1.0), float)
        assert M._links[-1] == {}


def test_softmax_and_log_softmax():
    x = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]])
    np.testing.assert_allclose(M.softmax(x), np.exp(x - x.max(-1, keepdims=True)) / np.sum(
        np.exp(x - x.max(-1, keepdims=True)), -1, keepdims=True), rtol=1e-14)
    np.testing.assert_allclose(M.log_softmax(x)[1], [0.0, -1000.0, -2000.0], rtol=1e-14)
    np.testing.assert_allclose(M.softmax(x, axis=0).sum(0), 1.0, rtol=1e-14)


def test_a_softmax_records_its_logits_for_the_last_axis_only():
    x = np.array([[0.5, 1.0, -2.0], [0.0, 3.0, 1.0]])
    with M.using("numpy"):
        assert M.link_argument(M.softmax(x), "softmax") is x
        assert M.link_argument(M.softmax(x, axis=1), "softmax") is x
        assert M.link_argument(M.softmax(x, axis=0), "softmax") is None  # not the categories' axis
