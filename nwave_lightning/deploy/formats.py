"""Export formats: a trained run's weights back into its network, and that network written in the format a file name asks for.

:func:`load_trained_net` reads a Lightning checkpoint (``net.<...>`` keys of an
``SNNModule``) or a ``best_model.pt`` (the network's own keys) into a network,
installing the sign parametrisation first when the run trained with
``SignAnnealing``; :func:`export` writes a chip-legal network by the suffix of its
path (:data:`EXPORT_FORMATS`). ``nwave export`` is these two around
:func:`~nwave_lightning.deploy.to_chip` and :func:`~nwave_lightning.deploy.check_chip`.

Example:
    >>> import os, tempfile, torch
    >>> from nwave_lightning.deploy import to_chip
    >>> from nwave_lightning.models import PatternGenerator
    >>> folder = tempfile.mkdtemp()
    >>> torch.save({"state_dict": PatternGenerator().state_dict()}, os.path.join(folder, "best_model.pt"))
    >>> net = load_trained_net(PatternGenerator(), os.path.join(folder, "best_model.pt"))
    >>> os.path.basename(export(to_chip(net), os.path.join(folder, "generator.npz")))
    'generator.npz'
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Union

from torch import nn

from ..checkpoints import CheckpointCorruptError, load_checkpoint
from ..layers.sign import install_sign_parametrization
from .chip_file import export_chip
from .nir import export_nir

__all__ = ["EXPORT_FORMATS", "export", "export_format", "load_trained_net"]

#: Suffix of an export path -> what is written there.
EXPORT_FORMATS = {
    ".json": "chip file: readable JSON header + the arrays in the .npz of the same stem (docs/chip-file.md)",
    ".npz": "chip file in one .npz, the header in its header.json entry (docs/chip-file.md)",
    ".nir": "NIR graph (nwave_lightning.deploy.export_nir)",
}
# Keys of a state_dict that only a sign-parametrised network has.
_SIGN_KEY_ENDINGS = (".sign_logits", ".original")


def export_format(path: Any, name: str = "path") -> str:
    """The suffix of ``path`` (lower case) when :data:`EXPORT_FORMATS` knows it and its writer can run.

    Args:
        path: The file to write.
        name: What the caller calls ``path`` in its messages (``nwave export`` says ``output``).

    Raises:
        ValueError: naming ``path`` and listing the known suffixes; for ``.nir`` without the
            ``nir`` package, saying how to install it.

    Example:
        >>> export_format("model.JSON")
        '.json'
        >>> export_format("model.onnx")
        Traceback (most recent call last):
        ValueError: path='model.onnx' has the suffix '.onnx', which names no export format; use one of .json, .npz, .nir: ...
    """
    known = ", ".join(EXPORT_FORMATS)
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(f"{name}={path!r} must be a file path ending in one of {known}, e.g. model.json.")
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in EXPORT_FORMATS:
        raise ValueError(
            f"{name}={os.fspath(path)!r} has the suffix {suffix or '(none)'!r}, which names no export format; use one of "
            f"{known}: " + "; ".join(f"{kind} = {what}" for kind, what in EXPORT_FORMATS.items()) + "."
        )
    if suffix == ".nir" and importlib.util.find_spec("nir") is None:
        raise ValueError(
            f"{name}={os.fspath(path)!r}: writing NIR needs the nir package, which is not installed; "
            'pip install "nwave-lightning[deploy]", or write a chip file (.json / .npz) instead.'
        )
    return suffix


def export(net: nn.Module, path: Union[str, os.PathLike]) -> str:
    """Write a chip-legal ``net`` (e.g. ``to_chip(model.net)``) in the format the suffix of ``path`` names.

    Returns:
        The absolute path written (a ``.json`` chip file has its arrays in the ``.npz`` of the same stem).

    Raises:
        ValueError: an unknown suffix (nothing is read or written).
        ChipViolationError: ``net`` breaks chip constraints (each listed; nothing written).
        ChipGraphError: the data does not flow as a chip chain (nothing written).
    """
    suffix = export_format(path)
    path = os.path.abspath(os.fspath(path))
    if suffix == ".nir":
        export_nir(net, path)
    else:
        export_chip(net, path)
    return path


def load_trained_net(model: nn.Module, ckpt_path: Union[str, os.PathLike]) -> nn.Module:
    """Load a checkpoint's weights into ``model``'s network and return the network.

    Reads Lightning checkpoints (``state_dict`` keys ``net.<...>`` of an
    :class:`~nwave_lightning.training.SNNModule`) and
    :class:`~nwave_lightning.callbacks.BestModelCheckpoint` files (the network's own
    keys), with ``torch.load(weights_only=True)`` and a strict ``load_state_dict``. When the
    keys are sign-parametrised, the parametrisation is installed on the network first
    (its ``alpha`` is not stored and does not matter to ``to_chip``, which takes ``alpha -> inf``).

    Args:
        model: The LightningModule (its ``net`` is loaded) or the network itself (either file
            kind loads into either).
        ckpt_path: Path of the checkpoint file.

    Raises:
        ValueError: a missing or unreadable file, or keys that do not fit the network,
            naming the file and what to change.
        CheckpointCorruptError: a truncated or damaged file.
    """
    if not isinstance(ckpt_path, (str, os.PathLike)) or not os.path.isfile(ckpt_path):
        shown = os.fspath(ckpt_path) if isinstance(ckpt_path, os.PathLike) else ckpt_path
        raise ValueError(
            f"ckpt_path={shown!r} is not a file; pass a checkpoint of the run, e.g. "
            "runs/<name>/version_<n>/checkpoints/last.ckpt or its best_model.pt"
            + (" (`last` is resolved on the command line only: nwave export --ckpt_path last)." if shown == "last" else ".")
        )
    try:
        payload = load_checkpoint(ckpt_path)
    except CheckpointCorruptError:
        raise
    except Exception as err:  # pickle / torch errors all mean: not a checkpoint this can read
        raise ValueError(f"ckpt_path={os.fspath(ckpt_path)!r} cannot be read as a checkpoint with torch.load(weights_only=True): {err}") from err
    state = payload.get("state_dict") if isinstance(payload, dict) else None
    if not isinstance(state, dict):
        raise ValueError(
            f"ckpt_path={os.fspath(ckpt_path)!r} holds no 'state_dict'; pass a Lightning checkpoint (.ckpt) "
            "or a BestModelCheckpoint file (best_model.pt)."
        )
    net = getattr(model, "net", model)
    # A Lightning checkpoint of an SNNModule holds the network under `net.`; best_model.pt holds its own keys.
    own = {key[len("net.") :]: value for key, value in state.items() if key.startswith("net.")}
    state = own or state
    if any(key.endswith(_SIGN_KEY_ENDINGS) and ".parametrizations." in key for key in state):
        install_sign_parametrization(net)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"the weights in ckpt_path={os.fspath(ckpt_path)!r} do not fit {type(net).__name__}; build the network "
            f"the run was trained with (the same config).\n{err}"
        ) from err
    return net
