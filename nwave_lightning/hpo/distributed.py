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
"""

from __future__ import annotations

import functools
import os
import queue as queue_lib
import threading
from collections.abc import Callable, Mapping
from typing import Any

import ray.train
import ray.tune

__all__ = ["DRIVER_RESOURCES", "run_distributed_trial"]

#: Resources of the Tune trial itself when it only drives a Ray Train run
#: (Ray cannot place an actor without any resource request).
DRIVER_RESOURCES = {"cpu": 0.01, "gpu": 0.0}
_POLL_S = 0.2


class _ForwardReports(ray.train.UserCallback):
    """Runs in the Ray Train controller: hands rank 0's metrics and the checkpoint path to the trial driver."""

    def __init__(self, queue) -> None:
        self.queue = queue

    def after_report(self, run_context, metrics, checkpoint) -> None:
        self.queue.put((dict(metrics[0]), checkpoint.path if checkpoint is not None else None))


def _worker_loop(config: dict, *, spec, dataset_path: str | None, trial_dir: str, build_and_fit: Callable | None) -> None:
    """What every Ray Train worker runs: the trial flow with DDP and ``ray.train.report``."""
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
    per_worker = {"CPU": float(spec.resources_per_worker.get("cpu", 1) or 0)}
    gpu = float(spec.resources_per_worker.get("gpu", 0) or 0)
    if gpu > 0:
        per_worker["GPU"] = gpu
    reports = Queue(actor_options={"num_cpus": 0})
    trainer = TorchTrainer(
        functools.partial(
            _worker_loop, spec=spec, dataset_path=dataset_path, trial_dir=trial_dir, build_and_fit=build_and_fit
        ),
        train_loop_config=dict(config),
        scaling_config=ray.train.ScalingConfig(
            num_workers=spec.num_workers, use_gpu=gpu > 0, resources_per_worker=per_worker
        ),
        run_config=ray.train.RunConfig(
            # Same name on a restart: Ray Train then resumes from the run's latest checkpoint.
            name=f"train_{ray.tune.get_context().get_trial_id()}",
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
