"""Tests of ppl_ad.infer.termination (generalised no-U-turn criterion)."""

from __future__ import annotations

import numpy as np

from ppl_ad.infer.termination import is_turning, merged_is_turning


def test_is_turning():
    rho = np.array([1.0, 0.0])
    assert not is_turning(np.array([1.0, 0.2]), np.array([0.5, -0.3]), rho)
    assert is_turning(np.array([1.0, 0.2]), np.array([-0.5, 0.3]), rho)
    assert is_turning(np.array([-1.0, 0.2]), np.array([0.5, 0.3]), rho)
    # Exactly orthogonal counts as turning (strict inequality, as in Stan).
    assert is_turning(np.array([0.0, 1.0]), np.array([1.0, 0.0]), rho)


def test_merged_checks_catch_a_turn_between_subtrees():
    # Two subtrees that each go right, with the merged sum still pointing right,
    # but the left subtree extended by the right one's first point turns back.
    p_left_begin = np.array([1.0, 0.0])
    p_left_end = np.array([1.0, 0.0])
    p_right_begin = np.array([-3.0, 0.0])
    p_right_end = np.array([1.0, 0.0])
    rho_left = p_left_begin + p_left_end
    rho_right = p_right_begin + p_right_end + np.array([5.0, 0.0])
    rho = rho_left + rho_right
    v = lambda p: p  # unit metric
    assert not is_turning(v(p_left_begin), v(p_right_end), rho)
    assert merged_is_turning(
        rho, rho_left, rho_right, p_left_end, p_right_begin,
        v(p_left_begin), v(p_left_end), v(p_right_begin), v(p_right_end),
    )
    # Declaring the subtrees leaves skips the extra checks.
    assert not merged_is_turning(
        rho, rho_left, rho_right, p_left_end, p_right_begin,
        v(p_left_begin), v(p_left_end), v(p_right_begin), v(p_right_end), left_is_leaf=True,
    )
