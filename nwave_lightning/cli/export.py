"""``nwave export``: from a training checkpoint to a file for the chip.

Usage::

    nwave export --config configs/quickstart.yaml --ckpt_path runs/quickstart/version_0/checkpoints/last.ckpt --output model.json
    nwave export --config configs/quickstart.yaml --ckpt_path last --output model.npz     # newest run of that config
    nwave export --config configs/quickstart.yaml --ckpt_path best_model.pt --output model.nir

The config builds the model as for ``nwave fit`` (LightningCLI takes the model's
arguments from the checkpoint's hyper-parameters when it holds them, so the
network has the trained shape); :func:`~nwave_lightning.deploy.load_trained_net`
loads the checkpoint's weights into its network, :func:`~nwave_lightning.deploy.to_chip`
applies the chip constraints and :func:`~nwave_lightning.deploy.check_chip` gives
the verdict, printed one violation per line, or ``chip check: OK (<n> layers,
chip <name>)``. A chip-legal network is written by :func:`~nwave_lightning.deploy.export`
in the format the suffix of ``--output`` names
(:data:`~nwave_lightning.deploy.EXPORT_FORMATS`) and its path printed; otherwise
nothing is written and the command exits with status 1.

The module plugs into the ``nwave`` command the way ``tune`` does:
:data:`EXPORT_SKIPPED_ARGS` in ``NWaveCLI.subcommands()`` and :func:`export` as
the ``NWaveTrainer`` method of the same name. It needs nothing of Lightning.

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
        ckpt_path: Checkpoint to export: a ``.ckpt`` of the run or its ``best_model.pt``. On the
            command line ``last`` names the newest intact checkpoint of the config's run, resolved
            before this is called (:func:`nwave_lightning.ckpt_args.settle_ckpt_path`, as for
            ``nwave fit --ckpt_path last``).
        output: File to write; its suffix picks the format: ``.json`` (chip file, readable
            header + sibling ``.npz``), ``.npz`` (chip file in one file), ``.nir`` (NIR graph).

    Returns:
        The absolute path written.

    Raises:
        ValueError: an unknown suffix (before anything is read), an unreadable or
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
    except ValueError as err:
        raise ValueError(f"nwave export: {err}") from err
    if ckpt_path == "last":  # only the command line resolves it (it knows the config's run folder)
        raise ValueError("export: ckpt_path='last' is resolved by `nwave export`; from Python pass the checkpoint's path.")
    if not isinstance(ckpt_path, (str, os.PathLike)) or not os.path.isfile(ckpt_path):
        raise ValueError(
            f"nwave export: ckpt_path={ckpt_path!r} is not a file; pass a checkpoint of the run, e.g. "
            "--ckpt_path runs/<name>/version_<n>/checkpoints/last.ckpt, its best_model.pt, or --ckpt_path last."
        )
    try:
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
