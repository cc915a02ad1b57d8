"""Measurement-driven refinement of one layer's initial weights.

The theory (:mod:`.theory`) fixes the *shape* of the weights (mean-to-spread
ratio, one normal draw ``Z`` per matrix); the hard reset, the finite sequence
length, the recurrent feedback and non-Poisson inputs then move the real
membrane away from its prediction. Two scalars absorb that, found by
iteration on measured quantities:

* ``scale`` multiplies every efficacy of the layer; it is moved until the
  measured ``xi`` (:func:`.measure.membrane_xi`) meets the target (a
  bracketed root search in ``log(scale)``, see :func:`refine`);
* ``rc_scale`` multiplies the recurrent efficacies; it is moved until the
  measured feed-forward share of the membrane variance
  (:func:`.measure.variance_split`) equals ``alpha``.

Both are stationary statistics: :func:`measure_layer` leaves out the first
``burn_in`` steps (the rise from the zero state), as the acceptance check
does (``docs/fluct_init.md``).

Example:
    >>> efficacy_matrix(torch.tensor([1.0]), torch.tensor([0.5]), torch.ones(2, 1), 2.0).tolist()
    [[3.0], [3.0]]
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch

from .measure import ensemble_variance, free_membrane, stationary

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
    """What one simulation of the layer showed, after its burn-in (see :mod:`.measure` for the convention)."""

    xi: float
    mean: float
    std: float
    var_ff: float  # variance of the membrane driven by feed-forward input alone
    var_rc: float  # ... and by recurrent input alone
    rate: float  # output spikes per neuron per step (stationary part)
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
    burn_in: int = 0,
) -> Measured:
    """Statistics of one ``(S, T, N)`` recording of ``layer``, after ``burn_in`` steps.

    ``recurrent`` is the effective recurrent matrix the layer used; the
    recurrent current is rebuilt from the recorded spikes of the previous step.
    ``xi``, the variances and the rate are measured on steps ``burn_in`` to
    ``T - 1`` (the linear responses behind the variances are filtered from
    step 0, as the layer does); ``silent`` counts neurons that never spike in
    the whole recording.
    """
    v = stationary(membrane.detach(), burn_in).to(torch.float64)
    mean = float(v.mean())
    std = math.sqrt(ensemble_variance(v))
    xi = (layer.threshold - mean) / std if std > 0 else math.inf
    var_ff = ensemble_variance(free_membrane(current, layer.beta, layer.syn_decay), burn_in)
    var_rc = 0.0
    if recurrent is not None:
        previous = torch.zeros_like(spikes, dtype=torch.float64)
        previous[:, 1:] = spikes[:, :-1]
        rc_current = previous @ recurrent.detach().to(torch.float64)
        var_rc = ensemble_variance(free_membrane(rc_current, layer.beta, layer.syn_decay), burn_in)
    rate = float(stationary(spikes.detach(), burn_in).to(torch.float64).mean())
    silent = int((spikes.detach().sum(dim=(0, 1)) == 0).sum())
    return Measured(xi, mean, std, var_ff, var_rc, rate, silent)


class Refined(NamedTuple):
    """Outcome of :func:`refine`: the scales last applied and what they gave."""

    scale: float
    rc_scale: float
    measured: Measured
    iterations: int  # simulations run
    converged: bool


def _xi_ok(m: Measured, xi: float) -> bool:
    return abs(m.xi / xi - 1.0) <= XI_TOLERANCE


def _share_ok(m: Measured, alpha: float, use_rc: bool) -> bool:
    return not use_rc or abs(m.ff_share - alpha) <= SPLIT_TOLERANCE


def refine(
    apply: Callable[[float, float], None],
    simulate: Callable[[], Measured],
    threshold: float,
    xi: float,
    alpha: float,
    use_rc: bool,
    scale: float = 1.0,
    rc_scale: float = 1.0,
    max_iter: int = 40,
) -> Refined:
    """Iterate ``apply(scale, rc_scale)`` / ``simulate()`` until the measured targets hold.

    Two nested searches. For a fixed ``rc_scale`` the measured ``xi`` falls
    as ``scale`` grows, so ``scale`` is found by a bracketed root search
    (:func:`_solve_scale`). Then ``rc_scale`` moves on the feed-forward share
    measured at that ``xi`` and ``scale`` is searched again from where it
    was. (Moving both at once made the search oscillate in the stationary
    state of tutorial 7's recurrent layer: near the onset of spiking, the
    resets, not the free fluctuation, set the membrane variance, and ``xi``
    fell from about 5 to 1.2 within ten percent of ``scale``.)

    Args:
        apply: Writes the layer's weights for the given scales.
        simulate: Runs the layer on the init data and measures it.
        threshold: The layer's firing threshold.
        xi: Target ``xi``.
        alpha: Target feed-forward share of the membrane variance (RC layers).
        use_rc: Whether the recurrent share is tuned (RC layer and ``alpha < 1``).
        scale: Starting value of ``scale`` (1 = the theory's prediction).
        rc_scale: Starting value of ``rc_scale``.
        max_iter: Most simulations in all.

    Returns:
        The scales last applied (the weights written are theirs), their
        measurement, the simulations run and whether both targets were met.
    """
    used = 0
    while True:
        scale, measured, steps = _solve_scale(apply, simulate, threshold, xi, scale, rc_scale, max_iter - used)
        used += steps
        if not _xi_ok(measured, xi):
            return Refined(scale, rc_scale, measured, used, False)
        if _share_ok(measured, alpha, use_rc):
            return Refined(scale, rc_scale, measured, used, True)
        if used >= max_iter or not (measured.var_rc > 0 and measured.var_ff > 0):
            # Out of budget, or a layer that does not spike at this xi: its
            # recurrent weights carry no variance whatever their scale.
            return Refined(scale, rc_scale, measured, used, False)
        # At fixed rates the recurrent variance goes as rc_scale**2; the xi
        # search that follows keeps the rates near where they are.
        wanted = (1.0 - alpha) / alpha
        factor = (wanted * measured.var_ff / measured.var_rc) ** 0.5
        rc_scale *= min(max(factor, 0.5), 2.0)


def _solve_scale(apply, simulate, threshold: float, xi: float, scale: float, rc_scale: float, budget: int):
    """Find the ``scale`` at which the measured ``xi`` meets the target, ``rc_scale`` fixed.

    Until the root is bracketed, steps in ``log(scale)`` come from a secant
    through the last two points or, before two exist (or when their slope has
    the wrong sign), from the linear-membrane prediction; each is at most
    ``MAX_STEP``. Once a point above and one below the target exist, the
    Illinois variant of regula falsi keeps the root inside the bracket, so a
    steep, non-linear ``xi(scale)`` cannot make the search jump back and forth.

    Returns:
        ``(scale, measured, simulations)`` of the last point simulated.
    """
    log_scale = math.log(scale)
    low = high = None  # [log scale, xi error] with error > 0 (weights too small) / < 0 (too large)
    kept = None  # the bracket end kept by the last bracketed step (Illinois bookkeeping)
    previous = None
    measured = None
    for simulation in range(1, budget + 1):
        apply(math.exp(log_scale), rc_scale)
        measured = simulate()
        if _xi_ok(measured, xi) or simulation == budget:
            return math.exp(log_scale), measured, simulation
        error = measured.xi - xi if math.isfinite(measured.xi) else math.inf
        if error > 0:
            if low is None or log_scale > low[0]:
                low = [log_scale, error]
            replaced = "low"
        else:
            if high is None or log_scale < high[0]:
                high = [log_scale, error]
            replaced = "high"
        if low is not None and high is not None:
            # Illinois: when the same end is replaced twice running, halve the
            # error kept at the other end so the next point moves towards it.
            if kept == replaced:
                other = high if replaced == "low" else low
                other[1] /= 2.0
            kept = replaced
            if math.isfinite(low[1]):
                fraction = low[1] / (low[1] - high[1])
                # Stay clear of the ends: a point on an end teaches nothing new.
                fraction = min(max(fraction, 0.05), 0.95)
            else:
                fraction = 0.5  # a silent membrane gives no slope to interpolate
            log_scale = low[0] + fraction * (high[0] - low[0])
            continue
        step = _scale_step(measured, previous, log_scale, threshold, xi)
        previous = (log_scale, error)
        log_scale += min(max(step, -MAX_STEP), MAX_STEP)
    return math.exp(log_scale), measured, budget


def _scale_step(measured: Measured, previous, log_scale: float, threshold: float, xi: float) -> float:
    """Step in ``log(scale)`` that should bring the measured xi to ``xi`` (root not bracketed yet)."""
    error = measured.xi - xi
    if not math.isfinite(measured.xi):
        return MAX_STEP  # no fluctuation at all: the weights are far too small
    if previous is not None and math.isfinite(previous[1]):
        last_log, last_error = previous
        if abs(log_scale - last_log) > 1e-9:
            slope = (error - last_error) / (log_scale - last_log)
            if slope < 0:  # xi falls as weights grow; anything else is noise
                return -error / slope
    # Linear membrane: mean and std both proportional to scale.
    denominator = measured.mean + xi * measured.std
    if denominator <= 0:
        return MAX_STEP
    return math.log(threshold / denominator)
