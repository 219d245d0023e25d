"""drifthouse: a streaming drift and data-quality monitor for ML models in production.

Data flows one way: source -> decode -> window -> sketch -> evaluate -> sink / alerts.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
