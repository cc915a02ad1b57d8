"""From a trained network to the chip: chip-legal copies, their check, and the export formats.

* :func:`to_chip` — a copy with every chip constraint applied hard;
  :func:`check_chip` — every constraint a network breaks (empty: the chip can run it).
* :func:`chip_graph` / :class:`ChipNet` — the chain ``frontend -> (synapse -> layer) x L``
  the chip runs, read out of any network, and rebuilt from it.

The package sits on :mod:`nwave_lightning.layers` and knows nothing of Lightning.

Example:
    >>> from nwave_lightning.models import H1Classifier
    >>> net = H1Classifier(in_ch=4, num_classes=2, neurons_per_class=2, hidden=[8], topology="RC")
    >>> check_chip(to_chip(net))
    []
"""

from .chip import VIOLATION_KINDS, ChipViolationError, Violation, check_chip, require_chip, to_chip
from .graph import ChipGraph, ChipGraphError, ChipNet, LayerSpec, chip_graph

__all__ = [
    "VIOLATION_KINDS",
    "ChipGraph",
    "ChipGraphError",
    "ChipNet",
    "ChipViolationError",
    "LayerSpec",
    "Violation",
    "check_chip",
    "chip_graph",
    "require_chip",
    "to_chip",
]
