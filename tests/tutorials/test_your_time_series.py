"""The "bring your own time series" tutorial in its tiny mode: the data path, the SNN and the GRU baseline."""

import importlib.util
import json
import os

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "tutorials", "your_time_series.py")


def _tutorial():
    spec = importlib.util.spec_from_file_location("your_time_series", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sweeps_run_from_the_first_to_the_last_ink_column():
    from sklearn.datasets import load_digits

    sweeps, labels = _tutorial().digit_sweeps(50)
    images = load_digits().images[:50]
    for sweep, image in zip(sweeps, images):
        columns = [c for c in range(8) if image[:, c].sum() > 0]  # by hand, column by column
        first, last = columns[0], columns[-1]
        assert sweep.shape == (last - first + 1, 8)
        assert np.allclose(sweep, image[:, first : last + 1].T / 16.0)
    assert len({len(s) for s in sweeps}) > 1  # variable length: the padding mask is exercised


def test_gru_width_matches_the_parameter_budget():
    tutorial = _tutorial()
    hidden = tutorial.gru_hidden_for(9680, 8, 10)
    net = tutorial.GRUBaseline(8, hidden, 10)
    assert abs(sum(p.numel() for p in net.parameters()) - 9680) < 3 * (2 * hidden + 8)  # one width step away at most


@pytest.mark.slow
def test_tiny_run_records_float_chip_ready_and_baseline(tmp_path):
    results = _tutorial().run(["--tiny", "--figures", str(tmp_path / "figures"), "--runs", str(tmp_path / "runs")])
    assert results["splits"] == {"train": 180, "val": 60, "test": 60}  # 300 samples, 60 / 20 / 20 %
    for key in ("snn_best_val_chip_acc", "snn_val_acc_at_best_epoch", "snn_test_acc", "snn_test_chip_acc", "baseline_test_acc"):
        assert 0.0 <= results[key] <= 1.0, key
    assert abs(results["baseline_params"] - results["snn_params"]) < 0.1 * results["snn_params"]  # similar size
    assert results["baseline_best_val_acc"] > 0.3  # the GRU learns on the same arrays in 3 epochs (chance: 0.1)
    saved = json.loads((tmp_path / "figures" / "timeseries_results.json").read_text())
    assert saved == results
    for name in ("timeseries_input.png", "timeseries_curves.png"):
        assert (tmp_path / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
