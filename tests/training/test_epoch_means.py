"""EpochMeans: batch-size-weighted means per key, however the keys arrive."""

import pytest
import torch

from nwave_lightning.training.epoch_means import EpochMeans


def test_keys_added_in_separate_updates_of_one_batch_average_over_samples():
    means = EpochMeans()
    batches = [(torch.tensor(1.0), torch.tensor(10.0), 3), (torch.tensor(4.0), torch.tensor(20.0), 1)]
    for a, b, size in batches:
        means.update({"a": a}, size)
        means.update({"b": b}, size)
    got = {key: float(value) for key, value in means.compute().items()}
    assert got == pytest.approx({"a": (1.0 * 3 + 4.0) / 4, "b": (10.0 * 3 + 20.0) / 4})


def test_a_key_seen_on_some_batches_only_averages_over_those():
    means = EpochMeans()
    means.update({"loss": 2.0, "extra": 6.0}, 2)
    means.update({"loss": 4.0}, 2)
    got = {key: float(value) for key, value in means.compute().items()}
    assert got == pytest.approx({"loss": 3.0, "extra": 6.0})


def test_reduce_sum_sees_sums_and_weights_and_reset_clears():
    means = EpochMeans()
    means.update({"x": 1.0, "y": 10.0}, 2)
    means.update({"x": 4.0}, 1)
    seen = []
    # Another rank saw x = 7 on 3 samples and y = 0 on 5: the collective adds its sums and weights.
    other = torch.tensor([7.0 * 3, 0.0 * 5, 3.0, 5.0], dtype=torch.float64)

    def reduce_sum(packed):
        seen.append(packed.clone())
        return packed + other

    got = {key: float(value) for key, value in means.compute(reduce_sum).items()}
    # One collective; keys sorted, sums first then weights: [sum_x, sum_y, w_x, w_y].
    assert len(seen) == 1
    assert seen[0].tolist() == [1.0 * 2 + 4.0 * 1, 10.0 * 2, 3.0, 2.0]
    assert got == pytest.approx({"x": (2.0 + 4.0 + 21.0) / (3 + 3), "y": (20.0 + 0.0) / (2 + 5)})
    assert {key: float(value) for key, value in means.compute().items()} == pytest.approx({"x": 2.0, "y": 10.0})
    means.reset()
    assert means.compute() == {}
    means.update({"z": 3.0}, 4)  # after reset nothing of the old epoch leaks into the new one
    assert {key: float(value) for key, value in means.compute().items()} == {"z": 3.0}


# ---- two gloo ranks, different data and batch sizes: the epoch means of one process on all the data
WORLD_SIZE = 2
# Per rank: (batch size, {key: batch mean}); rank 1 has fewer, larger and more extreme batches,
# so a mean of the two ranks' means (or an unweighted mean of batches) would be off.
RANK_BATCHES = [
    [(4, {"loss": 1.0, "population/mse": 0.50}), (4, {"loss": 2.0, "population/mse": 0.25}),
     (1, {"loss": 9.0, "population/mse": 1.00})],
    [(5, {"loss": 0.5, "population/mse": 0.10}), (1, {"loss": 4.0, "population/mse": 0.30})],
]


def _rank_worker(rank, init_file, out_dir):
    import os

    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    try:
        means = EpochMeans()
        for size, values in RANK_BATCHES[rank]:
            means.update({key: torch.tensor(value) for key, value in values.items()}, size)

        def reduce_sum(tensor):  # what the DDP strategy's reduce(op="sum") does
            tensor = tensor.clone()
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
            return tensor

        local = {key: float(value) for key, value in means.compute().items()}
        synced = {key: float(value) for key, value in means.compute(reduce_sum).items()}
        torch.save({"local": local, "synced": synced}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_two_gloo_ranks_give_the_means_of_one_process_on_all_the_data(tmp_path):
    import numpy as np
    import torch.multiprocessing as mp

    # Forked, not spawned: the ranks start in milliseconds instead of re-importing torch and Lightning.
    mp.start_processes(_rank_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD_SIZE, join=True,
                       start_method="fork")
    every = RANK_BATCHES[0] + RANK_BATCHES[1]
    sizes = np.array([size for size, _ in every], dtype=float)
    expected = {key: float(np.average([values[key] for _, values in every], weights=sizes)) for key in every[0][1]}
    single = EpochMeans()
    for size, values in every:
        single.update(values, size)
    assert {key: float(value) for key, value in single.compute().items()} == pytest.approx(expected)
    results = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD_SIZE)]
    for rank, result in enumerate(results):
        assert result["synced"] == pytest.approx(expected, rel=1e-6), rank
    # The test can tell: each rank's own means, and their plain average, differ from the true means.
    naive = {key: (results[0]["local"][key] + results[1]["local"][key]) / 2 for key in expected}
    for key in expected:
        assert abs(naive[key] - expected[key]) > 1e-3 and all(abs(r["local"][key] - expected[key]) > 1e-3 for r in results)
