"""The experiment engine behind both front doors (``HPOWrapper`` and ``nwave tune``).

:func:`run_experiment` connects to Ray, applies the memory guard, builds the trial scheduler and
search algorithm, runs (or restores) Ray Tune's ``Tuner`` and logs every failed trial with its error.
What it sets up and why: ``docs/tune-engine.md`` ("The engine").

Example:
    >>> settings = ExperimentSettings(metric="val_acc", mode="max", experiment_name="demo", storage_path="/tmp/runs")
    >>> experiment_path(settings), settings.resources
    ('/tmp/runs/demo', {'cpu': 1.0, 'gpu': 0.0})
    >>> ExperimentSettings(metric="val_acc", mode="best", experiment_name="demo")
    Traceback (most recent call last):
    ...
    ValueError: mode='best' must be 'min' or 'max'
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
from pathlib import Path
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import ray
import yaml
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.schedulers import TrialScheduler

from ..ckpt_args import leaves
from ..console import quiet_third_party
from ..io import atomic_write
from .distributed import DRIVER_RESOURCES, ReleaseTrainResources
from .memory_guard import MemoryGuard, Recommendation, resolve_concurrency
from .results import TrialLines, trial_dirname, trial_outcome, write_outcome
from .schedulers import build_search_alg, build_tune_scheduler, grid_sizes
from .trial import TrialSpec

__all__ = [
    "LAUNCH_SETTINGS", "ExperimentInterrupted", "ExperimentSettings", "TrialOutcome", "check_same_experiment",
    "choose_experiment", "connect_ray", "experiment_path", "is_remote", "run_experiment", "save_launch_settings",
    "trial_count", "trial_spec",
]

log = logging.getLogger(__name__)


@dataclass
class ExperimentSettings:
    """Experiment-level settings (the ``set_*`` calls of ``HPOWrapper``, the ``tune:`` YAML block)."""

    metric: str
    mode: str
    experiment_name: str
    storage_path: str | None = None
    num_samples: int = 1
    max_concurrent_trials: int | None = None
    resources: dict = field(default_factory=lambda: {"cpu": 1.0, "gpu": 0.0})
    num_workers: int = 1
    tune_scheduler: Any = None
    search_alg: Any = None
    memory_guard: MemoryGuard = field(default_factory=MemoryGuard)
    max_failures: int = 0
    address: str | None = None
    verbose: int = 1

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode={self.mode!r} must be 'min' or 'max'")
        if not isinstance(self.metric, str) or not self.metric:
            raise ValueError(f"metric={self.metric!r} must name a reported key, e.g. 'val_loss' or 'val_acc'")
        if not self.experiment_name or os.sep in str(self.experiment_name):
            raise ValueError(f"experiment_name={self.experiment_name!r} must be a non-empty folder name")

    def problems(self) -> list[str]:
        """What is wrong with the numbers of the experiment (checked with every other problem before launch).

        >>> settings = ExperimentSettings("val_acc", "max", "demo", num_samples=0, max_failures=-1)
        >>> settings.problems()  # doctest: +NORMALIZE_WHITESPACE
        ['num_samples=0 must be >= 1 (configurations to sample)',
         'max_failures=-1 must be >= 0 (retries of a failing trial)']
        """
        out = []
        if int(self.num_samples) < 1:
            out.append(f"num_samples={self.num_samples} must be >= 1 (configurations to sample)")
        if self.max_concurrent_trials is not None and int(self.max_concurrent_trials) < 1:
            out.append(
                f"max_concurrent_trials={self.max_concurrent_trials} must be >= 1, or unset for the memory guard's choice"
            )
        if int(self.num_workers) < 1:
            out.append(f"workers={self.num_workers} must be >= 1 (Ray Train workers per trial)")
        for name, value in self.resources.items():
            if float(value or 0) < 0:
                out.append(f"{name}={value} must be >= 0 (per trial, or per worker)")
        if int(self.max_failures) < 0:
            out.append(f"max_failures={self.max_failures} must be >= 0 (retries of a failing trial)")
        return out

    @property
    def storage(self) -> str:
        """Absolute storage folder (``./ray_results`` by default, as in the vendor SDK's TensorBoard hint)."""
        path = self.storage_path or os.path.join(os.getcwd(), "ray_results")
        return path if is_remote(path) else os.path.abspath(os.path.expanduser(path))


def is_remote(path: str) -> bool:
    """Whether ``path`` is remote storage (``s3://``, ``gs://``, ...): nothing can be written there directly."""
    return "://" in str(path)


def experiment_path(settings: ExperimentSettings) -> str:
    """Folder of the experiment: ``<storage>/<experiment_name>``."""
    return os.path.join(settings.storage, settings.experiment_name)


def trial_spec(build_and_fit: Callable, settings: ExperimentSettings) -> TrialSpec:
    """What every trial of the experiment gets besides its sampled config: how to build and fit it, the
    experiment folder (None on remote storage), its workers and their resources, and the launch folder."""
    path = experiment_path(settings)
    return TrialSpec(
        build_and_fit=build_and_fit,
        experiment_dir=None if is_remote(path) else path,
        num_workers=settings.num_workers,
        resources_per_worker=dict(settings.resources),
        launch_dir=os.getcwd(),
    )


def connect_ray(address: str | None = None) -> None:
    """Use the running Ray session, join the cluster at ``address``, or start a local one."""
    if ray.is_initialized():
        if address and address != "auto":
            current = ray.get_runtime_context().gcs_address
            if current != address:
                raise ValueError(
                    f"address={address!r}: this process is already connected to Ray at {current!r}; "
                    "call ray.shutdown() first or drop address="
                )
        return
    quiet_third_party()
    # Trial processes' output reaches this console only on a terminal: Ray prefixes it with colour codes.
    # WARNING: no "Started a local Ray instance" line; the experiment prints its own.
    ray.init(address=address, include_dashboard=False, log_to_driver=sys.stdout.isatty(), logging_level=logging.WARNING)


def _check_cluster_has(settings: ExperimentSettings, cluster: Mapping[str, float]) -> None:
    for name, key in (("cpu", "CPU"), ("gpu", "GPU")):
        per_worker = settings.resources.get(name, 0)
        need = float(per_worker) * settings.num_workers
        if need > float(cluster.get(key, 0)) + 1e-9:
            raise ValueError(
                f"set_resources({name}={per_worker}) x {settings.num_workers} worker(s) needs "
                f"{need:g} {key} per trial but the Ray cluster has {cluster.get(key, 0):g}; trials would wait "
                f"forever. Lower set_resources({name}=...) (e.g. gpu=0 on a CPU machine) or add nodes."
            )


_RAY_ENV = {
    # Ray adds CSV, JSON and TensorBoard loggers unless this is set; we pass CSV/JSON ourselves
    # so that the experiment's TensorBoard events are the trials' own (the vendor SDK's keys, one copy).
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    # Keeping one checkpoint per trial forces an experiment-state snapshot at each report; on
    # local storage that costs milliseconds, so Ray's "may become a bottleneck" warning is noise.
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
}
# At verbose <= 1 the console gets the engine's own lines (TrialLines: a trial's error in one line, its traceback in
# the trial's error.txt). Ray's output engine prints its configuration box, a line per trial error and the
# error's traceback (once per try) even at verbose 0; its legacy engine at verbose 0 prints nothing.
_QUIET_RAY_ENV = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_PRINT_ALL_TRIAL_ERRORS": "0"}


class ExperimentInterrupted(Exception):
    """Ctrl-C (SIGINT, or SIGUSR1) stopped the experiment; Ray saved its state, and ``results`` holds what ran."""

    def __init__(self, path: str, results) -> None:
        super().__init__(path)
        self.path, self.results = path, results


class _DriverLines(logging.Filter):
    """Ray Tune's end-of-run lines in the experiment's driver: notes an interruption, drops what the engine says itself.

    Ray logs "Experiment has been interrupted ... Resume experiment with: Tuner.restore(...)" (the engine says how
    to resume its own way) and "Trials did not complete: [...]" (failures get one line each from
    :func:`run_experiment`; interrupted trials are listed as incomplete in the report).
    """

    def __init__(self) -> None:
        super().__init__()
        self.interrupted = False

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith("Experiment has been interrupted"):
            self.interrupted = True
            return False
        return not message.startswith("Trials did not complete")


@contextlib.contextmanager
def _tune_driver(verbose: int):
    """This process as Ray Tune's driver: ``_RAY_ENV`` set, and the end-of-run lines filtered (yields the filter)."""
    env = {**_RAY_ENV, **(_QUIET_RAY_ENV if verbose <= 1 else {})}
    previous = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    lines = _DriverLines()
    tune_logger = logging.getLogger("ray.tune.tune")
    tune_logger.addFilter(lines)
    try:
        yield lines
    finally:
        tune_logger.removeFilter(lines)
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def trial_count(param_space: Mapping[str, Any], num_samples: int) -> int:
    """Trials an experiment runs: ``num_samples`` times the size of every grid.

    >>> trial_count({"a": {"grid_search": [1, 2, 3]}, "b": {"grid_search": [0, 1]}, "c": 5}, 2)
    12
    """
    return int(num_samples) * math.prod(grid_sizes(param_space))


#: The settings an experiment was launched with, in its folder: a resumed experiment is checked against them.
LAUNCH_SETTINGS = "tune_config.yaml"
# Settings a rerun may change without changing the experiment: how it is resumed and reported, where Ray runs.
# Not ``verbose``: Ray resumes with the launched console settings (its verbosity and TrialLines, or none).
_RESUME_FREE_KEYS = {"resume", "report", "address", "storage_path", "experiment_name"}


def save_launch_settings(settings: ExperimentSettings, launched: Mapping[str, Any] | str) -> None:
    """Keep a new experiment's settings (a mapping or its YAML) in its folder (not on remote storage)."""
    path = experiment_path(settings)
    if not is_remote(path):
        text = launched if isinstance(launched, str) else yaml.safe_dump(dict(launched), sort_keys=False)
        atomic_write(os.path.join(path, LAUNCH_SETTINGS), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _differs(before: Any, after: Any) -> bool:
    # repr as well: a NaN (alone or in a list) never equals itself, yet it is the same setting.
    return before != after and repr(before) != repr(after)


def check_same_experiment(experiment_dir: str, launched: Mapping[str, Any] | str, *, start_new: str) -> None:
    """Before resuming: the experiment in ``experiment_dir`` must have been launched with the same settings.

    Ray resumes an experiment with the settings it was launched with and ignores new ones, so a changed
    search space or setting is refused here, listed. ``launched`` holds this launch's settings (a mapping or its
    YAML; ``search_space`` entries are compared whole). Not compared: keys on one side only (arguments an upgrade
    added or removed), and how it is resumed, reported and where it runs.

    Raises:
        ValueError: listing each setting that differs (old -> new), and the two ways on (``start_new``: how to
            start a new experiment instead).
    """
    stored = os.path.join(experiment_dir, LAUNCH_SETTINGS)
    if not os.path.isfile(stored) or not tune.Tuner.can_restore(experiment_dir):
        return
    before = yaml.safe_load(Path(stored).read_text(encoding="utf-8")) or {}
    after = yaml.safe_load(launched) if isinstance(launched, str) else dict(launched)
    spaces = before.pop("search_space", None) or {}, after.pop("search_space", None) or {}
    before, after = dict(leaves(before)), dict(leaves(after))
    changed = [f"{key}: {before[key]!r} -> {after[key]!r}" for key in sorted(before.keys() & after.keys())
               if _differs(before[key], after[key]) and key.split(".")[0] not in _RESUME_FREE_KEYS]
    changed += [f"search_space[{key!r}]: {spaces[0].get(key, '(none)')!r} -> {spaces[1].get(key, '(none)')!r}"
                for key in sorted({*spaces[0], *spaces[1]}) if _differs(spaces[0].get(key), spaces[1].get(key))]
    if changed:
        lines = "".join(f"\n  {line}" for line in changed[:12])
        more = f"\n  ... and {len(changed) - 12} more" if len(changed) > 12 else ""
        raise ValueError(
            f"{experiment_dir} holds an experiment launched with other settings, which resuming would keep "
            f"(ignoring these):{lines}{more}\nRun it as launched (its settings: {stored}) to continue it, or "
            f"{start_new} to start a new experiment beside it."
        )


def choose_experiment(settings: ExperimentSettings, resume: bool | str, *, start_new: str = "pass resume=False") -> bool:
    """Whether to restore ``<storage>/<experiment_name>``; a new experiment never lands in a used folder.

    ``resume="auto"`` restores an experiment found there; ``True`` restores it (error when
    there is none); ``False`` starts a new one, in ``<experiment_name>_2`` (``_3``...)
    when the folder holds one already (``settings.experiment_name`` is updated and a line
    says so). ``start_new`` says how the front door starts a new one instead. Returns True when restoring.
    """
    if resume not in (True, False, "auto"):
        raise ValueError(f"resume={resume!r} must be true, false or 'auto'")
    path = experiment_path(settings)
    restorable = tune.Tuner.can_restore(path)
    if resume is True and not restorable:
        raise ValueError(f"resume=true but {path!r} holds no experiment to restore; run with resume=false or 'auto'")
    if restorable and resume:
        print(f"Resuming the experiment in {path} (finished trials are kept); to start a new one instead, {start_new}",
              flush=True)
        return True
    if restorable:
        base, n = settings.experiment_name, 2
        while tune.Tuner.can_restore(os.path.join(settings.storage, f"{base}_{n}")):
            n += 1
        settings.experiment_name = f"{base}_{n}"
        print(f"{path} holds an experiment; starting a new one in {experiment_path(settings)}", flush=True)
    return False


class TrialOutcome(tune.Callback):
    """Notes how each trial ended in its folder (``outcome.txt``): the report tells finished trials from killed ones."""

    def __init__(self, experiment_dir: str) -> None:
        self.experiment_dir = experiment_dir

    def _write(self, trial, outcome: str) -> None:
        folder = os.path.join(self.experiment_dir, trial_dirname(trial))
        if os.path.isdir(folder):
            write_outcome(folder, outcome)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        if trial_outcome(os.path.join(self.experiment_dir, trial_dirname(trial))).startswith("non-finite"):
            return  # the trial stopped itself and wrote why
        self._write(trial, "ok")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._write(trial, "error")


def run_experiment(
    trainable: Callable,
    param_space: Mapping[str, Any],
    settings: ExperimentSettings,
    *,
    dataset_path: str | None = None,
    data_cfg: Mapping[str, Any] | None = None,
    max_t: float | None = None,
    restore: bool = False,
    callbacks: list | None = None,
    model_bytes: int = 0,
) -> tuple[Any, Recommendation | None]:
    """Run (or resume) one experiment and return ``(ResultGrid, memory-guard recommendation)``.

    Args:
        trainable: Function trainable ``fn(config)`` (parameters already bound).
        param_space: Flat dotted config with Ray Tune domains.
        settings: Experiment settings.
        dataset_path / data_cfg: Hints for the memory guard.
        max_t: Longest trial in epochs (ASHA / HyperBand stop trials there).
        restore: Continue the experiment in ``<storage>/<experiment_name>`` (decided by :func:`choose_experiment`).
        callbacks: Extra Ray Tune callbacks.
        model_bytes: Memory of one trial's model at its batch size (the dry run's), for the memory guard.

    Raises:
        ExperimentInterrupted: Ctrl-C stopped it (its state is saved for ``restore``).
    """
    connect_ray(settings.address)
    cluster = ray.cluster_resources()
    _check_cluster_has(settings, cluster)
    workers = settings.num_workers
    total = trial_count(param_space, settings.num_samples)
    concurrency, recommendation = resolve_concurrency(
        settings.memory_guard,
        settings.max_concurrent_trials,
        dataset_path=dataset_path,
        data_cfg=data_cfg,
        num_samples=total,
        resources={name: float(value or 0) * workers for name, value in settings.resources.items()},
        cluster=cluster,
        model_bytes=model_bytes,
    )
    scheduler = settings.tune_scheduler
    if not isinstance(scheduler, TrialScheduler):
        scheduler = build_tune_scheduler(scheduler, max_t=max_t)
    search_alg = settings.search_alg
    if search_alg is None or isinstance(search_alg, (str, Mapping)):
        search_alg = build_search_alg(search_alg, param_space=param_space)
    # A scheduler or search algorithm built with its own metric: Ray refuses a second one in TuneConfig.
    own_metric = any(getattr(part, "metric", None) is not None for part in (scheduler, search_alg))
    tune_config = tune.TuneConfig(
        metric=None if own_metric else settings.metric,
        mode=None if own_metric else settings.mode,
        num_samples=settings.num_samples,
        max_concurrent_trials=concurrency,
        scheduler=scheduler,
        search_alg=search_alg,
        trial_dirname_creator=trial_dirname,
        reuse_actors=True,  # a fresh trial process imports torch + Lightning again (seconds)
    )
    path = experiment_path(settings)
    remote = is_remote(path)
    run_callbacks = [CSVLoggerCallback(), JsonLoggerCallback()]
    if workers > 1 and not remote:
        run_callbacks.append(ReleaseTrainResources(path))
    if settings.verbose == 1:
        run_callbacks.append(TrialLines(settings.metric, settings.mode, total, None if remote else path))
    if not remote:
        run_callbacks.append(TrialOutcome(path))
    run_config = tune.RunConfig(
        name=settings.experiment_name,
        storage_path=settings.storage,
        failure_config=tune.FailureConfig(max_failures=int(settings.max_failures)),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        sync_config=tune.SyncConfig(sync_artifacts=remote),
        callbacks=run_callbacks + list(callbacks or []),
        # At verbose <= 1 the console gets one line per finished trial (TrialLines) instead of Ray's tables.
        verbose=settings.verbose if settings.verbose > 1 else 0,
    )
    # A multi-worker trial only drives its Ray Train run; the workers request the resources.
    trainable = tune.with_resources(trainable, dict(DRIVER_RESOURCES if workers > 1 else settings.resources))
    if not remote:
        os.makedirs(path, exist_ok=True)
    with _tune_driver(settings.verbose) as lines:
        if restore:
            tuner = tune.Tuner.restore(
                path, trainable, resume_unfinished=True, resume_errored=True, param_space=dict(param_space)
            )
        else:
            tuner = tune.Tuner(trainable, param_space=dict(param_space), tune_config=tune_config, run_config=run_config)
        results = tuner.fit()
    for result in results if settings.verbose != 1 else []:  # at verbose 1, TrialLines said it
        if result.error is not None:
            error = str(result.error).strip().splitlines() or [repr(result.error)]
            log.warning("trial %s failed: %s (details: ResultGrid.errors / the trial's error.txt)",
                        os.path.basename(result.path), error[-1])
    # Ray's own line says it was interrupted; trials neither finished nor failed say it too (the line may not
    # reach the filter: a logger configured away, Ray Client).
    if lines.interrupted or results.num_terminated + results.num_errors < len(results):
        raise ExperimentInterrupted(path, results)
    return results, recommendation
