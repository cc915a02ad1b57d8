"""RandomStateCheckpoint: the streams survive a weights-only checkpoint and come back exactly."""

import random

import numpy as np
import torch

from nwave_lightning.callbacks import RandomStateCheckpoint


def _draws():
    return torch.rand(4).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(2)], np.random.randn()


def test_every_stream_comes_back_through_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    _draws()  # streams somewhere in their course, not at a seed (NumPy's cached Gaussian included)
    np.random.randn()
    torch.save({"callbacks": {"RandomStateCheckpoint": RandomStateCheckpoint().state_dict()}}, tmp_path / "ckpt")
    expected = _draws()
    torch.manual_seed(0), np.random.seed(0), random.seed(0)  # a resumed process seeds afresh
    state = torch.load(tmp_path / "ckpt", weights_only=True)["callbacks"]["RandomStateCheckpoint"]
    RandomStateCheckpoint().load_state_dict(state)
    assert _draws() == expected
