"""Damaged checkpoints fail loudly everywhere they are read; `last` is the newest intact one."""

import os

import pytest
import torch

from nwave_lightning.checkpoints import CheckpointCorruptError, load_checkpoint, newest_checkpoint
from nwave_lightning.deploy import load_trained_net
from nwave_lightning.training import SNNModule


def _save(path, step=3, epoch=1):
    torch.save({"state_dict": {"net.w": torch.arange(2000.0)}, "global_step": step, "epoch": epoch, "hyper_parameters": {}}, path)
    return path


def _damage(path, how):
    data = open(path, "rb").read()
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "zero-byte":
        data = b""
    elif how == "garbled-tensor":  # bytes changed inside the tensor data: torch.load alone returns wrong weights
        middle = data.index(b"\x00\x00\x80\x3f") if b"\x00\x00\x80\x3f" in data else len(data) // 2
        data = data[:middle] + b"\xff" * 16 + data[middle + 16 :]
    elif how == "random":
        data = os.urandom(len(data))
    open(path, "wb").write(data)


KINDS = ["truncated", "zero-byte", "garbled-tensor", "random"]


@pytest.mark.parametrize("how", KINDS)
def test_every_kind_of_damage_is_named(tmp_path, how):
    path = _save(tmp_path / "last.ckpt")
    _damage(path, how)
    with pytest.raises(CheckpointCorruptError, match=rf"checkpoint {path} is truncated or corrupt \(.+\)"):
        load_checkpoint(path)


@pytest.mark.parametrize("how", KINDS)
def test_export_and_load_from_checkpoint_name_the_damage(tmp_path, how):
    path = _save(tmp_path / "last.ckpt")
    _damage(path, how)
    with pytest.raises(CheckpointCorruptError, match="is truncated or corrupt"):
        load_trained_net(torch.nn.Linear(2, 2), str(path))
    with pytest.raises(CheckpointCorruptError, match="is truncated or corrupt"):
        SNNModule.load_from_checkpoint(str(path))


def test_intact_files_load_as_torch_load_does(tmp_path):
    path = _save(tmp_path / "ok.ckpt")
    assert torch.equal(load_checkpoint(path)["state_dict"]["net.w"], torch.arange(2000.0))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_newest_checkpoint_is_the_most_trained_intact_one(tmp_path):
    _save(tmp_path / "epoch=2-step=30.ckpt", step=30, epoch=2)
    _save(tmp_path / "last.ckpt", step=20, epoch=1)  # a kill between the two writes: last.ckpt is behind
    _damage(_save(tmp_path / "epoch=3-step=40.ckpt", step=40, epoch=3), "truncated")
    open(tmp_path / ".last.tmp-1-ab.ckpt", "wb").close()  # a temporary file of an interrupted write
    info, damaged = newest_checkpoint([tmp_path])
    assert info.path == str(tmp_path / "epoch=2-step=30.ckpt") and info.global_step == 30
    assert [line.split(":")[0] for line in damaged] == [str(tmp_path / "epoch=3-step=40.ckpt")]
