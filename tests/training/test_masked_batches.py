"""Variable-length batches: padded steps change neither the loss nor the prediction of a sample."""

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from nwave_lightning.encode import Compose, Hold, OnOff
from nwave_lightning.metrics import PopulationAccuracy, population_votes
from nwave_lightning.models import H1Classifier, PopulationLoss
from nwave_lightning.training import BatchFormatError, SNNModule, batch_mask


class _Batches(Dataset):
    """A loader's worth of ready batches (batch_size=None yields them as they are)."""

    def __init__(self, batches):
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        return self.batches[index]


def _net():
    torch.manual_seed(3)
    net = H1Classifier(in_ch=3, num_classes=2, neurons_per_class=3, hidden=[12], encoder=Compose([OnOff(0.5), Hold(2)]))
    with torch.no_grad():  # strong enough weights that the readout fires and the loss is informative
        for synapse in net.synapses:
            synapse.weight.uniform_(-0.3, 1.6)
    return net


def _samples():
    torch.manual_seed(7)
    a, b = torch.randn(9, 3), torch.randn(15, 3)
    return (a, 0), (b, 1)


def _padded_batch(samples, steps):
    x = torch.zeros(len(samples), steps, 3)
    mask = torch.zeros(len(samples), steps, dtype=torch.bool)
    for i, (sample, _) in enumerate(samples):
        x[i, : len(sample)], mask[i, : len(sample)] = sample, True
    return x, torch.tensor([label for _, label in samples]), {"mask": mask}


def test_same_loss_and_prediction_alone_and_padded_in_a_batch():
    net, loss = _net(), PopulationLoss(offsets_fr=[0.1, 0.1], multipliers_fr=[1.0, 1.0])
    samples = _samples()
    x, y, meta = _padded_batch(samples, steps=20)  # both padded (9 -> 20, 15 -> 20)
    spikes, membranes = net(x)
    together = loss(spk_out=spikes[-1], y=y, spikes_list=spikes, membranes_list=membranes, model=net, mask=meta["mask"])
    votes = population_votes(spikes[-1], 2, mask=meta["mask"])
    alone_losses, alone_votes = [], []
    for sample, label in samples:
        s, m = net(sample.unsqueeze(0))
        alone_losses.append(loss(spk_out=s[-1], y=torch.tensor([label]), spikes_list=s, membranes_list=m, model=net).components)
        alone_votes.append(population_votes(s[-1], 2))
    expected = (alone_losses[0]["population/mse"] + alone_losses[1]["population/mse"]) / 2  # a mean over samples
    assert torch.allclose(together.components["population/mse"], expected, atol=1e-7)
    assert torch.equal(votes, torch.cat(alone_votes))
    for (sample, label), alone in zip(samples, alone_losses):  # one sample padded: every component, activity too
        x1, y1, meta1 = _padded_batch([(sample, label)], steps=20)
        s, m = net(x1)
        padded = loss(spk_out=s[-1], y=y1, spikes_list=s, membranes_list=m, model=net, mask=meta1["mask"]).components
        for key, value in alone.items():
            assert torch.allclose(padded[key], value, atol=1e-7), key
    assert together.components["population/mse"].item() > 0 and votes.sum() > 0
    # without the mask the padded steps do count: the test can fail
    unmasked = loss(spk_out=spikes[-1], y=y, spikes_list=spikes, membranes_list=membranes, model=net)
    assert not torch.allclose(unmasked.components["activity"], together.components["activity"])


def test_snn_module_logs_the_same_values_for_padded_and_single_batches():
    samples = _samples()
    padded = _Batches([_padded_batch(samples, steps=20)])
    singles = _Batches([_padded_batch([s], steps=len(s[0])) for s in samples])  # no padding at all
    results = []
    for loader in (padded, singles):
        module = SNNModule(_net(), loss=PopulationLoss(), metrics={"acc": PopulationAccuracy()}, sign_annealing=False)
        trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
        results.append(trainer.validate(module, DataLoader(loader, batch_size=None), verbose=False)[0])
    for key in ("val_loss", "val_acc", "val_chip_loss", "val/layer_0/firing_rate", "val/layer_1/membrane_mean"):
        assert results[0][key] == pytest.approx(results[1][key], abs=1e-6), key


def test_a_loss_without_mask_argument_is_named():
    def plain_loss(spk_out, y):
        return spk_out.mean()

    module = SNNModule(_net(), loss=plain_loss, sign_annealing=False, activity=False, chip_eval=False)
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    with pytest.warns(UserWarning, match="padded steps count in them"):
        trainer.validate(module, DataLoader(_Batches([_padded_batch(_samples(), 20)]), batch_size=None), verbose=False)


def test_bad_masks_are_refused():
    x = torch.zeros(2, 4, 1)
    with pytest.raises(BatchFormatError, match=r"meta\['mask'\] has shape \(2, 3\)"):
        batch_mask({"mask": torch.ones(2, 3, dtype=torch.bool)}, x)
    with pytest.raises(BatchFormatError, match="without any real step"):
        batch_mask({"mask": torch.tensor([[True] * 4, [False] * 4])}, x)


def test_more_classes_in_the_data_than_in_the_net_fail_before_any_step():
    import numpy as np

    from nwave_lightning.data import ArrayDataModule

    rng = np.random.default_rng(0)
    dm = ArrayDataModule(rng.normal(size=(30, 6, 3)), np.arange(30) % 3)  # three classes, the net has two
    module = SNNModule(_net(), loss=PopulationLoss(), sign_annealing=False)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    with pytest.raises(ValueError, match=r"the data have num_classes=3 but the net's readout has num_classes=2"):
        trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 0
