"""NIR export and import (``nwave_lightning.deploy.nir``).

* Round trips through a file rebuild the exported network bit for bit.
* snnTorch's ``import_from_nir`` is an independent consumer of the same file: where the
  NIR mapping is exact its spikes and membranes equal ours; where snnTorch or NIR mean
  something else, the tests pin down exactly what differs.
* Bad networks are refused before anything is written; bad graphs are refused with the
  node, metadata key or format version named.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import sys

import nir
import numpy as np
import pytest
import torch
from snntorch.import_nir import import_from_nir
from torch import nn

from nwave_lightning.deploy import ChipNet, ChipViolationError, check_chip, export_nir, import_nir, to_chip
from nwave_lightning.deploy.nir import FORMAT_VERSION, SNNTORCH_DT, NIRFormatError
from nwave_lightning.hardware import H1V1, H1V2, efficacy
from nwave_lightning.layers import H1v2Frontend, H1v2Layer, H1v2Synapse
from nwave_lightning.models import H1Classifier

IN_CH, HIDDEN, CLASSES = 10, [12, 9], 3
TAUS = [8e-3, 25e-3, 60e-3]
BELOW_ONE = float(np.nextafter(np.float32(1.0), np.float32(0.0)))


@pytest.fixture(autouse=True)
def _reference_backend(monkeypatch):
    # The oracle scan: the round trip must hold on the path every backend is checked against.
    monkeypatch.setenv("NWAVE_BACKEND", "reference")


def _spikes(batch=4, steps=60, p=0.3, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, steps, IN_CH, generator=gen) < p).float()


def _active_chip_net(chip, topology, frontend, x, seed=0):
    """A chip-legal H1Classifier whose every layer fires at 2-40 % on ``x``.

    Equal outputs of two silent networks would prove nothing, so each synapse gets
    one sign per row (two rows in three excitatory, all of them if that is too
    weak) and its magnitudes are scaled, by bisection, into that rate band.
    """
    gen = torch.Generator().manual_seed(seed)
    net = H1Classifier(
        in_ch=IN_CH, num_classes=CLASSES, hidden=HIDDEN, taus=TAUS, chip=chip, topology=topology, frontend=frontend
    )
    with torch.no_grad():
        for index, (synapse, layer) in enumerate(net.layer_pairs):
            n_in, n_out = synapse.weight.shape
            limit = synapse.chip.weight_limit
            signs = torch.where(torch.arange(n_in) % 3 == 0, -1.0, 1.0)[:, None]
            base = signs * torch.rand(n_in, n_out, generator=gen) * limit
            if layer.recurrent_weights is not None:
                rec_signs = torch.where(torch.arange(n_out) % 2 == 0, -1.0, 1.0)[:, None]
                layer.recurrent_weights.copy_(rec_signs * torch.rand(n_out, n_out, generator=gen) * 0.6 * limit)

            def rate_at(scale, base=base, synapse=synapse, index=index):
                synapse.weight.copy_(base * scale)
                return float(net(x)[0][index].mean())

            scale, rate = 1.0, rate_at(1.0)
            if rate < 0.02:
                base = base.abs()
                rate = rate_at(1.0)
            low, high = 0.0, 1.0
            for _ in range(30):
                if 0.02 <= rate <= 0.4:
                    break
                low, high = (low, scale) if rate > 0.4 else (scale, high)
                scale = (low + high) / 2
                rate = rate_at(scale, base=base)
            assert 0.02 <= rate <= 0.4, f"layer {index} fires at {rate:.3f}; the test needs an active network"
    assert check_chip(net) == []
    return net


def _assert_same_run(a, b, x):
    (spikes_a, mems_a), (spikes_b, mems_b) = a(x), b(x)
    assert len(spikes_a) == len(spikes_b)
    for layer, (sa, sb, ma, mb) in enumerate(zip(spikes_a, spikes_b, mems_a, mems_b)):
        assert torch.equal(sa, sb), f"layer {layer}: spikes differ"
        assert torch.equal(ma, mb), f"layer {layer}: membranes differ"


def _last_lif(graph):
    return next(src for src, dst in graph.edges if dst == "output")


def _snntorch_run(graph, x):
    """snnTorch's import of ``graph`` stepped over ``x (B, T, N)``.

    Returns the output spikes ``(B, T, N_out)`` and, per neuron layer, the membranes
    snnTorch keeps (after reset, i.e. ``V * (1 - S)`` in the H1 model's terms).
    """
    with contextlib.redirect_stdout(io.StringIO()):  # the importer prints its progress
        module = import_from_nir(graph)
    lif_names = [name for name in graph.nodes if name.endswith("_lif")]
    neurons = []
    for name in lif_names:
        sub = module.get_submodule(name)
        neurons.append(sub.lif if isinstance(sub, torch.fx.GraphModule) else sub)  # RC layers are sub-graphs
    return _step(module, neurons, x)


def _step(module, neurons, x):
    """Step an imported snnTorch module over ``x (B, T, N)``; spikes and each neuron's membranes."""
    state, spikes, mems = None, [], [[] for _ in neurons]
    with torch.no_grad():
        for step in range(x.shape[1]):
            out, state = module(x[:, step], state)
            spikes.append(out)
            for record, neuron in zip(mems, neurons):
                record.append(neuron.mem.clone())
    return torch.stack(spikes, 1), [torch.stack(record, 1) for record in mems]


# ---------------------------------------------------------------------------------------------
# round trip: bit for bit
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("frontend", [False, True], ids=["no-frontend", "frontend"])
@pytest.mark.parametrize("topology", ["FF", "RC", ["RC", "FF", "RC"]], ids=["FF", "RC", "mixed"])
@pytest.mark.parametrize("chip", ["H1v1", "H1v2"])
def test_round_trip_is_bit_identical(tmp_path, chip, topology, frontend):
    x = _spikes()
    net = to_chip(_active_chip_net(chip, topology, frontend, x))
    path = tmp_path / "net.nir"
    export_nir(net, path)
    assert sorted(os.listdir(tmp_path)) == ["net.nir"]  # no temporary file left behind
    back = import_nir(path)
    assert isinstance(back, ChipNet)
    assert back.chip == net.lifs[0].chip and back.dt == net.dt and (back.frontend is not None) == frontend
    for (syn_a, lif_a), (syn_b, lif_b) in zip(net.layer_pairs, back.layer_pairs, strict=True):
        assert torch.equal(syn_a.weight, syn_b.weight)
        assert torch.equal(lif_a.taus, lif_b.taus) and torch.equal(lif_a.beta, lif_b.beta)
        assert lif_a.layer_topology == lif_b.layer_topology
        if lif_a.recurrent_weights is not None:
            assert torch.equal(lif_a.recurrent_weights, lif_b.recurrent_weights)
    _assert_same_run(net, back, x)


def test_round_trip_with_analog_input_through_the_frontend(tmp_path):
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(3, 50, IN_CH, generator=gen) * 1.4 - 0.2  # exercises the frontend's clamp to [0, 1]
    net = to_chip(_active_chip_net("H1v2", "RC", True, (x > 0.5).float()))
    export_nir(net, tmp_path / "a.nir")
    _assert_same_run(net, import_nir(tmp_path / "a.nir"), x)


def test_round_trip_from_the_returned_graph_and_of_a_custom_chip(tmp_path):
    chip = dataclasses.replace(H1V2, name="H1v2-lab", synaptic_gain=0.3, weight_range=(-1.2, 1.5), tau_range=(2e-3, 0.4))
    net = nn.Sequential(
        H1v2Frontend(IN_CH, chip=chip),
        H1v2Synapse(IN_CH, 5, chip=chip),
        H1v2Layer(5, taus=30e-3, dt=0.5e-3, chip=chip, layer_topology="RC"),
    )
    net = to_chip(net)
    graph = export_nir(net, tmp_path / "lab.nir")
    for source in (graph, tmp_path / "lab.nir", str(tmp_path / "lab.nir")):
        back = import_nir(source)
        assert back.chip == chip and back.dt == 0.5e-3
    read = nir.read(tmp_path / "lab.nir")
    stored = read.metadata["nwave"]
    assert stored["chip_name"] == "H1v2-lab" and int(stored["format_version"]) == FORMAT_VERSION
    assert "kappa" not in stored["chip"] and "tau_syn" not in stored["chip"]  # None fields are left out
    x = _spikes(steps=40, p=0.5)
    spikes, membranes = net[2](net[1](net[0](x)))
    got_spikes, got_membranes = import_nir(read)(x)
    assert torch.equal(spikes, got_spikes[0]) and torch.equal(membranes, got_membranes[0])
    assert spikes.sum() > 0


def test_graph_describes_the_physics():
    """Linear weights are the effective currents (out, in); neurons integrate with forward Euler at nir_dt."""
    x = _spikes()
    net = to_chip(_active_chip_net("H1v1", ["RC", "FF", "FF"], False, x))
    graph = export_nir(net, nir_dt=2e-4)
    weight = net.synapses[0].weight.detach()
    assert np.array_equal(graph.nodes["layer00_dense"].weight, efficacy(weight, H1V1).T.numpy())
    sub = graph.nodes["layer00_lif"]
    assert isinstance(sub, nir.NIRGraph) and set(sub.edges) == {("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")}
    assert np.array_equal(sub.nodes["w_rec"].weight, efficacy(net.lifs[0].recurrent_weights.detach(), H1V1).T.numpy())
    lif = sub.nodes["lif"]
    assert isinstance(lif, nir.CubaLIF)
    # Euler at 2e-4 s: 1 - h / tau recovers the layer's own float32 decays, and unit input gains.
    assert np.array_equal((1 - 2e-4 / lif.tau_mem).astype(np.float32), net.lifs[0].beta.numpy())
    assert np.float32(1 - 2e-4 / lif.tau_syn[0]) == np.float32(math.exp(-1e-3 / H1V1.tau_syn))
    np.testing.assert_allclose(lif.r * 2e-4 / lif.tau_mem, 1.0, rtol=1e-12)
    np.testing.assert_allclose(lif.w_in * 2e-4 / lif.tau_syn, 1.0, rtol=1e-12)
    assert np.all(lif.v_threshold == np.float32(BELOW_ONE)) and np.all(lif.v_reset == 0) and np.all(lif.v_leak == 0)


# ---------------------------------------------------------------------------------------------
# snnTorch as an independent consumer
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("topology", ["FF", "RC", ["RC", "FF", "RC"]], ids=["FF", "RC", "mixed"])
@pytest.mark.parametrize("chip", ["H1v2", "H1v1"])
def test_snntorch_reproduces_spikes_and_membranes(tmp_path, chip, topology):
    """snnTorch's import of the file runs the same network.

    Tolerance: spikes must be identical, membranes within 1e-5 (absolute). Both sides
    evaluate the same float32 operations (beta and alpha round back to the layer's own
    float32 decays, the threshold one float32 step below theta makes snnTorch's
    ``mem > threshold`` equal the chip's ``V >= theta``), so only the summation order
    of a matrix product may differ; on this platform the runs agree bit for bit.
    H1v1 is included: its exponential efficacy is applied to the exported weights, so
    the dynamics match, see ``test_h1v1_exports_efficacies_not_chip_weights``.
    """
    x = _spikes(steps=80)
    net = to_chip(_active_chip_net(chip, topology, False, x))
    export_nir(net, tmp_path / "net.nir", nir_dt=SNNTORCH_DT)
    spikes, membranes = _snntorch_run(nir.read(tmp_path / "net.nir"), x)
    ours_spikes, ours_membranes = net(x)
    assert torch.equal(spikes, ours_spikes[-1])
    for layer, (theirs, v, s) in enumerate(zip(membranes, ours_membranes, ours_spikes, strict=True)):
        torch.testing.assert_close(theirs, v * (1 - s), rtol=0, atol=1e-5, msg=f"layer {layer}")


def test_snntorch_integrates_with_a_fixed_step():
    """Documented difference: snnTorch ignores the step a graph was written for.

    Its importer maps LIF to ``Leaky(beta = 1 - 1e-4 / tau)`` for every graph. Exported
    with the default ``nir_dt = dt = 1 ms`` its decay is ``1 - 0.1 * (1 - beta)`` and its
    input gain ``r * 1e-4 / tau = 0.1`` (folded into a 10x threshold), so it runs a
    different network; exported with ``nir_dt=SNNTORCH_DT`` it runs ours.
    """
    x = _spikes(steps=80)
    net = to_chip(_active_chip_net("H1v2", "FF", False, x))
    with contextlib.redirect_stdout(io.StringIO()):
        default = import_from_nir(export_nir(net))
        matched = import_from_nir(export_nir(net, nir_dt=SNNTORCH_DT))
    beta = net.lifs[0].beta.double()
    expected = (1 - SNNTORCH_DT * (1 - beta) / net.dt).float()
    torch.testing.assert_close(default.layer00_lif.beta, expected, rtol=0, atol=1e-7)
    assert not torch.allclose(default.layer00_lif.beta, net.lifs[0].beta)
    assert float(default.layer00_lif.threshold) == pytest.approx(BELOW_ONE / 0.1)
    assert torch.equal(matched.layer00_lif.beta, net.lifs[0].beta)
    spikes, _ = _snntorch_run(export_nir(net), x)
    assert not torch.equal(spikes, net(x)[0][-1])


def test_threshold_ties_fire_like_the_chip():
    """Documented difference: NIR fires on ``v > v_threshold``, the chip on ``V >= theta``.

    Four simultaneous spikes through weights 1.0 (current 0.25 each on H1v2) put the
    membrane exactly on theta = 1. The chip fires; a NIR consumer given v_threshold = 1
    does not. The exported v_threshold (the float32 just below 1) makes snnTorch fire too.
    """
    net = nn.Sequential(H1v2Synapse(4, 1, init=nn.init.ones_), H1v2Layer(1, taus=20e-3, dt=SNNTORCH_DT))
    x = torch.zeros(1, 3, 4)
    x[0, 1] = 1.0
    spikes, membranes = net(x)
    assert membranes[0, 1, 0] == 1.0 and spikes[0, :, 0].tolist() == [0.0, 1.0, 0.0]
    graph = export_nir(net)
    assert _snntorch_run(graph, x)[0][0, :, 0].tolist() == [0.0, 1.0, 0.0]
    graph.nodes["layer00_lif"].v_threshold = np.ones(1, dtype=np.float32)  # NIR's literal reading of theta = 1
    assert _snntorch_run(graph, x)[0][0, :, 0].tolist() == [0.0, 0.0, 0.0]


def test_snntorch_frontend_is_a_leaky_neuron():
    """Documented difference: snnTorch has no IF neuron and cannot run the frontend node.

    Its importer maps ``nir.IF`` to ``Leaky(beta=0.9, reset_mechanism="subtract",
    init_hidden=False)``: a leak the frontend does not have, and a ``(spk, mem)`` tuple
    output that the next Linear cannot take, so a graph with the frontend fails in
    ``forward``. The frontend node alone passes a binary spike train unchanged, as the
    H1 frontend does (the threshold one float32 step below 1 fires on A = 1); on analog
    input the leak makes it fire later than the chip.
    """
    x = _spikes(steps=30)
    net = to_chip(_active_chip_net("H1v2", "FF", True, x))
    graph = export_nir(net, nir_dt=SNNTORCH_DT)
    with contextlib.redirect_stdout(io.StringIO()):
        module = import_from_nir(graph)
    frontend = module.frontend
    assert float(frontend.beta) == pytest.approx(0.9) and frontend.reset_mechanism == "subtract" and not frontend.init_hidden
    with pytest.raises(TypeError, match="must be Tensor, not tuple"):
        module(x[:, 0])

    def run(signal):
        frontend.mem = torch.zeros(())  # fresh state
        return torch.stack([frontend(signal[:, t])[0] for t in range(signal.shape[1])], 1)

    with torch.no_grad():
        assert torch.equal(run(x), net.frontend(x)) and torch.equal(net.frontend(x), x)
        constant = torch.full((1, 8, 1), 0.5)
        # H1 frontend: A = 0.5, 1.0 (fires, A = 0), 0.5, 1.0 (fires) ... every second step.
        chip_frontend = H1v2Frontend(1)
        assert chip_frontend(constant)[0, :, 0].tolist() == [0, 1, 0, 1, 0, 1, 0, 1]
        # snnTorch: m = 0.9 m + 0.5 fires once m > 1 - 2**-24, then subtracts that threshold.
        mem, expected = 0.0, []
        for _ in range(8):
            mem = np.float32(0.9) * np.float32(mem) + np.float32(0.5)
            fired = mem > np.float32(BELOW_ONE)
            expected.append(float(fired))
            mem = mem - np.float32(BELOW_ONE) * fired
        assert run(constant)[0, :, 0].tolist() == expected == [0, 0, 1, 0, 1, 0, 1, 0]


def test_nir_if_semantics_differ_from_the_frontend_on_analog_input():
    """Documented difference: a NIR IF resets to v_reset and integrates any input.

    The H1 frontend subtracts the threshold (keeping the remainder) and clamps its
    input to [0, x_max]; a consumer following the NIR IF equations resets to 0 and
    lets negative input pull the accumulator down. The exported IF node says
    ``v_reset = 0``: on binary spike trains both pass the train unchanged; on analog
    input they differ as below (reference: the NIR IF equations stepped by hand).
    """
    node = export_nir(to_chip(_active_chip_net("H1v2", "FF", True, _spikes()))).nodes["frontend"]
    assert np.all(node.r == 1.0) and np.all(node.v_reset == 0) and np.all(node.v_threshold == np.float32(BELOW_ONE))

    def nir_if(inputs):
        v, out = 0.0, []
        for value in inputs:
            v = v + float(node.r[0]) * value
            fired = v > float(node.v_threshold[0])
            out.append(float(fired))
            v = float(node.v_reset[0]) if fired else v
        return out

    frontend = H1v2Frontend(1)
    for inputs, chip_out, nir_out in (
        ([0.75] * 4, [0, 1, 1, 1], [0, 1, 0, 1]),  # remainder kept vs dropped
        ([-1.0, 1.0, 0.0], [0, 1, 0], [0, 0, 0]),  # clamp vs negative charge
        ([1.0, 0.0, 1.0, 1.0], [1, 0, 1, 1], [1, 0, 1, 1]),  # binary: identical
    ):
        assert frontend(torch.tensor(inputs).view(1, -1, 1))[0, :, 0].tolist() == chip_out
        assert nir_if(inputs) == nir_out


def test_h1v1_exports_efficacies_not_chip_weights():
    """Documented difference: H1v1's NIR weights are ``efficacy(W)``, not the stored weights.

    The exponential map is applied before export, so consumers run the chip's currents
    (see the snnTorch test) but see no weight a chip register holds: doubling a chip
    weight does not double the NIR weight. Reading the NIR parameters alone
    (``use_metadata=False``) inverts the map and recovers the chip weights to float32 rounding.
    """
    x = _spikes()
    net = to_chip(_active_chip_net("H1v1", "RC", False, x))
    graph = export_nir(net)
    raw = net.synapses[0].weight.detach()
    nir_weight = torch.from_numpy(graph.nodes["layer00_dense"].weight).T
    assert torch.equal(nir_weight, efficacy(raw, H1V1))
    nonzero = raw.abs() > 0.1
    ratio = nir_weight[nonzero] / raw[nonzero]
    assert float(ratio.max() - ratio.min()) > 0.1  # not a linear map
    back = import_nir(graph, use_metadata=False)
    torch.testing.assert_close(back.synapses[0].weight, raw, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(back.lifs[0].recurrent_weights, net.lifs[0].recurrent_weights, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# graphs from other tools
# ---------------------------------------------------------------------------------------------
def _snntorch_style_graph(betas, thresholds=1.0, w_scale=1.0, flat=False, seed=0):
    """Linear -> LIF -> Linear -> recurrent LIF, written the way snnTorch's exporter does.

    snnTorch writes ``tau = 1e-4 / (1 - beta)`` and ``r = tau / 1e-4``; ``w_scale`` multiplies r
    (an input gain), ``thresholds`` sets v_threshold.
    """
    rng = np.random.default_rng(seed)
    widths = [IN_CH, 8, 5]
    nodes = {"input": nir.Input(input_type={"input": np.array([IN_CH])})}
    edges, previous = [], "input"
    for index, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        beta = np.full(n_out, betas[index])
        tau = SNNTORCH_DT / (1 - beta)
        lif = nir.LIF(
            tau=tau,
            r=w_scale * tau / SNNTORCH_DT,
            v_leak=np.zeros(n_out),
            v_threshold=np.full(n_out, float(thresholds)),
            v_reset=np.zeros(n_out),
        )
        weight = (rng.uniform(-0.3, 0.45, (n_out, n_in)) * thresholds / w_scale).astype(np.float32)
        nodes[f"fc{index}"] = nir.Linear(weight=weight)
        edges += [(previous, f"fc{index}"), (f"fc{index}", f"lif{index}")]
        if index == 1:
            w_rec = nir.Linear(weight=(rng.uniform(-0.3, 0.3, (n_out, n_out)) * thresholds / w_scale).astype(np.float32))
            if flat:
                nodes["lif1"], nodes["rec1"] = lif, w_rec
                edges += [("lif1", "rec1"), ("rec1", "lif1")]
            else:
                nodes["lif1"] = nir.NIRGraph(
                    nodes={
                        "input": nir.Input(input_type={"input": np.array([n_out])}),
                        "lif": lif,
                        "w_rec": w_rec,
                        "output": nir.Output(output_type={"output": np.array([n_out])}),
                    },
                    edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
                )
        else:
            nodes[f"lif{index}"] = lif
        previous = f"lif{index}"
    nodes["output"] = nir.Output(output_type={"output": np.array([widths[-1]])})
    edges.append((previous, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges)


def _snntorch_membranes(graph, x):
    with contextlib.redirect_stdout(io.StringIO()):
        module = import_from_nir(graph)
    return _step(module, [module.lif0, module.lif1.lif], x)


@pytest.mark.parametrize("thresholds, w_scale", [(1.0, 1.0), (2.0, 0.5)], ids=["unit", "scaled"])
def test_foreign_linear_lif_chain_matches_snntorch(thresholds, w_scale):
    """A graph with no nwave metadata is read from its NIR parameters.

    Reference: snnTorch's own import of the same graph. With a threshold of 2 and an
    input gain of 0.5 both sides fold the two into one scale (snnTorch into its
    threshold, we into the weights), so spikes agree and our membranes are snnTorch's
    divided by ``threshold / (theta * w_scale)`` = 4.
    """
    graph = _snntorch_style_graph(betas=[0.9, 0.97], thresholds=thresholds, w_scale=w_scale)
    net = import_nir(graph, dt=1e-3, nir_dt=SNNTORCH_DT)
    assert net.chip == H1V2 and [lif.layer_topology for lif in net.lifs] == ["FF", "RC"]
    torch.testing.assert_close(net.lifs[1].beta, torch.full((5,), 0.97), rtol=0, atol=1e-6)
    x = _spikes(steps=80, p=0.4)
    with torch.no_grad():
        spikes, membranes = net(x)
    theirs_spikes, theirs_membranes = _snntorch_membranes(graph, x)
    assert 0.02 < float(spikes[0].mean()) < 0.6 and 0.02 < float(spikes[1].mean()) < 0.6
    assert torch.equal(spikes[1], theirs_spikes)
    fold = thresholds / (H1V2.threshold * w_scale)
    for theirs, v, s in zip(theirs_membranes, membranes, spikes):
        torch.testing.assert_close(theirs / fold, v * (1 - s), rtol=1e-5, atol=1e-5)


def test_foreign_flat_recurrence_reads_like_the_subgraph():
    """NIR allows recurrence as a flat two-node cycle LIF <-> Linear; it reads like the sub-graph form."""
    nested = import_nir(_snntorch_style_graph(betas=[0.9, 0.97]), dt=1e-3, nir_dt=SNNTORCH_DT)
    flat = import_nir(_snntorch_style_graph(betas=[0.9, 0.97], flat=True), dt=1e-3, nir_dt=SNNTORCH_DT)
    assert flat.lifs[1].layer_topology == "RC"
    _assert_same_run(nested, flat, _spikes(steps=40, p=0.4))


def test_own_graph_read_from_nir_parameters_alone():
    """``use_metadata=False`` takes dt, nir_dt and chip from the metadata but every number from the nodes."""
    x = _spikes(steps=80)
    net = to_chip(_active_chip_net("H1v2", ["RC", "FF", "RC"], True, x))
    back = import_nir(export_nir(net, nir_dt=SNNTORCH_DT), use_metadata=False)
    assert back.chip == H1V2 and back.dt == net.dt and back.frontend is not None
    for lif_a, lif_b in zip(net.lifs, back.lifs):
        torch.testing.assert_close(lif_a.taus, lif_b.taus, rtol=1e-6, atol=0)
    (spikes_a, mems_a), (spikes_b, mems_b) = net(x), back(x)
    for sa, sb, ma, mb in zip(spikes_a, spikes_b, mems_a, mems_b):
        assert torch.equal(sa, sb)
        torch.testing.assert_close(ma, mb, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# bad networks: nothing written
# ---------------------------------------------------------------------------------------------
class _WithHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.synapse = H1v2Synapse(4, 3)
        self.lif = H1v2Layer(3, taus=20e-3, dt=1e-3)
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        spikes, _ = self.lif(self.synapse(x))
        return self.head(spikes)


def test_export_refuses_a_module_the_chip_lacks(tmp_path):
    path = tmp_path / "out" / "net.nir"
    with pytest.raises(ChipViolationError, match=r"(?s)export_nir.*'head' \[unsupported_module\] Linear.*to_chip\(net\)"):
        export_nir(to_chip(_WithHead()), path)
    assert not path.exists() and not (tmp_path / "out").exists()


def test_export_refuses_range_and_sign_violations(tmp_path):
    net = nn.Sequential(H1v2Synapse(4, 3), H1v2Layer(3, taus=20e-3, dt=1e-3))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[5.0, 0.1, 0.1], [0.2, -0.3, 0.2], [0.1, 0.1, 0.1], [0.1, 0.1, 0.1]]))
    path = tmp_path / "net.nir"
    with pytest.raises(ChipViolationError) as info:
        export_nir(net, path)
    kinds = {(v.module, v.kind) for v in info.value.violations}
    assert kinds == {("0", "weight_range"), ("0", "sign_block")}
    assert "'0' [weight_range]" in str(info.value) and "to_chip(net)" in str(info.value)
    assert not path.exists() and os.listdir(tmp_path) == []
    export_nir(to_chip(net), path)  # the chip-legal copy exports
    assert path.exists()


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    x = _spikes()
    net = to_chip(_active_chip_net("H1v2", "FF", False, x))
    path = tmp_path / "net.nir"
    path.write_bytes(b"previous export")

    def broken_write(filename, graph, **kwargs):
        with open(filename, "wb") as handle:
            handle.write(b"half a fi")
        raise OSError("disk full")

    monkeypatch.setattr(nir, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        export_nir(net, path)
    assert os.listdir(tmp_path) == ["net.nir"] and path.read_bytes() == b"previous export"


# ---------------------------------------------------------------------------------------------
# bad graphs: the node, key or version is named
# ---------------------------------------------------------------------------------------------
@pytest.fixture()
def exported(tmp_path):
    x = _spikes()
    net = to_chip(_active_chip_net("H1v2", "RC", True, x))
    path = tmp_path / "net.nir"
    export_nir(net, path)
    return path


def _rewrite(path, edit):
    graph = nir.read(path)
    edit(graph)
    nir.write(path, graph)
    return path


def test_import_refuses_an_unsupported_node(tmp_path):
    graph = nir.NIRGraph.from_list(
        nir.Linear(weight=np.ones((3, 4), dtype=np.float32)),
        nir.LI(tau=np.full(3, 0.02), r=np.ones(3), v_leak=np.zeros(3)),
    )
    with pytest.raises(NIRFormatError, match=r"node 'li' .* is a LI"):
        import_nir(graph, dt=1e-3)
    nir.write(tmp_path / "li.nir", graph)
    with pytest.raises(NIRFormatError, match=r"node 'li' .* is a LI"):
        import_nir(tmp_path / "li.nir", dt=1e-3)


def test_import_refuses_an_unsupported_node_inside_our_graph(exported):
    def insert_scale(graph):
        graph.nodes["layer00_scale"] = nir.Scale(scale=np.ones(IN_CH))
        graph.edges = [("frontend", "layer00_scale") if e == ("frontend", "layer00_dense") else e for e in graph.edges]
        graph.edges.append(("layer00_scale", "layer00_dense"))

    with pytest.raises(NIRFormatError, match=r"node 'layer00_scale' .* is a Scale"):
        import_nir(_rewrite(exported, insert_scale))


def test_import_refuses_another_format_version(exported):
    def bump(graph):
        graph.metadata["nwave"]["format_version"] = FORMAT_VERSION + 1

    with pytest.raises(NIRFormatError, match=rf"format version {FORMAT_VERSION + 1} .*reads version {FORMAT_VERSION} only"):
        import_nir(_rewrite(exported, bump))


def test_another_format_version_can_still_be_read_from_its_nir_parameters(exported):
    """Metadata of an unknown version are not trusted: the NIR parameters alone, with the caller's dt."""
    original = import_nir(exported)

    def bump(graph):
        graph.metadata["nwave"]["format_version"] = FORMAT_VERSION + 1

    path = _rewrite(exported, bump)
    with pytest.raises(NIRFormatError, match=r"no nwave-lightning metadata.*pass dt="):
        import_nir(path, use_metadata=False)
    back = import_nir(path, use_metadata=False, dt=original.dt)
    x = _spikes()
    with torch.no_grad():
        (spikes_a, mems_a), (spikes_b, mems_b) = original(x), back(x)
    for sa, sb, ma, mb in zip(spikes_a, spikes_b, mems_a, mems_b, strict=True):
        assert torch.equal(sa, sb)
        torch.testing.assert_close(ma, mb, rtol=1e-5, atol=1e-5)


def test_missing_nir_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "nir", None)  # import nir now raises ImportError
    net = nn.Sequential(H1v2Synapse(2, 2, init=nn.init.ones_), H1v2Layer(2, taus=20e-3, dt=1e-3))
    with pytest.raises(ImportError, match=r'pip install "nwave-lightning\[deploy\]"'):
        export_nir(net)
    with pytest.raises(ImportError, match=r'pip install "nwave-lightning\[deploy\]"'):
        import_nir("net.nir")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda g: g.metadata["nwave"].pop("dt"), r"lacks the nwave-lightning metadata 'dt'"),
        (lambda g: g.metadata["nwave"]["chip"].pop("weight_range"), r"lacks the ChipSpec field 'weight_range'"),
        (lambda g: g.nodes["layer01_dense"].metadata["nwave"].pop("weight"), r"node 'layer01_dense' .* metadata 'weight'"),
        (lambda g: g.nodes["layer00_lif"].nodes["lif"].metadata.clear(), r"node 'layer00_lif/lif' .* lacks its nwave-lightning metadata"),
        (lambda g: g.nodes["layer00_lif"].nodes["w_rec"].metadata["nwave"].pop("weight"), r"node 'layer00_lif/w_rec' .* metadata 'weight'"),
    ],
    ids=["graph-dt", "chip-field", "synapse-weight", "layer", "recurrent-weight"],
)
def test_import_names_missing_metadata(exported, edit, message):
    with pytest.raises(NIRFormatError, match=message):
        import_nir(_rewrite(exported, edit))


def test_import_refuses_a_graph_edited_after_export(exported):
    def edit(graph):
        graph.nodes["layer01_dense"].weight = graph.nodes["layer01_dense"].weight * 2

    path = _rewrite(exported, edit)
    with pytest.raises(NIRFormatError, match=r"node 'layer01_dense' .* its weight differs .*use_metadata=False"):
        import_nir(path)
    back = import_nir(path, use_metadata=False)  # the NIR parameters as they are
    original = nir.read(path).nodes["layer01_dense"].metadata["nwave"]["weight"]
    torch.testing.assert_close(back.synapses[1].weight, torch.from_numpy(original) * 2)


def test_import_refuses_conflicting_arguments_for_our_graph(exported):
    with pytest.raises(ValueError, match=r"dt=0.002 disagrees"):
        import_nir(exported, dt=2e-3)
    with pytest.raises(ValueError, match=r"chip=.* disagrees"):
        import_nir(exported, chip=H1V1)


def test_import_refuses_a_graph_that_is_not_a_chain():
    nodes = {
        "input": nir.Input(input_type={"input": np.array([4])}),
        "a": nir.Linear(weight=np.ones((3, 4), dtype=np.float32)),
        "b": nir.Linear(weight=np.ones((3, 4), dtype=np.float32)),
        "lif": nir.LIF(tau=np.full(3, 0.02), r=np.full(3, 20.0), v_leak=np.zeros(3), v_threshold=np.ones(3)),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }
    graph = nir.NIRGraph(nodes=nodes, edges=[("input", "a"), ("input", "b"), ("a", "lif"), ("b", "lif"), ("lif", "output")])
    with pytest.raises(NIRFormatError, match=r"node 'input' .* feeds \['a', 'b'\]"):
        import_nir(graph, dt=1e-3)


def test_foreign_graph_needs_dt_and_a_model_the_chip_has():
    graph = _snntorch_style_graph(betas=[0.9, 0.97])
    with pytest.raises(NIRFormatError, match=r"no nwave-lightning metadata.*pass dt="):
        import_nir(graph)
    graph.nodes["lif0"].v_leak = np.full(8, 0.1)
    with pytest.raises(NIRFormatError, match=r"node 'lif0' .* v_leak != 0"):
        import_nir(graph, dt=1e-3, nir_dt=SNNTORCH_DT)
    # The nodes' time constants, read at the wrong step, fall outside the chip's range.
    with pytest.raises(NIRFormatError, match=r"node 'lif0' .*outside H1v2's range"):
        import_nir(_snntorch_style_graph(betas=[0.5, 0.97]), dt=1e-4, nir_dt=SNNTORCH_DT)


def test_foreign_cuba_lif_must_have_the_chip_synapse():
    n = 3
    tau_syn = SNNTORCH_DT / (1 - 0.5)  # decay 0.5 per step; H1v1 decays by exp(-0.2) at dt = 1 ms
    cuba = nir.CubaLIF(
        tau_syn=np.full(n, tau_syn), tau_mem=np.full(n, 2e-3), r=np.full(n, 20.0), v_leak=np.zeros(n),
        v_threshold=np.ones(n), w_in=np.full(n, tau_syn / SNNTORCH_DT),
    )
    graph = nir.NIRGraph.from_list(nir.Linear(weight=np.ones((n, 2), dtype=np.float32)), cuba)
    with pytest.raises(NIRFormatError, match=r"CubaLIF node 'cubalif' .* synaptic decay of \[0.5\]"):
        import_nir(graph, dt=1e-3, nir_dt=SNNTORCH_DT)
    with pytest.raises(NIRFormatError, match=r"node 'cubalif' .* is a CubaLIF; H1v2 layers are LIF"):
        import_nir(graph, dt=1e-3, nir_dt=SNNTORCH_DT, chip=H1V2)


def test_import_of_a_file_that_is_not_nir(tmp_path):
    path = tmp_path / "notes.nir"
    path.write_text("not hdf5")
    with pytest.raises(NIRFormatError, match="is not a NIR file"):
        import_nir(path)
    with pytest.raises(FileNotFoundError, match="no file at"):
        import_nir(tmp_path / "missing.nir")
