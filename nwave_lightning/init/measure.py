"""Measured fluctuation statistics of a layer's membrane (the check ``fluct_init`` meets).

Convention, used by ``fluct_init`` and its tests alike: for a membrane
recording ``V`` of shape ``(S, T, N)`` (samples, steps, neurons)::

    mean V = average of V over samples, steps and neurons
    var  V = variance across samples at a fixed (step, neuron), averaged over steps and neurons
    xi     = (theta - mean V) / sqrt(var V)

The variance is the ensemble (input-to-input) fluctuation the theory of
Rossbroich et al. describes: it leaves out the offsets between neurons that
fixed weights create (quenched disorder, which drives no spike timing) and the
deterministic rise from the zero initial state. With one sample it falls back
to each neuron's variance over time.

Example:
    >>> import torch
    >>> v = torch.tensor([[[0.0]], [[1.0]]])   # two samples, one step, one neuron
    >>> round(membrane_xi(v, threshold=1.0), 4)
    0.7071
"""

from __future__ import annotations

import math

import torch

__all__ = ["ensemble_variance", "free_membrane", "membrane_xi", "variance_split"]


def ensemble_variance(v: torch.Tensor) -> float:
    """Variance across samples at fixed (step, neuron), averaged; see the module docstring."""
    v = v.detach().to(torch.float64)
    if v.shape[0] > 1:
        return float(v.var(dim=0).mean())
    return float(v[0].var(dim=0).mean()) if v.shape[1] > 1 else 0.0


def membrane_xi(membrane: torch.Tensor, threshold: float) -> float:
    """``(theta - mean V) / std V`` of a ``(S, T, N)`` membrane recording (``inf`` if V never fluctuates)."""
    std = math.sqrt(ensemble_variance(membrane))
    mean = float(membrane.detach().to(torch.float64).mean())
    return (threshold - mean) / std if std > 0 else math.inf


def free_membrane(current: torch.Tensor, beta: torch.Tensor, syn_decay: float | None = None) -> torch.Tensor:
    """The membrane a current ``(S, T, N)`` alone would produce without spikes/reset.

    Same equations as the layer (synaptic filter on H1v1, then the leak), so
    the contributions of feed-forward and recurrent input add up linearly.

    Example:
        >>> import torch
        >>> free_membrane(torch.ones(1, 3, 1), torch.tensor([0.5]))[0, :, 0].tolist()
        [1.0, 1.5, 1.75]
    """
    current = current.detach().to(torch.float64)
    beta = beta.detach().to(torch.float64)
    v = torch.zeros_like(current[:, 0])
    j = torch.zeros_like(v)
    out = torch.empty_like(current)
    for t in range(current.shape[1]):
        if syn_decay:
            j = syn_decay * j + current[:, t]
            v = beta * v + j
        else:
            v = beta * v + current[:, t]
        out[:, t] = v
    return out


def variance_split(
    ff_current: torch.Tensor, rc_current: torch.Tensor, beta: torch.Tensor, syn_decay: float | None = None
) -> float:
    """Share of the membrane fluctuation driven by feed-forward input, ``var_ff / (var_ff + var_rc)``.

    Both currents ``(S, T, N)`` are measured (the synapse output and
    ``S[t-1] @ efficacy(W_rc)``) and filtered by the layer's own kernel;
    variances follow the module convention.
    """
    var_ff = ensemble_variance(free_membrane(ff_current, beta, syn_decay))
    var_rc = ensemble_variance(free_membrane(rc_current, beta, syn_decay))
    total = var_ff + var_rc
    return var_ff / total if total > 0 else 1.0
