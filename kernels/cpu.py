"""Fast CPU path: the whole scan as one custom op, no per-step autograd graph.

Two implementations give the same numbers (tests hold them to the reference):

* ``"native"`` — the C loops of :mod:`._cpu_native` (float32/float64), compiled
  on first use and cached; batch rows split over ``torch.get_num_threads()``
  threads.
* ``"torch"`` — a vectorised per-step loop under ``no_grad`` (any dtype); the
  fallback when no C compiler is available.

``NWAVE_CPU_IMPL=native|torch`` forces one (default ``auto``: native when it
builds and the dtype is float32/float64). Autograd and ``torch.compile`` go
through the ``nwave::lif_scan_cpu`` custom op defined here.

Example:
    >>> import torch
    >>> from nwave_lightning.kernels.cpu import lif_scan_cpu
    >>> spk, mem = lif_scan_cpu(torch.full((1, 3, 1), 0.6), torch.full((1,), 0.5), None, 1.0, None, "fast_sigmoid", 25.0, False)
    >>> mem.flatten().tolist(), spk.flatten().tolist()
    ([0.6000000238418579, 0.9000000357627869, 1.0500000715255737], [0.0, 0.0, 1.0])
"""

from __future__ import annotations

import os

import torch

from nwave_lightning.surrogate import surrogate_derivative

from . import _cpu_native, record
from ._ops import SURROGATE_CODES, define_scan_ops

__all__ = ["CPU_IMPLS", "cpu_impl", "forward_torch", "backward_torch", "lif_scan_cpu"]

CPU_IMPLS = ("auto", "native", "torch")
_KINDS = {code: kind for kind, code in SURROGATE_CODES.items()}


def cpu_impl(dtype: torch.dtype) -> str:
    """The implementation used for ``dtype``: ``"native"`` or ``"torch"``."""
    choice = os.environ.get("NWAVE_CPU_IMPL", "auto").strip().lower() or "auto"
    if choice not in CPU_IMPLS:
        raise ValueError(f"environment variable NWAVE_CPU_IMPL={choice!r} is unknown; choose one of {CPU_IMPLS}.")
    native_dtype = dtype in (torch.float32, torch.float64)
    if choice == "torch" or (choice == "auto" and not native_dtype):
        return "torch"
    lib = _cpu_native.library()
    if lib is not None and native_dtype:
        return "native"
    if choice == "native":
        reason = f"dtype {dtype} is not float32/float64" if lib is not None else "the C library could not be built"
        raise ValueError(f"NWAVE_CPU_IMPL=native cannot be used: {reason}. Unset it to fall back to the torch loop.")
    return "torch"


@torch.no_grad()
def forward_torch(current, beta, recurrent, threshold, syn_decay):
    """Per-step vectorised forward (the fallback); same op order as the reference."""
    batch, steps, n = current.shape
    spikes = torch.empty_like(current)
    membranes = torch.empty_like(current)
    after_reset = current.new_zeros(batch, n)
    synaptic = current.new_zeros(batch, n)
    for t in range(steps):
        drive = current[:, t]
        if recurrent is not None and t > 0:
            drive = drive + spikes[:, t - 1] @ recurrent
        if syn_decay is not None:
            synaptic = syn_decay * synaptic + drive
            drive = synaptic
        v = beta * after_reset + drive
        fired = v >= threshold
        membranes[:, t] = v
        spikes[:, t] = fired
        after_reset = v.masked_fill(fired, 0.0)
    return spikes, membranes


@torch.no_grad()
def backward_torch(grad_spikes, grad_membranes, membranes, beta, recurrent, threshold, syn_decay, kind, value, detach_reset):
    """Per-step vectorised backward (the fallback): ``dL/dI`` from the output grads."""
    batch, steps, n = membranes.shape
    grad_current = torch.empty_like(membranes)
    grad_after_reset = membranes.new_zeros(batch, n)
    grad_synaptic = membranes.new_zeros(batch, n)
    zero = membranes.new_zeros(batch, n)
    kind_name = _KINDS[kind] if isinstance(kind, int) else kind
    for t in range(steps - 1, -1, -1):
        v = membranes[:, t]
        fired = v >= threshold
        grad_s = zero if grad_spikes is None else grad_spikes[:, t]
        if recurrent is not None and t < steps - 1:
            grad_s = grad_s + grad_current[:, t + 1] @ recurrent.T
        if not detach_reset:
            grad_s = grad_s - v * grad_after_reset
        grad_v = grad_after_reset.masked_fill(fired, 0.0)
        if grad_membranes is not None:
            grad_v = grad_membranes[:, t] + grad_v
        grad_v = grad_v + surrogate_derivative(v - threshold, kind_name, value) * grad_s
        grad = grad_v
        if syn_decay is not None:
            grad_synaptic = grad_v + syn_decay * grad_synaptic
            grad = grad_synaptic
        grad_current[:, t] = grad
        grad_after_reset = beta * grad_v
    return grad_current


def _forward(current, beta, recurrent, threshold, syn_decay):
    _check_cpu(current)
    impl = cpu_impl(current.dtype)
    record.note("cpu", impl, "forward", current)
    if impl == "native":
        return _cpu_native.forward(_cpu_native.library(), current, beta, recurrent, threshold, syn_decay)
    return forward_torch(current, beta, recurrent, threshold, syn_decay)


def _backward(grad_spikes, grad_membranes, membranes, beta, recurrent, threshold, syn_decay, kind, value, detach_reset):
    _check_cpu(membranes)
    # Strided grads are read in place; only a foreign dtype is converted.
    grad_spikes, grad_membranes = (g if g is None or g.dtype == membranes.dtype else g.to(membranes.dtype) for g in (grad_spikes, grad_membranes))
    impl = cpu_impl(membranes.dtype)
    record.note("cpu", impl, "backward", membranes)
    if impl == "native":
        recurrent_t = None if recurrent is None else recurrent.T.contiguous()
        return _cpu_native.backward(
            _cpu_native.library(), grad_spikes, grad_membranes, membranes, beta, recurrent_t,
            threshold, syn_decay, kind, value, detach_reset,
        )
    return backward_torch(grad_spikes, grad_membranes, membranes, beta, recurrent, threshold, syn_decay, kind, value, detach_reset)


def _check_cpu(tensor: torch.Tensor) -> None:
    if tensor.device.type != "cpu":
        raise ValueError(f"backend='cpu' got a tensor on {tensor.device}; use backend='auto' to pick the kernel by device.")


# Both CPU implementations read strided output grads in place (no copy).
lif_scan_cpu = define_scan_ops("lif_scan_cpu", _forward, _backward, contiguous_grads=False)
