"""iml-ray: code-driven AutoML on Ray."""

__version__ = "0.1.0"
