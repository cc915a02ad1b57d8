"""Trials on several workers: Ray Train's TorchTrainer + RayDDPStrategy inside a Tune trial (CPU, 2 workers)."""

import os

import pytest
import torch
from ray import tune
from tbparse import SummaryReader

from nwave_lightning.hpo import HPOWrapper, train_one_trial

from ._toys import build_toy_acc, build_toy_data, build_toy_loss, build_toy_model


@pytest.mark.slow
def test_two_worker_ddp_trial(ray_local, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    hpo = HPOWrapper(
        model_builder=build_toy_model, dataset_builder=build_toy_data, train_fn=train_one_trial,
        loss_builders={"main": build_toy_loss}, metric_builders={"acc": build_toy_acc},
        metric="val_acc", mode="max", experiment_name="ddp", storage_path=str(tmp_path / "results"), verbose=0,
    )
    hpo.bind_model_param("run_marker", str(runs))
    hpo.bind_optimizer_param("lr", 0.05)
    hpo.bind_trainer_param("epochs", 2)
    hpo.bind_trainer_param("device", "cpu")
    hpo.set_resources(cpu=0.9, gpu=0, workers=2)  # 2 workers x 0.9 CPU + the trial's driver on 2 CPUs
    hpo.set_num_samples(1)
    results = hpo.run()
    assert not results.errors
    assert sorted(name.split("__")[0] for name in os.listdir(runs)) == ["rank0", "rank1"]  # both workers built it
    best = hpo.best_result()
    history = best.metrics_dataframe
    assert list(history["epoch"].dropna().astype(int))[:2] == [1, 2]  # every epoch reached Tune
    payload = torch.load(os.path.join(best.checkpoint.to_directory(), "best_model.pt"), weights_only=True)
    assert payload["best_selected_metric"] == pytest.approx(history["val_acc"].max())
    scalars = SummaryReader(os.path.join(best.path, "tensorboard")).scalars  # rank 0 logged
    assert sorted(scalars[scalars["tag"] == "val_acc"]["step"]) == [1, 2]
