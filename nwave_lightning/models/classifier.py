"""Configurable H1 classifiers with a population readout (the vendor SDK's ``SurrogateSNN``).

``frontend -> (synapse -> LIF layer) x len(hidden) -> synapse -> readout layer``;
the readout holds ``num_classes * neurons_per_class`` neurons, class ``c``
owning the ``c``-th consecutive group (the layout of
``balanced_population_mse`` and ``accuracy_population``). The forward pass
returns every layer's spikes and membranes, readout last (the model contract).

Example:
    >>> import torch
    >>> net = H1Classifier(in_ch=13, num_classes=2, neurons_per_class=4, hidden=[16, 32])
    >>> spikes, membranes = net((torch.rand(3, 25, 13) < 0.2).float())
    >>> [tuple(s.shape) for s in spikes]
    [(3, 25, 16), (3, 25, 32), (3, 25, 8)]
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import nn

from .. import surrogate as surrogates
from ..layers import CHIP_BLOCKS, prepare_net
from ..layers.chain import forward_chain

__all__ = ["CHIPS", "H1Classifier", "SURROGATES", "SurrogateSNN", "make_surrogate", "per_layer"]

CHIPS = CHIP_BLOCKS
SURROGATES = {"fast_sigmoid": surrogates.fast_sigmoid, "atan": surrogates.atan, "sigmoid": surrogates.sigmoid, "triangle": surrogates.triangle}
INITS = {
    "xavier_uniform": nn.init.xavier_uniform_,
    "xavier_normal": nn.init.xavier_normal_,
    "kaiming_uniform": nn.init.kaiming_uniform_,
    "kaiming_normal": nn.init.kaiming_normal_,
}


def make_surrogate(name: str, value: Optional[float] = None) -> surrogates.SurrogateSpike:
    """A fresh surrogate by name; ``value`` is its slope / alpha / width (default: the function's)."""
    if name not in SURROGATES:
        raise ValueError(f"surrogate={name!r} is unknown; choose one of {sorted(SURROGATES)}.")
    return SURROGATES[name]() if value is None else SURROGATES[name](value)


def per_layer(name: str, value, n_layers: int) -> list:
    """Broadcast a scalar to ``n_layers`` entries, or check a sequence has exactly that many."""
    if isinstance(value, (list, tuple)):
        if len(value) != n_layers:
            raise ValueError(f"{name}={list(value)!r} has {len(value)} entries; give one per layer ({n_layers}) or a scalar.")
        return list(value)
    return [value] * n_layers


class H1Classifier(nn.Module):
    """Frontend, ``len(hidden)`` hidden LIF layers and a population readout.

    Args:
        in_ch: Input features ``F`` of ``x (B, T, F)``.
        num_classes: Number of classes.
        neurons_per_class: Readout neurons per class.
        hidden: Widths of the hidden layers.
        taus: Membrane time constant(s) in seconds: one for all layers or one
            per layer (hidden layers then readout).
        dt: Simulation step in seconds.
        chip: ``"H1v2"`` or ``"H1v1"``.
        topology: ``"FF"`` / ``"RC"`` for every layer, or one per layer.
        surrogate: Surrogate name (``fast_sigmoid``, ``atan``, ``sigmoid``, ``triangle``).
        surrogate_value: Its slope / alpha / width; default the function's.
        init: ``None`` (the synapse's chip-aware default) or a ``torch.nn.init``
            name: ``xavier_uniform``, ``xavier_normal``, ``kaiming_uniform``, ``kaiming_normal``.
        init_gain: Gain of the xavier inits.
        frontend: Put the chip's analog frontend before the first synapse.
        encoder: An encoder from :mod:`nwave_lightning.encode` (or a ``Compose`` of
            several) applied to ``x`` before the frontend: part of the model, saved
            and run on its device with it. The frontend then takes
            ``encoder.out_features(in_ch)`` channels.

    Example:
        >>> import torch
        >>> from nwave_lightning.encode import Compose, Hold, OnOff
        >>> net = H1Classifier(in_ch=3, num_classes=2, hidden=[8], encoder=Compose([OnOff(scale=2.0), Hold(2)]))
        >>> net.frontend.in_ch, [tuple(s.shape) for s in net(torch.randn(4, 10, 3))[0]]
        (6, [(4, 20, 8), (4, 20, 2)])
    """

    def __init__(
        self,
        in_ch: int,
        num_classes: int,
        neurons_per_class: int = 1,
        hidden: Sequence[int] = (16, 32),
        taus: Union[float, Sequence[float]] = 20e-3,
        dt: float = 1e-3,
        chip: str = "H1v2",
        topology: Union[str, Sequence[str]] = "FF",
        surrogate: str = "fast_sigmoid",
        surrogate_value: Optional[float] = None,
        init: Optional[str] = None,
        init_gain: float = 1.0,
        frontend: bool = True,
        encoder: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        if encoder is not None and not isinstance(encoder, nn.Module):
            raise ValueError(f"H1Classifier: encoder={encoder!r} must be an nn.Module such as nwave_lightning.encode.OnOff().")
        if chip not in CHIPS:
            raise ValueError(f"H1Classifier: chip={chip!r} is unknown; choose one of {sorted(CHIPS)}.")
        if init is not None and init not in INITS:
            raise ValueError(f"H1Classifier: init={init!r} is unknown; choose None or one of {sorted(INITS)}.")
        frontend_cls, synapse_cls, layer_cls = CHIPS[chip]
        self.in_ch, self.num_classes, self.neurons_per_class = in_ch, num_classes, neurons_per_class
        self.out_neurons = num_classes * neurons_per_class
        self.dt = dt
        self.encoder = encoder
        # The chip chain starts at the encoder's output.
        width_in = encoder.out_features(in_ch) if hasattr(encoder, "out_features") else in_ch
        widths = [*hidden, self.out_neurons]
        taus = per_layer("taus", taus, len(widths))
        topologies = per_layer("topology", topology, len(widths))
        self.frontend = frontend_cls(width_in) if frontend else None
        self.synapses = nn.ModuleList()
        self.lifs = nn.ModuleList()
        fan_in = width_in
        for width, tau, top in zip(widths, taus, topologies):
            synapse = synapse_cls(fan_in, width)
            if init is not None:
                with torch.no_grad():
                    if init.startswith("xavier"):
                        INITS[init](synapse.weight, gain=init_gain)
                    else:
                        INITS[init](synapse.weight)
            self.synapses.append(synapse)
            self.lifs.append(
                layer_cls(width, taus=tau, dt=dt, layer_topology=top, spike_grad=make_surrogate(surrogate, surrogate_value))
            )
            fan_in = width
        # fluct_init and the sign callbacks walk (synapse, layer) pairs in order.
        self.layer_pairs = list(zip(self.synapses, self.lifs))

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``x (B, T, in_ch)`` -> ``(spikes_list, membranes_list)``, readout last."""
        prepare_net(self)
        if self.encoder is not None:
            x = self.encoder(x)
        return forward_chain(self.frontend, self.layer_pairs, x)


class SurrogateSNN(H1Classifier):
    """The vendor SDK's HPO guide's ``SurrogateSNN(cfg)``: H1v2, hidden widths ``[16, cfg["hidden_1"]]``.

    ``cfg`` keys: ``in_ch``, ``num_classes``, ``neurons_per_class``, ``dt``,
    ``hidden_1``, ``tau_l1``, ``tau_l2``, ``tau_l3``; optional ``device`` (kept
    for compatibility: placement is Lightning's job) and ``init_name`` /
    ``init_gain`` (default ``xavier_uniform``, as in the vendor SDK).

    Example:
        >>> cfg = dict(in_ch=13, num_classes=2, neurons_per_class=32, dt=2e-3, hidden_1=32,
        ...            tau_l1=10e-3, tau_l2=20e-3, tau_l3=40e-3, device="cpu")
        >>> SurrogateSNN(cfg).out_neurons
        64
    """

    def __init__(self, cfg: dict) -> None:
        missing = [k for k in ("in_ch", "num_classes", "neurons_per_class", "dt", "hidden_1", "tau_l1", "tau_l2", "tau_l3") if k not in cfg]
        if missing:
            raise ValueError(f"SurrogateSNN: cfg is missing {missing}.")
        super().__init__(
            in_ch=cfg["in_ch"],
            num_classes=cfg["num_classes"],
            neurons_per_class=cfg["neurons_per_class"],
            hidden=[16, cfg["hidden_1"]],
            taus=[cfg["tau_l1"], cfg["tau_l2"], cfg["tau_l3"]],
            dt=cfg["dt"],
            init=cfg.get("init_name", "xavier_uniform"),
            init_gain=cfg.get("init_gain", 1.0),
        )
        self.device_flag = cfg.get("device", "cpu")

    def forward_cpu(self, x: torch.Tensor):
        """Vendor SDK compatibility: same numbers as :meth:`forward`."""
        return self.forward(x)
