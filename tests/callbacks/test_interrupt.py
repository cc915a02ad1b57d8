"""SIGTERM / Ctrl-C mid-epoch: last.ckpt saved, exit status 128+signal, resuming equals the uninterrupted run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nwave_lightning.checkpoints import load_checkpoint
from tests.cli._quickstart import QUICKSTART, TINY

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = ["--trainer.max_epochs=3", "--trainer.enable_checkpointing=true"]


def _nwave(cwd, *args, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)])}
    return subprocess.run(
        [sys.executable, "-m", "nwave_lightning", "fit", "--config", QUICKSTART, *TINY, *EPOCHS, *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )


def _kill_at(signal_name):
    # A real signal, sent by the process to itself at a fixed batch (epoch 2, batch 3 of 4) so the test is exact.
    return ["--trainer.callbacks+=_signal_at.SignalAt", "--trainer.callbacks.init_args.epoch=1",
            "--trainer.callbacks.init_args.batch=2", f"--trainer.callbacks.init_args.signal_name={signal_name}"]


def _last(root):
    return root / "runs" / "quickstart" / "version_0" / "checkpoints" / "last.ckpt"


@pytest.mark.slow
def test_sigterm_mid_epoch_saves_last_ckpt_exits_non_zero_and_resumes_exactly(tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    whole.mkdir(), cut.mkdir()
    killed = _nwave(cut, *_kill_at("SIGTERM"))
    assert killed.returncode == 143, killed.stderr[-3000:]
    assert "resume with: the same command plus --ckpt_path last" in killed.stderr
    saved = load_checkpoint(_last(cut))
    progress = saved["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]
    assert saved["epoch"] == 1 and progress["completed"] == 3  # mid-epoch: 3 of 4 batches of epoch 2

    resumed = _nwave(cut, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"--ckpt_path last -> {_last(cut)}" in resumed.stderr
    uninterrupted = _nwave(whole)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    a, b = load_checkpoint(_last(cut))["state_dict"], load_checkpoint(_last(whole))["state_dict"]
    assert a.keys() == b.keys()
    for key in b:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.slow
def test_ctrl_c_mid_epoch_saves_last_ckpt_and_exits_130(tmp_path):
    killed = _nwave(tmp_path, *_kill_at("SIGINT"))
    assert killed.returncode == 130, killed.stderr[-3000:]
    assert "Ctrl-C received; stopping after the current batch" in killed.stderr
    progress = load_checkpoint(_last(tmp_path))["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]
    assert progress["completed"] == 3
