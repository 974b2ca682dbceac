"""Shared set-up of the PyTorch backends: data as tensors, float64 default dtype."""

from __future__ import annotations

import contextlib

import numpy as np


def tensor_data(data: dict) -> dict:
    """Numeric NumPy arrays in ``data`` become tensors (floats as float64, ints as int64)."""
    import torch

    out = {}
    for key, value in data.items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            out[key] = torch.as_tensor(value, dtype=torch.float64 if value.dtype.kind == "f" else None)
        else:
            out[key] = value
    return out


@contextlib.contextmanager
def float64_default():
    """Make Python floats combine with integer tensors in float64 inside a model."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def set_threads(backend):
    import torch

    if backend.num_threads is not None and torch.get_num_threads() != backend.num_threads:
        torch.set_num_threads(backend.num_threads)
