"""Rotation compensation ("Just Deep is too Flat" (Potapov), "Compensation of Transformations"; task=compensate): the models of
hyperbench/models/transform.py with a control that looks at the rotated image itself instead of the angle.

    ImageControl  conv 20 5x5 s2 -> ReLU -> conv 10 5x5 s2 -> ReLU -> dense `hidden` -> ReLU (the
                  semantic-vision code); a HyperNet's generated layer (GeneratedMixing) turns it into that layer's weights
    NoControl     nothing: the autoencoder baseline is a plain autoencoder, rotated image -> upright image
    Compensator   forward(image) = net(image, image): the wrapped model's only input is the rotated image,
                  which is also its condition. No angle (or anything else) can reach it.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import ConfigError
from .registry import create_model, positive_int

IMAGE_CONTROLLED = ("hypernet_deep", "hypernet_shallow")  # archs whose generated layer takes an ImageControl
PLAIN = ("transform_ae", "transform_aae")                # autoencoders: no condition beside their latent code


class ImageControl(nn.Module):
    """The rotated image [N, C, H, W] -> conv 20 5x5 s2 -> conv 10 5x5 s2 -> dense `hidden` (ReLU each)."""

    def __init__(self, in_channels: int = 1, image_size: int = 28, hidden: int = 64, channels=(20, 10)):
        super().__init__()
        c1, c2 = channels
        side = (image_size + 3) // 4
        self.net = nn.Sequential(nn.Conv2d(in_channels, c1, 5, 2, 2), nn.ReLU(), nn.Conv2d(c1, c2, 5, 2, 2),
                                 nn.ReLU(), nn.Flatten(), nn.Linear(c2 * side * side, hidden), nn.ReLU())
        self.out_features = hidden

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


class NoControl(nn.Module):
    """A control signal of width 0: the decoder sees the latent code only."""

    out_features = 0

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image.new_zeros(len(image), 0)


class Compensator(nn.Module):
    """Wraps a transform model so that it is called with the rotated image only: net(image, image)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        if hasattr(net, "training_loss"):  # the adversarial autoencoder's own training step
            self.training_loss = lambda image, target: net.training_loss(image, image, target)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image, image)


def check_arch(arch: str, model_name: str) -> None:
    if arch not in IMAGE_CONTROLLED + PLAIN:
        raise ConfigError(f"task=compensate needs a model whose control can be the image itself: model=hypernet_deep, "
                          f"hypernet_shallow, ae or aae; model={model_name} (arch {arch}) cannot take one. "
                          f"Nothing was run.")


def build_compensator(arch: str, model_name: str, in_channels: int, image_size: int, **opts) -> Compensator:
    """The `arch` model with an image control (HyperNets) or none (autoencoders), wrapped in a Compensator."""
    check_arch(arch, model_name)
    if arch in IMAGE_CONTROLLED:
        control = ImageControl(in_channels, image_size, positive_int("control_hidden", opts.get("control_hidden", 64)))
    else:
        control = NoControl()
    return Compensator(create_model(arch, in_channels=in_channels, image_size=image_size, control=control, **opts))
