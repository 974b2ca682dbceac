"""The generalised no-U-turn termination criterion.

This module owns the test that decides when a NUTS trajectory has started to
turn back on itself. Betancourt (2017) generalises Hoffman & Gelman's
``(q+ - q-) . p > 0`` to any Riemannian/Euclidean metric: with ``rho`` the sum of
the momenta over a (sub)trajectory and ``p#`` = ``M^{-1} p`` the velocity at its
two ends, the trajectory keeps going while ::

    p#_minus . rho > 0   and   p#_plus . rho > 0

Stan (since 2.23) applies the check to every merged pair of subtrees and, in
addition, to the two trajectories formed by one subtree extended by the first
point of the other ("extra sub-tree checks"), which catches U-turns that happen
between the two halves. :func:`merged_is_turning` implements all three checks.

References
----------
Betancourt, M. (2017). *A Conceptual Introduction to Hamiltonian Monte Carlo*,
appendix A.4.2. arXiv:1701.02434.

Hoffman, M. D. & Gelman, A. (2014). The No-U-Turn Sampler. *JMLR* 15, 1593-1623.

Stan Development Team. *Stan Reference Manual*, "HMC algorithm parameters".
"""

from __future__ import annotations

import numpy as np

__all__ = ["is_turning", "merged_is_turning"]


def is_turning(p_sharp_minus: np.ndarray, p_sharp_plus: np.ndarray, rho: np.ndarray) -> bool:
    """Whether a trajectory violates the generalised no-U-turn criterion.

    Parameters
    ----------
    p_sharp_minus, p_sharp_plus : numpy.ndarray
        Velocities ``M^{-1} p`` at the two ends of the trajectory (the order does
        not matter).
    rho : numpy.ndarray
        Sum of the momenta over the trajectory.

    Returns
    -------
    bool
        ``True`` when the trajectory must stop.
    """
    return not (p_sharp_plus.dot(rho) > 0 and p_sharp_minus.dot(rho) > 0)


def merged_is_turning(
    rho: np.ndarray,
    rho_left: np.ndarray,
    rho_right: np.ndarray,
    p_left_end: np.ndarray,
    p_right_begin: np.ndarray,
    p_sharp_left_begin: np.ndarray,
    p_sharp_left_end: np.ndarray,
    p_sharp_right_begin: np.ndarray,
    p_sharp_right_end: np.ndarray,
    left_is_leaf: bool = False,
) -> bool:
    """Stan's three checks on the merge of two adjacent subtrees.

    "Left" is the subtree integrated first (in the direction of integration) and
    "right" the one that follows it; ``begin``/``end`` are in that direction too.

    Parameters
    ----------
    rho : numpy.ndarray
        ``rho_left + rho_right``.
    rho_left, rho_right : numpy.ndarray
        Summed momenta of the two subtrees.
    p_left_end, p_right_begin : numpy.ndarray
        Momenta at the two inner ends (where the subtrees meet).
    p_sharp_left_begin, p_sharp_left_end, p_sharp_right_begin, p_sharp_right_end : numpy.ndarray
        Velocities at the four ends.
    left_is_leaf : bool, optional
        Both subtrees are single points. The two extra checks then coincide with
        the main one and are skipped (same result, fewer dot products).

    Returns
    -------
    bool
        ``True`` when the merged trajectory must stop.
    """
    if not (p_sharp_right_end.dot(rho) > 0 and p_sharp_left_begin.dot(rho) > 0):
        return True
    if left_is_leaf:
        return False
    rho_extended = rho_left + p_right_begin
    if not (p_sharp_right_begin.dot(rho_extended) > 0 and p_sharp_left_begin.dot(rho_extended) > 0):
        return True
    rho_extended = rho_right + p_left_end
    return not (p_sharp_right_end.dot(rho_extended) > 0 and p_sharp_left_end.dot(rho_extended) > 0)
