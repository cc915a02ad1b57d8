"""Encoders: analog time series ``(B, T, C)`` into what the chip's frontend reads.

Every encoder is an ``nn.Module`` without trainable weights: put it in the
model (``H1Classifier(encoder=...)``), so it is saved with the model, runs on
its device and is applied the same way in training and after deployment.

* :class:`OnOff` — signed value -> two rate channels (for standardised signals).
* :class:`Population` — one value -> ``n_fields`` Gaussian / triangular receptive fields.
* :class:`DeltaModulation` — level-crossing up / down events.
* :class:`Hold` — repeat each step ``k`` times.
* :class:`MinMax` — a known range onto ``[0, 1]``.
* :class:`Compose` — several, one after another.

The H1 frontend after them clips to ``[0, 1]`` and fires ``min(v, 1)`` spikes
per step for a value ``v``; each class says what that means for its output.

Example:
    >>> import torch
    >>> from nwave_lightning.encode import Compose, Hold, OnOff
    >>> x = torch.tensor([[[0.5, -1.0]]])               # (B=1, T=1, C=2), signed
    >>> Compose([OnOff(), Hold(2)])(x).tolist()
    [[[0.5, 0.0, 0.0, 1.0], [0.5, 0.0, 0.0, 1.0]]]
"""

from ._base import Compose, Encoder
from .analog import MinMax, OnOff
from .population import Population
from .temporal import DeltaModulation, Hold

__all__ = ["Compose", "DeltaModulation", "Encoder", "Hold", "MinMax", "OnOff", "Population"]
