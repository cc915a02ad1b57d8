"""One trial: the vendor SDK's flow from a sampled config to per-epoch reports.

1. split the flat config by namespace (``model.*``, ``loss.<name>.*``, ...);
2. build the model (``model_builder(model_cfg)``) and the data
   (``dataset_builder(dataset_path, data_cfg)`` -> ``(train_loader, val_loader)``,
   a dict with ``train``/``val`` or a LightningDataModule);
3. validate the model output contract on one batch;
4. build losses and metrics from their per-trial configs;
5. build the optimizer and LR scheduler (default names or custom builders);
6. build the NWAVE callbacks (surrogate, sign annealing, early stop, best model);
7. run ``train_fn(ctx)`` (:func:`train_one_trial` by default: Lightning +
   :class:`~nwave_lightning.hpo.results.TuneEpochReport`);
8. every epoch reports the vendor SDK's keys to Tune with ``best_model.pt`` attached.

A custom ``train_fn(ctx)`` receives a :class:`TrialContext` (model, loaders,
losses, metrics, optimizer, scheduler, callbacks, config) and must call
``ctx.report(metrics, checkpoint_dir=...)`` once per epoch; put ``best_model.pt``
(``{"epoch", "best_selected_metric", "state_dict"}``) in ``checkpoint_dir`` for the
vendor SDK's restore snippet to work.

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

from ..console import quiet_trial_process
from ..run import build_from_config
from .builders import TRIAL_OWNED_TRAINER_ARGS, lr_scheduler_spec, nwave_callbacks, optimizer_spec, trainer_kwargs
from .distributed import current_trial_dir, enter_launch_dir, run_distributed_trial, save_measured_coverage
from .results import BEST_MODEL_FILE, TRIAL_STATE_FILE, TuneEpochReport, check_metric_reported, trial_dirname, write_outcome
from .space import SplitConfig, apply_overrides, split_config

__all__ = ["Builders", "ConfigTrial", "TrialContext", "TrialRun", "TrialSpec", "fit_lightning", "run_trial", "train_one_trial", "trial_dirname"]

#: Folder (inside the trial folder) holding the trial's TensorBoard events.
TENSORBOARD_DIR = "tensorboard"


@dataclass
class TrialSpec:
    """What every Tune trial gets besides its sampled config (shipped to the trial processes).

    ``build_and_fit(config, run: TrialRun)`` builds and trains one trial: a :class:`ConfigTrial`
    (``nwave tune``) or a :class:`Builders` (``HPOWrapper``). :func:`run_trial` calls it in the
    trial process, or on every Ray Train worker when ``num_workers > 1``.
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
class Builders:
    """An ``HPOWrapper`` trial: the vendor SDK's builders applied to the namespaced config (steps 1-8)."""

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
            self.train_fn(build_trial_context(config, self, self.dataset_path, run=run, best_dir=best_dir))


@dataclass
class ConfigTrial:
    """An ``nwave tune`` trial: the fit config with the sampled dotted-path values, built by ``build_from_config``."""

    base_config: dict
    metric: str
    mode: str

    def config_for(self, values: Mapping[str, Any]) -> dict:
        """The trial's fit config (the trial owns logging, checkpoints and progress output)."""
        config = apply_overrides(copy.deepcopy(self.base_config), values)
        trainer = config.setdefault("trainer", {})
        trainer["logger"], trainer["enable_checkpointing"], trainer["enable_progress_bar"] = False, False, False
        return config

    def __call__(self, values, run: TrialRun) -> None:
        from ..callbacks import BestModelCheckpoint

        built = build_from_config(self.config_for(values))
        check_model_contract(getattr(built.model, "net", built.model), _sample_input(None, None, built.datamodule))
        callbacks = [cb for cb in (built.trainer_kwargs.get("callbacks") or []) if not isinstance(cb, BestModelCheckpoint)]
        kwargs = {k: v for k, v in built.trainer_kwargs.items() if k not in TRIAL_OWNED_TRAINER_ARGS}
        if kwargs.get("devices") in ("auto", -1, None):
            kwargs["devices"] = 1  # one process per trial; several workers go through Ray Train
        with tempfile.TemporaryDirectory(prefix="nwave_best_") as best_dir:
            best = BestModelCheckpoint(metric=self.metric, mode=self.mode, dirpath=best_dir)
            reporter = TuneEpochReport(self.metric, os.path.join(best_dir, BEST_MODEL_FILE), report_fn=run.report_fn)
            fit_lightning(built.model, run, reporter, callbacks=[*callbacks, best], trainer_args=kwargs,
                          hparams=values, datamodule=built.datamodule)


@dataclass
class TrialContext:
    """Everything ``train_fn(ctx)`` needs, built from one trial's config."""

    config: dict
    cfg: SplitConfig
    spec: Builders
    model: torch.nn.Module
    train_loader: Any = None
    val_loader: Any = None
    datamodule: Any = None
    losses: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    optimizer: Any = None
    scheduler: Any = None
    optimizer_factory: Callable | str | dict = "adam"
    scheduler_factory: Callable | dict | None = None
    surrogate_scheduler: Any = None
    sign_annealing: Any = None
    early_stopping: Any = None
    best_checkpoint: Any = None
    run: TrialRun = field(default_factory=lambda: TrialRun("."))
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
    def report_fn(self) -> Callable | None:
        """What :meth:`report` sends through (``ray.tune.report`` when None)."""
        return self.run.report_fn

    @property
    def distributed(self) -> bool:
        """Whether this is one of several Ray Train workers of the trial (DDP)."""
        return self.run.distributed

    @property
    def log_dir(self) -> str:
        """Where the trial's TensorBoard events go (inside the trial folder)."""
        return self.run.log_dir

    @property
    def callbacks(self) -> list:
        """The NWAVE Lightning callbacks of this trial (the ones its config enables)."""
        found = (self.surrogate_scheduler, self.sign_annealing, self.early_stopping, self.best_checkpoint)
        return [cb for cb in found if cb is not None]

    def report(self, metrics: Mapping[str, Any], checkpoint_dir: str | None = None) -> None:
        """Report one epoch to Tune (for custom ``train_fn``); checks the selected metric once."""
        if not self._reported_once:
            check_metric_reported(self.metric, metrics)
            self._reported_once = True
        checkpoint = ray.tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        (self.run.report_fn or ray.tune.report)(dict(metrics), checkpoint=checkpoint)


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
    from ..module.contract import unpack_batch

    if datamodule is not None:
        datamodule.prepare_data()
        datamodule.setup("fit")
        loader = datamodule.val_dataloader() or datamodule.train_dataloader()
    else:
        loader = val_loader if val_loader is not None else train_loader
    return unpack_batch(next(iter(loader)))[0]


@torch.no_grad()
def check_model_contract(model: torch.nn.Module, x: torch.Tensor) -> None:
    """Step 3: one forward pass on a real batch, checked by ``validate_contract``."""
    from ..module.contract import validate_contract

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


def _build_optimizers(ctx: TrialContext, max_epochs: int | None) -> None:
    from ..module.optim import build_lr_scheduler, build_optimizer

    spec, cfg = ctx.spec, ctx.cfg
    params = [p for p in ctx.model.parameters() if p.requires_grad]
    if spec.optimizer_builder is not None:
        ctx.optimizer_factory = _BoundBuilder(spec.optimizer_builder, dict(cfg.optim))
        ctx.optimizer = ctx.optimizer_factory(params)
    else:
        ctx.optimizer_factory = optimizer_spec(cfg.optim)
        ctx.optimizer = build_optimizer(params, ctx.optimizer_factory)
    if spec.scheduler_builder is not None:
        factory = _BoundBuilder(spec.scheduler_builder, dict(cfg.sched))
        ctx.scheduler = factory(ctx.optimizer)
        # SNNModule takes callable(optimizer) -> scheduler; a builder answering None means no scheduler.
        ctx.scheduler_factory = factory if ctx.scheduler is not None else None
    else:
        ctx.scheduler_factory = lr_scheduler_spec(cfg.sched)
        built = build_lr_scheduler(ctx.optimizer, ctx.scheduler_factory, max_epochs)
        ctx.scheduler = built["scheduler"] if built else None


def build_trial_context(
    config: Mapping[str, Any], spec: Builders, dataset_path: str | None, *, run: TrialRun, best_dir: str | None = None
) -> TrialContext:
    """Steps 1-6 of the vendor SDK's flow for one trial (in a Tune trial or on a Ray Train worker)."""
    cfg = split_config(config)
    model = spec.model_builder(dict(cfg.model))
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model_builder returned {type(model).__name__}; it must return a torch.nn.Module")
    train_loader, val_loader, datamodule = _split_data(spec.dataset_builder(dataset_path, dict(cfg.data)))
    check_model_contract(model, _sample_input(train_loader, val_loader, datamodule))
    ctx = TrialContext(dict(config), cfg, spec, model, train_loader, val_loader, datamodule)
    ctx.losses = {name: build(dict(cfg.loss.get(name, {}))) for name, build in spec.loss_builders.items()}
    ctx.metrics = {name: build(dict(cfg.metric.get(name, {}))) for name, build in spec.metric_builders.items()}
    _build_optimizers(ctx, trainer_kwargs(cfg.trainer)[0].get("max_epochs"))
    ctx.run = run
    # Builders.__call__ passes a temporary folder it removes; without one, best_model.pt stays in the trial folder.
    ctx.best_dir = best_dir or os.path.join(run.trial_dir, "best")
    callbacks = nwave_callbacks(cfg, spec.metric, spec.mode, ctx.best_dir)
    ctx.surrogate_scheduler, ctx.sign_annealing = callbacks["surrogate"], callbacks["sign_annealing"]
    ctx.early_stopping, ctx.best_checkpoint = callbacks["early_stop"], callbacks["best_checkpoint"]
    return ctx


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


def _flat_hparams(config: Mapping[str, Any]) -> dict[str, Any]:
    # TensorBoard's hparams plugin takes scalars and strings only.
    return {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in config.items()}


def fit_lightning(
    module: pl.LightningModule,
    run: TrialRun,
    reporter: TuneEpochReport,
    *,
    callbacks: list,
    trainer_args: Mapping[str, Any],
    hparams: Mapping[str, Any],
    **data: Any,
) -> pl.Trainer:
    """Fit ``module`` in one trial: its callbacks, a TensorBoard logger in the trial folder and ``reporter``'s
    per-epoch Tune reports, resuming from ``run.checkpoint``; the common back end of both kinds of trial.

    ``trainer_args`` are Lightning ``Trainer`` arguments (the trial sets logging, checkpointing and, on
    Ray Train workers, the ``RayDDPStrategy`` itself); ``data`` are ``trainer.fit``'s (``datamodule=`` or
    ``train_dataloaders=`` / ``val_dataloaders=``).
    """
    from lightning.pytorch.loggers import TensorBoardLogger

    kwargs = {"max_epochs": 10, "accelerator": "cpu" if not torch.cuda.is_available() else "auto", "num_sanity_val_steps": 0,
              "enable_progress_bar": False, "enable_model_summary": False, **trainer_args}
    if run.distributed:
        from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment

        kwargs.update(strategy=RayDDPStrategy(), plugins=[RayLightningEnvironment()], devices="auto")
    logger = TensorBoardLogger(save_dir=run.log_dir, name="", version="", default_hp_metric=False)
    if hparams:
        logger.log_hyperparams(_flat_hparams(hparams))
    # The reporter is a Lightning Checkpoint callback, so checkpointing stays enabled (and no
    # default ModelCheckpoint is added next to it).
    trainer = pl.Trainer(logger=logger, callbacks=[*callbacks, reporter], default_root_dir=run.log_dir, **kwargs)
    if run.distributed:
        from ray.train.lightning import prepare_trainer

        trainer = prepare_trainer(trainer)
    with tempfile.TemporaryDirectory(prefix="nwave_tune_restore_") as scratch:
        ckpt_path = _restore(run.checkpoint, os.path.dirname(reporter.best_model_path), scratch)
        trainer.fit(module, ckpt_path=ckpt_path, **data)
    return trainer


def train_one_trial(ctx: TrialContext) -> pl.Trainer:
    """Default ``train_fn``: ``SNNModule`` + the trial's callbacks on a Lightning ``Trainer``.

    Uses ``ctx.losses["main"]`` as the loss and every metric builder's function;
    reports to Tune every epoch through :class:`TuneEpochReport`.
    """
    from ..module import SNNModule

    if "main" not in ctx.losses:
        raise ValueError(
            f"the default train_one_trial trains on loss_builders['main'], but only {sorted(ctx.losses)} "
            "are registered; register a 'main' loss builder or pass a custom train_fn"
        )
    module = SNNModule(
        ctx.model,
        loss=NamedLoss("main", ctx.losses["main"]),
        metrics=ctx.metrics,
        optimizer=ctx.optimizer_factory,
        lr_scheduler=ctx.scheduler_factory,
    )
    settings = ctx.cfg.trainer
    if "seed" in settings:
        pl.seed_everything(int(settings["seed"]), workers=True, verbose=False)
    reporter = TuneEpochReport(
        ctx.metric,
        os.path.join(ctx.best_dir, BEST_MODEL_FILE),
        save_trainer_state=bool(settings.get("save_trainer_state", True)),
        checkpoint_every_epoch=bool(settings.get("checkpoint_every_epoch", True)),
        report_fn=ctx.run.report_fn,
    )
    return fit_lightning(
        module, ctx.run, reporter, callbacks=ctx.callbacks, trainer_args=trainer_kwargs(settings)[0], hparams=ctx.config,
        train_dataloaders=ctx.train_loader, val_dataloaders=ctx.val_loader, datamodule=ctx.datamodule,
    )


def run_trial(config: dict, spec: TrialSpec) -> None:
    """The Ray Tune function trainable of every trial (``HPOWrapper`` and ``nwave tune``)."""
    quiet_trial_process()
    try:
        enter_launch_dir(spec.launch_dir)
        if spec.num_workers > 1:
            run_distributed_trial(config, spec, TrialRun)
            return
        from ..callbacks import NonFiniteError

        trial_dir = current_trial_dir(spec.experiment_dir)
        try:
            spec.build_and_fit(config, TrialRun(trial_dir, checkpoint=ray.tune.get_checkpoint()))
        except NonFiniteError as err:
            # Final for this trial: a retry would meet the same numbers (max_failures is for faults).
            # The trial ends, its reason in the report's status; the experiment goes on.
            reason = f"non-finite: {str(err).splitlines()[0]}"
            write_outcome(trial_dir, reason)
            print(f"trial {os.path.basename(trial_dir)} stopped, {reason}", flush=True)
    finally:
        save_measured_coverage()  # Ray ends trial processes without exit handlers
