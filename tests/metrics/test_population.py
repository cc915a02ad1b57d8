"""Population votes under a padding mask, and the class count read from the scored model."""

import pytest
import torch

from nwave_lightning.metrics import PopulationAccuracy, PopulationRecall, accuracy_population, population_votes
from nwave_lightning.models import H1Classifier, PopulationLoss


def test_only_real_steps_vote():
    spikes = torch.zeros(1, 5, 2)
    spikes[0, :2, 0] = 1.0  # class 0 fires on the two real steps
    spikes[0, 2:, 1] = 1.0  # class 1 on the three padded ones
    mask = torch.tensor([[True, True, False, False, False]])
    assert population_votes(spikes, 2, mask=mask).tolist() == [[2.0, 0.0]]
    assert accuracy_population(spikes, torch.tensor([0]), 2, mask=mask).item() == 1.0
    assert accuracy_population(spikes, torch.tensor([0]), 2).item() == 0.0


def test_metrics_and_loss_take_the_class_count_from_the_model():
    net = H1Classifier(in_ch=2, num_classes=3, neurons_per_class=2, hidden=[4])
    spikes = torch.zeros(2, 3, 6)
    spikes[0, :, 4:] = 1.0  # votes class 2
    spikes[1, :, :2] = 1.0  # votes class 0
    y = torch.tensor([2, 1])
    accuracy, recall = PopulationAccuracy(), PopulationRecall(positive_class=2)
    accuracy.update(spikes, y, model=net)
    recall.update(spikes, y, model=net)
    assert accuracy.compute().item() == 0.5 and recall.compute().item() == 1.0
    out = PopulationLoss(correct_rate=1.0, incorrect_rate=0.0)(spk_out=spikes, y=y, model=net)
    explicit = PopulationLoss(num_classes=3, neurons_per_class=2, correct_rate=1.0, incorrect_rate=0.0)(spk_out=spikes, y=y)
    assert out.total.item() == pytest.approx(explicit.total.item())


def test_without_count_and_without_a_model_that_has_one_the_error_says_what_to_do():
    with pytest.raises(ValueError, match="num_classes is not given and the model .*has no num_classes attribute"):
        PopulationAccuracy().update(torch.zeros(1, 2, 4), torch.tensor([0]), model=torch.nn.Linear(1, 1))
    with pytest.raises(ValueError, match="PopulationLoss: num_classes is not given"):
        PopulationLoss()(spk_out=torch.zeros(1, 2, 4), y=torch.tensor([0]))
    with pytest.raises(ValueError, match=r"positive_class=3 must be a class index in \[0, 2\]"):
        PopulationRecall(positive_class=3).update(torch.zeros(1, 2, 3), torch.tensor([0]), model=H1Classifier(in_ch=1, num_classes=3, hidden=[2]))
