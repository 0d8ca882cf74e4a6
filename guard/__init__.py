"""guard: a responsible-AI safety gateway around Gemma-2 generation."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
