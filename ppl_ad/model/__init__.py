"""The model layer: primitives, handlers, the ``@model`` decorator and compiled models."""

from ppl_ad.model.compiled import CompiledModel, compile_model
from ppl_ad.model.model import Model, ModelFunction, model
from ppl_ad.model.primitives import deterministic, factor, observe, sample_site

__all__ = [
    "CompiledModel", "compile_model", "Model", "ModelFunction", "model", "deterministic",
    "factor", "observe", "sample_site",
]
