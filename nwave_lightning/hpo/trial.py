"""One trial: from a sampled config to per-epoch reports to Ray Tune.

Every trial is a fit config built by :func:`nwave_lightning.run.build_from_config` (the
builder of ``nwave fit`` too) and trained by :func:`fit_trial`:

* ``nwave tune``: :class:`ConfigTrial` writes the sampled values into the launch's fit config;
* ``HPOWrapper``: :class:`Builders` applies the vendor SDK's builders to the namespaced
  config (:mod:`~nwave_lightning.hpo.namespaced`) and hands the pieces to ``train_fn(ctx)``
  as a :class:`TrialContext`; the default :func:`train_one_trial` makes them a fit config.

:func:`run_trial` is the Ray Tune trainable of both (on Ray Train workers when a trial has
several). A custom ``train_fn(ctx)`` calls ``ctx.report(metrics, checkpoint_dir=...)`` once
per epoch; ``best_model.pt`` (``{"epoch", "best_selected_metric", "state_dict"}``) in
``checkpoint_dir`` is what the vendor SDK's restore snippet loads. ``docs/tune-trials.md`` tells the story.

Example:
    >>> import torch
    >>> loss = NamedLoss("main", lambda spk_out, y: {"mse": ((spk_out - 1.0) ** 2).mean()})
    >>> out = loss(spk_out=torch.zeros(2, 3, 4), y=None)   # logged as train/main/mse, train/main/total, train/total
    >>> sorted(out.components), float(out.total)
    (['main/mse', 'main/total', 'total'], 1.0)
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as pl
import ray.tune
import torch

from ..callbacks import BestModelCheckpoint, NonFiniteError, RandomStateCheckpoint
from ..console import quiet_trial_process
from ..training.contract import unpack_batch, validate_contract
from ..run import Run, build_from_config
from .distributed import current_trial_dir, enter_launch_dir, run_distributed_trial, save_measured_coverage
from .namespaced import TRIAL_OWNED_TRAINER_ARGS, SplitConfig, lr_scheduler_spec, split_config, trainer_kwargs
from .results import BEST_MODEL_FILE, TRIAL_STATE_FILE, TuneEpochReport, check_metric_reported, write_outcome
from .space import apply_overrides

__all__ = [
    "Builders", "ConfigTrial", "NamedLoss", "TrialContext", "TrialRun", "TrialSpec", "fit_trial", "run_trial",
    "train_one_trial",
]

#: Folder (inside the trial folder) holding the trial's TensorBoard events.
TENSORBOARD_DIR = "tensorboard"
#: The LightningModule of an ``HPOWrapper`` trial's fit config.
_MODULE_CLASS = "nwave_lightning.training.SNNModule"


@dataclass
class TrialSpec:
    """What every Tune trial gets besides its sampled config (shipped to the trial processes).

    ``build_and_fit(config, run: TrialRun)`` builds and trains one trial: a :class:`ConfigTrial`
    or a :class:`Builders`. :func:`run_trial` calls it in the trial process, or on every Ray
    Train worker when ``num_workers > 1``.
    """

    build_and_fit: Callable[..., Any]
    experiment_dir: str | None = None
    num_workers: int = 1
    resources_per_worker: dict[str, float] = field(default_factory=dict)
    launch_dir: str | None = None


@dataclass
class TrialRun:
    """Where one trial process trains and how it reports (made by :func:`run_trial`, or on each Ray Train worker)."""

    trial_dir: str
    checkpoint: Any = None  # the Tune / Train checkpoint to resume from
    report_fn: Callable | None = None  # ray.tune.report; ray.train.report on Ray Train workers
    distributed: bool = False  # on a Ray Train worker: DDP through RayDDPStrategy

    @property
    def log_dir(self) -> str:
        """Where the trial's TensorBoard events go (inside the trial folder)."""
        return os.path.join(self.trial_dir, TENSORBOARD_DIR)


@dataclass
class ConfigTrial:
    """An ``nwave tune`` trial: the launch's fit config with the sampled dotted-path values."""

    base_config: dict
    metric: str
    mode: str

    def config_for(self, values: Mapping[str, Any]) -> dict:
        """The trial's fit config."""
        return _owned_by_the_trial(apply_overrides(copy.deepcopy(self.base_config), values))

    def __call__(self, values, run: TrialRun) -> None:
        built = build_from_config(self.config_for(values))
        check_model_contract(getattr(built.model, "net", built.model), _sample_input(None, None, built.datamodule))
        with tempfile.TemporaryDirectory(prefix="nwave_best_") as best_dir:
            fit_trial(built, run, metric=self.metric, mode=self.mode, best_dir=best_dir, hparams=values)


@dataclass
class Builders:
    """An ``HPOWrapper`` trial: the vendor SDK's builders applied to the namespaced config, then ``train_fn(ctx)``."""

    model_builder: Callable
    dataset_builder: Callable
    train_fn: Callable
    loss_builders: Mapping[str, Callable]
    metric_builders: Mapping[str, Callable]
    metric: str
    mode: str
    optimizer_builder: Callable | None = None
    scheduler_builder: Callable | None = None
    dataset_path: str | None = None

    def __call__(self, config, run: TrialRun) -> None:
        with tempfile.TemporaryDirectory(prefix="nwave_best_") as best_dir:
            self.train_fn(build_trial_context(config, self, run=run, best_dir=best_dir))


@dataclass
class TrialContext:
    """Everything ``train_fn(ctx)`` needs, built from one ``HPOWrapper`` trial's config."""

    config: dict  # the flat namespaced config
    cfg: SplitConfig  # the same, split by namespace
    spec: Builders
    run: TrialRun
    model: torch.nn.Module
    train_loader: Any = None
    val_loader: Any = None
    datamodule: Any = None
    losses: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    optimizer: Any = None  # built on the model's parameters, for a custom train_fn
    scheduler: Any = None
    optimizer_factory: Callable | dict = field(default_factory=dict)  # what SNNModule builds its own from
    scheduler_factory: Callable | dict | None = None
    callbacks: list = field(default_factory=list)  # the NWAVE callbacks the config enables, best_model.pt's included
    best_dir: str = "."
    _reported_once: bool = False

    @property
    def metric(self) -> str:
        return self.spec.metric

    @property
    def mode(self) -> str:
        return self.spec.mode

    @property
    def trial_dir(self) -> str:
        """The trial's folder in the experiment."""
        return self.run.trial_dir

    @property
    def checkpoint(self):
        """The Tune checkpoint a restarted or resumed trial continues from (None on a fresh start)."""
        return self.run.checkpoint

    @property
    def log_dir(self) -> str:
        """Where the trial's TensorBoard events go (inside the trial folder)."""
        return self.run.log_dir

    @property
    def distributed(self) -> bool:
        """Whether this is one of several Ray Train workers of the trial (train with ``RayDDPStrategy``)."""
        return self.run.distributed

    def report(self, metrics: Mapping[str, Any], checkpoint_dir: str | None = None) -> None:
        """Report one epoch to Tune (for a custom ``train_fn``); checks the selected metric once."""
        if not self._reported_once:
            check_metric_reported(self.metric, metrics)
            self._reported_once = True
        checkpoint = ray.tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        (self.run.report_fn or ray.tune.report)(dict(metrics), checkpoint=checkpoint)


def _owned_by_the_trial(config: dict) -> dict:
    """A fit config without the logger, checkpoints and progress bar ``nwave fit`` adds: :func:`fit_trial` owns them."""
    config.setdefault("trainer", {}).update(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    return config


class _Loaders(pl.LightningDataModule):
    """The loaders a ``dataset_builder`` returned, as the datamodule of the trial's fit config."""

    def __init__(self, train_loader: Any, val_loader: Any) -> None:
        super().__init__()
        self.train_loader, self.val_loader = train_loader, val_loader

    def train_dataloader(self):
        return self.train_loader

    def val_dataloader(self):
        return [] if self.val_loader is None else self.val_loader  # no loader: no validation


def _split_data(data: Any) -> tuple[Any, Any, Any]:
    if isinstance(data, pl.LightningDataModule):
        return None, None, data
    if isinstance(data, Mapping) and "train" in data:
        return data["train"], data.get("val"), None
    if isinstance(data, (tuple, list)) and len(data) in (2, 3):
        return data[0], data[1], None
    raise ValueError(
        f"dataset_builder returned {type(data).__name__}; return (train_loader, val_loader), "
        "{'train': ..., 'val': ...} or a LightningDataModule"
    )


def _sample_input(train_loader: Any, val_loader: Any, datamodule: Any) -> torch.Tensor:
    if datamodule is not None:
        datamodule.prepare_data()
        datamodule.setup("fit")
        loader = datamodule.val_dataloader() or datamodule.train_dataloader()
    else:
        loader = val_loader if val_loader is not None else train_loader
    return unpack_batch(next(iter(loader)))[0]


@torch.no_grad()
def check_model_contract(model: torch.nn.Module, x: torch.Tensor) -> None:
    """One forward pass on a real batch, checked by ``validate_contract`` before any training."""
    was_training = model.training
    model.train(False)
    try:
        validate_contract(model(x), x)
    finally:
        model.train(was_training)


class _BoundBuilder:
    """``builder(first, cfg)`` as a one-argument callable (picklable, unlike a lambda)."""

    def __init__(self, builder: Callable, cfg: dict) -> None:
        self.builder, self.cfg = builder, cfg

    def __call__(self, first):
        return self.builder(first, self.cfg)


def build_trial_context(
    config: Mapping[str, Any], spec: Builders, *, run: TrialRun, best_dir: str | None = None
) -> TrialContext:
    """The vendor SDK's steps for one trial: split the config, build model and data, check the contract on one
    batch, build losses, metrics, optimizer, LR scheduler and the NWAVE callbacks.

    ``best_model.pt`` goes to ``best_dir`` (default: ``best`` in the trial folder).
    """
    from ..callbacks.config import callbacks_from_config
    from ..training.optim import build_lr_scheduler, build_optimizer

    cfg = split_config(config)
    model = spec.model_builder(dict(cfg.model))
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model_builder returned {type(model).__name__}; it must return a torch.nn.Module")
    train_loader, val_loader, datamodule = _split_data(spec.dataset_builder(spec.dataset_path, dict(cfg.data)))
    check_model_contract(model, _sample_input(train_loader, val_loader, datamodule))
    best_dir = best_dir or os.path.join(run.trial_dir, "best")
    ctx = TrialContext(dict(config), cfg, spec, run, model, train_loader, val_loader, datamodule, best_dir=best_dir)
    ctx.losses = {name: build(dict(cfg.loss.get(name, {}))) for name, build in spec.loss_builders.items()}
    ctx.metrics = {name: build(dict(cfg.metric.get(name, {}))) for name, build in spec.metric_builders.items()}
    params = [p for p in model.parameters() if p.requires_grad]
    if spec.optimizer_builder is not None:
        ctx.optimizer_factory = _BoundBuilder(spec.optimizer_builder, dict(cfg.optim))
        ctx.optimizer = ctx.optimizer_factory(params)
    else:
        ctx.optimizer_factory = {"name": "adam", **cfg.optim}
        ctx.optimizer = build_optimizer(params, ctx.optimizer_factory)
    if spec.scheduler_builder is not None:
        factory = _BoundBuilder(spec.scheduler_builder, dict(cfg.sched))
        ctx.scheduler = factory(ctx.optimizer)
        ctx.scheduler_factory = factory if ctx.scheduler is not None else None  # a builder answering None: none
    else:
        ctx.scheduler_factory = lr_scheduler_spec(cfg.sched)
        built = build_lr_scheduler(ctx.optimizer, ctx.scheduler_factory, trainer_kwargs(cfg.trainer)[0].get("max_epochs"))
        ctx.scheduler = built["scheduler"] if built else None
    ctx.callbacks = callbacks_from_config(
        nwave={name: dict(value) for name, value in cfg.nwave.items() if value},
        early_stop=dict(cfg.early_stop) or None,
        best={"metric": spec.metric, "mode": spec.mode, "dirpath": best_dir},
    )
    return ctx


class NamedLoss:
    """A loss whose components are logged under its builder name: ``train/main/population/mse``,
    ``train/main/total`` and ``train/total`` (the vendor SDK's keys for ``loss_builders["main"]``)."""

    def __init__(self, name: str, loss: Callable) -> None:
        self.name, self.loss = name, loss

    def __call__(self, spk_out=None, y=None, spikes_list=None, membranes_list=None, model=None):
        from ..loss.output import LossOutput, as_loss_output
        from ..signature import call_with_supported_kwargs

        out = as_loss_output(
            call_with_supported_kwargs(
                self.loss, spk_out=spk_out, y=y, spikes_list=spikes_list, membranes_list=membranes_list, model=model
            )
        )
        components = {f"{self.name}/{key}": value for key, value in out.components.items()}
        components["total"] = out.total
        return LossOutput(total=out.total, components=components)


def train_one_trial(ctx: TrialContext) -> pl.Trainer:
    """Default ``train_fn``: the context's pieces as a fit config (``SNNModule`` on ``ctx.losses["main"]`` and
    every metric builder's function), built by ``build_from_config`` and trained by :func:`fit_trial`."""
    if "main" not in ctx.losses:
        raise ValueError(
            f"the default train_one_trial trains on loss_builders['main'], but only {sorted(ctx.losses)} "
            "are registered; register a 'main' loss builder or pass a custom train_fn"
        )
    settings = ctx.cfg.trainer
    config = {
        "seed_everything": int(settings["seed"]) if "seed" in settings else False,
        "model": {"class_path": _MODULE_CLASS, "init_args": {
            "net": ctx.model, "loss": NamedLoss("main", ctx.losses["main"]), "metrics": ctx.metrics,
            "optimizer": ctx.optimizer_factory, "lr_scheduler": ctx.scheduler_factory,
        }},
        "data": ctx.datamodule or _Loaders(ctx.train_loader, ctx.val_loader),
        # Lightning's "auto" would put every CPU trial on an Apple GPU; Ray gives a trial CUDA only when it asked for one.
        "trainer": {"accelerator": "auto" if torch.cuda.is_available() else "cpu", **trainer_kwargs(settings)[0],
                    "callbacks": ctx.callbacks},
    }
    built = build_from_config(_owned_by_the_trial(config))
    return fit_trial(
        built, ctx.run, metric=ctx.metric, mode=ctx.mode, best_dir=ctx.best_dir, hparams=ctx.config,
        save_trainer_state=bool(settings.get("save_trainer_state", True)),
        checkpoint_every_epoch=bool(settings.get("checkpoint_every_epoch", True)),
    )


def _restore(checkpoint, best_dir: str, scratch: str) -> str | None:
    """Copy a reported checkpoint back: ``best_model.pt`` to ``best_dir``, the trainer state to ``scratch``
    (returns its path)."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        if os.path.exists(os.path.join(directory, BEST_MODEL_FILE)):
            os.makedirs(best_dir, exist_ok=True)
            shutil.copy2(os.path.join(directory, BEST_MODEL_FILE), os.path.join(best_dir, BEST_MODEL_FILE))
        state = os.path.join(directory, TRIAL_STATE_FILE)
        if not os.path.exists(state):
            return None
        shutil.copy2(state, os.path.join(scratch, TRIAL_STATE_FILE))
    return os.path.join(scratch, TRIAL_STATE_FILE)


def fit_trial(
    built: Run, run: TrialRun, *, metric: str, mode: str, best_dir: str, hparams: Mapping[str, Any],
    save_trainer_state: bool = True, checkpoint_every_epoch: bool = True,
) -> pl.Trainer:
    """Train a built run as one trial: its configured callbacks, ``best_model.pt`` in ``best_dir``, TensorBoard
    events in the trial folder, a Tune report per epoch, resuming from ``run.checkpoint``.

    The trial owns the Trainer's logging, checkpoints and processes (a ``RayDDPStrategy`` on Ray Train workers).
    """
    from lightning.pytorch.loggers import TensorBoardLogger

    kwargs = {k: v for k, v in built.trainer_kwargs.items() if k not in TRIAL_OWNED_TRAINER_ARGS}
    if kwargs.get("devices") in ("auto", -1, None):
        kwargs["devices"] = 1  # one process per trial; several workers go through Ray Train
    if kwargs.get("num_sanity_val_steps") is None:
        kwargs["num_sanity_val_steps"] = 0  # a trial validates after its first epoch anyway
    kwargs.update(enable_progress_bar=False, enable_model_summary=False)
    if run.distributed:
        from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment

        kwargs.update(strategy=RayDDPStrategy(), plugins=[RayLightningEnvironment()], devices="auto")
    configured = list(built.trainer_kwargs.get("callbacks") or [])
    # One BestModelCheckpoint, writing where the reports copy best_model.pt from (a configured one that does is kept).
    kept = [cb for cb in configured if isinstance(cb, BestModelCheckpoint)
            and (cb.metric, cb.mode, cb.dirpath) == (metric, mode, os.fspath(best_dir))]
    best = kept[0] if kept else BestModelCheckpoint(metric=metric, mode=mode, dirpath=best_dir)
    configured = [cb for cb in configured if not isinstance(cb, BestModelCheckpoint)]
    if not any(isinstance(cb, RandomStateCheckpoint) for cb in configured):
        configured.append(RandomStateCheckpoint())  # a resumed trial deals the batches the uninterrupted one would
    reporter = TuneEpochReport(metric, os.path.join(best_dir, BEST_MODEL_FILE), report_fn=run.report_fn,
                               save_trainer_state=save_trainer_state, checkpoint_every_epoch=checkpoint_every_epoch)
    logger = TensorBoardLogger(save_dir=run.log_dir, name="", version="", default_hp_metric=False)
    if hparams:  # TensorBoard's hparams plugin takes scalars and strings only
        logger.log_hyperparams({k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in hparams.items()})
    # The reporter is a Lightning Checkpoint callback, so Lightning runs it after the others and adds no
    # default ModelCheckpoint next to it.
    trainer = pl.Trainer(logger=logger, callbacks=[*configured, best, reporter], default_root_dir=run.log_dir, **kwargs)
    if run.distributed:
        from ray.train.lightning import prepare_trainer

        trainer = prepare_trainer(trainer)
    with tempfile.TemporaryDirectory(prefix="nwave_tune_restore_") as scratch:
        trainer.fit(built.model, datamodule=built.datamodule, ckpt_path=_restore(run.checkpoint, best_dir, scratch))
    return trainer


def run_trial(config: dict, spec: TrialSpec) -> None:
    """The Ray Tune function trainable of every trial (``HPOWrapper`` and ``nwave tune``)."""
    quiet_trial_process()
    try:
        enter_launch_dir(spec.launch_dir)
        if spec.num_workers > 1:
            run_distributed_trial(config, spec, TrialRun)
            return
        trial_dir = current_trial_dir(spec.experiment_dir)
        try:
            spec.build_and_fit(config, TrialRun(trial_dir, checkpoint=ray.tune.get_checkpoint()))
        except NonFiniteError as err:
            # Final for this trial: a retry would meet the same numbers (max_failures is for faults).
            # The trial ends, its reason in its console line and the report's status; the experiment goes on.
            write_outcome(trial_dir, f"non-finite: {str(err).splitlines()[0]}")
    finally:
        save_measured_coverage()  # Ray ends trial processes without exit handlers
