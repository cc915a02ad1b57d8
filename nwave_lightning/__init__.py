"""nwave-lightning: train and tune hardware-aware SNNs for the NWAVE H1v1/H1v2 cores.

Public import paths:

* ``nwave_lightning.hardware`` — chip constants (``ChipSpec``, ``H1V1``, ``H1V2``);
* ``.layers`` — H1 building blocks (frontend, synapses, LIF layers);
* ``.surrogate`` — surrogate gradients with a schedulable slope;
* ``.loss``, ``.metrics`` — composable losses, population accuracy / recall, activity;
* ``.init`` — weight initialisation (``fluct_init``);
* ``.models`` — ready-to-train classifiers and their losses;
* ``.training`` — ``SNNModule``, the LightningModule, and the model output contract;
* ``.callbacks`` — schedules, sign annealing, early stop, best model;
* ``.data`` — LightningDataModules (synthetic tasks, digits, tensor files);
* ``.deploy`` — chip-legal copies, their check and the export formats;
* ``.run`` — ``build_from_config``: the one way a run is built from a config;
* ``.hpo`` — Ray Tune (``HPOWrapper``, the trials of ``nwave tune``);
* ``.cli`` — the ``nwave`` commands (nothing in the library imports them);
* ``.console`` — what keeps the console quiet (third-party tips, the progress bar).

README.md shows them in use.
Sub-packages are imported on demand so that ``import nwave_lightning.layers``
does not pull in Lightning or Ray.
"""

__version__ = "0.1.0"
