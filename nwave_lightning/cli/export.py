"""``nwave export``: from a training checkpoint to a file for the chip.

The command around :func:`~nwave_lightning.deploy.load_trained_net`, :func:`~nwave_lightning.deploy.to_chip`,
:func:`~nwave_lightning.deploy.check_chip` and :func:`~nwave_lightning.deploy.export`; what it prints and
writes: ``docs/tune-cli.md``.

Example:
    >>> sorted(EXPORT_SKIPPED_ARGS)
    ['datamodule', 'model']
"""

from __future__ import annotations

import os

from ..deploy.chip import check_chip, to_chip
from ..deploy.formats import export as write_network, export_format, load_trained_net
from ..deploy.graph import ChipGraphError
from ..layers.walk import layers

__all__ = ["EXPORT_SKIPPED_ARGS", "export"]

#: Arguments of :func:`export` that LightningCLI fills itself (not command-line options).
EXPORT_SKIPPED_ARGS = {"model", "datamodule"}


def export(self, model, datamodule=None, *, ckpt_path: str, output: str) -> str:
    """Export a trained network for the chip: a chip file (.json / .npz) or NIR (.nir).

    Args:
        ckpt_path: Checkpoint to export: a ``.ckpt`` of the run or its ``best_model.pt``; on the
            command line ``last`` (the newest intact checkpoint of the config's run, as for ``nwave fit``).
        output: File to write; its suffix picks the format: ``.json`` (chip file, readable
            header + sibling ``.npz``), ``.npz`` (chip file in one file), ``.nir`` (NIR graph).

    Returns:
        The absolute path written.

    Raises:
        ValueError: an unknown suffix (before anything is read), a missing, unreadable or
            unfitting checkpoint.
        SystemExit: status 1, nothing written, when the network is not chip-legal.

    Example:
        >>> import os, tempfile, torch
        >>> from nwave_lightning.models import PatternGenerator
        >>> folder = tempfile.mkdtemp()
        >>> torch.save({"state_dict": PatternGenerator().state_dict()}, os.path.join(folder, "best_model.pt"))
        >>> path = export(None, PatternGenerator(), ckpt_path=os.path.join(folder, "best_model.pt"),
        ...               output=os.path.join(folder, "generator.npz"))
        chip check: OK (1 layer, chip H1v2)
        wrote .../generator.npz
    """
    try:
        export_format(output, name="output")
        net = load_trained_net(model, ckpt_path)
    except ValueError as err:
        raise ValueError(f"nwave export: {err}") from err
    chip_net = to_chip(net)
    violations = check_chip(chip_net)
    if violations:
        print(f"chip check: {len(violations)} violation(s) in the network of {ckpt_path}:")
        for violation in violations:
            print(f"  {violation}")
        raise SystemExit(f"nwave export: nothing written to {output}: the network breaks chip constraints (listed above).")
    found = layers(chip_net)
    if not found:
        raise SystemExit(f"nwave export: nothing written to {output}: {type(net).__name__} holds no H1 layer to export.")
    print(f"chip check: OK ({len(found)} layer{'' if len(found) == 1 else 's'}, chip {found[0][1].chip.name})")
    try:
        written = write_network(chip_net, output)
    except ChipGraphError as err:
        raise SystemExit(f"nwave export: nothing written to {output}: {err}") from err
    arrays = f" (arrays: {os.path.splitext(written)[0]}.npz)" if written.lower().endswith(".json") else ""
    print(f"wrote {written}{arrays}")
    return written
