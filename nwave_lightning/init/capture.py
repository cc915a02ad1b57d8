"""Run a model on a few loader batches and record what its H1 blocks see.

Forward hooks record, for every synapse/layer pair, the synapse's presynaptic
input and output current and the layer's spikes and pre-reset membrane. The
model's own ``forward`` runs unchanged, so frontends, preceding layers and
whatever wiring the model has are simulated exactly; both the sequence path
(one call with ``(B, T, N)``) and a step-wise time loop (``T`` calls with
``(B, N)``) are recorded as ``(B, T, N)``.

Example:
    >>> import torch
    >>> from nwave_lightning.layers import H1v2Synapse, H1v2Layer
    >>> net = torch.nn.Sequential(H1v2Synapse(3, 2), H1v2Layer(2, taus=20e-3, dt=1e-3))
    >>> inputs = batch_inputs([(torch.ones(4, 10, 3), torch.zeros(4))] * 2, n_batches=2, device=None)
    >>> rec = record(net, inputs, [(net[0], net[1])])[0]
    >>> tuple(rec.inputs.shape), tuple(rec.membrane.shape)
    ((8, 10, 3), (8, 10, 2))
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.utils.data import Dataset, IterableDataset

__all__ = ["Recording", "batch_inputs", "record"]


def _first_tensor(batch, index: int) -> torch.Tensor:
    """``x`` of a loader batch: a bare tensor, or the first item of (x,), (x, y), (x, y, meta)."""
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    raise ValueError(
        f"fluct_init: loader batch {index} is a {type(batch).__name__}; expected a tensor x or a tuple/list "
        "(x,), (x, y) or (x, y, meta) whose first item is the input tensor."
    )


def _real_steps(x: torch.Tensor, batch, index: int) -> torch.Tensor:
    """``x`` cut to the steps every sample really has when the batch carries a padding mask (``meta["mask"]``).

    Padding trails the real steps, so the first ``min_i(length_i)`` steps are real in every sample:
    the statistics then never see a padded (silent) step.
    """
    meta = batch[2] if isinstance(batch, (tuple, list)) and len(batch) > 2 else None
    mask = meta.get("mask") if isinstance(meta, dict) else None
    if mask is None:
        return x
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != tuple(x.shape[:2]):
        raise ValueError(
            f"fluct_init: batch {index} has meta['mask'] of shape {tuple(getattr(mask, 'shape', ()))} but x is "
            f"{tuple(x.shape)}; the mask must be (B, T), true on real steps and false on the padding after them."
        )
    real = mask.bool()
    leading = real.to(torch.int64).cumprod(dim=1).sum(dim=1)  # real steps before the first padded one
    misplaced = (real.sum(dim=1) != leading).nonzero().flatten().tolist() + (leading == 0).nonzero().flatten().tolist()
    if misplaced:
        sample = min(misplaced)
        raise ValueError(
            f"fluct_init: in batch {index}, sample {sample}'s meta['mask'] is {real[sample].int().tolist()[:12]}...: "
            "fluct_init reads padding only after the real steps (a mask true from step 0, then false to the end); "
            "pad each sequence at its end, as ArrayDataModule does."
        )
    return x[:, : int(leading.min())]


def batch_inputs(loader, n_batches: int, device: torch.device | None) -> list[torch.Tensor]:
    """The inputs of the first ``n_batches`` batches, moved to ``device``.

    They are materialised once so that every measurement sees the same data,
    even from a shuffling loader. A batch with a padding mask (``(x, y, {"mask": ...})``)
    is cut to the steps all its samples really have.
    """
    if isinstance(loader, Dataset) and not isinstance(loader, IterableDataset):
        # Iterating a map-style dataset yields single samples without the batch axis.
        raise ValueError(
            f"fluct_init: loader is a {type(loader).__name__} (a dataset of single samples); wrap it in a DataLoader, "
            "e.g. DataLoader(dataset, batch_size=16)."
        )
    inputs = []
    for index, batch in enumerate(loader):
        if index >= n_batches:
            break
        x = _real_steps(_first_tensor(batch, index), batch, index)
        inputs.append(x.to(device) if device is not None else x)
    if not inputs:
        raise ValueError("fluct_init: loader yielded no batches; pass a non-empty loader (e.g. the training DataLoader).")
    return inputs


class Recording(NamedTuple):
    """What one synapse/layer pair saw over all recorded batches, each ``(S, T, .)``."""

    inputs: torch.Tensor  # presynaptic input of the synapse
    current: torch.Tensor  # synapse output (current per step)
    spikes: torch.Tensor  # layer spikes
    membrane: torch.Tensor  # layer membrane before reset


def _assemble(calls: list[torch.Tensor], what: str) -> torch.Tensor:
    if not calls:
        raise ValueError(
            f"fluct_init: the {what} was never called by model(x); every synapse/layer pair must be used in forward."
        )
    ranks = {c.dim() for c in calls}
    if ranks == {2}:
        return torch.stack(calls, dim=1)
    if ranks == {3}:
        return torch.cat(calls, dim=1)
    raise ValueError(
        f"fluct_init: the {what} was called with inputs of rank {sorted(ranks)}; expected all (B, N) or all (B, T, N)."
    )


def record(model: nn.Module, inputs: list[torch.Tensor], pairs) -> list[Recording]:
    """Run ``model`` on every input and return one :class:`Recording` per pair."""
    per_pair: list[dict[str, list[torch.Tensor]]] = []
    handles = []

    def synapse_hook(store):
        def hook(module, args, output):
            store["inputs"].append(args[0].detach())
            store["current"].append(output.detach())

        return hook

    def layer_hook(store):
        def hook(module, args, output):
            store["spikes"].append(output[0].detach())
            store["membrane"].append(output[1].detach())

        return hook

    batches: list[list[dict[str, torch.Tensor]]] = [[] for _ in pairs]
    try:
        for synapse, layer in pairs:
            store = {"inputs": [], "current": [], "spikes": [], "membrane": []}
            per_pair.append(store)
            handles.append(synapse.register_forward_hook(synapse_hook(store)))
            handles.append(layer.register_forward_hook(layer_hook(store)))
        for x in inputs:
            for store in per_pair:
                for calls in store.values():
                    calls.clear()
            model(x)
            for index, ((synapse, layer), store) in enumerate(zip(pairs, per_pair)):
                owners = {"inputs": synapse, "current": synapse, "spikes": layer, "membrane": layer}
                batches[index].append({key: _assemble(calls, type(owners[key]).__name__) for key, calls in store.items()})
    finally:
        for handle in handles:
            handle.remove()
    recordings = []
    for per_batch in batches:
        # Batches of unequal length are cut to the shortest so they stack.
        steps = min(b["membrane"].shape[1] for b in per_batch)
        recordings.append(
            Recording(*(torch.cat([b[key][:, :steps] for b in per_batch], dim=0) for key in Recording._fields))
        )
    return recordings
