"""The names of the chip-ready twins SNNModule logs: ``val_chip_*`` next to ``val_*``.

One place for the naming rule that the module, the callbacks, the tuner and the
command line share.

Example:
    >>> chip_twin("val_acc"), chip_twin("test_chip_loss"), is_chip_metric("val_chip_acc")
    ('val_chip_acc', 'test_loss', True)
"""

from __future__ import annotations

__all__ = ["CHIP_METRIC_HINT", "CHIP_STAGES", "chip_twin", "is_chip_metric"]

#: Float evaluation stage -> the stage under which SNNModule logs the same metrics of ``to_chip(net)``.
CHIP_STAGES = {"val": "val_chip", "test": "test_chip"}

CHIP_METRIC_HINT = (
    "SNNModule logs val_chip_* / test_chip_* (the metric on to_chip(net)) for a net built from "
    "nwave_lightning.layers unless chip_eval=False; a custom train_fn must report them itself"
)


def is_chip_metric(metric: str) -> bool:
    """Whether ``metric`` is a chip-ready key (``val_chip_*`` / ``test_chip_*``)."""
    return any(str(metric).startswith(f"{chip}_") for chip in CHIP_STAGES.values())


def chip_twin(metric: str) -> str | None:
    """The other half of a float / chip-ready pair, or ``None`` for keys without one.

    ``val_<name>`` <-> ``val_chip_<name>`` and ``test_<name>`` <-> ``test_chip_<name>``
    (``<name>`` is ``loss`` or a metric name); training keys, ``best_selected_metric``
    and the ``stage/...`` component keys have no twin.

    >>> chip_twin("val_recall"), chip_twin("test_chip_acc"), chip_twin("val/acc"), chip_twin("best_selected_metric")
    ('val_chip_recall', 'test_acc', None, None)
    """
    metric = str(metric)
    if "/" in metric:
        return None
    for stage, chip in CHIP_STAGES.items():
        if metric.startswith(f"{chip}_"):
            name = metric[len(chip) + 1:]
            return f"{stage}_{name}" if name else None
    for stage, chip in CHIP_STAGES.items():
        if metric.startswith(f"{stage}_") and len(metric) > len(stage) + 1:
            return f"{chip}_{metric[len(stage) + 1:]}"
    return None
