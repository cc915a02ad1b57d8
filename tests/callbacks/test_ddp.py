"""The callbacks under 2-process CPU DDP (gloo): same decisions, same weights, one best file."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_ranks_agree(tmp_path):
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    proc = subprocess.run(
        [sys.executable, "-m", "tests.callbacks._ddp_run", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=280,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [torch.load(tmp_path / f"rank{i}.pt", weights_only=True) for i in range(2)]
    for result in ranks:
        # rank 1 alone reached the threshold at epoch 3; the reduced decision stopped both there
        assert (result["stopped_epoch"], result["current_epoch"]) == (3, 3)
        # rank 0's metric is broadcast: both ranks hold its best value
        assert result["best_score"] == pytest.approx(0.3)
        assert (result["alpha"], result["surrogate"]) == (pytest.approx(3.0), pytest.approx(10.0))
    for key, value in ranks[0]["state_dict"].items():
        assert torch.equal(ranks[1]["state_dict"][key], value), key  # sign logits synced by DDP like any parameter
    assert ranks[0]["best_model_path"] == ranks[1]["best_model_path"]
    payload = torch.load(ranks[0]["best_model_path"], weights_only=True)
    assert payload["epoch"] == 3 and payload["best_selected_metric"] == pytest.approx(0.3)
    assert any(k.endswith("sign_logits") for k in payload["state_dict"])
