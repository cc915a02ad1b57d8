"""Measurement-driven refinement of one layer's initial weights.

The theory (:mod:`.theory`) fixes the *shape* of the weights (mean-to-spread
ratio, one normal draw ``Z`` per matrix); the hard reset, the finite sequence
length, the recurrent feedback and non-Poisson inputs then move the real
membrane away from its prediction. Two scalars absorb that, found by
fixed-point iteration on measured quantities:

* ``scale`` multiplies every efficacy of the layer; it is moved until the
  measured ``xi`` (:func:`.measure.membrane_xi`) meets the target (a secant
  step in ``log(scale)`` once two points exist, a linear-membrane step before);
* ``rc_scale`` multiplies the recurrent efficacies; it is moved until the
  measured feed-forward share of the membrane variance
  (:func:`.measure.variance_split`) equals ``alpha``.

Example:
    >>> efficacy_matrix(torch.tensor([1.0]), torch.tensor([0.5]), torch.ones(2, 1), 2.0).tolist()
    [[3.0], [3.0]]
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch

from .measure import ensemble_variance, free_membrane

__all__ = ["Measured", "Refined", "efficacy_matrix", "measure_layer", "refine"]

# Relative tolerance on xi and absolute tolerance on the FF share; the
# acceptance check is 15 %, so 3 % leaves room for sampling noise.
XI_TOLERANCE = 0.03
SPLIT_TOLERANCE = 0.03
MAX_STEP = math.log(4.0)  # never change a scale by more than 4x in one iteration


def efficacy_matrix(mu: torch.Tensor, sigma: torch.Tensor, z: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale * (mu + sigma * z)`` with per-postsynaptic-neuron ``mu``, ``sigma`` (columns of ``z``)."""
    return scale * (mu.unsqueeze(0) + sigma.unsqueeze(0) * z)


class Measured(NamedTuple):
    """What one simulation of the layer showed (see :mod:`.measure` for the convention)."""

    xi: float
    mean: float
    std: float
    var_ff: float  # variance of the membrane driven by feed-forward input alone
    var_rc: float  # ... and by recurrent input alone
    rate: float  # output spikes per neuron per step
    silent: int  # neurons that never spiked

    @property
    def ff_share(self) -> float:
        total = self.var_ff + self.var_rc
        return self.var_ff / total if total > 0 else 1.0


def measure_layer(
    current: torch.Tensor,
    spikes: torch.Tensor,
    membrane: torch.Tensor,
    layer,
    recurrent: torch.Tensor | None,
) -> Measured:
    """Statistics of one ``(S, T, N)`` recording of ``layer``.

    ``recurrent`` is the effective recurrent matrix the layer used; the
    recurrent current is rebuilt from the recorded spikes of the previous step.
    """
    v = membrane.detach().to(torch.float64)
    mean = float(v.mean())
    std = math.sqrt(ensemble_variance(v))
    xi = (layer.threshold - mean) / std if std > 0 else math.inf
    var_ff = ensemble_variance(free_membrane(current, layer.beta, layer.syn_decay))
    var_rc = 0.0
    if recurrent is not None:
        previous = torch.zeros_like(spikes, dtype=torch.float64)
        previous[:, 1:] = spikes[:, :-1]
        rc_current = previous @ recurrent.detach().to(torch.float64)
        var_rc = ensemble_variance(free_membrane(rc_current, layer.beta, layer.syn_decay))
    rate = float(spikes.detach().to(torch.float64).mean())
    silent = int((spikes.detach().sum(dim=(0, 1)) == 0).sum())
    return Measured(xi, mean, std, var_ff, var_rc, rate, silent)


class Refined(NamedTuple):
    scale: float
    rc_scale: float
    measured: Measured
    iterations: int
    converged: bool


def _converged(m: Measured, xi: float, alpha: float, use_rc: bool) -> bool:
    ok = abs(m.xi / xi - 1.0) <= XI_TOLERANCE
    return ok and (not use_rc or abs(m.ff_share - alpha) <= SPLIT_TOLERANCE)


def refine(
    apply: Callable[[float, float], None],
    simulate: Callable[[], Measured],
    threshold: float,
    xi: float,
    alpha: float,
    use_rc: bool,
    scale: float = 1.0,
    rc_scale: float = 1.0,
    max_iter: int = 25,
) -> Refined:
    """Iterate ``apply(scale, rc_scale)`` / ``simulate()`` until the measured targets hold.

    Args:
        apply: Writes the layer's weights for the given scales.
        simulate: Runs the layer on the init data and measures it.
        threshold: The layer's firing threshold.
        xi: Target ``xi``.
        alpha: Target feed-forward share of the membrane variance (RC layers).
        use_rc: Whether the recurrent share is tuned (RC layer and ``alpha < 1``).
        scale, rc_scale: Starting values (1 = the theory's prediction).
        max_iter: Most simulations.
    """
    history: list[tuple[float, float]] = []  # (log scale, xi error) for the secant
    measured = None
    for iteration in range(1, max_iter + 1):
        apply(scale, rc_scale)
        measured = simulate()
        if _converged(measured, xi, alpha, use_rc):
            return Refined(scale, rc_scale, measured, iteration, True)
        if iteration == max_iter:
            break
        new_rc_scale = rc_scale
        if use_rc and measured.var_rc > 0 and measured.var_ff > 0:
            # Recurrent variance ~ rc_scale**2 at fixed rates, but stronger
            # recurrence also raises the rates (positive feedback), so only half
            # of the log-step is taken.
            wanted = (1.0 - alpha) / alpha
            factor = (wanted * measured.var_ff / measured.var_rc) ** 0.25
            new_rc_scale = rc_scale * min(max(factor, 0.5), 2.0)
        error = measured.xi - xi
        step = _scale_step(measured, history, math.log(scale), threshold, xi, new_rc_scale / rc_scale)
        # A secant through points taken with another recurrent scale would mix
        # two responses; start the history afresh whenever that scale moves.
        history = [] if abs(math.log(new_rc_scale / rc_scale)) > 0.05 else history + [(math.log(scale), error)]
        scale *= math.exp(min(max(step, -MAX_STEP), MAX_STEP))
        rc_scale = new_rc_scale
    return Refined(scale, rc_scale, measured, max_iter, False)


def _scale_step(measured: Measured, history, log_scale: float, threshold: float, xi: float, rc_factor: float) -> float:
    """Step in ``log(scale)`` that should bring the measured xi to ``xi``."""
    error = measured.xi - xi
    if not math.isfinite(measured.xi):
        return MAX_STEP  # no fluctuation at all: the weights are far too small
    if history:
        last_log, last_error = history[-1]
        if abs(log_scale - last_log) > 1e-9:
            slope = (error - last_error) / (log_scale - last_log)
            if slope < 0:  # xi falls as weights grow; anything else is noise
                return -error / slope
    # Linear membrane: mean and std both proportional to scale; the std also
    # follows the planned change of the recurrent part.
    total = measured.var_ff + measured.var_rc
    std = measured.std
    if total > 0:
        std *= math.sqrt((measured.var_ff + measured.var_rc * rc_factor**2) / total)
    denominator = measured.mean + xi * std
    if denominator <= 0:
        return MAX_STEP
    return math.log(threshold / denominator)
