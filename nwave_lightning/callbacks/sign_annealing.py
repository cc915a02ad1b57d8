"""``SignAnnealing``: train towards the chips' row-block sign (``nwave.sign_annealing.*``).

The callback installs :class:`~nwave_lightning.layers.sign.SignBlockParametrization`
(``W = |V| * tanh(alpha * c_b)``, ``docs/hardware-model.md``) on every dense synapse
``weight`` and RC ``recurrent_weights`` and raises ``alpha`` over the epochs.
:func:`export_hard_signed` gives the deployable ``alpha -> inf`` weights.

Example:
    >>> import torch
    >>> from nwave_lightning.layers import H1v2Synapse
    >>> net = torch.nn.Sequential(H1v2Synapse(4, 3, init=torch.nn.init.ones_))
    >>> [d.module_name for d in install_sign_parametrization(net, alpha=1.0)]
    ['0']
    >>> round(float(sign_coherence_pct(net[0], "weight")), 2)   # tanh(1): soft signs hold magnitude back
    76.16
    >>> set_sign_alpha(net, 20.0)
    >>> round(float(sign_coherence_pct(net[0], "weight")), 2)
    100.0
    >>> sorted(export_hard_signed(net))
    ['0.weight']
"""

from __future__ import annotations

import warnings

from typing import Any, Mapping, Optional

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from ..deploy import to_chip
from ..layers.walk import dense_weights
from ..layers.sign import SignBlockParametrization, block_signs, install_sign_parametrization, set_sign_alpha, sign_parametrization
from ._common import check_number, config_kwargs, init_keys, log_scalar, network

__all__ = [
    "SignAnnealing",
    "export_hard_signed",
    "install_sign_parametrization",
    "set_sign_alpha",
    "sign_coherence_pct",
    "sign_parametrization",
]

SCHEDULES = ("linear", "geometric")


def _row_signs(weight: torch.Tensor, sign_block: int) -> torch.Tensor:
    rows = torch.arange(weight.shape[0], device=weight.device) // sign_block
    return block_signs(weight, sign_block)[rows]


@torch.no_grad()
def sign_coherence_pct(module: nn.Module, attr: str) -> torch.Tensor:
    """Coherence (%) of ``module.<attr>`` measured against its deployable magnitude.

    ``100 * sum relu(s_b * W) / sum |V|`` where ``W`` is the matrix the model
    uses, ``s_b`` its block signs and ``V`` the stored magnitude. The plain
    :func:`~nwave_lightning.layers.sign.coherence_pct` of a parametrised matrix
    is 100 % by construction (a whole block shares ``tanh(alpha * c_b)``); this
    measure says how much of the magnitude the hard-signed export will carry
    already reaches the network with its block's sign: ``mean |tanh(alpha * c_b)|``
    weighted by magnitude, rising to 100 % as ``alpha`` grows. For a matrix
    without the parametrisation ``V = W`` and it equals ``coherence_pct``.
    """
    weight = getattr(module, attr).detach()
    param = sign_parametrization(module, attr)
    magnitude = module.parametrizations[attr].original.detach().abs() if param is not None else weight.abs()
    total = magnitude.sum()
    if total == 0:
        return weight.new_tensor(100.0)
    return 100.0 * torch.relu(_row_signs(weight, module.chip.sign_block) * weight).sum() / total


def export_hard_signed(model: nn.Module) -> dict[str, torch.Tensor]:
    """A ``state_dict`` of ``model`` with deployable dense matrices and no sign parametrisation.

    The ``state_dict`` of :func:`nwave_lightning.deploy.to_chip`: each dense H1
    matrix becomes plain ``<module>.<attr>`` holding what the chip stores
    (:func:`~nwave_lightning.layers.sign.deployable_matrix`). The model itself is
    not changed; the result loads into the same architecture built without the
    parametrisation.
    """
    return to_chip(model).state_dict()


class SignAnnealing(Callback):
    """Parametrise dense H1 matrices with a per-block sign and sharpen it over training.

    In ``setup`` (before Lightning builds the optimiser and before it loads a
    checkpoint) every synapse ``weight`` and RC ``recurrent_weights`` of the
    network (``pl_module.net`` when present, else the module) gets
    ``W = |V| * tanh(alpha * c_b)``, so the optimiser trains the magnitudes and
    the sign logits and checkpoints hold the parametrised keys. At the start of
    each training epoch ``alpha = alpha_at(trainer.current_epoch)``; at its end
    ``sign_alpha`` and ``sign_topology/<layer>/<weight_id>_coherence_pct``
    (:func:`sign_coherence_pct`; ``weight_id`` is ``weight`` or
    ``recurrent_weights``) are logged. At ``on_train_start`` the callback checks
    that the optimiser holds the new parameters.

    Schedules, with ``e = min(epoch, ramp_epochs) / ramp_epochs``:
    ``linear``: ``alpha_start + (alpha_end - alpha_start) * e``;
    ``geometric``: ``alpha_start * (alpha_end / alpha_start) ** e``.

    Extension point: override :meth:`alpha_at` (``epoch -> alpha``).

    Args:
        alpha_start: Sharpness in the first epoch (> 0).
        alpha_end: Sharpness from epoch ``total_epochs`` on (> 0).
        total_epochs: Length of the ramp in epochs (>= 1), or ``None``: ``ramp_fraction``
            of the trainer's ``max_epochs``, so the last epochs train with the signs
            the chip will have whatever the run's length (the default of
            :class:`~nwave_lightning.training.SNNModule`'s hardware-aware training).
        schedule: ``"linear"`` or ``"geometric"``.
        ramp_fraction: Share of ``max_epochs`` the ramp takes when ``total_epochs`` is ``None``.

    Example:
        >>> SignAnnealing(alpha_start=1.0, alpha_end=10.0, total_epochs=3).alpha_at(1)
        4.0
    """

    def __init__(
        self,
        alpha_start: float = 1.0,
        alpha_end: float = 10.0,
        total_epochs: Optional[int] = 100,
        schedule: str = "linear",
        ramp_fraction: float = 0.6,
    ) -> None:
        owner = type(self).__name__
        self.alpha_start = check_number(owner, "alpha_start", alpha_start, positive=True)
        self.alpha_end = check_number(owner, "alpha_end", alpha_end, positive=True)
        self.total_epochs = check_number(owner, "total_epochs", total_epochs, integer=True, minimum=1, allow_none=True)
        if isinstance(ramp_fraction, bool) or not isinstance(ramp_fraction, (int, float)) or not 0 < ramp_fraction <= 1:
            raise ValueError(f"{owner}: ramp_fraction={ramp_fraction!r} must be a number in (0, 1] (share of max_epochs).")
        self.ramp_fraction = float(ramp_fraction)
        if not isinstance(schedule, str) or schedule.lower() not in SCHEDULES:
            raise ValueError(f"{owner}: schedule={schedule!r} is unknown; choose one of {list(SCHEDULES)} (or override alpha_at).")
        self.schedule = schedule.lower()
        #: Length of the ramp in epochs; with ``total_epochs=None`` known once the trainer is.
        self.ramp_epochs: Optional[int] = self.total_epochs
        self.epoch: Optional[int] = None
        self.alpha: float = self.alpha_start
        self._network: Optional[nn.Module] = None

    def alpha_at(self, epoch: int) -> float:
        """Sharpness for the training epoch ``epoch`` (0-based). Override for a custom ramp."""
        if self.ramp_epochs is None:
            raise RuntimeError(f"{type(self).__name__}: total_epochs=None takes its length from the trainer; call setup first.")
        e = min(epoch, self.ramp_epochs) / self.ramp_epochs
        if self.schedule == "geometric":
            return self.alpha_start * (self.alpha_end / self.alpha_start) ** e
        return self.alpha_start + (self.alpha_end - self.alpha_start) * e

    # -- Lightning hooks ---------------------------------------------------
    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if self.total_epochs is None and stage == "fit":  # a checkpoint restored after setup keeps its own ramp
            max_epochs = trainer.max_epochs  # resolved by Lightning before setup when fitting
            if max_epochs is None or max_epochs < 1:
                raise ValueError(
                    f"{type(self).__name__}: total_epochs=None scales the sign-annealing ramp with the trainer's "
                    f"max_epochs, but max_epochs={max_epochs} (a run limited by max_steps or max_time). Set "
                    "Trainer(max_epochs=...), or give the ramp's length: SignAnnealing(total_epochs=N), for "
                    "SNNModule's default SNNModule(sign_annealing={'total_epochs': N}), or sign_annealing=False."
                )
            self.ramp_epochs = max(1, round(self.ramp_fraction * max_epochs))
        self._network = network(pl_module)
        existing = [m for m in self._network.modules() if isinstance(m, SignBlockParametrization)]
        if existing:
            # A network that already carries the parametrisation (a checkpoint loaded into it, an
            # earlier fit) keeps its sharpness: evaluating it must use the weights it was saved with.
            self.alpha = existing[0].alpha
        if not install_sign_parametrization(self._network, self.alpha):
            raise ValueError(
                f"{type(self).__name__}: the network has no dense H1 matrix (synapse weight or RC recurrent_weights) "
                "to parametrise; remove the callback or add H1 synapses."
            )
        set_sign_alpha(self._network, self.alpha)

    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        held = {id(p) for opt in trainer.optimizers for group in opt.param_groups for p in group["params"]}
        if not held:
            return
        missing = [
            name
            for name, p in self._network.named_parameters()
            if ".parametrizations." in f".{name}" and p.requires_grad and id(p) not in held
        ]
        if missing:
            raise RuntimeError(
                f"{type(self).__name__}: the optimiser does not hold the sign-parametrisation parameters {missing}. "
                "Build the optimiser in configure_optimizers from self.parameters() (it runs after the callback's "
                "setup), not from a parameter list captured in __init__."
            )

    def on_train_epoch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self.epoch = trainer.current_epoch
        self.alpha = float(self.alpha_at(self.epoch))
        set_sign_alpha(self._network, self.alpha)

    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        log_scalar(pl_module, "sign_alpha", self.alpha)
        for entry in dense_weights(self._network):
            if sign_parametrization(entry.module, entry.attr) is not None:
                value = sign_coherence_pct(entry.module, entry.attr)
                log_scalar(pl_module, f"sign_topology/{entry.module_name}/{entry.attr}_coherence_pct", value)

    # -- state ---------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "alpha": self.alpha, "ramp_epochs": self.ramp_epochs}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epoch = state_dict.get("epoch")
        self.alpha = float(state_dict.get("alpha", self.alpha_start))
        if self.total_epochs is None and state_dict.get("ramp_epochs"):
            # A resumed run keeps the ramp it started with, also when max_epochs grew since (setup scaled it anew).
            if self.ramp_epochs is not None and self.ramp_epochs != state_dict["ramp_epochs"]:
                warnings.warn(
                    f"{type(self).__name__}: the resumed run keeps the sign-annealing ramp of {state_dict['ramp_epochs']} "
                    f"epochs it started with (today's max_epochs would make it {self.ramp_epochs}), so it will not "
                    "equal a straight run of this length. To fix the ramp whatever max_epochs is, give its length: "
                    "SignAnnealing(total_epochs=N), for SNNModule's default sign_annealing={'total_epochs': N}.",
                    UserWarning,
                    stacklevel=2,
                )
            self.ramp_epochs = state_dict["ramp_epochs"]
        if self._network is not None:  # validate/test from a checkpoint: evaluate with the trained sharpness
            set_sign_alpha(self._network, self.alpha)

    @classmethod
    def from_config(cls, cfg: Optional[Mapping[str, Any]]) -> Optional["SignAnnealing"]:
        """Build from the vendor SDK's ``nwave.sign_annealing.*`` dict; ``None`` when it is empty.

        Raises:
            ValueError: unknown keys (listing the accepted ones) or bad values.
        """
        kwargs = config_kwargs(cls.__name__, cfg, init_keys(cls))
        return None if kwargs is None else cls(**kwargs)
