"""Measured fluctuation statistics of a layer's membrane (the check ``fluct_init`` meets).

Convention, used by ``fluct_init`` and its tests alike (``docs/fluct_init.md``):
for a membrane recording ``V`` of shape ``(S, T, N)`` (samples, steps,
neurons), the first ``burn_in`` steps are dropped and on the rest::

    mean V = average of V over samples, steps and neurons
    var  V = variance across samples at a fixed (step, neuron), averaged over steps and neurons
    xi     = (theta - mean V) / sqrt(var V)

Both are *stationary* statistics. Every sequence starts from the zero state,
and the membrane's mean and variance rise towards their stationary values
over a few membrane time constants; that rise is not part of the theory of
Rossbroich et al., so ``fluct_init`` measures after a burn-in of
``burn_in_taus`` times the layer's slowest time constant
(:func:`burn_in_steps`). The variance is the ensemble (input-to-input)
fluctuation the theory describes: it leaves out the offsets between neurons
that fixed weights create (quenched disorder, which drives no spike timing).
With one sample it falls back to each neuron's variance over time.

Linear responses (:func:`free_membrane`) are always computed over the whole
sequence, from the zero state as the layer does, and only then cut: cutting
the current first would start a second rise at the burn-in.

Example:
    >>> import torch
    >>> v = torch.tensor([[[0.0]], [[1.0]]])   # two samples, one step, one neuron
    >>> round(membrane_xi(v, threshold=1.0), 4)
    0.7071
    >>> v = torch.tensor([[[9.0], [0.0]], [[9.0], [1.0]]])   # step 0 is burn-in
    >>> round(membrane_xi(v, threshold=1.0, burn_in=1), 4)
    0.7071
"""

from __future__ import annotations

import math

import torch

__all__ = ["burn_in_steps", "ensemble_variance", "free_membrane", "membrane_xi", "stationary", "slowest_time_constant", "variance_split"]


def slowest_time_constant(layer) -> float:
    """The time constant, in seconds, over which ``layer``'s membrane forgets its zero initial state.

    The largest membrane ``tau`` of the layer; on H1v1 plus the chip's
    ``tau_syn``. There the response to a spike is the synaptic filter
    convolved with the leak, whose mean delay is ``tau + tau_syn``, and the
    remaining rise of the mean membrane at ``3 (tau + tau_syn)`` is below
    ``exp(-3)`` for any ratio of the two (the slower one alone would leave up
    to ``tau / (tau - tau_syn)`` times more).

    Example:
        >>> from nwave_lightning.layers import H1v1Layer, H1v2Layer
        >>> round(slowest_time_constant(H1v2Layer(2, taus=25e-3, dt=1e-3)), 6)
        0.025
        >>> round(slowest_time_constant(H1v1Layer(2, taus=25e-3, dt=1e-3)), 6)   # + tau_syn = 5 ms
        0.03
    """
    tau = float(layer.taus.detach().max())
    if layer.syn_decay is not None:
        tau += float(layer.chip.tau_syn)
    return tau


def burn_in_steps(tau: float, dt: float, burn_in_taus: float) -> int:
    """Steps to drop before measuring: ``ceil(burn_in_taus * tau / dt)``.

    Args:
        tau: The slowest time constant in seconds (:func:`slowest_time_constant`).
        dt: The step in seconds.
        burn_in_taus: The burn-in in units of ``tau`` (``fluct_init``'s default is 3).

    Example:
        >>> burn_in_steps(25e-3, 1e-3, 3.0)   # tutorial 7: 3 x 25 ms at 1 ms
        75
    """
    # Rounded first: 3 * 25e-3 / 1e-3 is 75.00000000000001 in float64 and 75.0000011 with
    # the float32 taus the layers keep.
    return max(0, math.ceil(round(burn_in_taus * tau / dt, 3)))


def stationary(v: torch.Tensor, burn_in: int = 0) -> torch.Tensor:
    """``v[:, burn_in:]`` of a ``(S, T, ...)`` recording, refusing a burn-in that leaves nothing.

    Raises:
        ValueError: when ``burn_in`` is negative or not shorter than the ``T`` steps.
    """
    if isinstance(burn_in, bool) or not isinstance(burn_in, int) or burn_in < 0:
        raise ValueError(f"burn_in={burn_in!r} must be a non-negative integer number of steps (0 keeps every step).")
    steps = v.shape[1]
    if burn_in >= steps:
        raise ValueError(
            f"burn_in={burn_in} steps leaves nothing of a {steps}-step recording; use a burn-in below {steps} steps "
            "or record longer sequences."
        )
    return v[:, burn_in:]


def ensemble_variance(v: torch.Tensor, burn_in: int = 0) -> float:
    """Variance across samples at fixed (step, neuron), averaged, after ``burn_in`` steps; see the module docstring."""
    v = stationary(v.detach(), burn_in).to(torch.float64)
    if v.shape[0] > 1:
        return float(v.var(dim=0).mean())
    return float(v[0].var(dim=0).mean()) if v.shape[1] > 1 else 0.0


def membrane_xi(membrane: torch.Tensor, threshold: float, burn_in: int = 0) -> float:
    """``(theta - mean V) / std V`` of a ``(S, T, N)`` membrane recording (``inf`` if V never fluctuates).

    Args:
        membrane: The pre-reset membrane ``(S, T, N)``.
        threshold: The layer's threshold ``theta``.
        burn_in: Leading steps left out of both statistics (the rise from the
            zero state); ``fluct_init`` uses :func:`burn_in_steps`. 0 keeps
            every step.
    """
    v = stationary(membrane.detach(), burn_in).to(torch.float64)
    std = math.sqrt(ensemble_variance(v))
    mean = float(v.mean())
    return (threshold - mean) / std if std > 0 else math.inf


def free_membrane(current: torch.Tensor, beta: torch.Tensor, syn_decay: float | None = None) -> torch.Tensor:
    """The membrane a current ``(S, T, N)`` alone would produce without spikes/reset.

    Same equations as the layer (synaptic filter on H1v1, then the leak), so
    the contributions of feed-forward and recurrent input add up linearly.
    The result covers every step, from the zero state.

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
    ff_current: torch.Tensor,
    rc_current: torch.Tensor,
    beta: torch.Tensor,
    syn_decay: float | None = None,
    burn_in: int = 0,
) -> float:
    """Share of the membrane fluctuation driven by feed-forward input, ``var_ff / (var_ff + var_rc)``.

    Both currents ``(S, T, N)`` are measured (the synapse output and
    ``S[t-1] @ efficacy(W_rc)``) and filtered by the layer's own kernel over
    the whole sequence; the variances follow the module convention, after
    ``burn_in`` steps.
    """
    var_ff = ensemble_variance(free_membrane(ff_current, beta, syn_decay), burn_in)
    var_rc = ensemble_variance(free_membrane(rc_current, beta, syn_decay), burn_in)
    total = var_ff + var_rc
    return var_ff / total if total > 0 else 1.0
