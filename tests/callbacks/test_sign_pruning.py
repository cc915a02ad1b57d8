"""SignPruning: free signs, then the minority sign of each row block shrunk to zero."""

from __future__ import annotations

import dataclasses

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from nwave_lightning.callbacks import SignPruning
from nwave_lightning.callbacks.sign_pruning import shrink_minority_signs
from nwave_lightning.hardware import H1V2
from nwave_lightning.layers.walk import dense_weights

from ._tiny import TinyModule, TinyNet, loaders, make_trainer, scalars

CHIP2 = dataclasses.replace(H1V2, sign_block=2)  # blocks of two rows make the constraint non-trivial


def _numpy_shrink(w: np.ndarray, block: int, q: float) -> np.ndarray:
    """Independent reference: block sums by reshaping, sign (+ for zero), minority scaled by 1 - q."""
    n = w.shape[0]
    pad = (-n) % block
    padded = np.concatenate([w, np.zeros((pad, w.shape[1]), w.dtype)])
    sums = padded.reshape(-1, block * w.shape[1]).sum(axis=1)
    signs = np.repeat(np.where(sums < 0, -1.0, 1.0), block)[:n, None]
    return np.where(signs * w < 0, w * (1.0 - q), w)


def test_shrink_schedule_by_hand():
    cb = SignPruning(start_fraction=0.2, end_fraction=0.6, max_shrink=0.1)
    got = [cb.shrink_at(p) for p in (0.0, 0.19, 0.4, 0.5, 0.6, 1.0)]
    assert got == pytest.approx([0.0, 0.0, 0.05, 0.075, 1.0, 1.0])
    with pytest.raises(ValueError, match="start_fraction=0.7, end_fraction=0.5"):
        SignPruning(start_fraction=0.7, end_fraction=0.5)
    with pytest.raises(ValueError, match="max_shrink=0"):
        SignPruning(max_shrink=0)
    with pytest.raises(ValueError, match="unknown key"):
        SignPruning.from_config({"max_shrnk": 0.1})
    assert SignPruning.from_config({"max_shrink": 0.5}).max_shrink == 0.5


@pytest.mark.parametrize("q", [0.0, 0.3, 1.0])
def test_shrink_minority_signs_matches_a_numpy_reference(q):
    torch.manual_seed(0)
    net = TinyNet(chip=CHIP2)
    with torch.no_grad():
        for entry in dense_weights(net):
            getattr(entry.module, entry.attr).copy_(torch.randn_like(getattr(entry.module, entry.attr)))
    before = {f"{e.module_name}.{e.attr}": getattr(e.module, e.attr).detach().numpy().copy() for e in dense_weights(net)}
    assert shrink_minority_signs(net, q) == 3  # s1.weight, l1.recurrent_weights, s2.weight
    for entry in dense_weights(net):
        key = f"{entry.module_name}.{entry.attr}"
        expected = _numpy_shrink(before[key], 2, q)
        np.testing.assert_allclose(getattr(entry.module, entry.attr).detach().numpy(), expected, rtol=1e-6, atol=0)
        if q == 1.0:  # projected: every block single-signed
            w = expected.reshape(-1, 2 * expected.shape[1]) if expected.shape[0] % 2 == 0 else None
            if w is not None:
                assert ((w >= 0).all(axis=1) | (w <= 0).all(axis=1)).all()
    with pytest.raises(ValueError, match="shrink=1.5"):
        shrink_minority_signs(net, 1.5)


def test_fit_ends_single_signed_and_free_before_the_start(tmp_path):
    torch.manual_seed(1)
    module = TinyModule(lr=0.05, chip=CHIP2)
    train, val = loaders()
    # 4 epochs of 2 batches: free for 1 epoch (progress < 0.25), shrinking until 0.75, projected after.
    cb = SignPruning(start_fraction=0.25, end_fraction=0.75, max_shrink=0.5)
    seen = []

    class Record(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            seen.append(cb.shrink)

    make_trainer(tmp_path, max_epochs=4, callbacks=[cb, Record()]).fit(module, train, val)
    # Shrink after the last batch of each epoch: progress 0.25, 0.5, 0.75, 1.0.
    assert seen == pytest.approx([0.0, 0.25, 1.0, 1.0])
    for entry in dense_weights(module.net):
        w = getattr(entry.module, entry.attr).detach().numpy()
        np.testing.assert_array_equal(w, _numpy_shrink(w, 2, 1.0))  # nothing left to prune
    logged = scalars(module.trainer.logger.log_dir)
    assert "sign_pruning/shrink" in logged and "sign_topology/s1/weight_coherence_pct" in logged
    assert logged["sign_topology/s1/weight_coherence_pct"][-1][1] == pytest.approx(100.0)
