"""nwave-lightning: train and tune hardware-aware SNNs for the NWAVE H1v1/H1v2 cores.

Public import paths (see ``shared/design/architecture.md``):
``nwave_lightning.hardware``, ``.layers``, ``.surrogate``, ``.loss``, ``.metrics``,
``.init``, ``.module``, ``.callbacks``, ``.data``, ``.hpo``, ``.cli``.
Sub-packages are imported on demand so that ``import nwave_lightning.layers``
does not pull in Lightning or Ray.
"""

__version__ = "0.1.0"
