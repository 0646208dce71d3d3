"""Models a server offers, by name (see :mod:`.registry`)."""

from .registry import ModelInfo, ModelMethod, ModelRegistry, discover_models

__all__ = ["ModelInfo", "ModelMethod", "ModelRegistry", "discover_models"]
