"""Time-scan kernels of the H1 neuron, importable as ``nwave_lightning.kernels``.

:func:`lif_sequence` is the single entry point the layers call; it picks a
backend from the tensor it receives:

* ``"reference"`` — :mod:`.reference`, a step-by-step PyTorch loop (the oracle);

Set ``NWAVE_BACKEND=reference`` (or pass ``backend="reference"``) to force the
reference path while debugging.

Example:
    >>> import torch
    >>> from nwave_lightning.kernels import lif_sequence
    >>> from nwave_lightning.surrogate import fast_sigmoid
    >>> spk, mem = lif_sequence(torch.full((1, 3, 2), 0.6), torch.full((2,), 0.5), 1.0, fast_sigmoid())
    >>> spk[0, :, 0].tolist()
    [0.0, 0.0, 1.0]
"""

from __future__ import annotations

import os

import torch

from .reference import LIFState, initial_state, lif_sequence_reference, lif_step

__all__ = ["BACKENDS", "LIFState", "initial_state", "lif_sequence", "lif_step", "resolve_backend"]

BACKENDS = ("auto", "reference")


def resolve_backend(backend: str, tensor: torch.Tensor) -> str:
    """Concrete backend for ``tensor``: ``backend`` unless it is ``"auto"``."""
    forced = os.environ.get("NWAVE_BACKEND", "").strip().lower()
    choice = forced or backend
    if choice not in BACKENDS:
        source = "environment variable NWAVE_BACKEND" if forced else "backend"
        raise ValueError(f"{source}={choice!r} is not a known backend; choose one of {BACKENDS}.")
    if choice == "auto":
        return "reference"
    return choice


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

    Arguments are those of :func:`.reference.lif_sequence_reference`; ``backend``
    is ``"auto"`` or one of :data:`BACKENDS`.
    """
    resolve_backend(backend, current)
    return lif_sequence_reference(current, beta, threshold, surrogate, recurrent, syn_decay, detach_reset)
