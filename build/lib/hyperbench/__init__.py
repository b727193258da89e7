"""hyperbench: experiment runner for hypernetworks and learned transformations/invariants."""

__version__ = "0.1.0"
