"""The ``nwave`` command and its subcommands; nothing in the library imports this package.

* :mod:`~nwave_lightning.cli.app` -- ``nwave fit|validate|test|predict`` (LightningCLI) and the entry point;
* :mod:`~nwave_lightning.cli.tune` -- ``nwave tune``: Ray Tune over a fit config;
* :mod:`~nwave_lightning.cli.export` -- ``nwave export``: a checkpoint to a chip file or NIR;
* :mod:`~nwave_lightning.cli.report` -- ``python -m nwave_lightning.cli.report``: an experiment's table and figures.

Example:
    >>> from nwave_lightning.cli import NWaveCLI
    >>> "tune" in NWaveCLI.subcommands()
    True
"""

from .app import NWaveCLI, NWaveTrainer, console_main, main

__all__ = ["NWaveCLI", "NWaveTrainer", "console_main", "main"]
