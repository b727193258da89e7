"""Models that learn an image transformation f(x, a): an image x and the transformation parameters a
(rotation: cos a, sin a) in, the transformed image out (Potapov's SingularityNET articles, docs/references.md).

    ae                conv 64 4x4 s2 -> conv 128 4x4 s2 -> dense 1024 -> latent 10 (the encoder);
                      [latent, condition] -> dense 1024 -> dense 7x7x128 -> deconv 64 4x4 s2 -> deconv 1 4x4 s2, tanh
    aae               the same, plus a WGAN-GP critic on the latent against a uniform prior in [-1, 1]^latent
    hypernet_shallow  a control network maps the condition to the weights of ONE 784x784 layer, softmax over
                      the input index: every output pixel is a convex combination of input pixels
    hypernet_deep     conv 10 5x5 s2 -> conv 20 5x5 s2 -> dense 200; a 200x200 layer whose weights the control
                      network produces per example (softmax over inputs, batched einsum); dense 980 ->
                      7x7x20 -> deconv 10 5x5 s2 -> deconv 1 5x5 s2, tanh

Every model is forward(x, condition) -> image; a condition with one row applies to the whole batch. The condition is whatever the `control` module takes:
here ParamControl, the transformation parameters through a small dense network. Another control module
(e.g. one that looks at the rotated image itself, rotation compensation) drops in without touching the
main networks: each builder accepts `control=`.
"""
from __future__ import annotations

import math
import weakref

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from ..precision import no_autocast
from .registry import positive_int, register_model



class ParamControl(nn.Module):
    """The transformation parameters [N, n_params] -> dense `hidden` -> ReLU: the control signal.
    hidden=0 passes the parameters through unchanged (the autoencoders' decoder takes them as they are)."""

    def __init__(self, n_params: int, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_params, hidden), nn.ReLU()) if hidden else nn.Identity()
        self.in_features, self.out_features = n_params, hidden or n_params

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        return self.net(cond)


# --------------------------------------------------------------------------------------------- autoencoders

class ConvEncoder(nn.Module):
    """conv c1 4x4 s2 -> leaky-ReLU(0.2) -> conv c2 4x4 s2 -> leaky-ReLU -> dense hidden -> leaky-ReLU -> dense latent."""

    def __init__(self, in_channels: int, image_size: int, channels=(64, 128), hidden: int = 1024, latent: int = 10):
        super().__init__()
        c1, c2 = channels
        self.convs = nn.Sequential(nn.Conv2d(in_channels, c1, 4, 2, 1), nn.LeakyReLU(0.2),
                                   nn.Conv2d(c1, c2, 4, 2, 1), nn.LeakyReLU(0.2))
        side = image_size // 4
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c2 * side * side, hidden), nn.LeakyReLU(0.2),
                                nn.Linear(hidden, latent))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(x))


class ConvDecoder(nn.Module):
    """[latent, condition] -> dense hidden -> ReLU -> dense c2*side*side -> ReLU -> deconv c1 4x4 s2 -> ReLU
    -> deconv out 4x4 s2 -> tanh."""

    def __init__(self, in_features: int, out_channels: int, image_size: int, channels=(64, 128), hidden: int = 1024):
        super().__init__()
        c1, c2 = channels
        self.c2, self.side = c2, image_size // 4
        self.fc = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(),
                                nn.Linear(hidden, c2 * self.side * self.side), nn.ReLU())
        self.deconvs = nn.Sequential(nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.ReLU(),
                                     nn.ConvTranspose2d(c1, out_channels, 4, 2, 1), nn.Tanh())

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.deconvs(self.fc(h).view(-1, self.c2, self.side, self.side))


class TransformAE(nn.Module):
    """Baseline: an autoencoder whose decoder also receives the control signal beside the latent code."""

    def __init__(self, control: nn.Module, in_channels: int = 1, image_size: int = 28, channels=(64, 128),
                 hidden: int = 1024, latent: int = 10):
        super().__init__()
        self.control = control
        self.encoder = ConvEncoder(in_channels, image_size, channels, hidden, latent)
        self.decoder = ConvDecoder(latent + control.out_features, in_channels, image_size, channels, hidden)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        c = self.control(cond)
        return self.decoder(torch.cat([z, c.expand(len(z), -1) if len(c) == 1 else c], 1))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x), cond)


class TransformAAE(TransformAE):
    """The autoencoder regularised adversarially (WGAN-GP) so that its latent codes look uniform in [-1, 1]^latent.

    training_loss() is the whole training step's objective: it first updates the critic (its own
    optimizer, `critic_steps` times on the detached codes of this batch: E[c(z)] - E[c(prior)] + gp * GP),
    then returns reconstruction MSE + adv_weight * (-E[c(z)]) for the engine to minimise. The critic's
    parameters are read detached in that second term, so the engine's step never moves the critic and
    the critic's step never moves the autoencoder.
    """

    def __init__(self, control: nn.Module, in_channels: int = 1, image_size: int = 28, channels=(64, 128),
                 hidden: int = 1024, latent: int = 10, critic_hidden: int = 256, adv_weight: float = 0.01,
                 gp_weight: float = 10.0, critic_lr: float = 1e-4, critic_steps: int = 1):
        super().__init__(control, in_channels, image_size, channels, hidden, latent)
        self.critic = nn.Sequential(nn.Linear(latent, critic_hidden), nn.LeakyReLU(0.2),
                                    nn.Linear(critic_hidden, critic_hidden), nn.LeakyReLU(0.2),
                                    nn.Linear(critic_hidden, 1))
        self.latent, self.adv_weight, self.gp_weight = latent, float(adv_weight), float(gp_weight)
        self.critic_lr, self.critic_steps = float(critic_lr), int(critic_steps)
        self._critic_opt: torch.optim.Optimizer | None = None
        self.last: dict[str, torch.Tensor] = {}  # the last step's losses, detached, still on the device

    def critic_optimizer(self) -> torch.optim.Optimizer:
        if self._critic_opt is None:  # created on the device the model lives on by the first step
            self._critic_opt = torch.optim.Adam(self.critic.parameters(), lr=self.critic_lr, betas=(0.5, 0.9))
        return self._critic_opt

    def owned_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The critic's optimizer: the engine saves and restores it with every checkpoint (exact resume)."""
        return {"critic": self.critic_optimizer()}

    def prior(self, n: int, like: torch.Tensor) -> torch.Tensor:
        return torch.rand(n, self.latent, device=like.device, dtype=like.dtype) * 2 - 1

    def critic_step(self, z: torch.Tensor) -> torch.Tensor:
        """One WGAN-GP update of the critic on codes z (detached); returns the critic's loss (detached,
        on the device: no sync in the training step)."""
        with no_autocast(z.device):  # a tiny critic and a gradient penalty: float32 (docs/gpu.md)
            return self._critic_step(z.detach().float())

    def _critic_step(self, z: torch.Tensor) -> torch.Tensor:
        real = self.prior(len(z), z)
        eps = torch.rand(len(z), 1, device=z.device, dtype=z.dtype)
        mix = (eps * real + (1 - eps) * z).requires_grad_(True)
        grad, = torch.autograd.grad(self.critic(mix).sum(), mix, create_graph=True)
        gp = ((grad.norm(dim=1) - 1) ** 2).mean()
        loss = self.critic(z).mean() - self.critic(real).mean() + self.gp_weight * gp
        opt = self.critic_optimizer()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)  # leave no critic gradient behind for the engine's step
        return loss.detach()

    def training_loss(self, x: torch.Tensor, cond: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        z = self.encode(x)
        critic_loss = torch.zeros((), device=z.device)
        for _ in range(self.critic_steps):
            critic_loss = self.critic_step(z)
        frozen = {k: v.detach() for k, v in self.critic.named_parameters()}
        adv = -torch.func.functional_call(self.critic, frozen, (z,)).mean()
        rec = F.mse_loss(self.decode(z, cond).float(), target.float())
        self.last = {"critic_loss": critic_loss, "rec": rec.detach(), "adv": adv.detach()}
        return rec + self.adv_weight * adv


# ----------------------------------------------------------------------------------------------- hypernets

class _Workspace:
    """The fused mixing layer's [N, n*n] buffer, kept between steps: a fresh 315 MB tensor costs more in page
    faults (about 0.3 s here) than the matrix product that fills it. A buffer is lent to one graph at a time
    (a weak reference to the lease its backward context holds); while it is out, another forward allocates."""

    def __init__(self):
        self.buffer: torch.Tensor | None = None
        self.lease = lambda: None

    def take(self, shape, like: torch.Tensor, keep: bool):
        """(buffer of `shape`, lease to hold while it is in use, or None when `keep` is False)."""
        if self.lease() is not None:  # lent to a graph that is still alive
            return like.new_empty(shape), None
        if (self.buffer is None or self.buffer.shape != shape or self.buffer.dtype != like.dtype
                or self.buffer.device != like.device
                or self.buffer.is_inference() != torch.is_inference_mode_enabled()):
            self.buffer = like.new_empty(shape)  # an inference tensor in inference mode only
        if not keep:
            return self.buffer, None
        lease = _Lease()
        self.lease = weakref.ref(lease)
        return self.buffer, lease

    def __deepcopy__(self, memo):
        return _Workspace()

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.__init__()


class _Lease:
    pass


class _FusedMixing(torch.autograd.Function):
    """y[b, j] = sum_i softmax_i(L[b, i, j]) x[b, i] with L[b] = (h[b] @ weight.T + bias) viewed [n_in, n_out],
    keeping one tensor of L's size (reused from step to step) instead of the plain path's four fresh ones: the
    logits come from one matrix product and are turned into the softmax in place, one example (one n x n
    matrix, cache-sized) at a time, y taken from it there; the backward overwrites that softmax, example by
    example, with dL = s_ij g_j (x_i - y_j) and takes the weight, bias and h gradients as one matrix product
    each (dW = dL^T h, dh = dL W). The saved softmax is consumed, so the graph cannot be backpropagated twice
    (retain_graph raises)."""

    @staticmethod
    def forward(ctx, x, h, weight, bias, n, workspace):
        keep = any(t.requires_grad for t in (x, h, weight, bias))
        s, ctx.lease = workspace.take((len(x), n * n), x, keep)
        torch.mm(h, weight.t(), out=s)                             # [N, n*n] logits less the bias, rows (i, j)
        y, c = x.new_empty(len(x), n), bias.view(n, n)
        for b in range(len(x)):
            sb = s[b].view(n, n).add_(c)                           # the bias added here, in cache
            sb.sub_(sb.amax(0)).exp_()
            sb.div_(sb.sum(0))                                     # softmax over the input index i
            torch.mv(sb.t(), x[b], out=y[b])
        ctx.save_for_backward(x, h, weight, y)
        ctx.s, ctx.n = (s if keep else None), n
        return y

    @staticmethod
    def backward(ctx, g):
        x, h, weight, y = ctx.saved_tensors
        d, n = ctx.s, ctx.n
        if d is None:
            raise RuntimeError("the fused mixing layer's saved softmax was consumed by a first backward "
                               "(retain_graph is not supported on it)")
        ctx.s = None
        g = g.contiguous()
        dx = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        for b in range(len(x)):
            db = d[b].view(n, n).mul_(g[b])                        # s_ij g_j
            if dx is not None:
                torch.sum(db, 1, out=dx[b])
            db.mul_(x[b].unsqueeze(1) - y[b])                      # dL_ij = s_ij g_j (x_i - y_j)
        dh = d @ weight if ctx.needs_input_grad[1] else None
        dw = d.t() @ h if ctx.needs_input_grad[2] else None
        dbias = d.sum(0) if ctx.needs_input_grad[3] else None
        ctx.lease = None                                           # the buffer is free for the next forward
        return dx, dh, dw, dbias, None, None


MIXINGS = ("softmax", "linear", "scaled")


class GeneratedMixing(nn.Module):
    """A square layer y = W(c) x whose n x n weights the control signal c produces per example:
    logits = head(c) viewed as [N, n_in, n_out], softmax over the input index, y_j = sum_i W_ij x_i.
    Each output is a convex combination of the inputs (rows of W^T sum to 1).

    fused=True (the shallow HyperNet's 784x784 layer) trains on the CPU without autocast through
    _FusedMixing: the same function and gradients (tests/test_transform.py compares them with this plain
    path), without the per-example softmax tensor; elsewhere (one condition for the batch, CUDA, autocast)
    the plain path runs.

    mixing (ablations of the deep HyperNet): `softmax` as above; `linear`: W(c) = head(c), a plain generated
    matrix; `scaled`: W = V * softmax(head(c)) with a learned V (the alternative the semantic-vision code leaves
    commented out: `W = tf.get_variable`)."""

    def __init__(self, control: nn.Module, n: int, fused: bool = False, mixing: str = "softmax"):
        super().__init__()
        if mixing not in MIXINGS:
            raise ConfigError(f"model.mixing='{mixing}' is not one of {', '.join(MIXINGS)}.")
        self.control, self.n, self.fused, self.mixing = control, n, fused and mixing == "softmax", mixing
        self.workspace = _Workspace()
        self.head = nn.Linear(control.out_features, n * n)
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)
        self.scale = nn.Parameter(torch.ones(n, n)) if mixing == "scaled" else None

    def weights(self, cond: torch.Tensor) -> torch.Tensor:
        """[N, n_in, n_out]: with softmax mixing each column a distribution over the inputs."""
        return self.weights_of(self.control(cond))

    def weights_of(self, h: torch.Tensor) -> torch.Tensor:
        logits = self.head(h).view(-1, self.n, self.n)
        if self.mixing == "linear":
            return logits
        w = torch.softmax(logits, dim=1)
        return w if self.scale is None else self.scale * w

    def use_fused(self, x: torch.Tensor, h: torch.Tensor) -> bool:
        return (self.fused and x.device.type == "cpu" and len(h) == len(x) > 1
                and not torch.is_autocast_enabled("cpu") and x.dtype == h.dtype == self.head.weight.dtype)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.control(cond)
        if self.use_fused(x, h):
            return _FusedMixing.apply(x.contiguous(), h.contiguous(), self.head.weight, self.head.bias, self.n,
                                     self.workspace)
        w = self.weights_of(h)
        if w.shape[0] == 1:  # one condition for the whole batch (evaluation at a fixed angle): one matmul
            return x @ w[0]
        return torch.einsum("ni,nij->nj", x, w)


class ShallowHyperNet(nn.Module):
    """The basic HyperNet: the whole main network is one generated 784x784 mixing layer (no hidden layer)."""

    def __init__(self, control: nn.Module, in_channels: int = 1, image_size: int = 28):
        super().__init__()
        self.shape = (in_channels, image_size, image_size)
        self.mix = GeneratedMixing(control, in_channels * image_size * image_size, fused=True)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.mix(x.flatten(1), cond).view(-1, *self.shape)


class DeepHyperNet(nn.Module):
    """The convolutional HyperNet: a conv encoder to `code` units, the generated code x code mixing layer,
    a dense + deconvolution decoder (TensorFlow 'same' padding for 5x5 stride 2: 28 -> 14 -> 7 -> 14 -> 28)."""

    def __init__(self, control: nn.Module, in_channels: int = 1, image_size: int = 28, channels=(10, 20),
                 code: int = 200, mixing: str = "softmax"):
        super().__init__()
        c1, c2 = channels
        self.c2, self.side = c2, image_size // 4
        flat = c2 * self.side * self.side
        self.encoder = nn.Sequential(nn.Conv2d(in_channels, c1, 5, 2, 2), nn.ReLU(),
                                     nn.Conv2d(c1, c2, 5, 2, 2), nn.ReLU(), nn.Flatten(), nn.Linear(flat, code))
        self.mix = GeneratedMixing(control, code, mixing=mixing)
        self.fc = nn.Linear(code, flat)
        self.deconvs = nn.Sequential(nn.ConvTranspose2d(c2, c1, 5, 2, 2, output_padding=1), nn.ReLU(),
                                     nn.ConvTranspose2d(c1, in_channels, 5, 2, 2, output_padding=1), nn.Tanh())

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.mix(self.encoder(x), cond)
        return self.deconvs(self.fc(h).view(-1, self.c2, self.side, self.side))


# ---------------------------------------------------------------------------------------------- builders

def _pair(name: str, value) -> tuple[int, int]:
    items = list(value)
    if len(items) != 2:
        raise ConfigError(f"model.{name} must be two channel counts [c1, c2], got {items!r}.")
    return positive_int(name, int(items[0])), positive_int(name, int(items[1]))


INITS = ("torch", "glorot")


def init_weights(model: nn.Module, init: str) -> nn.Module:
    """`torch`: PyTorch's default layer initialisation. `glorot`: the semantic-vision TensorFlow code's
    (tf.layers defaults): Glorot-uniform weights and zero biases. PyTorch's default draws a transposed
    convolution's weights with the fan of its OUTPUT channels, so the autoencoder's last deconvolution (64 -> 1)
    starts about 3x wider than TensorFlow's, which pushes its tanh towards saturation."""
    if init not in INITS:
        raise ConfigError(f"model.init='{init}' is not one of {', '.join(INITS)}.")
    if init == "glorot":
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
    return model


def _check_size(image_size: int) -> None:
    if image_size % 4:
        raise ConfigError(f"The transform models need an image side divisible by 4 (two stride-2 layers), "
                          f"got {image_size}.")


@register_model("transform_ae")
def transform_ae(n_params: int = 2, in_channels: int = 1, image_size: int = 28, channels=(64, 128),
                 hidden: int = 1024, latent: int = 10, init: str = "torch",
                 control: nn.Module | None = None) -> TransformAE:
    _check_size(image_size)
    control = control if control is not None else ParamControl(n_params, 0)
    return init_weights(TransformAE(control, in_channels, image_size, _pair("channels", channels),
                                    positive_int("hidden", hidden), positive_int("latent", latent)), init)


@register_model("transform_aae")
def transform_aae(n_params: int = 2, in_channels: int = 1, image_size: int = 28, channels=(64, 128),
                  hidden: int = 1024, latent: int = 10, critic_hidden: int = 256, adv_weight: float = 0.01,
                  gp_weight: float = 10.0, critic_lr: float = 1e-4, critic_steps: int = 1, init: str = "torch",
                  control: nn.Module | None = None) -> TransformAAE:
    _check_size(image_size)
    if not (math.isfinite(float(adv_weight)) and float(adv_weight) >= 0):
        raise ConfigError(f"model.adv_weight must be a non-negative number, got {adv_weight!r}.")
    control = control if control is not None else ParamControl(n_params, 0)
    return init_weights(TransformAAE(control, in_channels, image_size, _pair("channels", channels),
                                     positive_int("hidden", hidden), positive_int("latent", latent),
                                     positive_int("critic_hidden", critic_hidden), adv_weight, gp_weight, critic_lr,
                                     positive_int("critic_steps", critic_steps)), init)


@register_model("hypernet_shallow")
def hypernet_shallow(n_params: int = 2, in_channels: int = 1, image_size: int = 28, control_hidden: int = 64,
                     control: nn.Module | None = None) -> ShallowHyperNet:
    control = control if control is not None else ParamControl(n_params, positive_int("control_hidden", control_hidden))
    return ShallowHyperNet(control, in_channels, image_size)


@register_model("hypernet_deep")
def hypernet_deep(n_params: int = 2, in_channels: int = 1, image_size: int = 28, channels=(10, 20), code: int = 200,
                  control_hidden: int = 64, mixing: str = "softmax", control: nn.Module | None = None) -> DeepHyperNet:
    _check_size(image_size)
    control = control if control is not None else ParamControl(n_params, positive_int("control_hidden", control_hidden))
    return DeepHyperNet(control, in_channels, image_size, _pair("channels", channels), positive_int("code", code),
                        mixing)
