"""Loader batches and hook recordings (sequence and step-wise models)."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from nwave_lightning.init.capture import batch_inputs, record
from nwave_lightning.layers.walk import synapse_layer_pairs

from ._models import StackNet, spike_trains


@pytest.mark.parametrize(
    "make_batch",
    [lambda x: x, lambda x: (x,), lambda x: (x, torch.zeros(len(x))), lambda x: [x, torch.zeros(len(x)), {"id": 1}]],
    ids=["bare", "x", "x_y", "x_y_meta"],
)
def test_batch_inputs_accepts_the_documented_batch_layouts(make_batch):
    x = torch.rand(3, 5, 2)
    inputs = batch_inputs([make_batch(x), make_batch(x + 1)], n_batches=1, device=None)
    assert len(inputs) == 1 and torch.equal(inputs[0], x)


def test_batch_inputs_stops_after_n_batches_and_reads_a_dataloader():
    x = torch.rand(10, 4, 2)
    inputs = batch_inputs(DataLoader(TensorDataset(x, torch.zeros(10)), batch_size=4), n_batches=5, device=None)
    assert [len(b) for b in inputs] == [4, 4, 2]
    assert torch.equal(torch.cat(inputs), x)


def test_batch_inputs_rejects_empty_loaders_and_unknown_batches():
    with pytest.raises(ValueError, match="no batches"):
        batch_inputs([], n_batches=2, device=None)
    with pytest.raises(ValueError, match="batch 0 is a dict"):
        batch_inputs([{"x": torch.zeros(1)}], n_batches=2, device=None)
    with pytest.raises(ValueError, match=r"TensorDataset .*DataLoader\(dataset, batch_size=16\)"):
        batch_inputs(TensorDataset(torch.zeros(4, 3, 2)), n_batches=2, device=None)


def test_padded_batches_are_cut_to_the_steps_every_sample_has():
    x = torch.rand(3, 6, 2)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    (inputs,) = batch_inputs([(x, torch.zeros(3), {"mask": mask})], n_batches=1, device=None)
    assert torch.equal(inputs, x[:, :4])
    with pytest.raises(ValueError, match=r"meta\['mask'\] of shape \(3, 5\) but x is \(3, 6, 2\)"):
        batch_inputs([(x, None, {"mask": mask[:, :5]})], n_batches=1, device=None)
    for bad, sample in ((mask & False, 0), (torch.cat([mask[:2], mask[2:].flip(1)]), 2), (mask.flip(1), 1)):
        with pytest.raises(ValueError, match=rf"sample {sample}'s meta\['mask'\] is .*pad each sequence at its end"):
            batch_inputs([(x, None, {"mask": bad})], n_batches=1, device=None)


def test_fluct_init_on_padded_data_equals_it_on_the_real_steps():
    """Padding (silent steps) would lower the measured rates and membrane statistics: it is left out."""
    from nwave_lightning.init import fluct_init

    torch.manual_seed(0)
    real = spike_trains(16, 120, 8)
    padded = torch.cat([real, torch.zeros(16, 80, 8)], dim=1)
    mask = torch.cat([torch.ones(16, 120, dtype=torch.bool), torch.zeros(16, 80, dtype=torch.bool)], dim=1)
    mask[0] = True  # one sample with no padding: the common real part is still the first 120 steps
    padded[0, 120:] = real[0, :80]
    results = []
    for batch in ([(real, None)], [(padded, None, {"mask": mask})]):
        torch.manual_seed(1)
        net = StackNet(in_ch=8, widths=(6,), taus=(20e-3,), topologies=("FF",))
        fluct_init(net, batch, xi_target=1.5)
        results.append(net.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(results[0].values(), results[1].values()))


def test_stepwise_and_sequence_models_record_the_same_tensors():
    torch.manual_seed(0)
    sequence = StackNet(widths=(6, 4), taus=(10e-3, 20e-3))
    stepwise = StackNet(widths=(6, 4), taus=(10e-3, 20e-3), stepwise=True)
    stepwise.load_state_dict(sequence.state_dict())
    x = spike_trains(5, 12, 13)
    inputs = [x[:3], x[3:]]
    a = record(sequence, inputs, synapse_layer_pairs(sequence))
    b = record(stepwise, inputs, synapse_layer_pairs(stepwise))
    for rec_a, rec_b in zip(a, b):
        for name in rec_a._fields:
            assert getattr(rec_a, name).shape[:2] == (5, 12)
            torch.testing.assert_close(getattr(rec_a, name), getattr(rec_b, name))
    spikes, membranes = sequence(x)
    torch.testing.assert_close(a[1].membrane, membranes[1])
    torch.testing.assert_close(a[1].inputs, spikes[0])


def test_a_pair_the_forward_never_uses_is_reported():
    net = StackNet(widths=(6, 4), taus=(10e-3, 20e-3))
    net.forward = lambda x: net.layers[0](net.synapses[0](net.f0(x)))
    with pytest.raises(ValueError, match="never called"):
        record(net, [spike_trains(2, 5, 13)], synapse_layer_pairs(net))
