"""``build_from_config``: the one way a run (model, datamodule, Trainer) is built from a config.

A config is what ``nwave fit --config`` reads: ``model`` (``class_path``
``nwave_lightning.training.SNNModule`` or a subclass, its ``init_args`` holding ``net``,
``loss``, ``metrics`` as class paths), ``data`` (any LightningDataModule by class path),
``trainer`` and ``seed_everything``. ``nwave fit`` (through :class:`RunCLI`), every
``nwave tune`` trial and every ``HPOWrapper`` trial build through the same parser, so a
trial of either kind is a config (an ``HPOWrapper`` trial's holds the objects its builders made).

Defaults that differ from a bare Trainer: a TensorBoard logger writing to
``runs/<name>/version_<n>`` without the ``hp_metric`` placeholder, and (unless the config
brings a checkpoint callback or turns checkpointing off) a ``ModelCheckpoint`` keeping
``last.ckpt``, a progress bar without Lightning's ``v_num`` column, and no summary table.

Example:
    >>> run = build_from_config({
    ...     "model": {"class_path": "nwave_lightning.training.SNNModule", "init_args": {
    ...         "net": {"class_path": "nwave_lightning.models.H1Classifier",
    ...                 "init_args": {"in_ch": 4, "num_classes": 2, "neurons_per_class": 2, "hidden": [8]}},
    ...         "loss": {"class_path": "nwave_lightning.models.PopulationLoss",
    ...                  "init_args": {"num_classes": 2, "neurons_per_class": 2}}}},
    ...     "data": {"class_path": "nwave_lightning.data.KeywordSpottingDataModule", "init_args": {"n_train": 8, "n_val": 8}},
    ...     "trainer": {"logger": False, "enable_checkpointing": False, "max_epochs": 1}})
    >>> type(run.model).__name__, type(run.datamodule).__name__, run.trainer.max_epochs
    ('SNNModule', 'KeywordSpottingDataModule', 1)
"""

from __future__ import annotations

import importlib
import logging
import warnings
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
from jsonargparse import Namespace
from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningCLI

from .console import quiet_third_party
from .training import SNNModule

__all__ = ["DEFAULT_LOG_DIR", "TRAINER_DEFAULTS", "Run", "RunCLI", "build_from_config", "cli_kwargs"]

DEFAULT_LOG_DIR = "runs"
TRAINER_DEFAULTS: dict[str, Any] = {
    "logger": {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        # hp_metric is a placeholder scalar outside the framework's key table.
        "init_args": {"save_dir": DEFAULT_LOG_DIR, "name": "nwave", "default_hp_metric": False},
    },
    # Lightning's summary table has a FLOPs column that is 0 without example_input_array; the
    # command prints the network's size in one line instead.
    "enable_model_summary": False,
}


@dataclass
class Run:
    """What a config builds: the module, the datamodule, the Trainer, and the Trainer's arguments (instantiated)."""

    model: pl.LightningModule
    datamodule: Any
    trainer: pl.Trainer
    trainer_kwargs: dict


def _is_a(entry: Any, kind: type) -> bool:
    """Whether a configured callback (an instance or a class-path entry) is a ``kind``."""
    if isinstance(entry, pl.Callback):
        return isinstance(entry, kind)
    class_path = getattr(entry, "class_path", None) or (entry.get("class_path") if isinstance(entry, dict) else None)
    if not class_path:
        return False
    module, _, name = str(class_path).rpartition(".")
    found = getattr(importlib.import_module(module), name, None) if module else None
    return isinstance(found, type) and issubclass(found, kind)


class RunCLI(LightningCLI):
    """LightningCLI with the framework's defaults (SNNModule, TensorBoard under ``runs/``, ``last.ckpt``)."""

    def runs_a_fit_loop(self) -> bool:
        """Whether this command trains or evaluates (and so gets the checkpoint and progress-bar defaults)."""
        return True

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        trainer = config.get("trainer")
        if trainer is None or not self.runs_a_fit_loop():
            return
        callbacks = trainer.get("callbacks") or []
        callbacks = list(callbacks) if isinstance(callbacks, list) else [callbacks]
        # Lightning's implicit ModelCheckpoint keeps no last.ckpt, which `--ckpt_path last` needs. The
        # file is named by the 1-based epoch SNNModule logs (Lightning's default name would read the
        # logged `step`, the TensorBoard x axis, not the optimizer step count).
        if trainer.get("enable_checkpointing") is not False and not any(_is_a(entry, ModelCheckpoint) for entry in callbacks):
            callbacks.append(Namespace(class_path="lightning.pytorch.callbacks.ModelCheckpoint", init_args=Namespace(save_last=True, filename="{epoch}")))
        if trainer.get("enable_progress_bar") is not False and not any(_is_a(entry, ProgressBar) for entry in callbacks):
            callbacks.append(Namespace(class_path="nwave_lightning.console.EpochProgressBar", init_args=Namespace()))
        trainer["callbacks"] = callbacks


def cli_kwargs(**overrides: Any) -> dict[str, Any]:
    """The LightningCLI arguments every run shares (``overrides`` win)."""
    kwargs: dict[str, Any] = dict(
        model_class=SNNModule,
        datamodule_class=LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_defaults=TRAINER_DEFAULTS,
        auto_configure_optimizers=False,  # SNNModule takes optimizer / lr_scheduler itself
        save_config_kwargs={"overwrite": True},
    )
    kwargs.update(overrides)
    return kwargs


def build_from_config(config: dict) -> Run:
    """Instantiate model, datamodule and Trainer from a fit config (nothing runs).

    Raises:
        ValueError: naming what in ``config`` does not parse (a wrong key, a bad class path).
    """
    quiet_third_party()
    quiet = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in quiet]
    try:
        for logger in quiet:  # device and seed lines belong to the run, not to building it
            logger.setLevel(logging.WARNING)
        with warnings.catch_warnings():
            # LightningCLI warns (with the whole config) when args come with a command line; here they are meant to.
            warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended")
            # A config may hold objects built already (an HPOWrapper trial's model, loss, data); they are kept as they are.
            warnings.filterwarnings("ignore", message=r"\s*Unable to serialize instance")
            cli = RunCLI(**cli_kwargs(args=config, run=False, save_config_callback=None))
    except SystemExit as err:  # jsonargparse reports and exits on a bad config
        raise ValueError(f"build_from_config: the config does not parse (exit status {err.code}); see the message above") from None
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
    return Run(cli.model, cli.datamodule, cli.trainer, dict(cli.config_init["trainer"]))
