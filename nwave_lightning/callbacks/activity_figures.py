"""``ActivityFigures``: a spike raster and per-layer activity, as a TensorBoard figure per validation epoch.

Spikes are captured with forward hooks on the H1 layers, so any
LightningModule whose network contains H1 layers works, whether the layers
run on whole sequences ``(B, T, N)`` or step by step ``(B, N)``. Figures are
drawn with matplotlib's object API (rendered by the Agg canvas, no pyplot
state) and sent with ``add_figure`` to every TensorBoard logger; other
loggers are skipped.

Example:
    >>> import torch
    >>> figures = ActivityFigures()
    >>> spikes = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]])   # (B=1, T=4, N=2)
    >>> figures.layer_statistic(spikes).tolist()
    [0.75, 0.25]
    >>> fig = figures.make_figure("l2", spikes[0], {"l1": torch.tensor([0.1, 0.3]), "l2": torch.tensor([0.75, 0.25])})
    >>> len(fig.axes)
    2
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure

from ..layers.walk import layers as h1_layers
from ._common import check_number, config_kwargs, init_keys, network

__all__ = ["ActivityFigures"]


class ActivityFigures(Callback):
    """Log a spike raster of the readout layer and per-layer activity every ``every_n_epochs`` validations.

    During a due validation epoch (not the sanity check, rank 0 only, and only
    when a :class:`~lightning.pytorch.loggers.TensorBoardLogger` is attached)
    the callback records every H1 layer's spikes, computes
    :meth:`layer_statistic` per batch and averages it over the epoch
    (weighted by batch size). The figure, tagged ``tag`` at step ``epoch``
    (1-based), shows the readout's raster for the first validation sample
    (left) and, per layer, the statistic of each neuron with its mean (right).
    The statistics of the last figure stay in :attr:`last_statistics`.

    Extension point: override :meth:`layer_statistic` (``(B, T, N) spikes ->
    (N,)``; it must be a per-sample mean for the epoch average to be exact) and
    set :attr:`statistic_label`; :meth:`make_figure` can be overridden too.

    Args:
        every_n_epochs: Draw every n-th validation epoch (>= 1).
        readout_layer: Module name of the layer to rasterise (relative to the
            network, e.g. ``"l3"``); default the last registered H1 layer.
        tag: TensorBoard tag of the figure.
    """

    statistic_label = "firing rate (spikes / step)"

    def __init__(self, every_n_epochs: int = 1, readout_layer: Optional[str] = None, tag: str = "val/activity") -> None:
        owner = type(self).__name__
        self.every_n_epochs = check_number(owner, "every_n_epochs", every_n_epochs, integer=True, minimum=1)
        if readout_layer is not None and not isinstance(readout_layer, str):
            raise ValueError(f"{owner}: readout_layer={readout_layer!r} must be a module name such as 'l3', or None for the last H1 layer.")
        if not isinstance(tag, str) or not tag:
            raise ValueError(f"{owner}: tag={tag!r} must be a non-empty string such as 'val/activity'.")
        self.readout_layer, self.tag = readout_layer, tag
        self.figures_logged = 0
        self.last_statistics: dict[str, torch.Tensor] = {}
        self.last_raster: Optional[torch.Tensor] = None
        self._handles: list = []
        self._chunks: dict[str, list[torch.Tensor]] = {}
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}
        self._readout: Optional[str] = None
        self._raster: Optional[torch.Tensor] = None

    # -- extension points ----------------------------------------------------
    def layer_statistic(self, spikes: torch.Tensor) -> torch.Tensor:
        """Per-neuron statistic of one batch of spikes ``(B, T, N) -> (N,)``: the firing rate. Override to change."""
        return spikes.float().mean(dim=(0, 1))

    def make_figure(self, readout: str, raster: Optional[torch.Tensor], statistics: Mapping[str, torch.Tensor]) -> Figure:
        """The figure: readout raster ``(T, N)`` (left) and per-layer statistics (right)."""
        fig = Figure(figsize=(10, 4), layout="constrained")
        ax_raster, ax_stat = fig.subplots(1, 2)
        if raster is not None:
            steps, neurons = torch.nonzero(raster.float() > 0, as_tuple=True)
            ax_raster.scatter(steps.numpy(), neurons.numpy(), marker="|", s=30, color="black")
            ax_raster.set_xlim(-0.5, raster.shape[0] - 0.5)
            ax_raster.set_ylim(-0.5, raster.shape[1] - 0.5)
        ax_raster.set(title=f"readout '{readout}', first validation sample", xlabel="time step", ylabel="neuron")
        names = list(statistics)
        for i, name in enumerate(names):
            values = statistics[name].float().cpu()
            jitter = torch.linspace(-0.25, 0.25, len(values)) if len(values) > 1 else torch.zeros(1)
            ax_stat.scatter((i + jitter).numpy(), values.numpy(), s=8, alpha=0.5)
            ax_stat.bar(i, float(values.mean()), width=0.7, alpha=0.3, color="tab:blue")
        ax_stat.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax_stat.set(title="per-layer activity (dots: neurons, bar: mean)", ylabel=self.statistic_label)
        return fig

    # -- Lightning hooks ---------------------------------------------------
    def _tensorboards(self, trainer: "pl.Trainer") -> list[TensorBoardLogger]:
        return [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]

    def _due(self, trainer: "pl.Trainer") -> bool:
        return (
            not trainer.sanity_checking
            and trainer.is_global_zero
            and (trainer.current_epoch + 1) % self.every_n_epochs == 0
            and bool(self._tensorboards(trainer))
        )

    def on_validation_epoch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._remove_hooks()
        if not self._due(trainer):
            return
        found = h1_layers(network(pl_module))
        names = [name for name, _ in found]
        if self.readout_layer is not None and self.readout_layer not in names:
            raise ValueError(f"{type(self).__name__}: readout_layer={self.readout_layer!r} is not an H1 layer; the H1 layers are {names}.")
        self._readout = self.readout_layer or (names[-1] if names else None)
        self._sums, self._counts, self._raster = {}, {}, None
        for name, layer in found:
            self._chunks[name] = []
            self._handles.append(layer.register_forward_hook(self._recorder(name)))

    def _recorder(self, name: str):
        def record(module, inputs, outputs) -> None:
            self._chunks[name].append(outputs[0].detach())

        return record

    def on_validation_batch_end(
        self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if not self._handles:
            return
        for name, chunks in self._chunks.items():
            if not chunks:
                continue
            # Step-wise layers give one (B, N) per call: stack them into (B, T, N).
            spikes = torch.stack(chunks, dim=1) if chunks[0].dim() == 2 else torch.cat(chunks, dim=1)
            chunks.clear()
            stat = self.layer_statistic(spikes).detach().float().cpu()
            self._sums[name] = self._sums.get(name, 0) + stat * spikes.shape[0]
            self._counts[name] = self._counts.get(name, 0) + spikes.shape[0]
            if name == self._readout and self._raster is None:
                self._raster = spikes[0].detach().cpu()

    def on_validation_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if not self._handles:
            return
        self._remove_hooks()
        statistics = {name: self._sums[name] / self._counts[name] for name in self._sums}
        self.last_statistics, self.last_raster = statistics, self._raster
        fig = self.make_figure(self._readout, self._raster, statistics)
        for logger in self._tensorboards(trainer):
            logger.experiment.add_figure(self.tag, fig, global_step=trainer.current_epoch + 1, close=False)
        self.figures_logged += 1

    def on_exception(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", exception: BaseException) -> None:
        self._remove_hooks()

    def teardown(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        self._remove_hooks()

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles, self._chunks = [], {}

    # -- state ---------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"figures_logged": self.figures_logged}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.figures_logged = int(state_dict.get("figures_logged", 0))

    @classmethod
    def from_config(cls, cfg: Optional[Mapping[str, Any]]) -> Optional["ActivityFigures"]:
        """Build from a ``{"every_n_epochs": ...}`` dict; ``None`` when it is empty.

        Raises:
            ValueError: unknown keys (listing the accepted ones) or bad values.
        """
        kwargs = config_kwargs(cls.__name__, cfg, init_keys(cls))
        return None if kwargs is None else cls(**kwargs)
