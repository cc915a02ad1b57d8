"""Datamodules: built-in tasks (no downloads) and tensors saved to files.

* :class:`PatternDataModule` — tutorial 7: random input spikes, sine rate targets.
* :class:`KeywordSpottingDataModule` — 13 channels, 2 classes (the vendor SDK's HPO example shape).
* :class:`DigitsDataModule` — scikit-learn's 8x8 digits, rows as time steps, 10 classes.
* :class:`TensorFileDataModule` — ``train.pt`` / ``val.pt`` holding tensors.
* :class:`ArrayDataModule` — your own time series: arrays, lists of variable-length
  sequences, ``.npy`` / ``.npz`` files; stratified split, standardisation, padding mask.
* :class:`EventDataModule` — event data (``tonic`` datasets or ``(events, label)`` lists)
  binned to frames with ``tonic``'s own transforms (needs the ``events`` extra).

All are seeded: the same arguments give the same data and batch order on every run.

Example:
    >>> from nwave_lightning.data import DigitsDataModule
    >>> DigitsDataModule.num_classes
    10
"""

from ._base import EpochShuffleSampler, InMemoryDataModule
from .arrays import ArrayDataModule, MaskedDataset, collate_trimmed
from .digits import DigitsDataModule
from .events import EventDataModule
from .files import TensorFileDataModule, load_dataset_file
from .keyword import KeywordSpottingDataModule
from .pattern import PatternDataModule, generate_temporal_targets

__all__ = [
    "ArrayDataModule",
    "DigitsDataModule",
    "EpochShuffleSampler",
    "EventDataModule",
    "InMemoryDataModule",
    "KeywordSpottingDataModule",
    "MaskedDataset",
    "PatternDataModule",
    "TensorFileDataModule",
    "collate_trimmed",
    "generate_temporal_targets",
    "load_dataset_file",
]
