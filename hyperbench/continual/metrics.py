"""Continual-learning metrics of an accuracy matrix R (T x T): R[i][j] = test accuracy on task j after training
on tasks 0..i (entries j > i are not measured: NaN).

    average accuracy   ACC = (1/T) sum_j R[T-1][j]                    (after the last task)
    backward transfer  BWT = 1/(T-1) sum_{j<T-1} (R[T-1][j] - R[j][j])  (Lopez-Paz & Ranzato, "Gradient episodic
                       memory for continual learning"; negative = forgetting)
    forgetting         F = 1/(T-1) sum_{j<T-1} max_{l<T-1} (R[l][j] - R[T-1][j]), the max over the rows l >= j
                       (Chaudhry et al., "Riemannian walk for incremental learning"); negative only when a task ends
                       better than it ever was before the last task

With one task (or a joint run, a single row), BWT and forgetting are undefined: None.
"""
from __future__ import annotations

import math

import numpy as np


def _matrix(acc) -> np.ndarray:
    r = np.asarray(acc, dtype=float)
    if r.ndim != 2 or r.shape[0] != r.shape[1]:
        raise ValueError(f"an accuracy matrix is T x T, got shape {r.shape}")
    return r


def average_accuracy(acc) -> float:
    """Mean of the last row (over the tasks it measures)."""
    last = np.asarray(acc, dtype=float)[-1]
    return float(np.nanmean(last))


def backward_transfer(acc) -> float | None:
    r = _matrix(acc)
    t = len(r)
    if t < 2:
        return None
    return float(np.mean([r[t - 1, j] - r[j, j] for j in range(t - 1)]))


def forgetting(acc) -> float | None:
    r = _matrix(acc)
    t = len(r)
    if t < 2:
        return None
    return float(np.mean([max(r[l, j] for l in range(j, t - 1)) - r[t - 1, j] for j in range(t - 1)]))


def summary(acc) -> dict:
    """avg_acc, bwt, forgetting and the average accuracy over tasks seen so far after each task."""
    r = np.asarray(acc, dtype=float)
    square = r.ndim == 2 and r.shape[0] == r.shape[1]
    out = {"avg_acc": average_accuracy(r),
           "bwt": backward_transfer(r) if square else None,
           "forgetting": forgetting(r) if square else None}
    if square:
        out["avg_acc_after_task"] = [float(np.mean(r[i, :i + 1])) for i in range(len(r))]
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}
