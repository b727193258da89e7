"""Model zoo: one module per family, each registering its architectures by name (registry.py)."""
# importing the family modules registers every architecture
from . import capsnet, capsnet_em, cnn, compensator, conditional, mnist_net, multihead_mlp, steerable, vgg  # noqa: F401
from .registry import MODELS, create_model, model_from_config, register_model

__all__ = ["MODELS", "create_model", "model_from_config", "register_model"]
