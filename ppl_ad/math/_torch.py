"""The PyTorch namespace for ppl_ad.math (imported only by the PyTorch backends).

PyTorch functions take tensors only; every function here first turns Python numbers and
NumPy arrays into float64 tensors (integer arrays keep an integer dtype).
"""

from __future__ import annotations



_INTEROP_CLASS = []


def numpy_interop_tensor_class():
    """The ``torch.Tensor`` subclass that NumPy arrays combine with (``ndarray / tensor``).

    PyTorch tensors and NumPy arrays do not mix: ``tensor + np.eye(n)`` and ``ndarray / tensor``
    raise (or call ``numpy()`` on a tensor that requires grad). Tensors of this class take part
    in NumPy's ``__array_ufunc__`` protocol: an arithmetic or comparison ufunc with such a tensor
    among its operands (which is what Python operators between an array and a tensor become)
    runs as the PyTorch operation, on the tape. Other NumPy functions of a parameter still
    raise. The subclass costs a Python call per operation, so the ``torch`` backend uses it only
    for models that need it (see :mod:`ppl_ad.backends._torch_common`).
    """
    if _INTEROP_CLASS:
        return _INTEROP_CLASS[0]
    import numpy as np
    import torch

    f64 = torch.float64
    ufuncs = {
        "add": torch.add, "subtract": torch.sub, "multiply": torch.mul, "true_divide": torch.true_divide,
        "divide": torch.true_divide, "power": torch.pow, "matmul": torch.matmul, "negative": torch.neg,
        "positive": torch.positive, "floor_divide": torch.floor_divide, "remainder": torch.remainder,
        "less": torch.lt, "less_equal": torch.le, "greater": torch.gt, "greater_equal": torch.ge,
        "equal": torch.eq, "not_equal": torch.ne, "maximum": torch.maximum, "minimum": torch.minimum,
    }

    def convert(x):
        if isinstance(x, np.ndarray):
            return torch.as_tensor(_positive_strides(x), dtype=f64 if x.dtype.kind == "f" else None)
        if isinstance(x, np.generic):
            return x.item()
        return x

    class NumpyInteropTensor(torch.Tensor):
        """A tensor that NumPy arrays combine with (see :func:`numpy_interop_tensor_class`)."""

        _ppl_ad_namespace = "torch-numpy"

        def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
            function = ufuncs.get(ufunc.__name__) if method == "__call__" and not kwargs else None
            if function is None:
                return NotImplemented
            return function(*[convert(x) for x in inputs])

    _INTEROP_CLASS.append(NumpyInteropTensor)
    return NumpyInteropTensor


def build_numpy_interop():
    """The PyTorch namespace whose new tensors are :func:`numpy_interop_tensor_class` tensors."""
    return build(numpy_interop_tensor_class())


def build(tensor_class=None):
    import numpy as np
    import torch

    from ppl_ad.math._namespace import Namespace, log1mexp_with

    Tensor = torch.Tensor
    f64 = torch.float64
    name = "torch" if tensor_class is None else "torch-numpy"

    def t(x):
        if isinstance(x, Tensor):
            return x
        if isinstance(x, np.ndarray):
            x = _positive_strides(x)
        if isinstance(x, np.ndarray) and x.dtype.kind in "iub":
            x = torch.as_tensor(x)
        else:
            x = torch.as_tensor(x, dtype=f64)
        return x if tensor_class is None else x.as_subclass(tensor_class)

    def tf(x):
        x = t(x)
        return x if x.is_floating_point() else x.to(f64)

    def asarray(x):
        return x if isinstance(x, (Tensor, float, int)) else t(x)

    def unary(fn):
        return lambda x: fn(tf(x))

    def reduce(fn):
        def reducer(x, axis):
            x = tf(x)
            return fn(x) if axis is None else fn(x, dim=axis)

        return reducer

    def xlogy(x, y):
        # torch.special.xlogy's gradient in y is x / y = 0 / 0 = NaN where x = 0 and y = 0 (a
        # Bernoulli probability of exactly 0 or 1): the log of 1 there keeps it 0. Only there (and
        # for y < 0): where x = 0 < y, d/dx is log(y) (a Gamma or Beta shape of exactly 1)
        x, y = tf(x), tf(y)
        return x * torch.log(torch.where((x == 0) & (y <= 0), 1.0, y))

    def xlog1py(x, y):
        x, y = tf(x), tf(y)
        return x * torch.log1p(torch.where((x == 0) & (y <= -1), 0.0, y))

    stable_log1mexp = log1mexp_with(torch.where, torch.log, torch.expm1, torch.log1p, torch.exp)

    def log1mexp(x):
        return stable_log1mexp(tf(x))

    def logsumexp(x, axis):
        x = tf(x)
        return torch.logsumexp(x.reshape(-1), 0) if axis is None else torch.logsumexp(x, axis)

    def where(c, x, y):
        return torch.where(t(c).bool(), tf(x), tf(y))

    def clip(x, lower, upper):
        return torch.clamp(tf(x), lower, upper)

    def solve_triangular(a, b, lower):
        a, b = tf(a), tf(b)
        vector = b.dim() == 1
        out = torch.linalg.solve_triangular(a, b[:, None] if vector else b, upper=not lower)
        return out[:, 0] if vector else out

    def new(x):
        return x if tensor_class is None else x.as_subclass(tensor_class)

    def zeros(shape):
        return new(torch.zeros(shape, dtype=f64))

    def ones(shape):
        return new(torch.ones(shape, dtype=f64))

    def eye(n):
        return new(torch.eye(n, dtype=f64))

    return Namespace(
        name,
        dict(
            asarray=asarray,
            exp=unary(torch.exp), log=unary(torch.log), log1p=unary(torch.log1p),
            expm1=unary(torch.expm1), sqrt=unary(torch.sqrt), square=unary(torch.square),
            abs=unary(torch.abs), sin=unary(torch.sin), cos=unary(torch.cos),
            tanh=unary(torch.tanh), arctan=unary(torch.atan),
            arctan2=lambda a, b: torch.atan2(tf(a), tf(b)), floor=unary(torch.floor), isfinite=unary(torch.isfinite),
            erf=unary(torch.special.erf), erfc=unary(torch.special.erfc),
            gammaln=unary(torch.special.gammaln), digamma=unary(torch.special.digamma),
            i0e=unary(torch.special.i0e),
            xlogy=xlogy, xlog1py=xlog1py,
            sigmoid=unary(torch.sigmoid), logit=unary(torch.logit),
            log_sigmoid=unary(torch.nn.functional.logsigmoid),
            softplus=unary(lambda x: -torch.nn.functional.logsigmoid(-x)),  # torch's softplus is x past 20
            log_ndtr=unary(torch.special.log_ndtr), log1mexp=log1mexp,
            sum=reduce(torch.sum), mean=reduce(torch.mean), prod=reduce(torch.prod),
            cumsum=lambda x, axis: torch.cumsum(tf(x), axis),
            logsumexp=logsumexp,
            matmul=lambda a, b: torch.matmul(tf(a), tf(b)),
            outer=lambda a, b: torch.outer(tf(a), tf(b)),
            where=where,
            maximum=lambda a, b: torch.maximum(tf(a), tf(b)),
            minimum=lambda a, b: torch.minimum(tf(a), tf(b)),
            clip=clip,
            stack=lambda xs, axis: torch.stack([tf(x) for x in xs], axis),
            concatenate=lambda xs, axis: torch.cat([torch.atleast_1d(tf(x)) for x in xs], axis),
            reshape=lambda x, shape: torch.reshape(t(x), shape),
            broadcast_to=lambda x, shape: torch.broadcast_to(tf(x), shape),
            transpose=lambda x: torch.transpose(tf(x), -1, -2),
            diagonal=lambda x: torch.diagonal(tf(x), dim1=-2, dim2=-1),
            tril=lambda x, k: torch.tril(tf(x), k),
            cholesky=unary(torch.linalg.cholesky), solve_triangular=solve_triangular,
            zeros=zeros, ones=ones, eye=eye,
        ),
    )


def _positive_strides(array):
    """``array``, copied when a stride is negative (``np.flip(y)``, ``y[::-1]``): PyTorch cannot
    view such memory."""
    import numpy as np

    return np.ascontiguousarray(array) if any(step < 0 for step in array.strides) else array
