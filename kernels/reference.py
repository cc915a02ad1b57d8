"""Pure-PyTorch reference of the H1 neuron scan: the oracle for every backend.

One time step of the hardware model (``docs/hardware-model.md``)::

    J[t] = a * J[t-1] + I_ff[t] + S[t-1] @ W_rc     # a = 0 for a delta synapse
    V[t] = beta * U[t-1] + J[t]                     # membrane before reset ("mem")
    S[t] = H(V[t] - theta)                          # surrogate gradient in backward
    U[t] = V[t] * (1 - S[t])                        # hard reset to zero

``I_ff`` is the synaptic current already computed by the synapse (gain and
efficacy applied) and ``W_rc`` the effective recurrent matrix (likewise).
Autograd records every step, which makes this path slow but obviously right.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["LIFState", "initial_state", "lif_step", "lif_sequence_reference"]


class LIFState(NamedTuple):
    """Per-neuron state carried from one step to the next, each ``(B, N)``."""

    membrane: torch.Tensor  # U[t-1], after reset
    spikes: torch.Tensor  # S[t-1]
    synaptic: torch.Tensor | None  # J[t-1]; None for a delta synapse


def initial_state(batch: int, n: int, like: torch.Tensor, filtered: bool) -> LIFState:
    """All-zero state ``U[-1] = S[-1] = J[-1] = 0``."""
    zeros = like.new_zeros(batch, n)
    return LIFState(zeros, zeros, zeros if filtered else None)


def lif_step(
    current: torch.Tensor,
    state: LIFState,
    beta: torch.Tensor,
    threshold: float,
    surrogate,
    recurrent: torch.Tensor | None = None,
    syn_decay: float | None = None,
    detach_reset: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, LIFState]:
    """Advance the neuron by one step.

    Args:
        current: Feed-forward synaptic current ``(B, N)``.
        state: State after the previous step.
        beta: Membrane decay ``exp(-dt / tau)``, shape ``(N,)``.
        threshold: Firing threshold ``theta``.
        surrogate: A :class:`~nwave_lightning.surrogate.SurrogateSpike`.
        recurrent: Effective recurrent matrix ``(N, N)`` or ``None`` (FF).
        syn_decay: Synaptic decay ``exp(-dt / tau_syn)``; ``None`` = delta synapse.
        detach_reset: Stop the gradient through the reset term.

    Returns:
        ``(spikes, membrane_before_reset, new_state)``.
    """
    drive = current
    if recurrent is not None:
        drive = drive + state.spikes @ recurrent
    synaptic = None
    if syn_decay is not None:
        synaptic = syn_decay * state.synaptic + drive
        drive = synaptic
    membrane = beta * state.membrane + drive
    spikes = surrogate(membrane - threshold)
    reset_gate = spikes.detach() if detach_reset else spikes
    after_reset = membrane * (1.0 - reset_gate)
    return spikes, membrane, LIFState(after_reset, spikes, synaptic)


def lif_sequence_reference(
    current: torch.Tensor,
    beta: torch.Tensor,
    threshold: float,
    surrogate,
    recurrent: torch.Tensor | None = None,
    syn_decay: float | None = None,
    detach_reset: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run :func:`lif_step` over a ``(B, T, N)`` current from the zero state.

    Returns:
        ``(spikes, membranes)``, both ``(B, T, N)``.
    """
    batch, _, n = current.shape
    state = initial_state(batch, n, current, filtered=syn_decay is not None)
    spikes, membranes = [], []
    # unbind, not current[:, t]: each select's backward would materialise a
    # full (B, T, N) gradient, making backward O(T^2); unbind's is one stack.
    for current_t in current.unbind(1):
        spk, mem, state = lif_step(current_t, state, beta, threshold, surrogate, recurrent, syn_decay, detach_reset)
        spikes.append(spk)
        membranes.append(mem)
    return torch.stack(spikes, dim=1), torch.stack(membranes, dim=1)
