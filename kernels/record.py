"""Which scan kernel ran: an opt-in record of every dispatch of :func:`lif_sequence`.

Backend choice happens in three places (``NWAVE_BACKEND``, ``backend="auto"``
and the custom-surrogate fallback in :func:`~nwave_lightning.kernels.lif_sequence`,
then ``NWAVE_CPU_IMPL`` and the RC layout inside the ops), so the only reliable
answer to "what computed this tensor" is a note taken where the kernel is
launched. :func:`record_kernels` collects those notes; outside it, a note costs
one check of an empty list.

Each launch is noted once per pass: the forward and, for the custom ops, the
backward (the reference has no backward of its own: autograd differentiates its
per-step graph). Under ``torch.compile`` the custom ops' implementations run
(and are noted) when the compiled graph runs; the reference's forward is traced
into the graph and is not noted.

Example:
    >>> import torch
    >>> from nwave_lightning.kernels import lif_sequence, record_kernels
    >>> from nwave_lightning.surrogate import fast_sigmoid
    >>> current = torch.rand(1, 4, 2, requires_grad=True)
    >>> with record_kernels() as calls:
    ...     spikes, membranes = lif_sequence(current, torch.full((2,), 0.5), 1.0, fast_sigmoid(), backend="cpu")
    ...     membranes.sum().backward()
    >>> [(call.backend, call.stage) for call in calls]
    [('cpu', 'forward'), ('cpu', 'backward')]
"""

from __future__ import annotations

import contextlib
from typing import Iterator, NamedTuple, Optional

import torch

__all__ = ["KernelCall", "record_kernels"]


class KernelCall(NamedTuple):
    """One launch of a scan.

    Attributes:
        backend: ``"reference"``, ``"cpu"`` or ``"triton"``.
        kernel: The implementation inside the backend: ``"reference"``; ``"native"`` (C loops) or
            ``"torch"`` (torch loop) for the CPU; ``"ff"``, ``"rc_onchip"`` (``W_rc`` in registers) or
            ``"rc_tiled"`` for Triton.
        stage: ``"forward"`` or ``"backward"``.
        device: The device type of the tensors (``"cpu"``, ``"cuda"``).
        dtype: The dtype of the tensors.
        interpreted: Triton ran under its CPU interpreter (always ``False`` for other backends).
        dot_precision: The recurrent mat-vec precision of a Triton RC kernel, else ``None``.
    """

    backend: str
    kernel: str
    stage: str
    device: str
    dtype: torch.dtype
    interpreted: bool = False
    dot_precision: Optional[str] = None


_ACTIVE: list[list[KernelCall]] = []


def recording() -> bool:
    """Whether some :func:`record_kernels` block is open (the cheap check before a note)."""
    return bool(_ACTIVE)


def note(backend: str, kernel: str, stage: str, tensor: torch.Tensor, interpreted: bool = False,
         dot_precision: Optional[str] = None) -> None:
    """Append one launch to every open record (nothing when none is open)."""
    if not _ACTIVE:
        return
    call = KernelCall(backend, kernel, stage, tensor.device.type, tensor.dtype, interpreted, dot_precision)
    for calls in _ACTIVE:
        calls.append(call)


@contextlib.contextmanager
def record_kernels() -> Iterator[list[KernelCall]]:
    """Collect a :class:`KernelCall` for each scan launched inside the block (nestable, any thread).

    The list fills as kernels run, so a backward called inside the block is
    recorded too. Records are process-wide: a launch from another thread (the
    autograd engine's device threads) lands in every open record.
    """
    calls: list[KernelCall] = []
    _ACTIVE.append(calls)
    try:
        yield calls
    finally:
        # By identity: two open records can be equal lists.
        del _ACTIVE[next(i for i, active in enumerate(_ACTIVE) if active is calls)]
