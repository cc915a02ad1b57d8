"""``ArrayDataModule``: your own time series from NumPy arrays, tensors or ``.npy`` / ``.npz`` files.

Input per split: ``x`` of shape ``(N, T, C)`` (with optional ``lengths`` when the
samples are padded already) or a list of ``N`` arrays ``(T_i, C)`` of different
lengths, and ``y``, ``N`` class indices. From YAML, give paths: a ``.npy`` file
holding ``x`` (or ``y``), or an ``.npz`` file holding ``x``, ``y`` and optionally
``lengths`` (then leave ``y_<split>`` out).

What the datamodule does, in this order, once, before training starts:

1. checks every array (rank, matching counts, finite values on real steps,
   labels in ``[0, num_classes)``, lengths within ``[1, T]``) and names the
   argument, the value and the fix when one is wrong;
2. draws a stratified validation split from the training data when no
   validation set is given (and a test split with ``test_fraction``);
3. standardises every channel with the mean and standard deviation of the
   training split's real steps (``standardize=True``);
4. pads every sample at the end with zeros to its split's longest one.

Batches are ``(x, y)`` when every sample has the same length, as in the other
datamodules, else ``(x, y, {"mask": (B, T) bool})`` with padded steps false
(each batch trimmed to its longest sample); the losses and metrics of the
framework then ignore the padded steps.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = [rng.normal(size=(int(t), 2)) for t in rng.integers(5, 9, size=40)]   # 40 sequences of 5-8 steps
    >>> y = np.arange(40) % 2
    >>> dm = ArrayDataModule(x, y, val_fraction=0.25, batch_size=4, seed=0)
    >>> x_batch, y_batch, meta = next(iter(dm.val_dataloader()))
    >>> dm.num_classes, dm.num_features, len(dm.dataset("val")), x_batch.shape[0], tuple(meta["mask"].shape) == tuple(x_batch.shape[:2])
    (2, 2, 10, 4, True)
"""

from __future__ import annotations

import os
from typing import Any, Optional

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from torch.utils.data import Dataset, TensorDataset, default_collate

from ._base import InMemoryDataModule, check_fraction

__all__ = ["ArrayDataModule", "MaskedDataset", "collate_trimmed"]

SPLITS = ("train", "val", "test")


class MaskedDataset(Dataset):
    """Padded samples ``x (N, T, C)``, labels and a mask ``(N, T)``: items ``(x, y, {"mask": mask})``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> None:
        self.x, self.y, self.mask = x, y, mask

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int):
        return self.x[index], self.y[index], {"mask": self.mask[index]}


def collate_trimmed(items):
    """Stack a batch, then drop the steps that are padding in every sample of it.

    Example:
        >>> import torch
        >>> items = [(torch.ones(4, 1), 0, {"mask": torch.tensor([True, True, False, False])})]
        >>> x, y, meta = collate_trimmed(items)
        >>> tuple(x.shape), meta["mask"].tolist()
        ((1, 2, 1), [[True, True]])
    """
    batch = default_collate(items)
    if len(batch) == 3 and isinstance(batch[2], dict) and "mask" in batch[2]:
        x, y, meta = batch
        steps = int(meta["mask"].sum(dim=1).max())
        return x[:, :steps], y, {**meta, "mask": meta["mask"][:, :steps]}
    return batch


def _load_file(owner: str, name: str, path: str):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{owner}: {name}={path!r} does not exist; give the path of a .npy or .npz file.")
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as data:
            unknown = sorted(set(data.files) - {"x", "y", "lengths"})
            if "x" not in data.files or "y" not in data.files or unknown:
                raise ValueError(
                    f"{owner}: {name}={path!r} holds the arrays {sorted(data.files)}; an .npz file must hold 'x' and 'y' "
                    "(and optionally 'lengths'), e.g. np.savez(path, x=x, y=y)."
                )
            return {key: data[key] for key in data.files}
    if path.endswith(".npy"):
        try:
            return np.load(path, allow_pickle=False)
        except ValueError:
            raise ValueError(
                f"{owner}: {name}={path!r} holds Python objects (e.g. a list of arrays of different lengths), which "
                "are not loaded (unpickling can run code). Pad them to (N, T, C) and save x, y and lengths with "
                "np.savez(path, x=x, y=y, lengths=lengths)."
            ) from None
    raise ValueError(f"{owner}: {name}={path!r} must be a .npy or .npz file.")


def _as_array(owner: str, name: str, value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nested lists
        array = None
    if array is None or array.dtype == object:
        raise ValueError(
            f"{owner}: {name} is not a numeric array; give an array (N, T, C), a list of (T_i, C) arrays, or a file path."
        )
    return array


class _Split:
    """One split: padded ``x (N, T, C)`` float32, ``y (N,)`` int64, ``lengths (N,)`` int64."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor) -> None:
        self.x, self.y, self.lengths = x, y, lengths

    def subset(self, index) -> "_Split":
        index = torch.as_tensor(index, dtype=torch.long)
        return _Split(self.x[index], self.y[index], self.lengths[index])

    @property
    def mask(self) -> torch.Tensor:
        return torch.arange(self.x.shape[1]) < self.lengths.unsqueeze(1)


def _read_split(owner: str, split: str, x, y, lengths) -> _Split:
    """Check one split's arrays and return them padded, with the fix in every message."""
    x_name, y_name = f"x_{split}", f"y_{split}"
    if isinstance(x, (str, os.PathLike)):
        loaded = _load_file(owner, x_name, os.fspath(x))
        if isinstance(loaded, dict):
            if y is not None:
                raise ValueError(f"{owner}: {x_name}={os.fspath(x)!r} is an .npz file holding 'y' already; leave {y_name} out.")
            if lengths is not None and "lengths" in loaded:
                raise ValueError(f"{owner}: lengths of {split} are given twice (the .npz file holds 'lengths'); keep one.")
            x, y, lengths = loaded["x"], loaded["y"], loaded.get("lengths", lengths)
        else:
            x = loaded
    if isinstance(y, (str, os.PathLike)):
        y = _load_file(owner, y_name, os.fspath(y))
        if isinstance(y, dict):
            raise ValueError(f"{owner}: {y_name} must be a .npy file of labels, not an .npz file.")
    if y is None:
        raise ValueError(f"{owner}: {x_name} is given without {y_name}; give the labels (N,) too.")
    if isinstance(x, (list, tuple)):
        if lengths is not None:
            raise ValueError(f"{owner}: lengths is given for {x_name}, a list of sequences, whose lengths are known; leave it out.")
        if not x:
            raise ValueError(f"{owner}: {x_name} is an empty list; give at least one sequence.")
        samples = [_as_array(owner, f"{x_name}[{i}]", s) for i, s in enumerate(x)]
        for i, sample in enumerate(samples):
            if sample.ndim != 2:
                raise ValueError(
                    f"{owner}: {x_name}[{i}] has shape {sample.shape} (rank {sample.ndim}); each sequence must be "
                    "(T_i, C): time first, channels last (use s[:, None] for one channel)."
                )
        channels = {s.shape[1] for s in samples}
        if len(channels) > 1:
            raise ValueError(f"{owner}: the sequences of {x_name} have different channel counts {sorted(channels)}; all need the same C.")
        lengths = np.array([s.shape[0] for s in samples])
        if lengths.min() == 0:
            raise ValueError(f"{owner}: {x_name}[{int(np.argmin(lengths))}] has no time step; every sequence needs at least one.")
        padded = np.zeros((len(samples), int(lengths.max()), channels.pop()), dtype=np.float32)
        for i, sample in enumerate(samples):
            padded[i, : len(sample)] = sample
        x = padded
    x = _as_array(owner, x_name, x)
    if x.ndim != 3:
        hint = " For one channel use x[..., None]." if x.ndim == 2 else ""
        raise ValueError(f"{owner}: {x_name} has shape {x.shape} (rank {x.ndim}); it must be (N, T, C) or a list of (T_i, C) arrays.{hint}")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise ValueError(f"{owner}: {x_name} has dtype {x.dtype}; it must hold real numbers.")
    n, steps = x.shape[0], x.shape[1]
    if n == 0 or steps == 0 or x.shape[2] == 0:
        raise ValueError(f"{owner}: {x_name} has shape {x.shape}; it needs at least one sample, step and channel.")
    y = _as_array(owner, y_name, y)
    if y.ndim != 1:
        raise ValueError(f"{owner}: {y_name} has shape {y.shape}; it must be (N,) class indices, not one-hot (use y.argmax(1)).")
    if len(y) != n:
        raise ValueError(f"{owner}: {x_name} holds {n} samples but {y_name} holds {len(y)} labels; they must match one to one.")
    if not (np.issubdtype(y.dtype, np.integer) or (np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)))):
        raise ValueError(f"{owner}: {y_name} has dtype {y.dtype} with non-integer values; it must hold class indices 0, 1, ...")
    if lengths is None:
        lengths = np.full(n, steps)
    else:
        lengths = _as_array(owner, f"lengths of {split}", lengths)
        if lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(f"{owner}: lengths of {split} has shape {lengths.shape} and dtype {lengths.dtype}; it must be ({n},) integers.")
        if lengths.min() < 1 or lengths.max() > steps:
            bad = int(np.argmax((lengths < 1) | (lengths > steps)))
            raise ValueError(
                f"{owner}: lengths of {split}[{bad}] = {int(lengths[bad])} is outside [1, {steps}]: {x_name} has T = {steps} "
                "steps, and a sample can be neither longer nor empty."
            )
    real = np.arange(steps)[None, :] < lengths[:, None]
    finite = np.isfinite(x).all(axis=2) | ~real
    if not finite.all():
        i, t = map(int, np.argwhere(~finite)[0])
        raise ValueError(
            f"{owner}: {x_name}[{i}] has a non-finite value (NaN or inf) at step {t}, a real step; "
            f"{int((~finite).sum())} step(s) are affected. Fill or drop them (e.g. np.nan_to_num or interpolation) first."
        )
    x = np.where(real[..., None], x, 0.0).astype(np.float32)  # padding is silent, whatever it held
    return _Split(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)), torch.from_numpy(lengths.astype(np.int64)))


def _split_off(owner: str, split: _Split, fraction: float, seed: int, what: str) -> tuple[_Split, _Split]:
    from sklearn.model_selection import train_test_split

    index = np.arange(len(split.y))
    labels = split.y.numpy()
    counts = np.bincount(labels)
    if counts[counts > 0].min() < 2 or round(fraction * len(index)) < len(np.unique(labels)):
        raise ValueError(
            f"{owner}: cannot draw a stratified {what} of {fraction:g} from {len(index)} training samples with class counts "
            f"{counts.tolist()}: every class needs 2 samples or more and the split one per class. Give x_{what}/y_{what} "
            f"or a larger {what}_fraction."
        )
    keep, held = train_test_split(index, test_size=fraction, stratify=labels, random_state=seed)
    return split.subset(np.sort(keep)), split.subset(np.sort(held))


class ArrayDataModule(InMemoryDataModule):
    """Train / validate / test on your own time series held in arrays or ``.npy`` / ``.npz`` files.

    Args:
        x_train: Training inputs: ``(N, T, C)`` array or tensor, a list of ``(T_i, C)``
            arrays, or a ``.npy`` / ``.npz`` path (see the module docstring).
        y_train: Training labels ``(N,)`` (or a ``.npy`` path); omitted with an ``.npz`` ``x_train``.
        x_val: Validation inputs (same forms); ``None``: a stratified ``val_fraction`` of the training data.
        y_val: Validation labels.
        x_test: Test inputs; ``None``: a stratified ``test_fraction`` of the training data, or
            (``test_fraction=0``) the validation split, with a warning when testing.
        y_test: Test labels.
        lengths: Real lengths of padded ``(N, T, C)`` inputs: an array for ``x_train``, or a dict
            ``{"train": ..., "val": ..., "test": ...}``.
        num_classes: Number of classes; ``None``: the largest label + 1. Every label must be in
            ``[0, num_classes)``.
        val_fraction: Fraction of the training data (as given) held out for validation (without ``x_val``).
        test_fraction: Fraction of the training data (as given) held out for testing (without ``x_test``).
        standardize: Shift and scale every channel by the training split's mean and standard
            deviation over real steps (the result is signed: encode it with
            :class:`~nwave_lightning.encode.OnOff` before an H1 frontend).
        encoder: An :mod:`nwave_lightning.encode` encoder applied once here, on the CPU, to
            every split (after standardising); padded steps stay zero. Put the encoder in
            the model instead (``H1Classifier(encoder=...)``) to export it with the network.
        batch_size: Samples per batch.
        num_workers: DataLoader workers.
        seed: Seeds the splits and the shuffling.
        shuffle: Shuffle the training split every epoch.

    Raises:
        ValueError: on any malformed input, before any training step (see the module docstring).
    """

    collate_fn = staticmethod(collate_trimmed)

    def __init__(
        self,
        x_train: Any,
        y_train: Any = None,
        x_val: Any = None,
        y_val: Any = None,
        x_test: Any = None,
        y_test: Any = None,
        lengths: Any = None,
        num_classes: Optional[int] = None,
        val_fraction: float = 0.2,
        test_fraction: float = 0.0,
        standardize: bool = True,
        encoder: Optional[nn.Module] = None,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        super().__init__(batch_size, num_workers, seed, shuffle)
        owner = type(self).__name__
        self.val_fraction = check_fraction(owner, "val_fraction", val_fraction, 0.0, 0.9)
        self.test_fraction = check_fraction(owner, "test_fraction", test_fraction, 0.0, 0.9)
        if encoder is not None and not isinstance(encoder, nn.Module):
            raise ValueError(f"{owner}: encoder={encoder!r} must be an nn.Module such as nwave_lightning.encode.OnOff().")
        self.standardize, self.encoder = bool(standardize), encoder
        per_split = self._lengths_per_split(lengths)
        given = {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}
        splits: dict[str, _Split] = {}
        for split, (x, y) in given.items():
            if x is None:
                if y is not None:
                    raise ValueError(f"{owner}: y_{split} is given without x_{split}; give both or neither.")
                if per_split.get(split) is not None:
                    raise ValueError(f"{owner}: lengths are given for {split!r}, which has no x_{split}.")
                continue
            splits[split] = _read_split(owner, split, x, y, per_split.get(split))
        self.num_classes = self._check_labels(splits, num_classes)
        channels = {name: s.x.shape[2] for name, s in splits.items()}
        if len(set(channels.values())) > 1:
            raise ValueError(f"{owner}: the splits have different channel counts {channels}; every x needs the same C.")
        # Fractions are of the training data as given: the test split first, then val from the rest.
        draw_val = "val" not in splits
        if draw_val and (self.val_fraction == 0 or self.val_fraction + self.test_fraction >= 0.95):
            raise ValueError(
                f"{owner}: no x_val, val_fraction={val_fraction} and test_fraction={test_fraction}; give a validation set "
                "or a val_fraction > 0 with val_fraction + test_fraction < 0.95."
            )
        if "test" not in splits and self.test_fraction > 0:
            splits["train"], splits["test"] = _split_off(owner, splits["train"], self.test_fraction, self.seed + 1, "test")
        if draw_val:
            fraction = self.val_fraction / (1.0 - self.test_fraction) if "test" in splits and x_test is None else self.val_fraction
            splits["train"], splits["val"] = _split_off(owner, splits["train"], fraction, self.seed, "val")
        self.test_is_val = "test" not in splits
        self.splits = self._prepare(splits)
        self.variable_length = any(bool((s.lengths < s.x.shape[1]).any()) for s in self.splits.values())
        self.num_features = int(self.splits["train"].x.shape[2])

    @staticmethod
    def _lengths_per_split(lengths) -> dict:
        if lengths is None:
            return {}
        if isinstance(lengths, dict):
            unknown = sorted(set(lengths) - set(SPLITS))
            if unknown:
                raise ValueError(f"ArrayDataModule: lengths has keys {unknown}; use 'train', 'val' and 'test'.")
            return dict(lengths)
        return {"train": lengths}

    def _check_labels(self, splits: dict[str, _Split], num_classes) -> int:
        owner = type(self).__name__
        lowest = min(int(s.y.min()) for s in splits.values())
        highest = max(int(s.y.max()) for s in splits.values())
        if num_classes is None:
            if lowest < 0:
                raise ValueError(f"{owner}: the labels hold {lowest}; class indices start at 0.")
            num_classes = highest + 1
        elif isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"{owner}: num_classes={num_classes!r} must be an integer >= 2.")
        for name, split in splits.items():
            bad = (split.y < 0) | (split.y >= num_classes)
            if bool(bad.any()):
                i = int(torch.nonzero(bad)[0])
                raise ValueError(
                    f"{owner}: y_{name}[{i}] = {int(split.y[i])} is outside [0, {num_classes}) for num_classes={num_classes}; "
                    "fix the label or num_classes (labels must be 0 .. num_classes - 1)."
                )
        if num_classes < 2:
            raise ValueError(f"{owner}: the labels hold a single class ({highest}); a classifier needs at least two.")
        return num_classes

    def _prepare(self, splits: dict[str, _Split]) -> dict[str, _Split]:
        """Standardise with the training split's real steps, then run the encoder; padding stays zero."""
        train = splits["train"]
        real = train.x[train.mask]  # (real steps, C)
        self.mean = real.mean(dim=0) if self.standardize else torch.zeros(train.x.shape[2])
        std = real.std(dim=0, unbiased=False) if self.standardize else torch.ones(train.x.shape[2])
        self.std = torch.where(std > 0, std, torch.ones_like(std))  # a constant channel is only shifted
        out = {}
        for name, split in splits.items():
            mask = split.mask.unsqueeze(-1)
            x = torch.where(mask, (split.x - self.mean) / self.std, torch.zeros(()))
            lengths = split.lengths
            if self.encoder is not None:
                with torch.no_grad():
                    encoded = self.encoder(x)
                factor = encoded.shape[1] // x.shape[1]
                if encoded.shape[1] != factor * x.shape[1]:
                    raise ValueError(
                        f"ArrayDataModule: the encoder turned {x.shape[1]} steps into {encoded.shape[1]}, not a whole multiple."
                    )
                lengths = lengths * factor
                steps_mask = torch.arange(encoded.shape[1]) < lengths.unsqueeze(1)
                x = torch.where(steps_mask.unsqueeze(-1), encoded, torch.zeros(()))
            out[name] = _Split(x.float().contiguous(), split.y, lengths)
        return out

    @property
    def max_length(self) -> int:
        """The longest sequence (steps), over all splits."""
        return max(int(s.lengths.max()) for s in self.splits.values())

    def build(self) -> dict[str, Dataset]:
        datasets = {}
        for name in SPLITS:
            split = self.splits.get(name, self.splits["val"])
            if self.variable_length:
                datasets[name] = MaskedDataset(split.x, split.y, split.mask)
            else:
                datasets[name] = TensorDataset(split.x, split.y)
        return datasets

    def test_dataloader(self):
        if self.test_is_val:
            rank_zero_warn(
                "ArrayDataModule: no test set was given (x_test) and test_fraction=0, so testing runs on the "
                "validation split; those numbers are not held out from model selection. Give x_test/y_test or a test_fraction."
            )
        return super().test_dataloader()

