"""accuracy_population / PopulationAccuracy against an explicit-loop reference."""

import pytest
import torch

from nwave_lightning.metrics import PopulationAccuracy, accuracy_population, population_votes

from ._reference import accuracy_ref, votes_loop


@pytest.mark.parametrize("num_classes,npc", [(2, 3), (4, 2), (3, 1)])
def test_functional_matches_loop_reference(num_classes, npc):
    spk = (torch.rand(16, 5, num_classes * npc) < 0.3).float()
    y = torch.randint(0, num_classes, (16,))
    got = accuracy_population(spk, y, num_classes)
    assert got.dim() == 0 and got.dtype == torch.float32
    assert float(got) == pytest.approx(accuracy_ref(spk.numpy(), y.numpy(), num_classes))
    torch.testing.assert_close(population_votes(spk, num_classes).double(), torch.from_numpy(votes_loop(spk, num_classes)))


def test_seed_recall_example_decoding_is_the_same():
    # The vendor SDK's decoding: spk_out.sum(1).view(B, C, -1).sum(2).argmax(1).
    spk = (torch.rand(10, 4, 6) < 0.4).float()
    y = torch.randint(0, 3, (10,))
    seed_pred = spk.sum(dim=1).view(10, 3, -1).sum(dim=2).argmax(dim=1)
    assert float(accuracy_population(spk, y, 3)) == pytest.approx(float((seed_pred == y).float().mean()))


def test_ties_go_to_the_lowest_class():
    spk = torch.ones(1, 2, 4)
    assert float(accuracy_population(spk, torch.tensor([0]), 2)) == 1.0
    assert float(accuracy_population(spk, torch.tensor([1]), 2)) == 0.0


def test_metric_accumulates_like_the_concatenated_batch():
    metric = PopulationAccuracy(num_classes=3)
    batches = [((torch.rand(b, 4, 6) < 0.4).float(), torch.randint(0, 3, (b,))) for b in (5, 2, 9)]
    for spk, y in batches:
        metric.update(spk, y, spikes_list=None, model=None)  # contract extras are ignored
    all_spk, all_y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    assert float(metric.compute()) == pytest.approx(accuracy_ref(all_spk.numpy(), all_y.numpy(), 3))
    metric.reset()
    assert int(metric.total) == 0


def test_forward_returns_the_batch_value():
    metric = PopulationAccuracy(num_classes=2)
    spk = torch.zeros(2, 1, 2)
    spk[:, :, 1] = 1.0
    assert float(metric(spk, torch.tensor([1, 1]))) == 1.0
    assert float(metric(spk, torch.tensor([0, 0]))) == 0.0
    assert float(metric.compute()) == 0.5


def test_errors():
    with pytest.raises(ValueError, match="num_classes=0 must be a positive integer"):
        PopulationAccuracy(num_classes=0)
    with pytest.raises(ValueError, match="5 neurons, not a multiple of num_classes=2"):
        accuracy_population(torch.zeros(2, 3, 5), torch.tensor([0, 1]), 2)
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        PopulationAccuracy(2).update(torch.zeros(2, 3, 4), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="empty batch"):
        accuracy_population(torch.zeros(0, 3, 4), torch.zeros(0, dtype=torch.long), 2)
