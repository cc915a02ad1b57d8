"""Trials that train on several workers: Ray Train's ``TorchTrainer`` inside a Tune trial.

With ``HPOWrapper.set_resources(cpu=..., gpu=..., workers=N)`` (or ``workers: N``
in a tune YAML) each trial is a small driver that launches a ``TorchTrainer`` of
``N`` workers with ``cpu``/``gpu`` each. Every worker runs the same trial flow and
Lightning trains with ``RayDDPStrategy``; rank 0 writes the TensorBoard events
and ``best_model.pt``.

Each epoch's ``ray.train.report`` (metrics + checkpoint, persisted by Ray Train)
is forwarded by :class:`_ForwardReports` (a Ray Train ``UserCallback``) through a
queue to the trial driver, which reports it to Tune with the same checkpoint. So
Tune schedulers see every epoch as for a single-worker trial, and
``best_result().checkpoint`` holds ``best_model.pt``. A restarted trial resumes
from its Ray Train run, which is named after the trial id.

Placement groups: Ray Train reserves its workers' resources in a placement group
that lives as long as its creator (the Train controller) *and* the job that
started the experiment. When Tune stops a trial (ASHA at ``max_t``, a pause, a
failure), the trial actor is killed and its controller with it, before the
controller removes that group; the reservation then outlives the trial and every
later trial waits for CPUs that never free up (Ray Train's own
``PlacementGroupCleaner`` needs the dashboard's state API to notice, and
``include_dashboard=False`` clusters have none). So rank 0 records its group in
Ray's key-value store under the trial id, and :class:`ReleaseTrainResources`, a
Tune callback that ``run_experiment`` adds for multi-worker trials, removes it as
soon as Tune is done with the trial.

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
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import ray
import ray.train
import ray.tune

__all__ = ["DRIVER_RESOURCES", "ReleaseTrainResources", "release_placement_groups", "run_distributed_trial"]

#: Resources of the Tune trial itself when it only drives a Ray Train run
#: (Ray cannot place an actor without any resource request).
DRIVER_RESOURCES = {"cpu": 0.01, "gpu": 0.0}
log = logging.getLogger(__name__)
_POLL_S = 0.2
# Key prefix (in Ray's internal key-value store) of the placement groups a trial's Ray Train run reserved.
_PG_KEY = "nwave_lightning/train_pg/"
_PG_NAMESPACE = "nwave_lightning"


def _record_placement_group(trial_id: str | None) -> None:
    """On a Ray Train worker: remember this worker group's placement group under the Tune trial id."""
    from ray.experimental import internal_kv
    from ray.util.placement_group import get_current_placement_group

    group = get_current_placement_group()
    if trial_id and group is not None:
        internal_kv._internal_kv_put(f"{_PG_KEY}{trial_id}/{group.id.hex()}", b"1", namespace=_PG_NAMESPACE)


def release_placement_groups(trial_ids=None) -> list[str]:
    """Remove the placement groups recorded for ``trial_ids`` (a collection; None: every trial).

    Groups that Ray Train removed itself are only forgotten. Returns the ids of the removed groups.
    """
    from ray.experimental import internal_kv
    from ray.util.placement_group import PlacementGroup, placement_group_table, remove_placement_group

    if not internal_kv._internal_kv_initialized():
        return []
    wanted = None if trial_ids is None else set(trial_ids)
    removed = []
    for key in internal_kv._internal_kv_list(_PG_KEY, namespace=_PG_NAMESPACE):
        trial_id, _, group_hex = key.decode()[len(_PG_KEY):].partition("/")
        if wanted is not None and trial_id not in wanted:
            continue
        group = PlacementGroup(ray.PlacementGroupID(bytes.fromhex(group_hex)))
        try:
            if placement_group_table(group).get("state") not in (None, "REMOVED"):
                remove_placement_group(group)
                removed.append(group_hex)
                log.debug("released Ray Train placement group %s of trial %s", group_hex, trial_id)
        except Exception:  # already gone (or the cluster is shutting down): nothing left to free
            pass
        internal_kv._internal_kv_del(key, namespace=_PG_NAMESPACE)
    return removed


class ReleaseTrainResources(ray.tune.Callback):
    """Frees the Ray Train placement group of every trial Tune is done with (stopped, paused, failed).

    Runs in the experiment's driver, which outlives the trial actors.
    """

    #: Trial states in which no Ray Train run of the trial may hold resources.
    IDLE_STATES = ("PAUSED", "TERMINATED", "ERROR")
    _SWEEP_S = 1.0

    def __init__(self) -> None:
        self._last_sweep = 0.0

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        release_placement_groups([trial.trial_id])

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        release_placement_groups([trial.trial_id])

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        release_placement_groups([trial.trial_id])  # its next attempt reserves a new group

    def on_step_end(self, iteration, trials, **info) -> None:
        # Paused trials (HyperBand) get no callback of their own: sweep once a second.
        now = time.monotonic()
        if now - self._last_sweep >= self._SWEEP_S:
            self._last_sweep = now
            release_placement_groups([t.trial_id for t in trials if t.status in self.IDLE_STATES])

    def on_experiment_end(self, trials, **info) -> None:
        release_placement_groups([t.trial_id for t in trials])


class _ForwardReports(ray.train.UserCallback):
    """Runs in the Ray Train controller: hands rank 0's metrics and the checkpoint path to the trial driver."""

    def __init__(self, queue) -> None:
        self.queue = queue

    def after_report(self, run_context, metrics, checkpoint) -> None:
        self.queue.put((dict(metrics[0]), checkpoint.path if checkpoint is not None else None))


def _worker_loop(
    config: dict,
    *,
    spec,
    dataset_path: str | None,
    trial_dir: str,
    build_and_fit: Callable | None,
    trial_id: str | None = None,
) -> None:
    """What every Ray Train worker runs: the trial flow with DDP and ``ray.train.report``."""
    from .trial import enter_launch_dir

    if ray.train.get_context().get_world_rank() == 0:
        _record_placement_group(trial_id)
    enter_launch_dir(spec)
    checkpoint = ray.train.get_checkpoint()
    if build_and_fit is not None:  # `nwave tune` trials build from the CLI config instead
        build_and_fit(config, trial_dir=trial_dir, checkpoint=checkpoint, report_fn=ray.train.report, distributed=True)
        return
    from .trial import build_trial_context

    ctx = build_trial_context(
        config,
        spec,
        dataset_path,
        trial_dir=trial_dir,
        checkpoint=checkpoint,
        distributed=True,
        report_fn=ray.train.report,
    )
    spec.train_fn(ctx)


def run_distributed_trial(
    config: Mapping[str, Any],
    spec,
    dataset_path: str | None = None,
    *,
    build_and_fit: Callable | None = None,
) -> None:
    """Run one Tune trial as a ``TorchTrainer`` of ``spec.num_workers`` workers."""
    from ray.train.torch import TorchTrainer
    from ray.util.queue import Queue

    from .trial import current_trial_dir

    trial_dir = current_trial_dir(spec)
    trial_id = ray.tune.get_context().get_trial_id()
    per_worker = {"CPU": float(spec.resources_per_worker.get("cpu", 1) or 0)}
    gpu = float(spec.resources_per_worker.get("gpu", 0) or 0)
    if gpu > 0:
        per_worker["GPU"] = gpu
    reports = Queue(actor_options={"num_cpus": 0})
    trainer = TorchTrainer(
        functools.partial(
            _worker_loop,
            spec=spec,
            dataset_path=dataset_path,
            trial_dir=trial_dir,
            build_and_fit=build_and_fit,
            trial_id=trial_id,
        ),
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
