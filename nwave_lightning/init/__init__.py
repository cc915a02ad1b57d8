"""Weight initialisation for H1 networks.

Example:
    >>> from nwave_lightning.init import fluct_init
    >>> from nwave_lightning.init.fluct_init import fluct_init as same
    >>> fluct_init is same
    True
"""

from .fluct_init import LayerInit, fluct_init
from .measure import membrane_xi, variance_split
from .theory import inverse_efficacy, kernel_sums

__all__ = ["LayerInit", "fluct_init", "inverse_efficacy", "kernel_sums", "membrane_xi", "variance_split"]
