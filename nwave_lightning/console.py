"""A quiet console: third-party tips and deprecations the framework's users cannot act on, dropped at the source.

Commands (``nwave ...``) and tune trials call :func:`quiet_third_party` once;
:class:`EpochProgressBar` is Lightning's progress bar without the ``v_num`` column
(the version folder is printed once at the end of ``nwave fit``).

Example:
    >>> quiet_third_party()
    >>> import logging
    >>> record = logging.LogRecord("lightning.pytorch.utilities.rank_zero", logging.INFO, "", 0, "💡 Tip: ...", None, None)
    >>> _drop_tips(record)
    False
"""

from __future__ import annotations

import logging
import warnings

from lightning.pytorch.callbacks import RichProgressBar

__all__ = ["EpochProgressBar", "quiet_third_party", "quiet_trial_process"]

#: Warnings raised inside Lightning/torch about their own internals (message regexes).
_THIRD_PARTY_WARNINGS = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)


def _drop_tips(record: logging.LogRecord) -> bool:
    """Lightning's advertising tips (``💡 Tip: ...``) are not about the run."""
    return not str(record.msg).startswith("💡 Tip")


def quiet_trial_process() -> None:
    """In a tune trial's process: also drop Lightning's and Ray's per-run info lines (device, seed, checkpoint)."""
    quiet_third_party()
    for name in ("lightning.pytorch", "lightning.fabric", "ray.train", "ray.tune"):
        logging.getLogger(name).setLevel(logging.WARNING)


def quiet_third_party() -> None:
    """Drop Lightning's tips and the third-party deprecations listed above (idempotent)."""
    for message in _THIRD_PARTY_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if _drop_tips not in logger.filters:
        logger.addFilter(_drop_tips)


class EpochProgressBar(RichProgressBar):
    """Lightning's rich progress bar without the ``v_num`` column."""

    def get_metrics(self, trainer, pl_module):
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics
