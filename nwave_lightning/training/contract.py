"""The model output contract and the batch format, checked with the vendor SDK's guidance.

A trainable model maps ``x (B, T, F)`` to ``(spikes_list, membranes_list)``:
two lists (or tuples) of the same non-zero length whose ``i``-th entries are
``(B, T, N_i)`` tensors of the same shape; the last spikes tensor is the
readout. Batches are ``(x, y)`` or ``(x, y, meta)``. Variable-length data
come padded at the end, with ``meta = {"mask": (B, T) bool}`` marking the real
steps (:func:`batch_mask`); losses and metrics that take ``mask`` then ignore
the padded steps.

Example:
    >>> import torch
    >>> x = torch.zeros(4, 10, 3)
    >>> validate_contract(([torch.zeros(4, 10, 5)], [torch.zeros(4, 10, 5)]), x)
    >>> validate_contract((torch.zeros(4, 10, 5), torch.zeros(4, 10, 5)), x)
    Traceback (most recent call last):
    ...
    nwave_lightning.training.contract.ContractError: Model output contract broken (rule 2: ...
    >>> unpack_batch((x, torch.zeros(4)))[2] is None
    True
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["BatchFormatError", "ContractError", "batch_mask", "unpack_batch", "validate_contract"]

# The vendor SDK's "Troubleshooting" answers, quoted so that users recognise them.
CONTRACT_HELP = (
    "Check that your model returns exactly\n"
    "    return spikes_list, membranes_list\n"
    "with same length, matching shapes, and rank 3 tensors (B, T, N). Rules: (1) forward returns a pair "
    "(spikes_list, membranes_list); (2) both are lists/tuples; (3) of the same non-zero length; (4) every "
    "entry is a torch.Tensor; (5) spikes_list[i] and membranes_list[i] have the same shape; (6) every tensor "
    "has rank 3 (B, T, N); (7) B equals the batch size of x."
)
BATCH_HELP = (
    "The training step accepts both (x, y) and (x, y, meta); make sure your loader yields a tuple/list "
    "with x a tensor of shape (B, T, F) and y the targets."
)


class ContractError(ValueError):
    """A model's output breaks the ``(spikes_list, membranes_list)`` contract."""


class BatchFormatError(ValueError):
    """A dataloader batch is not ``(x, y)`` or ``(x, y, meta)``."""


def _fail(rule: int, what: str, detail: str) -> None:
    raise ContractError(f"Model output contract broken (rule {rule}: {what}): {detail}\n{CONTRACT_HELP}")


def _shape(value: Any) -> str:
    return str(tuple(value.shape)) if isinstance(value, torch.Tensor) else type(value).__name__


def validate_contract(outputs: Any, x: torch.Tensor | None = None) -> None:
    """Raise :class:`ContractError` naming the broken rule, the layer and the shapes.

    Args:
        outputs: What ``model(x)`` returned.
        x: The model input; when given, each tensor's batch size must match it.

    Raises:
        ContractError: the first broken rule of ``CONTRACT_HELP``.
    """
    if not isinstance(outputs, (tuple, list)) or len(outputs) != 2:
        got = f"a {type(outputs).__name__}" + (f" of length {len(outputs)}" if isinstance(outputs, (tuple, list)) else "")
        _fail(1, "forward returns (spikes_list, membranes_list)", f"forward returned {got}.")
    spikes_list, membranes_list = outputs
    for name, value in (("spikes_list", spikes_list), ("membranes_list", membranes_list)):
        if not isinstance(value, (list, tuple)):
            hint = " Wrap single-layer outputs: `return [spk], [mem]`." if isinstance(value, torch.Tensor) else ""
            _fail(2, "both are lists/tuples", f"{name} is a {type(value).__name__} of shape {_shape(value)}.{hint}")
    if len(spikes_list) == 0 or len(spikes_list) != len(membranes_list):
        _fail(
            3,
            "same non-zero length",
            f"len(spikes_list)={len(spikes_list)}, len(membranes_list)={len(membranes_list)}.",
        )
    batch = x.shape[0] if isinstance(x, torch.Tensor) and x.dim() > 0 else None
    for i, (spikes, membranes) in enumerate(zip(spikes_list, membranes_list)):
        for name, value in (("spikes_list", spikes), ("membranes_list", membranes)):
            if not isinstance(value, torch.Tensor):
                _fail(4, "every entry is a torch.Tensor", f"layer {i}: {name}[{i}] is a {type(value).__name__}.")
        if spikes.shape != membranes.shape:
            _fail(
                5,
                "spikes_list[i] and membranes_list[i] have the same shape",
                f"layer {i}: spikes {_shape(spikes)} vs membranes {_shape(membranes)}.",
            )
        if spikes.dim() != 3:
            _fail(6, "rank 3 (B, T, N)", f"layer {i}: shape {_shape(spikes)} has rank {spikes.dim()}.")
        if batch is not None and spikes.shape[0] != batch:
            _fail(
                7,
                "batch size matches x",
                f"layer {i}: shape {_shape(spikes)} has B={spikes.shape[0]} but x has shape {_shape(x)} "
                f"(B={batch}); keep the batch first: (B, T, N).",
            )


def unpack_batch(batch: Any, require_target: bool = True) -> tuple[torch.Tensor, Any, Any]:
    """Split a batch into ``(x, y, meta)``.

    Args:
        batch: ``(x, y)`` or ``(x, y, meta)`` (tuple or list); with
            ``require_target=False`` (prediction) also a bare tensor ``x`` or ``(x,)``.
        require_target: Whether ``y`` must be present.

    Returns:
        ``(x, y, meta)``; ``y`` and ``meta`` are ``None`` when absent.

    Raises:
        BatchFormatError: for any other structure, saying what was received.
    """
    if not require_target and isinstance(batch, torch.Tensor):
        return batch, None, None
    allowed = (2, 3) if require_target else (1, 2, 3)
    if not isinstance(batch, (tuple, list)) or len(batch) not in allowed:
        if isinstance(batch, (tuple, list)):
            got = f"a {type(batch).__name__} of {len(batch)} element(s)"
        elif isinstance(batch, torch.Tensor):
            got = f"a bare tensor of shape {tuple(batch.shape)} (no targets)"
        else:
            got = f"a {type(batch).__name__}"
        raise BatchFormatError(f"Dataloader batch format error: got {got}, expected (x, y) or (x, y, meta). {BATCH_HELP}")
    x = batch[0]
    if not isinstance(x, torch.Tensor):
        raise BatchFormatError(f"Dataloader batch format error: x is a {type(x).__name__}; expected (x, y) or (x, y, meta) with x a tensor. {BATCH_HELP}")
    y = batch[1] if len(batch) > 1 else None
    meta = batch[2] if len(batch) > 2 else None
    return x, y, meta


def batch_mask(meta: Any, x: torch.Tensor) -> torch.Tensor | None:
    """The padding mask a batch carries in ``meta["mask"]`` (``None`` without one).

    Args:
        meta: The batch's third element (``None``, a tensor, or a dict).
        x: The batch's input ``(B, T, F)``; the mask must be ``(B, T)``.

    Raises:
        BatchFormatError: a mask of another shape, or a sample without a real step.

    Example:
        >>> import torch
        >>> x = torch.zeros(2, 3, 1)
        >>> batch_mask({"mask": torch.tensor([[True, True, False], [True, True, True]])}, x).sum().item()
        5
        >>> batch_mask(None, x) is None
        True
    """
    if not isinstance(meta, dict) or meta.get("mask") is None:
        return None
    mask = meta["mask"]
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != tuple(x.shape[:2]):
        raise BatchFormatError(
            f"Dataloader batch format error: meta['mask'] has shape {_shape(mask)} but x has shape {_shape(x)}; "
            "the mask must be (B, T), true on real steps and false on padding."
        )
    if mask.numel() and not bool(mask.any(dim=1).all()):
        raise BatchFormatError("Dataloader batch format error: meta['mask'] has a sample without any real step.")
    return mask
