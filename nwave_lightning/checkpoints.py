"""Reading checkpoints safely: damaged files fail loudly, ``last`` means the newest complete one.

Every place the framework reads a checkpoint (``nwave fit/validate/test/export
--ckpt_path``, ``SNNModule.load_from_checkpoint``, the export helpers) goes
through :func:`load_checkpoint`. ``torch.save`` writes a zip archive with a
CRC-32 per entry; the zip is verified before it is unpickled, because PyTorch's
reader does not check the CRCs: a file with flipped bytes inside a tensor
otherwise loads with NaN or garbage weights and no error. A truncated,
zero-byte or garbled file raises :class:`CheckpointCorruptError` naming the
file and what is wrong with it.

:func:`newest_checkpoint` is what ``--ckpt_path last`` resolves to: among the
checkpoints of a run, the one that loads and has trained the most steps (a
kill between Lightning's ``epoch=N.ckpt`` and ``last.ckpt`` writes leaves
``last.ckpt`` one epoch behind; an interrupted run's ``last.ckpt`` is ahead of
every epoch file).

Example:
    >>> import os, tempfile, torch
    >>> folder = tempfile.mkdtemp()
    >>> path = os.path.join(folder, "last.ckpt")
    >>> torch.save({"state_dict": {"w": torch.ones(2)}, "global_step": 4, "epoch": 1}, path)
    >>> load_checkpoint(path)["global_step"]
    4
    >>> with open(path, "r+b") as handle:
    ...     _ = handle.truncate(100)
    >>> load_checkpoint(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    nwave_lightning.checkpoints.CheckpointCorruptError: checkpoint .../last.ckpt is truncated or corrupt (...)...
"""

from __future__ import annotations

import glob
import os
import zipfile
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import torch

__all__ = ["CheckpointCorruptError", "CheckpointInfo", "checkpoint_problem", "load_checkpoint", "newest_checkpoint", "verify_checkpoint"]

PathLike = Union[str, "os.PathLike[str]"]


class CheckpointCorruptError(ValueError):
    """A checkpoint file that is truncated, empty or garbled; ``reason`` says how."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


def checkpoint_problem(path: PathLike) -> Optional[str]:
    """What is wrong with the file at ``path`` as a ``torch.save`` archive, or ``None`` if it is intact.

    Reads the whole file once (the CRC-32 of every entry is checked).

    Example:
        >>> import os, tempfile
        >>> empty = os.path.join(tempfile.mkdtemp(), "empty.ckpt")
        >>> open(empty, "wb").close()
        >>> checkpoint_problem(empty)
        'the file is empty (0 bytes)'
    """
    path = os.fspath(path)
    size = os.path.getsize(path)
    if size == 0:
        return "the file is empty (0 bytes)"
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile as err:
        return f"not a complete torch.save archive ({size} bytes; {err}: cut short, or not a checkpoint)"
    except (OSError, EOFError, ValueError) as err:  # an entry running past the end of a cut file
        return f"reading the archive failed ({size} bytes; {type(err).__name__}: {err})"
    if bad is not None:
        return f"entry {bad!r} fails its CRC check: bytes inside the file were changed"
    return None


def _corrupt(path: str, reason: str) -> CheckpointCorruptError:
    return CheckpointCorruptError(
        f"checkpoint {path} is truncated or corrupt ({reason}). It cannot be used: pass another checkpoint "
        "(e.g. an epoch=N.ckpt beside it, or --ckpt_path last, which picks the newest intact one), or retrain.",
        reason,
    )


def verify_checkpoint(path: PathLike) -> None:
    """Raise :class:`CheckpointCorruptError` if the file at ``path`` is damaged; read nothing into memory.

    For readers that load the file themselves (Lightning's ``load_from_checkpoint``).
    Files in PyTorch's pre-1.6 format (a bare pickle, not a zip archive) are left to ``torch.load``.

    Raises:
        FileNotFoundError: no such file.
        CheckpointCorruptError: an empty file, a damaged archive, or neither an archive nor a pickle.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist (or is not a file); check the path.")
    problem = checkpoint_problem(path)
    if problem is None:
        return
    with open(path, "rb") as handle:
        legacy = handle.read(1) == b"\x80" and not zipfile.is_zipfile(path)  # pickle protocol 2+ header
    if not legacy:
        raise _corrupt(path, problem)


def load_checkpoint(path: PathLike, map_location: Any = "cpu", weights_only: bool = True) -> Any:
    """``torch.load`` with a clear error for a missing, truncated, empty or garbled file.

    Args:
        path: The checkpoint file.
        map_location: As for ``torch.load`` (default: CPU).
        weights_only: As for ``torch.load``; ``True`` (tensors and plain data only) by default.

    Raises:
        FileNotFoundError: no such file.
        CheckpointCorruptError: the file is damaged (the message names it and says how).
    """
    path = os.fspath(path)
    verify_checkpoint(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as err:
        problem = checkpoint_problem(path)
        if problem is not None:  # looked like a pre-1.6 pickle, but torch cannot read it either
            raise _corrupt(path, problem) from err
        raise


@dataclass(frozen=True)
class CheckpointInfo:
    """Where a run's checkpoint is and how far it trained."""

    path: str
    epoch: int
    global_step: int

    def describe(self) -> str:
        """``<path> (epoch E, step S)`` with the 1-based epoch the checkpoint was in."""
        return f"{self.path} (epoch {self.epoch + 1}, step {self.global_step})"


def newest_checkpoint(folders: Sequence[PathLike]) -> tuple[Optional[CheckpointInfo], list[str]]:
    """The intact ``*.ckpt`` in ``folders`` that trained the most steps, and the damaged ones skipped.

    Ties (same step) go to the most recently written file. Hidden files (the
    temporary files of an interrupted atomic write) are ignored.

    Returns:
        ``(info or None, ["<path>: <problem>", ...])``.

    Example:
        >>> import os, tempfile, torch
        >>> folder = tempfile.mkdtemp()
        >>> torch.save({"state_dict": {}, "epoch": 2, "global_step": 30}, os.path.join(folder, "epoch=2-step=30.ckpt"))
        >>> torch.save({"state_dict": {}, "epoch": 1, "global_step": 20}, os.path.join(folder, "last.ckpt"))
        >>> info, damaged = newest_checkpoint([folder])
        >>> os.path.basename(info.path), info.global_step, damaged
        ('epoch=2-step=30.ckpt', 30, [])
    """
    best: Optional[tuple[tuple[int, int, float], CheckpointInfo]] = None
    damaged: list[str] = []
    for folder in folders:
        for path in sorted(glob.glob(os.path.join(os.fspath(folder), "*.ckpt"))):
            if not os.path.isfile(path):
                continue
            try:
                payload = load_checkpoint(path)
            except CheckpointCorruptError as err:
                damaged.append(f"{path}: {err.reason}")
                continue
            if not isinstance(payload, dict) or "state_dict" not in payload:
                continue
            info = CheckpointInfo(os.path.abspath(path), int(payload.get("epoch", 0)), int(payload.get("global_step", 0)))
            key = (info.global_step, info.epoch, os.path.getmtime(path))
            if best is None or key > best[0]:
                best = (key, info)
    return (best[1] if best else None), damaged
