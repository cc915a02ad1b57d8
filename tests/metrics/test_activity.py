"""layer_activity / ActivityMetric against numpy references."""

import numpy as np
import pytest
import torch

from nwave_lightning.metrics import ActivityMetric, layer_activity

from ._reference import activity_ref

KEYS = ("firing_rate", "dead_neurons", "dead_neurons_fraction", "membrane_mean", "membrane_var")


def _batch(batch, steps, widths=(5, 3), p=(0.05, 0.4)):
    spikes = [(torch.rand(batch, steps, n) < q).float() for n, q in zip(widths, p)]
    spikes[0][..., 0] = 0.0  # a neuron that never fires
    membranes = [torch.randn(batch, steps, n) * 0.3 + 0.5 for n in widths]
    return spikes, membranes


def _assert_matches(got, expected):
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key].dim() == 0
        assert float(got[key]) == pytest.approx(float(value), rel=1e-5, abs=1e-7), key


def test_functional_matches_numpy():
    spikes, membranes = _batch(3, 8)
    expected = activity_ref([[s.numpy() for s in spikes]], [[m.numpy() for m in membranes]])
    _assert_matches(layer_activity(spikes, membranes), expected)
    assert expected["layer_0/dead_neurons"] >= 1
    assert sorted(layer_activity(spikes, membranes)) == sorted(f"layer_{i}/{k}" for i in range(2) for k in KEYS)


def test_metric_over_batches_of_different_size_matches_concatenation():
    metric = ActivityMetric()
    batches = [_batch(b, t) for b, t in ((2, 7), (4, 3), (1, 11))]
    for spikes, membranes in batches:
        metric.update(spikes, membranes)
    expected = activity_ref(
        [[s.numpy() for s in sp] for sp, _ in batches], [[m.numpy() for m in mb] for _, mb in batches]
    )
    _assert_matches(metric.compute(), expected)
    assert len(metric.spike_count) == 1  # one running row: memory does not grow with batches


def test_a_neuron_is_dead_only_if_silent_in_every_batch():
    metric = ActivityMetric()
    silent = torch.zeros(1, 4, 2)
    metric.update([silent], [silent])
    assert float(metric.compute()["layer_0/dead_neurons"]) == 2.0
    fires = silent.clone()
    fires[0, 2, 1] = 1.0
    metric.update([fires], [fires])
    stats = metric.compute()
    assert float(stats["layer_0/dead_neurons"]) == 1.0 and float(stats["layer_0/dead_neurons_fraction"]) == 0.5


def test_forward_gives_batch_stats_and_keeps_accumulating():
    metric = ActivityMetric()
    first, second = _batch(2, 5), _batch(3, 4)
    batch_value = metric(*first)
    _assert_matches(batch_value, layer_activity(*first))
    metric(*second)
    expected = activity_ref([[s.numpy() for s in first[0]], [s.numpy() for s in second[0]]],
                            [[m.numpy() for m in first[1]], [m.numpy() for m in second[1]]])
    _assert_matches(metric.compute(), expected)


def test_float64_sums_keep_the_variance_of_large_membranes():
    # Float32 E[V^2] - E[V]^2 at V ~ 1e3 with std 1e-2 would lose every digit.
    rng = np.random.default_rng(0)
    values = 1000.0 + 0.01 * rng.standard_normal((4, 50, 8))
    metric = ActivityMetric()
    for chunk in np.split(values, 4):
        membrane = torch.from_numpy(chunk)
        metric.update([torch.zeros_like(membrane)], [membrane])
    assert float(metric.compute()["layer_0/membrane_var"]) == pytest.approx(values.var(), rel=1e-3)


def test_reset_and_empty_compute():
    metric = ActivityMetric()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert metric.compute() == {}
    metric.update(*_batch(2, 3))
    metric.reset()
    metric.update(*_batch(2, 3, widths=(4,), p=(0.5,)))  # another model after reset is fine
    assert sorted(metric.compute()) == sorted(f"layer_0/{k}" for k in KEYS)


def test_errors():
    metric = ActivityMetric()
    metric.update(*_batch(2, 3))
    with pytest.raises(ValueError, match=r"layer widths changed from \[5, 3\] to \[4\]"):
        metric.update(*_batch(2, 3, widths=(4,), p=(0.5,)))
    with pytest.raises(ValueError, match="spikes_list has 2 layers but membranes_list has 1"):
        layer_activity([torch.zeros(1, 2, 3)] * 2, [torch.zeros(1, 2, 3)])
    with pytest.raises(ValueError, match="must have the same"):
        layer_activity([torch.zeros(1, 2, 3)], [torch.zeros(1, 2, 4)])
    with pytest.raises(ValueError, match="non-empty list"):
        layer_activity([], [])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_inputs_give_the_cpu_result():
    spikes, membranes = _batch(3, 6)
    metric = ActivityMetric().to("cuda")
    metric.update([s.cuda() for s in spikes], [m.cuda() for m in membranes])
    got = metric.compute()
    assert all(v.device.type == "cuda" for v in got.values())
    _assert_matches({k: v.cpu() for k, v in got.items()}, layer_activity(spikes, membranes))
