"""A quiet console: third-party tips and deprecations the framework's users cannot act on, dropped at the source.

Commands (``nwave ...``) and tune trials call :func:`quiet_third_party` once;
:class:`EpochProgressBar` is Lightning's progress bar without the ``v_num`` column
(the version folder is printed once at the end of ``nwave fit``).

Example:
    >>> quiet_third_party()
    >>> import logging
    >>> tips = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    >>> [f.filter(logging.LogRecord(tips.name, logging.INFO, "", 0, "💡 Tip: ...", None, None)) for f in tips.filters]
    [False]
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


#: Log lines of other libraries that say nothing about the run: logger name -> a text the message contains.
_THIRD_PARTY_LINES = {
    "lightning.pytorch.utilities.rank_zero": "💡 Tip",  # Lightning's advertising tips
    # InterruptCheckpoint says what a SIGTERM (or the Ctrl-C it hands over as one) does to the run.
    "lightning.pytorch.trainer.connectors.signal_connector": "Received SIGTERM",
    # Ray (2.59 on) when it starts a local cluster: its default of token authentication, nothing to act on.
    "ray._private.authentication.authentication_token_setup": "Token authentication is enabled",
    # Trials stopped before their first report (Ctrl-C): the report lists them as incomplete.
    "ray.tune.analysis.experiment_analysis": "Failed to fetch metrics for",
}


class _DropLines(logging.Filter):
    """Drops the records whose message contains ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in str(record.msg)


def quiet_trial_process() -> None:
    """In a tune trial's process: also drop Lightning's and Ray's per-run info lines (device, seed, checkpoint)."""
    quiet_third_party()
    for name in ("lightning.pytorch", "lightning.fabric", "ray.train", "ray.tune"):
        logging.getLogger(name).setLevel(logging.WARNING)


def quiet_third_party() -> None:
    """Drop the third-party log lines and deprecations listed above (idempotent)."""
    for message in _THIRD_PARTY_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    for name, text in _THIRD_PARTY_LINES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropLines) for f in logger.filters):
            logger.addFilter(_DropLines(text))


class EpochProgressBar(RichProgressBar):
    """Lightning's rich progress bar without the ``v_num`` column."""

    def get_metrics(self, trainer, pl_module):
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics
