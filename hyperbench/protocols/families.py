"""Transformation families of task=transform (the `transform=` config group): rotate, shift, affine.

Each family draws raw parameters per image (restricted digits within a smaller range), applies them to
a batch on the device (bilinear, geometry.warp: one grid for the batch, grid_sample, the background value outside the image),
and encodes them as the vector the model receives:

    rotate  raw = angle (degrees, counterclockwise as displayed)   model sees (cos a, sin a)
            ranges from the rotation= group (restricted49: 4 and 9 in [-45, 45], the others in [-180, 180))
    shift   raw = (dx, dy) pixels (x right, y down)                 model sees (dx, dy)
    affine  raw = angle, shear x/y, scale x/y, shift x/y            model sees the 6 coefficients a..f of the
            map from output to input pixel coordinates about the image centre, q = A p + t with
            A = R(angle) Sh(shear) Sc(scale), t = A shift (the reference's Rot*Shear*Scale*Shift)

Every family also names a one-dimensional curve through its parameters (rotate and affine: the angle,
shift: dx at dy = 0), the loss-versus-parameter curve of the run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data import geometry
from ..errors import ConfigError
from ..data.geometry import rotate
from .rotation import RotationProtocol, parse_digits, parse_range, uniform


def warp(x: torch.Tensor, theta: torch.Tensor, background: float) -> torch.Tensor:
    """Sample x [N, C, H, W] at theta [N, 2, 3] (affine_grid's normalised output -> input map), bilinear,
    `background` outside the image."""
    return geometry.warp(x, theta, fill=background)


def _box(n: int, ranges: list[tuple[float, float]], generator, device) -> torch.Tensor:
    return torch.stack([uniform(lo, hi, n, generator, device) for lo, hi in ranges], 1)


@dataclass
class Transform:
    """Common interface; raw parameters are [N, k] float tensors."""

    name: str
    restricted: tuple[int, ...]
    background: float = -1.0

    n_params: int = 0
    axis: str = ""          # name of the curve's parameter
    axis_unit: str = ""
    canvas: int | None = None  # side of the square the images are centred on before transforming (None: as loaded)

    # --- per family
    def sample_restricted(self, n, generator, device) -> torch.Tensor: ...
    def sample_others(self, n, generator, device) -> torch.Tensor: ...
    def inside_restricted(self, raw: torch.Tensor) -> torch.Tensor: ...
    def apply(self, x: torch.Tensor, raw: torch.Tensor) -> torch.Tensor: ...
    def encode(self, raw: torch.Tensor) -> torch.Tensor: ...
    def along_axis(self, values: torch.Tensor) -> torch.Tensor: ...  # raw parameters of the curve points
    def curve_values(self, step: float | None) -> torch.Tensor: ...
    def grid_values(self) -> list[float]: ...
    def describe(self) -> str: ...
    def restricted_axis_range(self) -> tuple[float, float]: ...  # the restricted digits' range on the curve axis

    # --- shared
    def on_canvas(self, x: torch.Tensor) -> torch.Tensor:
        """Images [N, C, H, W] centred on a canvas x canvas filled with the background (unchanged without a canvas)."""
        if self.canvas is None or x.shape[-1] == self.canvas and x.shape[-2] == self.canvas:
            return x
        h, w = x.shape[-2:]
        if self.canvas < max(h, w):
            raise ConfigError(f"transform.canvas={self.canvas} is smaller than the {h}x{w} images; it must be at "
                              f"least {max(h, w)}. Nothing was run.")
        top, left = (self.canvas - h) // 2, (self.canvas - w) // 2
        return F.pad(x, (left, self.canvas - w - left, top, self.canvas - h - top), value=self.background)

    def image_shape(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        """The model's input shape for loaded images of `shape` (C, H, W)."""
        return shape if self.canvas is None else (shape[0], self.canvas, self.canvas)

    def is_restricted(self, y: torch.Tensor) -> torch.Tensor:
        return torch.isin(y, geometry.constant(tuple(self.restricted), y.device, y.dtype))

    def sample(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Training parameters for labels y: restricted digits within their range, the others within theirs."""
        r = self.is_restricted(y)
        raw = self.sample_others(len(y), generator, y.device)
        return torch.where(r[:, None], self.sample_restricted(len(y), generator, y.device), raw)

    def pairs(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None):
        """(input, (target, model parameters)) for a training batch."""
        raw = self.sample(y, generator)
        return x, (self.apply(x, raw), self.encode(raw))


class _AngleAxis:
    """Families whose curve and grids run over the rotation angle: -180 ... < 180 degrees."""

    def curve_values(self, step):
        n = int(round(360 / step))
        return torch.tensor([-180.0 + k * step for k in range(n)])

    def grid_values(self):
        return [-180.0, -135.0, -90.0, -45.0, 0.0, 45.0, 90.0, 135.0]


@dataclass
class Rotate(_AngleAxis, Transform):
    protocol: RotationProtocol | None = None
    n_params: int = 2
    axis: str = "angle"
    axis_unit: str = "degrees, counterclockwise"

    def sample_restricted(self, n, generator, device):
        return uniform(*self.protocol.restricted_range, n, generator, device)[:, None]

    def sample_others(self, n, generator, device):
        return uniform(*self.protocol.others_range, n, generator, device)[:, None]

    def inside_restricted(self, raw):
        lo, hi = self.protocol.restricted_range
        a = (raw[:, 0] - lo) % 360 + lo  # the same angle, brought into [lo, lo + 360)
        return a <= hi

    def apply(self, x, raw):
        return rotate(x, raw[:, 0], fill=self.background)

    def encode(self, raw):
        a = raw[:, 0] * (math.pi / 180)
        return torch.stack([torch.cos(a), torch.sin(a)], 1)

    def along_axis(self, values):
        return values[:, None]

    def restricted_axis_range(self):
        return self.protocol.restricted_range

    def describe(self):
        return f"rotate, rotation={self.protocol.name}: {self.protocol.describe()}"


@dataclass
class Shift(Transform):
    restricted_range: tuple[float, float] = (-2.0, 2.0)
    others_range: tuple[float, float] = (-6.0, 6.0)
    curve_step: float = 0.25
    diagonal: bool = False  # the curve runs along dx = dy (the semantic-vision shift protocol), else along dx at dy = 0
    n_params: int = 2
    axis: str = "dx"
    axis_unit: str = "pixels, dy = 0"

    def __post_init__(self):
        if self.diagonal:
            self.axis_unit = "pixels, dy = dx"

    def sample_restricted(self, n, generator, device):
        return _box(n, [self.restricted_range] * 2, generator, device)

    def sample_others(self, n, generator, device):
        return _box(n, [self.others_range] * 2, generator, device)

    def inside_restricted(self, raw):
        lo, hi = self.restricted_range
        return ((raw >= lo) & (raw <= hi)).all(1)

    def apply(self, x, raw):
        n, _, h, w = x.shape
        theta = torch.zeros(n, 2, 3, device=x.device, dtype=raw.dtype)
        theta[:, 0, 0] = theta[:, 1, 1] = 1
        theta[:, 0, 2] = -raw[:, 0] * 2 / w  # output pixel p samples the input at p - d
        theta[:, 1, 2] = -raw[:, 1] * 2 / h
        return warp(x, theta, self.background)

    def encode(self, raw):
        return raw

    def along_axis(self, values):
        return torch.stack([values, values if self.diagonal else torch.zeros_like(values)], 1)

    def curve_values(self, step=None):
        """From the low to the high end of the others' range in transform.curve_step pixels (task.curve_step
        is in degrees, for the angle families)."""
        lo, hi = self.others_range
        step = self.curve_step
        n = int(math.floor((hi - lo) / step + 1e-9)) + 1
        return torch.tensor([lo + k * step for k in range(n)])

    def grid_values(self):
        lo, hi = self.others_range
        return [lo + (hi - lo) * k / 6 for k in range(7)]

    def restricted_axis_range(self):
        return self.restricted_range

    def describe(self):
        r, o = self.restricted_range, self.others_range
        canvas = f" on a {self.canvas}x{self.canvas} canvas" if self.canvas else ""
        return (f"shift (dx, dy) pixels{canvas}: {', '.join(map(str, self.restricted))} in [{r[0]:g}, {r[1]:g}]^2, "
                f"the others in [{o[0]:g}, {o[1]:g}]^2")


@dataclass
class Affine(_AngleAxis, Transform):
    restricted_angle: tuple[float, float] = (-45.0, 45.0)
    angle: tuple[float, float] = (-180.0, 180.0)
    shear: tuple[float, float] = (0.1, 0.5)
    scale: tuple[float, float] = (0.9, 1.4)
    shift: tuple[float, float] = (-5.0, 5.0)
    n_params: int = 6
    axis: str = "angle"
    axis_unit: str = "degrees, shear and scale at mid-range, no shift"

    def _draw(self, n, angle, generator, device):
        return _box(n, [angle, self.shear, self.shear, self.scale, self.scale, self.shift, self.shift],
                    generator, device)

    def sample_restricted(self, n, generator, device):
        return self._draw(n, self.restricted_angle, generator, device)

    def sample_others(self, n, generator, device):
        return self._draw(n, self.angle, generator, device)

    def inside_restricted(self, raw):
        lo, hi = self.restricted_angle
        a = (raw[:, 0] - lo) % 360 + lo
        return a <= hi

    def matrix(self, raw: torch.Tensor) -> torch.Tensor:
        """[N, 2, 3]: output -> input map in pixel coordinates about the centre (x right, y down)."""
        a = raw[:, 0] * (math.pi / 180)
        c, s = torch.cos(a), torch.sin(a)
        one = torch.ones_like(c)
        rot = torch.stack([torch.stack([c, -s], 1), torch.stack([s, c], 1)], 1)  # as rotation.rotate samples
        shear = torch.stack([torch.stack([one, raw[:, 1]], 1), torch.stack([raw[:, 2], one], 1)], 1)
        scale = torch.diag_embed(raw[:, 3:5])
        A = rot @ shear @ scale
        t = (A @ raw[:, 5:7, None])
        return torch.cat([A, t], 2)

    def apply(self, x, raw):
        _, _, h, w = x.shape
        m = self.matrix(raw)
        # pixel coordinates about the centre -> affine_grid's normalised coordinates (x / (w/2), y / (h/2))
        norm = geometry.constant(((1.0, h / w, 2 / w), (w / h, 1.0, 2 / h)), x.device, m.dtype)
        return warp(x, m * norm, self.background)

    def encode(self, raw):
        return self.matrix(raw).flatten(1)

    def along_axis(self, values):
        mid = lambda r: (r[0] + r[1]) / 2  # noqa: E731
        rest = geometry.constant((mid(self.shear), mid(self.shear), mid(self.scale), mid(self.scale), 0.0, 0.0),
                                values.device, values.dtype)  # on the values' device (a GPU run's curve)
        return torch.cat([values[:, None], rest.expand(len(values), -1)], 1)

    def restricted_axis_range(self):
        return self.restricted_angle

    def describe(self):
        r = self.restricted_angle
        return (f"affine: angle {', '.join(map(str, self.restricted))} in [{r[0]:g}, {r[1]:g}], the others in "
                f"[{self.angle[0]:g}, {self.angle[1]:g}); shear [{self.shear[0]:g}, {self.shear[1]:g}], "
                f"scale [{self.scale[0]:g}, {self.scale[1]:g}], shift [{self.shift[0]:g}, {self.shift[1]:g}] px")


def _curve_axis(value) -> bool:
    if str(value) not in ("dx", "diagonal"):
        raise ConfigError(f"transform.curve_axis must be dx (dy = 0) or diagonal (dy = dx), got {value!r}. "
                          "Nothing was run.")
    return str(value) == "diagonal"


def _canvas(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 4 or value % 4:
        raise ConfigError(f"transform.canvas must be null or a positive multiple of 4 (the models halve the side "
                          f"twice), got {value!r}. Nothing was run.")
    return value


def transform_from_config(cfg, rotation_cfg=None, background: float = -1.0) -> Transform:
    """The family the `transform` group entry names; rotate takes its ranges from the rotation= group."""
    if cfg is None:
        raise ConfigError("task=transform needs a transformation family: transform=rotate, shift or affine. "
                          "Nothing was run.")
    kind = str(cfg.get("kind"))
    name = str(cfg.get("name", kind))
    if kind == "rotate":
        protocol = RotationProtocol.from_config(rotation_cfg, 10)
        return Rotate(name=name, restricted=protocol.restricted, background=background, protocol=protocol)
    restricted = parse_digits(cfg.get("restricted"), "transform.restricted", 10)
    if kind == "shift":
        return Shift(name=name, restricted=restricted, background=background,
                     restricted_range=parse_range(cfg.restricted_range, "transform.restricted_range", angles=False),
                     others_range=parse_range(cfg.others_range, "transform.others_range", angles=False),
                     curve_step=float(cfg.get("curve_step", 0.25)), diagonal=_curve_axis(cfg.get("curve_axis", "dx")),
                     canvas=_canvas(cfg.get("canvas")))
    if kind == "affine":
        return Affine(name=name, restricted=restricted, background=background,
                      restricted_angle=parse_range(cfg.restricted_angle, "transform.restricted_angle"),
                      angle=parse_range(cfg.angle, "transform.angle"), shear=parse_range(cfg.shear, "transform.shear", angles=False),
                      scale=parse_range(cfg.scale, "transform.scale", angles=False), shift=parse_range(cfg.shift, "transform.shift", angles=False))
    raise ConfigError(f"transform.kind='{kind}' is not one of rotate, shift, affine. Nothing was run.")


def transform_of(cfg) -> Transform:
    """The transformation family a run's whole config describes (transform=, rotation=, the data's background)."""
    return transform_from_config(cfg.get("transform"), cfg.get("rotation"), float(cfg.data.scale[0]))
