"""Images that are not MNIST digits, for transfer evaluation (task=transform eval.images=...):

    a folder of PNGs           every *.png, sorted by name, each H x W (28 x 28), grey or colour
    an .npy array              N x H x W (or N x 1 x H x W): uint8 0..255, or floats in [0, 1]
    emnist_letters             handwritten letters, EMNIST letters test split under the data root
    symbols                    printed letters, digits and symbols rendered here from DejaVu Sans
                               (the font matplotlib ships), centred in a 20 x 20 box as MNIST is

All come back as uint8 [N, H, W], bright strokes on a dark background (as MNIST), plus a name per image.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DataError

SYMBOLS = "ABDEFGHJKLMNPQRTUVYabdefghkmnpqrtyz2357&?!#%@$+<>{}"


def _check_shape(arr: np.ndarray, where: str, size: int) -> None:
    if arr.shape[-2:] != (size, size):
        raise DataError(f"{where} holds images of {arr.shape[-2]} x {arr.shape[-1]} pixels; the trained models "
                        f"take {size} x {size}. Resize them to {size} x {size} first (bright symbol on a dark "
                        f"background, as MNIST).")


def load_npy(path: Path, size: int = 28) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise DataError(f"Cannot read {path} as a NumPy array ({exc}).") from exc
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or len(arr) == 0:
        raise DataError(f"{path} has shape {arr.shape}; expected N x {size} x {size} (or N x 1 x {size} x {size}) "
                        f"images.")
    _check_shape(arr, str(path), size)
    if arr.dtype == np.uint8:
        return arr
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{path} holds {arr.dtype} values; expected uint8 0..255 or floats in [0, 1].")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
        raise DataError(f"{path} holds floats outside [0, 1] (min {np.nanmin(arr):g}, max {np.nanmax(arr):g}); "
                        f"save uint8 0..255 or floats in [0, 1].")
    return np.round(arr * 255).astype(np.uint8)


def load_png_folder(folder: Path, size: int = 28) -> tuple[np.ndarray, list[str]]:
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    if not files:
        raise DataError(f"The folder {folder} has no .png files; put {size} x {size} PNG images there or pass an "
                        f".npy array of N x {size} x {size}.")
    images = []
    for f in files:
        try:
            with Image.open(f) as im:
                im.load()
                grey = im.convert("L")
        except Exception as exc:
            raise DataError(f"Cannot read the PNG {f} ({exc}).") from exc
        if grey.size != (size, size):
            raise DataError(f"{f} is {grey.size[0]} x {grey.size[1]} pixels; the trained models take {size} x "
                            f"{size}. Resize it (bright symbol on a dark background, as MNIST).")
        images.append(np.asarray(grey, dtype=np.uint8))
    return np.stack(images), [f.stem for f in files]


def emnist_letters(root: str, max_images: int | None = None) -> tuple[np.ndarray, list[str]]:
    """EMNIST letters test split (torchvision layout under the data root), upright (EMNIST is stored transposed)."""
    from torchvision.datasets import EMNIST

    from .datasets import check_arrays, torchvision_dataset

    files = tuple(f"EMNIST/raw/emnist-letters-test-{k}-idx{d}-ubyte" for k, d in (("images", 3), ("labels", 1)))
    ds = torchvision_dataset(EMNIST, root, False, files=files, split="letters", train=False)
    check_arrays("EMNIST letters", "test", ds.data, ds.targets, (28, 28), range(1, 27), *(str(Path(root) / f) for f in files))
    x = ds.data if max_images is None else ds.data[:max_images]
    labels = ds.targets[: len(x)]
    names = [f"{i:05d}_{chr(ord('a') + int(t) - 1)}" for i, t in enumerate(labels)]
    return x.transpose(1, 2).numpy(), names


def render_symbols(chars: str = SYMBOLS, size: int = 28, box: int = 20) -> tuple[np.ndarray, list[str]]:
    """Each character drawn in DejaVu Sans, cropped to its ink, scaled to fit box x box, centred in size x size."""
    from matplotlib import font_manager
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(font_manager.findfont("DejaVu Sans"), 96)
    out = []
    for ch in chars:
        canvas = Image.new("L", (160, 160), 0)
        ImageDraw.Draw(canvas).text((20, 10), ch, fill=255, font=font)
        ink = canvas.crop(canvas.getbbox())
        scale = box / max(ink.size)
        ink = ink.resize((max(1, round(ink.size[0] * scale)), max(1, round(ink.size[1] * scale))), Image.BILINEAR)
        img = Image.new("L", (size, size), 0)
        img.paste(ink, ((size - ink.size[0]) // 2, (size - ink.size[1]) // 2))
        out.append(np.asarray(img, dtype=np.uint8))
    names = [f"{i:02d}_{'u' if c.isupper() else ''}{c if c.isalnum() else f'x{ord(c):02x}'}" for i, c in enumerate(chars)]
    return np.stack(out), names


def load_images(spec: str, data_root: str, size: int = 28, max_images: int | None = None):
    """(uint8 [N, size, size], names) for eval.images: a folder of PNGs, an .npy file, or a built-in set."""
    spec = str(spec)
    if spec == "symbols":
        images, names = render_symbols(size=size)
    elif spec == "emnist_letters":
        images, names = emnist_letters(data_root, max_images)
    else:
        path = Path(spec).expanduser()
        if path.is_dir():
            images, names = load_png_folder(path, size)
        elif path.suffix.lower() == ".npy" and path.is_file():
            images = load_npy(path, size)
            names = [f"{i:05d}" for i in range(len(images))]
        else:
            raise DataError(f"eval.images='{spec}' is neither a folder of PNGs, an .npy file, nor one of the built-in "
                            f"sets emnist_letters, symbols.")
    if max_images is not None:
        images, names = images[:max_images], names[:max_images]
    return images, names


def to_tensor(images: np.ndarray, scale, device) -> torch.Tensor:
    """uint8 [N, H, W] -> float [N, 1, H, W] in the range `scale` (as data._to_float)."""
    x = torch.as_tensor(np.ascontiguousarray(images)).float().div_(255.0).unsqueeze(1)
    lo, hi = float(scale[0]), float(scale[1])
    return x.mul_(hi - lo).add_(lo).to(device)
