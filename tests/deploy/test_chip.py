"""to_chip / check_chip: every ready-made model deploys; every kind of violation is found and measured."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from nwave_lightning.deploy import VIOLATION_KINDS, check_chip, to_chip
from nwave_lightning.hardware import H1V1, H1V2
from nwave_lightning.layers import H1v1Layer, H1v1Synapse, H1v2Layer, H1v2Synapse
from nwave_lightning.layers.walk import dense_weights
from nwave_lightning.layers.sign import SignBlockParametrization, install_sign_parametrization, set_sign_alpha
from nwave_lightning.models import H1Classifier, PatternGenerator, SurrogateSNN

SEED_CFG = dict(in_ch=13, num_classes=2, neurons_per_class=4, dt=2e-3, hidden_1=12, tau_l1=10e-3, tau_l2=20e-3, tau_l3=40e-3)


def _ready_made():
    models = {}
    for chip in ("H1v1", "H1v2"):
        for topology in ("FF", "RC"):
            for frontend in (True, False):
                name = f"H1Classifier-{chip}-{topology}-{'frontend' if frontend else 'no_frontend'}"
                models[name] = lambda chip=chip, topology=topology, frontend=frontend: H1Classifier(
                    in_ch=6, num_classes=3, neurons_per_class=2, hidden=[8, 5], chip=chip, topology=topology, frontend=frontend
                )
    models["SurrogateSNN"] = lambda: SurrogateSNN(SEED_CFG)
    models["PatternGenerator-RC"] = lambda: PatternGenerator()
    models["PatternGenerator-FF"] = lambda: PatternGenerator(layer_topology="FF")
    return models


READY_MADE = _ready_made()


def _inputs(net: nn.Module) -> torch.Tensor:
    first = next(m for m in net.modules() if isinstance(m, (H1v1Synapse, H1v2Synapse)))
    return (torch.rand(3, 40, first.nb_inputs, generator=torch.Generator().manual_seed(1)) < 0.4).float()


def _outputs(net: nn.Module, x: torch.Tensor):
    with torch.no_grad():
        spikes, membranes = net(x)
    return [s.clone() for s in spikes], [m.clone() for m in membranes]


def _state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in net.state_dict().items()}


def _assert_same_state(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key


# -- every ready-made model deploys ------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(READY_MADE))
def test_every_ready_made_model_is_chip_legal_after_to_chip(name):
    net = READY_MADE[name]()
    with torch.no_grad():  # trained weights leave the range and mix signs; make sure to_chip has work to do
        for entry in dense_weights(net):
            getattr(entry.module, entry.attr).mul_(4.0)
    assert {v.kind for v in check_chip(net)} >= {"weight_range", "sign_block"}
    x = _inputs(net)
    before_state, before_out = _state(net), _outputs(net, x)

    chip_net = to_chip(net)

    assert check_chip(chip_net) == []
    _assert_same_state(before_state, _state(net))  # the original keeps its weights...
    after_out = _outputs(net, x)  # ...and still runs, with the same numbers
    assert all(torch.equal(a, b) for a, b in zip(before_out[0] + before_out[1], after_out[0] + after_out[1]))
    assert len(_outputs(chip_net, x)[0]) == len(before_out[0])


@pytest.mark.parametrize("name", sorted(READY_MADE))
def test_sign_parametrised_models_deploy_and_keep_their_parametrisation(name):
    net = READY_MADE[name]()
    install_sign_parametrization(net, alpha=1.0)
    set_sign_alpha(net, 3.5)
    assert {v.kind for v in check_chip(net)} >= {"parametrized"}
    x = _inputs(net)
    before_state, before_out = _state(net), _outputs(net, x)

    chip_net = to_chip(net)

    assert check_chip(chip_net) == []
    assert not any(parametrize.is_parametrized(e.module, e.attr) for e in dense_weights(chip_net))
    for entry in dense_weights(net):  # the original still carries its parametrisation, at the same alpha
        assert parametrize.is_parametrized(entry.module, entry.attr)
        (param,) = [p for p in entry.module.parametrizations[entry.attr] if isinstance(p, SignBlockParametrization)]
        assert param.alpha == 3.5
    _assert_same_state(before_state, _state(net))
    after_out = _outputs(net, x)
    assert all(torch.equal(a, b) for a, b in zip(before_out[0] + before_out[1], after_out[0] + after_out[1]))


# -- check_chip finds each kind of violation ---------------------------------------------------
def _legal_net(chip=H1V2, sign_block_chip=None) -> nn.Sequential:
    """synapse (4 -> 3) -> RC layer (3), every weight positive and in range: chip-legal."""
    chip = sign_block_chip or chip
    synapse_cls, layer_cls = (H1v2Synapse, H1v2Layer) if chip.efficacy == "linear" else (H1v1Synapse, H1v1Layer)
    synapse = synapse_cls(4, 3, chip=chip, init=lambda w: w.copy_(torch.full((4, 3), 0.5)))
    layer = layer_cls(3, taus=20e-3, dt=1e-3, layer_topology="RC", chip=chip, recurrent_init=lambda w: w.fill_(0.1))
    return nn.Sequential(synapse, layer)


def _f32(value: float) -> float:
    return float(torch.tensor(value, dtype=torch.float32))


def _plant_unsupported_module():
    net = _legal_net()
    net.append(nn.Linear(3, 3))
    return net, [("2", "unsupported_module", 1, None, "Linear")]


def _plant_chip_mismatch():
    net = _legal_net()
    net[1] = H1v1Layer(3, taus=20e-3, dt=1e-3)  # an H1v1 layer behind an H1v2 synapse
    return net, [("1", "chip_mismatch", 1, None, "H1v1")]


def _plant_parametrized():
    net = _legal_net()
    install_sign_parametrization(net, alpha=2.0)  # positive logits: the soft weights keep sign and range
    return net, [("0", "parametrized", 1, None, "weight"), ("1", "parametrized", 1, None, "recurrent_weights")]


def _plant_non_finite():
    net = _legal_net()
    with torch.no_grad():
        net[0].weight[1, 2] = float("nan")
        net[0].weight[3, 0] = float("inf")
        net[1].taus[2] = float("nan")
    return net, [("0", "non_finite", 2, None, "weight"), ("1", "non_finite", 1, None, "taus")]


def _plant_weight_range():
    net = _legal_net()
    with torch.no_grad():
        net[1].recurrent_weights[0, 1] = 2.0  # H1v2 stores [-1.66, 1.66]
        net[1].recurrent_weights[2] = torch.tensor([-0.5, -1.7, -3.0])  # a negative row: its own sign, two out of range
    # out of range: 2.0, -1.7, -3.0 -> 3 entries, the largest magnitude -3.0
    return net, [("1", "weight_range", 3, -3.0, "recurrent_weights outside [-1.66, 1.66]")]


def _plant_sign_block():
    chip = dataclasses.replace(H1V2, sign_block=2)
    net = _legal_net(sign_block_chip=chip)
    with torch.no_grad():
        net[0].weight.copy_(
            torch.tensor(
                [
                    [0.5, 0.5, 0.5],  # block 0 (rows 0-1): sum 1.5 - 0.3 = 1.2 > 0 -> sign +1
                    [-0.2, 0.3, -0.4],  # against +1: -0.2, -0.4
                    [-1.0, -1.0, -1.0],  # block 1 (rows 2-3): sum -3.0 - 0.1 = -3.1 < 0 -> sign -1
                    [0.3, -0.5, 0.1],  # against -1: 0.3, 0.1
                ]
            )
        )
    # 4 entries against their block's sign; the largest magnitude among them is -0.4
    return net, [("0", "sign_block", 4, _f32(-0.4), "blocks of 2 row(s)")]


def _plant_tau_range():
    net = _legal_net()
    with torch.no_grad():
        net[1].taus.copy_(torch.tensor([0.9, 20e-3, 0.6]))  # H1 range [1 ms, 500 ms]
    # two outside; the reported value is the first (here also the farthest out): 0.9 s in float32
    return net, [("1", "tau_range", 2, _f32(0.9), "taus outside [0.001, 0.5]")]


def _plant_dt():
    net = _legal_net()
    net.append(H1v2Synapse(3, 2))
    net.append(H1v2Layer(2, taus=20e-3, dt=2e-3))
    with torch.no_grad():
        net[2].weight.fill_(0.5)
    return net, [("3", "dt", 1, None, "dt=0.002 s while '1' steps with dt=0.001 s")]


def _plant_threshold():
    net = _legal_net()
    net[1] = H1v2Layer(3, taus=20e-3, dt=1e-3, threshold=1.5)
    return net, [("1", "threshold", 1, 1.5, "threshold=1.5 while H1v2 fires at 1.0")]


PLANTS = {
    "unsupported_module": _plant_unsupported_module,
    "chip_mismatch": _plant_chip_mismatch,
    "parametrized": _plant_parametrized,
    "non_finite": _plant_non_finite,
    "weight_range": _plant_weight_range,
    "sign_block": _plant_sign_block,
    "tau_range": _plant_tau_range,
    "dt": _plant_dt,
    "threshold": _plant_threshold,
}


def test_every_violation_kind_has_a_planted_case():
    assert set(PLANTS) == set(VIOLATION_KINDS)


@pytest.mark.parametrize("chip", [H1V1, H1V2], ids=lambda c: c.name)
def test_a_legal_net_has_no_violations(chip):
    assert check_chip(_legal_net(chip)) == []
    assert check_chip(_legal_net(sign_block_chip=dataclasses.replace(chip, sign_block=3))) == []


@pytest.mark.parametrize("kind", VIOLATION_KINDS)
def test_check_chip_finds_and_measures_a_planted_violation(kind):
    net, expected = PLANTS[kind]()
    found = check_chip(net)
    assert [(v.module, v.kind, v.count) for v in found] == [(m, k, c) for m, k, c, _, _ in expected]
    for violation, (_, _, _, worst, detail) in zip(found, expected):
        if worst is None:
            assert violation.worst is None
        else:
            assert violation.worst == worst  # exact: the offending number itself
        assert detail in str(violation), str(violation)


def test_violations_come_in_the_order_of_violation_kinds():
    net, _ = _plant_threshold()
    with torch.no_grad():
        net[0].weight[0, 0] = 9.0  # weight_range, registered before the threshold's module but listed by kind
    net.append(nn.ReLU())
    kinds = [v.kind for v in check_chip(net)]
    assert kinds == ["unsupported_module", "weight_range", "threshold"]
    assert "is an operation" in str(check_chip(net)[0])


# -- to_chip's weights against an independent computation ------------------------------------------
def _expected_plain(weight: np.ndarray, sign_block: int, low: float, high: float) -> np.ndarray:
    """One sign per block of rows: the sign of the block's sum (zero counts as +), minority zeroed, clamped."""
    out = np.zeros_like(weight)
    for start in range(0, weight.shape[0], sign_block):
        block = weight[start : start + sign_block]
        sign = 1.0 if block.sum(dtype=np.float64) >= 0 else -1.0
        out[start : start + sign_block] = np.where(sign * block > 0, block, 0.0)
    return np.clip(out, low, high)


def _expected_parametrised(magnitude: np.ndarray, logits: np.ndarray, sign_block: int, low: float, high: float) -> np.ndarray:
    """alpha -> inf: tanh(alpha * c_b) -> sign(c_b) (zero counts as +), times |V|, clamped."""
    out = np.empty_like(magnitude)
    for row in range(magnitude.shape[0]):
        out[row] = np.abs(magnitude[row]) * (1.0 if logits[row // sign_block, 0] >= 0 else -1.0)
    return np.clip(out, low, high)


def _random_chain(chip, sign_block: int) -> nn.Sequential:
    chip = dataclasses.replace(chip, sign_block=sign_block)
    synapse_cls, layer_cls = (H1v2Synapse, H1v2Layer) if chip.efficacy == "linear" else (H1v1Synapse, H1v1Layer)
    net = nn.Sequential(
        synapse_cls(7, 5, chip=chip),
        layer_cls(5, taus=20e-3, dt=1e-3, layer_topology="RC", chip=chip),
        synapse_cls(5, 3, chip=chip),
        layer_cls(3, taus=30e-3, dt=1e-3, chip=chip),
    )
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for entry in dense_weights(net):
            weight = getattr(entry.module, entry.attr)
            weight.copy_(torch.randn(weight.shape, generator=generator) * 1.5)  # mixed signs, some out of range
        net[0].weight[2] = 0.0  # a zero block sum (with sign_block 1): counts as +, nothing to zero
    return net


@pytest.mark.parametrize("chip", [H1V1, H1V2], ids=lambda c: c.name)
@pytest.mark.parametrize("sign_block", [1, 2, 3])
def test_to_chip_weights_equal_an_independent_computation(chip, sign_block):
    net = _random_chain(chip, sign_block)
    chip_net = to_chip(net)
    low, high = chip.weight_range
    for entry, chip_entry in zip(dense_weights(net), dense_weights(chip_net)):
        weight = getattr(entry.module, entry.attr).detach().numpy()
        expected = _expected_plain(weight, sign_block, low, high)
        got = getattr(chip_entry.module, chip_entry.attr).detach().numpy()
        np.testing.assert_array_equal(got, expected, err_msg=f"{entry.module_name}.{entry.attr}")
        assert (np.abs(weight) > high).any() and (expected != weight).any()  # the case is not trivial


@pytest.mark.parametrize("sign_block", [1, 2])
def test_to_chip_of_a_sign_parametrised_net_takes_the_alpha_to_infinity_limit(sign_block):
    net = _random_chain(H1V2, sign_block)
    install_sign_parametrization(net, alpha=1.0)
    with torch.no_grad():  # move some logits across zero so the stored sign differs from the block sum's
        for module in net.modules():
            if isinstance(module, SignBlockParametrization):
                module.sign_logits[0] = -module.sign_logits[0] if module.sign_logits[0] != 0 else -1.0
    chip_net = to_chip(net)
    low, high = H1V2.weight_range
    for entry, chip_entry in zip(dense_weights(net), dense_weights(chip_net)):
        plist = entry.module.parametrizations[entry.attr]
        (param,) = [p for p in plist if isinstance(p, SignBlockParametrization)]
        expected = _expected_parametrised(plist.original.detach().numpy(), param.sign_logits.detach().numpy(), sign_block, low, high)
        got = getattr(chip_entry.module, chip_entry.attr).detach().numpy()
        np.testing.assert_array_equal(got, expected, err_msg=f"{entry.module_name}.{entry.attr}")
    assert check_chip(chip_net) == []


def test_to_chip_refuses_a_non_module():
    with pytest.raises(ValueError, match="to_chip: net must be a torch.nn.Module, got dict"):
        to_chip({})
    with pytest.raises(ValueError, match="check_chip: net must be a torch.nn.Module, got list"):
        check_chip([])


def test_worst_tau_is_the_one_farthest_outside_the_range():
    from nwave_lightning.layers import H1v2Layer

    layer = H1v2Layer(3, taus=20e-3, dt=1e-3)
    with torch.no_grad():
        layer.taus.copy_(torch.tensor([0.6, 0.02, 0.9]))  # 0.1 s and 0.4 s above the 0.5 s limit
    (found,) = [v for v in check_chip(layer) if v.kind == "tau_range"]
    assert found.count == 2 and found.worst == pytest.approx(0.9)


def test_input_encoders_run_before_the_chip_and_pass_its_checks():
    import torch

    from nwave_lightning.deploy import check_chip, to_chip
    from nwave_lightning.deploy.graph import ChipNet, chip_graph
    from nwave_lightning.encode import Compose, Hold, OnOff
    from nwave_lightning.models import H1Classifier

    net = H1Classifier(in_ch=3, num_classes=2, neurons_per_class=2, hidden=[6], encoder=Compose([OnOff(0.5), Hold(2)]))
    chip = to_chip(net)
    assert check_chip(chip) == []
    graph = chip_graph(chip)
    assert graph.in_features == 6 and graph.frontend  # the chip chain starts at the encoder's output
    x = torch.randn(2, 8, 3)
    assert all(torch.equal(a, b) for a, b in zip(chip(x)[0], ChipNet(graph)(chip.encoder(x))[0]))
