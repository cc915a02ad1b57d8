"""``prepare_net``: get every H1 block of a model ready for a new sequence."""

from __future__ import annotations

from torch import nn

__all__ = ["prepare_net"]


def prepare_net(model: nn.Module, collect_metrics: bool = False) -> nn.Module:
    """Reset step state and materialise effective matrices once per sequence.

    Call it at the start of ``forward`` (once per batch), before a time-step
    loop. It zeroes the state of every frontend and layer, and computes each
    synapse's and recurrent layer's effective matrix (sign parametrisation,
    efficacy, optional clamp) once instead of at every step. RC layers used
    step-wise refuse to run without it.

    Args:
        model: Any module containing H1 blocks.
        collect_metrics: Make every layer keep running activity sums in
            ``layer.activity`` (spike count, membrane sum / squared sum, samples).

    Returns:
        The model, for chaining.

    Example:
        >>> import torch
        >>> from nwave_lightning.layers import H1v2Synapse, H1v2Layer, prepare_net
        >>> net = torch.nn.ModuleList([H1v2Synapse(4, 3), H1v2Layer(3, taus=20e-3, dt=1e-3, layer_topology="RC")])
        >>> _ = prepare_net(net, collect_metrics=True)
        >>> spk, mem = net[1](net[0](torch.ones(2, 4)))
        >>> int(net[1].activity["samples"])
        6
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"prepare_net: model must be a torch.nn.Module, got {type(model).__name__}.")
    for module in model.modules():
        prepare = getattr(module, "prepare", None)
        if prepare is not None and type(module).__module__.startswith("nwave_lightning.layers"):
            prepare(collect_metrics=collect_metrics)
    return model
