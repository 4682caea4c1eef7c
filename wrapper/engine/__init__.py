"""Built-in analytical cost model (a timeloop-model drop-in for uniform mappings)."""

from .batch import BatchResult, evaluate_batch
from .builtin import BuiltinEngine

__all__ = ["BatchResult", "BuiltinEngine", "evaluate_batch"]
