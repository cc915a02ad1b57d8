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
    >>> sorted(TUNE_SKIPPED_ARGS), FIT_KEYS
    (['datamodule', 'model'], ('seed_everything', 'trainer', 'model', 'data'))
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shlex
from typing import Any, Optional, Union

from ..io import atomic_write
from ..run import build_from_config

__all__ = ["BEST_CONFIG", "FIT_KEYS", "LAUNCH_CONFIG", "TUNE_SKIPPED_ARGS", "check_chip_metric_logged", "check_same_experiment", "tune"]

#: Sections of a tune config that make up each trial's fit config.
FIT_KEYS = ("seed_everything", "trainer", "model", "data")
#: Arguments of :func:`tune` that LightningCLI fills itself (not command-line options).
TUNE_SKIPPED_ARGS = {"model", "datamodule"}
#: The launch config of an experiment, in its folder (a resumed experiment is checked against it).
LAUNCH_CONFIG = "tune_config.yaml"
#: The best trial's fit config, in the experiment's folder (written at the end).
BEST_CONFIG = "best_config.yaml"
# Settings a rerun may change without changing the experiment: how it is resumed and reported, where Ray runs.
_RESUME_FREE_KEYS = {"resume", "report", "address", "storage_path", "experiment_name"}


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
    resume: Union[bool, str] = "auto",
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
        resume: ``auto`` (default): rerunning the same command continues the unfinished
            experiment (other settings are refused, listed, see :func:`check_same_experiment`);
            ``true`` insists on continuing; ``false`` starts a new one (in
            ``<experiment_name>_2`` ... when the folder is taken, and says so).
        report: Write the table and figures into ``<experiment>/report`` at the end.
    """
    from ray import tune as ray_tune

    from ..hpo.engine import ExperimentInterrupted, ExperimentSettings, choose_experiment, experiment_path, is_remote, run_experiment, trial_spec
    from ..hpo.memory_guard import MemoryGuard
    from ..hpo.preflight import callback_monitors, domain_problems, dry_run, metric_problems, raise_problems, search_space_problems
    from ..hpo.space import apply_overrides, parse_search_space, upper_bound
    from ..hpo.trial import ConfigTrial, run_trial

    missing = [name for name in ("tbparse", "pandas") if report and importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(
            f"report=true writes the experiment report, which needs {missing}: pip install \"nwave-lightning[report]\", "
            "or pass --report false"
        )
    launch, parser, namespace = _launch_config(self)
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
    launched = parser.dump(namespace, skip_none=False)
    if resume is not False:
        check_same_experiment(experiment_path(settings), launched)
    raw_space = dict(search_space or {})
    problems = search_space_problems(raw_space) + settings.problems()
    space = {k: v for k, v in raw_space.items() if not domain_problems(k, v)}
    space = parse_search_space(space)
    trial = ConfigTrial(base, metric, mode)
    # One build and one training batch of the config that costs the most memory: the dotted paths exist,
    # the metrics are logged, and the memory of the largest trial is known before any trial starts.
    try:
        probe = build_from_config(trial.config_for({k: _largest_value(v) for k, v in space.items()}))
    except Exception as err:
        problems.append(
            f"search_space: a sampled config does not build ({type(err).__name__}: {err}); check the dotted "
            f"paths {sorted(space)} against `nwave tune --config <file> --print_config`"
        )
        raise_problems(problems, "nwave tune")
    check_chip_metric_logged(metric, probe.model)
    dry = dry_run(probe.model, probe.datamodule)
    problems += metric_problems(metric, dry.logged, callback_monitors(probe.trainer_kwargs.get("callbacks") or []))
    raise_problems(problems, "nwave tune")
    restore = choose_experiment(settings, resume)
    exp_dir = experiment_path(settings)
    data_args = dict((base.get("data") or {}).get("init_args") or {})
    dataset_path = next((data_args[k] for k in ("data_dir", "dataset_path", "root") if data_args.get(k)), None)
    epochs = space.get("trainer.max_epochs", (base.get("trainer") or {}).get("max_epochs"))
    if not is_remote(exp_dir) and not restore:  # a resumed experiment keeps the settings it was launched with
        os.makedirs(exp_dir, exist_ok=True)
        _save_text(os.path.join(exp_dir, LAUNCH_CONFIG), launched)
    try:
        results, _ = run_experiment(
            ray_tune.with_parameters(run_trial, spec=trial_spec(trial, settings)),
            space,
            settings,
            dataset_path=dataset_path,
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
    from ..hpo.results import BEST_MODEL_FILE, best_epoch_metrics, best_result, describe_best

    best = best_result(results, metric, mode)
    # The selected metric and its float / chip-ready twin, both at the epoch best_model.pt holds.
    print("\n" + describe_best(best_epoch_metrics(best, metric, mode), metric, os.path.basename(best.path)))
    print(f"Best config: {best.config}")
    if best.checkpoint is not None:
        print(f"Best checkpoint: {best.checkpoint.path} (best_model.pt)")
    if not is_remote(exp_dir):
        # The best trial as a fit config: what `nwave export` (or `nwave fit`) needs to rebuild its network.
        import yaml

        best_config = os.path.join(exp_dir, BEST_CONFIG)
        # The launch's fit sections with the trial's values (not the logging a trial hands to the engine);
        # samplers may give NumPy scalars, which YAML does not take.
        values = json.loads(json.dumps(dict(best.config), default=lambda v: v.item() if hasattr(v, "item") else str(v)))
        _save_text(best_config, yaml.safe_dump(apply_overrides(copy.deepcopy(base), values), sort_keys=False))
        print(f"Best trial's fit config: {best_config}")
        if best.checkpoint is not None:
            weights = os.path.join(best.checkpoint.path, BEST_MODEL_FILE)
            print(f"  to the chip: nwave export --config {shlex.quote(best_config)} --ckpt_path {shlex.quote(weights)} "
                  "--output model.json")
    if report and not is_remote(exp_dir):
        from ..hpo.report import write_report

        for name, path in write_report(exp_dir, metric, mode).items():
            print(f"Report {name}: {path}")
    return results


def check_same_experiment(experiment_dir: str, launched: str) -> None:
    """Before resuming: the experiment in ``experiment_dir`` must have been launched with the same settings.

    Ray continues an experiment with the search space, samples and scheduler it was launched with, while its
    unfinished trials would rebuild from this launch's fit config: a mix no one asked for, without a word.
    ``launched`` is this launch's config (YAML); the experiment's own is its ``tune_config.yaml``.

    Raises:
        ValueError: listing each setting that differs (old -> new) and the two ways on.
    """
    import yaml
    from ray import tune as ray_tune

    stored = os.path.join(experiment_dir, LAUNCH_CONFIG)
    if not os.path.isfile(stored) or not ray_tune.Tuner.can_restore(experiment_dir):
        return
    with open(stored, encoding="utf-8") as handle:
        before = _flat(yaml.safe_load(handle))
    after = _flat(yaml.safe_load(launched))
    # Keys on one side only are arguments an upgrade of Lightning or of the framework added or removed, not settings.
    changed = sorted(key for key in before.keys() & after.keys()
                     if before[key] != after[key] and key.split(".")[0] not in _RESUME_FREE_KEYS)
    if changed:
        lines = "".join(f"\n  {key}: {before.get(key)!r} -> {after.get(key)!r}" for key in changed[:12])
        more = f"\n  ... and {len(changed) - 12} more" if len(changed) > 12 else ""
        raise ValueError(
            f"nwave tune: {experiment_dir} holds an experiment launched with other settings, which resuming would keep "
            f"(ignoring these):{lines}{more}\nRerun it as launched (its settings: {stored}) to continue it, or pass "
            "--resume false to start a new experiment beside it."
        )


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        return {key: value for name, child in tree.items() for key, value in _flat(child, f"{prefix}{name}.").items()}
    return {prefix[:-1]: tree}


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


def _largest_value(domain):
    """The value of a domain that costs a trial the most memory: the largest number, or the list with the
    largest sum (widths), else the first value; a continuous domain's upper end (a float one: a sample)."""
    from ray.tune.search.sample import Integer

    from ..hpo.space import domain_values

    values = domain_values(domain)
    if values is None:
        return max(domain.lower, domain.upper - 1) if isinstance(domain, Integer) else domain.sample()

    def size(value) -> float:
        items = value if isinstance(value, (list, tuple)) else [value]
        return sum(v for v in items if isinstance(v, (int, float)) and not isinstance(v, bool))

    return max(values, key=size)


def _save_text(path: str, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)

    atomic_write(path, write)
