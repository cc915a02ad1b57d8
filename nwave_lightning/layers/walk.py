"""Find the H1 blocks of an arbitrary model (losses, fluct_init and callbacks use this)."""

from __future__ import annotations

from typing import NamedTuple

from torch import nn

from .frontend import _H1Frontend
from .lif import _H1Layer
from .synapse import _H1Synapse

__all__ = ["DenseWeight", "dense_weights", "frontends", "layers", "synapse_layer_pairs", "synapses"]


class DenseWeight(NamedTuple):
    """A dense, trainable H1 matrix: ``getattr(module, attr)`` is the weight."""

    module_name: str
    attr: str  # "weight" (synapse) or "recurrent_weights" (RC layer)
    module: nn.Module


def synapses(model: nn.Module) -> list[tuple[str, _H1Synapse]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, _H1Synapse)]


def layers(model: nn.Module) -> list[tuple[str, _H1Layer]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, _H1Layer)]


def frontends(model: nn.Module) -> list[tuple[str, _H1Frontend]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, _H1Frontend)]


def dense_weights(model: nn.Module) -> list[DenseWeight]:
    """Every synapse ``weight`` and RC ``recurrent_weights`` in registration order.

    Example:
        >>> from nwave_lightning.layers import H1v2Synapse, H1v2Layer
        >>> net = nn.Sequential(H1v2Synapse(3, 2), H1v2Layer(2, 20e-3, 1e-3, layer_topology="RC"))
        >>> [(d.module_name, d.attr) for d in dense_weights(net)]
        [('0', 'weight'), ('1', 'recurrent_weights')]
    """
    found = []
    for name, module in model.named_modules():
        if isinstance(module, _H1Synapse):
            found.append(DenseWeight(name, "weight", module))
        elif isinstance(module, _H1Layer) and module.recurrent_weights is not None:
            found.append(DenseWeight(name, "recurrent_weights", module))
    return found


def synapse_layer_pairs(model: nn.Module) -> list[tuple[_H1Synapse, _H1Layer]]:
    """Which synapse feeds which layer.

    Uses ``model.layer_pairs`` when the model defines it (tutorial 7 does);
    otherwise pairs the i-th synapse with the i-th layer in registration order
    and checks that the widths agree.

    Raises:
        ValueError: when counts or widths do not match, naming both modules.
    """
    explicit = getattr(model, "layer_pairs", None)
    if explicit is not None:
        pairs = [tuple(pair) for pair in explicit]
    else:
        found_synapses = [m for _, m in synapses(model)]
        found_layers = [m for _, m in layers(model)]
        if len(found_synapses) != len(found_layers):
            raise ValueError(
                f"cannot pair synapses with layers: the model has {len(found_synapses)} H1 synapses and "
                f"{len(found_layers)} H1 layers. Define model.layer_pairs = [(synapse, layer), ...]."
            )
        pairs = list(zip(found_synapses, found_layers))
    for synapse, layer in pairs:
        if not isinstance(synapse, _H1Synapse) or not isinstance(layer, _H1Layer):
            raise ValueError(
                f"layer_pairs entries must be (H1 synapse, H1 layer), got ({type(synapse).__name__}, {type(layer).__name__})."
            )
        if synapse.nb_outputs != layer.n_neurons:
            raise ValueError(
                f"{type(synapse).__name__} has nb_outputs={synapse.nb_outputs} but the {type(layer).__name__} it feeds "
                f"has n_neurons={layer.n_neurons}; define model.layer_pairs if the pairing by order is wrong."
            )
    return pairs
