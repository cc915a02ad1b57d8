"""``nwave tune``: a fit config plus a search space, run through the HPO engine.

A tune YAML is a ``nwave fit`` config (``model``, ``data``, ``trainer``,
``seed_everything``) plus, at the top level, a ``search_space`` of dotted paths into
that config and the experiment settings::

    model:
      class_path: nwave_lightning.module.SNNModule
      init_args:
        net: {class_path: nwave_lightning.models.H1Classifier, init_args: {in_ch: 13, ...}}
        ...
    data: {class_path: nwave_lightning.data.KeywordSpottingDataModule, init_args: {...}}
    trainer: {max_epochs: 5, accelerator: cpu}
    search_space:
      model.init_args.net.init_args.hidden: {choice: [[16], [32]]}
      model.init_args.lr: {loguniform: [1.0e-4, 1.0e-2]}
    metric: val_chip_acc           # the chip-ready twin of val_acc (the metric on to_chip(net))
    mode: max
    num_samples: 8
    scheduler: {name: asha, grace_period: 2}
    search_alg: random             # or optuna / hyperopt / {name: optuna, seed: 0}
    cpu: 1                         # per trial (per worker with workers > 1)
    gpu: 0                         # fractional values share a GPU
    max_concurrent_trials: 2
    memory_guard: {strict: true}
    storage_path: ray_results
    experiment_name: kws_tune
    max_failures: 1

Every trial rebuilds the model and datamodule from its own config through the
same builder as ``nwave fit`` (:func:`nwave_lightning.run.build_from_config`),
then trains with the engine's callbacks and reports (see
:func:`nwave_lightning.hpo.trial.fit_lightning`). Domains are the plain-YAML ones of
:mod:`nwave_lightning.hpo.space`; list indices are path parts
(``trainer.callbacks.0.init_args.end_value``).

Example:
    >>> cfg = {"model": {"init_args": {"lr": 0.001, "net": {"init_args": {"hidden": [16]}}}}}
    >>> apply_overrides(cfg, {"model.init_args.net.init_args.hidden": [32]})["model"]["init_args"]["net"]
    {'init_args': {'hidden': [32]}}
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional, Union

from ..io import atomic_write
from ..run import build_from_config

__all__ = ["FIT_KEYS", "TUNE_SKIPPED_ARGS", "apply_overrides", "check_chip_metric_logged", "run_cli_trial", "tune"]

#: Sections of a tune config that make up each trial's fit config.
FIT_KEYS = ("seed_everything", "trainer", "model", "data")
#: Arguments of :func:`tune` that LightningCLI fills itself (not command-line options).
TUNE_SKIPPED_ARGS = {"model", "datamodule"}
# Trainer settings a trial sets itself (logging, checkpoints, progress output).
_TRIAL_OWNED = (
    "logger", "callbacks", "enable_checkpointing", "default_root_dir", "enable_progress_bar", "enable_model_summary",
)


def apply_overrides(config: dict, values: Mapping[str, Any]) -> dict:
    """Set dotted-path values in a nested config (in place; returns it). Integers index lists."""
    for key, value in values.items():
        parts = str(key).split(".")
        node = config
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ValueError(f"search_space key {key!r}: {part!r} is not an index of a list of {len(node)}")
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    if node.get(part) is None:
                        node[part] = {}
                    node = node[part]
            else:
                raise ValueError(f"search_space key {key!r}: cannot descend into {'.'.join(parts[:i])!r} ({node!r})")
    return config


@dataclass
class CliTrialSpec:
    """What a ``nwave tune`` trial needs besides its sampled values."""

    base_config: dict
    metric: str
    mode: str
    experiment_dir: Optional[str]
    num_workers: int = 1
    resources_per_worker: dict = None
    use_gpu: bool = False
    launch_dir: Optional[str] = None


def _trial_config(spec: CliTrialSpec, values: Mapping[str, Any]) -> dict:
    config = apply_overrides(copy.deepcopy(spec.base_config), values)
    trainer = config.setdefault("trainer", {})
    # The CLI also builds a Trainer of its own; keep it from logging or checkpointing anywhere.
    trainer["logger"], trainer["enable_checkpointing"] = False, False
    return config


def _cli_build_and_fit(values, *, spec: CliTrialSpec, trial_dir: str, checkpoint, report_fn=None, distributed=False):
    import tempfile

    from ..callbacks import BestModelCheckpoint
    from ..hpo.results import BEST_MODEL_FILE
    from ..hpo.trial import TENSORBOARD_DIR, _sample_input, check_model_contract, fit_lightning

    run = build_from_config(_trial_config(spec, values))
    datamodule = run.datamodule
    check_model_contract(getattr(run.model, "net", run.model), _sample_input(None, None, datamodule))
    trainer_init = run.trainer_kwargs
    callbacks = [cb for cb in (trainer_init.get("callbacks") or []) if not isinstance(cb, BestModelCheckpoint)]
    extra = {k: v for k, v in trainer_init.items() if k not in _TRIAL_OWNED}
    if extra.get("devices") in ("auto", -1, None):
        extra["devices"] = 1  # one process per trial; several workers go through Ray Train
    best_dir = tempfile.mkdtemp(prefix="nwave_best_")
    fit_lightning(
        run.model,
        trainer_cfg={},
        callbacks=[*callbacks, BestModelCheckpoint(metric=spec.metric, mode=spec.mode, dirpath=best_dir)],
        metric=spec.metric,
        log_dir=os.path.join(trial_dir, TENSORBOARD_DIR),
        best_model_path=os.path.join(best_dir, BEST_MODEL_FILE),
        checkpoint=checkpoint,
        hparams=dict(values),
        datamodule=datamodule,
        extra_trainer_kwargs=extra,
        report_fn=report_fn,
        distributed=distributed,
    )


def run_cli_trial(config: dict, spec: CliTrialSpec) -> None:
    """Ray Tune function trainable of ``nwave tune``."""
    import functools

    import ray.tune

    from ..hpo.trial import current_trial_dir, enter_launch_dir

    enter_launch_dir(spec)
    if spec.num_workers > 1:
        from ..hpo.distributed import run_distributed_trial

        run_distributed_trial(config, spec, build_and_fit=functools.partial(_cli_build_and_fit, spec=spec))
        return
    _cli_build_and_fit(config, spec=spec, trial_dir=current_trial_dir(spec), checkpoint=ray.tune.get_checkpoint())


def _launch_config(trainer) -> tuple[dict, Any, Any]:
    """The tune subcommand's parsed config (as a plain dict), its parser and namespace."""
    import yaml
    from lightning.pytorch.cli import SaveConfigCallback

    found = [cb for cb in trainer.callbacks if isinstance(cb, SaveConfigCallback)]
    if not found:
        raise RuntimeError("`tune` must run through the nwave CLI (`nwave tune --config ...`), which keeps its config")
    parser, namespace = found[0].parser, found[0].config
    return yaml.safe_load(parser.dump(namespace, skip_none=False)), parser, namespace


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
    resume: Union[bool, str] = False,
    report: bool = True,
):
    """Tune hyper-parameters of a fit config with Ray Tune (see ``nwave_lightning.cli.tune``).

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
        resume: ``true`` continues the interrupted experiment, ``auto`` when possible.
        report: Write the table and figures into ``<experiment>/report`` at the end.
    """
    from ray import tune as ray_tune

    from ..hpo.engine import ExperimentSettings, experiment_path, run_experiment
    from ..hpo.memory_guard import MemoryGuard
    from ..hpo.space import parse_search_space, upper_bound

    launch, parser, namespace = _launch_config(self)
    base = {key: launch[key] for key in FIT_KEYS if key in launch}
    space = parse_search_space(search_space or {})
    settings = ExperimentSettings(
        metric=metric,
        mode=mode,
        experiment_name=experiment_name,
        storage_path=storage_path,
        num_samples=int(num_samples),
        max_concurrent_trials=max_concurrent_trials,
        resources={"cpu": float(cpu), "gpu": float(gpu)},
        num_workers=int(workers),
        tune_scheduler=scheduler,
        search_alg=search_alg,
        memory_guard=MemoryGuard(**(memory_guard or {})),
        max_failures=int(max_failures),
        address=address,
    )
    exp_dir = experiment_path(settings)
    spec = CliTrialSpec(
        base_config=base,
        metric=metric,
        mode=mode,
        experiment_dir=None if "://" in exp_dir else exp_dir,
        num_workers=int(workers),
        resources_per_worker=dict(settings.resources),
        use_gpu=float(gpu) > 0,
        launch_dir=os.getcwd(),
    )
    # Fail before launching on paths that do not exist in the config (one build from sampled values).
    try:
        probe = build_from_config(_trial_config(spec, {k: _example_value(v) for k, v in space.items()}))
    except Exception as err:
        raise ValueError(
            f"search_space: a sampled config does not build ({type(err).__name__}: {err}); check the dotted "
            f"paths {sorted(space)} against `nwave tune --config <file> --print_config`"
        ) from None
    check_chip_metric_logged(metric, probe.model)
    data_args = dict((base.get("data") or {}).get("init_args") or {})
    dataset_path = next((data_args[k] for k in ("data_dir", "dataset_path", "root") if data_args.get(k)), None)
    epochs = space.get("trainer.max_epochs", (base.get("trainer") or {}).get("max_epochs"))
    if not remote_path(exp_dir):
        os.makedirs(exp_dir, exist_ok=True)
        _save_text(os.path.join(exp_dir, "tune_config.yaml"), parser.dump(namespace, skip_none=False))
    results, _ = run_experiment(
        ray_tune.with_parameters(run_cli_trial, spec=spec),
        space,
        settings,
        dataset_path=dataset_path,
        data_cfg=data_args,
        max_t=upper_bound(epochs) if epochs is not None else None,
        resume=resume,
    )
    from ..hpo.results import MetricNotReportedError, best_epoch_metrics, describe_best

    reported = [r for r in results if r.metrics and metric in r.metrics]
    if not reported:

        keys = sorted({k for r in results if r.metrics for k in r.metrics})
        raise MetricNotReportedError(f"selected metric {metric!r} not reported by any trial; reported keys: {keys}")
    best = results.get_best_result(metric=metric, mode=mode, scope="all")
    # The selected metric and its float / chip-ready twin, both at the epoch best_model.pt holds.
    print("\n" + describe_best(best_epoch_metrics(best, metric, mode), metric, os.path.basename(best.path)))
    print(f"Best config: {best.config}")
    if best.checkpoint is not None:
        print(f"Best checkpoint: {best.checkpoint.path} (best_model.pt)")
    if report and not remote_path(exp_dir):
        from ..hpo.report import write_report

        for name, path in write_report(exp_dir, metric, mode).items():
            print(f"Report {name}: {path}")
    return results


def check_chip_metric_logged(metric: str, model) -> None:
    """Before launch: a chip-ready ``metric`` (``val_chip_*``) needs a model that logs it.

    ``SNNModule`` logs ``val_chip_*`` from ``to_chip(net)`` unless ``chip_eval=False``
    or its net holds no H1 layer; a LightningModule of another kind is left to the
    per-epoch check (it may log the key itself).

    Raises:
        ValueError: naming the metric, why the model does not log it, and the fix.
    """
    from ..hpo.results import chip_twin, is_chip_metric

    chip_net = getattr(model, "chip_net", None)
    if not is_chip_metric(metric) or not callable(chip_net):
        return
    if chip_net() is None:
        why = (
            "model.init_args.chip_eval is false" if not getattr(model, "chip_eval", True)
            else f"its net ({type(getattr(model, 'net', model)).__name__}) has no chip-ready copy"
        )
        raise ValueError(
            f"metric={metric!r} is the chip-ready metric of to_chip(net), but the configured model will never log it: "
            f"{why}. Set model.init_args.chip_eval: true with a net built from nwave_lightning.layers, or tune on "
            f"the float metric (metric: {chip_twin(metric)})."
        )


def _example_value(domain):
    values = domain.get("grid_search") if isinstance(domain, dict) and "grid_search" in domain else None
    if values is not None:
        return values[0]
    return domain.sample() if hasattr(domain, "sample") else domain


def remote_path(path: str) -> bool:
    return "://" in str(path)


def _save_text(path: str, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)

    atomic_write(path, write)
