"""Leaky integrate-and-fire layers of the H1 cores (FF and RC topologies)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..hardware import H1V1, H1V2, ChipSpec, decay_factor, validate_taus
from ..kernels import LIFState, initial_state, lif_sequence, lif_step, resolve_backend
from ..surrogate import SurrogateSpike, fast_sigmoid
from ._common import PreparedMatrix, SeedDeviceMixin, check_input, check_width, warn_non_finite_input, default_weight_init, resolve_device
from .synapse import effective_matrix

__all__ = ["H1v1Layer", "H1v2Layer", "TOPOLOGIES"]

TOPOLOGIES = ("FF", "RC")


class _H1Layer(SeedDeviceMixin, nn.Module):
    """LIF neurons with hard reset to zero; see ``docs/hardware-model.md``.

    Call it with one step ``(B, N) -> (spk, mem)`` inside a time loop (after
    :func:`prepare_net`), or with a whole sequence ``(B, T, N) -> (spk, mem)``
    of shape ``(B, T, N)``. Both paths give the same numbers. ``mem`` is the
    membrane before reset.

    Args:
        n_neurons: Number of neurons ``N``.
        taus: Membrane time constants in seconds, scalar or ``(N,)``.
        dt: Simulation step in seconds, ``0 < dt < tau``.
        layer_topology: ``"FF"`` or ``"RC"`` (adds ``recurrent_weights`` ``(N, N)``).
        spike_grad: A surrogate from :mod:`nwave_lightning.surrogate`;
            default ``fast_sigmoid(slope=25.0)``.
        device: The vendor SDK's device flag.
        threshold: Firing threshold; default the chip's.
        detach_reset: Stop the gradient through the reset term.
        chip: Override of the chip constants.
        clamp_to_range: Clamp ``recurrent_weights`` to the chip's range in forward.
        backend: ``"auto"`` or a name from :data:`nwave_lightning.kernels.BACKENDS`.
        recurrent_init: Optional in-place initialiser of ``recurrent_weights``.
    """

    default_chip: ChipSpec

    def __init__(
        self,
        n_neurons: int,
        taus,
        dt: float,
        layer_topology: str = "FF",
        spike_grad: SurrogateSpike | None = None,
        device=None,
        threshold: float | None = None,
        detach_reset: bool = False,
        chip: ChipSpec | None = None,
        clamp_to_range: bool = False,
        backend: str = "auto",
        recurrent_init=None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.n_neurons = check_width(owner, "n_neurons", n_neurons)
        self.chip = chip or self.default_chip
        if layer_topology not in TOPOLOGIES:
            raise ValueError(f"{owner}: layer_topology={layer_topology!r} is unknown; choose one of {TOPOLOGIES}.")
        self.layer_topology = layer_topology
        self.dt = dt
        taus = validate_taus(taus, dt, n_neurons, self.chip, owner)
        self.register_buffer("taus", taus)
        self.register_buffer("beta", decay_factor(taus, dt).to(torch.float32))
        self.threshold = float(self.chip.threshold if threshold is None else threshold)
        if not (math.isfinite(self.threshold) and self.threshold > 0):
            raise ValueError(f"{owner}: threshold={threshold!r} must be a finite number > 0.")
        if spike_grad is None:
            spike_grad = fast_sigmoid(slope=25.0)
        if not isinstance(spike_grad, SurrogateSpike):
            raise ValueError(
                f"{owner}: spike_grad={spike_grad!r} must be a surrogate from nwave_lightning.surrogate "
                "(fast_sigmoid, atan, sigmoid, triangle)."
            )
        self.spike_grad = spike_grad
        self.detach_reset = bool(detach_reset)
        self.clamp_to_range = clamp_to_range
        resolve_backend(backend, self.beta)  # fail early on a typo
        self.backend = backend
        self.syn_decay = None if self.chip.tau_syn is None else float(math.exp(-dt / self.chip.tau_syn))
        if self.syn_decay is not None and dt >= self.chip.tau_syn:
            raise ValueError(f"{owner}: dt={dt} s must be smaller than the chip's tau_syn={self.chip.tau_syn} s.")
        if layer_topology == "RC":
            self.recurrent_weights = nn.Parameter(torch.empty(n_neurons, n_neurons))
            if recurrent_init is None:
                default_weight_init(self.recurrent_weights, n_neurons, self.chip, self.threshold)
            else:
                with torch.no_grad():
                    recurrent_init(self.recurrent_weights)
        else:
            self.register_parameter("recurrent_weights", None)
        self.device_flag = device
        self._state: LIFState | None = None
        self._prepared: PreparedMatrix | None = None
        self.activity: dict[str, torch.Tensor] | None = None
        target = resolve_device(device)
        if target is not None:
            self.to(target)

    # -- preparation -----------------------------------------------------
    def effective_recurrent(self) -> torch.Tensor | None:
        """Current per recurrent spike ``(N, N)``, or ``None`` for FF."""
        if self.recurrent_weights is None:
            return None
        return effective_matrix(self.recurrent_weights, self.chip, self.clamp_to_range)

    def prepare(self, collect_metrics: bool = False) -> None:
        """Start a new sequence: zero the state, materialise the recurrent matrix."""
        self._state = None
        matrix = self.effective_recurrent()
        self._prepared = None if matrix is None else PreparedMatrix(matrix, self)
        self.activity = _empty_activity(self.beta) if collect_metrics else None

    def reset_state(self) -> None:
        """Zero the step state without touching the prepared matrices."""
        self._state = None

    def _recurrent_for_step(self) -> torch.Tensor | None:
        if self.recurrent_weights is None:
            return None
        if self._prepared is None:
            raise RuntimeError(
                f"{type(self).__name__} (RC) has no prepared recurrent matrix. Call prepare_net(model) once "
                "per batch/sequence before the time-step loop."
            )
        if not self._prepared.is_current(self):
            raise RuntimeError(
                f"{type(self).__name__} (RC): the recurrent matrix prepared by prepare_net is stale (weights "
                "changed or grad mode switched since). Call prepare_net(model) before each sequence's time loop."
            )
        return self._prepared.matrix

    # -- forward ---------------------------------------------------------
    def forward(self, current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Spikes and pre-reset membranes for one step or a whole sequence."""
        rank = check_input(type(self).__name__, current, self.n_neurons, "n_neurons (the synapse's nb_outputs must match)")
        warn_non_finite_input(self, current)
        if rank == 2:
            spikes, membrane = self._forward_step(current)
        else:
            spikes, membrane = lif_sequence(
                current,
                self.beta,
                self.threshold,
                self.spike_grad,
                self.effective_recurrent(),
                self.syn_decay,
                self.detach_reset,
                self.backend,
            )
        if self.activity is not None:
            _accumulate_activity(self.activity, spikes, membrane)
        return spikes, membrane

    def _forward_step(self, current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        recurrent = self._recurrent_for_step()
        if self._state is None:
            self._state = initial_state(current.shape[0], self.n_neurons, current, self.syn_decay is not None)
        elif self._state.membrane.shape[0] != current.shape[0]:
            raise RuntimeError(
                f"{type(self).__name__}: batch size changed from {self._state.membrane.shape[0]} to "
                f"{current.shape[0]} in the middle of a sequence. Call prepare_net(model) at the start of each sequence."
            )
        spikes, membrane, self._state = lif_step(
            current,
            self._state,
            self.beta,
            self.threshold,
            self.spike_grad,
            recurrent,
            self.syn_decay,
            self.detach_reset,
        )
        return spikes, membrane

    def forward_gpu(self, current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Vendor SDK compatibility: the sequence path (the backend follows the tensor's device)."""
        if current.dim() != 3:
            raise ValueError(f"{type(self).__name__}.forward_gpu expects a (B, T, N) sequence, got shape {tuple(current.shape)}.")
        return self(current)

    def extra_repr(self) -> str:
        return (
            f"n_neurons={self.n_neurons}, layer_topology={self.layer_topology!r}, dt={self.dt}, "
            f"chip={self.chip.name}"
        )


def _empty_activity(like: torch.Tensor) -> dict[str, torch.Tensor]:
    zero = like.new_zeros(())
    return {"spike_count": zero.clone(), "membrane_sum": zero.clone(), "membrane_sq_sum": zero.clone(), "samples": zero.clone()}


def _accumulate_activity(activity: dict[str, torch.Tensor], spikes: torch.Tensor, membrane: torch.Tensor) -> None:
    """Running sums for ``prepare_net(collect_metrics=True)``: rate = spike_count / samples."""
    with torch.no_grad():
        activity["spike_count"] += spikes.sum()
        activity["membrane_sum"] += membrane.sum()
        activity["membrane_sq_sum"] += (membrane * membrane).sum()
        activity["samples"] += spikes.numel()


class H1v1Layer(_H1Layer):
    """H1v1 LIF layer: exponential synapse (``tau_syn`` = 5 ms) filtering FF and RC input.

    Example:
        >>> import torch
        >>> layer = H1v1Layer(4, taus=20e-3, dt=1e-3)
        >>> spk, mem = layer(torch.rand(2, 50, 4))
        >>> spk.shape, mem.shape
        (torch.Size([2, 50, 4]), torch.Size([2, 50, 4]))
    """

    default_chip = H1V1


class H1v2Layer(_H1Layer):
    """H1v2 LIF layer: delta synapse, optional recurrence (``layer_topology="RC"``).

    Example:
        >>> import torch
        >>> from nwave_lightning.layers import prepare_net
        >>> layer = H1v2Layer(3, taus=25e-3, dt=1e-3, layer_topology="RC")
        >>> _ = prepare_net(layer)
        >>> spk, mem = layer(torch.rand(2, 3))   # one step
        >>> spk.shape
        torch.Size([2, 3])
    """

    default_chip = H1V2
