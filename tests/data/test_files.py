"""TensorFileDataModule: safe tensor formats, pickled DataLoaders only on request."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from nwave_lightning.data import TensorFileDataModule, load_dataset_file


def _xy(n=6):
    return torch.rand(n, 5, 3), torch.arange(n) % 2


@pytest.mark.parametrize("fmt", ["dict", "tuple", "list", "dataset", "meta"])
def test_safe_formats_round_trip(tmp_path, fmt):
    x, y = _xy()
    payload = {
        "dict": {"x": x, "y": y},
        "tuple": (x, y),
        "list": [x, y],
        "dataset": TensorDataset(x, y),
        "meta": {"x": x, "y": y, "meta": torch.arange(6) * 10},
    }[fmt]
    torch.save(payload, tmp_path / "train.pt")
    torch.save(payload, tmp_path / "val.pt")
    dm = TensorFileDataModule(tmp_path, batch_size=6, shuffle=False)
    batch = next(iter(dm.train_dataloader()))
    assert torch.equal(batch[0], x) and torch.equal(batch[1], y)
    assert len(batch) == (3 if fmt == "meta" else 2)


def test_pickled_dataloader_needs_allow_pickle(tmp_path):
    x, y = _xy()
    torch.save(DataLoader(TensorDataset(x, y), batch_size=3), tmp_path / "train.pt")
    torch.save({"x": x, "y": y}, tmp_path / "val.pt")
    with pytest.raises(ValueError) as info:
        TensorFileDataModule(tmp_path).train_dataloader()
    message = str(info.value)
    assert "arbitrary code" in message and "allow_pickle=True" in message and "train.pt" in message
    loader = TensorFileDataModule(tmp_path, allow_pickle=True).train_dataloader()
    assert isinstance(loader, DataLoader) and loader.batch_size == 3  # the trusted loader is used as it is
    # the safe validation file loads without allow_pickle: splits load lazily and independently
    assert next(iter(TensorFileDataModule(tmp_path, batch_size=2).val_dataloader()))[0].shape == (2, 5, 3)


def test_content_errors(tmp_path):
    torch.save({"x": torch.zeros(2, 3)}, tmp_path / "a.pt")
    with pytest.raises(ValueError, match="expected 'x', 'y'"):
        load_dataset_file(str(tmp_path / "a.pt"))
    torch.save((torch.zeros(2, 3), torch.zeros(3)), tmp_path / "b.pt")
    with pytest.raises(ValueError, match="same first dimension"):
        load_dataset_file(str(tmp_path / "b.pt"))
    torch.save(torch.zeros(3), tmp_path / "c.pt")
    with pytest.raises(ValueError, match="holds a Tensor"):
        load_dataset_file(str(tmp_path / "c.pt"))
    with pytest.raises(FileNotFoundError, match="missing.pt does not exist"):
        load_dataset_file(str(tmp_path / "missing.pt"))


def test_test_split_defaults_to_validation_file(tmp_path):
    x, y = _xy(4)
    torch.save({"x": x, "y": y}, tmp_path / "val.pt")
    dm = TensorFileDataModule(tmp_path, batch_size=4)
    assert torch.equal(next(iter(dm.test_dataloader()))[0], x)


def test_testing_without_a_test_file_says_it_uses_the_validation_file(tmp_path):
    for name in ("train.pt", "val.pt"):
        torch.save({"x": torch.rand(4, 3, 2), "y": torch.arange(4) % 2}, tmp_path / name)
    with pytest.warns(UserWarning, match="testing runs on the validation file 'val.pt'"):
        TensorFileDataModule(tmp_path).test_dataloader()


def test_an_empty_dataset_file_is_an_error_naming_the_file(tmp_path):
    torch.save({"x": torch.zeros(0, 5, 3), "y": torch.zeros(0)}, tmp_path / "train.pt")
    torch.save({"x": torch.zeros(2, 5, 3), "y": torch.zeros(2)}, tmp_path / "val.pt")
    with pytest.raises(ValueError, match=rf"{tmp_path / 'train.pt'} holds an empty dataset \(0 samples\)"):
        TensorFileDataModule(str(tmp_path)).train_dataloader()
