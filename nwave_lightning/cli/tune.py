"""``nwave tune``: a fit config plus a search space, run through the HPO engine.

The config format, the checks before launch, resuming and what the command writes are described in
``docs/tune-cli.md``. Ray is imported inside the functions that run it: ``nwave fit`` imports this
module too (for the subcommand's options) and must not load Ray.

Example:
    >>> sorted(TUNE_SKIPPED_ARGS), FIT_KEYS
    (['datamodule', 'model'], ('seed_everything', 'trainer', 'model', 'data'))
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shlex
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from lightning.pytorch.cli import SaveConfigCallback

from ..chip_keys import chip_twin, is_chip_metric
from ..io import atomic_write
from ..run import build_from_config

__all__ = ["BEST_CONFIG", "FIT_KEYS", "TUNE_SKIPPED_ARGS", "tune"]

#: Sections of a tune config that make up each trial's fit config.
FIT_KEYS = ("seed_everything", "trainer", "model", "data")
# How a rerun starts a new experiment instead of resuming one.
_START_NEW = "pass --resume false"
#: Arguments of :func:`tune` that LightningCLI fills itself (not command-line options).
TUNE_SKIPPED_ARGS = {"model", "datamodule"}
#: The best trial's fit config, in the experiment's folder (written at the end).
BEST_CONFIG = "best_config.yaml"


def tune(
    self,
    model,
    datamodule=None,
    search_space: Optional[dict] = None,
    metric: str = "val_loss",
    mode: str = "min",
    num_samples: int = 1,
    scheduler: Union[str, dict, None] = "asha",
    search_alg: Union[str, dict, None] = "random",
    cpu: float = 1.0,
    gpu: float = 0.0,
    workers: int = 1,
    max_concurrent_trials: Optional[int] = None,
    memory_guard: Optional[dict] = None,
    storage_path: Optional[str] = None,
    experiment_name: str = "nwave_tune",
    max_failures: int = 0,
    address: Optional[str] = None,
    resume: Union[bool, Literal["auto"]] = "auto",  # another value is refused when the command line is parsed
    report: bool = True,
):
    """Tune hyper-parameters of a fit config with Ray Tune (see ``docs/tune-cli.md``).

    Args:
        search_space: Dotted paths into the fit config -> domain (``{choice: [...]}``,
            ``{uniform: [lo, hi]}``, ``{loguniform: [lo, hi]}``, ``{randint: [lo, hi]}``, ``{grid: [...]}``).
        metric: Reported key to optimise (``val_loss``, ``val_<metric>``, or their chip-ready twins
            ``val_chip_loss`` / ``val_chip_<metric>``: the same on ``to_chip(net)``). The summary
            prints the best value with its twin at the same epoch.
        mode: ``min`` or ``max``.
        num_samples: Sampled configurations (grid points are each run that many times).
        scheduler: Trial scheduler: ``asha``, ``hyperband``, ``median``, ``fifo``/``none`` or ``{name: ..., ...}``.
        search_alg: ``random``, ``optuna``, ``hyperopt`` or ``{name: ..., seed: ...}``.
        cpu: CPUs per trial (per worker when ``workers > 1``).
        gpu: GPUs per trial/worker; fractions share a device.
        workers: Ray Train workers per trial (DDP with ``RayDDPStrategy``).
        max_concurrent_trials: Trials at once; unset, the memory guard picks a safe value.
        memory_guard: ``{enabled, strict, safety_fraction, dataset_memory_multiplier, trial_overhead_bytes}``.
        storage_path: Experiment storage (default ``./ray_results``).
        experiment_name: Experiment folder name.
        max_failures: Retries of a trial that raises.
        address: Existing Ray cluster to join (``auto`` or ``host:port``).
        resume: ``auto`` (default): rerunning the same command continues the unfinished
            experiment (other settings are refused, listed: :func:`~nwave_lightning.hpo.engine.check_same_experiment`);
            ``true`` insists on continuing; ``false`` starts a new one (in
            ``<experiment_name>_2`` ... when the folder is taken, and says so).
        report: Write the table and figures into ``<experiment>/report`` at the end.
    """
    from ray import tune as ray_tune

    from ..hpo.engine import (
        ExperimentInterrupted, ExperimentSettings, check_same_experiment, choose_experiment, experiment_path, is_remote,
        run_experiment, save_launch_settings, trial_spec,
    )
    from ..hpo.memory_guard import MemoryGuard
    from ..hpo.space import upper_bound
    from ..hpo.trial import ConfigTrial, run_trial

    missing = [name for name in ("tbparse", "pandas") if report and importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(
            f"report=true writes the experiment report, which needs {missing}: pip install \"nwave-lightning[report]\", "
            "or pass --report false"
        )
    launched = _launch_config(self)
    launch = yaml.safe_load(launched)
    base = {key: launch[key] for key in FIT_KEYS if key in launch}
    settings = ExperimentSettings(
        metric=metric,
        mode=mode,
        experiment_name=experiment_name,
        storage_path=storage_path,
        num_samples=num_samples,
        max_concurrent_trials=max_concurrent_trials,
        resources={"cpu": float(cpu), "gpu": float(gpu)},
        num_workers=workers,
        tune_scheduler=scheduler,
        search_alg=search_alg,
        memory_guard=MemoryGuard(**(memory_guard or {})),
        max_failures=max_failures,
        address=address,
    )
    if resume is not False:
        check_same_experiment(experiment_path(settings), launched, start_new=_START_NEW)
    trial = ConfigTrial(base, metric, mode)
    space, dry = _preflight(trial, search_space, settings)
    restore = choose_experiment(settings, resume, start_new=_START_NEW)
    exp_dir = experiment_path(settings)
    local_dir = None if is_remote(exp_dir) else exp_dir
    if not restore:  # a resumed experiment keeps the settings it was launched with
        save_launch_settings(settings, launched)
    data_args = dict((base.get("data") or {}).get("init_args") or {})
    epochs = space.get("trainer.max_epochs", (base.get("trainer") or {}).get("max_epochs"))
    try:
        results, _ = run_experiment(
            ray_tune.with_parameters(run_trial, spec=trial_spec(trial, settings)),
            space,
            settings,
            dataset_path=next((data_args[key] for key in ("data_dir", "dataset_path", "root") if data_args.get(key)), None),
            data_cfg=data_args,
            max_t=upper_bound(epochs) if epochs is not None else None,
            restore=restore,
            model_bytes=dry.model_bytes,
        )
    except ExperimentInterrupted as stop:
        # `--resume false` (or a renamed new experiment) would start yet another one: name this one.
        again = ("the same command" if resume is not False and settings.experiment_name == experiment_name
                 else f"the command with --experiment_name {settings.experiment_name} --resume true")
        print(f"\nInterrupted: the experiment's state is saved in {stop.path}; rerun {again} to continue it "
              "(finished trials are kept).", flush=True)
        raise SystemExit(130) from None
    _summarize_best(results, base, metric, mode, local_dir)
    if report and local_dir:
        from ..hpo.report import write_report

        for name, path in write_report(local_dir, metric, mode).items():
            print(f"Report {name}: {path}")
    return results


def _launch_config(trainer) -> str:
    """The tune subcommand's parsed config (YAML), as the nwave CLI keeps it."""
    for callback in trainer.callbacks:
        if isinstance(callback, SaveConfigCallback):
            return callback.parser.dump(callback.config, skip_none=False)
    raise RuntimeError("`tune` must run through the nwave CLI (`nwave tune --config ...`), which keeps its config")


def _preflight(trial, search_space: Optional[dict], settings) -> tuple[dict, Any]:
    """Every setup problem in one error before launch; returns the parsed search space and the dry run.

    One build and one training batch of the config that costs the most memory: the dotted paths exist,
    the metrics are logged, and the memory of the largest trial is known before any trial starts.
    """
    from ..hpo.preflight import (
        callback_monitors, domain_problems, dry_run, metric_problems, raise_problems, search_space_problems,
    )
    from ..hpo.space import parse_search_space

    raw_space = dict(search_space or {})
    problems = search_space_problems(raw_space) + settings.problems()
    space = parse_search_space({key: value for key, value in raw_space.items() if not domain_problems(key, value)})
    try:
        probe = build_from_config(trial.config_for({key: _largest_value(value) for key, value in space.items()}))
    except Exception as err:
        problems.append(
            f"search_space: a sampled config does not build ({type(err).__name__}: {err}); check the dotted "
            f"paths {sorted(space)} against `nwave tune --config <file> --print_config`"
        )
        raise_problems(problems, "nwave tune")
    _check_chip_metric_logged(settings.metric, probe.model)
    dry = dry_run(probe.model, probe.datamodule)
    problems += metric_problems(settings.metric, dry.logged, callback_monitors(probe.trainer_kwargs.get("callbacks") or []))
    raise_problems(problems, "nwave tune")
    return space, dry


def _summarize_best(results, base: dict, metric: str, mode: str, local_dir: Optional[str]) -> None:
    """Print the best trial; on local storage also write its fit config and print the command taking it to the chip."""
    from ..hpo.results import BEST_MODEL_FILE, best_epoch_metrics, best_result, describe_best
    from ..hpo.space import apply_overrides

    best = best_result(results, metric, mode)
    # The selected metric and its float / chip-ready twin, both at the epoch best_model.pt holds.
    print("\n" + describe_best(best_epoch_metrics(best, metric, mode), metric, os.path.basename(best.path)))
    print(f"Best config: {best.config}")
    if best.checkpoint is not None:
        print(f"Best checkpoint: {best.checkpoint.path} (best_model.pt)")
    if not local_dir:
        return
    # The launch's fit sections with the trial's values (not the logging a trial hands to the engine): what
    # `nwave export` (or `nwave fit`) needs to rebuild its network. Samplers may give NumPy scalars; YAML takes none.
    plain = json.dumps(dict(best.config), default=lambda value: value.item() if hasattr(value, "item") else str(value))
    text = yaml.safe_dump(apply_overrides(copy.deepcopy(base), json.loads(plain)), sort_keys=False)
    best_config = os.path.join(local_dir, BEST_CONFIG)
    atomic_write(best_config, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    print(f"Best trial's fit config: {best_config}")
    if best.checkpoint is not None:
        weights = os.path.join(best.checkpoint.path, BEST_MODEL_FILE)
        print(f"  to the chip: nwave export --config {shlex.quote(best_config)} --ckpt_path {shlex.quote(weights)} "
              "--output model.json")


def _check_chip_metric_logged(metric: str, model) -> None:
    """A chip-ready ``metric`` (``val_chip_*``) needs a model that logs it: ``SNNModule`` does unless
    ``chip_eval=False`` or its net has no chip-ready copy; another LightningModule is left to the dry run."""
    chip_net = getattr(model, "chip_net", None)
    if not is_chip_metric(metric) or not callable(chip_net) or chip_net() is not None:
        return
    why = (
        "model.init_args.chip_eval is false" if not getattr(model, "chip_eval", True)
        else f"its net ({type(getattr(model, 'net', model)).__name__}) has no chip-ready copy"
    )
    raise ValueError(
        f"metric={metric!r} is the chip-ready metric of to_chip(net), but the configured model will never log it: "
        f"{why}. Set model.init_args.chip_eval: true with a net built from nwave_lightning.layers, or tune on "
        f"the float metric (metric: {chip_twin(metric)})."
    )


def _largest_value(domain):
    """The value of a domain that costs a trial the most memory: the largest number, or the list with the
    largest sum (widths), else the first value; an integer range's largest value, another continuous domain's sample."""
    from ray.tune.search.sample import Integer

    from ..hpo.space import domain_values

    values = domain_values(domain)
    if values is None:
        return max(domain.lower, domain.upper - 1) if isinstance(domain, Integer) else domain.sample()

    def size(value) -> float:
        items = value if isinstance(value, (list, tuple)) else [value]
        return sum(item for item in items if isinstance(item, (int, float)) and not isinstance(item, bool))

    return max(values, key=size)
