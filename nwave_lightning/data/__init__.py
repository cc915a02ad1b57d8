"""Datamodules: built-in tasks (no downloads) and tensors saved to files.

* :class:`PatternDataModule` — tutorial 7: random input spikes, sine rate targets.
* :class:`KeywordSpottingDataModule` — 13 channels, 2 classes (the vendor SDK's HPO example shape).
* :class:`DigitsDataModule` — scikit-learn's 8x8 digits, rows as time steps, 10 classes.
* :class:`TensorFileDataModule` — ``train.pt`` / ``val.pt`` holding tensors.

All are seeded: the same arguments give the same data and batch order on every run.

Example:
    >>> from nwave_lightning.data import DigitsDataModule
    >>> DigitsDataModule.num_classes
    10
"""

from ._base import EpochShuffleSampler, InMemoryDataModule
from .digits import DigitsDataModule
from .files import TensorFileDataModule, load_dataset_file
from .keyword import KeywordSpottingDataModule
from .pattern import PatternDataModule, generate_temporal_targets

__all__ = [
    "DigitsDataModule",
    "EpochShuffleSampler",
    "InMemoryDataModule",
    "KeywordSpottingDataModule",
    "PatternDataModule",
    "TensorFileDataModule",
    "generate_temporal_targets",
    "load_dataset_file",
]
