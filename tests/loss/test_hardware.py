"""weight_magnitude_loss / topology_loss against numpy references and analytic gradients."""

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from nwave_lightning.hardware import H1V2
from nwave_lightning.layers import H1v1Synapse, H1v2Frontend, H1v2Layer, H1v2Synapse
from nwave_lightning.layers.sign import SignBlockParametrization
from nwave_lightning.loss import topology_loss, weight_magnitude_loss

from ._models import TinySurrogateSNN


def _model():
    model = TinySurrogateSNN(rc=True)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)  # push part of the weights beyond the limit
    return model


def _matrices(model):
    mats = [model.s1.weight, model.s2.weight, model.l2.recurrent_weights, model.s3.weight]
    return [m.detach().double().numpy() for m in mats]


def test_weight_magnitude_matches_numpy_reference_over_synapses_and_recurrent():
    model, limit = _model(), 0.9
    expected = sum(float(np.sum(np.maximum(np.abs(w) - limit, 0.0) ** 2)) for w in _matrices(model))
    assert expected > 0
    assert weight_magnitude_loss(model, limit=limit).item() == pytest.approx(expected, rel=1e-5)


def test_weight_magnitude_gradient_is_two_excess_times_sign():
    model, limit = _model(), 0.9
    weight_magnitude_loss(model, limit=limit).backward()
    for p in (model.s1.weight, model.l2.recurrent_weights):
        w = p.detach()
        torch.testing.assert_close(p.grad, 2 * torch.relu(w.abs() - limit) * torch.sign(w))


def test_weight_magnitude_without_limit_uses_each_chips_range():
    net = nn.Sequential(H1v1Synapse(1, 2), H1v2Synapse(1, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.5, -0.5]]))  # H1v1 limit 1.0: excess 0.5
        net[1].weight.copy_(torch.tensor([[1.5, -2.0]]))  # H1v2 limit 1.66: excess 0.34
    assert weight_magnitude_loss(net).item() == pytest.approx(0.5**2 + 0.34**2, rel=1e-5)


def test_weight_magnitude_reads_parametrised_weights():
    syn = H1v2Synapse(4, 3)
    with torch.no_grad():
        syn.weight.mul_(5.0)
    parametrize.register_parametrization(syn, "weight", SignBlockParametrization(syn.weight, 1, alpha=2.0))
    effective = syn.weight.detach().numpy()
    expected = float(np.sum(np.maximum(np.abs(effective) - 0.5, 0.0) ** 2))
    loss = weight_magnitude_loss(syn, limit=0.5)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert syn.parametrizations.weight[0].sign_logits.grad is not None


def _topology_reference(weights, sign_block):
    total = 0.0
    for w in weights:
        for start in range(0, w.shape[0], sign_block):
            block = w[start : start + sign_block]
            sign = -1.0 if block.sum() < 0 else 1.0
            total += float(np.sum(np.maximum(-sign * block, 0.0)))
    return total


@pytest.mark.parametrize("sign_block", [1, 2, 3])
def test_topology_matches_numpy_reference(sign_block):
    chip = dataclasses.replace(H1V2, sign_block=sign_block)
    net = nn.Sequential(
        H1v2Synapse(5, 4, chip=chip), H1v2Layer(4, taus=20e-3, dt=1e-3, layer_topology="RC", chip=chip)
    )
    weights = [net[0].weight.detach().double().numpy(), net[1].recurrent_weights.detach().double().numpy()]
    expected = 0.3 * _topology_reference(weights, sign_block)
    assert topology_loss(net, lam=0.3).item() == pytest.approx(expected, rel=1e-5)


def test_topology_gradient_pushes_minority_weights_to_zero():
    syn = H1v2Synapse(3, 4)
    topology_loss(syn, lam=0.5).backward()
    w = syn.weight.detach()
    row_sign = torch.where(w.sum(dim=1, keepdim=True) < 0, -1.0, 1.0)
    expected = torch.where(-row_sign * w > 0, -0.5 * row_sign, torch.zeros_like(w))
    torch.testing.assert_close(syn.weight.grad, expected)


def test_topology_skips_frontends_inside_a_model():
    model = _model()  # has an H1v2Frontend
    expected = 1e-3 * _topology_reference(_matrices(model), 1)
    assert topology_loss(model).item() == pytest.approx(expected, rel=1e-5)


def test_list_of_modules_counts_each_matrix_once():
    model = _model()
    both = topology_loss([model.s1, model.s2, model.s1], lam=1.0)
    assert both.item() == pytest.approx((topology_loss(model.s1, 1.0) + topology_loss(model.s2, 1.0)).item())


@pytest.mark.parametrize("loss", [topology_loss, weight_magnitude_loss])
def test_frontend_or_weightless_model_raises(loss):
    with pytest.raises(ValueError, match="dense synapses / recurrent matrices only"):
        loss(H1v2Frontend(3))
    with pytest.raises(ValueError, match="only frontends"):
        loss(nn.Sequential(H1v2Frontend(3)))
    with pytest.raises(ValueError, match="no H1 synapse or RC layer"):
        loss(nn.Sequential(nn.Linear(2, 2), H1v2Layer(2, taus=20e-3, dt=1e-3)))
    with pytest.raises(ValueError, match="must be a torch.nn.Module"):
        loss("model")


def test_bad_strengths_raise():
    syn = H1v2Synapse(2, 2)
    with pytest.raises(ValueError, match="lam=-1.0 must be >= 0"):
        topology_loss(syn, lam=-1.0)
    with pytest.raises(ValueError, match="limit=nan must be a finite number"):
        weight_magnitude_loss(syn, limit=float("nan"))
