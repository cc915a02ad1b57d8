"""`nwave fit` on 2 CPU processes (DDP, gloo): logged metrics equal a single-process evaluation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")
# 16 validation samples = 2 ranks x 1 batch of 8: DistributedSampler pads nothing.
TINY = [
    "--data.init_args.n_train=32",
    "--data.init_args.n_val=16",
    "--data.init_args.n_steps=30",
    "--data.init_args.word_length=10",
    "--data.init_args.batch_size=8",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.log_every_n_steps=1",
    "--trainer.max_epochs=2",
]


def _scalars(log_dir):
    from tbparse import SummaryReader

    frame = SummaryReader(str(log_dir)).scalars
    out = {}
    for tag, step, value in zip(frame["tag"], frame["step"], frame["value"]):
        out.setdefault(tag, {})[int(step)] = float(value)
    return out


@pytest.mark.slow
def test_two_process_cpu_ddp_fit_logs_rank_reduced_metrics(tmp_path):
    command = [
        sys.executable, "-m", "nwave_lightning", "fit", "--config", QUICKSTART, *TINY,
        "--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp",
        f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}",
        "--trainer.callbacks+=nwave_lightning.callbacks.NWaveEarlyStopping",
        "--trainer.callbacks.init_args.policy=threshold",
        "--trainer.callbacks.init_args.metric=epoch",
        "--trainer.callbacks.init_args.mode=max",
        "--trainer.callbacks.init_args.value=1.0",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log_dir = tmp_path / "runs" / "quickstart" / "version_0"
    assert "TensorBoard logs:" in result.stdout and str(log_dir) in result.stdout
    scalars = _scalars(log_dir)
    # The threshold stop on `epoch >= 1` triggers after epoch 1 on both ranks together: one epoch ran.
    assert scalars["epoch"] == {1: 1.0} and scalars["early_stop_triggered"] == {1: 1.0}

    # Independent single-process evaluation of the saved weights on the whole validation split.
    from nwave_lightning.data import KeywordSpottingDataModule
    from nwave_lightning.training import SNNModule

    module = SNNModule.load_from_checkpoint(log_dir / "checkpoints" / "last.ckpt", map_location="cpu")
    module.eval()
    data = KeywordSpottingDataModule(n_train=32, n_val=16, n_steps=30, word_length=10, batch_size=8, seed=0)
    x, y = data.dataset("val").tensors
    with torch.no_grad():
        spikes, membranes = module.net(x)
        loss = module.loss(spk_out=spikes[-1], y=y, spikes_list=spikes, membranes_list=membranes, model=module.net)
    votes = spikes[-1].sum(dim=1).reshape(16, 2, -1).sum(dim=2)
    assert scalars["val_loss"][1] == pytest.approx(loss.total.item(), rel=1e-5)
    assert scalars["val_acc"][1] == pytest.approx((votes.argmax(dim=1) == y).float().mean().item(), abs=1e-6)
    for i, spk in enumerate(spikes):
        assert scalars[f"val/layer_{i}/firing_rate"][1] == pytest.approx(spk.mean().item(), rel=1e-5)
        assert scalars[f"val/layer_{i}/dead_neurons"][1] == int((spk.sum(dim=(0, 1)) == 0).sum())
