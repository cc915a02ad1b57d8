"""The HPO tutorial end to end at toy sizes: it must keep running as the library changes."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "tutorials", "hpo_keyword_spotting.py")


def _tutorial():
    spec = importlib.util.spec_from_file_location("hpo_keyword_spotting", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_script_runs_the_template_and_writes_its_report(tmp_path):
    figures = tmp_path / "figures"
    command = [sys.executable, SCRIPT, "--num-samples", "2", "--epochs", "2", "--n-train", "64", "--n-steps", "40",
               "--no-ablation", "--data", str(tmp_path / "data"), "--storage", str(tmp_path / "ray_results"),
               "--figures", str(figures)]
    # A script's sys.path starts at its own folder: point it (and its Ray workers) at this checkout's package.
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, TUNE_DISABLE_AUTO_CALLBACK_LOGGERS="1", RAY_DEDUP_LOGS="1", PYTHONPATH=path)
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "restored best epoch:" in done.stdout
    summary = json.loads((figures / "results.json").read_text())
    assert summary["num_samples"] == 2 and summary["epochs"] == 2
    assert 0.0 <= summary["best_val_recall"] <= 1.0
    # every float value it records has its chip-ready twin (the same metric on to_chip(net))
    for key in ("best_epoch_val_chip_recall", "best_epoch_val_acc", "best_epoch_val_chip_acc",
                "best_trial_last_val_chip_acc", "highest_last_val_chip_acc_of_any_trial"):
        assert 0.0 <= summary[key] <= 1.0, key
    assert summary["best_model_chip_violations"] == []  # to_chip of the restored best weights is chip-legal
    assert "chip-legal" in done.stdout and "val_chip_recall at that epoch" in done.stdout
    assert summary["best_trial"] in (figures / "report.md").read_text()
    for name in ("learning_curves.png", "best_trial_activity.png", "metric_vs_params.png", "parallel_coordinates.png"):
        assert (figures / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_loss_term_ablation_trains_every_variant(tmp_path, monkeypatch):
    import torch
    from torch.nn.utils import parametrize

    import nwave_lightning.training
    from nwave_lightning.layers.walk import dense_weights

    built = []  # every SNNModule the ablation makes, with its net's weights as handed over

    class Spy(nwave_lightning.training.SNNModule):
        def __init__(self, net, *args, **kwargs):
            super().__init__(net, *args, **kwargs)
            built.append((self, [getattr(e.module, e.attr).detach().clone() for e in dense_weights(net)]))

    monkeypatch.setattr(nwave_lightning.training, "SNNModule", Spy)  # the tutorial imports it inside the function
    tutorial = _tutorial()
    dataset = tutorial.write_dataset(str(tmp_path / "data"), n_train=48, n_steps=30, seed=0)
    figure = tmp_path / "ablation.png"
    curves = tutorial.loss_term_ablation(dataset, epochs=1, path=str(figure))
    assert list(curves) == list(tutorial.ABLATION)
    assert len(built) == len(tutorial.ABLATION)
    initial = {}
    for (name, spec), (module, weights) in zip(tutorial.ABLATION.items(), built):
        init_name, use_fluct, loss_weights, anneal_signs = spec
        # The variant's own loss weights, sign switch and init reached the module it trained ...
        assert [term.weight for term in module.loss.loss_terms] == list(loss_weights), name
        signs = [parametrize.is_parametrized(e.module, e.attr) for e in dense_weights(module.net)]
        assert signs and all(s == anneal_signs for s in signs), name
        same_init = initial.setdefault((init_name, use_fluct), weights)
        assert all(torch.equal(a, b) for a, b in zip(same_init, weights)), f"{name}: seed 0 gives one init per spec"
        # ... which trained a whole epoch, and the curve is what it logged.
        assert module.trainer.global_step > 0 and module.trainer.current_epoch == 1, name
        accuracy = curves[name]
        assert set(accuracy) == {"val_acc", "val_chip_acc"}  # the float accuracy and its chip-ready twin
        for key, values in accuracy.items():
            assert len(values) == 1 and 0.0 <= values[0] <= 1.0
            assert values[-1] == pytest.approx(float(module.trainer.callback_metrics[key])), (name, key)
    chip_init, fluct_init = initial[(None, False)], initial[("xavier_uniform", True)]
    assert not all(torch.equal(a, b) for a, b in zip(chip_init, fluct_init)), "the two inits gave the same weights"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
