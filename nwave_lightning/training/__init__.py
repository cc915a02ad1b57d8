"""The LightningModule of the framework and the contract it checks.

* :class:`SNNModule` — trains any model returning ``(spikes_list, membranes_list)``.
* :func:`validate_contract`, :func:`unpack_batch` — the checks, with the vendor SDK's guidance.
* :func:`build_optimizer`, :func:`build_lr_scheduler` — the vendor SDK's optimizer
  and scheduler names (``OPTIMIZERS``, ``LR_SCHEDULERS``).

Example:
    >>> from nwave_lightning.training import LR_SCHEDULERS, OPTIMIZERS
    >>> sorted(OPTIMIZERS), sorted(LR_SCHEDULERS)
    (['adam', 'adamax'], ['cosine', 'multistep', 'none', 'plateau', 'step'])
"""

from .contract import BatchFormatError, ContractError, batch_mask, unpack_batch, validate_contract
from .optim import LR_SCHEDULERS, OPTIMIZERS, build_lr_scheduler, build_optimizer
from .snn_module import SNNModule

__all__ = [
    "BatchFormatError",
    "ContractError",
    "LR_SCHEDULERS",
    "OPTIMIZERS",
    "SNNModule",
    "build_lr_scheduler",
    "build_optimizer",
    "batch_mask",
    "unpack_batch",
    "validate_contract",
]
