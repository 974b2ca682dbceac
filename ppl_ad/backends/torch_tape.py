"""The ``torch`` backend: PyTorch autograd records a tape on each call, then ``backward()``.

The model's Python code runs on every call (so data-dependent control flow is free); data
arrays are converted to tensors once, when the backend is prepared (a model that computes
with NumPy inside runs in the NumPy-interop mode of :mod:`ppl_ad.backends._torch_common`).
"""

from __future__ import annotations

import numpy as np

from ppl_ad.backends._torch_common import set_threads, torch_logdensity_fn
from ppl_ad.backends.base import Prepared


def prepare(compiled, backend) -> Prepared:
    import torch

    set_threads(backend)
    logdensity_fn = torch_logdensity_fn(compiled)
    set_default = torch.set_default_dtype
    get_default = torch.get_default_dtype
    f64 = torch.float64
    zeros = np.zeros(compiled.dimension)

    def value(theta):
        previous = get_default()
        set_default(f64)
        try:
            with torch.no_grad():
                return float(logdensity_fn(torch.from_numpy(theta)))
        finally:
            set_default(previous)

    def value_and_gradient(theta):
        x = torch.from_numpy(theta).requires_grad_(True)
        previous = get_default()
        set_default(f64)
        try:
            out = logdensity_fn(x)
        finally:
            set_default(previous)
        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            return float(out), zeros.copy()
        out.backward()
        return out.item(), x.grad.numpy()

    return Prepared(value, value_and_gradient)
