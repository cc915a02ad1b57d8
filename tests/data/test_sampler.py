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


def test_a_resumable_loader_continues_the_interrupted_epoch_in_its_own_order():
    from nwave_lightning.data._base import ResumableDataLoader

    def loader():
        return ResumableDataLoader(list(range(10)), batch_size=2, sampler=EpochShuffleSampler(10, seed=3))

    whole = loader()
    whole.sampler.set_epoch(4)
    epoch = [batch.tolist() for batch in whole]
    whole.consumed = 3  # three batches trained when the checkpoint was written
    state = whole.state_dict()
    assert state == {"consumed": 3, "epoch": 4}
    resumed = loader()  # a fresh process: sampler at epoch 0 until the state arrives
    resumed.load_state_dict(state)
    assert [batch.tolist() for batch in resumed] == epoch[3:]
    assert [batch.tolist() for batch in resumed] == epoch  # only the first pass skips
