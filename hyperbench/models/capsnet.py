"""CapsNet with dynamic routing (Sabour, Frosst & Hinton 2017), the invariance-study "CapsNet, dynamic routing" row.

    conv1:    conv 256 9x9 stride 1, ReLU                       28x28x1  -> 20x20x256
    primary:  conv 32*8 9x9 stride 2, as 32 channels of 8D      20x20    -> 6x6x32 = 1,152 capsules of 8D, squashed
    classes:  u_hat[i, j] = W[i, j] u[i], one 16x8 W per (primary capsule i, class j), then routing_iters
              rounds of dynamic routing (coupling c = softmax of the logits b over the K parents)
              -> K capsules of 16D, squashed; their lengths are the class scores (forward)
    decoder:  the class capsules masked to one (the true class in training, the predicted one in
              reconstruct) -> dense 512 ReLU -> dense 1024 ReLU -> dense C*H*W sigmoid, mapped to recon_range
Loss (training_loss): margin loss (m+ 0.9, m- 0.1, lambda 0.5) summed over the classes, plus recon_weight times
the squared reconstruction error averaged over the pixels (0.392 per pixel = Sabour's 0.0005 on the sum over a
28x28 image), both averaged over the batch. Routing is vectorised over the batch and all capsule pairs: the
only Python loop is over the routing iterations.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from ..precision import fp32, no_autocast
from .registry import positive_int, register_model


def squash(s: torch.Tensor, dim: int = -1, eps: float = 1e-12) -> torch.Tensor:
    """v = |s|^2 / (1 + |s|^2) * s / |s|: the same direction, length in [0, 1). Finite (0) at s = 0,
    with a finite gradient there."""
    with no_autocast(s.device):  # a norm and a ratio: float32 under any autocast (docs/gpu.md)
        s = fp32(s)
        sq = (s * s).sum(dim, keepdim=True)
        return s * (sq / (1 + sq) / torch.sqrt(sq + eps))


def route(u_hat: torch.Tensor, iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic routing of predictions u_hat [N, I, J, D] (I children, J parents) -> (parent capsules
    v [N, J, D], coupling coefficients c [N, I, J], which sum to 1 over the parents j)."""
    with no_autocast(u_hat.device):  # softmax over routing logits, agreements: float32 (docs/gpu.md)
        u_hat = fp32(u_hat)
        b = u_hat.new_zeros(u_hat.shape[:3])
        for r in range(iters):
            c = b.softmax(dim=2)
            v = squash(torch.einsum("nij,nijd->njd", c, u_hat))
            if r < iters - 1:
                b = b + torch.einsum("nijd,njd->nij", u_hat, v)  # agreement
        return v, c


def margin_loss(lengths: torch.Tensor, y: torch.Tensor, m_plus: float = 0.9, m_minus: float = 0.1,
                lam: float = 0.5) -> torch.Tensor:
    """Per-example margin loss [N]: sum over classes k of T_k max(0, m+ - |v_k|)^2
    + lam (1 - T_k) max(0, |v_k| - m-)^2."""
    lengths = lengths.float()  # a loss: float32
    t = F.one_hot(y, lengths.shape[1]).to(lengths.dtype)
    return (t * F.relu(m_plus - lengths) ** 2 + lam * (1 - t) * F.relu(lengths - m_minus) ** 2).sum(1)


class CapsNet(nn.Module):
    channels_last = False  # trainer.channels_last=auto leaves it NCHW (measured the same speed: docs/performance.md)
    eval_chunk = 500  # images per forward pass in evaluation

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28, conv_channels: int = 256,
                 primary_channels: int = 32, primary_dim: int = 8, class_dim: int = 16, routing_iters: int = 3,
                 decoder: tuple[int, ...] = (512, 1024), recon_weight: float = 0.392,
                 recon_range: tuple[float, float] = (0.0, 1.0)):
        super().__init__()
        self.num_classes, self.in_channels, self.image_size = num_classes, in_channels, image_size
        self.primary_dim, self.class_dim, self.routing_iters = primary_dim, class_dim, routing_iters
        self.recon_weight = recon_weight
        self.recon_lo, self.recon_hi = recon_range
        self.conv1 = nn.Conv2d(in_channels, conv_channels, 9)
        self.primary = nn.Conv2d(conv_channels, primary_channels * primary_dim, 9, stride=2)
        side = (image_size - 8 - 9) // 2 + 1
        self.num_primary = primary_channels * side * side  # 1,152 for 28x28
        # one 16x8 transform per (primary capsule, class), as in Sabour et al.; scale 0.01 as their code
        self.W = nn.Parameter(0.01 * torch.randn(self.num_primary, num_classes, class_dim, primary_dim))
        sizes = [num_classes * class_dim, *decoder]
        layers = []
        for a, b in zip(sizes, sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.decoder = nn.Sequential(*layers, nn.Linear(sizes[-1], in_channels * image_size * image_size),
                                     nn.Sigmoid())

    def primary_capsules(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 1152, 8] squashed primary capsules (channel-major: capsule = (channel, row, col))."""
        h = self.primary(F.relu(self.conv1(x.contiguous())))  # NCHW even after random_crop (channels_last)
        n, _, hh, ww = h.shape
        u = h.reshape(n, -1, self.primary_dim, hh, ww).permute(0, 1, 3, 4, 2).reshape(n, -1, self.primary_dim)
        return squash(u)

    def capsules(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(class capsules [N, K, 16], coupling coefficients [N, 1152, K])."""
        u = self.primary_capsules(x)
        u_hat = torch.einsum("ijdk,nik->nijd", self.W, u)  # every (child, parent) prediction at once
        return route(u_hat, self.routing_iters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores: the lengths of the class capsules [N, K]. Without autograd (evaluation) in chunks of
        eval_chunk images: u_hat of a 5,000-image evaluation batch alone would be 3 GB."""
        if not torch.is_grad_enabled() and len(x) > self.eval_chunk:
            return torch.cat([self.forward(c) for c in x.split(self.eval_chunk)])
        v = self.capsules(x)[0]
        with no_autocast(v.device):
            return v.norm(dim=-1)

    def decode(self, v: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Images [N, C, H, W] in recon_range from the class capsules v masked to class y."""
        masked = v * F.one_hot(y, self.num_classes).to(v.dtype).unsqueeze(-1)
        out = self.decoder(masked.flatten(1))
        out = self.recon_lo + (self.recon_hi - self.recon_lo) * out
        return out.view(-1, self.in_channels, self.image_size, self.image_size)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        v, _ = self.capsules(x)
        with no_autocast(v.device):
            margin = margin_loss(v.norm(dim=-1), y)
        recon = (self.decode(v, y).float() - x.float()).pow(2).flatten(1).mean(1)
        return (margin + self.recon_weight * recon).mean()

    def score_loss(self, scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Summed margin loss of class lengths (evaluation)."""
        return margin_loss(scores, y).sum()

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstructions masked by the predicted class [N, C, H, W], predicted classes [N])."""
        v, _ = self.capsules(x)
        pred = v.norm(dim=-1).argmax(1)
        return self.decode(v, pred), pred



@register_model("capsnet")
def capsnet(num_classes: int = 10, in_channels: int = 1, image_size: int = 28, conv_channels: int = 256,
            primary_channels: int = 32, primary_dim: int = 8, class_dim: int = 16, routing_iters: int = 3,
            decoder=(512, 1024), recon_weight: float = 0.392, recon_range=(0.0, 1.0)) -> CapsNet:
    for name, value in (("conv_channels", conv_channels), ("primary_channels", primary_channels),
                        ("primary_dim", primary_dim), ("class_dim", class_dim), ("routing_iters", routing_iters)):
        positive_int(name, value)
    decoder = tuple(positive_int("decoder", d) for d in decoder)
    if image_size < 17:
        raise ConfigError(f"model=capsnet needs images of at least 17x17 (a 9x9 conv, then a 9x9 stride-2 conv); "
                          f"the data has {image_size}x{image_size}.")
    if not float(recon_weight) >= 0:
        raise ConfigError(f"model.recon_weight must be >= 0, got {recon_weight!r}.")
    lo, hi = (float(v) for v in recon_range)
    if not lo < hi:
        raise ConfigError(f"model.recon_range must be [low, high] with low < high, got {list(recon_range)}.")
    return CapsNet(num_classes, in_channels, image_size, conv_channels, primary_channels, primary_dim, class_dim,
                   routing_iters, decoder, float(recon_weight), (lo, hi))
