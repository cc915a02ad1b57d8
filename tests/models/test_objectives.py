"""PopulationLoss / RateMSELoss against the loss functions they compose."""

from __future__ import annotations

import pytest
import torch

from nwave_lightning.loss import balanced_population_mse, firing_rate_target_mse_loss, topology_loss, weight_magnitude_loss
from nwave_lightning.models import H1Classifier, PatternGenerator, PopulationLoss, RateMSELoss


def test_population_loss_terms_and_weights():
    torch.manual_seed(0)
    net = H1Classifier(in_ch=3, num_classes=2, neurons_per_class=2, hidden=[5])
    spikes = [(torch.rand(4, 10, 5) < 0.3).float(), (torch.rand(4, 10, 4) < 0.3).float()]
    y = torch.tensor([0, 1, 1, 0])
    loss = PopulationLoss(
        num_classes=2, neurons_per_class=2, correct_rate=0.4, incorrect_rate=0.05, w_population=2.0,
        offsets_fr=[0.1, 0.2], multipliers_fr=[1.0, 3.0], w_activity=0.5, weight_limit=0.2, lambda_topology=1e-2, w_hardware=0.1,
    )  # fmt: skip
    out = loss(spk_out=spikes[-1], y=y, spikes_list=spikes, membranes_list=spikes, model=net)
    population = balanced_population_mse(spikes[-1], y, 2, 2, 0.4, 0.05)
    activity = firing_rate_target_mse_loss(spikes, [0.1, 0.2], [1.0, 3.0])
    magnitude, topology = weight_magnitude_loss(net, limit=0.2), topology_loss(net, lam=1e-2)
    assert float(out.components["population/mse"]) == pytest.approx(float(population))
    assert float(out.components["activity"]) == pytest.approx(float(activity))
    assert float(out.components["hardware/weight_mag"]) == pytest.approx(float(magnitude))
    assert float(out.components["hardware/topology"]) == pytest.approx(float(topology))
    expected = 2.0 * population + 0.5 * activity + 0.1 * (magnitude + topology)
    assert float(out.total) == pytest.approx(float(expected), rel=1e-6)


def test_population_loss_minimal_and_errors():
    out = PopulationLoss(2, 1)(spk_out=torch.ones(2, 3, 2), y=torch.tensor([0, 1]))
    assert sorted(out.components) == ["population/mse", "population/total", "total"]
    with pytest.raises(ValueError, match="both offsets_fr and multipliers_fr"):
        PopulationLoss(2, 1, offsets_fr=[0.1])


def test_rate_mse_loss_is_the_tutorial_loss():
    net = PatternGenerator()
    with torch.no_grad():
        net.synapse.weight[0, 0] = 2.0  # outside H1v2's 1.66: the penalty is active
    spikes = (torch.rand(16, 100, 8) < 0.5).float()
    target = torch.rand(100, 8)
    out = RateMSELoss(weight_limit=1.66)(spk_out=spikes, y=target.expand(16, -1, -1), model=net)
    rate = torch.nn.functional.mse_loss(spikes.mean(dim=0), target)
    assert float(out.components["rate"]) == pytest.approx(float(rate))
    assert float(out.components["weight_mag"]) == pytest.approx((2.0 - 1.66) ** 2, rel=1e-5)
    assert float(out.total) == pytest.approx(float(rate) + (2.0 - 1.66) ** 2, rel=1e-5)
    assert sorted(RateMSELoss(w_hardware=0.0)(spk_out=spikes, y=target).components) == ["rate", "total"]
