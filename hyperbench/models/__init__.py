"""Model zoo. Importing this package registers every architecture."""
from . import invariance, mnist, transform  # noqa: F401  (register cnn, hyper_cnn, mnist_conv, mnist_hyper, transform_*)
from .registry import MODELS, create_model, model_from_config, model_from_run, register_model

__all__ = ["MODELS", "create_model", "model_from_config", "model_from_run", "register_model"]
