"""Data loaders: the shared data sets (MNIST, ...) and user arrays (``.npy``/``.npz``)."""

from neurodeploy.data.arrays import load_array_file
from neurodeploy.data.datasets import data_folder, data_root, load_dataset

__all__ = ["data_folder", "data_root", "load_array_file", "load_dataset"]
