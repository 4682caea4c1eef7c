"""The built-in analytical cost model: a timeloop-model drop-in for uniform mappings and its
mapper. ``BuiltinCostModel`` is the one entry point (the `CostModel` protocol: evaluate a mapping,
find the best one); ``MappingEvaluator`` (one mapping) and ``evaluate_batch`` (many at once) are
the evaluation core it and the mappers share."""

from .batch import BatchResult, evaluate_batch
from .costmodel import BuiltinCostModel
from .evaluator import MappingEvaluator

__all__ = ["BatchResult", "BuiltinCostModel", "MappingEvaluator", "evaluate_batch"]
