"""``BestModelCheckpoint``: the vendor SDK's ``best_model.pt`` and ``best_selected_metric``.

The file holds plain data and tensors only, so it loads with
``torch.load(path, weights_only=True)``, the vendor SDK's "restore best checkpoint" recipe.

Example:
    >>> import os, tempfile, torch
    >>> cb = BestModelCheckpoint(metric="val_acc", mode="max", dirpath=tempfile.mkdtemp())
    >>> cb.best_model_path is None   # nothing written before the first improvement
    True
    >>> net = torch.nn.Linear(2, 1)
    >>> path = cb.save({"epoch": 3, "best_selected_metric": 0.9, "state_dict": net.state_dict(), "hyper_parameters": {}})
    >>> payload = torch.load(path, map_location="cpu", weights_only=True)
    >>> payload["epoch"], payload["best_selected_metric"], os.path.basename(path)
    (3, 0.9, 'best_model.pt')
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Mapping, Optional

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from ..io import atomic_write
from ._common import as_float, check_metric_name, check_mode, config_kwargs, init_keys, is_better, log_scalar, metric_value, network, plain_data

__all__ = ["BestModelCheckpoint"]


class BestModelCheckpoint(Callback):
    """Track the best value of a metric, log it every epoch and keep the best weights on disk.

    At the end of each training epoch in which validation ran (every epoch
    without validation) the metric is read, rank 0's value is broadcast so
    every rank takes the same decision, and on improvement (strictly lower for
    ``min``, higher for ``max``; NaN never improves) rank 0 writes
    ``<dirpath>/<filename>`` atomically (temp file + ``os.replace``) with::

        {"epoch": int (1-based), "best_selected_metric": float, "metric": str, "mode": str,
         "state_dict": weights of the network, "hyper_parameters": plain-typed hparams}

    ``best_selected_metric`` (the best so far) is logged every epoch. The
    network is ``pl_module.net`` when present (SNNModule), else the module.
    On resume the best score comes back from the checkpoint and, if the run
    now logs to a new directory, the previous best file is copied there.
    With :class:`SignAnnealing` the ``state_dict`` holds the parametrised keys
    (``...parametrizations.weight.original`` and ``...sign_logits``): load it
    into a network after ``install_sign_parametrization(net)``, then
    ``export_hard_signed(net)`` for deployable weights.

    Extension point: override :meth:`payload` to change what the file holds
    (keep it to tensors and plain types for ``weights_only`` loading).

    Args:
        metric: A logged key (the HPO wrapper's ``metric``), e.g. ``"val_loss"``, ``"val_recall"``.
        mode: ``"min"`` or ``"max"``.
        dirpath: Directory of the file; default the trainer's ``log_dir``
            (the TensorBoard version directory) or ``default_root_dir``.
        filename: File name, default ``best_model.pt``.

    Attributes:
        best_score: Best value so far (``None`` before the first).
        best_epoch: Its 1-based epoch.
        improved: Whether the last checked epoch improved (the HPO reporter uses it).
        best_model_path: Path of the file once written, else ``None``.
    """

    def __init__(self, metric: str = "val_loss", mode: str = "min", dirpath: Optional[str] = None, filename: str = "best_model.pt") -> None:
        owner = type(self).__name__
        self.metric = check_metric_name(owner, metric)
        self.mode = check_mode(owner, mode)
        if dirpath is not None and not isinstance(dirpath, (str, os.PathLike)):
            raise ValueError(f"{owner}: dirpath={dirpath!r} must be a directory path or None (the trainer's log_dir).")
        if not isinstance(filename, str) or not filename or os.sep in filename:
            raise ValueError(f"{owner}: filename={filename!r} must be a plain file name such as 'best_model.pt'.")
        self.dirpath = None if dirpath is None else os.fspath(dirpath)
        self.filename = filename
        self.best_score: Optional[float] = None
        self.best_epoch: Optional[int] = None
        self.improved = False
        self.best_model_path: Optional[str] = None
        self._previous_path: Optional[str] = None
        self._validated = False

    @property
    def state_key(self) -> str:
        return self._generate_state_key(metric=self.metric, mode=self.mode)

    @property
    def target_path(self) -> Optional[str]:
        """Where the file goes (known once the trainer is set up, or when ``dirpath`` was given)."""
        return None if self.dirpath is None else os.path.join(self.dirpath, self.filename)

    # -- extension point -----------------------------------------------------
    def payload(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> dict[str, Any]:
        """What ``best_model.pt`` holds for the current (improved) epoch. Override to change it."""
        state = {key: value.detach().cpu().clone() for key, value in network(pl_module).state_dict().items()}
        return {
            "epoch": int(self.best_epoch),
            "best_selected_metric": float(self.best_score),
            "metric": self.metric,
            "mode": self.mode,
            "state_dict": state,
            "hyper_parameters": plain_data(dict(pl_module.hparams)) or {},
        }

    def save(self, payload: dict[str, Any]) -> str:
        """Write ``payload`` atomically to :attr:`target_path` and return the path (call on one rank only)."""
        if self.dirpath is None:
            raise RuntimeError(f"{type(self).__name__}: no dirpath yet; pass dirpath= or let the Trainer set it up.")
        bad = [key for key, value in (payload.get("state_dict") or {}).items() if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all())]
        if bad:  # the file keeps its last finite weights; a NaN best model is never written
            raise ValueError(f"{type(self).__name__}: refusing to write {self.filename} with non-finite weights ({', '.join(bad[:4])}).")
        os.makedirs(self.dirpath, exist_ok=True)
        path = self.target_path
        atomic_write(path, lambda tmp: torch.save(payload, tmp))
        self.best_model_path = path
        return path

    # -- Lightning hooks ---------------------------------------------------
    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if stage == "fit" and self.dirpath is None:
            # trainer.log_dir broadcasts from rank 0: every rank must ask, here, together.
            self.dirpath = trainer.log_dir or trainer.default_root_dir

    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        previous, target = self._previous_path, self.target_path
        if not previous or previous == target:
            return
        if not os.path.isfile(previous):  # e.g. resumed on another machine: the old file is gone
            self.best_model_path = None
            return
        if trainer.is_global_zero:
            os.makedirs(self.dirpath, exist_ok=True)
            atomic_write(target, lambda tmp: shutil.copyfile(previous, tmp))
        self.best_model_path = target

    def on_train_epoch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._validated = False

    def on_validation_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if not trainer.sanity_checking:
            self._validated = True

    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self.improved = False
        if self._validated or not trainer.enable_validation:
            value = as_float(trainer.strategy.broadcast(metric_value(trainer, self.metric, type(self).__name__), src=0))
            if is_better(value, self.best_score, self.mode):
                self.best_score, self.best_epoch, self.improved = value, trainer.current_epoch + 1, True
                if trainer.is_global_zero:
                    self.save(self.payload(trainer, pl_module))
                else:
                    self.best_model_path = self.target_path
        log_scalar(pl_module, "best_selected_metric", float("nan") if self.best_score is None else self.best_score)

    # -- state ---------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "best_epoch": self.best_epoch, "best_model_path": self.best_model_path}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_score = state_dict.get("best_score")
        self.best_epoch = state_dict.get("best_epoch")
        self._previous_path = state_dict.get("best_model_path")
        self.best_model_path = self._previous_path

    @classmethod
    def from_config(cls, cfg: Optional[Mapping[str, Any]]) -> Optional["BestModelCheckpoint"]:
        """Build from a ``{"metric": ..., "mode": ...}`` dict (the HPO wrapper's selection); ``None`` when empty.

        Raises:
            ValueError: unknown keys (listing the accepted ones) or bad values.
        """
        kwargs = config_kwargs(cls.__name__, cfg, init_keys(cls))
        return None if kwargs is None else cls(**kwargs)
