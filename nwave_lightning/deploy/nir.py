"""NIR export and import of chip chains (the Neuromorphic Intermediate Representation).

:func:`export_nir` writes the chain the chip runs (:func:`~.graph.chip_graph`) as a
NIR graph other frameworks can load; :func:`import_nir` reads one back as a
:class:`~.graph.ChipNet`. A graph written here carries the chip's own numbers
(raw weights, float32 time constants, the :class:`~nwave_lightning.hardware.ChipSpec`)
in NIR metadata, so reading it back gives the very same network, bit for bit.
Graphs from other tools are read from their NIR parameters when those fit the
H1 model. ``docs/deploy-nir.md`` explains the mapping and what differs.

The mapping, with ``beta = exp(-dt / tau)`` the layer's float32 decay and
``h`` the integration step the graph is written for (``nir_dt``, default ``dt``):

* frontend -> ``IF(r=frontend_gain, v_threshold=1-, v_reset=0)``
* synapse -> ``Linear(weight=efficacy(W, chip).T)``: the current one spike injects
* H1v2 layer -> ``LIF(tau=h / (1 - beta), r=tau / h, v_leak=0, v_threshold=theta-, v_reset=0)``
* H1v1 layer -> ``CubaLIF`` with the same membrane and
  ``tau_syn=h / (1 - alpha)``, ``w_in=tau_syn / h`` (``alpha = exp(-dt / tau_syn)``)
* RC layer -> a sub-graph ``input -> lif <-> w_rec -> output`` (``w_rec`` a ``Linear``)

Forward Euler at step ``h`` turns these ODEs into exactly the chip's update:
``v <- (1 - h / tau) v + (h / tau) r I = beta v + I``. ``x-`` is the largest
float32 below ``x``: NIR fires on ``v > v_threshold``, the chip on ``V >= theta``,
and for float32 membranes the two conditions then agree, ties included.

Example:
    >>> import os, tempfile, torch
    >>> from nwave_lightning.deploy import to_chip
    >>> from nwave_lightning.models import H1Classifier
    >>> net = to_chip(H1Classifier(in_ch=4, num_classes=2, hidden=[6], topology="RC"))
    >>> path = os.path.join(tempfile.mkdtemp(), "net.nir")
    >>> sorted(export_nir(net, path).nodes)
    ['frontend', 'input', 'layer00_dense', 'layer00_lif', 'layer01_dense', 'layer01_lif', 'output']
    >>> x = (torch.rand(2, 10, 4) < 0.3).float()
    >>> torch.equal(import_nir(path)(x)[0][-1], net(x)[0][-1])
    True
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..hardware import H1V1, H1V2, ChipSpec, decay_factor, efficacy
from ..io import atomic_write
from .chip import require_chip
from .graph import ChipGraph, ChipNet, LayerSpec, chip_graph

__all__ = ["FORMAT", "FORMAT_VERSION", "NIRFormatError", "SNNTORCH_DT", "export_nir", "import_nir"]

#: Name of this framework's NIR metadata (``graph.metadata["nwave"]["format"]``).
FORMAT = "nwave-lightning"
#: Version of that metadata layout; :func:`import_nir` reads this version only.
FORMAT_VERSION = 1
#: The integration step snnTorch's ``import_from_nir`` assumes for every graph (seconds).
SNNTORCH_DT = 1e-4

_INSTALL_HINT = 'NIR support needs the nir package: pip install "nwave-lightning[deploy]"'
_SUPPORTED = "Input, IF (frontend), Linear/Affine (synapse), LIF (H1v2 layer), CubaLIF (H1v1 layer), a recurrent sub-graph, Output"

PathLike = Union[str, "os.PathLike[str]"]


class NIRFormatError(ValueError):
    """A NIR graph that does not describe an H1 chip chain, or that this version cannot read."""


def _nir():
    try:
        import nir
    except ImportError as err:
        raise ImportError(_INSTALL_HINT) from err
    return nir


def _below(value: float) -> np.float32:
    """The largest float32 below ``float32(value)``: ``v > _below(x)`` iff ``v >= x`` for float32 ``v``."""
    return np.nextafter(np.float32(value), np.float32(-np.inf))


# ---------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------
def export_nir(net: nn.Module, path: Optional[PathLike] = None, *, nir_dt: Optional[float] = None):
    """Write the chip chain of ``net`` as a NIR graph (and return the graph).

    ``net`` must be chip-legal (:func:`~.chip.check_chip` empty): export ``to_chip(net)``.
    The graph's nodes describe the physics (effective weights, continuous-time
    neurons, see the module docstring); its metadata keep the chip's exact numbers
    for :func:`import_nir`.

    Args:
        net: A module built from H1 blocks whose data flows as
            ``frontend -> (synapse -> layer) x L``.
        path: File to write (``.nir`` by convention), atomically: a temporary file
            in the same folder is renamed over ``path`` once complete, and nothing
            is left on failure. ``None`` only builds the graph.
        nir_dt: Integration step, in seconds, the neurons' time constants are written
            for: forward Euler at this step reproduces the chip's update exactly.
            Default the chip's ``dt`` (``tau`` then stays close to the physical time
            constant). snnTorch's importer always integrates with
            :data:`SNNTORCH_DT`: pass ``nir_dt=SNNTORCH_DT`` for it.

    Returns:
        The ``nir.NIRGraph`` (written to ``path`` when given).

    Raises:
        ChipViolationError: listing every chip constraint ``net`` breaks (nothing is written).
        ChipGraphError: when the data does not flow as a chip chain.
        ImportError: without the ``nir`` package.

    Example:
        >>> import torch
        >>> from nwave_lightning.layers import H1v2Synapse, H1v2Layer
        >>> net = torch.nn.Sequential(H1v2Synapse(3, 2, init=torch.nn.init.ones_), H1v2Layer(2, taus=20e-3, dt=1e-3))
        >>> graph = export_nir(net, nir_dt=1e-3)
        >>> graph.nodes["layer00_dense"].weight.tolist()     # g * W, (out, in)
        [[0.25, 0.25, 0.25], [0.25, 0.25, 0.25]]
        >>> lif = graph.nodes["layer00_lif"]
        >>> round(float(1 - 1e-3 / lif.tau[0]), 6), round(float(torch.exp(torch.tensor(-1 / 20.0))), 6)
        (0.951229, 0.951229)
    """
    nir = _nir()
    require_chip(net, "export_nir")
    graph = chip_graph(net)
    step = graph.dt if nir_dt is None else _positive_step(nir_dt, "export_nir: nir_dt")
    nir_graph = _to_nir(nir, graph, step)
    if path is not None:
        _write_atomically(nir, nir_graph, path)
    return nir_graph


def _positive_step(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what}={value!r} must be a positive number of seconds.")
    return float(value)


def _to_nir(nir, graph: ChipGraph, nir_dt: float):
    """The NIR graph of a chip chain (also what :func:`import_nir` checks files against)."""
    chip = graph.chip
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array([graph.in_features])})}
    edges: list[tuple[str, str]] = []
    previous = "input"
    if graph.frontend:
        n = graph.in_features
        nodes["frontend"] = nir.IF(
            r=np.full(n, chip.frontend_gain, dtype=np.float64),
            v_threshold=np.full(n, _below(1.0), dtype=np.float32),
            v_reset=np.zeros(n, dtype=np.float64),
            metadata={"nwave": {"block": "frontend", "source": graph.frontend_name}},
        )
        edges.append((previous, "frontend"))
        previous = "frontend"
    # Node names sort in chain order (frontend < input < layerNN_dense < layerNN_lif < output):
    # nir.read returns nodes alphabetically, and nirtorch (behind snnTorch's importer) fails
    # on a sub-graph node it meets before that node's input.
    width = max(2, len(str(len(graph.layers) - 1)))
    for index, spec in enumerate(graph.layers):
        dense, neurons = f"layer{index:0{width}d}_dense", f"layer{index:0{width}d}_lif"
        nodes[dense] = _linear(nir, spec.weight, chip, "synapse", spec.names[0])
        neuron = _neuron(nir, spec, graph, nir_dt)
        if spec.topology == "RC":
            n = spec.n_out
            neuron = nir.NIRGraph(
                nodes={
                    "input": nir.Input(input_type={"input": np.array([n])}),
                    "lif": neuron,
                    "w_rec": _linear(nir, spec.recurrent_weights, chip, "recurrent", spec.names[1]),
                    "output": nir.Output(output_type={"output": np.array([n])}),
                },
                edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
                metadata={"nwave": {"block": "rc_layer", "source": spec.names[1]}},
            )
        nodes[neurons] = neuron
        edges += [(previous, dense), (dense, neurons)]
        previous = neurons
    nodes["output"] = nir.Output(output_type={"output": np.array([graph.layers[-1].n_out])})
    edges.append((previous, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"nwave": _graph_metadata(graph, nir_dt)})


def _linear(nir, weight: torch.Tensor, chip: ChipSpec, block: str, source: str):
    raw = weight.detach().to("cpu", torch.float32)
    # The float32 matrix the synapse multiplies spikes with, so consumers see the same currents.
    effective = efficacy(raw, chip).T.contiguous().numpy().copy()
    return nir.Linear(weight=effective, metadata={"nwave": {"block": block, "weight": raw.numpy().copy(), "source": source}})


def _neuron(nir, spec: LayerSpec, graph: ChipGraph, nir_dt: float):
    chip, n = graph.chip, spec.n_out
    taus = spec.taus.detach().to("cpu", torch.float32)
    # The layer's own float32 decay (hardware.decay_factor cast like H1 layers do), so that
    # 1 - nir_dt / tau recovers it to float64 precision and rounds back to it in float32.
    beta = decay_factor(taus, graph.dt).to(torch.float32).double().numpy()
    tau_mem = nir_dt / (1.0 - beta)
    common = dict(
        r=tau_mem / nir_dt,
        v_leak=np.zeros(n, dtype=np.float64),
        v_threshold=np.full(n, _below(spec.threshold), dtype=np.float32),
        v_reset=np.zeros(n, dtype=np.float64),
        metadata={
            "nwave": {"block": "layer", "taus": taus.numpy().copy(), "threshold": float(spec.threshold), "source": spec.names[1]}
        },
    )
    if chip.tau_syn is None:
        return nir.LIF(tau=tau_mem, **common)
    alpha = math.exp(-graph.dt / chip.tau_syn)  # the layer's syn_decay
    tau_syn = np.full(n, nir_dt / (1.0 - alpha), dtype=np.float64)
    return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, w_in=tau_syn / nir_dt, **common)


def _graph_metadata(graph: ChipGraph, nir_dt: float) -> dict:
    chip = {}
    for field in dataclasses.fields(ChipSpec):
        value = getattr(graph.chip, field.name)
        if value is None:
            continue  # HDF5 has no None: an absent optional field reads back as None
        chip[field.name] = np.asarray(value, dtype=np.float64) if isinstance(value, tuple) else value
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "writer": f"nwave-lightning {__version__}",
        "chip_name": graph.chip.name,
        "chip": chip,
        "dt": float(graph.dt),
        "nir_dt": float(nir_dt),
        "in_features": int(graph.in_features),
        "frontend": bool(graph.frontend),
        "n_layers": len(graph.layers),
    }


def _write_atomically(nir, nir_graph, path: PathLike) -> None:
    path = os.fspath(path)
    if not os.path.basename(path) or os.path.isdir(path):
        raise ValueError(f"export_nir: path={path!r} names a folder; pass a file path such as 'net.nir'.")
    # A temporary file beside the target, renamed into place, removed on failure.
    atomic_write(path, lambda tmp: nir.write(tmp, nir_graph))


# ---------------------------------------------------------------------------------------------
# import
# ---------------------------------------------------------------------------------------------
def import_nir(
    source,
    *,
    dt: Optional[float] = None,
    nir_dt: Optional[float] = None,
    chip: Optional[ChipSpec] = None,
    use_metadata: bool = True,
) -> ChipNet:
    """Build a :class:`~.graph.ChipNet` from a NIR file or graph.

    A graph written by :func:`export_nir` is rebuilt from its metadata: the same
    weights, time constants, chip and ``dt``, so the network computes bit for bit
    what the exported one did. The graph's NIR parameters must still be those the
    metadata give (a graph edited elsewhere is refused, see ``use_metadata``).

    Other graphs are read from their NIR parameters, integrated with forward Euler
    at ``nir_dt`` as snnTorch does: a chain ``Input -> [IF] -> (Linear|Affine ->
    LIF|CubaLIF) x L -> Output``, each neuron layer optionally recurrent (a
    sub-graph ``input -> lif <-> Linear -> output`` or a two-node cycle). Per neuron,
    the input scale (``r * nir_dt / tau``, for CubaLIF times ``w_in * nir_dt / tau_syn``)
    and the threshold are folded into the weights, so spikes are kept and membranes
    come out in units of the chip's threshold. The result may still break chip
    constraints (weight range, row-block sign): :func:`~.chip.check_chip` lists them.

    Args:
        source: Path of a NIR file, or a ``nir.NIRGraph``.
        dt: The chip's time step in seconds. Required for a graph without this
            framework's metadata; for one with it, must agree if given.
        nir_dt: The integration step the graph's time constants were written for;
            default ``dt`` (snnTorch writes for :data:`SNNTORCH_DT`).
        chip: Chip constants for a foreign graph; default H1v2 for LIF layers,
            H1v1 for CubaLIF ones. For an own graph, must agree if given.
        use_metadata: ``False`` reads even this framework's graphs from their NIR
            parameters alone (``dt``, ``nir_dt`` and ``chip`` then default to the metadata's).

    Returns:
        The rebuilt network; ``forward(x (B, T, in_features))`` gives ``(spikes_list, membranes_list)``.

    Raises:
        NIRFormatError: naming the node, the missing metadata or the format version
            when the graph cannot be read as an H1 chain.
        ImportError: without the ``nir`` package.

    Example:
        >>> import numpy as np, nir, torch
        >>> lif = nir.LIF(tau=np.full(2, 0.02), r=np.full(2, 20.0), v_leak=np.zeros(2), v_threshold=np.ones(2))
        >>> graph = nir.NIRGraph.from_list(nir.Linear(weight=np.full((2, 3), 0.4)), lif)
        >>> net = import_nir(graph, dt=1e-3)        # a graph from another tool: Euler at 1 ms
        >>> [round(float(b), 6) for b in net.lifs[0].beta]     # 1 - dt / tau
        [0.95, 0.95]
        >>> net.synapses[0].weight[0].tolist()      # H1v2 stores 0.4 / g
        [1.600000023841858, 1.600000023841858]
        >>> from nwave_lightning.deploy import check_chip
        >>> check_chip(net)
        []
        >>> net(torch.ones(1, 3, 3))[0][0][0].tolist()     # 0.4 * 3 = 1.2 >= 1: every step
        [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]
    """
    nir = _nir()
    graph, where = _load(nir, source)
    meta = _own_metadata(graph, where, strict=use_metadata)
    if meta is not None and use_metadata:
        chain = _from_own(nir, graph, meta, where, dt, nir_dt, chip)
    else:
        if meta is not None:
            own = _chip_graph_header(meta, where)
            dt = own.dt if dt is None else dt
            nir_dt = float(_require(meta, "nir_dt", where)) if nir_dt is None else nir_dt
            chip = own.chip if chip is None else chip
        chain = _from_foreign(nir, graph, where, dt, nir_dt, chip)
    return ChipNet(chain)


def _load(nir, source):
    if isinstance(source, nir.NIRGraph):
        return source, "the graph"
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"import_nir: no file at {path!r}.")
        try:
            return nir.read(path), repr(path)
        except Exception as err:  # h5py, nir and numpy raise many kinds; say which file
            raise NIRFormatError(f"import_nir: {path!r} is not a NIR file this nir version reads: {err}") from err
    raise ValueError(f"import_nir: source must be a path or a nir.NIRGraph, got {type(source).__name__}.")


def _own_metadata(graph, where: str, strict: bool) -> Optional[dict]:
    """This framework's metadata of ``graph``; None for a foreign graph (or, unless ``strict``, an unreadable one)."""
    meta = graph.metadata.get("nwave") if isinstance(graph.metadata, dict) else None
    if meta is None:
        return None
    problem = None
    if not isinstance(meta, dict) or _text(meta.get("format")) != FORMAT:
        problem = f"{where} has 'nwave' metadata that is not the {FORMAT} format"
    elif "format_version" not in meta:
        problem = f"{where} has {FORMAT} metadata without a format_version"
    else:
        version = meta["format_version"]
        try:
            same = float(version) == FORMAT_VERSION
        except (TypeError, ValueError):
            same = False
        if not same:
            problem = (
                f"{where} was written in {FORMAT} NIR format version {_text(version)} "
                f"(by {_text(meta.get('writer', 'an unknown writer'))}); this nwave-lightning {__version__} reads "
                f"version {FORMAT_VERSION} only. Use the nwave-lightning that wrote it"
            )
    if problem is None:
        return meta
    if strict:
        raise NIRFormatError(
            f"import_nir: {problem}, or pass use_metadata=False (with dt=) to read the NIR parameters alone."
        )
    return None  # read as a foreign graph: its parameters alone


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value.item())
    return str(value)


def _require(meta: dict, key: str, where: str):
    if key not in meta:
        raise NIRFormatError(f"import_nir: {where} lacks the {FORMAT} metadata {key!r}; was it written by export_nir?")
    return meta[key]


def _chip_from_metadata(fields: Any, where: str) -> ChipSpec:
    if not isinstance(fields, dict):
        raise NIRFormatError(f"import_nir: {where}: the metadata 'chip' must hold the ChipSpec fields.")
    values = {}
    for field in dataclasses.fields(ChipSpec):
        if field.name not in fields:
            if "None" in str(field.type):
                values[field.name] = None
                continue
            if field.default is not dataclasses.MISSING:
                continue
            raise NIRFormatError(f"import_nir: {where}: the metadata 'chip' lacks the ChipSpec field {field.name!r}.")
        value, kind = fields[field.name], str(field.type)
        try:
            if kind.startswith("tuple"):
                values[field.name] = tuple(float(v) for v in np.asarray(value).ravel())
            elif kind == "int":
                values[field.name] = int(value)
            elif kind == "str" or kind.startswith("Literal"):
                values[field.name] = _text(value)
            else:
                values[field.name] = float(value)
        except (TypeError, ValueError) as err:
            raise NIRFormatError(f"import_nir: {where}: the metadata chip field {field.name!r}={value!r} is not a {kind}.") from err
    try:
        return ChipSpec(**values)
    except (TypeError, ValueError) as err:
        raise NIRFormatError(f"import_nir: {where}: the metadata 'chip' is not a valid ChipSpec: {err}") from err


def _chip_graph_header(meta: dict, where: str) -> ChipGraph:
    chip = _chip_from_metadata(_require(meta, "chip", where), where)
    return ChipGraph(
        chip=chip,
        dt=float(_require(meta, "dt", where)),
        in_features=int(_require(meta, "in_features", where)),
        frontend=bool(_require(meta, "frontend", where)),
    )


# -- the chain ---------------------------------------------------------------------------------
def _check_node_types(nir, graph, where: str, inside: str = "") -> None:
    top = (nir.Input, nir.Output, nir.IF, nir.Linear, nir.Affine, nir.LIF, nir.CubaLIF, nir.NIRGraph)
    sub = (nir.Input, nir.Output, nir.Linear, nir.Affine, nir.LIF, nir.CubaLIF)
    for name, node in graph.nodes.items():
        label = f"{inside}{name}"
        if not isinstance(node, sub if inside else top):
            what = "inside a recurrent sub-graph" if inside else "in a chip chain"
            raise NIRFormatError(
                f"import_nir: node {label!r} of {where} is a {type(node).__name__}, which has no counterpart on the H1 "
                f"chips {what}. Supported: {_SUPPORTED}."
            )
        if isinstance(node, nir.NIRGraph):
            _check_node_types(nir, node, where, f"{label}/")


def _chain(nir, graph, where: str) -> list[tuple[str, Any, Optional[tuple[str, Any]]]]:
    """Nodes from after the Input to before the Output, each with its recurrent Linear (flat cycle) if any."""
    nodes, edges = graph.nodes, [tuple(e) for e in graph.edges]
    inputs = [k for k, v in nodes.items() if isinstance(v, nir.Input)]
    outputs = [k for k, v in nodes.items() if isinstance(v, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise NIRFormatError(f"import_nir: {where} has inputs {inputs} and outputs {outputs}; a chip chain has one of each.")
    # A two-node cycle neuron <-> Linear whose Linear touches nothing else is a recurrent layer.
    recurrent: dict[str, str] = {}
    for a, b in edges:
        if (b, a) in edges and isinstance(nodes[a], (nir.LIF, nir.CubaLIF)) and isinstance(nodes[b], (nir.Linear, nir.Affine)):
            touching = [e for e in edges if b in e]
            if len(touching) == 2:
                recurrent[a] = b
    loop_edges = {(a, b) for a, b in recurrent.items()} | {(b, a) for a, b in recurrent.items()}
    forward = [e for e in edges if e not in loop_edges]
    successors: dict[str, list[str]] = {k: [] for k in nodes}
    predecessors: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in forward:
        successors[a].append(b)
        predecessors[b].append(a)
    chain, current, seen = [], inputs[0], {inputs[0]}
    while current != outputs[0]:
        following = successors[current]
        if len(following) != 1:
            raise NIRFormatError(
                f"import_nir: node {current!r} of {where} feeds {following or 'nothing'}; a chip chain passes each "
                "node's output to exactly one next node."
            )
        current = following[0]
        if current in seen:
            raise NIRFormatError(f"import_nir: {where} loops back to {current!r}; only a layer's own recurrent Linear may form a cycle.")
        if len(predecessors[current]) != 1:
            raise NIRFormatError(f"import_nir: node {current!r} of {where} sums {predecessors[current]}; a chip chain has no merges.")
        seen.add(current)
        if current != outputs[0]:
            rec = recurrent.get(current)
            chain.append((current, nodes[current], None if rec is None else (rec, nodes[rec])))
    stray = sorted(set(nodes) - seen - set(recurrent.values()))
    if stray:
        raise NIRFormatError(f"import_nir: nodes {stray} of {where} are not on the path from input to output.")
    return chain


def _stages(nir, graph, where: str):
    """``(frontend, [(synapse, neuron, recurrent), ...])``, each a ``(name, node)``; ``frontend``/``recurrent`` may be None."""
    _check_node_types(nir, graph, where)
    chain = _chain(nir, graph, where)
    frontend = None
    if chain and isinstance(chain[0][1], nir.IF):
        frontend = chain[0][:2]
        chain = chain[1:]
    stages = []
    order = [f"{name} ({type(node).__name__})" for name, node, _ in chain]
    for position in range(0, len(chain), 2):
        pair = chain[position : position + 2]
        syn_name, syn_node, syn_rec = pair[0]
        neuron = pair[1] if len(pair) == 2 else None
        if (
            not isinstance(syn_node, (nir.Linear, nir.Affine))
            or syn_rec is not None
            or neuron is None
            or not isinstance(neuron[1], (nir.LIF, nir.CubaLIF, nir.NIRGraph))
        ):
            culprit = syn_name if not isinstance(syn_node, (nir.Linear, nir.Affine)) or neuron is None else neuron[0]
            raise NIRFormatError(
                f"import_nir: {where} runs {order}; a chip chain is [IF ->] (Linear -> LIF|CubaLIF) x L, "
                f"and node {culprit!r} breaks that order."
            )
        neuron_name, neuron_node, flat_rec = neuron
        if isinstance(neuron_node, nir.NIRGraph):
            lif, rec = _recurrent_subgraph(nir, neuron_node, neuron_name, where)
            stages.append(((syn_name, syn_node), (f"{neuron_name}/{lif[0]}", lif[1]), (f"{neuron_name}/{rec[0]}", rec[1])))
        else:
            stages.append(((syn_name, syn_node), (neuron_name, neuron_node), flat_rec))
    if not stages:
        raise NIRFormatError(f"import_nir: {where} holds no Linear -> LIF|CubaLIF layer.")
    return frontend, stages


def _recurrent_subgraph(nir, sub, name: str, where: str):
    kinds = {k: type(v).__name__ for k, v in sub.nodes.items()}
    neurons = [k for k, v in sub.nodes.items() if isinstance(v, (nir.LIF, nir.CubaLIF))]
    denses = [k for k, v in sub.nodes.items() if isinstance(v, (nir.Linear, nir.Affine))]
    inputs = [k for k, v in sub.nodes.items() if isinstance(v, nir.Input)]
    outputs = [k for k, v in sub.nodes.items() if isinstance(v, nir.Output)]
    ok = len(sub.nodes) == 4 and all(len(group) == 1 for group in (neurons, denses, inputs, outputs))
    if ok:
        lif, w, i, o = neurons[0], denses[0], inputs[0], outputs[0]
        ok = {tuple(e) for e in sub.edges} == {(i, lif), (lif, w), (w, lif), (lif, o)} and len(sub.edges) == 4
    if not ok:
        raise NIRFormatError(
            f"import_nir: sub-graph {name!r} of {where} (nodes {kinds}, edges {[tuple(e) for e in sub.edges]}) is not a "
            "recurrent layer input -> LIF|CubaLIF <-> Linear -> output."
        )
    return (lif, sub.nodes[lif]), (w, sub.nodes[w])


# -- graphs written by export_nir ----------------------------------------------------------------
def _node_meta(node, name: str, where: str, block: str) -> dict:
    meta = (node.metadata or {}).get("nwave") if isinstance(node.metadata, dict) else None
    if not isinstance(meta, dict):
        raise NIRFormatError(f"import_nir: node {name!r} of {where} lacks its {FORMAT} metadata; was the graph edited?")
    if _text(meta.get("block")) != block:
        raise NIRFormatError(f"import_nir: node {name!r} of {where} is marked {_text(meta.get('block'))!r} where a {block} belongs.")
    return meta


def _tensor(meta: dict, key: str, name: str, where: str) -> torch.Tensor:
    value = meta.get(key)
    if not isinstance(value, np.ndarray) or value.dtype != np.float32:
        raise NIRFormatError(f"import_nir: node {name!r} of {where} lacks its float32 metadata {key!r}.")
    return torch.from_numpy(np.array(value, dtype=np.float32, copy=True))


def _from_own(nir, graph, meta: dict, where: str, dt, nir_dt, chip) -> ChipGraph:
    chain = _chip_graph_header(meta, where)
    written_step = float(_require(meta, "nir_dt", where))
    for given, stored, what in ((dt, chain.dt, "dt"), (nir_dt, written_step, "nir_dt"), (chip, chain.chip, "chip")):
        if given is not None and given != stored:
            raise ValueError(
                f"import_nir: {what}={given!r} disagrees with {where}, written with {what}={stored!r}; leave it out "
                "(the metadata holds it) or pass use_metadata=False to read the NIR parameters alone."
            )
    frontend, stages = _stages(nir, graph, where)
    if int(_require(meta, "n_layers", where)) != len(stages):
        raise NIRFormatError(f"import_nir: {where}: metadata say {int(meta['n_layers'])} layers but the graph holds {len(stages)}.")
    if (frontend is not None) != chain.frontend:
        raise NIRFormatError(f"import_nir: {where}: metadata says frontend={chain.frontend} but the graph disagrees.")
    if frontend is not None:
        chain.frontend_name = _text(_node_meta(frontend[1], frontend[0], where, "frontend").get("source", ""))
    for (syn_name, syn_node), (lif_name, lif_node), rec in stages:
        syn_meta = _node_meta(syn_node, syn_name, where, "synapse")
        lif_meta = _node_meta(lif_node, lif_name, where, "layer")
        recurrent = None
        if rec is not None:
            recurrent = _tensor(_node_meta(rec[1], rec[0], where, "recurrent"), "weight", rec[0], where)
        if "threshold" not in lif_meta:
            raise NIRFormatError(f"import_nir: node {lif_name!r} of {where} lacks its metadata 'threshold'.")
        chain.layers.append(
            LayerSpec(
                weight=_tensor(syn_meta, "weight", syn_name, where),
                taus=_tensor(lif_meta, "taus", lif_name, where),
                topology="FF" if rec is None else "RC",
                recurrent_weights=recurrent,
                threshold=float(lif_meta["threshold"]),
                names=(_text(syn_meta.get("source", "")), _text(lif_meta.get("source", ""))),
            )
        )
    _check_against_metadata(nir, (frontend, stages), chain, written_step, where)
    return chain


def _check_against_metadata(nir, parsed, chain: ChipGraph, nir_dt: float, where: str) -> None:
    """The NIR parameters must be those the metadata give: a graph edited elsewhere would otherwise load stale."""
    try:
        expected = _to_nir(nir, chain, nir_dt)
    except (ValueError, RuntimeError) as err:
        raise NIRFormatError(f"import_nir: {where}: its {FORMAT} metadata do not describe a chip chain: {err}") from err
    got_frontend, got = parsed
    want_frontend, want = _stages(nir, expected, "the expected graph")
    pairs = [] if got_frontend is None else [(got_frontend, want_frontend)]
    for got_stage, want_stage in zip(got, want):
        pairs += [(g, w) for g, w in zip(got_stage, want_stage) if g is not None]
    for (name, node), (_, reference) in pairs:
        if type(node) is not type(reference):
            raise NIRFormatError(
                f"import_nir: node {name!r} of {where} is a {type(node).__name__}; its metadata give a {type(reference).__name__}."
            )
        for field in dataclasses.fields(reference):
            if field.name in ("input_type", "output_type", "metadata"):
                continue
            value, wanted = np.asarray(getattr(node, field.name)), np.asarray(getattr(reference, field.name))
            if value.shape != wanted.shape or not np.array_equal(value, wanted):
                raise NIRFormatError(
                    f"import_nir: node {name!r} of {where}: its {field.name} differs from what its {FORMAT} metadata give "
                    "(edited after export?). Pass use_metadata=False to take the NIR parameters as they are."
                )


# -- graphs from other tools -----------------------------------------------------------------------
def _from_foreign(nir, graph, where: str, dt, nir_dt, chip: Optional[ChipSpec]) -> ChipGraph:
    if dt is None:
        raise NIRFormatError(
            f"import_nir: {where} carries no {FORMAT} metadata, so the chip's time step is unknown: pass dt= (seconds), "
            f"and nir_dt= if its time constants were written for another step (snnTorch writes for {SNNTORCH_DT} s)."
        )
    dt = _positive_step(dt, "import_nir: dt")
    nir_dt = dt if nir_dt is None else _positive_step(nir_dt, "import_nir: nir_dt")
    frontend, stages = _stages(nir, graph, where)
    filtered = [isinstance(lif, nir.CubaLIF) for _, (_, lif), _ in stages]
    if chip is None:
        if all(filtered):
            chip = H1V1
        elif not any(filtered):
            chip = H1V2
        else:
            kinds = [f"{name} ({type(lif).__name__})" for _, (name, lif), _ in stages]
            raise NIRFormatError(f"import_nir: {where} mixes LIF and CubaLIF layers {kinds}; one chip runs one neuron model.")
    if frontend is not None:
        in_features = _foreign_frontend(frontend, chip, where)
    else:
        in_features = int(np.asarray(stages[0][0][1].weight).shape[-1])
    chain = ChipGraph(chip=chip, dt=dt, in_features=in_features, frontend=frontend is not None)
    fan_in = in_features
    for (syn_name, syn_node), (lif_name, lif_node), rec in stages:
        effective = _foreign_weight(nir, syn_name, syn_node, where, fan_in)
        n = effective.shape[1]
        taus, scale = _foreign_neuron(nir, lif_name, lif_node, where, chip, dt, nir_dt, n)
        recurrent = None
        if rec is not None:
            recurrent = _foreign_weight(nir, rec[0], rec[1], where, n)
            if recurrent.shape != (n, n):
                raise NIRFormatError(
                    f"import_nir: recurrent node {rec[0]!r} of {where} has weight shape {recurrent.shape[::-1]}; expected ({n}, {n})."
                )
        chain.layers.append(
            LayerSpec(
                weight=_raw_weight(effective * scale, chip),
                taus=taus,
                topology="FF" if rec is None else "RC",
                recurrent_weights=None if recurrent is None else _raw_weight(recurrent * scale, chip),
                threshold=float(chip.threshold),
                names=(syn_name, lif_name),
            )
        )
        fan_in = n
    return chain


def _uniform(node, field: str) -> np.ndarray:
    return np.asarray(getattr(node, field), dtype=np.float64)


def _foreign_frontend(frontend, chip: ChipSpec, where: str) -> int:
    name, node = frontend
    r, threshold, reset = _uniform(node, "r"), _uniform(node, "v_threshold"), _uniform(node, "v_reset")
    firing = np.where(threshold == float(_below(1.0)), 1.0, threshold)
    if r.ndim != 1 or not (np.allclose(r, chip.frontend_gain, rtol=1e-6, atol=0) and np.all(firing == 1.0) and np.all(reset == 0)):
        raise NIRFormatError(
            f"import_nir: IF node {name!r} of {where} (r={r.tolist()}, v_threshold={threshold.tolist()}, v_reset={reset.tolist()}) "
            f"is not the {chip.name} frontend, an IF with r={chip.frontend_gain}, threshold 1 and reset 0."
        )
    return int(r.shape[0])


def _foreign_weight(nir, name: str, node, where: str, fan_in: int) -> np.ndarray:
    weight = np.asarray(node.weight, dtype=np.float64)
    if weight.ndim != 2 or weight.shape[1] != fan_in:
        raise NIRFormatError(
            f"import_nir: node {name!r} of {where} has weight shape {weight.shape}; expected (n_out, {fan_in}) "
            f"after a stage of width {fan_in}."
        )
    if isinstance(node, nir.Affine) and np.any(np.asarray(node.bias) != 0):
        raise NIRFormatError(f"import_nir: Affine node {name!r} of {where} has a non-zero bias; H1 synapses inject no constant current.")
    if not np.all(np.isfinite(weight)):
        raise NIRFormatError(f"import_nir: node {name!r} of {where} has non-finite weights.")
    return weight.T.copy()  # (n_in, n_out), this framework's layout


def _foreign_neuron(nir, name: str, node, where: str, chip: ChipSpec, dt: float, nir_dt: float, n: int):
    """``(taus (n,) float32, per-neuron weight scale (n,))`` of a LIF / CubaLIF node under Euler at ``nir_dt``."""
    kind = type(node).__name__
    wants_filter = chip.tau_syn is not None
    if isinstance(node, nir.CubaLIF) != wants_filter:
        need = "CubaLIF (its synaptic current filter)" if wants_filter else "LIF (a delta synapse)"
        raise NIRFormatError(f"import_nir: node {name!r} of {where} is a {kind}; {chip.name} layers are {need}.")
    tau = _uniform(node, "tau_mem" if wants_filter else "tau")
    fields = {f: _uniform(node, f) for f in ("r", "v_leak", "v_threshold", "v_reset")}
    for field, value in {"tau": tau, **fields}.items():
        if value.shape != (n,) or not np.all(np.isfinite(value)):
            raise NIRFormatError(
                f"import_nir: node {name!r} of {where}: {field} has shape {value.shape} or non-finite values; "
                f"expected ({n},) finite values."
            )
    if np.any(fields["v_leak"] != 0):
        raise NIRFormatError(f"import_nir: node {name!r} of {where} has v_leak != 0; the H1 neuron leaks towards 0.")
    if np.any(fields["v_reset"] != 0):
        raise NIRFormatError(f"import_nir: node {name!r} of {where} has v_reset != 0; the H1 neuron resets to 0.")
    if np.any(tau <= nir_dt):
        raise NIRFormatError(
            f"import_nir: node {name!r} of {where} has tau={tau.min():.6g} s, not above nir_dt={nir_dt} s; forward Euler "
            "then has no decay in (0, 1). Pass the nir_dt the graph was written for."
        )
    beta = 1.0 - nir_dt / tau
    taus = -dt / np.log(beta)
    low, high = chip.tau_range
    if np.any((taus < low) | (taus > high) | (taus <= dt)):
        raise NIRFormatError(
            f"import_nir: node {name!r} of {where}: its decay per step gives membrane time constants "
            f"[{taus.min():.6g}, {taus.max():.6g}] s at dt={dt} s, outside {chip.name}'s range [{low}, {high}] s. "
            "Check dt and nir_dt."
        )
    scale = fields["r"] * nir_dt / tau
    if wants_filter:
        tau_syn, w_in = _uniform(node, "tau_syn"), _uniform(node, "w_in")
        alpha = 1.0 - nir_dt / tau_syn
        target = math.exp(-dt / chip.tau_syn)
        if tau_syn.shape != (n,) or not np.allclose(alpha, target, rtol=1e-6, atol=0):
            raise NIRFormatError(
                f"import_nir: CubaLIF node {name!r} of {where}: its tau_syn gives a synaptic decay of "
                f"{np.unique(alpha).tolist()} per step, but {chip.name}'s synapse decays by {target:.9g} "
                f"(tau_syn={chip.tau_syn} s at dt={dt} s), and the chip's synaptic time constant is fixed."
            )
        scale = scale * w_in * nir_dt / tau_syn
    # NIR fires on v > v_threshold; a threshold one float32 step below the chip's is this framework's own export.
    theta = float(chip.threshold)
    threshold = np.where(fields["v_threshold"] == float(_below(theta)), theta, fields["v_threshold"])
    if np.any(threshold <= 0) or np.any(scale <= 0):
        raise NIRFormatError(
            f"import_nir: node {name!r} of {where} has a threshold or input scale (r, w_in) that is not positive; "
            "the H1 neuron cannot fold it into its weights."
        )
    # v' = (theta / v_threshold) v follows V = beta V + (theta / v_threshold) * scale * I and fires at theta.
    return torch.from_numpy(taus.astype(np.float32)), scale * theta / threshold


def _raw_weight(effective: np.ndarray, chip: ChipSpec) -> torch.Tensor:
    """The chip weight whose efficacy is ``effective`` (float64 in, float32 out)."""
    if chip.efficacy == "linear":
        raw = effective / chip.synaptic_gain
    else:
        raw = np.sign(effective) * np.log1p(np.abs(effective) / chip.synaptic_gain * math.expm1(chip.kappa)) / chip.kappa
    return torch.from_numpy(raw.astype(np.float32))
