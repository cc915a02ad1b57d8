"""Fluctuation-driven initialisation theory for the H1 neuron (no simulation here).

Everything is computed in *efficacy space*: ``c = efficacy(w, chip)`` is the
current one presynaptic spike injects (gain included), so one formula serves
both chips and H1v1's exponential map is undone only when weights are written
(:func:`inverse_efficacy`). For a neuron with decay ``beta`` (and, on H1v1, a
synaptic current decaying by ``a = exp(-dt / tau_syn)``) a spike at step 0
adds ``c * k[n]`` to the free (never reset) membrane ``n`` steps later, with::

    delta synapse (H1v2):  k[n] = beta**n
    H1v1:                  k[n] = sum_{m<=n} a**m * beta**(n-m)   (filter * leak)

The design document writes the H1v2 kernel per unit *weight* (``g * beta**n``);
the two agree because ``c = g * w``.

Example:
    >>> import torch
    >>> bar, hat = kernel_sums(torch.tensor([0.5]))
    >>> float(bar), round(float(hat), 4)
    (2.0, 1.3333)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ..hardware import ChipSpec

__all__ = [
    "InputStats",
    "WeightMoments",
    "input_stats",
    "inverse_efficacy",
    "kernel_sums",
    "solve_moments",
    "weight_for_threshold_per_step",
]


def kernel_sums(beta: torch.Tensor, syn_decay: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``eps_bar = sum_n k[n]`` and ``eps_hat = sum_n k[n]**2`` per neuron, exact.

    Args:
        beta: Membrane decay per neuron, shape ``(N,)``, each in ``(0, 1)``.
        syn_decay: Synaptic decay ``a`` in ``[0, 1)``; ``None`` or 0 = delta synapse.

    Returns:
        Two float64 tensors of shape ``(N,)``.

    Example:
        >>> import torch
        >>> bar, hat = kernel_sums(torch.tensor([0.9], dtype=torch.float64), syn_decay=0.5)
        >>> round(float(bar), 6)   # 1 / ((1 - a) (1 - beta))
        20.0
    """
    b = torch.as_tensor(beta, dtype=torch.float64)
    if syn_decay is None or syn_decay == 0.0:
        return 1.0 / (1.0 - b), 1.0 / (1.0 - b * b)
    a = float(syn_decay)
    bar = 1.0 / ((1.0 - a) * (1.0 - b))
    # k[n] = (b^(n+1) - a^(n+1)) / (b - a); squaring and summing the three
    # geometric series gives the closed form below. It cancels badly when
    # b ~ a, where the limit k[n] = (n+1) b^n applies instead.
    diff = b - a
    near = diff.abs() < 1e-4
    safe = torch.where(near, torch.ones_like(diff), diff)
    hat = (b * b / (1 - b * b) - 2 * a * b / (1 - a * b) + a * a / (1 - a * a)) / (safe * safe)
    limit = (1 + b * b) / (1 - b * b) ** 3
    return bar, torch.where(near, limit, hat)


class InputStats(NamedTuple):
    """Spike statistics of a synapse's presynaptic train, per step.

    Attributes:
        rate: Mean value per step of each input channel ``(n_in,)`` (spike probability).
        var: Fluctuation of each channel ``(n_in,)``: variance across samples at a
            fixed step, averaged over steps (``p (1 - p)`` for Bernoulli spikes).
    """

    rate: torch.Tensor
    var: torch.Tensor

    @property
    def n(self) -> int:
        return int(self.rate.numel())


def input_stats(x: torch.Tensor) -> InputStats:
    """Statistics of a captured presynaptic train ``x`` of shape ``(S, T, n_in)``.

    The fluctuation is measured across samples at each step (the ensemble the
    theory averages over), so a deterministic onset common to all samples does
    not count as noise. With a single sample it falls back to the variance over time.

    Example:
        >>> import torch
        >>> stats = input_stats(torch.tensor([[[1.0], [0.0]], [[0.0], [0.0]]]))
        >>> stats.rate.tolist(), stats.var.tolist()
        ([0.25], [0.25])
    """
    x = x.detach().to(torch.float64)
    rate = x.mean(dim=(0, 1))
    if x.shape[0] > 1:
        var = x.var(dim=0).mean(dim=0)
    else:
        var = x[0].var(dim=0) if x.shape[1] > 1 else torch.zeros_like(rate)
    return InputStats(rate.cpu(), var.cpu())


class WeightMoments(NamedTuple):
    """Per-neuron efficacy statistics of a layer's afferent weights, each ``(N,)``.

    Attributes:
        mu: Mean feed-forward efficacy.
        sigma_ff: Standard deviation of the feed-forward efficacies.
        sigma_rc: Standard deviation of the (zero-mean) recurrent efficacies.
        mu_u: Predicted mean membrane ``N nu mu eps_bar``.
        sigma_u: Predicted membrane fluctuation.
        centered: Whether the second condition left the mean at zero.
    """

    mu: torch.Tensor
    sigma_ff: torch.Tensor
    sigma_rc: torch.Tensor
    mu_u: torch.Tensor
    sigma_u: torch.Tensor
    centered: torch.Tensor


def solve_moments(
    stats: InputStats,
    eps_bar: torch.Tensor,
    eps_hat: torch.Tensor,
    threshold: float,
    xi: float,
    alpha: float,
    rc_rate: float | None = None,
    n_recurrent: int = 0,
    diversity: float = 1.0,
    centred_limit: float | None = None,
) -> WeightMoments:
    """Mean and spread of the efficacies that put the membrane at ``xi``.

    With ``nu_j`` the input rates and ``v_j`` their fluctuations (per step),
    the feed-forward part of the membrane has mean ``mu_U = eps_bar mu sum nu_j``
    and variance ``eps_hat (sigma**2 + mu**2) sum v_j = alpha sigma_U**2``;
    the recurrent part, zero-mean, carries the rest:
    ``(1 - alpha) sigma_U**2 = eps_hat sigma_rc**2 N r (1 - r)``. (Rossbroich
    et al. write ``nu`` for ``v``; ``v = nu (1 - nu)`` is the exact variance of
    a Bernoulli spike train.) First condition: ``xi = (theta - mu_U) / sigma_U``.

    Second condition (``mu`` and ``sigma`` are two unknowns): fixed random
    weights give every neuron its *own* mean membrane, scattered around
    ``mu_U`` with SD ``eps_bar sigma sqrt(sum nu_j**2)`` (quenched disorder;
    the Campbell variance above does not contain it). That scatter is set to
    ``diversity * sigma_U``. With ``diversity = xi / 2`` the scatter's 2-SD
    band reaches threshold, so ~98 % of the neurons have their own mean below
    threshold (fluctuation driven, not tonically firing) while the weights stay
    as diverse as that allows. Centred weights (``mu = 0``, the balanced
    choice of Rossbroich et al.) are kept whenever their own scatter is at most
    ``centred_limit * sigma_U`` (default ``diversity``; sparse input); denser
    input gets the smallest mean weight that meets the diversity condition.
    A positive mean weight makes every neuron follow the total input count,
    which both classes of a task may share: classifiers trained from it settle
    on equal rates for every class, so centred weights are preferred as long as
    few neurons end up with their own mean above threshold.
    Recurrent weights stay zero-mean: a mean there is positive feedback.

    Args:
        stats: Input statistics (:func:`input_stats`).
        eps_bar, eps_hat: Kernel sums per neuron (:func:`kernel_sums`).
        threshold: Firing threshold ``theta``.
        xi: Target ``xi``.
        alpha: Feed-forward share of ``sigma_U**2`` (used when ``n_recurrent``).
        rc_rate: Expected output rate per step of the layer (recurrent input).
        n_recurrent: Recurrent inputs per neuron (0 for FF layers: ``alpha`` = 1).
        diversity: Scatter of the neurons' means in units of ``sigma_U``.
        centred_limit: Largest scatter (in units of ``sigma_U``) for which
            centred weights are kept; ``None``: ``diversity``.

    Raises:
        ValueError: when the input carries no fluctuation (``sum v_j = 0``).

    Example:
        >>> import torch
        >>> stats = InputStats(torch.full((8,), 0.4, dtype=torch.float64), torch.full((8,), 0.24, dtype=torch.float64))
        >>> bar, hat = kernel_sums(torch.tensor([0.96], dtype=torch.float64))
        >>> m = solve_moments(stats, bar, hat, threshold=1.0, xi=2.0, alpha=1.0, diversity=1.0)
        >>> round(float((1.0 - m.mu_u) / m.sigma_u), 6)   # first condition
        2.0
        >>> round(float(bar * m.sigma_ff * (stats.rate ** 2).sum().sqrt() / m.sigma_u), 6)   # second
        1.0
    """
    rate_sum = stats.rate.sum()
    var_sum = stats.var.sum()
    rate_sq = (stats.rate**2).sum()
    if not float(var_sum) > 0:
        raise ValueError(
            "solve_moments: the input carries no fluctuation (variance 0 over samples), so no weights reach a finite "
            "xi; feed spikes that vary between samples."
        )
    budget = alpha if n_recurrent and rc_rate is not None else 1.0
    # sigma_U**2 = eps_hat (sigma**2 + mu**2) var_sum / budget  =: G (sigma**2 + mu**2)
    gain_var = eps_hat * var_sum / budget
    quenched = eps_bar**2 * rate_sq  # scatter**2 = quenched * sigma**2
    excess = quenched - diversity**2 * gain_var
    limit = diversity if centred_limit is None else centred_limit
    if limit < diversity:
        # Between the two, neither branch applies: centred weights refused, yet no mean weight
        # is needed to reach the scatter (the non-centred solution would have zero spread).
        raise ValueError(f"solve_moments: centred_limit={limit} must be >= diversity={diversity}.")
    centered = quenched <= limit**2 * gain_var
    rho_sq = torch.where(excess <= 0, torch.zeros_like(excess), diversity**2 * gain_var / excess.clamp_min(1e-300))
    # theta = eps_bar mu rate_sum + xi sqrt(G mu**2 (1 + rho**2))   (non-centred)
    mu = threshold / (eps_bar * rate_sum + xi * torch.sqrt(gain_var * (1 + rho_sq)))
    sigma = torch.sqrt(rho_sq) * mu
    sigma_u_centered = torch.full_like(mu, threshold / xi)
    sigma_centered = sigma_u_centered / torch.sqrt(gain_var)
    mu = torch.where(centered, torch.zeros_like(mu), mu)
    sigma = torch.where(centered, sigma_centered, sigma)
    mu_u = eps_bar * mu * rate_sum
    sigma_u = torch.sqrt(gain_var * (sigma**2 + mu**2))
    sigma_rc = torch.zeros_like(mu)
    if n_recurrent and rc_rate is not None and budget < 1.0:
        r = min(max(rc_rate, 1e-6), 1 - 1e-6)
        sigma_rc = torch.sqrt((1 - budget) * sigma_u**2 / (eps_hat * n_recurrent * r * (1 - r)))
    return WeightMoments(mu, sigma, sigma_rc, mu_u, sigma_u, centered)


def inverse_efficacy(current: torch.Tensor, chip: ChipSpec) -> torch.Tensor:
    """The weight whose efficacy is ``current``: inverse of :func:`nwave_lightning.hardware.efficacy`.

    The efficacy map is odd and strictly increasing, so it has a unique inverse
    ``w = sign(c) * log1p(|c| (exp(kappa) - 1) / g) / kappa`` (exponential) or
    ``w = c / g`` (linear).

    Example:
        >>> import torch
        >>> from nwave_lightning.hardware import H1V1, efficacy
        >>> w = torch.tensor([-0.7, 0.0, 0.3])
        >>> torch.allclose(inverse_efficacy(efficacy(w, H1V1), H1V1), w)
        True
    """
    if chip.efficacy == "linear":
        return current / chip.synaptic_gain
    scale = math.expm1(chip.kappa) / chip.synaptic_gain
    return torch.sign(current) * torch.log1p(current.abs() * scale) / chip.kappa


def weight_for_threshold_per_step(rate_sum: float, threshold: float, chip: ChipSpec, syn_decay: float | None = None) -> float:
    """The common weight at which a layer's mean input charges ``threshold`` in a single step.

    A neuron fires at high rates (towards one spike per step) only if its mean
    input current per step reaches ``threshold`` on its own: the leak then no
    longer matters. With ``rate_sum = sum_j nu_j`` input spikes per step and
    every weight equal to ``w``, the steady input current per step is
    ``rate_sum * c(w)`` for a delta synapse (H1v2) and
    ``rate_sum * c(w) / (1 - a)`` behind H1v1's synaptic filter. This returns
    the ``w`` that makes it equal to ``threshold``: the per-weight charge the
    layer's input width and rate demand. Above the chip's weight limit, the
    input cannot drive the layer to high rates with in-range weights.

    Args:
        rate_sum: Input spikes per step, summed over the input channels (> 0).
        threshold: Firing threshold ``theta``.
        chip: The chip whose efficacy map converts current to weight.
        syn_decay: Synaptic decay ``a`` per step (H1v1); ``None`` or 0 for a delta synapse.

    Example:
        >>> from nwave_lightning.hardware import H1V2
        >>> round(weight_for_threshold_per_step(8 * 0.4, 1.0, H1V2), 4)   # tutorial 7: 8 channels at p = 0.4
        1.25
        >>> round(weight_for_threshold_per_step(1 * 0.4, 1.0, H1V2), 4)   # one channel: far above 1.66
        10.0
    """
    if not rate_sum > 0:
        raise ValueError(f"weight_for_threshold_per_step: rate_sum={rate_sum!r} must be > 0 (input spikes per step).")
    filter_gain = 1.0 / (1.0 - syn_decay) if syn_decay else 1.0
    current = torch.tensor(threshold / (rate_sum * filter_gain), dtype=torch.float64)
    return float(inverse_efficacy(current, chip))
