"""What a trial reports to Ray Tune and how its results are read back.

:class:`TuneEpochReport` reports each epoch through ``ray.tune.report`` with the best model so far;
:func:`best_result` and :func:`best_epoch_metrics` are the one definition of a trial's "best";
:func:`describe_best` and :class:`TrialLines` put results on the console. The trial folder's files
and the rules behind them are described in ``docs/tune-results.md``.

Example:
    >>> chip_twin("val_acc"), chip_twin("val_chip_loss"), chip_twin("train_loss")
    ('val_chip_acc', 'val_loss', None)
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import re
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import ray.tune
import torch
from lightning.pytorch.callbacks import Checkpoint as _LightningCheckpoint
from ray.tune.progress_reporter import TrialProgressCallback
from ray.tune.result import AUTO_RESULT_KEYS

from ..callbacks.random_state import RandomStateCheckpoint
from ..chip_keys import CHIP_METRIC_HINT, chip_twin, is_chip_metric
from ..io import atomic_write

__all__ = [
    "BEST_MODEL_FILE",
    "OUTCOME_FILE",
    "TRIAL_STATE_FILE",
    "MetricNotReportedError",
    "TrialLines",
    "TuneEpochReport",
    "best_epoch_metrics",
    "best_result",
    "check_metric_reported",
    "chip_twin",
    "describe_best",
    "is_chip_metric",
    "scalar_metrics",
    "trial_dirname",
    "trial_outcome",
    "write_outcome",
]

BEST_MODEL_FILE = "best_model.pt"
TRIAL_STATE_FILE = "trial_state.ckpt"
#: How a trial ended, in its folder: ``ok``, ``error`` or ``non-finite: <reason>``; absent while it runs
#: or when it was killed (the report says ``incomplete``).
OUTCOME_FILE = "outcome.txt"
# Colour codes Ray puts around process names in error texts.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# A traceback's exception line: `ValueError: ...`, `mypkg.ContractError: ...`, `RayTaskError(RuntimeError): ...`.
_EXCEPTION_LINE = re.compile(r"^(?:[\w.]+\.)?\w*(?:Error|Exception|Interrupt|Exit)(?:\([\w.]+\))?(?::|$)")
# Keys Ray fills in itself; a metric under one of these names would be overwritten.
_RAY_RESERVED = {"done", "trial_id", "should_checkpoint", "experiment_tag", *AUTO_RESULT_KEYS}


class MetricNotReportedError(ValueError):
    """The selected metric is not among the keys a trial reports."""


def check_metric_reported(metric: str, reported: Mapping[str, Any]) -> None:
    """Raise :class:`MetricNotReportedError` listing ``reported``'s keys when ``metric`` is missing.

    >>> check_metric_reported("val_acc", {"val_acc": 0.5})
    >>> check_metric_reported("val_recal", {"val_recall": 0.5, "val_loss": 1.0})
    Traceback (most recent call last):
    ...
    nwave_lightning.hpo.results.MetricNotReportedError: selected metric 'val_recal' not reported; ...
    """
    if metric in reported:
        return
    keys = sorted(k for k in reported if k not in _RAY_RESERVED)
    close = [k for k in keys if k.endswith(metric.split("_", 1)[-1][:4])][:5]
    raise MetricNotReportedError(
        f"selected metric {metric!r} not reported; HPOWrapper(metric=...) must match one reported key exactly "
        f"(e.g. val_loss, val_<name> for each metric builder, val_chip_<name> for its chip-ready twin). "
        f"Reported keys: {keys}"
        + (f". Did you mean one of {close}?" if close else "")
        + (f". {CHIP_METRIC_HINT}." if is_chip_metric(metric) else "")
    )


def write_outcome(trial_dir: str, outcome: str) -> None:
    """Record how the trial in ``trial_dir`` ended (see :data:`OUTCOME_FILE`)."""
    atomic_write(os.path.join(trial_dir, OUTCOME_FILE), lambda tmp: pathlib.Path(tmp).write_text(outcome, "utf-8"))


def trial_outcome(trial_dir: str) -> str:
    """How the trial in ``trial_dir`` ended (see :data:`OUTCOME_FILE`); ``incomplete`` when it did not."""
    try:
        with open(os.path.join(trial_dir, OUTCOME_FILE), encoding="utf-8") as handle:
            return handle.read().strip() or "incomplete"
    except FileNotFoundError:
        return "incomplete"


def best_result(results, metric: str, mode: str, scope: str = "all"):
    """The best trial's ``ray.tune.Result``: the one definition of "best" that the summary, the report and
    ``HPOWrapper.best_result`` share.

    ``scope="all"``: each trial scores its best epoch (see :func:`best_epoch_metrics`); ``"last"``: its last
    epoch. Non-finite values never win; equal scores go to the first trial by folder name (the report's order too).

    Raises:
        MetricNotReportedError: no trial reported ``metric`` (the message lists what they did report and their errors).
    """
    if scope not in ("all", "last"):
        raise ValueError(f"scope={scope!r} must be 'all' (best epoch) or 'last' (last epoch)")
    scored = []
    for result in sorted(results, key=lambda r: os.path.basename(str(getattr(r, "path", "")))):
        try:
            value = best_epoch_metrics(result, metric, mode)[metric]
        except MetricNotReportedError:  # not reported, or never finite
            continue
        if scope == "last":
            value = float(result.metrics_dataframe[metric].iloc[-1])
        if math.isfinite(value):
            scored.append((value, result))
    if not scored:
        keys = sorted({k for r in results if r.metrics for k in r.metrics} - _RAY_RESERVED)
        errors = [str(r.error).strip().splitlines()[-1] for r in results if r.error is not None]
        if errors and len(errors) == len(results):
            raise MetricNotReportedError(
                f"every trial failed ({len(errors)}), so there is no best {metric!r}; their errors: {errors[:3]} "
                "(tracebacks: ResultGrid.errors, each trial's error.txt)"
            )
        raise MetricNotReportedError(
            f"selected metric {metric!r} not reported (finite) by any trial; reported keys: {keys}"
            + (f"; trial errors: {errors[:3]}" if errors else "")
        )
    pick = max if mode == "max" else min
    return pick(scored, key=lambda item: item[0])[1]


def scalar_metrics(values: Mapping[str, Any]) -> dict[str, float]:
    """Finite-or-not scalars of ``values`` as Python floats (tensors with one element too)."""
    out: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if key not in _RAY_RESERVED and isinstance(value, (int, float)):
            out[str(key)] = float(value)
    return out


def best_epoch_metrics(result, metric: str, mode: str) -> dict[str, float]:
    """What one trial reported at the epoch where ``metric`` was best (the epoch ``best_model.pt`` holds).

    Ties go to the first such epoch, as :class:`~nwave_lightning.callbacks.BestModelCheckpoint` keeps the
    first. ``result`` is a ``ray.tune.Result`` or a frame like its ``metrics_dataframe`` (one row per epoch);
    the returned dict holds that epoch's scalars, so ``chip_twin(metric)`` is there whenever the trial reported it.

    Raises:
        MetricNotReportedError: the trial never reported ``metric`` (the message lists what it did report).
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode={mode!r} must be 'min' or 'max'")
    frame = getattr(result, "metrics_dataframe", result)
    columns = list(getattr(frame, "columns", []))
    if metric not in columns:
        keys = sorted(c for c in columns if c not in _RAY_RESERVED)
        raise MetricNotReportedError(f"selected metric {metric!r} not reported by this trial; reported keys: {keys}")
    values = [float(v) for v in frame[metric]]
    finite = [i for i, v in enumerate(values) if math.isfinite(v)]
    if not finite:
        raise MetricNotReportedError(f"selected metric {metric!r}: this trial reported no finite value ({values})")
    best = (max if mode == "max" else min)(finite, key=lambda i: values[i])  # the first of equal epochs
    row = frame.iloc[best]
    out = scalar_metrics(row)
    epoch = next((c for c in ("epoch", "training_iteration") if c in columns), None)
    if epoch is not None:
        out["epoch"] = float(row[epoch])
    return out


def describe_best(metrics: Mapping[str, float], metric: str, trial: str | None = None) -> str:
    """One line: the best value of ``metric`` and, at the same epoch, its float or chip-ready twin.

    >>> describe_best({"val_chip_acc": 0.96875, "val_acc": 0.984375, "epoch": 12.0}, "val_chip_acc", "trial_1")
    "Best val_chip_acc: 0.9688 at epoch 12 (trial trial_1); the float network's val_acc at that epoch: 0.9844"
    >>> describe_best({"val_acc": 0.9, "epoch": 3.0}, "val_acc")
    'Best val_acc: 0.9 at epoch 3; its chip-ready twin val_chip_acc was not reported (SNNModule logs val_chip_* ...)'
    """
    text = f"Best {metric}: {_fmt(metrics.get(metric))}"
    if "epoch" in metrics:
        text += f" at epoch {int(metrics['epoch'])}"
    if trial:
        text += f" (trial {trial})"
    twin = chip_twin(metric)
    if twin is None:
        return text
    if twin in metrics:
        what = "the float network's" if is_chip_metric(metric) else "the chip-ready (to_chip(net))"
        return f"{text}; {what} {twin} at that epoch: {_fmt(metrics[twin])}"
    if is_chip_metric(metric):
        return f"{text}; its float twin {twin} was not reported"
    return f"{text}; its chip-ready twin {twin} was not reported ({CHIP_METRIC_HINT})"


def _fmt(value) -> str:
    return "n/a" if value is None else f"{float(value):.4g}"


class TuneEpochReport(_LightningCheckpoint):
    """Report each epoch's scalars to Ray Tune with the best model so far.

    A Lightning ``Checkpoint`` callback, so Lightning runs it after the other callbacks
    (``best_selected_metric`` is logged by then).

    Args:
        metric: The selected metric; its absence fails the trial with the reported keys.
        best_model_path: Where ``BestModelCheckpoint`` writes ``best_model.pt``.
        save_trainer_state: Also store the full trainer state for resume (``trial_state.ckpt``).
        checkpoint_every_epoch: Attach a checkpoint to every report (needed for exact
            resume and for schedulers that pause trials); False attaches one only on
            epochs where ``best_model.pt`` changed.
        report_fn: What sends ``(metrics, checkpoint)``; defaults to ``ray.tune.report``
            (``ray.train.report`` on Ray Train workers).
    """

    def __init__(
        self,
        metric: str,
        best_model_path: str,
        *,
        save_trainer_state: bool = True,
        checkpoint_every_epoch: bool = True,
        report_fn=None,
    ) -> None:
        self.metric = metric
        self.best_model_path = best_model_path
        self.save_trainer_state = save_trainer_state
        self.checkpoint_every_epoch = checkpoint_every_epoch
        self.report_fn = report_fn or ray.tune.report
        self.best_stamp: tuple | None = None

    def _best_changed(self) -> bool:
        try:
            stat = os.stat(self.best_model_path)
        except FileNotFoundError:
            return False
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        changed, self.best_stamp = stamp != self.best_stamp, stamp
        return changed

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        report = scalar_metrics(trainer.callback_metrics)
        report.setdefault("epoch", float(trainer.current_epoch + 1))
        check_metric_reported(self.metric, report)
        if not (self._best_changed() or self.checkpoint_every_epoch):
            self.report_fn(report)
            return
        with tempfile.TemporaryDirectory(prefix="nwave_tune_ckpt_") as directory:
            if self.save_trainer_state:  # on every rank: a collective under DDP (rank 0 writes the file)
                trainer.save_checkpoint(os.path.join(directory, TRIAL_STATE_FILE), weights_only=False)
            if trainer.is_global_zero and os.path.exists(self.best_model_path):
                shutil.copy2(self.best_model_path, os.path.join(directory, BEST_MODEL_FILE))
            has_files = trainer.is_global_zero and any(os.scandir(directory))
            self.report_fn(report, checkpoint=ray.tune.Checkpoint.from_directory(directory) if has_files else None)

    def state_dict(self) -> dict[str, Any]:
        return {"metric": self.metric}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_stamp = None  # the best-model file comes back with the checkpoint itself
        if "rng" in state_dict:  # a trial checkpointed before RandomStateCheckpoint kept the random streams here
            RandomStateCheckpoint().load_state_dict(state_dict["rng"])


def trial_dirname(trial) -> str:
    """Folder name (and console name) of a trial, from a Tune ``Trial`` or a trial id: ``trial_<id>``.

    >>> trial_dirname("3f2a1_00004")
    'trial_3f2a1_00004'
    """
    return f"trial_{trial if isinstance(trial, str) else trial.trial_id}"


class TrialLines(TrialProgressCallback):
    """One console line per finished trial, covering a resumed trial's earlier sessions too.

    Ray Tune's trial progress callback: in its place, Ray adds none of its own.

    >>> rows = [{"val_acc": 0.5, "epoch": 1.0}, {"val_acc": 0.75, "epoch": 2.0}]
    >>> TrialLines("val_acc", "max").line("trial_1", "TERMINATED", rows, 3, 8)
    '[3/8] trial_1 TERMINATED after 2 epochs: best val_acc 0.75 at epoch 2'
    """

    def __init__(self, metric: str, mode: str, total: int = 0, experiment_dir: str | None = None) -> None:
        super().__init__(metric=metric)
        self.metric, self.mode, self.total, self.experiment_dir = metric, mode, total, experiment_dir
        self.history: dict[str, list[dict]] = {}
        self.finished = 0

    def get_state(self) -> dict:
        # Ray keeps it with the experiment's state: a resumed experiment counts on from the trials already done.
        return {"finished": self.finished}

    def set_state(self, state: dict) -> None:
        self.finished = int(state.get("finished", 0))

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self.history.setdefault(trial.trial_id, []).append({k: v for k, v in result.items() if isinstance(v, (int, float))})

    def rows(self, trial) -> list[dict]:
        """The trial's reported epochs in order, each with its ``epoch`` (an epoch reported again after a
        resume: the later row; a ``train_fn`` that reports no epoch: its reports, numbered from 1)."""
        seen = self.history.get(trial.trial_id, [])
        by_epoch = {row["epoch"]: row for row in [*self._logged(trial), *seen] if "epoch" in row}
        if not by_epoch:
            return [{"epoch": i, **row} for i, row in enumerate(seen, start=1)]
        return [by_epoch[epoch] for epoch in sorted(by_epoch)]

    def _logged(self, trial) -> list[dict]:
        # Earlier sessions' epochs: Ray's result.json (its JSON logger may still buffer this session's newest).
        if not self.experiment_dir:
            return []
        try:
            with open(os.path.join(self.experiment_dir, trial_dirname(trial), "result.json"), encoding="utf-8") as handle:
                lines = handle.readlines()
        except OSError:
            return []
        rows = []
        for line in lines:
            try:
                rows.append(json.loads(line))
            except ValueError:  # a line the logger is still writing
                continue
        return rows

    def line(self, name: str, status: str, rows: list[dict], done: int, total: int, why: str | None = None) -> str:
        """``[done/total] name status after N epochs: best <metric> ...[; why]`` for ``rows`` (see :meth:`rows`)."""
        text = f"[{done}/{total}] {name} {status} after {int(rows[-1]['epoch']) if rows else 0} epochs"
        scored = [row for row in rows if self.metric in row]
        if not scored:
            return f"{text}: {why or f'{self.metric} not reported'}"
        best = (max if self.mode == "max" else min)(scored, key=lambda row: row[self.metric])
        text += f": best {self.metric} {_fmt(best[self.metric])} at epoch {int(best['epoch'])}"
        twin = chip_twin(self.metric)
        text += f" ({twin} {_fmt(best[twin])})" if twin in best else ""
        return f"{text}; {why}" if why else text

    def _finish(self, trials, trial, status: str, why: str | None = None) -> None:
        self.finished += 1
        total = max(len(trials), self.total)
        print(self.line(trial_dirname(trial), status, self.rows(trial), self.finished, total, why), flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        outcome = trial_outcome(os.path.join(self.experiment_dir, trial_dirname(trial))) if self.experiment_dir else ""
        if outcome.startswith("non-finite"):  # the trial stopped itself (NonFiniteError) and wrote why
            self._finish(trials, trial, "STOPPED", outcome)
        else:
            self._finish(trials, trial, "TERMINATED")

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        print(f"{trial_dirname(trial)} failed, retrying it: {_last_error(trial)}", flush=True)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._finish(trials, trial, "ERROR", _last_error(trial))


def _last_error(trial) -> str:
    """The first exception line of a failed trial's latest error (the root cause of a chain), and where its
    traceback is."""
    try:
        with open(trial.error_file, encoding="utf-8") as handle:
            latest = handle.read().rsplit("Failure # ", 1)[-1]  # Ray appends a block per failure
    except (AttributeError, OSError, TypeError):  # no error file (yet)
        latest = ""
    lines = (_ANSI.sub("", line).rstrip() for line in latest.splitlines())
    text = next((line for line in lines if _EXCEPTION_LINE.match(line)), "its error is in ResultGrid.errors")
    text = text if len(text) <= 300 else text[:297] + "..."
    path = getattr(trial, "path", None)  # the trial folder in storage, where Ray copies error.txt
    return f"{text} (traceback: {path}/error.txt)" if path else text
