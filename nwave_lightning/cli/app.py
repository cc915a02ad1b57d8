"""The ``nwave`` command: a LightningCLI for SNNModule, any datamodule and the Trainer.

How configs compose, how a subcommand plugs in (``tune``, ``export``) and which errors the console
script prints as one line: ``docs/tune-cli.md``.

Example:
    >>> sorted(NWaveCLI.subcommands())
    ['export', 'fit', 'predict', 'test', 'tune', 'validate']
"""

from __future__ import annotations

import inspect
import logging
import os
import shlex
import sys
import traceback
import warnings
from typing import Any, Optional

from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities import rank_zero_only
from torch import nn

from .export import EXPORT_SKIPPED_ARGS, export as _export_subcommand
from .tune import TUNE_SKIPPED_ARGS, tune as _tune_subcommand
from ..chip_keys import CHIP_STAGES, chip_twin
from .. import data as _builtin_data, models as _builtin_models  # listed in --help (known subclasses)
from ..callbacks.best_checkpoint import BestModelCheckpoint
from ..console import quiet_third_party
from ..deploy.formats import export_format
from ..run import DEFAULT_LOG_DIR, RunCLI, cli_kwargs
from ..ckpt_args import settle_ckpt_path

__all__ = ["NWaveCLI", "NWaveTrainer", "console_main", "main"]

# Lightning's ModelCheckpoint says this of a folder that already holds checkpoints; resuming
# (`--ckpt_path`) continues in that folder on purpose.
_RESUMED_FOLDER_WARNING = r"Checkpoint directory .* exists and is not empty"
# Errors raised in this folder are the framework's own checks (console_main prints them as one line).
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class NWaveTrainer(Trainer):
    """The Trainer behind ``nwave``; subcommands beyond fit/validate/test/predict are its methods."""

    tune = _tune_subcommand  # `nwave tune`: Ray Tune over a fit config (imports Ray only when run)
    export = _export_subcommand  # `nwave export`: a checkpoint to a chip file or NIR


class NWaveCLI(RunCLI):
    """The ``nwave`` command: :class:`~nwave_lightning.run.RunCLI` plus the ``tune`` and ``export`` subcommands."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Subcommand name -> Trainer-method arguments the CLI fills itself."""
        return {**LightningCLI.subcommands(), "tune": set(TUNE_SKIPPED_ARGS), "export": set(EXPORT_SKIPPED_ARGS)}

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand not in LightningCLI.subcommands():
            # tune / export: the Trainer's device lines and LightningCLI's "Seed set to" (printed
            # before before_instantiate_classes) are not theirs.
            for name in ("lightning.pytorch", "lightning.fabric"):
                logging.getLogger(name).setLevel(logging.WARNING)
        if subcommand == "export":
            # Before LightningCLI reads the checkpoint and builds the model: a wrong suffix fails first.
            export_format(self.config["export"].get("output"), name="output")
        if subcommand:
            # `last` -> newest intact checkpoint, damaged files and overridden hyper-parameters refused;
            # before LightningCLI reads the checkpoint's hyper-parameters.
            argv = args if isinstance(args, (list, tuple)) else (sys.argv[1:] if args is None else None)
            settle_ckpt_path(self.config[subcommand], subcommand, DEFAULT_LOG_DIR, argv)

    def runs_a_fit_loop(self) -> bool:
        return self.subcommand in LightningCLI.subcommands()

    def before_fit(self) -> None:
        if self.config["fit"].get("ckpt_path"):
            # Installed inside main()'s catch_warnings: it ends with this run.
            warnings.filterwarnings("ignore", message=_RESUMED_FOLDER_WARNING, category=UserWarning)
        self._describe_network()

    @rank_zero_only
    def _describe_network(self) -> None:
        net = getattr(self.model, "net", self.model)
        count = sum(parameter.numel() for parameter in self.model.parameters())
        print(f"Network: {type(net).__name__}, {count:,} parameters")

    @rank_zero_only
    def after_fit(self) -> None:
        verdict = _chip_verdict(self.trainer.callback_metrics)
        if verdict:
            print(f"\n{verdict}")
        logger = self.trainer.logger
        if logger is not None and getattr(logger, "log_dir", None):
            root = getattr(logger, "save_dir", None) or logger.log_dir
            print(f"\nTensorBoard logs: {os.path.abspath(logger.log_dir)}")
            print(f"  view them with: tensorboard --logdir {root}")
        checkpoint = getattr(self.trainer.checkpoint_callback, "last_model_path", "")
        if checkpoint:
            print(f"Last checkpoint:  {os.path.abspath(checkpoint)}\n  resume with: --ckpt_path last")
        best = _best_model_lines(self.trainer.callbacks, self.config["fit"].get("config"))
        if best:
            print(best)


def _chip_verdict(metrics) -> str:
    """One line with the last epoch's float validation values and their chip-ready twins."""
    pairs = []
    for key in sorted(metrics):
        float_key = chip_twin(key) if key.startswith(f"{CHIP_STAGES['val']}_") else None
        if float_key in metrics:
            pairs.append(f"{float_key} {float(metrics[float_key]):.4g} -> chip-ready {float(metrics[key]):.4g}")
    return "Last epoch (float -> chip-ready, to_chip(net)): " + "; ".join(pairs) if pairs else ""


def _best_model_lines(callbacks, config_files) -> str:
    """Where a ``BestModelCheckpoint`` left ``best_model.pt``, and the command that exports it."""
    for callback in callbacks:
        path = callback.best_model_path if isinstance(callback, BestModelCheckpoint) else None
        if path and os.path.isfile(path):
            path = os.path.abspath(path)
            configs = " ".join(f"--config {shlex.quote(str(file))}" for file in config_files or [])
            configs = configs or "--config <your config>"
            return (
                f"Best model:       {callback.metric} {callback.best_score:.4g} ({callback.mode}) at epoch "
                f"{callback.best_epoch}: {path}\n"
                f"  export it with: nwave export {configs} --ckpt_path {shlex.quote(path)} --output model.json"
            )
    return ""


def main(args: Optional[list[str]] = None, **overrides: Any) -> Optional[NWaveCLI]:
    """Run the ``nwave`` command in this process and return the CLI (for tests and the tune engine).

    ``nwave`` and ``python -m nwave_lightning`` go through :func:`console_main`, which
    prints the errors this raises.

    Args:
        args: Command-line arguments (default: ``sys.argv[1:]``), or a config dict.
        overrides: Other ``LightningCLI`` arguments.
    """
    quiet_third_party()
    overrides.setdefault("parser_kwargs", {"description": _builtins_text()})
    with warnings.catch_warnings():  # the warning filters a run installs (NWaveCLI.before_fit) end with it
        return NWaveCLI(**cli_kwargs(trainer_class=NWaveTrainer, args=args, **overrides))


def _builtins_text() -> str:
    """The built-in networks and datamodules, for ``--help`` (read from the packages' ``__all__``)."""

    def names(package, kind):
        classes = [name for name in package.__all__ if inspect.isclass(getattr(package, name))]
        return ", ".join(f"{package.__name__}.{name}" for name in classes if issubclass(getattr(package, name), kind))

    return (
        "Train, evaluate, tune and export hardware-aware spiking networks for the NWAVE H1 cores.\n"
        f"Built-in networks (model.init_args.net): {names(_builtin_models, nn.Module)}.\n"
        f"Built-in datamodules (data): {names(_builtin_data, LightningDataModule)}."
    )


def console_main() -> None:
    """The ``nwave`` console script: :func:`main`, returning nothing (a console script's result goes to ``sys.exit``).

    A ``ValueError`` raised by the framework's own checks (``PreflightError`` and ``MemoryGuardError`` too) says
    what to change: it is printed as ``nwave: error: <message>`` with exit status 2, as for a bad option. One raised
    outside the framework (a user's datamodule, a library) keeps its traceback.
    """
    try:
        main()
    except ValueError as error:
        innermost_frame = list(traceback.walk_tb(error.__traceback__))[-1][0]
        if not os.path.abspath(innermost_frame.f_code.co_filename).startswith(_PACKAGE_DIR):
            raise
        print(f"nwave: error: {error}", file=sys.stderr)
        sys.exit(2)
