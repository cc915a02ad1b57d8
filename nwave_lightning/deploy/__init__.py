"""From a trained network to the chip: chip-legal copies, their check, and the export formats.

* :func:`to_chip` — a copy with every chip constraint applied hard;
  :func:`check_chip` — every constraint a network breaks (empty: the chip can run it).
* :func:`chip_graph` / :class:`ChipNet` — the chain ``frontend -> (synapse -> layer) x L``
  the chip runs, read out of any network, and rebuilt from it.
* :func:`export_chip` / :func:`load_chip` (the chip file), :func:`export_nir` / :func:`import_nir`;
  :func:`export` picks one by the file's suffix, :func:`load_trained_net` puts a run's
  checkpoint back into its network.

The package sits on :mod:`nwave_lightning.layers` and knows nothing of Lightning.

Example:
    >>> from nwave_lightning.models import H1Classifier
    >>> net = H1Classifier(in_ch=4, num_classes=2, neurons_per_class=2, hidden=[8], topology="RC")
    >>> check_chip(to_chip(net))
    []
"""

from .chip import VIOLATION_KINDS, ChipViolationError, Violation, check_chip, require_chip, to_chip
from .chip_file import CHIP_FILE_VERSION, ChipFileError, export_chip, load_chip
from .formats import EXPORT_FORMATS, export, export_format, load_trained_net
from .graph import ChipGraph, ChipGraphError, ChipNet, LayerSpec, chip_graph
from .nir import export_nir, import_nir

__all__ = [
    "CHIP_FILE_VERSION",
    "EXPORT_FORMATS",
    "VIOLATION_KINDS",
    "ChipFileError",
    "ChipGraph",
    "ChipGraphError",
    "ChipNet",
    "ChipViolationError",
    "LayerSpec",
    "Violation",
    "check_chip",
    "chip_graph",
    "export",
    "export_chip",
    "export_format",
    "export_nir",
    "import_nir",
    "load_chip",
    "load_trained_net",
    "require_chip",
    "to_chip",
]
