"""Matrix capsules with EM routing (Hinton, Sabour & Frosst 2018), the smallNORB/MNIST architecture.

    conv A 5x5 stride 2 (no padding) -> (batch norm) -> ReLU                       28x28 -> 12x12xA
    primary capsules: 1x1 conv to B 4x4 pose matrices + B sigmoid activations       12x12xB
    ConvCaps1: C capsule types, kernel 3, stride 2, EM routing                      5x5xC
    ConvCaps2: D capsule types, kernel 3, stride 1, EM routing                      3x3xD
    class capsules: one transformation matrix per (capsule type, class), shared over positions,
                    coordinate addition, EM routing                                  K classes
The class capsules' activations (in [0, 1]) are the class scores; training minimises the spread loss
with its margin growing linearly from 0.2 to 0.9 over `margin_steps` training steps.

Every capsule layer is vectorised: the receptive fields are unfolded (F.unfold), the votes of all
positions, examples and input capsules are one batched matrix product, and EM routing runs on all
positions and examples at once (the only Python loop is over EM iterations).

Votes are laid out [M, O, I, 16] (M = examples x output positions, O output capsule types, I input
capsules of one receptive field) so that the M-step's weighted means and the E-step's Gaussian
log-densities are batched products over (M, O) without copies.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from ..precision import fp32, no_autocast
from .registry import positive_int, register_model

POSE = 16  # a 4x4 pose matrix, flattened row-major
LOG_2PI = math.log(2 * math.pi)
# Transformation matrices are stored divided by this gain (entries ~N(0, 0.1^2), used as N(0, 1)): Adam moves
# every entry by ~lr per step whatever its scale, and at lr 1e-3 matrices of unit-size entries barely move in the
# few hundred steps of a CPU budget; stored at a tenth they change as fast, relative to their size, as conv kernels.
WEIGHT_GAIN = 10.0


def em_routing(votes: torch.Tensor, a_in: torch.Tensor, beta_u: torch.Tensor, beta_a: torch.Tensor,
               iters: int, lam: float, eps: float = 1e-6, stop_grad: bool = False, return_r: bool = False):
    """EM routing between the input capsules of a receptive field and the output capsule types.

    votes [M, O, I, H] (H = 16), a_in [M, I] input activations in [0, 1], beta_u / beta_a [O].
    Returns (mu [M, O, H], a_out [M, O]) and, with return_r, the responsibilities R [M, O, I] the last
    M-step used (each input's R sums to 1 over the O outputs).

    M-step: Ra = R * a_in; mu and sigma^2 per output and pose entry are the Ra-weighted mean and
    variance of its votes; cost_j = sum_h (beta_u + log sigma_jh) * sum_i Ra_ij;
    a_j = sigmoid(lambda_t * (beta_a - cost_j)). beta_a is stored in logit units (the paper's beta_a times
    lam), i.e. a_j = sigmoid(beta_a * lambda_t / lam - lambda_t * cost_j): the same family, but a bias an
    optimiser at lr 1e-3 can move on the scale of the logits (the paper's beta_a would need ~1 / lam).
    E-step: R_ij = softmax_j(log a_j + log N(V_ij; mu_j, sigma_j^2)), in log space (log-sigmoid
    activations, log-softmax normalisation), so no density is ever formed outside the log.
    Inverse temperature: lambda_t = lam * (t + 1) / iters at iteration t (lam at the last one).

    The cost is centred over the O outputs before the logistic (cost_j - mean_o cost_o; Zhang's and
    Gritzman's TensorFlow versions normalise it too): log sigma is scale-covariant, so the uncentred cost
    carries a common term 16 * log(scale of the votes) * sum_i Ra_ij that, with the votes' scale shrinking
    layer by layer at initialisation, saturated every class activation near 1 and gave no gradient.
    Centring keeps the differences between outputs, which are what the spread loss compares.

    Numerics: the weighted moments are batched products (no [M, O, I, H] temporaries but V^2):
    Routing runs in float32 with autocast off, whatever the caller's autocast (see CapsNetEM).
    sigma^2 = max(E[V^2] - mu^2, 0) + eps with eps = 1e-6 (the one-pass variance loses float32 precision
    only when |mu| >> sigma, and eps floors it); the E-step's squared distance is expanded the same way
    and clamped at 0. Weighted means divide by sum_i Ra_ij + 1e-8. stop_grad=True: the iterations before the last see the votes
    without gradient (as Sabour et al.'s dynamic-routing code does), so backpropagation goes through the
    final M-step only (about 1.5x cheaper per step on CPU, but in our MNIST check it learned much more
    slowly: 30% vs 50% test accuracy after 40 steps), so the default backpropagates through every iteration.
    """
    with no_autocast(votes.device):  # fp32 throughout: E[V^2] - mu^2 cancels (docs/gpu.md)
        votes, a_in, beta_u, beta_a = fp32(votes, a_in, beta_u, beta_a)
        return _em_routing(votes, a_in, beta_u, beta_a, iters, lam, eps, stop_grad, return_r)


def _em_routing(votes, a_in, beta_u, beta_a, iters, lam, eps, stop_grad, return_r):
    m, o, i, h = votes.shape
    sq = votes.square()                                         # the only [M, O, I, H] temporary
    r = votes.new_full((m, o, i), 1.0 / o)
    for t in range(iters):
        last = t == iters - 1
        with torch.set_grad_enabled(torch.is_grad_enabled() and (last or not stop_grad)):
            v, v2, a = (votes, sq, a_in) if last or not stop_grad else (votes.detach(), sq.detach(), a_in.detach())
            lam_t = lam * (t + 1) / iters
            ra = r * a.unsqueeze(1)                             # [M, O, I]
            r_sum = ra.sum(-1)                                  # [M, O]
            coeff = ra / (r_sum.unsqueeze(-1) + 1e-8)           # weights of a weighted mean over I
            mu = torch.einsum("moi,moih->moh", coeff, v)        # [M, O, H]
            var = torch.clamp(torch.einsum("moi,moih->moh", coeff, v2) - mu.square(), min=0) + eps
            log_sigma = 0.5 * torch.log(var)                    # [M, O, H]
            cost = (beta_u.view(1, o, 1) + log_sigma).sum(-1) * r_sum
            cost = cost - cost.mean(1, keepdim=True)            # centred over the outputs (see above)
            logit = beta_a.view(1, o) * (lam_t / lam) - lam_t * cost
            if last:
                break
            # E-step: sum_h (V - mu)^2 / sigma^2 = V^2 . (1 / sigma^2) - 2 V . (mu / sigma^2) + sum_h mu^2 / sigma^2
            inv = 1.0 / var
            quad = (torch.matmul(v2, inv.unsqueeze(-1)) - 2 * torch.matmul(v, (mu * inv).unsqueeze(-1))).squeeze(-1)
            quad = torch.clamp(quad + (mu.square() * inv).sum(-1, keepdim=True), min=0)
            log_p = -0.5 * quad - log_sigma.sum(-1, keepdim=True) - 0.5 * h * LOG_2PI   # [M, O, I]
            r = torch.softmax(F.logsigmoid(logit).unsqueeze(-1) + log_p, dim=1)
    a_out = torch.sigmoid(logit)
    return (mu, a_out, r) if return_r else (mu, a_out)


def _transform_weight(w: torch.Tensor) -> torch.Tensor:
    """[I, O, 16] transformation matrices -> [I, 4, O*4] so that pose @ W is one bmm over I."""
    i, o, _ = w.shape
    return w.view(i, o, 4, 4).permute(0, 2, 1, 3).reshape(i, 4, o * 4)


def _votes(poses: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """poses [M, I, 16], w [I, O, 16] -> votes pose_i @ W_io laid out [M, O, I, 16]."""
    m, i, _ = poses.shape
    o = w.shape[1]
    p = poses.reshape(m, i, 4, 4).transpose(0, 1).reshape(i, m * 4, 4)
    v = torch.bmm(p, _transform_weight(w * WEIGHT_GAIN))                      # [I, M*4, O*4] = [I, M, r, O, c]
    return v.view(i, m, 4, o, 4).permute(1, 3, 0, 2, 4).reshape(m, o, i, POSE)


class PrimaryCaps(nn.Module):
    """1x1 conv to B pose matrices and B sigmoid activations per position."""

    def __init__(self, cin: int, caps: int):
        super().__init__()
        self.caps = caps
        self.pose = nn.Conv2d(cin, caps * POSE, 1)
        self.act = nn.Conv2d(cin, caps, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, hh, ww = x.shape
        return self.pose(x).reshape(n, self.caps, POSE, hh, ww), torch.sigmoid(self.act(x))


class ConvCaps(nn.Module):
    """Convolutional capsule layer: each output position routes the kernel x kernel x Bin capsules of its
    receptive field to `caps` output types; one transformation matrix per (kernel position, input type,
    output type), shared over positions."""

    def __init__(self, cin: int, caps: int, kernel: int, stride: int, iters: int, lam: float, stop_grad: bool = False):
        super().__init__()
        self.cin, self.caps, self.kernel, self.stride, self.iters, self.lam = cin, caps, kernel, stride, iters, lam
        self.stop_grad = stop_grad
        n_in = kernel * kernel * cin
        self.weight = nn.Parameter(torch.randn(n_in, caps, POSE) / WEIGHT_GAIN)
        self.beta_u = nn.Parameter(torch.zeros(caps))
        self.beta_a = nn.Parameter(torch.zeros(caps))

    def forward(self, poses: torch.Tensor, acts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, b, _, hh, ww = poses.shape
        k, s = self.kernel, self.stride
        oh, ow = (hh - k) // s + 1, (ww - k) // s + 1
        kk, L = k * k, oh * ow
        # unfold: [N, B*16*kk, L] with rows (b, h, kernel position); -> [N*L, kk*B, 16]
        p = F.unfold(poses.reshape(n, b * POSE, hh, ww), k, stride=s).view(n, b, POSE, kk, L)
        p = p.permute(0, 4, 3, 1, 2).reshape(n * L, kk * b, POSE)
        a = F.unfold(acts, k, stride=s).view(n, b, kk, L).permute(0, 3, 2, 1).reshape(n * L, kk * b)
        mu, a_out = em_routing(_votes(p, self.weight), a, self.beta_u, self.beta_a, self.iters, self.lam,
                               stop_grad=self.stop_grad)
        mu = mu.view(n, oh, ow, self.caps, POSE).permute(0, 3, 4, 1, 2)
        return mu, a_out.view(n, oh, ow, self.caps).permute(0, 3, 1, 2)


class ClassCaps(nn.Module):
    """Class capsules: every capsule of the last map votes for every class with the transformation matrix
    of its type (shared over positions); coordinate addition adds the scaled (row, column) of the centre of
    the capsule's receptive field to the first two entries of the right-hand column of its vote."""

    def __init__(self, cin: int, classes: int, centres: list[float], image_size: int, iters: int, lam: float,
                 stop_grad: bool = False):
        super().__init__()
        self.cin, self.classes, self.iters, self.lam, self.stop_grad = cin, classes, iters, lam, stop_grad
        self.weight = nn.Parameter(torch.randn(cin, classes, POSE) / WEIGHT_GAIN)
        self.beta_u = nn.Parameter(torch.zeros(classes))
        self.beta_a = nn.Parameter(torch.zeros(classes))
        side = len(centres)
        c = torch.tensor(centres, dtype=torch.float32) / image_size
        coords = torch.zeros(side, side, POSE)
        coords[:, :, 3] = c.view(side, 1)   # pose entry (0, 3) += scaled row
        coords[:, :, 7] = c.view(1, side)   # pose entry (1, 3) += scaled column
        # [L, 16]: kept 2-D so that the trainer's model.to(memory_format=channels_last) leaves it alone
        self.register_buffer("coords", coords.view(side * side, POSE), persistent=False)

    def forward(self, poses: torch.Tensor, acts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, d, _, hh, ww = poses.shape
        L = hh * ww
        p = poses.permute(0, 3, 4, 1, 2).reshape(n * L, d, POSE)        # [N*L, D, 16]
        v = _votes(p, self.weight).view(n, L, self.classes, d, POSE)    # [N, L, K, D, 16]
        v = v.transpose(1, 2) + self.coords.view(1, 1, L, 1, POSE)                            # [N, K, L, D, 16]
        a = acts.permute(0, 2, 3, 1).reshape(n, L * d)
        return em_routing(v.reshape(n, self.classes, L * d, POSE), a, self.beta_u, self.beta_a,
                          self.iters, self.lam, stop_grad=self.stop_grad)


def spread_loss(scores: torch.Tensor, y: torch.Tensor, margin) -> torch.Tensor:
    """Per-example spread loss sum_{i != t} max(0, m - (a_t - a_i))^2, shape [N]."""
    scores = scores.float()  # a loss: float32 (docs/gpu.md)
    a_t = scores.gather(1, y.view(-1, 1))
    loss = torch.clamp(margin - (a_t - scores), min=0).square()
    return loss.scatter(1, y.view(-1, 1), 0.0).sum(1)


class CapsNetEM(nn.Module):
    """The whole model runs in float32 with autocast off (full_precision: the trainer records fp32 whatever
    trainer.amp says). EM routing amplifies rounding error layer by layer: under CPU bf16 autocast an untrained
    model's predicted classes agreed with float32 on 90.2% of 1,000 test-pattern images; with routing alone in
    float32 still 90.2%, with the votes too 99.3% (300 images), with the primary capsules too 99.0% (1,000);
    only the whole model in float32 agrees (100%). Its one bf16-able layer, the 5x5 conv, is a small part
    of the work (docs/gpu.md)."""

    full_precision = True

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28, A: int = 32,
                 B: int = 4, C: int = 8, D: int = 8, iters: int = 2, lam: float = 0.01,
                 batch_norm: bool = True, margin_steps: int = 500, eval_chunk: int = 256, stop_grad: bool = False):
        super().__init__()
        self.num_classes, self.margin_steps, self.eval_chunk = num_classes, margin_steps, eval_chunk
        self.conv1 = nn.Conv2d(in_channels, A, 5, 2, bias=not batch_norm)
        self.bn = nn.BatchNorm2d(A) if batch_norm else nn.Identity()
        self.primary = PrimaryCaps(A, B)
        self.caps1 = ConvCaps(B, C, 3, 2, iters, lam, stop_grad)
        self.caps2 = ConvCaps(C, D, 3, 1, iters, lam, stop_grad)
        self.sizes = capsule_sizes(image_size)
        self.classes = ClassCaps(D, num_classes, receptive_centres(image_size), image_size, iters, lam,
                                 stop_grad)
        # training steps taken (the spread-loss margin schedule); a buffer so checkpoints carry it
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def layers(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every layer's output: conv [N, A, h, w], then (poses [N, caps, 16, h, w], activations
        [N, caps, h, w]) of primary, caps1, caps2, and the class capsules (poses [N, K, 16], scores [N, K])."""
        with no_autocast(x.device):
            return self._layers(fp32(x))

    def _layers(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"conv": F.relu(self.bn(self.conv1(x)))}
        out["primary"] = self.primary(out["conv"])
        out["caps1"] = self.caps1(*out["primary"])
        out["caps2"] = self.caps2(*out["caps1"])
        out["classes"] = self.classes(*out["caps2"])
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled() and len(x) > self.eval_chunk:  # bound the memory of evaluation
            return torch.cat([self(x[i:i + self.eval_chunk]) for i in range(0, len(x), self.eval_chunk)])
        return self.layers(x)["classes"][1]

    def margin(self) -> torch.Tensor:
        """Spread-loss margin at the current step: 0.2 + 0.7 * min(1, step / margin_steps)."""
        if self.margin_steps == 0:
            return torch.tensor(0.9, device=self.step.device)
        frac = torch.clamp(self.step.float() / self.margin_steps, max=1.0)
        return 0.2 + 0.7 * frac

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = spread_loss(self(x), y, self.margin()).mean()
        if self.training:
            self.step += 1
        return loss

    def score_loss(self, scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return spread_loss(scores, y, self.margin()).sum()


def capsule_sizes(image_size: int) -> list[int]:
    """Sides of the conv/primary, ConvCaps1 and ConvCaps2 maps for a square image of `image_size`."""
    s1 = (image_size - 5) // 2 + 1
    s2 = (s1 - 3) // 2 + 1
    return [s1, s2, s2 - 2]


def receptive_centres(image_size: int) -> list[float]:
    """Pixel coordinates (0 = centre of the first pixel) of the receptive-field centres of the ConvCaps2
    positions: conv 5x5 s2 maps position p to pixel 2p + 2, ConvCaps1 (3, s2) q -> conv position 2q + 1,
    ConvCaps2 (3, s1) r -> ConvCaps1 position r + 1."""
    side = capsule_sizes(image_size)[2]
    return [2.0 * (2 * (r + 1) + 1) + 2 for r in range(side)]



@register_model("capsnet_em")
def capsnet_em(num_classes: int = 10, in_channels: int = 1, image_size: int = 28, A: int = 32, B: int = 4,
               C: int = 8, D: int = 8, iters: int = 2, lam: float = 0.01, batch_norm: bool = True,
               margin_steps: int = 500, eval_chunk: int = 256, stop_grad: bool = False) -> CapsNetEM:
    for name, value in (("A", A), ("B", B), ("C", C), ("D", D), ("iters", iters), ("eval_chunk", eval_chunk)):
        positive_int(name, value)
    if isinstance(margin_steps, bool) or not isinstance(margin_steps, int) or margin_steps < 0:
        raise ConfigError(f"model.margin_steps must be a non-negative integer, got {margin_steps!r}.")
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not lam > 0:
        raise ConfigError(f"model.lam (the EM inverse temperature) must be a positive number, got {lam!r}.")
    if capsule_sizes(image_size)[2] < 1:
        raise ConfigError(f"capsnet_em needs images of at least 17x17 (conv 5x5 s2, ConvCaps 3x3 s2, "
                          f"ConvCaps 3x3 s1); these are {image_size}x{image_size}.")
    return CapsNetEM(num_classes, in_channels, image_size, A, B, C, D, iters, float(lam), bool(batch_norm),
                     margin_steps, eval_chunk, bool(stop_grad))
