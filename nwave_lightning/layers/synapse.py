"""Dense synapses: presynaptic spikes to the current injected into a layer."""

from __future__ import annotations

import torch
from torch import nn

from ..hardware import H1V1, H1V2, ChipSpec, efficacy
from ._common import PreparedMatrix, SeedDeviceMixin, check_input, check_width, warn_non_finite_input, default_weight_init, resolve_device

__all__ = ["H1v1Synapse", "H1v2Synapse", "effective_matrix"]


def effective_matrix(weight: torch.Tensor, chip: ChipSpec, clamp_to_range: bool) -> torch.Tensor:
    """Current per presynaptic spike for each weight: ``efficacy(w)`` (gain included).

    With ``clamp_to_range`` the weight is first clamped to the chip's range,
    i.e. the model sees what the chip can store.
    """
    if clamp_to_range:
        weight = weight.clamp(*chip.weight_range)
    return efficacy(weight, chip)


class _H1Synapse(SeedDeviceMixin, nn.Module):
    """``I = efficacy(W)`` applied to presynaptic spikes, ``W`` of shape ``(nb_inputs, nb_outputs)``.

    Args:
        nb_inputs: Presynaptic width.
        nb_outputs: Postsynaptic width (the next layer's ``n_neurons``).
        device: The vendor SDK's device flag (``"cpu"``, ``"gpu"``, ``None``).
        init: Optional in-place initialiser applied to ``weight`` (e.g.
            ``nn.init.xavier_uniform_``). By default weights are uniform with a
            bound chosen so that ~sqrt(nb_inputs) co-active inputs bring a neuron
            with threshold ``lif_threshold`` to threshold, capped at the chip's range.
        lif_threshold: Threshold of the postsynaptic neuron, used by the default init.
        chip: Override of the chip constants.
        clamp_to_range: Clamp weights to the chip's range in the forward pass.
    """

    default_chip: ChipSpec

    def __init__(
        self,
        nb_inputs: int,
        nb_outputs: int,
        device=None,
        init=None,
        lif_threshold: float = 1.0,
        chip: ChipSpec | None = None,
        clamp_to_range: bool = False,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.nb_inputs = check_width(owner, "nb_inputs", nb_inputs)
        self.nb_outputs = check_width(owner, "nb_outputs", nb_outputs)
        if not lif_threshold > 0:
            raise ValueError(f"{owner}: lif_threshold={lif_threshold!r} must be > 0.")
        self.chip = chip or self.default_chip
        self.lif_threshold = float(lif_threshold)
        self.clamp_to_range = clamp_to_range
        self.device_flag = device
        self.weight = nn.Parameter(torch.empty(nb_inputs, nb_outputs))
        if init is None:
            default_weight_init(self.weight, nb_inputs, self.chip, self.lif_threshold)
        elif callable(init):
            with torch.no_grad():
                init(self.weight)
        else:
            raise ValueError(f"{owner}: init={init!r} must be a callable like nn.init.xavier_uniform_, or None.")
        self._prepared: PreparedMatrix | None = None
        target = resolve_device(device)
        if target is not None:
            self.to(target)

    def effective_weight(self) -> torch.Tensor:
        """``efficacy(W)``: current per spike, shape ``(nb_inputs, nb_outputs)``."""
        return effective_matrix(self.weight, self.chip, self.clamp_to_range)

    def prepare(self, collect_metrics: bool = False) -> None:
        """Materialise the effective matrix once for the coming sequence."""
        self._prepared = PreparedMatrix(self.effective_weight(), self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Current for ``(B, nb_inputs)`` or ``(B, T, nb_inputs)`` spikes."""
        check_input(type(self).__name__, x, self.nb_inputs, "nb_inputs")
        warn_non_finite_input(self, x)
        if x.dim() == 2 and self._prepared is not None and self._prepared.is_current(self):
            matrix = self._prepared.matrix
        else:
            matrix = self.effective_weight()
        return x @ matrix

    def extra_repr(self) -> str:
        return f"nb_inputs={self.nb_inputs}, nb_outputs={self.nb_outputs}, chip={self.chip.name}"


class H1v1Synapse(_H1Synapse):
    """H1v1 synapse: exponential weight-to-efficacy map.

    The synaptic current filter (``tau_syn``) is applied by :class:`H1v1Layer`,
    because it also filters the layer's recurrent input.

    Example:
        >>> import torch
        >>> syn = H1v1Synapse(4, 3)
        >>> syn(torch.ones(2, 10, 4)).shape
        torch.Size([2, 10, 3])
    """

    default_chip = H1V1


class H1v2Synapse(_H1Synapse):
    """H1v2 synapse: linear, delta, low gain (``I = 0.25 * x @ W``).

    Example:
        >>> import torch
        >>> syn = H1v2Synapse(2, 1, init=torch.nn.init.ones_)
        >>> syn(torch.tensor([[1.0, 1.0]])).item()
        0.5
    """

    default_chip = H1V2
