"""The ``torch-forward`` backend (experimental): forward mode with ``torch.func.jacfwd``.

``torch.func`` vectorises one tangent per coordinate with ``vmap``; operations without a
batching rule fall back to a slow loop, which is why this backend stays experimental.
"""

from __future__ import annotations

import warnings

from ppl_ad.backends._torch_common import float64_default, set_threads, torch_logdensity_fn
from ppl_ad.backends.base import Prepared


def prepare(compiled, backend) -> Prepared:
    import torch
    import torch.func

    set_threads(backend)
    logdensity_fn = torch_logdensity_fn(compiled)  # data as tensors, or the NumPy-interop mode

    def both(theta):
        value = logdensity_fn(theta)
        if not isinstance(value, torch.Tensor):
            value = torch.as_tensor(value, dtype=torch.float64) + 0.0 * theta.sum()
        return value, value

    jacobian = torch.func.jacfwd(both, has_aux=True)

    def value(theta):
        with float64_default(), torch.no_grad():
            return float(logdensity_fn(torch.from_numpy(theta)))

    def value_and_gradient(theta):
        with float64_default(), warnings.catch_warnings():
            # torch.func's vmap fallback calls the deprecated torch.jit.script internally.
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*is deprecated", category=DeprecationWarning)
            gradient, out = jacobian(torch.from_numpy(theta))
        return float(out), gradient.detach().numpy()

    return Prepared(value, value_and_gradient)
