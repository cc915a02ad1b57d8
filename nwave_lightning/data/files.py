"""Datasets saved with ``torch.save``: ``train.pt`` / ``val.pt`` (/ ``test.pt``) in one folder.

Safe formats, loaded with ``torch.load(weights_only=True)`` (tensors only, no code):

* a dict ``{"x": Tensor, "y": Tensor}`` (optionally ``"meta": Tensor``);
* a tuple / list of tensors ``(x, y)`` or ``(x, y, meta)``;
* a ``torch.utils.data.TensorDataset``.

The vendor SDK's files hold whole pickled ``DataLoader`` objects. Unpickling runs
whatever code the file names (arbitrary code execution), so such a file
loads only with ``allow_pickle=True`` and only from a source you trust; the
loader is then used as it is. Convert once to a safe format with
``torch.save({"x": x, "y": y}, "train.pt")``.

Example:
    >>> import tempfile, torch
    >>> folder = tempfile.mkdtemp()
    >>> for name in ("train.pt", "val.pt"):
    ...     torch.save({"x": torch.rand(6, 5, 3), "y": torch.arange(6) % 2}, f"{folder}/{name}")
    >>> dm = TensorFileDataModule(folder, batch_size=4)
    >>> x, y = next(iter(dm.val_dataloader()))
    >>> tuple(x.shape), y.tolist()
    ((4, 5, 3), [0, 1, 0, 1])
"""

from __future__ import annotations

import os
from typing import Optional, Union

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ._base import InMemoryDataModule

__all__ = ["TensorFileDataModule", "load_dataset_file"]

_FORMATS = "a dict {'x': Tensor, 'y': Tensor[, 'meta': Tensor]}, a tuple (x, y[, meta]) of tensors, or a TensorDataset"


def _tensors_dataset(payload, path: str) -> Dataset:
    if isinstance(payload, TensorDataset):
        tensors = payload.tensors
    elif isinstance(payload, dict):
        unknown = sorted(set(payload) - {"x", "y", "meta"})
        if "x" not in payload or "y" not in payload or unknown:
            raise ValueError(f"{path}: the dict has keys {sorted(payload)}; expected 'x', 'y' and optionally 'meta'.")
        tensors = tuple(payload[k] for k in ("x", "y", "meta") if k in payload)
    elif isinstance(payload, (tuple, list)) and len(payload) in (2, 3):
        tensors = tuple(payload)
    else:
        raise ValueError(f"{path} holds a {type(payload).__name__}; expected {_FORMATS}.")
    if not all(isinstance(t, torch.Tensor) for t in tensors):
        raise ValueError(f"{path}: every entry must be a tensor, got {[type(t).__name__ for t in tensors]}.")
    if len({t.shape[0] for t in tensors}) != 1:
        raise ValueError(f"{path}: x, y (and meta) need the same first dimension, got {[tuple(t.shape) for t in tensors]}.")
    _check_not_empty(tensors[0].shape[0], path)
    return TensorDataset(*tensors)


def _check_not_empty(length: int, path: str) -> None:
    # An empty split trains nothing and validates nothing, yet a run on it "succeeds".
    if length == 0:
        raise ValueError(f"TensorFileDataModule: {path} holds an empty dataset (0 samples); save at least one sample there or point to another file.")


def load_dataset_file(path: str, allow_pickle: bool = False) -> Union[Dataset, DataLoader]:
    """Load one file; a ``Dataset``, or (with ``allow_pickle``) possibly a ``DataLoader``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unsupported content, or a pickled object without ``allow_pickle``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"TensorFileDataModule: {path} does not exist; check data_dir and the file name.")
    try:
        with torch.serialization.safe_globals([TensorDataset]):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError (or RuntimeError) for non-tensor content
        if not allow_pickle:
            raise ValueError(
                f"{path} is not a tensors-only file ({type(error).__name__}): it holds pickled Python objects "
                "(e.g. a DataLoader, as in the vendor SDK's files). Unpickling can execute arbitrary code, so it is "
                "refused by default. If you trust the file's source, pass allow_pickle=True "
                "(YAML: allow_pickle: true); better, re-save it as torch.save({'x': x, 'y': y}, path)."
            ) from None
        payload = torch.load(path, map_location="cpu", weights_only=False)
        if isinstance(payload, (DataLoader, Dataset)):
            source = payload.dataset if isinstance(payload, DataLoader) else payload
            if hasattr(source, "__len__"):
                _check_not_empty(len(source), path)
            return payload
    return _tensors_dataset(payload, path)


class TensorFileDataModule(InMemoryDataModule):
    """Train / validate / test on tensors saved in ``data_dir``.

    Args:
        data_dir: Folder holding the files.
        train_file: Training file name.
        val_file: Validation file name.
        test_file: Test file name (``None``: test on the validation file, with a warning).
        allow_pickle: Also load pickled objects (the vendor SDK's ``DataLoader`` files).
            Unpickling executes code chosen by whoever wrote the file: enable
            it only for files you trust.
        batch_size: Samples per batch (ignored for files holding a DataLoader).
        num_workers: DataLoader workers.
        seed: Seeds the shuffling.
        shuffle: Shuffle the training split every epoch.
    """

    def __init__(
        self,
        data_dir: str,
        train_file: str = "train.pt",
        val_file: str = "val.pt",
        test_file: Optional[str] = None,
        allow_pickle: bool = False,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        super().__init__(batch_size, num_workers, seed, shuffle)
        self.data_dir = os.fspath(data_dir)
        self.files = {"train": train_file, "val": val_file, "test": test_file or val_file}
        self.test_is_val = test_file is None
        self.allow_pickle = bool(allow_pickle)

    def build(self) -> dict:
        return {}  # splits load lazily in dataset(): fit needs no test file, test no training file

    def dataset(self, split: str):
        self.setup()
        if split not in self.datasets:
            self.datasets[split] = load_dataset_file(os.path.join(self.data_dir, self.files[split]), self.allow_pickle)
        return self.datasets[split]

    def test_dataloader(self) -> DataLoader:
        if self.test_is_val:
            rank_zero_warn(
                f"TensorFileDataModule: no test_file was given, so testing runs on the validation file {self.files['val']!r}; "
                "those numbers are not held out from model selection. Pass test_file (YAML: test_file: test.pt)."
            )
        return super().test_dataloader()

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self.dataset(split)
        if isinstance(dataset, DataLoader):  # a trusted pickled loader is used as it is
            return dataset
        return super()._loader(split, shuffle)
