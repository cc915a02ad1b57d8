"""``nwave export``: from a training checkpoint to a file for the chip.

Usage::

    nwave export --config configs/quickstart.yaml --ckpt_path runs/quickstart/version_0/checkpoints/last.ckpt --output model.json
    nwave export --config configs/quickstart.yaml --ckpt_path last --output model.npz     # newest run of that config
    nwave export --config configs/quickstart.yaml --ckpt_path best_model.pt --output model.nir

The config builds the model as for ``nwave fit`` (LightningCLI takes the model's
arguments from the checkpoint's hyper-parameters when it holds them, so the
network has the trained shape); the checkpoint's weights are loaded into its
network (``model.net``); :func:`~nwave_lightning.deploy.to_chip`
applies the chip constraints; :func:`~nwave_lightning.deploy.check_chip` gives
the verdict, printed one violation per line, or ``chip check: OK (<n> layers,
chip <name>)``. A chip-legal network is written in the format the suffix of
``--output`` names (:data:`EXPORT_FORMATS`) and its path printed; otherwise
nothing is written and the command exits with status 1.

Checkpoints of runs with the :class:`~nwave_lightning.callbacks.SignAnnealing`
callback hold sign-parametrised weights (``...parametrizations.weight.original``,
``...sign_logits``); the parametrisation is installed before loading them, and
``to_chip`` takes its ``alpha -> inf`` limit.

The module plugs into the ``nwave`` command the way ``tune`` does:
:data:`EXPORT_SKIPPED_ARGS` in ``NWaveCLI.subcommands()`` and :func:`export` as
the ``NWaveTrainer`` method of the same name. It needs nothing of Lightning.

Example:
    >>> sorted(EXPORT_FORMATS)
    ['.json', '.nir', '.npz']
    >>> export_format("chip/model.npz")
    '.npz'
"""

from __future__ import annotations

import os
from typing import Any, Callable

from torch import nn

from ..checkpoints import CheckpointCorruptError, load_checkpoint
from ..layers.walk import layers
from ..layers.sign import install_sign_parametrization
from ..deploy.chip import check_chip, to_chip
from ..deploy.chip_file import export_chip
from ..deploy.graph import ChipGraphError

__all__ = ["EXPORT_FORMATS", "EXPORT_SKIPPED_ARGS", "export", "export_format", "load_checkpoint_into"]

#: Arguments of :func:`export` that LightningCLI fills itself (not command-line options).
EXPORT_SKIPPED_ARGS = {"model", "datamodule"}
#: Suffix of ``--output`` -> what is written.
EXPORT_FORMATS = {
    ".json": "chip file: readable JSON header + the arrays in the .npz of the same stem (docs/chip-file.md)",
    ".npz": "chip file in one .npz, the header in its header.json entry (docs/chip-file.md)",
    ".nir": "NIR graph (nwave_lightning.deploy.export_nir)",
}
# Keys of a state_dict that only a sign-parametrised network has.
_SIGN_KEY_ENDINGS = (".sign_logits", ".original")


def export_format(output: Any) -> str:
    """The suffix of ``output`` (lower case) when :data:`EXPORT_FORMATS` knows it.

    Raises:
        ValueError: naming ``output`` and listing the known suffixes.

    Example:
        >>> export_format("model.JSON")
        '.json'
        >>> export_format("model.onnx")
        Traceback (most recent call last):
        ValueError: nwave export: output='model.onnx' has the suffix '.onnx', which names no export format; use one of .json, .npz, .nir: ...
    """
    if not isinstance(output, (str, os.PathLike)) or not os.fspath(output):
        raise ValueError(f"nwave export: output={output!r} must be a file path ending in one of {_known()}, e.g. --output model.json.")
    suffix = os.path.splitext(os.fspath(output))[1].lower()
    if suffix not in EXPORT_FORMATS:
        raise ValueError(
            f"nwave export: output={os.fspath(output)!r} has the suffix {suffix or '(none)'!r}, which names no export "
            f"format; use one of {_known()}: "
            + "; ".join(f"{name} = {what}" for name, what in EXPORT_FORMATS.items())
            + "."
        )
    return suffix


def _known() -> str:
    return ", ".join(EXPORT_FORMATS)


def _writer(suffix: str) -> Callable[[nn.Module, str], Any]:
    """The function writing ``suffix``; resolved before any checkpoint is read, so a missing one fails early."""
    if suffix in (".json", ".npz"):
        return export_chip
    try:
        from ..deploy import export_nir  # lazily: the NIR export lives beside the chip file in nwave_lightning.deploy
    except ImportError as err:
        raise ValueError(
            f"nwave export: writing {suffix} needs nwave_lightning.deploy.export_nir, which this installation of "
            "nwave_lightning does not have; export a chip file (--output model.json or model.npz) instead."
        ) from err
    return export_nir


def load_checkpoint_into(model: nn.Module, ckpt_path: str) -> nn.Module:
    """Load a checkpoint's weights into ``model``'s network and return the network.

    Reads Lightning checkpoints (``state_dict`` keys ``net.<...>`` of an
    :class:`~nwave_lightning.module.SNNModule`) and
    :class:`~nwave_lightning.callbacks.BestModelCheckpoint` files (the network's own
    keys), with ``torch.load(weights_only=True)`` and ``load_state_dict``. When the
    keys are sign-parametrised, the parametrisation is installed on the network first.

    Args:
        model: The LightningModule (its ``net`` is loaded) or the network itself.
        ckpt_path: Path of the checkpoint file.

    Returns:
        The network (``model.net`` when present, else ``model``) holding the checkpoint's weights.

    Raises:
        ValueError: a missing or unreadable file, or keys that do not fit the network,
            naming the file and what to change.

    Example:
        >>> import os, tempfile, torch
        >>> from nwave_lightning.models import PatternGenerator
        >>> trained = PatternGenerator()
        >>> path = os.path.join(tempfile.mkdtemp(), "best_model.pt")
        >>> torch.save({"state_dict": trained.state_dict()}, path)
        >>> net = load_checkpoint_into(PatternGenerator(), path)
        >>> torch.equal(net.synapse.weight, trained.synapse.weight)
        True
    """
    if not isinstance(ckpt_path, (str, os.PathLike)) or not os.path.isfile(ckpt_path):
        raise ValueError(
            f"nwave export: ckpt_path={ckpt_path!r} is not a file; pass a checkpoint of the run, e.g. "
            "--ckpt_path runs/<name>/version_<n>/checkpoints/last.ckpt, its best_model.pt, or --ckpt_path last."
        )
    try:
        payload = load_checkpoint(ckpt_path)  # a damaged file: "checkpoint <path> is truncated or corrupt (...)"
    except CheckpointCorruptError:
        raise
    except Exception as err:  # pickle / torch errors all mean: not a checkpoint this command can read
        raise ValueError(
            f"nwave export: ckpt_path={os.fspath(ckpt_path)!r} cannot be read as a checkpoint with "
            f"torch.load(weights_only=True): {err}"
        ) from err
    state = payload.get("state_dict") if isinstance(payload, dict) else None
    if not isinstance(state, dict):
        raise ValueError(
            f"nwave export: ckpt_path={os.fspath(ckpt_path)!r} holds no 'state_dict'; pass a Lightning checkpoint (.ckpt) "
            "or a BestModelCheckpoint file (best_model.pt)."
        )
    net = getattr(model, "net", model)
    if net is not model:
        own = {key[len("net.") :]: value for key, value in state.items() if key.startswith("net.")}
        state = own or state  # no `net.` keys: a file of the network's own state_dict (best_model.pt)
    if any(key.endswith(_SIGN_KEY_ENDINGS) and ".parametrizations." in key for key in state):
        install_sign_parametrization(net)  # alpha is not stored and does not matter: to_chip takes alpha -> inf
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"nwave export: the weights in {os.fspath(ckpt_path)!r} do not fit the network the config builds "
            f"({type(net).__name__}); pass the config the run was trained with.\n{err}"
        ) from err
    return net


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
    suffix = export_format(output)
    writer = _writer(suffix)
    if ckpt_path == "last":  # only the command line resolves it (it knows the config's run folder)
        raise ValueError("export: ckpt_path='last' is resolved by `nwave export`; from Python pass the checkpoint's path.")
    net = load_checkpoint_into(model, ckpt_path)
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
        writer(chip_net, os.fspath(output))
    except ChipGraphError as err:
        raise SystemExit(f"nwave export: nothing written to {output}: {err}") from err
    written = os.path.abspath(output)
    arrays = f" (arrays: {os.path.splitext(written)[0]}.npz)" if suffix == ".json" else ""
    print(f"wrote {written}{arrays}")
    return written
