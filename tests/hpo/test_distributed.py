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
