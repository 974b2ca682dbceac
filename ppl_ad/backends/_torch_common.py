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

    from ppl_ad.errors import ModelDefinitionError, ModelEvaluationError
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
        reference = _reference_value(compiled)
        value = None
        with float64_default(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                value = float(fast(theta).detach())
            except ModelEvaluationError as error:
                # a NumPy operation on a data tensor, or a NumPy method PyTorch lacks
                # (``y.copy()``, ``y.mean()`` of integer data) where NumPy evaluates the model
                if _is_interop_failure(error.__cause__) or reference is not None:
                    use_interop()
            except Exception:  # noqa: BLE001 - any other failure is raised by the real evaluations
                pass
        if not state["interop"] and any(_is_interop_failure(w.message) for w in caught):
            use_interop()
        # a method with another meaning on tensors (``y.std()`` has ddof=1, ``x.repeat(2)`` tiles):
        # compared with NumPy at the origin and at a point whose coordinates all differ
        if not state["interop"] and value is not None and _disagrees(compiled, fast, [reference]):
            use_interop()  # the data stay NumPy arrays there
        disagreement = _disagrees(compiled, evaluate) if state["interop"] else None
        if disagreement is not None:
            point, value, reference = disagreement
            raise ModelDefinitionError(
                f"model '{compiled.model.name}': under PyTorch its log density at theta = {_short(point)} is "
                f"{value!r}, under NumPy {reference!r}. The model probably calls an array method that means "
                "something else on a torch tensor (x.std() and x.var() use ddof=1, x.repeat(n) tiles, "
                "x.nonzero() returns one array): write it with pa.math functions (M.sqrt(M.mean((x - M.mean(x))**2))) "
                "or use another backend ('jax')"
            )
    return evaluate


def _reference_value(compiled, point=None):
    """The NumPy log density at ``point`` (the origin by default), what every backend must
    reproduce, or None when it is not a finite number there."""
    point = np.zeros(compiled.dimension) if point is None else point
    try:
        with np.errstate(all="ignore"):
            value = float(compiled._numpy_fn(point))
    except Exception:  # noqa: BLE001 - no reference: the backend's own evaluations report failures
        return None
    return value if np.isfinite(value) else None


def _disagrees(compiled, fn, references=None):
    """``(point, value, reference)`` of the first probe point where ``fn`` (a tensor in, a tensor
    out) and NumPy give different finite log densities; None when they agree (or cannot be compared)."""
    import torch

    from ppl_ad.model.compiled import probe_points

    points = probe_points(compiled.dimension)
    for i, point in enumerate(points):
        reference = references[i] if references is not None and i < len(references) else _reference_value(compiled, point)
        if reference is None:
            continue
        try:
            with float64_default(), np.errstate(all="ignore"):
                value = float(fn(torch.as_tensor(point, dtype=torch.float64)).detach())
        except Exception:  # noqa: BLE001 - raised again, with the model's context, by real evaluations
            continue
        # 1e-5: an array method that means something else on a tensor (x.std() has ddof=1) moves the
        # density by far more; rounding in the cancellation of large data-only terms does not
        # (Binomial counts of 1e9: gammaln terms of 2e10 cancel to -11.5, off by 4e-6 between libraries)
        if np.isfinite(value) and not np.isclose(value, reference, rtol=1e-5, atol=1e-6):
            return point, value, reference
    return None


def _short(point) -> str:
    return np.array2string(np.asarray(point), precision=3, threshold=6)
