"""Row-block sign constraint of the H1 cores (``docs/hardware-model.md``, "Row-block sign").

Rows of a weight matrix ``(n_in, n_out)`` are grouped in blocks of
``sign_block`` consecutive rows; on chip all weights of a block share one sign.
The block sign is ``s_b = sign(sum of the block)`` (a zero sum counts as +1).

Example:
    >>> import torch
    >>> w = torch.tensor([[1.0, -0.5], [0.2, 0.3]])
    >>> block_signs(w, 1).tolist()
    [[1.0], [1.0]]
    >>> round(float(coherence_pct(w, 1)), 2)
    75.0
    >>> float(minority_sign_mass(w, 1))
    0.5
"""

from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import nn
from torch.nn.utils import parametrize

from .walk import DenseWeight, dense_weights

__all__ = [
    "SignBlockParametrization",
    "block_signs",
    "coherence_pct",
    "deployable_matrix",
    "hard_signed",
    "initial_sign_logits",
    "install_sign_parametrization",
    "minority_sign_mass",
    "restart_sign_parametrization",
    "set_sign_alpha",
    "sign_parametrization",
    "unparametrized_copy",
]


def _check(weight: torch.Tensor, sign_block: int) -> None:
    if weight.dim() != 2:
        raise ValueError(f"row-block sign: weight must be a 2-D (n_in, n_out) matrix, got shape {tuple(weight.shape)}.")
    if isinstance(sign_block, bool) or not isinstance(sign_block, int) or sign_block < 1:
        raise ValueError(f"row-block sign: sign_block={sign_block!r} must be a positive integer number of rows.")


def _block_ids(n_rows: int, sign_block: int, device) -> torch.Tensor:
    return torch.arange(n_rows, device=device) // sign_block


def block_sums(weight: torch.Tensor, sign_block: int) -> torch.Tensor:
    """Sum of each row block, shape ``(n_blocks, 1)`` (the last block may be shorter)."""
    _check(weight, sign_block)
    n_blocks = -(-weight.shape[0] // sign_block)
    sums = weight.new_zeros(n_blocks)
    sums.index_add_(0, _block_ids(weight.shape[0], sign_block, weight.device), weight.sum(dim=1))
    return sums.unsqueeze(1)


def block_signs(weight: torch.Tensor, sign_block: int) -> torch.Tensor:
    """``s_b`` per block, shape ``(n_blocks, 1)``, values in {-1, +1}."""
    sums = block_sums(weight.detach(), sign_block)
    return torch.where(sums < 0, -torch.ones_like(sums), torch.ones_like(sums))


def _row_signs(weight: torch.Tensor, sign_block: int) -> torch.Tensor:
    signs = block_signs(weight, sign_block)
    return signs[_block_ids(weight.shape[0], sign_block, weight.device)]


def coherence_pct(weight: torch.Tensor, sign_block: int) -> torch.Tensor:
    """``100 * sum relu(s_b * W) / sum |W|``: share of the magnitude with its block's sign."""
    w = weight.detach()
    total = w.abs().sum()
    if total == 0:
        return w.new_tensor(100.0)
    return 100.0 * torch.relu(_row_signs(w, sign_block) * w).sum() / total


def minority_sign_mass(weight: torch.Tensor, sign_block: int) -> torch.Tensor:
    """``sum relu(-s_b * W)`` with ``s_b`` detached: differentiable in ``W``."""
    return torch.relu(-_row_signs(weight, sign_block) * weight).sum()


def hard_signed(weight: torch.Tensor, sign_block: int) -> torch.Tensor:
    """Deployable copy: weights of the minority sign in each block set to zero."""
    w = weight.detach()
    signs = _row_signs(w, sign_block)
    return torch.where(signs * w > 0, w, torch.zeros_like(w))


def initial_sign_logits(weight: torch.Tensor, sign_block: int) -> torch.Tensor:
    """Sign logits ``c_b`` that start a parametrisation from ``weight``: block sums over their mean magnitude.

    Logits of order one keep ``tanh(alpha * c)`` informative at ``alpha ~ 1``.
    """
    sums = block_sums(weight.detach(), sign_block)
    return sums / sums.abs().mean().clamp_min(1e-8)


@torch.no_grad()
def restart_sign_parametrization(module: nn.Module, attr: str, weight: torch.Tensor) -> None:
    """Point a sign-parametrised ``module.<attr>`` at ``weight`` as installing it on ``weight`` would.

    The stored magnitude becomes ``|weight|`` and the logits :func:`initial_sign_logits`;
    used when an initialiser (``fluct_init``) runs after the parametrisation is in place.
    """
    param = sign_parametrization(module, attr)
    if param is None:
        raise ValueError(f"restart_sign_parametrization: {type(module).__name__}.{attr} has no sign parametrisation.")
    module.parametrizations[attr].original.copy_(weight.abs())
    param.sign_logits.copy_(initial_sign_logits(weight, param.sign_block))


def unparametrized_copy(net: nn.Module) -> nn.Module:
    """A deep copy of ``net`` whose dense H1 matrices are plain parameters holding their current values."""
    # The per-sequence state of the blocks (prepared matrices, step state) may hold tensors of
    # the last forward's graph, which deepcopy refuses; the copy starts without it (prepare_net
    # rebuilds it at the next sequence).
    memo = {
        id(value): None
        for module in net.modules()
        for value in (getattr(module, "_prepared", None), getattr(module, "_state", None))
        if value is not None
    }
    copied = copy.deepcopy(net, memo)
    for entry in dense_weights(copied):
        if parametrize.is_parametrized(entry.module, entry.attr):
            # A deep copy shares torch's generated ``Parametrized<Class>`` with the original, and
            # remove_parametrizations deletes the property from that class: the original would
            # lose its weight. Give the copy a class of its own first (same bases and attributes).
            shared = type(entry.module)
            namespace = {k: v for k, v in vars(shared).items() if k not in ("__dict__", "__weakref__")}
            entry.module.__class__ = type(shared.__name__, shared.__bases__, namespace)
            parametrize.remove_parametrizations(entry.module, entry.attr, leave_parametrized=True)
    return copied


class SignBlockParametrization(nn.Module):
    """``W = |V| * tanh(alpha * c_b)`` with one sign logit ``c_b`` per row block.

    Register with ``torch.nn.utils.parametrize.register_parametrization``; the
    logits are initialised from the block sums of the weight at registration,
    and ``alpha`` (kept in the buffer ``alpha_state`` so that a checkpoint restores the
    exact effective weights) is what the ``SignAnnealing`` callback raises over
    training. With ``alpha -> inf`` every block carries a single sign.

    Args:
        weight: The matrix being parametrised (to size and initialise the logits).
        sign_block: Rows per block.
        alpha: Initial sharpness.
    """

    def __init__(self, weight: torch.Tensor, sign_block: int, alpha: float = 1.0) -> None:
        super().__init__()
        _check(weight, sign_block)
        self.sign_block = sign_block
        self.register_buffer("alpha_state", torch.tensor(float(alpha), dtype=weight.dtype, device=weight.device))
        self.sign_logits = nn.Parameter(initial_sign_logits(weight, sign_block))

    @property
    def alpha(self) -> float:
        """Sharpness of the sign: ``W = |V| * tanh(alpha * c_b)``."""
        return float(self.alpha_state)

    @alpha.setter
    def alpha(self, value: float) -> None:
        with torch.no_grad():
            self.alpha_state.fill_(float(value))

    def forward(self, magnitude: torch.Tensor) -> torch.Tensor:
        rows = _block_ids(magnitude.shape[0], self.sign_block, magnitude.device)
        return magnitude.abs() * torch.tanh(self.alpha_state * self.sign_logits[rows])

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        # Store magnitudes; the sign lives in the logits.
        return weight.abs()

    def extra_repr(self) -> str:
        return f"sign_block={self.sign_block}, alpha={self.alpha}"


def sign_parametrization(module: nn.Module, attr: str) -> Optional[SignBlockParametrization]:
    """The sign parametrisation on ``module.<attr>``, or ``None``."""
    if not parametrize.is_parametrized(module, attr):
        return None
    found = [p for p in module.parametrizations[attr] if isinstance(p, SignBlockParametrization)]
    return found[0] if found else None


def install_sign_parametrization(model: nn.Module, alpha: float = 1.0) -> list[DenseWeight]:
    """Register the row-block sign parametrisation on every dense H1 matrix of ``model`` (idempotent).

    The stored magnitude keeps the original ``Parameter`` object (torch's
    parametrisation updates it in place), so an optimiser built earlier still
    holds it; the new sign logits are new parameters: install before the
    optimiser is created (the ``SignAnnealing`` callback does it in ``setup``).

    Returns:
        The dense matrices now parametrised (already parametrised ones included).
    """
    found = dense_weights(model)
    for entry in found:
        if sign_parametrization(entry.module, entry.attr) is None:
            weight = getattr(entry.module, entry.attr)
            sign_block = entry.module.chip.sign_block
            parametrize.register_parametrization(
                entry.module, entry.attr, SignBlockParametrization(weight, sign_block, alpha), unsafe=False
            )
    return found


def set_sign_alpha(model: nn.Module, alpha: float) -> None:
    """Set ``alpha`` of every sign parametrisation in ``model``."""
    for module in model.modules():
        if isinstance(module, SignBlockParametrization):
            module.alpha = alpha


@torch.no_grad()
def deployable_matrix(module: nn.Module, attr: str) -> torch.Tensor:
    """What the chip stores for ``module.<attr>``: one sign per row block, clamped to the chip's range.

    A sign-parametrised matrix takes its ``alpha -> inf`` limit ``sign(c_b) * |V|``;
    a plain one has its minority-sign weights zeroed (:func:`hard_signed`). The
    result is a detached copy; the module is not changed.

    Example:
        >>> from nwave_lightning.layers import H1v2Synapse
        >>> syn = H1v2Synapse(2, 2, init=lambda w: w.copy_(torch.tensor([[3.0, -0.5], [-0.2, 0.4]])))
        >>> deployable_matrix(syn, "weight").tolist()
        [[1.659999966621399, 0.0], [0.0, 0.4000000059604645]]
    """
    param = sign_parametrization(module, attr)
    sign_block = module.chip.sign_block
    if param is None:
        hard = hard_signed(getattr(module, attr), sign_block)
    else:
        plist = module.parametrizations[attr]
        rows = torch.arange(plist.original.shape[0], device=plist.original.device) // sign_block
        # alpha -> inf: tanh(alpha * c) -> sign(c), a zero logit counting as + like block_signs does.
        signs = torch.where(param.sign_logits < 0, -1.0, 1.0).to(plist.original.dtype)[rows]
        hard = plist.original.abs() * signs
        for later in list(plist)[list(plist).index(param) + 1 :]:
            hard = later(hard)
        hard = hard_signed(hard, sign_block)
    return hard.clamp(*module.chip.weight_range).detach().clone()
