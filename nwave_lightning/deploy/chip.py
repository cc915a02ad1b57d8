"""Chip-legal copies of a network and the list of what keeps a network off the chip.

:func:`to_chip` applies every constraint of the H1 hardware model
(``docs/hardware-model.md``) hard, on a copy: one sign per row block, weights
clamped to the chip's range, no parametrisation left. :func:`check_chip`
lists each violation it finds; a network the chip can run gives an empty list.

Example:
    >>> import torch
    >>> from nwave_lightning.layers import H1v2Synapse, H1v2Layer
    >>> net = torch.nn.Sequential(H1v2Synapse(4, 3), H1v2Layer(3, taus=20e-3, dt=1e-3))
    >>> with torch.no_grad():
    ...     net[0].weight[0, 0] = 5.0
    >>> [v.kind for v in check_chip(net)]    # a fresh init mixes signs in every row, too
    ['weight_range', 'sign_block']
    >>> check_chip(to_chip(net))
    []
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..encode import Encoder
from ..hardware import ChipSpec
from ..layers.frontend import _H1Frontend
from ..layers.walk import dense_weights, layers
from ..layers.lif import _H1Layer
from ..layers.sign import SignBlockParametrization, block_signs, deployable_matrix, unparametrized_copy
from ..layers.synapse import _H1Synapse

__all__ = ["VIOLATION_KINDS", "ChipViolationError", "Violation", "check_chip", "require_chip", "to_chip"]

#: Every kind of violation :func:`check_chip` reports, in the order it checks them.
VIOLATION_KINDS = (
    "unsupported_module",  # a module the chip has no counterpart for
    "chip_mismatch",  # H1 blocks of different chips (or chip constants) in one network
    "parametrized",  # a weight still computed by a parametrisation (the chip stores plain numbers)
    "non_finite",  # NaN or infinite weights or time constants
    "weight_range",  # weights outside the chip's range
    "sign_block",  # weights against their row block's sign
    "tau_range",  # membrane time constants outside the chip's range, or not above dt
    "dt",  # layers that step with different dt
    "threshold",  # a firing threshold other than the chip's
)

H1_BLOCKS = (_H1Frontend, _H1Synapse, _H1Layer)
# Modules that hold no state and pass data unchanged, or only organise children; and the
# fixed input encoders, which run before the chip (on the host or in the sensor's front end).
_NEUTRAL = (nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.Identity, parametrize.ParametrizationList, SignBlockParametrization, Encoder)


@dataclass(frozen=True)
class Violation:
    """One way a network breaks a chip constraint.

    Attributes:
        module: Qualified name of the module (``""`` for the network itself).
        kind: One of :data:`VIOLATION_KINDS`.
        detail: The weight (``weight``, ``recurrent_weights``, ``taus``) or what is wrong.
        count: How many entries break it (1 for a property of the module).
        worst: The worst offending value, when there is one.
    """

    module: str
    kind: str
    detail: str
    count: int = 1
    worst: Optional[float] = None

    def __str__(self) -> str:
        where = repr(self.module) if self.module else "the network"
        worst = "" if self.worst is None else f" (worst {self.worst:.6g})"
        return f"{where} [{self.kind}] {self.detail}: {self.count} affected{worst}"


class ChipViolationError(ValueError):
    """A network the chip cannot run was handed to an export; ``violations`` lists why."""

    def __init__(self, what: str, violations: list[Violation]) -> None:
        self.violations = list(violations)
        lines = "\n  ".join(str(v) for v in self.violations)
        super().__init__(
            f"{what}: the network breaks {len(self.violations)} chip constraint(s):\n  {lines}\n"
            "Export to_chip(net) for the sign and range constraints; the others need a change to the model."
        )


def to_chip(net: nn.Module) -> nn.Module:
    """A deep copy of ``net`` with every chip constraint applied hard; ``net`` is untouched.

    Each dense H1 matrix (synapse ``weight``, RC ``recurrent_weights``) is replaced by
    what the chip stores (:func:`~nwave_lightning.layers.sign.deployable_matrix`): a
    sign-parametrised matrix takes its ``alpha -> inf`` limit, a plain one loses its
    minority-sign weights, and all are clamped to the chip's range; parametrisations
    are removed. What cannot be fixed without changing the model (a module the chip
    lacks, a foreign threshold) stays, and :func:`check_chip` reports it.

    Args:
        net: Any module; its H1 blocks are made chip-legal.

    Returns:
        The chip-ready copy, in the same train/eval mode as ``net``.
    """
    if not isinstance(net, nn.Module):
        raise ValueError(f"to_chip: net must be a torch.nn.Module, got {type(net).__name__}.")
    chip_net = unparametrized_copy(net)
    source = {(entry.module_name, entry.attr): entry.module for entry in dense_weights(net)}
    for entry in dense_weights(chip_net):
        hard = deployable_matrix(source[entry.module_name, entry.attr], entry.attr)
        with torch.no_grad():
            getattr(entry.module, entry.attr).copy_(hard)
    return chip_net


def check_chip(net: nn.Module) -> list[Violation]:
    """Every chip constraint ``net`` breaks, as a list; empty for a network the chip can run.

    Checked, in the order of :data:`VIOLATION_KINDS`: modules the chip lacks (anything
    but the H1 frontend, synapses and layers, and containers of them; the input
    encoders of :mod:`nwave_lightning.encode` run before the chip and pass), blocks of
    different chips, parametrised weights, non-finite numbers, weights outside the
    chip's range, weights against their row block's sign (``docs/hardware-model.md``,
    "Row-block sign"), time constants outside the chip's range or not above ``dt``,
    layers with different ``dt``, thresholds other than the chip's.

    Example:
        >>> from nwave_lightning.layers import H1v2Layer
        >>> check_chip(H1v2Layer(4, taus=20e-3, dt=1e-3, threshold=2.0))[0].kind
        'threshold'
    """
    if not isinstance(net, nn.Module):
        raise ValueError(f"check_chip: net must be a torch.nn.Module, got {type(net).__name__}.")
    found: list[Violation] = []
    found += _unsupported_modules(net)
    found += _chip_mismatches(net)
    for entry in dense_weights(net):
        found += _matrix_violations(entry.module_name, entry.attr, entry.module)
    found += _layer_violations(net)
    order = {kind: i for i, kind in enumerate(VIOLATION_KINDS)}
    return sorted(found, key=lambda v: order[v.kind])


def require_chip(net: nn.Module, what: str) -> None:
    """Raise :class:`ChipViolationError` (naming ``what``) unless ``check_chip(net)`` is empty."""
    violations = check_chip(net)
    if violations:
        raise ChipViolationError(what, violations)


def _unsupported_modules(net: nn.Module) -> list[Violation]:
    found = []
    skip: set[str] = set()
    for name, module in net.named_modules():
        if any(prefix == "" or name.startswith(f"{prefix}.") for prefix in skip):
            continue
        if isinstance(module, H1_BLOCKS):
            skip.add(name)  # its parametrisations and other children belong to the block
            continue
        if isinstance(module, _NEUTRAL):
            continue
        own_state = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
        is_leaf = next(module.children(), None) is None
        if own_state or is_leaf:
            what = "holds parameters or buffers" if own_state else "is an operation"
            found.append(Violation(name, "unsupported_module", f"{type(module).__name__} {what} the H1 chips do not have"))
    return found


def _chips(net: nn.Module) -> list[tuple[str, ChipSpec]]:
    return [(name, m.chip) for name, m in net.named_modules() if isinstance(m, H1_BLOCKS)]


def _chip_mismatches(net: nn.Module) -> list[Violation]:
    chips = _chips(net)
    if not chips:
        return []
    first_name, first = chips[0]
    return [
        Violation(name, "chip_mismatch", f"built for {chip.name} {chip} while {first_name!r} is built for {first.name} {first}")
        for name, chip in chips[1:]
        if chip != first
    ]


def _matrix_violations(name: str, attr: str, module: nn.Module) -> list[Violation]:
    found = []
    if parametrize.is_parametrized(module, attr):
        found.append(Violation(name, "parametrized", f"{attr} is computed by a parametrisation; deploy to_chip(net)"))
    weight = getattr(module, attr).detach()
    finite = torch.isfinite(weight)
    if not finite.all():
        found.append(Violation(name, "non_finite", attr, int((~finite).sum())))
        weight = torch.where(finite, weight, torch.zeros_like(weight))
    low, high = module.chip.weight_range
    outside = (weight < low) | (weight > high)
    if outside.any():
        worst = weight[outside]
        found.append(Violation(name, "weight_range", f"{attr} outside [{low}, {high}]", int(outside.sum()), float(worst[worst.abs().argmax()])))
    sign_block = module.chip.sign_block
    rows = torch.arange(weight.shape[0], device=weight.device) // sign_block
    against = block_signs(weight, sign_block)[rows] * weight < 0
    if against.any():
        worst = weight[against]
        found.append(
            Violation(
                name,
                "sign_block",
                f"{attr} against its row block's sign (blocks of {sign_block} row(s))",
                int(against.sum()),
                float(worst[worst.abs().argmax()]),
            )
        )
    return found


def _layer_violations(net: nn.Module) -> list[Violation]:
    found = []
    named = layers(net)
    first_dt = named[0][1].dt if named else None
    for name, layer in named:
        chip = layer.chip
        taus = layer.taus.detach().double()
        finite = torch.isfinite(taus)
        if not finite.all():
            found.append(Violation(name, "non_finite", "taus", int((~finite).sum())))
        low, high = chip.tau_range
        bad = finite & ((taus < low) | (taus > high) | (taus <= layer.dt))
        if bad.any():
            # The worst is the one farthest outside what the chip allows.
            floor = max(low, layer.dt)
            distance = torch.maximum(floor - taus, taus - high).masked_fill(~bad, float("-inf"))
            worst = float(taus[distance.argmax()])
            found.append(Violation(name, "tau_range", f"taus outside [{low}, {high}] s or not above dt={layer.dt}", int(bad.sum()), worst))
        if layer.dt != first_dt:
            found.append(Violation(name, "dt", f"dt={layer.dt} s while {named[0][0]!r} steps with dt={first_dt} s"))
        if layer.threshold != chip.threshold:
            found.append(Violation(name, "threshold", f"threshold={layer.threshold} while {chip.name} fires at {chip.threshold}", 1, layer.threshold))
    return found
