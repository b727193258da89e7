"""Data: datasets as in-memory tensors (datasets.py), user images and rendered symbols (images.py), and the
batched image geometry every task uses (geometry.py: affine grid, warp, rotate, crop)."""
from .datasets import DataBundle, Split, check_arrays, dataset_info, load_data, register_dataset

__all__ = ["DataBundle", "Split", "check_arrays", "dataset_info", "load_data", "register_dataset"]
