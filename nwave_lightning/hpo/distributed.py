"""Trials that train on several workers: Ray Train's ``TorchTrainer`` inside a Tune trial.

With ``workers: N`` (``HPOWrapper.set_resources(..., workers=N)``) each trial is a small driver that
runs a ``TorchTrainer`` of ``N`` workers (Lightning's ``RayDDPStrategy``; rank 0 writes the TensorBoard
events and ``best_model.pt``) and reports every epoch to Tune with its checkpoint. How reports reach
Tune, why the placement groups of stopped trials are released here, and why processes save their coverage
data themselves: ``docs/tune-engine.md`` ("Trials on several workers").

Example:
    >>> import queue
    >>> reports = queue.Queue()
    >>> _ForwardReports(reports).after_report(None, [{"val_acc": 0.75}, {"val_acc": 0.75}], checkpoint=None)
    >>> reports.get_nowait()   # rank 0's metrics and the (absent) checkpoint path
    ({'val_acc': 0.75}, None)
"""

from __future__ import annotations

import functools
import logging
import os
import queue as queue_lib
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import ray
import ray.train
import ray.tune

from ..console import quiet_trial_process
from .results import trial_dirname

__all__ = [
    "DRIVER_RESOURCES",
    "ReleaseTrainResources",
    "current_trial_dir",
    "enter_launch_dir",
    "release_placement_groups",
    "run_distributed_trial",
    "save_measured_coverage",
]

#: Resources of the Tune trial itself when it only drives a Ray Train run
#: (Ray cannot place an actor without any resource request).
DRIVER_RESOURCES = {"cpu": 0.01, "gpu": 0.0}
log = logging.getLogger(__name__)
_POLL_S = 0.2
# The scratch folder Ray started this trial in (artifacts there sync to remote storage).
_RAY_WORKING_DIR: str | None = None
# Folder (inside the trial folder) where rank 0 notes its Ray Train placement group.
_PG_DIR = "ray_train_placement_groups"
# Placement groups whose removal failed (warned once each).
_UNRELEASED: set[str] = set()


def enter_launch_dir(launch_dir: str | None) -> None:
    """Run the trial from the folder the experiment was launched in, so relative paths mean the same.

    (Ray starts trials in a scratch folder of their own; on a node without the launch
    folder the trial stays there.)
    """
    global _RAY_WORKING_DIR
    _RAY_WORKING_DIR = os.getcwd()
    if launch_dir and os.path.isdir(launch_dir):
        os.chdir(launch_dir)


def current_trial_dir(experiment_dir: str | None) -> str:
    """The running Tune trial's folder in the experiment (shared storage), else Ray's working dir."""
    if experiment_dir and os.path.isdir(experiment_dir):
        path = os.path.join(experiment_dir, trial_dirname(ray.tune.get_context().get_trial_id()))
        os.makedirs(path, exist_ok=True)
        return path
    return _RAY_WORKING_DIR or os.getcwd()  # synced to storage by SyncConfig(sync_artifacts=True)


def save_measured_coverage() -> bool:
    """Save the coverage data of this process if ``coverage`` measures it; returns whether it did.

    Called when a trial's or a Ray Train worker's work ends: Ray exits its worker
    processes without the exit handlers through which coverage saves by itself.

    Example:
        >>> import coverage
        >>> saved = save_measured_coverage()   # True only under `coverage run`
        >>> saved == (coverage.Coverage.current() is not None)
        True
    """
    if "coverage" not in sys.modules:  # never imported: this process is not measured
        return False
    import coverage

    measuring = coverage.Coverage.current()
    if measuring is None:
        return False
    measuring.save()
    return True


def _record_placement_group(trial_dir: str) -> None:
    """On rank 0 of a Ray Train run: note this worker group's placement group in the trial folder."""
    from ray.util.placement_group import get_current_placement_group

    group = get_current_placement_group()
    if group is not None:
        os.makedirs(os.path.join(trial_dir, _PG_DIR), exist_ok=True)
        open(os.path.join(trial_dir, _PG_DIR, group.id.hex()), "w").close()


def release_placement_groups(trial_dirs) -> list[str]:
    """Remove the placement groups noted in ``trial_dirs`` (those Ray Train removed itself are only forgotten).

    A group whose removal fails is warned about once and its note kept, so the next sweep tries again.
    Returns the ids of the removed groups.
    """
    from ray.util.placement_group import PlacementGroup, placement_group_table, remove_placement_group

    removed = []
    for trial_dir in trial_dirs:
        folder = os.path.join(trial_dir, _PG_DIR)
        for group_hex in os.listdir(folder) if os.path.isdir(folder) else []:
            group = PlacementGroup(ray.PlacementGroupID(bytes.fromhex(group_hex)))
            try:
                if placement_group_table(group).get("state") not in (None, "REMOVED"):
                    remove_placement_group(group)
                    removed.append(group_hex)
                    log.debug("released Ray Train placement group %s of %s", group_hex, trial_dir)
            except Exception as err:  # the note stays: the next sweep tries again (and warns no more)
                if group_hex not in _UNRELEASED:
                    _UNRELEASED.add(group_hex)
                    log.warning("could not release Ray Train placement group %s of %s (%s); trials may wait for its "
                                "resources until Ray ends", group_hex, trial_dir, err)
                continue
            os.remove(os.path.join(folder, group_hex))
    return removed


class ReleaseTrainResources(ray.tune.Callback):
    """Frees the Ray Train placement group of every trial Tune is done with (stopped, paused, failed).

    Runs in the experiment's driver, which outlives the trial actors.
    """

    #: Trial states in which no Ray Train run of the trial may hold resources.
    IDLE_STATES = ("PAUSED", "TERMINATED", "ERROR")
    _SWEEP_S = 1.0

    def __init__(self, experiment_dir: str) -> None:
        self.experiment_dir = experiment_dir
        self.last_sweep = 0.0

    def _release(self, trials) -> None:
        release_placement_groups([os.path.join(self.experiment_dir, trial_dirname(t)) for t in trials])

    def _release_trial(self, iteration, trials, trial, **info) -> None:
        self._release([trial])

    # A recovered trial's next attempt reserves a new group.
    on_trial_complete = on_trial_error = on_trial_recover = _release_trial

    def on_step_end(self, iteration, trials, **info) -> None:
        # Paused trials (HyperBand) get no callback of their own: sweep once a second.
        now = time.monotonic()
        if now - self.last_sweep >= self._SWEEP_S:
            self.last_sweep = now
            self._release([t for t in trials if t.status in self.IDLE_STATES])

    def on_experiment_end(self, trials, **info) -> None:
        self._release(trials)


class _ForwardReports(ray.train.UserCallback):
    """Runs in the Ray Train controller: hands rank 0's metrics and the checkpoint path to the trial driver."""

    def __init__(self, queue) -> None:
        self.queue = queue

    def after_report(self, run_context, metrics, checkpoint) -> None:
        self.queue.put((dict(metrics[0]), checkpoint.path if checkpoint is not None else None))


def _worker_loop(config: dict, *, spec, trial_dir: str, trial_run) -> None:
    """What every Ray Train worker runs: the trial's ``build_and_fit`` with DDP and ``ray.train.report``."""
    quiet_trial_process()
    try:
        if ray.train.get_context().get_world_rank() == 0:
            _record_placement_group(trial_dir)
        enter_launch_dir(spec.launch_dir)
        spec.build_and_fit(config, trial_run(trial_dir, ray.train.get_checkpoint(), ray.train.report, distributed=True))
    finally:
        save_measured_coverage()


def run_distributed_trial(config: Mapping[str, Any], spec, trial_run) -> None:
    """Run one Tune trial (a ``hpo.trial.TrialSpec``) as a ``TorchTrainer`` of ``spec.num_workers`` workers.

    Each worker calls ``spec.build_and_fit(config, trial_run(trial_dir, checkpoint, ray.train.report, distributed=True))``
    (``trial_run`` is ``hpo.trial.TrialRun``, passed in so that this module does not import the trial module).
    """
    from ray.train.torch import TorchTrainer
    from ray.util.queue import Queue

    trial_dir = current_trial_dir(spec.experiment_dir)
    trial_id = ray.tune.get_context().get_trial_id()
    per_worker = {"CPU": float(spec.resources_per_worker.get("cpu", 1) or 0)}
    gpu = float(spec.resources_per_worker.get("gpu", 0) or 0)
    if gpu > 0:
        per_worker["GPU"] = gpu
    reports = Queue(actor_options={"num_cpus": 0})
    trainer = TorchTrainer(
        functools.partial(_worker_loop, spec=spec, trial_dir=trial_dir, trial_run=trial_run),
        train_loop_config=dict(config),
        scaling_config=ray.train.ScalingConfig(
            num_workers=spec.num_workers, use_gpu=gpu > 0, resources_per_worker=per_worker
        ),
        run_config=ray.train.RunConfig(
            # Same name on a restart: Ray Train then resumes from the run's latest checkpoint.
            name=f"train_{trial_id}",
            storage_path=os.path.join(trial_dir, "ray_train"),
            callbacks=[_ForwardReports(reports)],
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
        ),
    )
    outcome: dict[str, BaseException] = {}

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as err:  # re-raised in the trial's own thread below
            outcome["error"] = err

    thread = threading.Thread(target=fit, name="nwave-ray-train-driver", daemon=True)
    thread.start()
    while thread.is_alive() or not reports.empty():
        try:
            metrics, path = reports.get(timeout=_POLL_S)
        except queue_lib.Empty:
            continue
        ray.tune.report(metrics, checkpoint=ray.tune.Checkpoint(path) if path else None)
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
