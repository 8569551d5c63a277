"""Data: IDX datasets held in memory as uint8 tensors, batched and augmented on the device."""

from cnnlab.data.augment import BatchAugment
from cnnlab.data.datamodule import DATASETS, MNISTDataModule

__all__ = ["BatchAugment", "DATASETS", "MNISTDataModule"]
