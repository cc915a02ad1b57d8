"""Two gloo processes, different data per rank: compute() equals one process on all the data."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nwave_lightning.metrics import ActivityMetric, PopulationAccuracy, PopulationRecall

from ._reference import accuracy_ref, activity_ref, recall_ref

WORLD_SIZE = 2


def _rank_data():
    generator = torch.Generator().manual_seed(1)

    def batch(b, t):
        spikes = [(torch.rand(b, t, n, generator=generator) < q).float() for n, q in ((4, 0.1), (6, 0.3))]
        membranes = [torch.randn(b, t, n, generator=generator) + i for i, n in enumerate((4, 6))]
        return spikes, membranes, torch.randint(0, 2, (b,), generator=generator)

    data = [[batch(3, 5), batch(2, 7)], [batch(5, 4)]]
    for spikes, _, _ in data[0]:
        spikes[0][..., :2] = 0.0  # neurons 0 and 1 of layer 0 silent on rank 0 ...
    for spikes, _, _ in data[1]:
        spikes[0][..., 0] = 0.0  # ... neuron 1 fires on rank 1 only: dead only if ranks are summed first
        spikes[0][0, 0, 1] = 1.0
    return data


def _worker(rank, init_file, out_dir, data):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    try:
        activity, accuracy, recall = ActivityMetric(), PopulationAccuracy(2), PopulationRecall(2, positive_class=1)
        partial = ActivityMetric()  # only rank 0 feeds it: a rank without data must not break the sync
        for spikes, membranes, y in data[rank]:
            activity.update(spikes, membranes)
            accuracy.update(spikes[1], y)
            recall.update(spikes[1], y)
            if rank == 0:
                partial.update(spikes, membranes)
        results = {
            "activity": activity.compute(),
            "accuracy": accuracy.compute(),
            "recall": recall.compute(),
            "partial": partial.compute(),
            "local_rows_after_compute": len(activity.spike_count),  # unsynced again: accumulation can go on
        }
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_two_process_compute_equals_single_process_on_concatenated_data(tmp_path):
    data = _rank_data()
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path), data), nprocs=WORLD_SIZE, join=True)

    every = data[0] + data[1]
    expected_activity = activity_ref([[s.numpy() for s in b[0]] for b in every], [[m.numpy() for m in b[1]] for b in every])
    readout = torch.cat([b[0][1].sum(dim=1, keepdim=True) for b in every])  # votes only need spike counts
    labels = torch.cat([b[2] for b in every])
    expected_partial = activity_ref([[s.numpy() for s in b[0]] for b in data[0]], [[m.numpy() for m in b[1]] for b in data[0]])
    assert expected_activity["layer_0/dead_neurons"] == 1  # the per-rank counts would say 2 and 1

    for rank in range(WORLD_SIZE):
        results = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for expected, got in ((expected_activity, results["activity"]), (expected_partial, results["partial"])):
            assert set(got) == set(expected)
            for key, value in expected.items():
                assert float(got[key]) == pytest.approx(float(value), rel=1e-5, abs=1e-7), (rank, key)
        assert float(results["accuracy"]) == pytest.approx(accuracy_ref(readout.numpy(), labels.numpy(), 2))
        assert float(results["recall"]) == pytest.approx(recall_ref(readout.numpy(), labels.numpy(), 2, 1))
        assert results["local_rows_after_compute"] == 1
