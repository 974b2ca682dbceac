"""Threads of the LAPACK that the compiled engine's program calls.

This module owns :func:`one_lapack_thread`, the context in which :mod:`ppl_ad.infer.jax_engine`
runs its program. XLA:CPU runs matrix products itself, but hands ``eigh``, ``qr``, ``cholesky``
and their relatives to LAPACK, which JAX takes from SciPy: an OpenBLAS that starts as many
threads as the machine has cores. The matrices of a sampler are small (the low-rank metric's
estimate: at most 255 x 255; a Gaussian process over tens of points), and OpenBLAS's threads
spin while they wait for work. On a machine whose cores are busy (other chains, other users)
they wait for each other: a 203 x 203 ``eigh`` took 230-340 ms under a load of 3-4 on 2 cores,
against 9.6 ms on one thread in the same minute, and the warmup of ``metric="low_rank"`` on
models of 80-100 parameters took 7-21 s instead of about 2 (4 chains of 1000 + 1000, with the
draws bit for bit the same). Inside the context OpenBLAS uses one thread, as in the worker
processes of ``chain_method="parallel"`` (:data:`ppl_ad.infer.parallel.THREAD_VARIABLES`); on
exit it gets its previous number back.

The limit is the process's, not the thread's (OpenBLAS has one setting): other threads of the
process that call BLAS while the chains run also get one thread. It needs ``threadpoolctl``
(a dependency of ppl_ad); without it the context does nothing.

References
----------
threadpoolctl (https://github.com/joblib/threadpoolctl): ``threadpool_limits``.
"""

from __future__ import annotations

import contextlib

__all__ = ["one_lapack_thread"]


@contextlib.contextmanager
def one_lapack_thread():
    """Run the body with every loaded BLAS/LAPACK library, and SciPy's (which JAX's LAPACK
    calls are), limited to one thread; the previous limits come back on exit."""
    try:
        import scipy.linalg.cython_lapack  # noqa: F401 - loads SciPy's OpenBLAS, so that the limit reaches it
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
