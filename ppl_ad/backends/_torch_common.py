"""Shared set-up of the PyTorch backends: data as tensors, float64 default dtype, NumPy interop.

PyTorch tensors do not combine with NumPy arrays (``tensor + np.eye(n)``, ``ndarray / tensor``
raise), and NumPy functions of data tensors warn. A model that computes with NumPy inside
(``d2 = np.square(x[:, None] - x[None, :])``) is therefore evaluated in a *NumPy-interop*
mode: its data stay NumPy arrays and the parameter vector is a tensor subclass that NumPy's
operators defer to (:func:`ppl_ad.math._torch.numpy_interop_tensor_class`). The mode costs a
Python call per operation, so :func:`torch_logdensity_fn` chooses it only for models that
need it: those whose first evaluation fails or warns the NumPy way.
"""

from __future__ import annotations

import contextlib
import os

import threading

import numpy as np


def tensor_data(data: dict) -> dict:
    """Numeric NumPy arrays in ``data`` become tensors (floats as float64, ints as int64); a
    read-only array (pandas' ``to_numpy()`` views, ``np.broadcast_to``) is copied, since a tensor
    would share memory it may not write."""
    import torch

    out = {}
    for key, value in data.items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            if not value.flags.writeable:
                value = value.copy()
            out[key] = torch.as_tensor(value, dtype=torch.float64 if value.dtype.kind == "f" else None)
        else:
            out[key] = value
    return out


@contextlib.contextmanager
def float64_default():
    """Make Python floats combine with integer tensors in float64 inside a model.

    PyTorch's default dtype belongs to the process, so evaluations under it hold
    :data:`_DEFAULT_DTYPE_LOCK`: a thread that restored float32 while another was still
    computing made that one's values wrong (3-5 % of calls from two threads)."""
    import torch

    with _DEFAULT_DTYPE_LOCK:
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            yield
        finally:
            torch.set_default_dtype(previous)


#: held while a PyTorch evaluation runs with float64 as the default dtype (re-entrant: nested
#: evaluations of one thread)
_DEFAULT_DTYPE_LOCK = threading.RLock()


def set_threads(backend):
    import torch

    if backend.num_threads is not None and torch.get_num_threads() != backend.num_threads:
        torch.set_num_threads(backend.num_threads)


_INTEROP_MESSAGES = (
    "Can't call numpy() on Tensor that requires grad",
    "'numpy.ndarray' and 'Tensor'",
    "'Tensor' and 'numpy.ndarray'",
    "Concatenation operation is not implemented for NumPy arrays",
    "__array_wrap__ must accept context",
)


def _is_interop_failure(error: BaseException | None) -> bool:
    """The failure of a NumPy operation on a tensor: one of the messages above, or any error
    raised inside NumPy's own code (``np.std(y)`` of a data tensor calls ``y.std(axis=None,
    ddof=0, ...)``, which PyTorch's signature refuses)."""
    while error is not None:
        if any(text in str(error) for text in _INTEROP_MESSAGES) or _raised_inside_numpy(error):
            return True
        error = error.__cause__
    return False


def _raised_inside_numpy(error: BaseException) -> bool:
    folder = os.path.dirname(np.__file__) + os.sep
    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename.startswith(folder):
            return True
        traceback = traceback.tb_next
    return False


def torch_logdensity_fn(compiled, probe: bool = True):
    """``f(theta_tensor) -> log density`` for the PyTorch backends, in the mode the model needs.

    The fast mode passes the data as tensors and the parameters as plain tensors. When the
    model mixes NumPy arrays with tensors (found by one evaluation with a gradient at the
    origin, or later by the same failure), the NumPy-interop mode is used from then on.

    Returns
    -------
    callable
        ``f(theta)``; ``f.numpy_interop()`` tells which mode is in use.
    """
    import warnings

    import torch

    from ppl_ad.errors import ModelEvaluationError
    from ppl_ad.math._torch import numpy_interop_tensor_class

    with float64_default():
        fast = compiled.make_logdensity_fn("torch", tensor_data(compiled.model.data))
    state = {"fn": fast, "interop": False}

    def use_interop():
        state["fn"] = compiled.make_logdensity_fn("torch-numpy", compiled.model.data)
        interop_class = numpy_interop_tensor_class()
        state["wrap"] = lambda theta: theta.as_subclass(interop_class)
        state["interop"] = True

    def evaluate(theta):
        if state["interop"]:
            return state["fn"](state["wrap"](theta))
        try:
            return fast(theta)
        except ModelEvaluationError as error:
            if not _is_interop_failure(error.__cause__):
                raise
        use_interop()
        return state["fn"](state["wrap"](theta))

    evaluate.numpy_interop = lambda: state["interop"]
    if probe and compiled.dimension:
        theta = torch.zeros(compiled.dimension, dtype=torch.float64, requires_grad=True)
        with float64_default(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                fast(theta)
            except ModelEvaluationError as error:
                if _is_interop_failure(error.__cause__):
                    use_interop()
            except Exception:  # noqa: BLE001 - any other failure is raised by the real evaluations
                pass
        if not state["interop"] and any(_is_interop_failure(w.message) for w in caught):
            use_interop()
    return evaluate
