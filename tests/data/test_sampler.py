"""EpochShuffleSampler: order depends only on (seed, epoch), so a resumed run sees the same batches."""

from __future__ import annotations

from nwave_lightning.data import EpochShuffleSampler


def test_order_is_a_function_of_seed_and_epoch():
    a, b = EpochShuffleSampler(20, seed=1), EpochShuffleSampler(20, seed=1)
    orders = []
    for epoch in range(3):
        a.set_epoch(epoch)
        orders.append(list(a))
        assert sorted(orders[-1]) == list(range(20))
    b.set_epoch(2)  # a "resumed" sampler jumping straight to epoch 2
    assert list(b) == orders[2]
    assert orders[0] != orders[1] != orders[2]
    assert list(EpochShuffleSampler(20, seed=2)) != orders[0]
    assert len(a) == 20
