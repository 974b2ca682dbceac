"""AD backends: values (``JAX()``, ``Torch()``...), the registry and its listing.

``pa.backends.list()`` shows every backend with mode, library, installed version and
status; ``pa.backends.tested()`` is the set our test matrix runs (supported backends only).
"""

from ppl_ad.backends.base import (
    DEPRECATED, EXPERIMENTAL, REMOVED, STATUSES, SUPPORTED, JAX, Autograd, Backend, FiniteDifference,
    JAXForward, Prepared, SymPy, Torch, TorchForward,
)
from ppl_ad.backends.registry import REGISTRY, all_backends, get, list, names, prepare, tested

__all__ = [
    "Backend", "JAX", "JAXForward", "Torch", "TorchForward", "Autograd", "FiniteDifference",
    "SymPy", "SUPPORTED", "EXPERIMENTAL", "DEPRECATED", "REMOVED", "STATUSES", "Prepared",
    "REGISTRY", "all_backends", "get", "list", "names", "prepare", "tested", "recommend",
]


def recommend(model, **kwargs):
    """Rank the installed, correct backends for ``model`` by measured gradient time."""
    from ppl_ad.bench.auto import recommend as _recommend

    return _recommend(model, **kwargs)
