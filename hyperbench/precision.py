"""Precision policy: only a model's bulk arithmetic (convolutions, dense layers, large matmuls) runs under
autocast; whatever cancels or normalises (capsule routing, squash norms, softmax over routing logits,
variances, the losses) runs in float32 with autocast off, and so do targets, metrics and model selection.

full_precision(*tensors): a context that switches autocast off on the tensors' device (CPU, CUDA, MPS, XPU)
and the float32 copies of the tensors to use inside it. Safe on any device, e.g. `meta`, where there is no
autocast to switch off.
"""
from __future__ import annotations

import contextlib

import torch

_AUTOCAST_DEVICES = ("cpu", "cuda", "mps", "xpu")


def no_autocast(device: torch.device | str):
    """Autocast off for `device`'s type (a null context where autocast does not exist)."""
    kind = torch.device(device).type
    return torch.autocast(kind, enabled=False) if kind in _AUTOCAST_DEVICES else contextlib.nullcontext()


def fp32(*tensors: torch.Tensor):
    """The tensors as float32 (floating tensors only; others unchanged); one tensor -> one tensor."""
    out = tuple(t.float() if torch.is_tensor(t) and t.is_floating_point() else t for t in tensors)
    return out[0] if len(out) == 1 else out


def dtype_name(dtype: torch.dtype | None) -> str:
    """The precision a run used: fp32 (autocast off), bf16 or fp16 (autocast on)."""
    return {None: "fp32", torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
