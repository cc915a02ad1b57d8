"""The former name of :mod:`nwave_lightning.training`, kept so that configs and checkpoints written before the
rename still load (``class_path: nwave_lightning.module.SNNModule``); it says so once, with the new name.

Example:
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     from nwave_lightning.module import SNNModule
    >>> from nwave_lightning.training import SNNModule as Current
    >>> SNNModule is Current
    True
"""

import warnings

from ..training import *  # noqa: F403
from ..training import __all__  # noqa: F401

warnings.warn(
    "nwave_lightning.module is now nwave_lightning.training; write class_path: nwave_lightning.training.SNNModule "
    "in your configs (this name still loads old configs and checkpoints)",
    FutureWarning,
    stacklevel=2,
)
