"""``torch.library`` plumbing shared by the CPU and the Triton scans.

Each implementation registers two custom ops, ``nwave::<name>`` (forward) and
``nwave::<name>_backward``, with fake (meta) kernels and an autograd formula.
Being custom ops, they are opaque to ``torch.compile`` (no graph break, no
retracing of the time loop) and their backward is itself a traceable op.

The forward saves only the membranes ``V``: spikes are ``V >= theta`` again in
backward. The scan kernels return ``dL/dI``; the gradients of the recurrent
matrix and of ``beta`` follow from it with two reductions done here in torch::

    dL/dW    = sum_{b,t>=1} S[t-1]^T dL/dI[t]
    dL/dbeta = sum_{b,t>=1} dL/dV[t] U[t-1],   dL/dV[t] = dL/dI[t] - a dL/dI[t+1]

(``a`` = synaptic decay, 0 for the delta synapse), so the kernels stay small.
"""

# No ``from __future__ import annotations``: torch.library infers the op
# schema from real (not stringified) type annotations.
from typing import Callable, Optional

import torch
from torch import Tensor

__all__ = ["SURROGATE_CODES", "define_scan_ops", "recurrent_grad", "beta_grad"]

# The order is part of the kernels' ABI (C and Triton switch on the code).
SURROGATE_CODES = {"fast_sigmoid": 0, "atan": 1, "sigmoid": 2, "triangle": 3}


def recurrent_grad(grad_current: Tensor, membranes: Tensor, threshold: float) -> Tensor:
    """``dL/dW = sum_{b,t>=1} S[t-1]^T dL/dI[t]`` with ``S`` recomputed from ``V``."""
    n = membranes.shape[-1]
    previous = (membranes[:, :-1] >= threshold).to(grad_current.dtype).reshape(-1, n)
    return previous.T @ grad_current[:, 1:].reshape(-1, n)


def beta_grad(grad_current: Tensor, membranes: Tensor, threshold: float, syn_decay: Optional[float]) -> Tensor:
    """``dL/dbeta`` (per neuron) from ``dL/dI`` and the membranes."""
    grad_v = grad_current
    if syn_decay is not None:
        grad_v = grad_current.clone()
        grad_v[:, :-1] -= syn_decay * grad_current[:, 1:]
    after_reset = torch.where(membranes >= threshold, torch.zeros_like(membranes), membranes)
    return (grad_v[:, 1:] * after_reset[:, :-1]).sum(dim=(0, 1))


def define_scan_ops(name: str, forward_impl: Callable, backward_impl: Callable, contiguous_grads: bool = True):
    """Register ``nwave::<name>`` and its backward op; return the forward op.

    Args:
        name: Op name inside the ``nwave`` namespace.
        forward_impl: ``(current, beta, recurrent, threshold, syn_decay) -> (spikes, membranes)``
            on contiguous tensors of one dtype.
        backward_impl: ``(grad_spikes, grad_membranes, membranes, beta, recurrent, threshold,
            syn_decay, kind_code, value, detach_reset) -> grad_current``; either output grad
            may be ``None`` (that output does not reach the loss), not both.
        contiguous_grads: Hand the output grads to ``backward_impl`` contiguous; ``False``
            passes them as autograd made them (e.g. stride-0 expanded from ``.sum()``)
            for an implementation that reads strided grads itself.
    """
    prepare_grad = _contiguous if contiguous_grads else (lambda tensor: tensor)

    def scan(
        current: Tensor,
        beta: Tensor,
        recurrent: Optional[Tensor],
        threshold: float,
        syn_decay: Optional[float],
        surrogate_kind: str,
        surrogate_value: float,
        detach_reset: bool,
    ) -> tuple[Tensor, Tensor]:
        # The surrogate and detach_reset only shape the backward pass; they are
        # op arguments so that setup_context sees them.
        return forward_impl(current.contiguous(), beta.contiguous(), _contiguous(recurrent), threshold, syn_decay)

    def scan_backward(
        grad_spikes: Optional[Tensor],
        grad_membranes: Optional[Tensor],
        membranes: Tensor,
        beta: Tensor,
        recurrent: Optional[Tensor],
        threshold: float,
        syn_decay: Optional[float],
        surrogate_kind: str,
        surrogate_value: float,
        detach_reset: bool,
    ) -> Tensor:
        return backward_impl(
            prepare_grad(grad_spikes),
            prepare_grad(grad_membranes),
            membranes.contiguous(),
            beta.contiguous(),
            _contiguous(recurrent),
            threshold,
            syn_decay,
            SURROGATE_CODES[surrogate_kind],
            surrogate_value,
            detach_reset,
        )

    scan.__name__ = name
    scan_backward.__name__ = f"{name}_backward"
    forward_op = torch.library.custom_op(f"nwave::{name}", scan, mutates_args=())
    backward_op = torch.library.custom_op(f"nwave::{name}_backward", scan_backward, mutates_args=())

    @forward_op.register_fake
    def _(current, beta, recurrent, threshold, syn_decay, surrogate_kind, surrogate_value, detach_reset):
        return current.new_empty(current.shape), current.new_empty(current.shape)

    @backward_op.register_fake
    def _(grad_spikes, grad_membranes, membranes, beta, recurrent, *args):
        return membranes.new_empty(membranes.shape)

    def setup_context(ctx, inputs, output):
        # Unused outputs give None grads instead of materialised zeros: the
        # kernels skip those reads (often the membranes are not in the loss).
        ctx.set_materialize_grads(False)
        _, beta, recurrent, threshold, syn_decay, kind, value, detach_reset = inputs
        ctx.save_for_backward(output[1], beta, recurrent)
        ctx.scalars = (threshold, syn_decay, kind, value, detach_reset)

    def backward(ctx, grad_spikes, grad_membranes):
        membranes, beta, recurrent = ctx.saved_tensors
        threshold, syn_decay, kind, value, detach_reset = ctx.scalars
        if grad_spikes is None and grad_membranes is None:
            return None, None, None, None, None, None, None, None
        grad_current = backward_op(
            grad_spikes, grad_membranes, membranes, beta, recurrent, threshold, syn_decay, kind, value, detach_reset
        )
        needs = ctx.needs_input_grad
        grad_beta = beta_grad(grad_current, membranes, threshold, syn_decay) if needs[1] else None
        grad_recurrent = recurrent_grad(grad_current, membranes, threshold) if recurrent is not None and needs[2] else None
        return (grad_current if needs[0] else None), grad_beta, grad_recurrent, None, None, None, None, None

    forward_op.register_autograd(backward, setup_context=setup_context)
    return forward_op


def _contiguous(tensor: Optional[Tensor]) -> Optional[Tensor]:
    return None if tensor is None else tensor.contiguous()
