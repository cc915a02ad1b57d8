"""Ready-to-train models and losses, usable from Python and from YAML (``class_path``).

* :class:`H1Classifier` — frontend, hidden H1 layers, population readout;
  :class:`SurrogateSNN` — the vendor SDK's HPO guide's ``SurrogateSNN(cfg)``.
* :class:`PatternGenerator` — tutorial 7's recurrent H1v2 generator.
* :class:`PopulationLoss`, :class:`RateMSELoss` — losses for the two.

Example:
    >>> from nwave_lightning.models import H1Classifier
    >>> H1Classifier(in_ch=8, num_classes=10, neurons_per_class=2, hidden=[32, 32]).out_neurons
    20
"""

from .classifier import H1Classifier, SurrogateSNN, make_surrogate
from .objectives import PopulationLoss, RateMSELoss
from .pattern import PatternGenerator

__all__ = ["H1Classifier", "PatternGenerator", "PopulationLoss", "RateMSELoss", "SurrogateSNN", "make_surrogate"]
