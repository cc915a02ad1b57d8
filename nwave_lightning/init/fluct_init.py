"""``fluct_init``: fluctuation-driven initialisation of H1 networks.

After Rossbroich, Gygax & Zenke (2022), for this framework's hardware model
(``docs/fluct_init.md`` has the formulas and conventions), both chips, FF and
RC layers. Layers are initialised in order; each one from the spike
statistics its input really has (the model runs on the init batches, so
frontends and the already initialised layers before it are simulated).

Per layer:

1. Input rate ``nu`` and fluctuation ``v`` per channel are measured with
   forward hooks; the kernel sums ``eps_bar``, ``eps_hat`` of the layer's own
   PSP kernel are exact (:mod:`.theory`).
2. Two conditions fix the mean ``mu_W`` and spread ``sigma_W`` of the
   feed-forward efficacies: ``xi = (theta - mu_U) / sigma_U`` and the
   diversity condition of :func:`.theory.solve_moments`: centred (zero-mean)
   weights, the balanced choice of Rossbroich et al., as long as the neurons'
   own mean membranes then scatter by at most ``sigma_U * xi`` (sparse input);
   otherwise the smallest mean weight that makes them scatter by
   ``sigma_U * xi / 2``, so ~98 % of them are fluctuation driven (dense
   input). Recurrent weights are zero-mean and carry ``1 - alpha`` of
   ``sigma_U**2``.
3. Weights are drawn (normal in efficacy space, mapped back through the
   inverse efficacy on H1v1) and two scales are refined until the *measured*
   ``xi`` and feed-forward variance share match (:mod:`.refine`).

The measurement convention is that of :mod:`.measure`: stationary
statistics, after a burn-in of ``burn_in_taus`` times the layer's slowest time
constant (the rise from the zero initial state is not part of the theory),
the variance taken across samples and averaged over steps and neurons. Input
rates are measured over the same steps.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..hardware import weights_out_of_range
from ..layers.walk import synapse_layer_pairs
from .capture import batch_inputs, record
from .measure import burn_in_steps, slowest_time_constant
from .refine import Measured, efficacy_matrix, measure_layer, refine
from .theory import input_stats, inverse_efficacy, kernel_sums, solve_moments, weight_for_threshold_per_step

__all__ = ["LayerInit", "fluct_init"]


class LayerInit(NamedTuple):
    """Outcome for one layer (returned by :func:`fluct_init`, printed when verbose).

    Rates are spikes per step; weights are in the chip's weight units.
    """

    name: str
    rate_in: float
    mu_w: float  # mean of the feed-forward weights drawn
    sigma_ff: float  # their standard deviation
    sigma_rc: float  # standard deviation of the recurrent weights (0 for FF layers)
    centered: bool  # True: the theory kept mu_W = 0 (sparse input)
    xi: float  # measured on the model after initialisation
    ff_share: float  # measured feed-forward share of the membrane variance
    mean_u: float  # measured mean membrane
    std_u: float  # measured membrane fluctuation
    rate_out: float
    silent: int  # neurons without a spike over the init batches
    out_of_range: int  # weights outside the chip's range
    iterations: int
    burn_in: int = 0  # leading steps left out of every statistic above (the rise from the zero state)


def _check_arguments(model, xi_target, alpha, n_batches, burn_in_taus) -> None:
    if not isinstance(model, nn.Module):
        raise ValueError(f"fluct_init: model must be a torch.nn.Module, got {type(model).__name__}.")
    number = (int, float)
    if isinstance(xi_target, bool) or not isinstance(xi_target, number) or not math.isfinite(xi_target) or xi_target <= 0:
        raise ValueError(
            f"fluct_init: xi_target={xi_target!r} must be a finite number > 0 (the distance from the mean membrane "
            "to threshold in standard deviations; 1 to 3 is typical, e.g. xi_target=2.0)."
        )
    if isinstance(alpha, bool) or not isinstance(alpha, number) or not 0.0 <= alpha <= 1.0:
        raise ValueError(
            f"fluct_init: alpha={alpha!r} must be in [0, 1] (the feed-forward share of the membrane variance; "
            "1.0 = feed-forward only, e.g. alpha=0.85 for recurrent layers)."
        )
    if isinstance(n_batches, bool) or not isinstance(n_batches, int) or n_batches < 1:
        raise ValueError(f"fluct_init: n_batches={n_batches!r} must be a positive integer (e.g. n_batches=4).")
    if (
        isinstance(burn_in_taus, bool)
        or not isinstance(burn_in_taus, number)
        or not math.isfinite(burn_in_taus)
        or burn_in_taus < 0
    ):
        raise ValueError(
            f"fluct_init: burn_in_taus={burn_in_taus!r} must be a finite number >= 0 (the leading part of each init "
            "sequence left out of the statistics, in units of the layer's slowest time constant; e.g. "
            "burn_in_taus=3.0, or 0 to measure over every step)."
        )


def _group_pairs(pairs) -> list[tuple[nn.Module, list[int]]]:
    """Layers in order of appearance, each with the indices of the pairs (synapses) feeding it."""
    groups: list[tuple[nn.Module, list[int]]] = []
    seen_synapses: set[int] = set()
    for index, (synapse, layer) in enumerate(pairs):
        if id(synapse) in seen_synapses:
            raise ValueError(
                f"fluct_init: the same {type(synapse).__name__} appears in two synapse/layer pairs; a synapse can "
                "feed one layer only. Fix model.layer_pairs."
            )
        seen_synapses.add(id(synapse))
        for known, members in groups:
            if known is layer:
                members.append(index)
                break
        else:
            groups.append((layer, [index]))
    return groups


def _write(module: nn.Module, attr: str, value: torch.Tensor, label: str) -> None:
    """Store ``value`` as ``module.<attr>``, through a parametrisation's ``right_inverse`` if any."""
    target = getattr(module, attr)
    value = value.to(device=target.device, dtype=target.dtype)
    if parametrize.is_parametrized(module, attr):
        setattr(module, attr, value)
        written = getattr(module, attr)
        if not torch.allclose(written, value, rtol=1e-4, atol=1e-6):
            kinds = ", ".join(type(p).__name__ for p in module.parametrizations[attr])
            raise ValueError(
                f"fluct_init: {label} is parametrised ({kinds}) and its right_inverse does not reproduce the weights "
                "fluct_init draws (a sign parametrisation keeps its own sign logits). Run fluct_init before "
                "registering the parametrisation (e.g. before install_sign_parametrization)."
            )
    else:
        target.copy_(value)


def _model_device(model: nn.Module) -> torch.device | None:
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return None


def _hz(per_step: float, dt: float) -> str:
    return f"{per_step / dt:.1f}Hz"


def fluct_init(
    model: nn.Module,
    loader,
    xi_target: float = 2.0,
    alpha: float = 1.0,
    n_batches: int = 4,
    verbose: bool = False,
    *,
    burn_in_taus: float = 3.0,
) -> list[LayerInit]:
    """Initialise every synapse/layer pair of ``model`` in the fluctuation-driven regime.

    Layers are done one after the other ("stacked"), each from the input its
    predecessors, now initialised, actually give it. After the call, on the
    init batches, every layer's measured ``(theta - mean V) / std V`` (the
    convention of :mod:`nwave_lightning.init.measure`) is within a few percent
    of ``xi_target`` and, in RC layers, the measured feed-forward share of the
    membrane variance is ``alpha``. Both are stationary statistics: each
    layer's first ``burn_in_taus`` time constants of every sequence are left
    out (``docs/fluct_init.md``).

    The verbose print shows the network input's rate ``ν_mean`` and its
    fluctuation ``ν_var`` (variance across samples per step, over ``dt``;
    ``ν_mean (1 - p)`` for Bernoulli spikes), then per layer the weights drawn
    (``µ_W``, ``σ_FF``: mean and SD of the feed-forward weights; ``σ_RC``: SD
    of the zero-mean recurrent weights, in weight units), the measured
    ``µ_U``, ``ξ``, ``σ_U``, FF share, output rate, silent neurons, and which
    branch of the second condition applied ("adaptive µ" for dense input,
    "centred" for sparse input).

    Args:
        model: Any module built from H1 blocks; pairs come from
            :func:`nwave_lightning.layers.walk.synapse_layer_pairs` (honours
            ``model.layer_pairs``; several synapses may feed one layer). Its
            forward may return lists or tensors: only hooks are used.
        loader: Iterable of batches ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, meta)``
            (e.g. the training ``DataLoader``); the first ``n_batches`` are read
            once and reused for every measurement. Batches of padded sequences
            (``meta["mask"]``, as :class:`~nwave_lightning.data.ArrayDataModule`
            gives) are cut to their shortest sample, so no padded step enters
            the statistics.
        xi_target: Distance of the mean membrane below threshold, in membrane
            standard deviations.
        alpha: Share of the membrane variance carried by the feed-forward weights
            of RC layers; recurrent weights carry ``1 - alpha`` (with ``1.0``
            they are set to zero). FF layers have no choice: ``alpha`` = 1 there.
        n_batches: Loader batches used for every estimate.
        verbose: Print rates, weight statistics and measured results per layer.
        burn_in_taus: Leading part of every init sequence left out of all
            statistics (input rates, membrane mean and variance, FF share),
            in units of the layer's slowest time constant: its largest
            membrane ``tau``, plus ``tau_syn`` on H1v1
            (:func:`nwave_lightning.init.measure.slowest_time_constant`). A
            layer fed by slower layers inherits their time constant, since
            its input rises as slowly as they do. The membrane starts from
            zero and reaches its stationary mean and variance only after a
            few time constants; the theory describes the stationary state.
            ``0`` measures over every step. When the burn-in would leave
            nothing of the sequences, half of each sequence is dropped
            instead, with a warning. Keyword only (not part of the vendor
            SDK's signature).

    Returns:
        One :class:`LayerInit` per layer, in order.

    Raises:
        ValueError: bad arguments, an empty loader, no synapse/layer pairs,
            ``alpha=0`` with an RC layer, a layer whose input never fluctuates,
            or a parametrisation whose ``right_inverse`` cannot store the
            weights. The model is left unchanged then.

    Warns:
        UserWarning: naming the weight matrix and the count, when weights fall
        outside the chip's range; when a layer cannot reach the targets; when
        the init sequences are too short for the burn-in (naming the steps); when
        the data are too weak (too few channels or too sparse) to drive the
        first layer to high rates with in-range weights (tutorial 7 with one
        input channel instead of eight).

    The model's train/eval flags and the grad mode are restored; no gradient
    is recorded (the measurements run in eval mode under ``torch.no_grad``).

    Example:
        >>> import torch
        >>> from nwave_lightning.layers import H1v2Synapse, H1v2Layer
        >>> net = torch.nn.Sequential(H1v2Synapse(8, 4), H1v2Layer(4, taus=20e-3, dt=1e-3))
        >>> data = [(torch.rand(16, 100, 8) < 0.4).float()]
        >>> report = fluct_init(net, data, xi_target=2.0)
        >>> report[0].burn_in   # 3 x 20 ms at 1 ms: xi is measured on steps 60 to 99
        60
        >>> abs(report[0].xi - 2.0) < 0.3
        True
    """
    _check_arguments(model, xi_target, alpha, n_batches, burn_in_taus)
    pairs = synapse_layer_pairs(model)
    if not pairs:
        raise ValueError(
            "fluct_init: the model has no H1 synapse/layer pairs to initialise; build it from H1v1/H1v2 Synapse and "
            "Layer modules (or set model.layer_pairs)."
        )
    groups = _group_pairs(pairs)
    names = {id(m): (name or type(m).__name__) for name, m in model.named_modules()}
    for synapse, layer in pairs:
        names.setdefault(id(synapse), type(synapse).__name__)
        names.setdefault(id(layer), type(layer).__name__)
    recurrent = [names[id(layer)] for layer, _ in groups if layer.recurrent_weights is not None]
    if recurrent and alpha == 0:
        raise ValueError(
            f"fluct_init: alpha=0 leaves no variance to the feed-forward weights of recurrent layer(s) {recurrent}, "
            "which then get no input at all; use 0 < alpha <= 1 (e.g. alpha=0.85)."
        )
    inputs = batch_inputs(loader, n_batches, _model_device(model))
    snapshot = {key: value.detach().clone() for key, value in model.state_dict().items()}
    modes = [(m, m.training) for m in model.modules()]
    reports: list[LayerInit] = []
    try:
        model.eval()  # no dropout / batch-norm statistics updates while measuring
        with torch.no_grad():
            recordings = record(model, inputs, pairs)
            burn_ins = _burn_ins(groups, recordings, names, burn_in_taus)
            if verbose:
                _print_header(recordings, groups, xi_target, alpha, burn_ins[0])
            for number, ((layer, members), burn_in) in enumerate(zip(groups, burn_ins), start=1):
                report, recordings = _init_layer(
                    model, inputs, pairs, recordings, layer, members, names, xi_target, alpha, burn_in, first=number == 1
                )
                reports.append(report)
                if verbose:
                    _print_layer(number, report, layer, xi_target, alpha)
    except BaseException:
        model.load_state_dict(snapshot)  # all or nothing
        raise
    finally:
        for module, training in modes:
            module.training = training
    if verbose:
        print("[fluct_init] done.")
    return reports


def _burn_ins(groups, recordings, names, burn_in_taus: float) -> list[int]:
    """Steps each layer's statistics leave out: ``burn_in_taus`` times its slowest time constant.

    The time constant is the largest along the layers initialised so far, in
    order: a layer fed by a slower one sees input that is still rising after
    its own time constants have passed. (The running maximum, not the sum:
    parallel branches would otherwise add up, and with the sum a three-layer
    10/20/40 ms stack would need 210 ms before its last layer is measured.)
    When the burn-in leaves nothing of the recorded sequences, half of them is
    dropped instead and a warning names the numbers.
    """
    burn_ins: list[int] = []
    slowest = 0.0
    for layer, members in groups:
        own = slowest_time_constant(layer)
        inherited = slowest > own
        slowest = max(slowest, own)
        steps = recordings[members[0]].membrane.shape[1]
        wanted = burn_in_steps(slowest, layer.dt, burn_in_taus)
        if wanted < steps:
            burn_ins.append(wanted)
            continue
        fallback = steps // 2
        source = "inherited from the layers before it" if inherited else "its slowest time constant"
        warnings.warn(
            f"fluct_init: layer '{names[id(layer)]}': burn_in_taus={burn_in_taus} x {slowest * 1e3:.4g} ms ({source}) "
            f"= {wanted} steps of dt={layer.dt * 1e3:.4g} ms leaves nothing of the {steps}-step init sequences; "
            f"measuring after {fallback} steps ({fallback * layer.dt / slowest:.2g} x {slowest * 1e3:.4g} ms) instead, so the "
            "statistics still contain part of the rise from the zero state and the stationary xi will come out below "
            f"xi_target. Use init sequences longer than {wanted} steps, or a smaller burn_in_taus (0 measures over "
            "every step).",
            stacklevel=3,
        )
        burn_ins.append(fallback)
    return burn_ins


def _init_layer(model, inputs, pairs, recordings, layer, members, names, xi_target, alpha, burn_in, first=False):
    """Initialise one layer (and the synapses feeding it); returns its report and fresh recordings.

    Every statistic leaves out the first ``burn_in`` steps of the sequences.
    """
    synapses = [pairs[i][0] for i in members]
    label = names[id(layer)]
    xs = [recordings[i].inputs for i in members]
    # Input rates over the steps the membrane is measured on: the theory is
    # stationary, and an upstream layer's output is still rising before.
    stats = input_stats(torch.cat(xs, dim=2)[:, burn_in:])
    if not float(stats.var.sum()) > 0:
        raise ValueError(
            f"fluct_init: layer '{label}' receives no input fluctuation over the {len(inputs)} init batches (mean input "
            f"rate {float(stats.rate.mean()):.4g} per step), so no weights can put it at xi_target. Check the loader and "
            "frontend, raise n_batches, or lower xi_target so that the layers before it spike."
        )
    if first:
        _warn_if_input_too_weak(label, stats, layer, synapses[0].chip)
    has_rc = layer.recurrent_weights is not None
    use_rc = has_rc and alpha < 1
    bar, hat = kernel_sums(layer.beta.detach().cpu(), layer.syn_decay)
    # First guess of the layer's own rate: the Gaussian exceedance at xi (refined by measurement).
    rate_guess = 0.5 * math.erfc(xi_target / math.sqrt(2.0))
    n = layer.n_neurons
    moments = solve_moments(
        stats,
        bar,
        hat,
        layer.threshold,
        xi_target,
        alpha,
        rc_rate=rate_guess if use_rc else None,
        n_recurrent=n if use_rc else 0,
        diversity=xi_target / 2.0,  # the 2-SD band of the neurons' own means reaches threshold
        # Balanced (zero-mean) weights while at most ~16 % of the neurons would have their own
        # mean above threshold: positive-mean weights trap classifiers (theory.solve_moments).
        centred_limit=xi_target,
    )
    # One normal draw per matrix, fixed from here on: the refinement only
    # rescales it, so it converges like a deterministic 2-parameter problem.
    z_ff = [torch.randn(s.nb_inputs, n, dtype=torch.float64) for s in synapses]
    z_rc = torch.randn(n, n, dtype=torch.float64) if has_rc else None
    zeros = torch.zeros(n, dtype=torch.float64)

    def apply(scale: float, rc_scale: float) -> None:
        for synapse, z in zip(synapses, z_ff):
            current = efficacy_matrix(moments.mu, moments.sigma_ff, z, scale)
            _write(synapse, "weight", inverse_efficacy(current, synapse.chip), f"{names[id(synapse)]}.weight")
        if has_rc:
            current = efficacy_matrix(zeros, moments.sigma_rc, z_rc, scale * rc_scale)
            _write(layer, "recurrent_weights", inverse_efficacy(current, layer.chip), f"{label}.recurrent_weights")

    last: dict = {}

    def simulate_pair() -> Measured:
        current = sum(synapse(x) for synapse, x in zip(synapses, xs))
        spikes, membrane = layer(current)
        last["membrane"] = membrane
        return measure_layer(current, spikes, membrane, layer, layer.effective_recurrent(), burn_in)

    def simulate_model() -> Measured:
        last["recordings"] = record(model, inputs, pairs)
        return _measure_recorded(last["recordings"], members, layer, burn_in)

    result = refine(apply, simulate_pair, layer.threshold, xi_target, alpha, use_rc)
    recordings = record(model, inputs, pairs)
    measured = _measure_recorded(recordings, members, layer, burn_in)
    if not torch.allclose(recordings[members[0]].membrane, last["membrane"], rtol=1e-4, atol=1e-5):
        # The model does more between synapse and layer than the pair does:
        # refine on full-model runs instead (slower, always faithful).
        result = refine(apply, simulate_model, layer.threshold, xi_target, alpha, use_rc, result.scale, result.rc_scale)
        recordings, measured = last["recordings"], result.measured
    report = _finish(layer, synapses, label, names, stats, moments, measured, result.iterations, xi_target, alpha, use_rc)
    return report._replace(burn_in=burn_in), recordings


def _warn_if_input_too_weak(label, stats, layer, chip) -> None:
    """Warn when the data cannot drive the first layer to high rates with in-range weights.

    Only the layer fed by the data is checked: the rates deeper layers see are
    set by ``xi_target`` itself (low on purpose), while the data's width and
    rate are the user's to change. The weights fluct_init draws for
    ``xi_target`` may still be in range (the leak integrates a weak input up
    to a sparse regime); what the input cannot do is reach threshold in a
    step, which firing near one spike per step (tutorial 7's targets reach
    0.9) needs.
    """
    rate_sum = float(stats.rate.sum())
    if not rate_sum > 0:
        return  # silent input: _init_layer raises with its own message
    needed = weight_for_threshold_per_step(rate_sum, layer.threshold, chip, layer.syn_decay)
    limit = chip.weight_limit
    if needed > limit:
        warnings.warn(
            f"fluct_init: layer '{label}' receives {rate_sum:.3g} input spikes per step ({stats.n} channel(s) at a mean "
            f"{float(stats.rate.mean()):.3g} per step); reaching threshold within a step would need a mean weight of "
            f"{needed:.3g}, outside the {chip.name} range {list(chip.weight_range)}, so this input cannot drive the layer "
            f"to high firing rates with in-range weights. Give the layer more input channels (at least "
            f"{math.ceil(stats.n * needed / limit)} at this rate) or denser input spikes.",
            stacklevel=4,
        )


def _measure_recorded(recordings, members, layer, burn_in: int) -> Measured:
    current = sum(recordings[i].current for i in members)
    own = recordings[members[0]]
    return measure_layer(current, own.spikes, own.membrane, layer, layer.effective_recurrent(), burn_in)


def _finish(layer, synapses, label, names, stats, moments, measured, iterations, xi_target, alpha, use_rc) -> LayerInit:
    out_of_range = 0
    matrices = [(names[id(s)] + ".weight", s.weight, s.chip) for s in synapses]
    if layer.recurrent_weights is not None:
        matrices.append((label + ".recurrent_weights", layer.recurrent_weights, layer.chip))
    for matrix_name, weight, chip in matrices:
        count = weights_out_of_range(weight, chip)
        out_of_range += count
        if count:
            warnings.warn(
                f"fluct_init: {count} of {weight.numel()} weights of {matrix_name} fall outside the {chip.name} range "
                f"{list(chip.weight_range)} (largest |w| = {float(weight.detach().abs().max()):.3g}). The layer's input is "
                "too weak for xi_target on this chip: give it more or higher-rate inputs, raise xi_target, or bring "
                "the weights into range while training (weight_magnitude_loss / clamp_to_range).",
                stacklevel=4,
            )
    xi_off = abs(measured.xi / xi_target - 1.0) > 0.05
    share_off = use_rc and abs(measured.ff_share - alpha) > 0.05
    if xi_off or share_off:
        warnings.warn(
            f"fluct_init: layer '{label}' reached xi={measured.xi:.3g} (target {xi_target}) and feed-forward variance "
            f"share {measured.ff_share:.3g} (alpha={alpha}) after {iterations} iterations"
            + ("; it never spiked, so recurrent input cannot carry variance" if use_rc and measured.rate == 0 else "")
            + ". Use more init batches or longer sequences.",
            stacklevel=4,
        )
    ff = torch.cat([s.weight.detach().reshape(-1) for s in synapses]).to(torch.float64)
    rc = 0.0 if layer.recurrent_weights is None else float(layer.recurrent_weights.detach().to(torch.float64).std())
    return LayerInit(
        name=label,
        rate_in=float(stats.rate.mean()),
        mu_w=float(ff.mean()),
        sigma_ff=float(ff.std()) if ff.numel() > 1 else 0.0,
        sigma_rc=rc,
        centered=bool(moments.centered.all()),
        xi=measured.xi,
        ff_share=measured.ff_share,
        mean_u=measured.mean,
        std_u=measured.std,
        rate_out=measured.rate,
        silent=measured.silent,
        out_of_range=out_of_range,
        iterations=iterations,
    )


def _print_header(recordings, groups, xi_target: float, alpha: float, burn_in: int) -> None:
    layer, members = groups[0]
    stats = input_stats(torch.cat([recordings[i].inputs for i in members], dim=2)[:, burn_in:])
    nu, var = float(stats.rate.mean()), float(stats.var.mean())
    chips = "+".join(sorted({g.chip.name.upper() for g, _ in groups}))
    print(f"[fluct_init] ξ={xi_target} α={alpha} dt={layer.dt * 1e3:.1f}ms (stacked, adaptive µ) [{chips}]")
    ratio = f"{var / nu:.1f}x" if nu > 0 else "n/a"
    print(f"Input → ν_mean={_hz(nu, layer.dt)} ν_var={_hz(var, layer.dt)} ratio={ratio}")


def _print_layer(number: int, r: LayerInit, layer, xi_target: float, alpha: float) -> None:
    dt = layer.dt
    print(
        f"Layer {number} | ν_in={_hz(r.rate_in, dt)} µ_W={r.mu_w:.4f} σ_FF={r.sigma_ff:.4f} σ_RC={r.sigma_rc:.4f} "
        f"µ_U={r.mean_u:.3f}"
    )
    condition = "centred µ_W=0 (sparse input)" if r.centered else "adaptive µ: neuron means scatter ξσ_U/2"
    share = f" FF share={r.ff_share:.2f} (α={alpha})" if layer.recurrent_weights is not None else ""
    print(
        f"        | measured ξ={r.xi:.2f} (target {xi_target}) σ_U={r.std_u:.3f}{share} ν_out={_hz(r.rate_out, dt)} "
        f"silent={r.silent}/{layer.n_neurons} | after {r.burn_in} steps | 2nd condition: {condition} | "
        f"{r.iterations} iterations"
    )
