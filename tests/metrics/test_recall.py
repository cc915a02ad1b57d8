"""population_recall / PopulationRecall against an explicit-loop reference."""

import pytest
import torch

from nwave_lightning.metrics import PopulationRecall, population_recall

from ._reference import recall_ref


@pytest.mark.parametrize("positive_class", [0, 1, 2])
def test_functional_matches_loop_reference(positive_class):
    spk = (torch.rand(20, 6, 9) < 0.3).float()
    y = torch.randint(0, 3, (20,))
    got = population_recall(spk, y, 3, positive_class)
    assert got.dim() == 0
    assert float(got) == pytest.approx(recall_ref(spk.numpy(), y.numpy(), 3, positive_class))


def test_no_positive_sample_scores_zero():
    assert float(population_recall(torch.ones(2, 1, 2), torch.tensor([0, 0]), 2, positive_class=1)) == 0.0


def test_metric_accumulates_like_the_concatenated_batch():
    metric = PopulationRecall(num_classes=2, positive_class=1)
    batches = [((torch.rand(b, 3, 4) < 0.5).float(), torch.randint(0, 2, (b,))) for b in (7, 3, 6)]
    for spk, y in batches:
        metric.update(spk, y)
    all_spk, all_y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    assert float(metric.compute()) == pytest.approx(recall_ref(all_spk.numpy(), all_y.numpy(), 2, 1))


def test_errors():
    with pytest.raises(ValueError, match=r"positive_class=2 must be a class index in \[0, 1\]"):
        PopulationRecall(num_classes=2, positive_class=2)
    with pytest.raises(ValueError, match="positive_class=True"):
        population_recall(torch.zeros(1, 1, 2), torch.tensor([0]), 2, positive_class=True)
