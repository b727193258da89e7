"""Continual-learning methods (the `cl=` config group): what each adds to the loss and keeps between tasks.

    finetune  sequential training, nothing kept (the lower bound)
    ewc       online EWC (Schwarz et al., "Progress & compress"; Kirkpatrick et al., "Overcoming catastrophic
              forgetting"): after task t, F <- gamma F + F_t (diagonal empirical Fisher of task t: mean squared
              per-sample gradient of the log-likelihood of the true label, on cl.fisher_samples training images)
              and theta* <- theta; penalty lambda/2 sum F (theta - theta*)^2
    si        synaptic intelligence (Zenke, Poole & Ganguli, "Continual learning through synaptic intelligence"):
              during a task w += -g * delta_theta every step (g: the gradient that step used); after it
              Omega += w / (Delta^2 + xi), Delta = theta_end - theta_start, theta* <- theta; penalty
              c sum Omega (theta - theta*)^2
    hnet      task-conditioned hypernetwork with the output regulariser (von Oswald et al. 2020, eq. 2): before
              task t the weights it generates for every earlier task are stored (theta*_j = f_h(e_j), j < t);
              penalty beta/t sum_j ||f_h(e_j) - theta*_j||^2 (earlier task embeddings held fixed); no lookahead
    joint     all tasks at once (the upper bound; not sequential)

State that must survive a restart (Fisher, Omega, theta*, the hypernetwork's targets) is in state_dict(), which
the continual task writes into its checkpoint after every task.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError

# method -> settings it needs (cl.<key>), with a test and what a valid value is
REQUIRED: dict[str, dict[str, tuple]] = {
    "finetune": {},
    "joint": {},
    "ewc": {"lambda": (lambda v: v >= 0, "a non-negative number (penalty strength)", "cl.lambda=100"),
            "gamma": (lambda v: 0 < v <= 1, "a number in (0, 1] (decay of the old Fisher)", "cl.gamma=1.0"),
            "fisher_samples": (lambda v: isinstance(v, int) and v >= 1, "a positive integer",
                               "cl.fisher_samples=1000")},
    "si": {"c": (lambda v: v >= 0, "a non-negative number (penalty strength)", "cl.c=0.1"),
           "xi": (lambda v: v > 0, "a positive number (damping)", "cl.xi=0.1")},
    "hnet": {"beta": (lambda v: v >= 0, "a non-negative number (output-regulariser strength)", "cl.beta=0.01"),
             "task_emb_dim": (lambda v: isinstance(v, int) and v >= 1, "a positive integer", "cl.task_emb_dim=64"),
             "hidden": (lambda v: len(v) >= 0, "a list of layer widths", "cl.hidden=[100,75,50]"),
             "activation": (lambda v: v in ("relu", "elu"), "relu or elu", "cl.activation=relu")},
}
OPTIONAL = {"hnet": ("chunk_size", "chunk_emb_dim")}  # chunk_size null = one chunk, no chunk embeddings


def check_method(cl_cfg) -> str:
    """The method name, after checking it has every setting it needs (ConfigError otherwise)."""
    if cl_cfg is None or cl_cfg.get("name") is None:
        raise ConfigError("task=continual needs a method: cl=finetune, ewc, si, hnet or joint.")
    name = str(cl_cfg.name)
    if name not in REQUIRED:
        raise ConfigError(f"cl.name='{name}' is not one of {', '.join(REQUIRED)}.")
    for key, (test, what, example) in REQUIRED[name].items():
        value = cl_cfg.get(key)
        if value is None:
            raise ConfigError(f"cl={name} needs the setting cl.{key} ({what}), which is missing; e.g. {example}. "
                              f"Nothing was run.")
        ok = not isinstance(value, bool) and (isinstance(value, (int, float, str)) or hasattr(value, "__len__"))
        try:
            ok = ok and bool(test(value))
        except TypeError:
            ok = False
        if not ok:
            raise ConfigError(f"cl.{key} must be {what}, got {value!r}; e.g. {example}. Nothing was run.")
    if name == "hnet":
        chunk = cl_cfg.get("chunk_size")
        if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
            raise ConfigError(f"cl.chunk_size must be a positive integer or null (no chunking), got {chunk!r}.")
        if chunk is not None and not isinstance(cl_cfg.get("chunk_emb_dim"), int):
            raise ConfigError("cl=hnet with cl.chunk_size set needs cl.chunk_emb_dim (a positive integer), which "
                              "is missing; e.g. cl.chunk_emb_dim=12. Nothing was run.")
    return name


def _params(model) -> dict[str, torch.Tensor]:
    return {k: p for k, p in model.named_parameters() if p.requires_grad}


class Method:
    """finetune: no penalty, nothing kept."""

    sequential = True
    restart_task_on_resume = False  # True when mid-task state is not in the engine's checkpoint (si)

    def __init__(self, cfg):
        self.cfg, self.task = cfg, 0

    def before_task(self, model, t: int) -> None:
        self.task = t

    def penalty(self, model) -> torch.Tensor | None:
        return None

    def after_task(self, model, t: int, train, bench) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Joint(Method):
    sequential = False


class QuadraticAnchor(Method):
    """Shared part of EWC and SI: penalty scale * sum importance * (theta - theta*)^2."""

    scale = 1.0

    def __init__(self, cfg):
        super().__init__(cfg)
        self.importance: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}

    def penalty(self, model):
        if not self.importance:
            return None
        total = sum((self.importance[k] * (p - self.anchor[k]).pow(2)).sum() for k, p in _params(model).items())
        return self.scale * total

    def state_dict(self) -> dict:
        return {"importance": self.importance, "anchor": self.anchor}

    def load_state_dict(self, state: dict) -> None:
        self.importance, self.anchor = dict(state["importance"]), dict(state["anchor"])


class EWC(QuadraticAnchor):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.scale = float(cfg["lambda"]) / 2

    def after_task(self, model, t, train, bench) -> None:
        fisher = empirical_fisher(model, t, train, bench, int(self.cfg.fisher_samples))
        gamma = float(self.cfg.gamma)
        for k, f in fisher.items():
            self.importance[k] = gamma * self.importance[k] + f if k in self.importance else f
        self.anchor = {k: p.detach().clone() for k, p in _params(model).items()}


def empirical_fisher(model, t: int, train, bench, samples: int, batch: int = 250) -> dict[str, torch.Tensor]:
    """Mean over the first `samples` training images of task t of the squared per-sample gradient of
    -log p(true label | x) (torch.func: vmap of grad, `batch` images at a time)."""
    from torch.func import functional_call, grad, vmap

    params = {k: p.detach() for k, p in _params(model).items()}
    x_all, y_all = train.x[:samples], train.y[:samples]

    def nll(p, x, y):
        logits = functional_call(model, p, (x.unsqueeze(0), t))
        return F.cross_entropy(logits.float(), y.unsqueeze(0))

    per_sample = vmap(grad(nll), in_dims=(None, 0, 0))
    fisher = {k: torch.zeros_like(v) for k, v in params.items()}
    was_training = model.training
    model.eval()
    for i in range(0, len(x_all), batch):
        _, label = bench.decode(y_all[i:i + batch])
        g = per_sample(params, bench.prepare(x_all[i:i + batch], t), label)
        for k in fisher:
            fisher[k] += g[k].pow(2).sum(0)
    model.train(was_training)
    n = max(1, len(x_all))
    return {k: f / n for k, f in fisher.items()}


class SI(QuadraticAnchor):
    restart_task_on_resume = True  # the running path integral w lives between optimizer steps only

    def __init__(self, cfg):
        super().__init__(cfg)
        self.scale = float(cfg.c)
        self.w: dict[str, torch.Tensor] = {}
        self.start: dict[str, torch.Tensor] = {}
        self.prev: dict[str, torch.Tensor] | None = None

    def before_task(self, model, t):
        super().before_task(model, t)
        self.start = {k: p.detach().clone() for k, p in _params(model).items()}
        self.w = {k: torch.zeros_like(p) for k, p in self.start.items()}
        self.prev = None

    @torch.no_grad()
    def _accumulate(self, model) -> None:
        """Add -g * (theta - theta_prev) for the step just taken (p.grad still holds its gradient)."""
        now = _params(model)
        if self.prev is not None:
            for k, p in now.items():
                if p.grad is not None:
                    self.w[k] -= p.grad * (p.detach() - self.prev[k])
        self.prev = {k: p.detach().clone() for k, p in now.items()}

    def penalty(self, model):
        self._accumulate(model)  # called once per training step, before this step's backward
        return super().penalty(model)

    def after_task(self, model, t, train, bench) -> None:
        self._accumulate(model)  # the last step
        xi = float(self.cfg.xi)
        for k, p in _params(model).items():
            omega = self.w[k] / ((p.detach() - self.start[k]).pow(2) + xi)
            self.importance[k] = self.importance[k] + omega if k in self.importance else omega
        self.anchor = {k: p.detach().clone() for k, p in _params(model).items()}
        self.prev = None


class HNet(Method):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.beta = float(cfg.beta)
        self.targets: list[torch.Tensor] = []  # theta*_j for j < current task, flat

    def penalty(self, model):
        t = self.task
        if t == 0 or self.beta == 0 or not self.targets:
            return None
        with torch.autocast(model.task_emb.device.type, enabled=False):  # generated vs stored weights in fp32
            total = sum((model._flat(j, model.task_emb[j].detach()) - self.targets[j]).pow(2).sum() for j in range(t))
        return self.beta / t * total

    @torch.no_grad()
    def after_task(self, model, t, train, bench) -> None:
        """Targets for the next task: what the hypernetwork generates now for tasks 0..t."""
        self.targets = [model.generate_flat(j).detach().clone() for j in range(t + 1)]

    def state_dict(self) -> dict:
        return {"targets": self.targets}

    def load_state_dict(self, state: dict) -> None:
        self.targets = list(state["targets"])


METHODS = {"finetune": Method, "joint": Joint, "ewc": EWC, "si": SI, "hnet": HNet}


def make_method(cl_cfg) -> Method:
    return METHODS[check_method(cl_cfg)](cl_cfg)
