"""``NonFiniteGuard``: a NaN or Inf stops the run where it appears, before it reaches the weights.

One NaN in a dataset spreads through the first synapse's gradient into every
weight; the run then goes on with a dead network and reports plausible-looking
numbers. This callback checks, in order, every batch's input tensors (all
stages), the training loss before ``backward``, every gradient before the
optimiser step and every parameter after it, and raises :class:`NonFiniteError`
naming the stage, the epoch, the batch index and the tensor at the first
non-finite value. The step that would have written it into the weights never
runs, so the weights, ``last.ckpt`` and ``best_model.pt`` stay the last finite
ones; as a last line, a checkpoint whose weights are not finite is refused.

:class:`~nwave_lightning.training.SNNModule` adds one to every run (default on);
give the trainer ``NonFiniteGuard(enabled=False)`` to switch it off.

Example:
    >>> import torch
    >>> guard = NonFiniteGuard()
    >>> guard.check_tensors({"batch[0]": torch.ones(2, 3)}, "input batch", stage="train", epoch=0, batch_idx=5)
    >>> guard.check_tensors({"batch[0]": torch.tensor([1.0, float("nan")])}, "input batch", stage="train", epoch=0, batch_idx=5)
    Traceback (most recent call last):
    nwave_lightning.callbacks.non_finite.NonFiniteError: NonFiniteGuard: 1 NaN and 0 Inf of 2 values in the input batch batch[0] (shape (2,)) at stage train, epoch 1, batch index 5. ...
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

__all__ = ["NonFiniteError", "NonFiniteGuard"]

_FIXES = {
    "input batch": "Clean the data (find the sample with torch.isfinite(x).all(dim=(1, 2)) and fix or drop it).",
    "loss": "Lower the learning rate, check the loss's inputs, or clip gradients (trainer.gradient_clip_val).",
    "gradient": "Lower the learning rate or clip gradients (trainer.gradient_clip_val); check the surrogate's sharpness.",
    "parameter": "The optimiser step overflowed the weights: lower the learning rate or clip gradients.",
}


class NonFiniteError(RuntimeError):
    """A NaN or Inf found in a batch, the loss, a gradient or a parameter during a run."""


def _batch_tensors(batch: Any, name: str = "batch") -> Iterator[tuple[str, torch.Tensor]]:
    """The floating-point tensors of a (nested) batch with their positions, e.g. ``batch[0]``, ``batch['x']``."""
    if isinstance(batch, torch.Tensor):
        if batch.is_floating_point() or batch.is_complex():
            yield name, batch
    elif isinstance(batch, Mapping):
        for key, value in batch.items():
            yield from _batch_tensors(value, f"{name}[{key!r}]")
    elif isinstance(batch, (list, tuple)):
        for index, value in enumerate(batch):
            yield from _batch_tensors(value, f"{name}[{index}]")


class NonFiniteGuard(Callback):
    """Stop the run with :class:`NonFiniteError` at the first NaN / Inf in inputs, loss, gradients or weights.

    Under 16-bit mixed precision the gradient check is skipped: the gradient
    scaler produces Inf gradients on purpose and skips those steps itself.

    Args:
        enabled: ``False`` turns every check off (the default guard of ``SNNModule`` then stays out).
    """

    def __init__(self, enabled: bool = True) -> None:
        if not isinstance(enabled, bool):
            raise ValueError(f"NonFiniteGuard: enabled={enabled!r} must be True or False.")
        self.enabled = enabled
        self._batch_idx = 0

    def check_tensors(self, tensors: Mapping[str, torch.Tensor], what: str, *, stage: str, epoch: int, batch_idx: int) -> None:
        """Raise :class:`NonFiniteError` if any of ``tensors`` holds a NaN or Inf.

        Args:
            tensors: ``name -> tensor`` (the name goes into the message).
            what: One of ``"input batch"``, ``"loss"``, ``"gradient"``, ``"parameter"`` (picks the suggested fix).
            stage: ``train``, ``validate``, ``test`` or ``predict``.
            epoch: 0-based epoch (printed 1-based, as the logs count).
            batch_idx: 0-based batch index within the epoch.
        """
        if not self.enabled or not tensors:
            return
        # One reduction and one host sync for all tensors; names only once something is wrong.
        values = list(tensors.values())
        device = values[0].device
        finite = torch.stack([torch.isfinite(t.detach()).all().to(device) for t in values]).cpu()
        if bool(finite.all()):
            return
        bad = [name for name, ok in zip(tensors, finite.tolist()) if not ok]
        first = tensors[bad[0]].detach()
        nans, infs = int(torch.isnan(first).sum()), int(torch.isinf(first).sum())
        more = f" (and {len(bad) - 1} more: {', '.join(bad[1:4])}{', ...' if len(bad) > 4 else ''})" if len(bad) > 1 else ""
        raise NonFiniteError(
            f"NonFiniteGuard: {nans} NaN and {infs} Inf of {first.numel()} values in the {what} {bad[0]} "
            f"(shape {tuple(first.shape)}){more} at stage {stage}, epoch {epoch + 1}, batch index {batch_idx}. "
            f"The run stopped before the value reached the weights: checkpoints on disk hold the last finite ones. "
            f"{_FIXES[what]}"
        )

    # -- inputs, every stage -------------------------------------------------
    def _check_batch(self, trainer: "pl.Trainer", batch: Any, batch_idx: int) -> None:
        stage = trainer.state.stage.value if trainer.state.stage is not None else "run"
        tensors = dict(_batch_tensors(batch))
        self.check_tensors(tensors, "input batch", stage=stage, epoch=trainer.current_epoch, batch_idx=batch_idx)

    def on_train_batch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any, batch_idx: int) -> None:
        self._batch_idx = batch_idx
        self._check_batch(trainer, batch, batch_idx)

    def on_validation_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._check_batch(trainer, batch, batch_idx)

    def on_test_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._check_batch(trainer, batch, batch_idx)

    def on_predict_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._check_batch(trainer, batch, batch_idx)

    # -- training: loss, gradients, weights ------------------------------------
    def on_before_backward(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", loss: torch.Tensor) -> None:
        self.check_tensors({"training loss": loss}, "loss", stage="train", epoch=trainer.current_epoch, batch_idx=self._batch_idx)

    def on_before_optimizer_step(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", optimizer) -> None:
        if str(trainer.precision).startswith("16"):
            return
        grads = {f"of {name}": p.grad for name, p in pl_module.named_parameters() if p.grad is not None}
        self.check_tensors(grads, "gradient", stage="train", epoch=trainer.current_epoch, batch_idx=self._batch_idx)

    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any, batch: Any, batch_idx: int) -> None:
        params = {name: p for name, p in pl_module.named_parameters()}
        self.check_tensors(params, "parameter", stage="train", epoch=trainer.current_epoch, batch_idx=batch_idx)

    def on_save_checkpoint(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", checkpoint: dict[str, Any]) -> None:
        if not self.enabled:
            return
        state = checkpoint.get("state_dict") or {}
        bad = [key for key, value in state.items() if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all())]
        if bad:
            raise NonFiniteError(
                f"NonFiniteGuard: refusing to write a checkpoint whose weights are not finite ({', '.join(bad[:4])}"
                f"{', ...' if len(bad) > 4 else ''}) at epoch {trainer.current_epoch + 1}; the files on disk keep the last finite weights."
            )
