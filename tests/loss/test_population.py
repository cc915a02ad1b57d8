"""balanced_population_mse against an explicit-loop reference and its analytic gradient."""

import numpy as np
import pytest
import torch

from nwave_lightning.loss import balanced_population_mse


def reference(spk, y, num_classes, npc, correct, incorrect):
    spk, y = spk.detach().double().numpy(), y.numpy()
    true_err, wrong_err = [], []
    for b in range(spk.shape[0]):
        for c in range(num_classes):
            for k in range(npc):
                rate = spk[b, :, c * npc + k].mean()
                if c == y[b]:
                    true_err.append((rate - correct) ** 2)
                else:
                    wrong_err.append((rate - incorrect) ** 2)
    return 0.5 * np.mean(true_err) + 0.5 * np.mean(wrong_err)


@pytest.mark.parametrize("num_classes,npc", [(2, 4), (3, 2), (5, 1)])
def test_value_matches_loop_reference(num_classes, npc):
    spk = (torch.rand(6, 9, num_classes * npc) < 0.3).float()
    y = torch.randint(0, num_classes, (6,))
    got = balanced_population_mse(spk, y, num_classes, npc, correct_rate=0.4, incorrect_rate=0.05)
    assert got.dim() == 0
    assert float(got) == pytest.approx(reference(spk, y, num_classes, npc, 0.4, 0.05), rel=1e-6)


def test_groups_weigh_half_each_regardless_of_class_count():
    # True-class neurons off by 1, wrong-class ones exact: loss is 0.5 for any num_classes.
    for num_classes in (2, 4, 7):
        spk = torch.zeros(3, 5, num_classes * 2)
        assert float(balanced_population_mse(spk, torch.zeros(3, dtype=torch.long), num_classes, 2, 1.0, 0.0)) == 0.5


def test_gradient_matches_analytic_derivative():
    batch, steps, num_classes, npc, correct, incorrect = 4, 6, 3, 2, 0.35, 0.02
    spk = torch.rand(batch, steps, num_classes * npc, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 2, 1, 2])
    balanced_population_mse(spk, y, num_classes, npc, correct, incorrect).backward()
    rates = spk.detach().mean(dim=1)
    expected = torch.empty_like(rates)
    for b in range(batch):
        for n in range(num_classes * npc):
            if n // npc == y[b]:
                expected[b, n] = (rates[b, n] - correct) / (batch * npc)
            else:
                expected[b, n] = (rates[b, n] - incorrect) / (batch * (num_classes - 1) * npc)
    expected = (expected / steps).unsqueeze(1).expand(-1, steps, -1)
    torch.testing.assert_close(spk.grad, expected)


def test_float_labels_with_whole_values_are_accepted():
    spk = (torch.rand(3, 4, 4) < 0.5).float()
    y = torch.tensor([0, 1, 1])
    a = balanced_population_mse(spk, y, 2, 2, 0.3, 0.1)
    b = balanced_population_mse(spk, y.float(), 2, 2, 0.3, 0.1)
    assert float(a) == float(b)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(num_classes=3, neurons_per_class=2), r"readout has 4 neurons but num_classes \* neurons_per_class = 3 \* 2 = 6"),
        (dict(num_classes=1, neurons_per_class=4), "at least 2"),
        (dict(num_classes=2, neurons_per_class=0), "neurons_per_class=0 must be a positive integer"),
        (dict(num_classes=2, neurons_per_class=2, correct_rate=float("nan")), "correct_rate=nan must be a finite number"),
    ],
)
def test_bad_configuration_raises(kwargs, match):
    args = dict(correct_rate=0.4, incorrect_rate=0.05) | kwargs
    with pytest.raises(ValueError, match=match):
        balanced_population_mse(torch.zeros(2, 3, 4), torch.tensor([0, 1]), **args)


@pytest.mark.parametrize(
    "y,match",
    [
        (torch.tensor([0, 2]), r"contains class 2, outside \[0, 1\]"),
        (torch.tensor([0, -1]), r"contains class -1"),
        (torch.tensor([0, 1, 1]), "batch size 2"),
        (torch.tensor([[1, 0], [0, 1]]), "not one-hot"),
        (torch.tensor([0.5, 1.0]), "non-integer"),
    ],
)
def test_bad_labels_raise(y, match):
    with pytest.raises(ValueError, match=match):
        balanced_population_mse(torch.zeros(2, 3, 4), y, 2, 2, 0.4, 0.05)


def test_bad_spikes_shape_raises():
    with pytest.raises(ValueError, match=r"spk_out must be a \(B, T, N\)"):
        balanced_population_mse(torch.zeros(2, 4), torch.tensor([0, 1]), 2, 2, 0.4, 0.05)


@pytest.mark.parametrize("kwargs", [{"correct_rate": 1.5}, {"incorrect_rate": -0.1}, {"offsets_fr": [0.1, 2.0], "multipliers_fr": [1.0, 1.0]}])
def test_rate_targets_outside_zero_one_are_refused_at_construction(kwargs):
    from nwave_lightning.models import PopulationLoss

    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=rf"PopulationLoss: {name}.* must be in \[0, 1\]"):
        PopulationLoss(num_classes=2, neurons_per_class=2, **kwargs)
