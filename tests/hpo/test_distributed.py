"""Trials on several workers: Ray Train's TorchTrainer + RayDDPStrategy inside a Tune trial (CPU, 2 workers)."""

import os
import time

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
    # ASHA stopped the trial at max_t, killing its Ray Train controller: the workers' placement
    # group must not outlive it, or every later trial on this cluster waits for CPUs forever.
    assert free_cpus_settle(ray_local) == ray_local.cluster_resources()["CPU"]
    assert not [pg for pg in ray_local.util.placement_group_table().values() if pg["state"] != "REMOVED"]


def free_cpus_settle(ray, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and ray.available_resources().get("CPU", 0) < ray.cluster_resources()["CPU"]:
        time.sleep(0.2)
    return ray.available_resources().get("CPU", 0)


def test_release_frees_only_the_finished_trials_groups(ray_local, tmp_path):
    from ray.util.placement_group import placement_group, placement_group_table

    from nwave_lightning.hpo.distributed import _PG_DIR, ReleaseTrainResources

    class FakeTrial:
        def __init__(self, trial_id, status):
            self.trial_id, self.status = trial_id, status

    groups = {}
    for trial_id in ("done1", "running1"):
        groups[trial_id] = placement_group([{"CPU": 0.5}])
        ray_local.get(groups[trial_id].ready(), timeout=30)
        # what rank 0 of a trial's Ray Train run notes in its trial folder
        (tmp_path / f"trial_{trial_id}" / _PG_DIR).mkdir(parents=True)
        (tmp_path / f"trial_{trial_id}" / _PG_DIR / groups[trial_id].id.hex()).touch()
    done, running = FakeTrial("done1", "TERMINATED"), FakeTrial("running1", "RUNNING")
    callback = ReleaseTrainResources(str(tmp_path))
    callback.on_step_end(iteration=1, trials=[done, running])  # the periodic sweep: idle trials only
    assert placement_group_table(groups["done1"])["state"] == "REMOVED"
    assert placement_group_table(groups["running1"])["state"] == "CREATED"
    callback.on_trial_complete(iteration=2, trials=[done, running], trial=running)
    assert placement_group_table(groups["running1"])["state"] == "REMOVED"
    assert not list(tmp_path.glob(f"trial_*/{_PG_DIR}/*"))


def test_a_group_that_cannot_be_released_is_warned_once_and_kept_for_the_next_sweep(ray_local, tmp_path, monkeypatch, caplog):
    import importlib

    from ray.util.placement_group import placement_group

    placement_groups = importlib.import_module("ray.util.placement_group")  # the module (ray.util's attribute is the function)

    from nwave_lightning.hpo.distributed import _PG_DIR, release_placement_groups

    group = placement_group([{"CPU": 0.5}])
    ray_local.get(group.ready(), timeout=30)
    note = tmp_path / "trial_x" / _PG_DIR / group.id.hex()
    note.parent.mkdir(parents=True)
    note.touch()

    def refuse(_group):
        raise RuntimeError("GCS unreachable")

    monkeypatch.setattr(placement_groups, "remove_placement_group", refuse)
    with caplog.at_level("WARNING", logger="nwave_lightning.hpo.distributed"):
        assert release_placement_groups([tmp_path / "trial_x"]) == []
        assert release_placement_groups([tmp_path / "trial_x"]) == []
    warned = [r.getMessage() for r in caplog.records if "could not release" in r.getMessage()]
    assert len(warned) == 1 and group.id.hex() in warned[0] and "GCS unreachable" in warned[0]
    assert note.exists()  # kept: the next sweep tries again
    monkeypatch.undo()
    assert release_placement_groups([tmp_path / "trial_x"]) == [group.id.hex()] and not note.exists()


_HARD_EXIT_PROCESS = """
import os, sys
import coverage
if sys.argv[1] == "measured":
    cov = coverage.Coverage(data_file=sys.argv[2], config_file=False, include=["*/hpo/distributed.py"])
    cov.start()
from nwave_lightning.hpo import distributed
distributed.current_trial_dir(None)
print(distributed.save_measured_coverage(), flush=True)
os._exit(0)  # as Ray ends its worker processes: no exit handler runs
"""


@pytest.mark.parametrize("measured", [True, False])
def test_a_process_ended_without_exit_handlers_keeps_its_coverage(tmp_path, measured):
    """What a trial process or Ray Train worker ran reaches the coverage report although Ray skips exit handlers."""
    import subprocess
    import sys

    import coverage

    data_file = tmp_path / "cov.data"
    # a clean environment: no coverage started by the suite's own measurement (CI's `coverage run`)
    env = {key: value for key, value in os.environ.items() if not key.startswith("COVERAGE")}
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", _HARD_EXIT_PROCESS, "measured" if measured else "plain", str(data_file)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(measured)
    if not measured:
        assert not data_file.exists()
        return
    data = coverage.CoverageData(str(data_file))
    data.read()
    [measured_file] = [name for name in data.measured_files() if name.endswith(os.path.join("hpo", "distributed.py"))]
    import inspect

    from nwave_lightning.hpo import distributed

    first_line = inspect.getsourcelines(distributed.current_trial_dir)[1]
    assert any(first_line < line < first_line + 8 for line in data.lines(measured_file))  # the body of current_trial_dir ran


def _validate_in_one_process(config_path, params, trial_state, indices=None):
    """val_loss / val_acc of a trial's saved weights on the validation set (or the rows ``indices``), one process."""
    import lightning.pytorch as pl
    import yaml
    from torch.utils.data import DataLoader, Subset

    from nwave_lightning.cli import main
    from nwave_lightning.hpo.space import apply_overrides

    with open(config_path) as handle:
        config = yaml.safe_load(handle)
    config = {key: config[key] for key in ("seed_everything", "model", "data", "trainer")}
    config["trainer"].update(logger=False, enable_checkpointing=False)
    cli = main(args=apply_overrides(config, params), run=False)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False)
    if indices is None:
        [scores] = trainer.validate(cli.model, datamodule=cli.datamodule, ckpt_path=trial_state, verbose=False)
    else:
        cli.datamodule.setup("fit")
        rows = Subset(cli.datamodule.val_dataloader().dataset, indices)
        [scores] = trainer.validate(cli.model, DataLoader(rows, batch_size=len(indices)), ckpt_path=trial_state, verbose=False)
    return scores


@pytest.mark.slow
def test_nwave_tune_with_two_workers_reports_the_metric_over_both_ranks_data(ray_local, tmp_path):
    """`nwave tune` with workers: 2 trains each trial as a 2-rank gloo DDP job (Ray Train); the reported
    validation values are those of the trial's weights on the whole validation set, not rank 0's half."""
    import json

    import yaml

    from nwave_lightning.cli import main

    config_path = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "tune_keyword_spotting.yaml")
    with open(config_path) as handle:
        config = yaml.safe_load(handle)
    config["model"]["init_args"]["net"]["init_args"].update(hidden=[8], taus=0.04)
    # fluct_init makes the readout fire from the first epoch: a silent readout scores the same on any rows
    config["model"]["init_args"]["fluct_init"] = {"xi_target": 2.0, "alpha": 0.85, "n_batches": 1}
    # 16 validation rows: 8 per rank, one batch each (no padding by the distributed sampler)
    config["data"]["init_args"].update(n_train=32, n_val=16, n_test=16, n_steps=20, word_length=8, batch_size=8)
    config["trainer"]["max_epochs"] = 2
    config.update(
        search_space={"model.init_args.lr": {"choice": [0.02]}}, metric="val_loss", mode="min", num_samples=1,
        scheduler="fifo", workers=2, cpu=0.9, max_concurrent_trials=1,
        storage_path=str(tmp_path / "ray_results"), experiment_name="kws2",
    )
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(config))
    main(["tune", "--config", str(path), "--report", "false"])

    experiment = tmp_path / "ray_results" / "kws2"
    [trial] = [p for p in experiment.iterdir() if p.name.startswith("trial_")]
    with open(trial / "result.json") as handle:
        reports = [json.loads(line) for line in handle if line.strip()]
    assert [r["epoch"] for r in reports] == [1.0, 2.0]
    last_checkpoint = sorted(p for p in trial.iterdir() if p.name.startswith("checkpoint_"))[-1]
    state = str(last_checkpoint / "trial_state.ckpt")
    with open(trial / "params.json") as handle:
        params = json.load(handle)
    whole = _validate_in_one_process(str(path), params, state)
    assert reports[-1]["val_loss"] == pytest.approx(whole["val_loss"], rel=1e-5)
    assert reports[-1]["val_acc"] == pytest.approx(whole["val_acc"], abs=1e-6)
    # the check can fail: rank 0's rows alone (DistributedSampler: every second row) score differently
    rank0 = _validate_in_one_process(str(path), params, state, indices=list(range(0, 16, 2)))
    assert rank0["val_loss"] != pytest.approx(whole["val_loss"], rel=1e-5)
