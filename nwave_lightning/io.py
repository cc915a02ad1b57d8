"""Files written whole or not at all.

:func:`atomic_write` is the one place the framework writes a file atomically:
checkpoints (``best_model.pt``), HPO reports, tune configs, chip files and NIR
graphs all go through it, so a reader (TensorBoard, a resumed run, the chip
toolchain) never sees half a file, and a failed write leaves nothing behind.

Example:
    >>> import json, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "run", "summary.json")
    >>> def dump(tmp):
    ...     with open(tmp, "w", encoding="utf-8") as handle:
    ...         json.dump({"val_acc": 0.93}, handle)
    >>> atomic_write(path, dump) == path
    True
    >>> with open(path) as handle:
    ...     json.load(handle)
    {'val_acc': 0.93}
"""

from __future__ import annotations

import os
import secrets
from typing import Callable, Union

__all__ = ["atomic_write"]

PathLike = Union[str, "os.PathLike[str]"]


def atomic_write(path: PathLike, write_fn: Callable[[str], object]) -> str:
    """Write ``path`` through ``write_fn(tmp_path)``, then rename the result over ``path``.

    ``write_fn`` receives the path of a temporary file in the same folder (so the
    final rename is atomic on POSIX and Windows) and must write the whole file
    there. On success the temporary file replaces ``path``; if ``write_fn`` or the
    rename raises, the temporary file is removed and ``path`` keeps its previous
    content (or stays absent). Missing parent folders are created.

    The temporary name is ``.<stem>.tmp-<pid>-<random><suffix>``: hidden, unique
    per writer, and ending in the target's suffix, for writers that pick the
    format from it (``numpy.save``, ``savefig``). It is created by ``write_fn``
    itself, so the file gets the usual permissions of a new file.

    Args:
        path: Destination file.
        write_fn: Callable writing the complete file at the path it is given.

    Returns:
        ``path`` as a string.

    Raises:
        Whatever ``write_fn`` or the rename raise (after the clean-up).

    Example:
        >>> import os, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> def broken(tmp):
        ...     with open(tmp, "w") as handle:
        ...         handle.write("half a fi")
        ...         raise OSError("disk full")
        >>> atomic_write(os.path.join(folder, "x.txt"), broken)
        Traceback (most recent call last):
        OSError: disk full
        >>> os.listdir(folder)
        []
    """
    path = os.fspath(path)
    if not callable(write_fn):
        raise ValueError(f"atomic_write: write_fn={write_fn!r} must be a callable taking the temporary file's path.")
    if not os.path.basename(path) or os.path.isdir(path):
        raise ValueError(f"atomic_write: path={path!r} names a folder; pass a file path.")
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    stem, suffix = os.path.splitext(name)
    tmp = os.path.join(directory, f".{stem}.tmp-{os.getpid()}-{secrets.token_hex(4)}{suffix}")
    try:
        write_fn(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)
    return path
