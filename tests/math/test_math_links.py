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

