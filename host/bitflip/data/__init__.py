"""Datasets: loaders (package-provided and user files) and bit encodings."""

from .registry import DATASETS, Dataset, load_dataset

__all__ = ["DATASETS", "Dataset", "load_dataset"]
