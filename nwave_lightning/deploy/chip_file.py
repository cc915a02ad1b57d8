"""The chip file: a chip-legal network, layer by layer, as the H1 cores store it.

:func:`export_chip` writes it, :func:`load_chip` rebuilds a runnable
:class:`~nwave_lightning.deploy.ChipNet` from it (the same spikes as the
exported network, bit for bit). The full description, with an example, is
``docs/chip-file.md``; in short:

Layout (chosen by the suffix of the path):

* ``model.json`` + ``model.npz``: a readable JSON header, and next to it an
  ``.npz`` of the same stem holding the arrays;
* ``model.npz``: one ``.npz`` whose ``header.json`` entry holds the same JSON,
  beside the arrays.

The header (format ``"nwave-chip"``, version :data:`CHIP_FILE_VERSION`):

* ``format``, ``version``: what the file is; a reader refuses other versions.
* ``chip``: every :class:`~nwave_lightning.hardware.ChipSpec` field (ranges as
  ``[low, high]``, times in seconds, ``null`` for "none").
* ``dt`` (seconds), ``in_features`` (input channels), ``frontend`` (whether the
  chip's analog frontend encodes the input).
* ``layers``: in the order the data flows, readout last; each with ``index``,
  ``source`` (synapse and layer names in the exported network), ``topology``
  (``"FF"``/``"RC"``), ``n_in``, ``n_out``, ``threshold``, and for each array
  (``weight``, ``weight_signs``, ``taus``, ``recurrent_weights``,
  ``recurrent_signs``; the recurrent ones ``null`` for ``FF``) its ``npz`` key,
  ``shape`` and ``dtype``.
* ``arrays_sha256``: SHA-256 of all array bytes (little-endian, C order, in
  header order), so a header never loads with another export's arrays.

Arrays: ``weight (n_in, n_out)`` signed, inside ``chip.weight_range`` (row
``i``: input ``i``'s fan-out); ``weight_signs (ceil(n_in / sign_block),)``
int8 in {-1, +1}, the sign of each row block; ``taus (n_out,)`` membrane time
constants in seconds; for RC layers ``recurrent_weights (n_out, n_out)`` and
``recurrent_signs (ceil(n_out / sign_block),)``.

Example:
    >>> import os, tempfile, torch
    >>> from nwave_lightning.deploy import to_chip
    >>> from nwave_lightning.models import H1Classifier
    >>> net = to_chip(H1Classifier(in_ch=4, num_classes=2, neurons_per_class=2, hidden=[6], topology="RC"))
    >>> path = export_chip(net, os.path.join(tempfile.mkdtemp(), "model.json"))
    >>> sorted(os.listdir(os.path.dirname(path)))
    ['model.json', 'model.npz']
    >>> chip_net = load_chip(path)
    >>> x = (torch.rand(2, 20, 4) < 0.3).float()
    >>> all(torch.equal(a, b) for a, b in zip(net(x)[0], chip_net(x)[0]))
    True
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import zipfile
from typing import Any, NamedTuple, Optional, Union

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..hardware import ChipSpec, validate_taus
from ..io import atomic_write
from ..layers.sign import block_signs
from .chip import check_chip, require_chip
from .graph import ChipGraph, ChipGraphError, ChipNet, LayerSpec, chip_graph

__all__ = ["CHIP_FILE_FORMAT", "CHIP_FILE_SUFFIXES", "CHIP_FILE_VERSION", "ChipFileError", "export_chip", "load_chip"]

#: Name in the ``format`` field of every chip file.
CHIP_FILE_FORMAT = "nwave-chip"
#: The format version :func:`export_chip` writes and the only one :func:`load_chip` reads.
CHIP_FILE_VERSION = 1
#: Path suffixes of the two layouts: a JSON header with a sibling ``.npz``, or one ``.npz``.
CHIP_FILE_SUFFIXES = (".json", ".npz")
#: Entry of a single-file ``.npz`` chip file that holds the header.
HEADER_ENTRY = "header.json"
# Per-layer arrays in header (and checksum) order; the recurrent pair only for RC layers.
_ARRAYS = ("weight", "weight_signs", "taus", "recurrent_weights", "recurrent_signs")
_RECURRENT = ("recurrent_weights", "recurrent_signs")
_UNITS = {
    "dt": "s",
    "taus": "s",
    "chip.tau_syn": "s",
    "chip.tau_range": "s",
    "weight": "chip weight units (dimensionless), inside chip.weight_range",
    "recurrent_weights": "chip weight units (dimensionless), inside chip.weight_range",
    "weight_signs": "+1 / -1 per block of chip.sign_block consecutive rows of weight",
    "recurrent_signs": "+1 / -1 per block of chip.sign_block consecutive rows of recurrent_weights",
    "threshold": "membrane units: a neuron spikes when its membrane V reaches the threshold",
}
_ABOUT = (
    "NWAVE H1 chip file: a chip-legal spiking network, layer by layer (readout last). Arrays live in the .npz "
    "of the same stem (model.json -> model.npz), or, for a single-file model.npz, beside its header.json entry. "
    "Format description: nwave-lightning docs/chip-file.md."
)

PathLike = Union[str, "os.PathLike[str]"]


class ChipFileError(ValueError):
    """A chip file that cannot be read or written; the message names the file and the layer.

    Attributes:
        violations: For a file whose network the chip cannot run, what
            :func:`~nwave_lightning.deploy.check_chip` found; else empty.
    """

    def __init__(self, message: str, violations: Optional[list] = None) -> None:
        super().__init__(message)
        self.violations = list(violations or [])


# -- writing ------------------------------------------------------------------
def export_chip(net: nn.Module, path: PathLike) -> str:
    """Write the chip file of a chip-legal network; refuse anything the chip cannot run.

    ``net`` must pass :func:`~nwave_lightning.deploy.check_chip` (export
    ``to_chip(net)`` to apply the sign and range constraints) and be a chain
    ``frontend -> (synapse -> layer) x L`` (:func:`~nwave_lightning.deploy.chip_graph`).
    The files are written atomically: on any error nothing new is left behind.

    Args:
        net: The network to export, e.g. ``to_chip(model.net)``.
        path: ``<name>.json`` (JSON header + sibling ``<name>.npz`` of arrays) or
            ``<name>.npz`` (one file, the header in its ``header.json`` entry).
            Missing folders are created; existing files are replaced.

    Returns:
        ``path`` as a string (for the ``.json`` layout the arrays are ``<name>.npz`` beside it).

    Raises:
        ChipFileError: an unknown suffix.
        ChipViolationError: ``net`` breaks chip constraints (``violations`` lists each).
        ChipGraphError: the data does not flow as a chip chain.

    Example:
        >>> import os, tempfile
        >>> from nwave_lightning.deploy import to_chip
        >>> from nwave_lightning.models import PatternGenerator
        >>> path = export_chip(to_chip(PatternGenerator()), os.path.join(tempfile.mkdtemp(), "gen.npz"))
        >>> with zipfile.ZipFile(path) as archive:
        ...     json.loads(archive.read("header.json"))["layers"][0]["topology"]
        'RC'
    """
    path = os.fspath(path)
    layout = _layout(path, "export_chip")
    if not isinstance(net, nn.Module):
        raise ValueError(f"export_chip: net must be a torch.nn.Module (e.g. to_chip(model.net)), got {type(net).__name__}.")
    require_chip(net, f"export_chip({path!r})")
    graph = chip_graph(net)
    header, arrays = _encode(graph)
    text = _dumps(header) + "\n"
    if layout == ".npz":
        atomic_write(path, lambda tmp: _write_npz(tmp, arrays, text))
        return path
    arrays_path = _sibling(path)
    written = []

    def write_header(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        # The arrays go first: the header, renamed last, only ever names arrays already in place.
        atomic_write(arrays_path, lambda tmp_npz: _write_npz(tmp_npz, arrays, None))
        written.append(arrays_path)

    try:
        atomic_write(path, write_header)
    except BaseException:
        for leftover in written:  # the header's rename failed: do not leave its arrays alone
            if os.path.lexists(leftover):
                os.remove(leftover)
        raise
    return path


def _encode(graph: ChipGraph) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    chip = graph.chip
    arrays: dict[str, np.ndarray] = {}
    layers = []
    for index, spec in enumerate(graph.layers):
        values = {
            "weight": spec.weight,
            "weight_signs": _signs(spec.weight, chip.sign_block),
            "taus": spec.taus,
            "recurrent_weights": spec.recurrent_weights,
            "recurrent_signs": None if spec.recurrent_weights is None else _signs(spec.recurrent_weights, chip.sign_block),
        }
        entry: dict[str, Any] = {
            "index": index,
            "source": {"synapse": spec.names[0], "layer": spec.names[1]},
            "topology": spec.topology,
            "n_in": spec.n_in,
            "n_out": spec.n_out,
            "threshold": float(spec.threshold),
        }
        for name in _ARRAYS:
            value = values[name]
            if value is None:
                entry[name] = None
                continue
            array = _little_endian(value.detach().cpu().numpy())
            key = f"layer{index}.{name}"
            arrays[key] = array
            entry[name] = {"npz": key, "shape": list(array.shape), "dtype": array.dtype.name}
        layers.append(entry)
    header = {
        "format": CHIP_FILE_FORMAT,
        "version": CHIP_FILE_VERSION,
        "about": _ABOUT,
        "producer": f"nwave_lightning {__version__}",
        "units": _UNITS,
        "chip": _chip_fields(chip),
        "dt": float(graph.dt),
        "in_features": int(graph.in_features),
        "frontend": bool(graph.frontend),
        "frontend_source": graph.frontend_name or None,
        "arrays_sha256": _checksum(arrays[key] for key in arrays),
        "layers": layers,
    }
    return header, arrays


def _dumps(value: Any, indent: str = "") -> str:
    """JSON with one field per line, but lists of numbers (shapes, ranges) kept on one line."""
    inner = indent + "  "
    if isinstance(value, dict) and value:
        fields = ",\n".join(f"{inner}{json.dumps(key)}: {_dumps(item, inner)}" for key, item in value.items())
        return f"{{\n{fields}\n{indent}}}"
    if isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
        items = ",\n".join(f"{inner}{_dumps(item, inner)}" for item in value)
        return f"[\n{items}\n{indent}]"
    return json.dumps(value, allow_nan=False)


def _signs(weight: torch.Tensor, sign_block: int) -> torch.Tensor:
    # One sign per row block, as check_chip defines it (a zero block sum counts as +1).
    return block_signs(weight.detach().cpu(), sign_block).squeeze(1).to(torch.int8)


def _little_endian(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array.astype(array.dtype.newbyteorder("<"), copy=False))


def _checksum(arrays) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(_little_endian(array).tobytes(order="C"))
    return digest.hexdigest()


def _chip_fields(chip: ChipSpec) -> dict[str, Any]:
    return {f.name: list(v) if isinstance(v := getattr(chip, f.name), tuple) else v for f in dataclasses.fields(ChipSpec)}


def _write_npz(target: str, arrays: dict[str, np.ndarray], header: Optional[str]) -> None:
    # An .npz is a zip of .npy members; written by hand so that the header can be a plain
    # `header.json` entry (numpy.savez would name every member `<key>.npy`).
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        if header is not None:
            archive.writestr(HEADER_ENTRY, header)
        for key, array in arrays.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


# -- reading ------------------------------------------------------------------
def load_chip(path: PathLike) -> ChipNet:
    """Rebuild the runnable network of a chip file written by :func:`export_chip`.

    Every part is checked before use: the format name and version, the header's
    fields and their consistency (widths chain from layer to layer, declared
    shapes fit the widths), each array's presence, shape and dtype, the arrays'
    checksum, the weights against their block signs, and finally
    :func:`~nwave_lightning.deploy.check_chip` on the rebuilt network.

    Args:
        path: A ``.json`` chip file (its arrays in the ``.npz`` of the same stem)
            or a single-file ``.npz`` chip file.

    Returns:
        A :class:`~nwave_lightning.deploy.ChipNet`: ``net(x (B, T, in_features))``
        gives ``(spikes_list, membranes_list)``, readout last.

    Raises:
        ChipFileError: naming the file and, where one is at fault, the layer: another
            format version, a missing or unreadable file or arrays file, a header field
            missing or of the wrong type, arrays whose shape or dtype disagree with the
            header, arrays of another export, or a network the chip cannot run
            (``violations`` then lists what :func:`check_chip` found).

    Example:
        >>> import os, tempfile
        >>> from nwave_lightning.deploy import to_chip
        >>> from nwave_lightning.models import H1Classifier
        >>> path = os.path.join(tempfile.mkdtemp(), "clf.npz")
        >>> _ = export_chip(to_chip(H1Classifier(in_ch=3, num_classes=2, hidden=[5], chip="H1v1")), path)
        >>> net = load_chip(path)
        >>> net.chip.name, [lif.n_neurons for lif in net.lifs], net.frontend is not None
        ('H1v1', [5, 2], True)
    """
    path = os.fspath(path)
    layout = _layout(path, "load_chip")
    if not os.path.isfile(path):
        raise ChipFileError(f"load_chip: chip file {path!r} does not exist (or is not a file).")
    if layout == ".json":
        arrays_path = _sibling(path)
        with open(path, "rb") as handle:
            header = _parse_header(handle.read(), path)
        _check_format(header, path)
        if not os.path.isfile(arrays_path):
            raise ChipFileError(
                f"chip file {path!r}: its arrays file {arrays_path!r} is missing. export_chip writes the .json header "
                "and the .npz of the same stem together: copy or move both."
            )
    else:
        arrays_path = path
        with _open_zip(path, path) as archive:
            if HEADER_ENTRY not in archive.namelist():
                raise ChipFileError(
                    f"chip file {path!r} has no {HEADER_ENTRY!r} entry, so it is not a single-file chip file. If it holds "
                    f"the arrays of {_sibling(path, '.json')!r}, load that .json file instead."
                )
            header = _parse_header(_read_member(archive, HEADER_ENTRY, path), path)
        _check_format(header, path)
    graph, declared = _decode_header(header, path)
    arrays = _read_arrays(arrays_path, declared, path)
    expected = header.get("arrays_sha256")
    if not isinstance(expected, str):
        raise ChipFileError(f"chip file {path!r}: header field 'arrays_sha256' must be a hex string, got {expected!r}.")
    found = _checksum(arrays[(item.layer, item.name)] for item in declared)
    if found != expected.lower():
        raise ChipFileError(
            f"chip file {path!r}: the arrays in {arrays_path!r} are not the ones this header was written with "
            f"(sha256 {found[:12]}... instead of {expected[:12]}...): the arrays file was changed or comes from another "
            "export. Export the network again."
        )
    return _rebuild(graph, arrays, path)


# What reads or writes a NIR graph instead, for a caller handed a `.nir` path.
_NIR_INSTEAD = {
    "load_chip": "a .nir file is a NIR graph: read it with nwave_lightning.deploy.import_nir(path)",
    "export_chip": "for a NIR graph use nwave_lightning.deploy.export_nir(net, path)",
}


def _layout(path: str, caller: str) -> str:
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in CHIP_FILE_SUFFIXES:
        nir = f"; {_NIR_INSTEAD[caller]}" if suffix == ".nir" else ""
        raise ChipFileError(
            f"{caller}: path={path!r} has the suffix {suffix or '(none)'!r}; a chip file is "
            f"{' or '.join(repr(s) for s in CHIP_FILE_SUFFIXES)} ('.json': readable header + sibling .npz of arrays, "
            f"'.npz': one file){nir}."
        )
    return suffix


def _sibling(path: str, suffix: str = ".npz") -> str:
    return os.path.splitext(path)[0] + suffix


def _open_zip(arrays_path: str, path: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(arrays_path)
    except (zipfile.BadZipFile, OSError) as err:
        raise ChipFileError(
            f"chip file {path!r}: {arrays_path!r} is not a readable .npz (zip) file ({err}); it is damaged or not "
            "from export_chip. Export the network again."
        ) from err


def _read_member(archive: zipfile.ZipFile, name: str, path: str) -> bytes:
    try:
        return archive.read(name)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:  # zip CRC errors, truncated members
        raise ChipFileError(f"chip file {path!r}: entry {name!r} of {archive.filename!r} is damaged ({err}).") from err


def _parse_header(raw: bytes, path: str) -> dict[str, Any]:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ChipFileError(f"chip file {path!r}: the header is not valid UTF-8 JSON ({err}).") from err
    if not isinstance(header, dict):
        raise ChipFileError(f"chip file {path!r}: the header must be a JSON object, got {type(header).__name__}.")
    return header


def _check_format(header: dict[str, Any], path: str) -> None:
    name, version = header.get("format"), header.get("version")
    if name != CHIP_FILE_FORMAT:
        raise ChipFileError(f"chip file {path!r}: format={name!r}, expected {CHIP_FILE_FORMAT!r}; this is not an nwave chip file.")
    if version != CHIP_FILE_VERSION:
        raise ChipFileError(
            f"chip file {path!r} has format version {version!r}; this nwave_lightning ({__version__}) reads version "
            f"{CHIP_FILE_VERSION} only. Export the network again with this version, or load the file with the "
            "nwave_lightning that wrote it."
        )


def _field(obj: dict[str, Any], key: str, kinds, where: str, path: str):
    if key not in obj:
        raise ChipFileError(f"chip file {path!r}: {where}field {key!r} is missing.")
    value = obj[key]
    numeric = kinds in (int, float) or kinds == (int, float)
    if isinstance(value, bool) and numeric or not isinstance(value, kinds):
        wanted = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "an object", list: "a list"}
        names = kinds if isinstance(kinds, tuple) else (kinds,)
        raise ChipFileError(
            f"chip file {path!r}: {where}field {key!r} must be {' or '.join(wanted.get(k, k.__name__) for k in names)}, "
            f"got {value!r}."
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ChipFileError(f"chip file {path!r}: {where}field {key!r} must be finite, got {value!r}.")
    return value


def _source(entry: Any, role: str) -> str:
    source = entry.get("source") if isinstance(entry, dict) else None
    name = source.get(role) if isinstance(source, dict) else None
    return name if isinstance(name, str) else ""


def _layer_name(entry: Any, index: int) -> str:
    name = _source(entry, "layer")
    return f"layer {index} ({name!r})" if name else f"layer {index}"


class _Declared(NamedTuple):
    """One array as the header declares it."""

    layer: int
    name: str  # weight, weight_signs, taus, recurrent_weights, recurrent_signs
    key: str  # its npz key
    shape: tuple[int, ...]
    dtype: str
    where: str  # "layer <i> ('<name>')", for messages


def _decode_chip(fields: dict[str, Any], path: str) -> ChipSpec:
    expected = [f.name for f in dataclasses.fields(ChipSpec)]
    missing = [name for name in expected if name not in fields]
    extra = [name for name in fields if name not in expected]
    if missing or extra:
        raise ChipFileError(
            f"chip file {path!r}: 'chip' must hold exactly the ChipSpec fields {expected}; missing {missing}, unknown {extra}."
        )
    sign_block = fields["sign_block"]
    if isinstance(sign_block, bool) or not isinstance(sign_block, int):
        raise ChipFileError(f"chip file {path!r}: chip field 'sign_block' must be an integer number of rows, got {sign_block!r}.")
    values = {name: tuple(value) if isinstance(value, list) else value for name, value in fields.items()}
    try:
        return ChipSpec(**values)
    except (TypeError, ValueError) as err:
        raise ChipFileError(f"chip file {path!r}: 'chip' does not describe a valid chip: {err}") from err


def _decode_header(header: dict[str, Any], path: str) -> tuple[ChipGraph, list[_Declared]]:
    """The graph (arrays still missing) and what the header declares of each array, in header order."""
    chip = _decode_chip(_field(header, "chip", dict, "", path), path)
    dt = float(_field(header, "dt", (int, float), "", path))
    if dt <= 0:
        raise ChipFileError(f"chip file {path!r}: dt={dt} must be a positive number of seconds.")
    in_features = _field(header, "in_features", int, "", path)
    if in_features < 1:
        raise ChipFileError(f"chip file {path!r}: in_features={in_features} must be a positive number of input channels.")
    frontend = _field(header, "frontend", bool, "", path)
    entries = _field(header, "layers", list, "", path)
    if not entries:
        raise ChipFileError(f"chip file {path!r}: 'layers' is empty; a chip file holds at least one layer.")
    frontend_name = header.get("frontend_source") or ("frontend" if frontend else "")
    graph = ChipGraph(chip=chip, dt=dt, in_features=in_features, frontend=frontend, frontend_name=str(frontend_name))
    declared: list[_Declared] = []
    fan_in = in_features
    for index, entry in enumerate(entries):
        where = f"{_layer_name(entry, index)}: "
        if not isinstance(entry, dict):
            raise ChipFileError(f"chip file {path!r}: {where}each entry of 'layers' must be an object, got {entry!r}.")
        if _field(entry, "index", int, where, path) != index:
            raise ChipFileError(f"chip file {path!r}: {where}index={entry['index']} but it is entry {index} of 'layers'.")
        topology = _field(entry, "topology", str, where, path)
        if topology not in ("FF", "RC"):
            raise ChipFileError(f"chip file {path!r}: {where}topology={topology!r} must be 'FF' or 'RC'.")
        n_in = _field(entry, "n_in", int, where, path)
        n_out = _field(entry, "n_out", int, where, path)
        threshold = float(_field(entry, "threshold", (int, float), where, path))
        if n_in != fan_in or n_out < 1:
            raise ChipFileError(
                f"chip file {path!r}: {where}n_in={n_in}, n_out={n_out}, but the stage before gives {fan_in} "
                f"{'input channels' if index == 0 else 'spike trains'}; widths must chain and be positive."
            )
        blocks = lambda rows: -(-rows // chip.sign_block)  # noqa: E731 - ceil division, one sign per row block
        shapes = {
            "weight": (n_in, n_out),
            "weight_signs": (blocks(n_in),),
            "taus": (n_out,),
            "recurrent_weights": (n_out, n_out),
            "recurrent_signs": (blocks(n_out),),
        }
        for name in _ARRAYS:
            wanted = name not in _RECURRENT or topology == "RC"
            spec = entry.get(name)
            if not wanted:
                if spec is not None:
                    raise ChipFileError(f"chip file {path!r}: {where}an FF layer has no {name!r}; it must be null.")
                continue
            if not isinstance(spec, dict):
                raise ChipFileError(f"chip file {path!r}: {where}{name!r} must be an object with 'npz', 'shape', 'dtype', got {spec!r}.")
            key = _field(spec, "npz", str, f"{where}{name}: ", path)
            shape = tuple(_field(spec, "shape", list, f"{where}{name}: ", path))
            dtype = _field(spec, "dtype", str, f"{where}{name}: ", path)
            if shape != shapes[name]:
                raise ChipFileError(
                    f"chip file {path!r}: {where}the header gives {name!r} the shape {list(shape)}, but n_in={n_in}, "
                    f"n_out={n_out} and sign_block={chip.sign_block} make it {list(shapes[name])}."
                )
            kind = "i" if name.endswith("signs") else "f"
            if not _dtype_kind(dtype) == kind:
                raise ChipFileError(
                    f"chip file {path!r}: {where}{name!r} has dtype {dtype!r}; it must be "
                    f"{'a signed integer type (int8)' if kind == 'i' else 'a float type (float32)'}."
                )
            declared.append(_Declared(index, name, key, shape, dtype, where[:-2]))
        graph.layers.append(
            LayerSpec(
                weight=torch.empty(0),  # filled from the arrays
                taus=torch.empty(0),
                topology=topology,
                recurrent_weights=None,
                threshold=threshold,
                names=(_source(entry, "synapse"), _source(entry, "layer")),
            )
        )
        fan_in = n_out
    keys = [item.key for item in declared]
    if len(set(keys)) != len(keys):
        raise ChipFileError(f"chip file {path!r}: two arrays share one npz key ({keys}); every array needs its own.")
    return graph, declared


def _dtype_kind(name: str) -> str:
    try:
        return np.dtype(name).kind
    except TypeError:
        return "?"


def _read_arrays(arrays_path: str, declared: list[_Declared], path: str) -> dict[tuple[int, str], np.ndarray]:
    arrays = {}
    with _open_zip(arrays_path, path) as archive:
        members = set(archive.namelist())
        for layer_index, name, key, shape, dtype, layer in declared:
            member = f"{key}.npy"
            if member not in members:
                raise ChipFileError(
                    f"chip file {path!r}: {layer}: array {key!r} is missing from {arrays_path!r}; the arrays file is "
                    "incomplete or comes from another export."
                )
            try:
                with archive.open(member) as handle:
                    array = np.lib.format.read_array(handle, allow_pickle=False)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
                raise ChipFileError(f"chip file {path!r}: {layer}: array {key!r} in {arrays_path!r} is damaged ({err}).") from err
            if array.shape != shape or array.dtype.name != np.dtype(dtype).name:
                raise ChipFileError(
                    f"chip file {path!r}: {layer}: array {key!r} in {arrays_path!r} has shape {list(array.shape)} and dtype "
                    f"{array.dtype.name}, but the header declares shape {list(shape)} and dtype {dtype}; the header and "
                    "the arrays do not belong together."
                )
            arrays[(layer_index, name)] = array
    return arrays


def _rebuild(graph: ChipGraph, arrays: dict[tuple[int, str], np.ndarray], path: str) -> ChipNet:
    chip = graph.chip
    for index, spec in enumerate(graph.layers):
        where = f"chip file {path!r}, layer {index} ({spec.names[1]!r})"
        values = {name: arrays.get((index, name)) for name in _ARRAYS}
        spec.weight = torch.from_numpy(values["weight"].copy())
        for matrix, signs in (("weight", "weight_signs"), ("recurrent_weights", "recurrent_signs")):
            if values[matrix] is None:
                continue
            _check_signs(torch.from_numpy(values[matrix].copy()), torch.from_numpy(values[signs].astype(np.int64)), chip.sign_block, matrix, where)
        if spec.topology == "RC":
            spec.recurrent_weights = torch.from_numpy(values["recurrent_weights"].copy())
        try:
            spec.taus = validate_taus(torch.from_numpy(values["taus"].copy()), graph.dt, spec.n_out, chip, where)
        except ValueError as err:
            raise ChipFileError(str(err)) from err
    try:
        net = ChipNet(graph)
    except (ValueError, ChipGraphError) as err:
        raise ChipFileError(f"chip file {path!r}: the network cannot be rebuilt: {err}") from err
    violations = check_chip(net)
    if violations:
        lines = "\n  ".join(f"{_violation_layer(v.module, graph)}: {v}" for v in violations)
        raise ChipFileError(
            f"chip file {path!r} holds a network the chip cannot run ({len(violations)} violation(s)):\n  {lines}\n"
            "Fix the network and export it again with export_chip(to_chip(net), path).",
            violations,
        )
    return net


def _check_signs(matrix: torch.Tensor, signs: torch.Tensor, sign_block: int, name: str, where: str) -> None:
    if not bool(((signs == 1) | (signs == -1)).all()):
        raise ChipFileError(f"{where}: {name} block signs must all be +1 or -1, got {sorted(set(signs.tolist()))}.")
    rows = torch.arange(matrix.shape[0]) // sign_block
    against = signs[rows].unsqueeze(1).to(matrix.dtype) * matrix < 0  # NaN compares False: check_chip reports it
    if bool(against.any()):
        raise ChipFileError(
            f"{where}: {int(against.sum())} entries of {name} have the opposite sign of their row block's entry in the "
            "file's block signs; on chip a block shares one sign."
        )


def _violation_layer(module: str, graph: ChipGraph) -> str:
    # ChipNet names its blocks frontend / synapses.<i> / lifs.<i>: <i> is the file's layer index.
    parts = module.split(".")
    if len(parts) == 2 and parts[0] in ("synapses", "lifs") and parts[1].isdigit():
        index = int(parts[1])
        return f"layer {index} ({graph.layers[index].names[1]!r})"
    return "frontend" if module == "frontend" else (module or "the network")
