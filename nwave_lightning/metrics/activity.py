"""Per-layer activity: firing rate, dead neurons, membrane mean / variance.

``layer_activity`` computes the statistics of one batch; ``ActivityMetric``
accumulates them over an epoch and over DDP ranks. Keys (``i`` is the 0-based
index into ``spikes_list``), as in the vendor SDK's TensorBoard table:

* ``layer_<i>/firing_rate``: mean spikes per neuron per step.
* ``layer_<i>/dead_neurons``: neurons that never spiked in anything seen.
* ``layer_<i>/dead_neurons_fraction``: the same, divided by the layer width.
* ``layer_<i>/membrane_mean``, ``layer_<i>/membrane_var``: mean and population
  variance (``ddof=0``) of the membrane over batch, time and neurons.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat
from torchmetrics.utilities.distributed import gather_all_tensors

from ..loss._checks import check_step_mask

__all__ = ["ActivityMetric", "layer_activity"]

# Count states hold one running row each; rows are summed when read.
_SUMMED = ("spike_count", "samples", "membrane_sum", "membrane_sq_sum")
# Shape states: every row must be the same (all ranks run the same model).
_SHAPE = ("num_layers", "widths")


def _batch_rows(owner: str, spikes_list, membranes_list, mask=None) -> dict[str, torch.Tensor]:
    """Float64 rows of one batch: shape states and per-layer sums (over real steps under a padding mask)."""
    for name, value in (("spikes_list", spikes_list), ("membranes_list", membranes_list)):
        if isinstance(value, torch.Tensor) or not isinstance(value, Sequence) or len(value) == 0:
            raise ValueError(f"{owner}: {name} must be a non-empty list of (B, T, N) tensors, got {type(value).__name__}.")
    if len(spikes_list) != len(membranes_list):
        raise ValueError(
            f"{owner}: spikes_list has {len(spikes_list)} layers but membranes_list has {len(membranes_list)}; "
            "the model must return one membrane tensor per spike tensor."
        )
    widths, counts, samples, sums, squares = [], [], [], [], []
    for index, (spikes, membrane) in enumerate(zip(spikes_list, membranes_list)):
        if not isinstance(spikes, torch.Tensor) or not isinstance(membrane, torch.Tensor):
            raise ValueError(f"{owner}: layer {index}: spikes and membranes must be tensors.")
        if spikes.dim() < 2 or spikes.shape != membrane.shape or spikes.shape[-1] == 0:
            raise ValueError(
                f"{owner}: layer {index}: spikes {tuple(spikes.shape)} and membranes {tuple(membrane.shape)} must "
                "have the same (B, T, N) shape."
            )
        width = spikes.shape[-1]
        weights = None if mask is None else check_step_mask(owner, mask, spikes.detach().to(torch.float64))
        spikes = spikes.detach().to(torch.float64).reshape(-1, width)
        membrane = membrane.detach().to(device=spikes.device, dtype=torch.float64).reshape(-1, width)
        widths.append(width)
        if weights is None:
            samples.append(spikes.shape[0])
        else:  # padded steps count in no statistic
            weights = weights.reshape(-1, 1)
            spikes, membrane = spikes * weights, membrane * weights
            samples.append(float(weights.sum()))
        counts.append(spikes.sum(dim=0))
        sums.append(membrane.sum())
        squares.append(membrane.square().sum())
    device = counts[0].device
    as_row = lambda values: torch.tensor(values, dtype=torch.float64, device=device)  # noqa: E731
    return {
        "num_layers": as_row([len(widths)]),
        "widths": as_row(widths),
        "spike_count": torch.cat([c.to(device) for c in counts]),
        "samples": as_row(samples),
        "membrane_sum": torch.stack([s.to(device) for s in sums]),
        "membrane_sq_sum": torch.stack([s.to(device) for s in squares]),
    }


def _summarise(rows: dict[str, torch.Tensor], widths: list[int]) -> dict[str, torch.Tensor]:
    """Statistics from summed rows (``widths`` splits the per-neuron counts)."""
    dtype = torch.get_default_dtype()
    result = {}
    for index, counts in enumerate(torch.split(rows["spike_count"], widths)):
        width, samples = widths[index], rows["samples"][index]
        elements = (samples * width).clamp_min(1)
        mean = rows["membrane_sum"][index] / elements
        variance = (rows["membrane_sq_sum"][index] / elements - mean * mean).clamp_min(0)
        dead = (counts == 0).sum().to(torch.float64)
        prefix = f"layer_{index}/"
        result[prefix + "firing_rate"] = (counts.sum() / elements).to(dtype)
        result[prefix + "dead_neurons"] = dead.to(dtype)
        result[prefix + "dead_neurons_fraction"] = (dead / width).to(dtype)
        result[prefix + "membrane_mean"] = mean.to(dtype)
        result[prefix + "membrane_var"] = variance.to(dtype)
    return result


def layer_activity(
    spikes_list: Sequence[torch.Tensor], membranes_list: Sequence[torch.Tensor], mask: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Activity statistics of one batch (the functional twin of :class:`ActivityMetric`).

    Args:
        spikes_list: One ``(B, T, N_i)`` spike tensor per layer.
        membranes_list: The matching membrane tensors, same shapes.
        mask: Optional ``(B, T)`` padding mask: padded steps count in no statistic.

    Returns:
        ``{"layer_<i>/<statistic>": 0-d tensor}``, see the module docstring.

    Example:
        >>> import torch
        >>> spikes = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])       # neuron 1 never fires
        >>> stats = layer_activity([spikes], [2 * spikes])
        >>> [float(stats[k]) for k in ("layer_0/firing_rate", "layer_0/dead_neurons", "layer_0/membrane_mean")]
        [0.5, 1.0, 1.0]
    """
    rows = _batch_rows("layer_activity", spikes_list, membranes_list, mask)
    return _summarise(rows, [int(w) for w in rows["widths"].tolist()])


def _gather_float64(result: torch.Tensor, group: Any = None) -> list[torch.Tensor]:
    """``gather_all_tensors`` for the metric's float64 rows. torchmetrics stands in an empty tensor of its
    default dtype (float32) for the empty list of a rank that saw no batch; gathered beside the float64 rows of
    the other ranks it would mix dtypes in all_gather."""
    if result.numel() == 0:
        result = result.to(torch.float64)
    return gather_all_tensors(result, group=group)


class ActivityMetric(Metric):
    """Per-layer activity over an epoch, reduced correctly across DDP ranks.

    State design: the number and widths of the layers are only known at the
    first ``update``, and torchmetrics syncs a tensor state with ``torch.stack``,
    which needs equal shapes on every rank. So every state is a *list* state
    reduced with ``"cat"`` whose entries are float64 rows:

    * ``num_layers`` ``(1,)`` and ``widths`` ``(L,)``: the model's shape;
    * ``spike_count`` ``(sum N_i,)``: per-neuron spike counts, all layers end to end;
    * ``samples``, ``membrane_sum``, ``membrane_sq_sum`` ``(L,)``: per-layer
      number of (batch x time) samples, membrane sum and squared sum.

    ``update`` keeps one running row per state (memory stays constant). After a
    DDP sync each state is the concatenation of the ranks' rows, which
    ``compute`` reshapes with ``num_layers`` / ``widths`` and sums *before*
    counting dead neurons and forming the variance, so the result equals the
    single-process result on the concatenated data. A rank that saw no batch
    contributes nothing. Sums are float64 so ``E[V^2] - E[V]^2`` keeps its
    precision over long epochs.

    Args:
        **kwargs: Forwarded to :class:`torchmetrics.Metric`.

    Example:
        >>> import torch
        >>> metric = ActivityMetric()
        >>> silent, busy = torch.zeros(2, 5, 3), torch.ones(2, 5, 4)
        >>> metric.update([silent, busy], [silent, busy])
        >>> metric.update([silent, busy], [silent + 1.0, busy])
        >>> stats = metric.compute()
        >>> float(stats["layer_0/dead_neurons"]), float(stats["layer_1/firing_rate"]), float(stats["layer_0/membrane_var"])
        (3.0, 1.0, 0.25)
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("dist_sync_fn", _gather_float64)
        super().__init__(**kwargs)
        for name in _SHAPE + _SUMMED:
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(
        self, spikes_list: Sequence[torch.Tensor], membranes_list: Sequence[torch.Tensor], mask: torch.Tensor | None = None, **unused: Any
    ) -> None:
        """Add a batch (its real steps under a padding ``mask``); other contract keywords are ignored."""
        batch = _batch_rows(type(self).__name__, spikes_list, membranes_list, mask)
        widths = [int(w) for w in batch["widths"].tolist()]
        seen = self._read_rows()
        if seen is not None:
            totals, seen_widths = seen
            if seen_widths != widths:
                raise ValueError(
                    f"{type(self).__name__}: layer widths changed from {seen_widths} to {widths} since the last "
                    "reset(); call reset() between models."
                )
            for name in _SUMMED:
                batch[name] = batch[name] + totals[name].to(batch[name].device)
        # One running row per state keeps memory constant over an epoch.
        for name in _SHAPE + _SUMMED:
            setattr(self, name, [batch[name]])

    def _read_rows(self) -> tuple[dict[str, torch.Tensor], list[int]] | None:
        """Summed rows and layer widths, from local rows or the concatenated result of a sync."""
        flat = {}
        for name in _SHAPE + _SUMMED:
            value = getattr(self, name)
            if isinstance(value, list):
                if not value:
                    return None
                value = dim_zero_cat(value)
            flat[name] = value
        if flat["num_layers"].numel() == 0:  # synced, but no rank saw a batch
            return None
        layer_counts = flat["num_layers"]
        n_rows, n_layers = layer_counts.numel(), int(layer_counts[0])
        consistent = bool((layer_counts == n_layers).all()) and flat["widths"].numel() == n_rows * n_layers
        widths = flat["widths"].reshape(n_rows, n_layers) if consistent else None
        if widths is None or not bool((widths == widths[0]).all()):
            raise ValueError(
                f"{type(self).__name__}: the accumulated batches (or DDP ranks) disagree on the number or widths of "
                "the layers; every rank must run the same model, and reset() is needed between models."
            )
        width_list = [int(w) for w in widths[0].tolist()]
        rows = {name: flat[name].reshape(n_rows, -1).sum(dim=0) for name in _SUMMED}
        return rows, width_list

    def compute(self) -> dict[str, torch.Tensor]:
        """``{"layer_<i>/<statistic>": 0-d tensor}`` over everything seen (``{}`` before any update)."""
        read = self._read_rows()
        if read is None:
            return {}
        rows, widths = read
        return _summarise(rows, widths)
