"""The shared weight generator of a static hypernetwork (Ha, Dai & Le, "HyperNetworks", section 3.1),
with conditioning inputs and the initialisations and parametrisations the field uses.

For a generator input z (N_z numbers; with conditioning, N_z + cond_dim) it produces one tile of
in_size x out_size filters of f x f:
    a_i = W_i z + B_i            i = 1..N_in    W_in: N_in x d x N_z,  B_in: N_in x d
    K_i = <W_out, a_i> + B_out                  W_out: d x (N_out f f), B_out: N_out f f
    K   = concat_i K_i
A flat chunk of C numbers is the same generator with N_in = 1, N_out = C, f = 1.
Parameters: N_in d N_z + N_in d + d N_out f f + N_out f f.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..errors import ConfigError

INITS = ("ha", "variance", "hyperfan_in", "hyperfan_out")
PARAMS = ("plain", "mip")
CONDITIONINGS = ("static", "task", "param", "input")
# Variance of a normal truncated at two standard deviations (TensorFlow's truncated_normal), per unit variance.
TRUNC_VAR = 1 - 4 * math.exp(-2) / math.sqrt(2 * math.pi) / math.erf(2 / math.sqrt(2))


def trunc_normal(t: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """TensorFlow's truncated_normal: N(mean, std^2) redrawn outside mean +- 2 std (Ha et al.'s code)."""
    return nn.init.trunc_normal_(t, mean, std, mean - 2 * std, mean + 2 * std)


def check_choice(key: str, value, options) -> str:
    if value not in options:
        raise ConfigError(f"hypernet.{key} must be one of {', '.join(options)}, got {value!r}.")
    return value


class KernelGenerator(nn.Module):
    """g(z): generator inputs [T, n_in] -> kernel tiles [T, out_size, in_size, f, f].

    init (how the generated weights start; see docs/hypernetize.md for the formulas):
      variance     W_in ~ N(0, 1/n_in), W_out ~ N(0, s^2/d), z ~ N(0, 1): Var(K) = s^2 = 1/(3 fan_ref),
                   PyTorch's default conv/linear init variance for a tile (fan_ref = in_size f f).
      ha           Ha et al.'s code: W_in, W_out ~ truncated N(0, 0.01^2), z ~ truncated N(0.01, 1): tiny kernels.
      hyperfan_in  Chang, Flokas & Lipson: Var(W_out) = 1/(d Var(a) fan_in); each layer's embeddings start
                   with Var(z) = fan_ref/fan_in(layer), so every generated layer has Var = 1/fan_in(layer).
      hyperfan_out the same with fan_out.
    param: plain (W = g(z)) or mip (Ortiz, Guttag & Dalca: constant-norm input, W = theta_0 + g(z)).
    """

    def __init__(self, z_dim: int, d: int, in_size: int = 16, out_size: int = 16, ksize: int = 7,
                 init: str = "variance", param: str = "plain", conditioning: str = "static",
                 cond_dim: int = 0, num_tasks: int = 0, fan_ref: int | None = None, flat: bool = False):
        super().__init__()
        self.z_dim, self.d, self.in_size, self.out_size, self.ksize = z_dim, d, in_size, out_size, ksize
        self.flat = flat  # flat chunks of out_size numbers (in_size = ksize = 1) instead of channel tiles
        self.init = check_choice("init", init, INITS)
        self.param = check_choice("param", param, PARAMS)
        self.conditioning = check_choice("conditioning", conditioning, CONDITIONINGS)
        if conditioning != "static" and cond_dim < 1:
            raise ConfigError(f"hypernet.cond_dim must be a positive integer for conditioning={conditioning}, "
                              f"got {cond_dim!r}.")
        self.cond_dim = cond_dim if conditioning != "static" else 0
        # MIP encodes a raw parameter vector x in [0, 1] as [cos(pi x / 2), sin(pi x / 2)]: twice the numbers
        self.cond_in = 2 * self.cond_dim if (param == "mip" and conditioning == "param") else self.cond_dim
        self.n_in = z_dim + self.cond_in
        self.fan_ref = fan_ref or in_size * ksize * ksize
        self.w_in = nn.Parameter(torch.empty(in_size, d, self.n_in))
        self.b_in = nn.Parameter(torch.zeros(in_size, d))
        self.w_out = nn.Parameter(torch.empty(d, out_size * ksize * ksize))
        self.b_out = nn.Parameter(torch.zeros(out_size * ksize * ksize))
        self.reset_parameters()
        if conditioning == "task":
            if num_tasks < 1:
                raise ConfigError(f"hypernet.num_tasks must be a positive integer for conditioning=task, "
                                  f"got {num_tasks!r}.")
            self.task_embedding = nn.Parameter(torch.randn(num_tasks, cond_dim))
        self._task = 0
        self._cond: torch.Tensor | None = None

    # -- initialisation -------------------------------------------------------------------------------
    def reset_parameters(self) -> None:
        if self.init == "ha":
            trunc_normal(self.w_in, std=0.01)
            trunc_normal(self.w_out, std=0.01)
        else:
            # a = W_in z has unit variance for unit-variance inputs
            nn.init.normal_(self.w_in, std=1.0 / math.sqrt(self.n_in))
            if self.init == "variance":
                target = 1.0 / math.sqrt(3 * self.fan_ref)
            else:  # hyperfan: Var(W) = 1/fan for the reference fan; layers rescale through their embeddings
                target = 1.0 / math.sqrt(self.fan_ref)
            nn.init.normal_(self.w_out, std=target / math.sqrt(self.d))
        nn.init.zeros_(self.b_in)
        nn.init.zeros_(self.b_out)

    def new_embedding(self, tiles: int, fan: int | None = None) -> torch.Tensor:
        """Initial embeddings [tiles, N_z] of one layer; `fan` = that layer's fan-in (or fan-out for
        hyperfan_out), used by the hyperfan inits to give each layer its own variance."""
        z = torch.empty(tiles, self.z_dim)
        if self.init == "ha":
            return trunc_normal(z, mean=0.01, std=1.0)
        z.normal_()
        if self.init.startswith("hyperfan") and fan:
            z.mul_(math.sqrt(self.fan_ref / fan))
        return z

    def expected_variance(self, fan: int | None = None) -> float:
        """Var of a generated weight right after initialisation (plain param, static, biases zero)."""
        if self.init == "ha":
            w = 0.01 ** 2 * TRUNC_VAR
            ez2 = TRUNC_VAR + 0.01 ** 2
            return self.d * w * self.n_in * w * ez2
        if self.init == "variance":
            return 1.0 / (3 * self.fan_ref)
        return 1.0 / (fan or self.fan_ref)

    # -- conditioning ---------------------------------------------------------------------------------
    def set_condition(self, cond) -> None:
        """task conditioning: a task index; param conditioning: a vector [cond_dim] (values in [0, 1] for MIP)."""
        if self.conditioning == "task":
            self._task = int(cond)
        elif self.conditioning == "param":
            self._cond = torch.as_tensor(cond, dtype=torch.float32)
        else:
            raise ConfigError(f"set_condition needs conditioning=task or param, not {self.conditioning}.")

    def condition_vector(self, cond=None) -> torch.Tensor | None:
        """The conditioning vector [cond_in] for task/param conditioning (None when static)."""
        if self.conditioning == "task":
            idx = self._task if cond is None else int(cond)
            return self.task_embedding[idx]
        if self.conditioning == "param":
            c = self._cond if cond is None else torch.as_tensor(cond, dtype=torch.float32)
            if c is None:
                raise ConfigError("conditioning=param: call set_condition(vector) or pass cond= first.")
            c = c.to(self.w_in.device)
            if self.param == "mip":
                c = torch.cat([torch.cos(math.pi / 2 * c), torch.sin(math.pi / 2 * c)], -1)
            return c
        return None

    def inputs(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Generator inputs from embeddings z [T, N_z] and a condition [cond_in] (task/param) or
        [N, cond_in] (input conditioning) -> [T, n_in] or [N, T, n_in]. MIP rescales each to norm sqrt(n_in)."""
        if cond is not None:
            if cond.dim() == 1:
                z = torch.cat([z, cond.to(z.dtype).expand(z.shape[0], -1)], 1)
            else:
                n, t = cond.shape[0], z.shape[0]
                z = torch.cat([z.expand(n, t, -1), cond.to(z.dtype)[:, None].expand(n, t, -1)], 2)
        if self.param == "mip":
            z = z * (math.sqrt(z.shape[-1]) / z.norm(dim=-1, keepdim=True).clamp_min(1e-12))
        return z

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        t = z.shape[0]
        a = torch.einsum("idz,tz->tid", self.w_in, z) + self.b_in  # [T, N_in, d]
        k = a @ self.w_out + self.b_out  # [T, N_in, N_out f f]
        k = k.view(t, self.in_size, self.out_size, self.ksize, self.ksize)
        return k.transpose(1, 2)  # [T, N_out, N_in, f, f]

    def extra_repr(self) -> str:
        return (f"z_dim={self.z_dim}, d={self.d}, tile={self.out_size}x{self.in_size}x{self.ksize}x{self.ksize}, "
                f"init={self.init}, param={self.param}, conditioning={self.conditioning}")
