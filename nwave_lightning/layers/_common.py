"""Helpers shared by the H1 building blocks: device flags, input checks, caches."""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from ..hardware import ChipSpec


def resolve_device(device) -> torch.device | None:
    """Map the vendor SDK's ``device=`` flag to a torch device.

    ``"gpu"``/``"cuda"`` fall back to the CPU with a warning when no CUDA device
    exists: device placement is Lightning's job, the flag is kept for
    compatibility with the vendor SDK.
    """
    if device is None:
        return None
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise ValueError(f"device={device!r} must be None, 'cpu', 'gpu', 'cuda[:i]' or a torch.device.")
    name = device.strip().lower()
    if name in ("gpu", "cuda") or name.startswith("cuda:"):
        if torch.cuda.is_available():
            return torch.device("cuda" if name == "gpu" else name)
        warnings.warn(
            f"device={device!r} was requested but no CUDA device is available; using the CPU. "
            "Device placement is Lightning's job: pass Trainer(accelerator=...) instead.",
            stacklevel=3,
        )
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    raise ValueError(f"device={device!r} must be None, 'cpu', 'gpu', 'cuda[:i]' or a torch.device.")


class SeedDeviceMixin:
    """``to_gpu()`` of the vendor SDK's API; moves the module when CUDA exists."""

    def to_gpu(self):
        if torch.cuda.is_available():
            return self.to("cuda")
        warnings.warn(f"{type(self).__name__}.to_gpu(): no CUDA device is available; staying on the CPU.", stacklevel=2)
        return self


def warn_non_finite_input(module: nn.Module, x: torch.Tensor) -> None:
    """Warn once per module when an evaluation input holds NaN / Inf (it spreads silently otherwise).

    Training inputs are checked by the run itself (``NonFiniteGuard`` stops it); in
    evaluation a NaN input only zeroes spikes, so say so once instead of costing a check per step forever.
    """
    if module.training or getattr(module, "_warned_non_finite", False) or not x.is_floating_point():
        return
    if not bool(torch.isfinite(x).all()):
        object.__setattr__(module, "_warned_non_finite", True)
        bad = int((~torch.isfinite(x)).sum())
        warnings.warn(
            f"{type(module).__name__}: {bad} of {x.numel()} input values are NaN or Inf; the layer's outputs for "
            "them are meaningless (a NaN membrane never reaches threshold). Clean the input (torch.nan_to_num, or "
            "drop the sample). Warned once per layer.",
            RuntimeWarning,
            stacklevel=3,
        )


def check_input(owner: str, x: torch.Tensor, width: int, what: str) -> int:
    """Validate a layer input and return its rank (2 = one step, 3 = sequence)."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{owner}: input must be a torch.Tensor, got {type(x).__name__}.")
    if x.dim() not in (2, 3):
        raise ValueError(
            f"{owner}: input has shape {tuple(x.shape)} (rank {x.dim()}); expected (B, {width}) for one step "
            f"or (B, T, {width}) for a whole sequence."
        )
    if x.shape[-1] != width:
        raise ValueError(f"{owner}: input has {x.shape[-1]} features (shape {tuple(x.shape)}) but {what} is {width}.")
    if not x.is_floating_point():
        raise ValueError(f"{owner}: input dtype {x.dtype} must be floating point; call x.float() first.")
    return x.dim()


def check_width(owner: str, name: str, value) -> int:
    """A positive integer width (``isinstance(True, int)`` is rejected on purpose)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name}={value!r} must be a positive integer.")
    return value


def efficacy_slope(chip: ChipSpec) -> float:
    """d(current)/d(weight) at w = 0, used to scale default initialisations."""
    if chip.efficacy == "linear":
        return chip.synaptic_gain
    return chip.synaptic_gain * chip.kappa / math.expm1(chip.kappa)


def default_weight_init(weight: torch.Tensor, fan_in: int, chip: ChipSpec, threshold: float) -> None:
    """Uniform init scaled so that ~sqrt(fan_in) co-active inputs reach ``threshold``.

    The bound is capped at the chip's weight limit so a fresh layer is deployable.
    """
    bound = min(chip.weight_limit, threshold / (efficacy_slope(chip) * math.sqrt(fan_in)))
    with torch.no_grad():
        weight.uniform_(-bound, bound)


class PreparedMatrix:
    """An effective weight matrix materialised by ``prepare_net`` for a sequence.

    It remembers the version counters of the module's parameters and the grad
    mode it was built under, so that a stale matrix (weights updated by the
    optimiser since, or built under ``no_grad``) is detected instead of silently used.
    """

    def __init__(self, matrix: torch.Tensor, module: nn.Module) -> None:
        self.matrix = matrix
        self.grad_enabled = torch.is_grad_enabled()
        self.versions = parameter_versions(module)

    def is_current(self, module: nn.Module) -> bool:
        return self.grad_enabled == torch.is_grad_enabled() and self.versions == parameter_versions(module)


def parameter_versions(module: nn.Module) -> tuple[int, ...]:
    return tuple(p._version for p in module.parameters())
