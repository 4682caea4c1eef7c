"""QuantMap: joint search of per-layer bit widths and accelerator mappings.

The import package is called ``wrapper`` because it wraps the Timeloop/Accelergy tool flow
(or the built-in analytical engine that reproduces it) behind one Python API.
"""

__version__ = "0.1.0"
