"""The ``nwave`` command: a LightningCLI for SNNModule, any datamodule and the Trainer.

Usage::

    nwave fit --config configs/quickstart.yaml
    nwave fit --config configs/experiment/digits.yaml --trainer.max_epochs=5
    nwave fit --config configs/quickstart.yaml --ckpt_path last       # resume
    nwave validate --config configs/quickstart.yaml --ckpt_path runs/.../last.ckpt
    python -m nwave_lightning fit --print_config                       # every option

A config has four sections: ``model`` (``class_path:
nwave_lightning.module.SNNModule`` or a subclass, its ``init_args`` holding
``net``, ``loss``, ``metrics`` as class paths), ``data`` (any
LightningDataModule by class path), ``trainer`` and ``seed_everything``.
Several ``--config`` files merge left to right, so the groups under
``configs/`` (model, data, trainer, callbacks, experiment) compose.

Defaults that differ from a bare Trainer: a TensorBoard logger writing to
``runs/<name>/version_<n>`` without the ``hp_metric`` placeholder, and (unless
the config brings a checkpoint callback) a ``ModelCheckpoint`` keeping ``last.ckpt``. ``--ckpt_path last`` resumes in the
newest version folder of the same logger name.

Adding a subcommand (how ``tune`` plugs in): list it in
:meth:`NWaveCLI.subcommands` with the Trainer arguments it skips, and give
:class:`NWaveTrainer` a method of the same name; LightningCLI turns the
method's typed arguments into options and calls it with ``model`` and
``datamodule``. ``before_<name>`` / ``after_<name>`` methods of the CLI run around it.

``nwave tune --config configs/tune_<x>.yaml`` (a fit config plus a
``search_space``) runs Ray Tune over it; see :mod:`nwave_lightning.hpo.tune_cli`.
``nwave export --config <fit config> --ckpt_path <checkpoint> --output model.json``
writes the trained network for the chip (``.json`` / ``.npz`` chip file, ``.nir``);
see :mod:`nwave_lightning.deploy.export_cli`.

Example:
    >>> sorted(NWaveCLI.subcommands())
    ['export', 'fit', 'predict', 'test', 'tune', 'validate']
"""

from __future__ import annotations

import glob
import os
import re
import sys
from typing import Any, Optional

from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities import rank_zero_only

from .deploy.export_cli import EXPORT_SKIPPED_ARGS, export as _export_subcommand, export_format
from .hpo.tune_cli import TUNE_SKIPPED_ARGS, tune as _tune_subcommand
from .chip_keys import CHIP_STAGES, chip_twin
from .ckpt_args import settle_ckpt_path
from .module import SNNModule

__all__ = ["NWaveCLI", "NWaveTrainer", "main", "DEFAULT_LOG_DIR"]

DEFAULT_LOG_DIR = "runs"
TRAINER_DEFAULTS: dict[str, Any] = {
    "logger": {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        # hp_metric is a placeholder scalar outside the vendor SDK's key table.
        "init_args": {"save_dir": DEFAULT_LOG_DIR, "name": "nwave", "default_hp_metric": False},
    },
}


class NWaveTrainer(Trainer):
    """The Trainer behind ``nwave``; subcommands beyond fit/validate/test/predict are its methods."""

    tune = _tune_subcommand  # `nwave tune`: Ray Tune over a fit config (imports Ray only when run)
    export = _export_subcommand  # `nwave export`: a checkpoint to a chip file or NIR


class NWaveCLI(LightningCLI):
    """LightningCLI with nwave defaults: SNNModule, TensorBoard under ``runs/``, ``last.ckpt``."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Subcommand name -> Trainer-method arguments the CLI fills itself."""
        return {**LightningCLI.subcommands(), "tune": set(TUNE_SKIPPED_ARGS), "export": set(EXPORT_SKIPPED_ARGS)}

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list) -> Trainer:
        # Lightning's implicit ModelCheckpoint keeps no last.ckpt, which `--ckpt_path last` needs;
        # add one that does unless the config brings its own checkpoint callback.
        configured = [*(config.get("callbacks") or []), *callbacks]
        if config.get("enable_checkpointing", True) is not False and not any(isinstance(c, ModelCheckpoint) for c in configured):
            callbacks = [*callbacks, ModelCheckpoint(save_last=True)]
        return super()._instantiate_trainer(config, callbacks)

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        if self.config.get("subcommand") == "export":
            # Checked here, before LightningCLI reads the checkpoint's hyper-parameters and builds the
            # model and the data: a wrong --output suffix fails before anything is loaded.
            export_format(self.config["export"].get("output"))
        # Fault handling: `last` -> newest intact checkpoint, damaged files and overridden
        # hyper-parameters refused; before LightningCLI reads the checkpoint's hyper-parameters.
        subcommand = self.config.get("subcommand")
        argv = args if isinstance(args, (list, tuple)) else (sys.argv[1:] if args is None else None)
        settle_ckpt_path(self.config.get(subcommand) if subcommand else None, subcommand, DEFAULT_LOG_DIR, argv)

    def before_instantiate_classes(self) -> None:
        if self.subcommand:
            _resume_in_latest_version(self.config[self.subcommand])

    @rank_zero_only
    def after_fit(self) -> None:
        verdict = _chip_verdict(self.trainer.callback_metrics)
        if verdict:
            print(f"\n{verdict}")
        logger = self.trainer.logger
        if logger is not None and getattr(logger, "log_dir", None):
            root = getattr(logger, "save_dir", None) or logger.log_dir
            print(f"\nTensorBoard logs: {os.path.abspath(logger.log_dir)}\n  view them with: tensorboard --logdir {root}")
        checkpoint = getattr(self.trainer.checkpoint_callback, "last_model_path", "")
        if checkpoint:
            print(f"Last checkpoint:  {os.path.abspath(checkpoint)}\n  resume with: --ckpt_path last")


def _chip_verdict(metrics) -> str:
    """One line with the last epoch's float validation values and their chip-ready twins."""
    pairs = []
    for key in sorted(metrics):
        float_key = chip_twin(key) if key.startswith(f"{CHIP_STAGES['val']}_") else None
        if float_key in metrics:
            pairs.append(f"{float_key} {float(metrics[float_key]):.4g} -> chip-ready {float(metrics[key]):.4g}")
    return "Last epoch (float -> chip-ready, to_chip(net)): " + "; ".join(pairs) if pairs else ""


def _resume_in_latest_version(config) -> None:
    """With ``--ckpt_path last`` and no explicit logger version, log into the newest version folder.

    ModelCheckpoint looks for ``last.ckpt`` under the logger's version folder;
    a fresh ``version_<n+1>`` would hold none, and Lightning would silently
    start from scratch.
    """
    if config.get("ckpt_path") != "last":
        return
    logger = config.get("trainer", {}).get("logger")
    if not logger or isinstance(logger, bool) or isinstance(logger, list):
        return
    init_args = logger.get("init_args") if hasattr(logger, "get") else None
    if init_args is None or init_args.get("version") is not None:
        return
    folder = os.path.join(init_args.get("save_dir") or DEFAULT_LOG_DIR, init_args.get("name") or "")
    versions = []
    for path in glob.glob(os.path.join(folder, "version_*", "checkpoints", "last*.ckpt")):
        match = re.search(r"version_(\d+)", path)
        if match:
            versions.append(int(match.group(1)))
    if versions:
        init_args["version"] = max(versions)


def main(args: Optional[list[str]] = None, **overrides: Any) -> Optional[NWaveCLI]:
    """Entry point of ``nwave`` and ``python -m nwave_lightning``.

    Args:
        args: Command-line arguments (default: ``sys.argv[1:]``), or a config dict.
        overrides: Other ``LightningCLI`` arguments (``nwave tune`` trials build their model and
            data with ``main(args=config, run=False, save_config_callback=None)``, the fit path).
    """
    kwargs: dict[str, Any] = dict(
        model_class=SNNModule,
        datamodule_class=LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_class=NWaveTrainer,
        trainer_defaults=TRAINER_DEFAULTS,
        auto_configure_optimizers=False,  # SNNModule takes optimizer / lr_scheduler itself
        save_config_kwargs={"overwrite": True},
        args=args,
    )
    kwargs.update(overrides)
    return NWaveCLI(**kwargs)


def console_main() -> None:
    """The ``nwave`` console script.

    Console scripts pass the return value to ``sys.exit``; returning the CLI
    object (as :func:`main` does, for tests and the tune engine) would print it
    and exit with status 1 after a successful run.
    """
    main()
