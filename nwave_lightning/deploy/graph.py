"""The network as the chip sees it: a chain ``frontend -> (synapse -> layer) x L``.

:func:`chip_graph` reads that chain out of any module by running one short
forward pass with hooks on its H1 blocks, so it follows the data, not the order
in which modules were registered; it refuses networks whose data takes another
path (an operation between blocks, a block used twice, a skip connection).
:class:`ChipNet` rebuilds a runnable network from a :class:`ChipGraph`; the NIR
import and the chip file both produce one.

Example:
    >>> import torch
    >>> from nwave_lightning.models import H1Classifier
    >>> net = H1Classifier(in_ch=4, num_classes=2, neurons_per_class=2, hidden=[6], topology=["RC", "FF"])
    >>> graph = chip_graph(net)
    >>> graph.chip.name, graph.in_features, [(s.n_in, s.n_out, s.topology) for s in graph.layers]
    ('H1v2', 4, [(4, 6, 'RC'), (6, 4, 'FF')])
    >>> x = (torch.rand(2, 10, 4) < 0.3).float()
    >>> all(torch.equal(a, b) for a, b in zip(net(x)[0], ChipNet(graph)(x)[0]))
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from ..encode import Encoder
from ..hardware import ChipSpec
from ..layers import CHIP_BLOCKS, prepare_net
from ..layers.chain import forward_chain
from ..layers.frontend import _H1Frontend
from ..layers.lif import _H1Layer
from ..layers.synapse import _H1Synapse

__all__ = ["ChipGraph", "ChipGraphError", "ChipNet", "LayerSpec", "blocks_for", "chip_graph"]


class ChipGraphError(ValueError):
    """The network's data does not flow as a chip chain ``frontend -> (synapse -> layer) x L``."""


@dataclass
class LayerSpec:
    """One synapse and the LIF layer it feeds, as the chip stores them.

    Attributes:
        weight: Feed-forward weights ``(n_in, n_out)`` (row ``i``: input ``i``'s fan-out).
        taus: Membrane time constants ``(n_out,)`` in seconds.
        topology: ``"FF"`` or ``"RC"``.
        recurrent_weights: ``(n_out, n_out)`` for ``"RC"``, else ``None``.
        threshold: Firing threshold.
        names: Names of the synapse and the layer in the network they came from.
    """

    weight: torch.Tensor
    taus: torch.Tensor
    topology: str
    recurrent_weights: Optional[torch.Tensor]
    threshold: float
    names: tuple[str, str] = ("", "")

    @property
    def n_in(self) -> int:
        return int(self.weight.shape[0])

    @property
    def n_out(self) -> int:
        return int(self.weight.shape[1])


@dataclass
class ChipGraph:
    """A chip chain: optional frontend, then ``(synapse -> layer)`` stages, readout last.

    Attributes:
        chip: The chip constants every block shares.
        dt: Time step in seconds.
        in_features: Input channels of ``x (B, T, in_features)``.
        frontend: Whether the chip's analog frontend encodes the input.
        layers: The stages in the order the data passes them.
        frontend_name: Name of the frontend module in the source network.
    """

    chip: ChipSpec
    dt: float
    in_features: int
    frontend: bool
    layers: list[LayerSpec] = field(default_factory=list)
    frontend_name: str = ""


def blocks_for(chip: ChipSpec) -> tuple[type, type, type]:
    """Frontend, synapse and layer classes for ``chip`` (by name, else by its efficacy map)."""
    if chip.name in CHIP_BLOCKS:
        return CHIP_BLOCKS[chip.name]
    return CHIP_BLOCKS["H1v1" if chip.efficacy == "exponential" else "H1v2"]


@torch.no_grad()
def chip_graph(net: nn.Module, in_features: Optional[int] = None) -> ChipGraph:
    """Read the chip chain out of ``net`` by tracing one forward pass.

    Args:
        net: A module built from H1 blocks (its weights are taken as they are:
            pass ``to_chip(net)`` for the deployable numbers). An input encoder
            (:mod:`nwave_lightning.encode`) before the chain runs on the host, not
            on the chip: the graph starts at its output.
        in_features: Input channels of ``net``; default the frontend's ``in_ch``, else the
            first synapse's ``nb_inputs`` (with an encoder: ``net.in_ch``).

    Raises:
        ChipGraphError: naming the module where the data leaves the chain.
    """
    blocks = [(name, m) for name, m in net.named_modules() if isinstance(m, (_H1Frontend, _H1Synapse, _H1Layer))]
    if not any(isinstance(m, _H1Layer) for _, m in blocks):
        raise ChipGraphError(f"chip_graph: {type(net).__name__} holds no H1 layer; the chip runs H1 synapses and layers.")
    encoders = [m for m in net.modules() if isinstance(m, Encoder)]
    if in_features is None and encoders:
        in_features = getattr(net, "in_ch", None)
        if in_features is None:
            raise ChipGraphError(f"chip_graph: {type(net).__name__} has an input encoder; pass in_features (its input channels).")
    if in_features is None:
        first = next(m for _, m in blocks if isinstance(m, (_H1Frontend, _H1Synapse)))
        in_features = first.in_ch if isinstance(first, _H1Frontend) else first.nb_inputs
    calls: list[tuple[str, nn.Module, torch.Tensor, object]] = []
    encoded: list[torch.Tensor] = []  # outputs of the encoders, in the order they finish
    handles = [
        module.register_forward_hook(lambda m, args, out, name=name: calls.append((name, m, args[0], out)))
        for name, module in blocks
    ]
    handles += [module.register_forward_hook(lambda m, args, out: encoded.append(out)) for module in encoders]
    reference = next(iter(net.parameters()), None)
    x = torch.zeros(1, 2, in_features, device=None if reference is None else reference.device, dtype=None if reference is None else reference.dtype)
    try:
        net(x)
    finally:
        for handle in handles:
            handle.remove()
    # The chip's input is what the host's encoder gives it (the last encoder to finish wraps the others).
    return _chain_from_calls(net, calls, blocks, encoded[-1] if encoded else x)


def _chain_from_calls(net, calls, blocks, x) -> ChipGraph:
    names = [name for name, *_ in calls]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ChipGraphError(f"chip_graph: {repeated} run more than once per step; the chip has one copy of each block.")
    unused = [name for name, _ in blocks if name not in names]
    if unused:
        raise ChipGraphError(f"chip_graph: {unused} take no part in the forward pass; remove them or wire them in.")
    position = 0
    frontend_name, signal = "", x
    if isinstance(calls[0][1], _H1Frontend):
        frontend_name, _, inp, signal = calls[0]
        _expect_input(frontend_name, inp, x, "the network's input")
        position = 1
    rest = calls[position:]
    if len(rest) % 2 or not rest:
        raise ChipGraphError(f"chip_graph: blocks ran in the order {names}; the chip runs frontend -> (synapse -> layer) x L.")
    stages = []
    previous = frontend_name or "the network's input"
    for (syn_name, synapse, syn_in, current), (layer_name, layer, layer_in, out) in zip(rest[::2], rest[1::2]):
        if not isinstance(synapse, _H1Synapse) or not isinstance(layer, _H1Layer):
            raise ChipGraphError(
                f"chip_graph: expected a synapse then a layer, got {syn_name!r} ({type(synapse).__name__}) then "
                f"{layer_name!r} ({type(layer).__name__}); blocks ran in the order {names}."
            )
        _expect_input(syn_name, syn_in, signal, f"the output of {previous!r}")
        _expect_input(layer_name, layer_in, current, f"the current of {syn_name!r}")
        stages.append(
            LayerSpec(
                weight=synapse.weight.detach().clone(),
                taus=layer.taus.detach().clone(),
                topology=layer.layer_topology,
                recurrent_weights=None if layer.recurrent_weights is None else layer.recurrent_weights.detach().clone(),
                threshold=layer.threshold,
                names=(syn_name, layer_name),
            )
        )
        signal, previous = out[0], layer_name
    first_layer = stages[0]
    layer_module = dict(blocks)[first_layer.names[1]]
    return ChipGraph(
        chip=layer_module.chip,
        dt=layer_module.dt,
        in_features=int(x.shape[-1]),
        frontend=bool(frontend_name),
        layers=stages,
        frontend_name=frontend_name,
    )


def _expect_input(name: str, got: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    if got is not expected:
        raise ChipGraphError(
            f"chip_graph: {name!r} does not receive {what} unchanged; the chip wires frontend -> (synapse -> layer) x L "
            "directly, so an operation or skip connection between blocks cannot be exported."
        )


class ChipNet(nn.Module):
    """A runnable chip chain built from a :class:`ChipGraph`; honours the model contract.

    ``forward(x (B, T, in_features))`` returns ``(spikes_list, membranes_list)``, one
    entry per layer, readout last, with the physics of the H1 layers.

    Args:
        graph: The chain to build (weights are copied).
    """

    def __init__(self, graph: ChipGraph) -> None:
        super().__init__()
        frontend_cls, synapse_cls, layer_cls = blocks_for(graph.chip)
        self.chip, self.dt, self.in_features = graph.chip, graph.dt, graph.in_features
        self.frontend = frontend_cls(graph.in_features, chip=graph.chip) if graph.frontend else None
        self.synapses, self.lifs = nn.ModuleList(), nn.ModuleList()
        fan_in = graph.in_features
        for index, spec in enumerate(graph.layers):
            if spec.n_in != fan_in:
                raise ChipGraphError(f"ChipNet: layer {index} takes {spec.n_in} inputs but the stage before gives {fan_in}.")
            synapse = synapse_cls(spec.n_in, spec.n_out, chip=graph.chip, lif_threshold=spec.threshold)
            layer = layer_cls(spec.n_out, taus=spec.taus, dt=graph.dt, layer_topology=spec.topology, threshold=spec.threshold, chip=graph.chip)
            with torch.no_grad():
                synapse.weight.copy_(spec.weight)
                if spec.topology == "RC":
                    layer.recurrent_weights.copy_(spec.recurrent_weights)
            self.synapses.append(synapse)
            self.lifs.append(layer)
            fan_in = spec.n_out
        self.layer_pairs = list(zip(self.synapses, self.lifs))

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``x (B, T, in_features)`` -> ``(spikes_list, membranes_list)``, readout last."""
        prepare_net(self)
        return forward_chain(self.frontend, self.layer_pairs, x)
