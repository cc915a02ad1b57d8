"""``python -m nwave_lightning ...`` runs the ``nwave`` command (see :mod:`nwave_lightning.cli`)."""

from nwave_lightning.cli import console_main

if __name__ == "__main__":  # the doctest collector imports this module: do not run on import
    console_main()
