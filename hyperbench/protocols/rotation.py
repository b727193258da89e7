"""Rotation protocols (the `rotation=` config group) and batched image rotation on the device.

A protocol says which digits are removed from the data, which digits are *restricted* to a range of
training angles, the range every other digit is trained on, and named evaluation ranges for the
restricted digits. Potapov's invariance article ("Recognition"): 6 and 9 removed, 3 and 4 trained within [-45, 45],
the others within [0, 360); Pout = 3s and 4s in [45, 315], Pinv = 3s and 4s in [135, 225].
Potapov's HyperNets article (learning to rotate) is the same shape of protocol: 4 and 9 within [-45, 45], the others in
[-180, 180), nothing removed.

Angles are in degrees; positive = counterclockwise as the image is displayed (row 0 at the top), so
rotate(x, 90) equals torch.rot90(x, 1, dims=(2, 3)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..data.geometry import constant
from ..data import Split
from ..errors import ConfigError


def uniform(lo: torch.Tensor | float, hi: torch.Tensor | float, n: int, generator: torch.Generator | None,
            device) -> torch.Tensor:
    """n angles, angle i uniform in [lo(i), hi(i))."""
    u = torch.rand(n, device=device, generator=generator)
    return lo + (hi - lo) * u


def parse_range(value, key: str, angles: bool = True) -> tuple[float, float]:
    """A range from the config: a pair of finite numbers [lo, hi] with lo < hi; for angles (degrees)
    also at most a full circle. angles=False: any other quantity (pixels, shear, scale)."""
    try:
        items = list(value)
    except TypeError:
        items = None
    what = "angles in degrees " if angles else "numbers "
    if isinstance(value, str) or items is None or len(items) != 2 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in items):
        raise ConfigError(
            f"{key} must be a pair of {what}[low, high], got {_show(value)}; "
            f"e.g. {key}=[-45,45]. Nothing was run."
        )
    lo, hi = float(items[0]), float(items[1])
    if lo >= hi:
        kind = "empty" if lo == hi else "inverted"
        hint = (" (degrees, counterclockwise). A range across 0 is written with a negative low, e.g. "
                f"{key}=[-45,45], and one past 360 with a high above 360, e.g. [315,405]") if angles else ""
        raise ConfigError(f"{key}={_show(value)} is an {kind} range: it needs low < high{hint}. Nothing was run.")
    if angles and hi - lo > 360:
        raise ConfigError(f"{key}={_show(value)} spans {hi - lo:g} degrees, more than a full circle "
                          f"(at most 360, e.g. [0,360]). Nothing was run.")
    return lo, hi


def parse_digits(value, key: str, num_classes: int) -> tuple[int, ...]:
    try:
        items = [] if value is None else list(value)
    except TypeError:
        items = None
    if isinstance(value, str) or items is None or not all(isinstance(v, int) and not isinstance(v, bool)
                                                          for v in items):
        raise ConfigError(f"{key} must be a list of class labels (digits), got {_show(value)}; "
                          f"e.g. {key}=[3,4]. Nothing was run.")
    bad = [v for v in items if not 0 <= v < num_classes]
    if bad:
        raise ConfigError(f"{key} names {bad}, which are not classes of this dataset (0..{num_classes - 1}). "
                          f"Nothing was run.")
    if len(set(items)) != len(items):
        raise ConfigError(f"{key}={_show(value)} repeats a digit. Nothing was run.")
    return tuple(items)


def _show(value) -> str:
    try:
        from omegaconf import OmegaConf

        value = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    except Exception:
        pass
    return repr(value).replace(" ", "")


@dataclass(frozen=True)
class RotationProtocol:
    name: str
    digits: tuple[int, ...]  # the kept classes; label i of the remapped data is digit digits[i]
    removed: tuple[int, ...]
    restricted: tuple[int, ...]  # original digits trained within restricted_range
    restricted_range: tuple[float, float]
    others_range: tuple[float, float]
    eval_ranges: dict[str, tuple[float, float]]  # metric name -> range, applied to the restricted digits

    @classmethod
    def from_config(cls, cfg, num_classes: int = 10) -> "RotationProtocol":
        """Parse and check a `rotation` group entry; every problem is a ConfigError naming the key."""
        if cfg is None:
            raise ConfigError("This task needs a rotation protocol: add rotation=restricted34 (or another "
                              "conf/rotation/*.yaml). Nothing was run.")
        removed = parse_digits(cfg.get("remove"), "rotation.remove", num_classes)
        restricted = parse_digits(cfg.get("restricted"), "rotation.restricted", num_classes)
        gone = [d for d in restricted if d in removed]
        if gone:
            raise ConfigError(
                f"rotation.restricted names digit(s) {gone}, which rotation.remove={list(removed)} takes out "
                f"of the data, so they could never be trained or measured. Restrict digits that stay "
                f"(e.g. rotation.restricted=[3,4]) or keep them (rotation.remove=[]). Nothing was run."
            )
        digits = tuple(d for d in range(num_classes) if d not in removed)
        if len(digits) < 2:
            raise ConfigError(f"rotation.remove={list(removed)} leaves fewer than two classes. Nothing was run.")
        if not restricted:
            raise ConfigError("rotation.restricted is empty: name the digits whose training angles are "
                              "restricted, e.g. rotation.restricted=[3,4]. Nothing was run.")
        ranges = cfg.get("eval") or {}
        return cls(
            name=str(cfg.get("name", "custom")),
            digits=digits,
            removed=removed,
            restricted=restricted,
            restricted_range=parse_range(cfg.get("restricted_range"), "rotation.restricted_range"),
            others_range=parse_range(cfg.get("others_range"), "rotation.others_range"),
            eval_ranges={str(k): parse_range(v, f"rotation.eval.{k}") for k, v in ranges.items()},
        )

    @property
    def num_classes(self) -> int:
        return len(self.digits)

    def restricted_labels(self) -> list[int]:
        """The remapped labels of the restricted digits."""
        return [self.digits.index(d) for d in self.restricted]

    def select(self, split: Split) -> Split:
        """Drop the removed digits and renumber the rest 0..K-1 (in digit order)."""
        table = torch.full((max(self.digits + self.removed) + 1,), -1, dtype=torch.long, device=split.y.device)
        table[list(self.digits)] = torch.arange(len(self.digits), device=split.y.device)
        y = table[split.y]
        keep = y >= 0
        return Split(split.x[keep], y[keep])

    def train_ranges(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(low, high) per remapped label: the training range of each class."""
        restricted = set(self.restricted_labels())
        ranges = [self.restricted_range if k in restricted else self.others_range for k in range(self.num_classes)]
        return (constant(tuple(float(r[0]) for r in ranges), torch.device(device)),
                constant(tuple(float(r[1]) for r in ranges), torch.device(device)))

    def sample(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One training angle per (remapped) label in y, uniform within that class's range."""
        lo, hi = self.train_ranges(y.device)
        return uniform(lo[y], hi[y], len(y), generator, y.device)

    def is_restricted(self, y: torch.Tensor) -> torch.Tensor:
        return torch.isin(y, constant(tuple(self.restricted_labels()), y.device))

    def describe(self) -> str:
        """One line naming the whole protocol; the report compares runs (and the published values) by it."""
        removed = f"{', '.join(map(str, self.removed))} removed; " if self.removed else ""
        evals = ", ".join(f"{k} [{lo:g}, {hi:g}]" for k, (lo, hi) in self.eval_ranges.items())
        return (f"{removed}{', '.join(map(str, self.restricted))} trained in "
                f"[{self.restricted_range[0]:g}, {self.restricted_range[1]:g}], the others in "
                f"[{self.others_range[0]:g}, {self.others_range[1]:g})" + (f"; {evals}" if evals else ""))


def wrapped_spans(lo: float, hi: float, start: float = -180.0) -> list[tuple[float, float]]:
    """The range [lo, hi] drawn on the axis [start, start + 360): one span, or two when it wraps."""
    if hi - lo >= 360:
        return [(start, start + 360)]
    a = (lo - start) % 360 + start
    b = a + (hi - lo)
    if b <= start + 360:
        return [(a, b)]
    return [(a, start + 360), (start, b - 360)]


def protocol_views(split: Split, protocol: RotationProtocol, generator: torch.Generator | None):
    """What each metric looks at for one random rotation of `split` (remapped labels):
    yields (metric, images, labels, angles); the images are not rotated yet.

    ptest: every image, at an angle from its class's training range;
    each rotation.eval entry: only the restricted digits, at angles uniform in that entry's range.
    """
    y = split.y
    yield "ptest", split.x, y, protocol.sample(y, generator)
    keep = protocol.is_restricted(y)
    xr, yr = split.x[keep], y[keep]
    for name, (lo, hi) in protocol.eval_ranges.items():
        yield name, xr, yr, uniform(lo, hi, len(yr), generator, y.device)
