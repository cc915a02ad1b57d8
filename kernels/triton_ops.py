"""Launchers of the Triton scans and the ``nwave::lif_scan_triton`` custom op.

Dispatch inside the op:

* FF (``recurrent is None``): :func:`.triton_kernels.ff_forward_kernel` /
  ``ff_backward_kernel``, one program per (neuron block, batch row).
* RC with ``N <= 128`` (float32; 64 for float64): the ``*_onchip`` kernels keep
  ``W_rc`` (and ``W_rc^T`` in backward) in registers for the whole sequence.
* RC with larger ``N``: the ``*_tiled`` kernels stream ``W_rc`` tile by tile
  each step.

The recurrent mat-vec uses ``tl.dot`` with ``input_precision="ieee"`` for exact
float32 products; ``NWAVE_TRITON_DOT_PRECISION=tf32x3`` trades a ~1e-6 relative
error for tensor-core speed on large RC layers.

CPU tensors run only under ``TRITON_INTERPRET=1`` (set before this module is
imported); otherwise :func:`check_device` raises with the fix.

Example:
    >>> import torch
    >>> from nwave_lightning.kernels import triton_ops
    >>> triton_ops.block_sizes_ff(batch=32, n=128, sm_count=132)
    (32, 1)
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from . import record
from . import triton_kernels as K
from ._ops import define_scan_ops

__all__ = ["lif_scan_triton", "check_device", "interpreted", "block_sizes_ff", "ONCHIP_MAX_N"]

ONCHIP_MAX_N = {torch.float64: 64}  # default 128: W (N x N, fp32) in registers of 8 warps
_DOT_PRECISIONS = ("ieee", "tf32x3", "tf32")
_BLOCK_B = 16  # tl.dot needs >= 16 rows
RC_TILES = {"BLOCK_N": 64, "BLOCK_K": 64}  # tiled RC: output / reduction tile widths (>= 16)


def interpreted() -> bool:
    """Whether the kernels were built for Triton's CPU interpreter."""
    return not isinstance(K.ff_forward_kernel, triton.runtime.JITFunction)


def check_device(tensor: torch.Tensor) -> None:
    """Raise a ``ValueError`` with the fix when ``tensor`` can't run the Triton kernels."""
    if tensor.device.type == "cuda":
        return
    if tensor.device.type == "cpu" and interpreted():
        return
    if tensor.device.type == "cpu":
        raise ValueError(
            "backend='triton' got CPU tensors, which run only under Triton's interpreter: set the environment "
            "variable TRITON_INTERPRET=1 before nwave_lightning.kernels.triton_ops is first imported (e.g. at the "
            "top of the script), move the tensors to CUDA, or use backend='auto' (the fast CPU path)."
        )
    raise ValueError(f"backend='triton' needs CUDA tensors, got {tensor.device}; use backend='auto'.")


def _acc(dtype: torch.dtype):
    if dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise ValueError(f"backend='triton' supports float16/bfloat16/float32/float64 currents, got {dtype}.")
    return tl.float64 if dtype == torch.float64 else tl.float32


def _dot_precision(dtype: torch.dtype) -> str:
    choice = os.environ.get("NWAVE_TRITON_DOT_PRECISION", "ieee").strip().lower() or "ieee"
    if choice not in _DOT_PRECISIONS:
        raise ValueError(f"environment variable NWAVE_TRITON_DOT_PRECISION={choice!r}; choose one of {_DOT_PRECISIONS}.")
    return "ieee" if dtype == torch.float64 else choice


def block_sizes_ff(batch: int, n: int, sm_count: int) -> tuple[int, int]:
    """``(BLOCK_N, num_warps)`` for the FF scans: one neuron per thread, and
    blocks small enough that every SM gets a couple of programs."""
    block = min(128, max(16, triton.next_power_of_2(n)))
    while block > 32 and batch * triton.cdiv(n, block) < 2 * sm_count:
        block //= 2
    return block, max(1, block // 32)


def _sm_count(device: torch.device) -> int:
    if device.type != "cuda":
        return 1
    return torch.cuda.get_device_properties(device).multi_processor_count


def _rc_layout(n: int, dtype: torch.dtype) -> tuple[bool, int]:
    n_pad = max(16, triton.next_power_of_2(n))
    return n_pad <= ONCHIP_MAX_N.get(dtype, 128), n_pad


def _tiles(acc) -> dict:
    # float64 halves the reduction tile: same register footprint.
    k = RC_TILES["BLOCK_K"] if acc == tl.float32 else max(16, RC_TILES["BLOCK_K"] // 2)
    return {"BLOCK_N": RC_TILES["BLOCK_N"], "BLOCK_K": k}


def _device_guard(tensor: torch.Tensor):
    return torch.cuda.device(tensor.device) if tensor.device.type == "cuda" else _NullContext()


class _NullContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _forward(current, beta, recurrent, threshold, syn_decay):
    check_device(current)
    batch, steps, n = current.shape
    spikes = torch.empty_like(current)
    membranes = torch.empty_like(current)
    if current.numel() == 0:
        return spikes, membranes
    acc = _acc(current.dtype)
    filtered = syn_decay is not None
    decay = float(syn_decay or 0.0)
    with _device_guard(current):
        if recurrent is None:
            record.note("triton", "ff", "forward", current, interpreted())
            block, warps = block_sizes_ff(batch, n, _sm_count(current.device))
            grid = (triton.cdiv(n, block) * batch,)
            K.ff_forward_kernel[grid](
                current, beta, spikes, membranes, steps, n, threshold, decay,
                BLOCK_N=block, FILTERED=filtered, ACC=acc, num_warps=warps,
            )
            return spikes, membranes
        onchip, n_pad = _rc_layout(n, current.dtype)
        grid = (triton.cdiv(batch, _BLOCK_B),)
        precision = _dot_precision(current.dtype)
        record.note("triton", "rc_onchip" if onchip else "rc_tiled", "forward", current, interpreted(), precision)
        if onchip:
            K.rc_forward_onchip_kernel[grid](
                current, recurrent, beta, spikes, membranes, batch, steps, n, threshold, decay,
                BLOCK_B=_BLOCK_B, N_PAD=n_pad, FILTERED=filtered, ACC=acc, DOT_PRECISION=precision,
                num_warps=8 if n_pad >= 128 else 4,
            )
        else:
            scratch_dtype = torch.float64 if current.dtype == torch.float64 else torch.float32
            u_buf = current.new_empty((2, batch, n), dtype=scratch_dtype)
            j_buf = current.new_empty((2, batch, n), dtype=scratch_dtype) if filtered else u_buf
            K.rc_forward_tiled_kernel[grid](
                current, recurrent, beta, spikes, membranes, u_buf, j_buf, batch, steps, n, threshold, decay,
                BLOCK_B=_BLOCK_B, FILTERED=filtered, ACC=acc, DOT_PRECISION=precision, num_warps=4,
                **_tiles(acc),
            )
    return spikes, membranes


def _backward(grad_spikes, grad_membranes, membranes, beta, recurrent, threshold, syn_decay, kind, value, detach_reset):
    check_device(membranes)
    batch, steps, n = membranes.shape
    grad_current = torch.empty_like(membranes)
    if membranes.numel() == 0:
        return grad_current
    acc = _acc(membranes.dtype)
    filtered = syn_decay is not None
    decay = float(syn_decay or 0.0)
    flags = dict(
        FILTERED=filtered, DETACH_RESET=bool(detach_reset), SG_KIND=kind, ACC=acc,
        HAS_GS=grad_spikes is not None, HAS_GV=grad_membranes is not None,
    )
    # A missing grad's pointer is never read (HAS_* is a compile-time False).
    grad_spikes = membranes if grad_spikes is None else grad_spikes
    grad_membranes = membranes if grad_membranes is None else grad_membranes
    with _device_guard(membranes):
        if recurrent is None:
            record.note("triton", "ff", "backward", membranes, interpreted())
            block, warps = block_sizes_ff(batch, n, _sm_count(membranes.device))
            grid = (triton.cdiv(n, block) * batch,)
            K.ff_backward_kernel[grid](
                grad_spikes, grad_membranes, membranes, beta, grad_current, steps, n, threshold, decay, float(value),
                BLOCK_N=block, num_warps=warps, **flags,
            )
            return grad_current
        recurrent_t = recurrent.T.contiguous()
        onchip, n_pad = _rc_layout(n, membranes.dtype)
        grid = (triton.cdiv(batch, _BLOCK_B),)
        precision = _dot_precision(membranes.dtype)
        record.note("triton", "rc_onchip" if onchip else "rc_tiled", "backward", membranes, interpreted(), precision)
        if onchip:
            K.rc_backward_onchip_kernel[grid](
                grad_spikes, grad_membranes, membranes, recurrent_t, beta, grad_current, batch, steps, n,
                threshold, decay, float(value), BLOCK_B=_BLOCK_B, N_PAD=n_pad, DOT_PRECISION=precision,
                num_warps=8 if n_pad >= 128 else 4, **flags,
            )
        else:
            scratch_dtype = torch.float64 if membranes.dtype == torch.float64 else torch.float32
            u_buf = membranes.new_empty((2, batch, n), dtype=scratch_dtype)
            j_buf = membranes.new_empty((2, batch, n), dtype=scratch_dtype) if filtered else u_buf
            K.rc_backward_tiled_kernel[grid](
                grad_spikes, grad_membranes, membranes, recurrent_t, beta, grad_current, u_buf, j_buf, batch, steps,
                n, threshold, decay, float(value), BLOCK_B=_BLOCK_B, DOT_PRECISION=precision, num_warps=4,
                **_tiles(acc), **flags,
            )
    return grad_current


lif_scan_triton = define_scan_ops("lif_scan_triton", _forward, _backward)
