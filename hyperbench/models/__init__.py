"""Model zoo. Importing this package registers every architecture."""
# importing the family modules registers every architecture
from . import capsnet, capsnet_em, continual, invariance, mnist, steerable, transform, vgg  # noqa: F401
from .registry import MODELS, create_model, model_from_config, model_from_run, register_model

__all__ = ["MODELS", "create_model", "model_from_config", "model_from_run", "register_model"]
