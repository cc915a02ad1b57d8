"""Time-scan kernels of the H1 neuron, importable as ``nwave_lightning.kernels``.

:func:`lif_sequence` is the single entry point the layers call; ``"auto"``
picks a backend from the tensor it receives:

* ``"triton"`` — fused Triton scans (:mod:`.triton_ops`) for CUDA tensors.
  On CPU tensors they run only under Triton's interpreter: set
  ``TRITON_INTERPRET=1`` *before* :mod:`.triton_ops` is first imported (Triton
  reads it when the kernels are decorated); that is how CI tests them.
* ``"cpu"`` — the fast CPU scan (:mod:`.cpu`): one custom op, C loops compiled
  on first use (a torch loop when no compiler exists).
* ``"reference"`` — :mod:`.reference`, a step-by-step PyTorch loop (the oracle),
  also used for other devices and for custom surrogates the kernels don't know.

Both chips run in the same kernels. H1v2 (delta synapse) and H1v1 (first-order
synaptic current ``J[t] = a J[t-1] + I_ff[t] + S[t-1] @ W_rc``) differ only by
``syn_decay``: ``None`` or ``a = exp(-dt / tau_syn)``, a compile-time switch
(``FILTERED``) in the Triton kernels and a branch hoisted out of the C loops.
H1v1's exponential weight-to-efficacy map is not the scan's business: the
synapse and the layer apply it to ``W_ff`` / ``W_rc`` (differentiably) before
the current and the effective recurrent matrix reach :func:`lif_sequence`.

Set ``NWAVE_BACKEND=reference`` (or pass ``backend="reference"``) to force the
reference path while debugging. All backends give the same spikes and
membranes and the same gradients (w.r.t. the current, the recurrent matrix and
``beta``), up to float rounding.

:func:`record_kernels` records which backend and kernel each call really ran
(what the parity tests assert on both sides of every comparison).

Environment variables: ``NWAVE_BACKEND`` (overrides ``backend``),
``NWAVE_CPU_IMPL=auto|native|torch`` (C loops or the torch loop on the CPU),
``NWAVE_CACHE_DIR`` (where the C library is cached, default
``~/.cache/nwave_lightning``), ``NWAVE_TRITON_DOT_PRECISION=ieee|tf32x3|tf32``
(recurrent mat-vec on GPU), ``TRITON_INTERPRET=1`` (Triton on CPU tensors).

Example:
    >>> import torch
    >>> from nwave_lightning.kernels import lif_sequence
    >>> from nwave_lightning.surrogate import fast_sigmoid
    >>> spk, mem = lif_sequence(torch.full((1, 3, 2), 0.6), torch.full((2,), 0.5), 1.0, fast_sigmoid())
    >>> spk[0, :, 0].tolist()
    [0.0, 0.0, 1.0]
"""

from __future__ import annotations

import importlib.util
import math
import os

import torch

from ._ops import SURROGATE_CODES
from . import record as _record
from .record import KernelCall, record_kernels
from .reference import LIFState, initial_state, lif_sequence_reference, lif_step

__all__ = [
    "BACKENDS", "KernelCall", "LIFState", "initial_state", "lif_sequence", "lif_step", "record_kernels", "resolve_backend",
]

BACKENDS = ("auto", "reference", "cpu", "triton")


def _triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def resolve_backend(backend: str, tensor: torch.Tensor) -> str:
    """Concrete backend for ``tensor``: ``backend`` unless it is ``"auto"``.

    ``NWAVE_BACKEND`` overrides ``backend``. Only the name is checked here;
    whether it can run on ``tensor``'s device is checked when it runs.

    Example:
        >>> resolve_backend("auto", torch.zeros(1))
        'cpu'
    """
    forced = os.environ.get("NWAVE_BACKEND", "").strip().lower()
    choice = forced or backend
    if choice not in BACKENDS:
        source = "environment variable NWAVE_BACKEND" if forced else "backend"
        raise ValueError(f"{source}={choice!r} is not a known backend; choose one of {BACKENDS}.")
    if choice != "auto":
        return choice
    if tensor.device.type == "cuda" and _triton_available():
        return "triton"
    if tensor.device.type == "cpu":
        return "cpu"
    return "reference"


def lif_sequence(
    current: torch.Tensor,
    beta: torch.Tensor,
    threshold: float,
    surrogate,
    recurrent: torch.Tensor | None = None,
    syn_decay: float | None = None,
    detach_reset: bool = False,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes and pre-reset membranes ``(B, T, N)`` for a current ``(B, T, N)``.

    Args:
        current: Feed-forward synaptic current ``(B, T, N)``.
        beta: Membrane decay per neuron, ``(N,)`` (or a scalar tensor).
        threshold: Firing threshold.
        surrogate: A :class:`~nwave_lightning.surrogate.SurrogateSpike`.
        recurrent: Effective recurrent matrix ``(N, N)`` (gain applied) or ``None``.
        syn_decay: Synaptic decay ``exp(-dt / tau_syn)`` (H1v1) or ``None`` (delta synapse).
        detach_reset: Stop the gradient through the reset term.
        backend: ``"auto"`` or one of :data:`BACKENDS`.

    Returns:
        ``(spikes, membranes)``, both ``(B, T, N)`` in ``current``'s dtype.
    """
    _check_arguments(current, beta, threshold, recurrent, syn_decay)
    choice = resolve_backend(backend, current)
    kind = getattr(surrogate, "kind", None)
    if choice in ("cpu", "triton") and kind not in SURROGATE_CODES:
        if backend == "auto" and not os.environ.get("NWAVE_BACKEND"):
            choice = "reference"  # a user-defined surrogate: only the reference knows its derivative
        else:
            raise ValueError(
                f"backend={choice!r} supports the surrogates {sorted(SURROGATE_CODES)}; got {surrogate!r}. "
                "Use backend='reference' for a custom surrogate."
            )
    if choice == "reference":
        # Traced into a compiled graph, the reference is not a launch of its own (see .record).
        if not torch.compiler.is_compiling() and _record.recording():
            _record.note("reference", "reference", "forward", current)
        return lif_sequence_reference(current, beta, threshold, surrogate, recurrent, syn_decay, detach_reset)
    n = current.shape[-1]
    beta = torch.broadcast_to(beta.to(device=current.device, dtype=current.dtype), (n,))
    if recurrent is not None:
        recurrent = recurrent.to(device=current.device, dtype=current.dtype)
    syn_decay = None if syn_decay is None else float(syn_decay)
    args = (current, beta, recurrent, float(threshold), syn_decay, kind, float(surrogate.value), bool(detach_reset))
    if choice == "cpu":
        if current.device.type != "cpu":
            raise ValueError(
                f"backend='cpu' got a current on {current.device}; use backend='auto' (Triton on CUDA) or 'reference'."
            )
        from .cpu import lif_scan_cpu

        return lif_scan_cpu(*args)
    if not _triton_available():
        raise ValueError("backend='triton' needs the triton package (pip install triton); use backend='auto' instead.")
    from . import triton_ops

    triton_ops.check_device(current)
    return triton_ops.lif_scan_triton(*args)


def _check_arguments(current, beta, threshold, recurrent, syn_decay) -> None:
    if not isinstance(current, torch.Tensor) or current.dim() != 3 or not current.is_floating_point():
        shape = tuple(current.shape) if isinstance(current, torch.Tensor) else type(current).__name__
        raise ValueError(f"current must be a floating-point (B, T, N) tensor, got {shape}.")
    n = current.shape[-1]
    if not isinstance(beta, torch.Tensor) or beta.numel() not in (1, n) or beta.dim() > 1:
        shape = tuple(beta.shape) if isinstance(beta, torch.Tensor) else type(beta).__name__
        raise ValueError(f"beta must be a tensor of shape ({n},) (one decay per neuron) or a scalar, got {shape}.")
    if recurrent is not None and tuple(recurrent.shape) != (n, n):
        raise ValueError(f"recurrent must be an ({n}, {n}) matrix for N={n} neurons, got {tuple(recurrent.shape)}.")
    if isinstance(threshold, torch.Tensor):
        threshold = float(threshold)
    if not math.isfinite(threshold):
        raise ValueError(f"threshold={threshold!r} must be a finite number.")
    if syn_decay is not None and not (0.0 <= float(syn_decay) < 1.0):
        raise ValueError(f"syn_decay={syn_decay!r} must be in [0, 1) (exp(-dt / tau_syn)), or None for a delta synapse.")
