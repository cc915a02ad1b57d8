"""What ``--ckpt_path`` means on the command line, settled before anything is built.

:func:`settle_ckpt_path` runs on the parsed config of ``nwave fit/validate/test/predict/export``:

* ``last`` becomes the newest intact checkpoint of the config's run
  (:func:`~nwave_lightning.checkpoints.newest_checkpoint` over the newest
  ``<save_dir>/<name>/version_<n>/checkpoints`` holding one, or the
  ``ModelCheckpoint`` folder the config names), the logger continues in that
  version folder, and one line says which file was picked; damaged files are
  named and skipped. With no checkpoint at all the run starts afresh and says so.
* a file is verified first: a truncated, empty or garbled one fails with
  "checkpoint <path> is truncated or corrupt (...)", before Lightning reads it.
* LightningCLI applies the checkpoint's model hyper-parameters over the
  command's. Where they differ from an argument typed on the command line
  (``--model.init_args.lr=0.1`` against a checkpoint trained with 0.02) that
  would silently drop what was typed, so it is an error listing every such
  difference; where they differ from the config file's values, the
  checkpoint's win (it holds the trained model) and one line lists them.

Example:
    >>> flat_differences({"lr": 0.02, "net": {"init_args": {"hidden": [32]}}},
    ...                  {"lr": 0.1, "net": {"init_args": {"hidden": [32]}}})
    ['lr: checkpoint 0.02, command 0.1']
"""

from __future__ import annotations

import glob
import os
import sys
from typing import Any, Iterator, Optional, Sequence

from .checkpoints import load_checkpoint, newest_checkpoint

__all__ = ["flat_differences", "leaves", "settle_ckpt_path"]

_INTERNAL_KEYS = ("_instantiator", "_class_path")


def _plain(value: Any) -> Any:
    """Config values (jsonargparse Namespaces, tuples) as plain dicts and lists."""
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` for every leaf of a nested config.

    >>> dict(leaves({"model": {"init_args": {"lr": 0.1}}, "seed_everything": 0}))
    {'model.init_args.lr': 0.1, 'seed_everything': 0}
    """
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix, value


def flat_differences(saved: dict, given: dict) -> list[str]:
    """``"<key>: checkpoint <a>, command <b>"`` for every leaf both hold with different values."""
    ours = dict(leaves(_plain(given)))
    out = []
    for key, value in leaves(_plain({k: v for k, v in saved.items() if k not in _INTERNAL_KEYS})):
        if key in ours and ours[key] != value:
            out.append(f"{key}: checkpoint {value!r}, command {ours[key]!r}")
    return out


def _logger_args(config) -> Optional[Any]:
    logger = (config.get("trainer") or {}).get("logger")
    if not logger or isinstance(logger, (bool, list)) or not hasattr(logger, "get"):
        return None
    return logger.get("init_args")


def _run_folders(config, default_save_dir: str) -> tuple[list[str], Optional[str]]:
    """The checkpoint folders of the config's run, and its logger folder (``None`` without a logger)."""
    folders = []
    for callback in (config.get("trainer") or {}).get("callbacks") or []:
        init_args = callback.get("init_args") if hasattr(callback, "get") else None
        if "ModelCheckpoint" in str(callback.get("class_path", "") if hasattr(callback, "get") else "") and init_args and init_args.get("dirpath"):
            folders.append(os.fspath(init_args["dirpath"]))
    init_args = _logger_args(config)
    if init_args is None:
        return folders, None
    run = os.path.join(init_args.get("save_dir") or default_save_dir, init_args.get("name") or "")
    version = init_args.get("version")
    if version is not None:
        folders.append(os.path.join(run, f"version_{version}" if isinstance(version, int) else str(version), "checkpoints"))
        return folders, run
    # The newest version folder holding a checkpoint: an older run may have trained more steps.
    numbered = []
    for folder in glob.glob(os.path.join(run, "version_*", "checkpoints")):
        suffix = os.path.basename(os.path.dirname(folder))[len("version_"):]
        if suffix.isdigit() and glob.glob(os.path.join(folder, "*.ckpt")):
            numbered.append((int(suffix), folder))
    if numbered:
        folders.append(max(numbered)[1])
    return folders, run


def _resolve_last(config, subcommand: str, default_save_dir: str) -> None:
    folders, run = _run_folders(config, default_save_dir)
    info, damaged = newest_checkpoint(folders)
    for line in damaged:
        print(f"nwave {subcommand}: skipping a damaged checkpoint: {line}", file=sys.stderr)
    if info is None:
        where = ", ".join(folders) or (os.path.join(run, "version_*", "checkpoints") if run else "(no logger folder)")
        if damaged:
            raise ValueError(
                f"nwave {subcommand}: --ckpt_path last found only damaged checkpoints in {where}; pass an intact "
                "one with --ckpt_path <file>, or drop --ckpt_path to start a new run."
            )
        if subcommand != "fit":
            raise ValueError(f"nwave {subcommand}: --ckpt_path last found no checkpoint in {where}; train first (nwave fit) or pass --ckpt_path <file>.")
        print(f"nwave fit: --ckpt_path last found no checkpoint in {where}; starting a new run.", file=sys.stderr)
        config["ckpt_path"] = None
        return
    config["ckpt_path"] = info.path
    init_args = _logger_args(config)
    folder = os.path.basename(os.path.dirname(os.path.dirname(info.path)))
    if init_args is not None and init_args.get("version") is None and folder.startswith("version_"):
        # Keep logging (and checkpointing) into the run being resumed, not a fresh version_<n+1>.
        init_args["version"] = int(folder[len("version_"):]) if folder[len("version_"):].isdigit() else folder
    print(f"nwave {subcommand}: --ckpt_path last -> {info.describe()}, the newest intact checkpoint of the run.", file=sys.stderr)


def _explicit_model_keys(argv: Optional[Sequence[str]]) -> list[str]:
    """Dotted model keys set on the command line (``--model.init_args.lr=0.1`` -> ``lr``), ``init_args`` dropped."""
    keys = []
    for token in argv or []:
        if not isinstance(token, str) or not token.startswith("--model"):
            continue
        name = token[2:].split("=", 1)[0]
        parts = [part for part in name.split(".")[1:] if part != "init_args"]
        keys.append(".".join(parts))  # "" (the whole --model) covers every key
    return keys


def _without_init_args(key: str) -> str:
    return ".".join(part for part in key.split(".") if part != "init_args")


def settle_ckpt_path(config, subcommand: Optional[str], default_save_dir: str = "runs", argv: Optional[Sequence[str]] = None) -> None:
    """Resolve ``last``, verify the file, and settle the checkpoint's model hyper-parameters against the command's.

    Where the checkpoint's model hyper-parameters differ from values given on the
    command line (``argv``), that is an error: LightningCLI would silently replace
    them. Where they differ from the config files' values or defaults, the
    checkpoint's take precedence (it holds the model that was trained) and one line says so.

    Args:
        config: The subcommand's parsed config (``cli.config[subcommand]``); changed in place.
        subcommand: ``fit``, ``validate``, ... (``None``: nothing to do).
        default_save_dir: The logger's ``save_dir`` when the config names none.
        argv: The command-line arguments (to tell typed ``--model...`` values from config values).

    Raises:
        CheckpointCorruptError: a damaged checkpoint file.
        ValueError: the checkpoint's model hyper-parameters differ from ``--model...`` arguments.
    """
    if not subcommand or not hasattr(config, "get") or not config.get("ckpt_path"):
        return
    if config.get("ckpt_path") == "last":
        _resolve_last(config, subcommand, default_save_dir)
    path = config.get("ckpt_path")
    if not path or not os.path.isfile(path):
        return  # "best", remote paths, or a missing file: the subcommand says what is wrong with it
    checkpoint = load_checkpoint(path)  # a clear error for a damaged file
    saved = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    model = config.get("model")
    if not saved or model is None:
        return
    given = _plain(model)
    given = given.get("init_args", given) if isinstance(given, dict) else {}
    differences = flat_differences(saved, given)
    if not differences:
        return
    explicit = _explicit_model_keys(argv)
    typed, from_config = [], []
    for line in differences:
        key = _without_init_args(line.split(":", 1)[0])
        hit = any(e == "" or key == e or key.startswith(e + ".") for e in explicit)
        (typed if hit else from_config).append(line)
    if typed:
        raise ValueError(
            f"nwave {subcommand}: --ckpt_path {path} was saved with model hyper-parameters that differ from arguments "
            f"given on this command line, and the checkpoint's would silently win: {'; '.join(typed)}. Drop those "
            "arguments to use the checkpoint's values, or give a checkpoint trained with these."
        )
    print(
        f"nwave {subcommand}: the model hyper-parameters saved in {path} take precedence over the config's: "
        f"{'; '.join(from_config)}.",
        file=sys.stderr,
    )
