"""Model zoo. Importing this package registers every architecture."""
from . import invariance, mnist, vgg  # noqa: F401  (registers cnn*, hyper_cnn, mnist_conv, mnist_hyper, vgg_conv, vgg_hyper)
from .registry import MODELS, create_model, model_from_config, model_from_run, register_model

__all__ = ["MODELS", "create_model", "model_from_config", "model_from_run", "register_model"]
