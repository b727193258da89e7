"""Models for task=continual: one MLP target network, and a task-conditioned hypernetwork that generates all of it.

von Oswald, Henning, Grewe & Sacramento, "Continual learning with hypernetworks" (ICLR 2020): a hypernetwork
f_h(e_t, c_i) maps a learned task embedding e_t and a learned chunk embedding c_i to the i-th chunk of the target
network's weights; the chunks, concatenated and cut to size, are every weight and bias of the target MLP for task t.

    MultiHeadMLP     the target MLP with its own weights: a shared trunk and one output head per task (the
                     baselines finetune / ewc / si / joint; registered as model arch `cl_mlp`, one head, for
                     task=classify too)
    TaskHypernet     generate(task) -> list of target weights; forward(x, task) runs the target with them.
                     The `generate` boundary is all a future shared weight generator needs to provide.

`target_shapes(in_features, hidden, out)` is the one description of the MLP both use; `mlp_forward` runs it
functionally, so a generated and an owned MLP compute exactly the same function of their weights.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from .registry import positive_int, register_model

ACTIVATIONS = {"relu": F.relu, "elu": F.elu}


def target_shapes(in_features: int, hidden, out: int) -> list[tuple[int, ...]]:
    """[W1, b1, W2, b2, ..., W_out, b_out] of an MLP in_features -> hidden... -> out (weights as [out, in])."""
    sizes = [in_features, *hidden, out]
    shapes: list[tuple[int, ...]] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        shapes += [(b, a), (b,)]
    return shapes


def mlp_forward(x: torch.Tensor, weights: list[torch.Tensor], act=F.relu) -> torch.Tensor:
    """The target MLP on flattened inputs x [B, in] with weights as target_shapes lists them."""
    h = x.flatten(1)
    n = len(weights) // 2
    for i in range(n):
        h = F.linear(h, weights[2 * i], weights[2 * i + 1])
        if i < n - 1:
            h = act(h)
    return h


def _hidden(value) -> list[int]:
    hidden = list(value)
    for i, h in enumerate(hidden):
        positive_int(f"hidden[{i}]", h)
    return hidden


class MultiHeadMLP(nn.Module):
    """Trunk in_features -> hidden (ReLU) shared by all tasks; head t: hidden[-1] -> classes (task-incremental:
    the task id picks the head). Trunk and heads use PyTorch's nn.Linear initialisation."""

    def __init__(self, in_features: int, hidden, n_tasks: int, classes: int):
        super().__init__()
        self.hidden, self.n_tasks, self.classes = _hidden(hidden), n_tasks, classes
        sizes = [in_features, *self.hidden]
        self.trunk = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        heads = [nn.Linear(sizes[-1], classes) for _ in range(n_tasks)]
        self.head_w = nn.Parameter(torch.stack([h.weight.data for h in heads]))  # [T, classes, hidden]
        self.head_b = nn.Parameter(torch.stack([h.bias.data for h in heads]))    # [T, classes]

    def weights(self, task: int) -> list[torch.Tensor]:
        """This task's target weights in target_shapes order (trunk, then its head)."""
        ws = [p for layer in self.trunk for p in (layer.weight, layer.bias)]
        return ws + [self.head_w[task], self.head_b[task]]

    def forward(self, x: torch.Tensor, task: int | torch.Tensor = 0) -> torch.Tensor:
        if isinstance(task, int):
            return mlp_forward(x, self.weights(task))
        h = x.flatten(1)
        for layer in self.trunk:
            h = F.relu(layer(h))
        w, b = self.head_w[task], self.head_b[task]  # per-sample heads [B, classes, hidden], [B, classes]
        return torch.einsum("bch,bh->bc", w, h) + b


class TaskHypernet(nn.Module):
    """Chunked task-conditioned hypernetwork (von Oswald et al. 2020, Fig. 1b).

    Input of chunk i for task t: [e_t, c_i] (task embedding, chunk embedding); an MLP (hnet_hidden, activation)
    maps it to chunk_size numbers; the n_chunks = ceil(n_target / chunk_size) chunks are generated in one batch,
    concatenated, cut to n_target and reshaped into target_shapes. chunk_size=None: one chunk holding every
    weight (no chunk embeddings). The target MLP's hidden layers use ReLU, as the baselines'.

    Generated weights start at the scale of PyTorch's nn.Linear init: the output layer is initialised so that,
    for the initial embeddings, each target tensor's std is about 1/sqrt(3 * fan_in) (see reset_output).
    """

    def __init__(self, in_features: int, hidden, classes: int, n_tasks: int, hnet_hidden, task_emb_dim: int,
                 chunk_emb_dim: int, chunk_size: int | None, activation: str = "relu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ConfigError(f"cl.activation='{activation}' is not one of {', '.join(ACTIVATIONS)}.")
        self.shapes = target_shapes(in_features, _hidden(hidden), classes)
        self.n_target = sum(math.prod(s) for s in self.shapes)
        self.chunk_size = self.n_target if chunk_size is None else positive_int("chunk_size", chunk_size)
        self.n_chunks = math.ceil(self.n_target / self.chunk_size)
        self.act = ACTIVATIONS[activation]
        self.n_tasks, self.classes = n_tasks, classes
        self.task_emb = nn.Parameter(torch.randn(n_tasks, task_emb_dim))
        chunked = chunk_size is not None
        self.chunk_emb = nn.Parameter(torch.randn(self.n_chunks, chunk_emb_dim)) if chunked else None
        sizes = [task_emb_dim + (chunk_emb_dim if chunked else 0), *_hidden(hnet_hidden)]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.out = nn.Linear(sizes[-1], self.chunk_size)
        self.reset_output()

    @torch.no_grad()
    def reset_output(self) -> None:
        """Scale the output layer per output position so generated weights start near nn.Linear's init scale:
        each chunk position's root-mean-square over the chunks of the initial task-0 generation is set to the
        rms of the std its target tensors want there (weights 1/sqrt(3 fan_in), biases 0); the bias starts at 0."""
        want = torch.cat([torch.full((math.prod(s),), 1 / math.sqrt(3 * s[1]) if len(s) == 2 else 0.0)
                          for s in self.shapes])  # biases start near zero
        pad = self.n_chunks * self.chunk_size - self.n_target
        want = F.pad(want, (0, pad)).view(self.n_chunks, self.chunk_size)
        got = self._chunks(self.task_emb[0])
        scale = want.pow(2).mean(0).sqrt() / got.pow(2).mean(0).sqrt().clamp_min(1e-6)  # rms over the chunks
        self.out.weight.mul_(scale[:, None])
        self.out.bias.zero_()

    def _chunks(self, e: torch.Tensor) -> torch.Tensor:
        """[n_chunks, chunk_size]: every chunk for the task embedding e, in one batch."""
        h = e.expand(self.n_chunks, -1)
        if self.chunk_emb is not None:
            h = torch.cat([h, self.chunk_emb], 1)
        for layer in self.layers:
            h = self.act(layer(h))
        return self.out(h)

    def _flat(self, task: int, emb: torch.Tensor | None = None) -> torch.Tensor:
        return self._chunks(self.task_emb[task] if emb is None else emb).flatten()[: self.n_target]

    def generate(self, task: int, emb: torch.Tensor | None = None) -> list[torch.Tensor]:
        """All target weights for task `task` (or for the embedding `emb`), in target_shapes order."""
        flat = self._flat(task, emb)
        out, i = [], 0
        for s in self.shapes:
            n = math.prod(s)
            out.append(flat[i:i + n].view(s))
            i += n
        return out

    def generate_flat(self, task: int) -> torch.Tensor:
        """generate(task) as one vector (what the output regulariser compares)."""
        return self._flat(task)

    def forward(self, x: torch.Tensor, task: int | torch.Tensor = 0) -> torch.Tensor:
        if isinstance(task, int):
            return mlp_forward(x, self.generate(task))
        out = torch.empty(len(x), self.classes, device=x.device, dtype=x.dtype)
        for t in task.unique().tolist():
            sel = task == t
            out[sel] = mlp_forward(x[sel], self.generate(int(t))).to(out.dtype)
        return out

    def hnet_params(self) -> int:
        """Trainable numbers of the hypernetwork itself (layers + chunk embeddings), without task embeddings."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.task_emb.numel()


@register_model("cl_mlp")
def cl_mlp(num_classes: int = 10, in_channels: int = 1, image_size: int = 28, hidden=(100, 100)) -> MultiHeadMLP:
    """The continual-learning target MLP as an ordinary one-head classifier (task=classify model=cl_mlp)."""
    return MultiHeadMLP(in_channels * image_size * image_size, hidden, 1, num_classes)
