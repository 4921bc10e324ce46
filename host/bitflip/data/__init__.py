"""Datasets: loaders (package-provided and user files) and bit encodings."""

from .registry import Dataset, load_dataset, DATASETS

__all__ = ["Dataset", "load_dataset", "DATASETS"]
