"""EventDataModule: events generated here (no download) binned exactly as tonic's ToFrame bins them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

tonic = pytest.importorskip("tonic")
from tonic.transforms import ToFrame  # noqa: E402

from nwave_lightning.data import EventDataModule  # noqa: E402

DTYPE_1D = [("x", np.int64), ("t", np.int64), ("p", np.int64)]
DTYPE_2D = [("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)]


def _recording(rng, label, width=16, polarities=2, n=80, duration=None, two_d=False):
    events = np.zeros(n, dtype=DTYPE_2D if two_d else DTYPE_1D)
    events["x"] = (rng.integers(0, width // 2, n) + label * (width // 2)) % width  # the class shows in which channels fire
    events["p"] = rng.integers(0, polarities, n)
    events["t"] = np.sort(rng.integers(0, duration or 50_000, n))
    if two_d:
        events["y"] = rng.integers(0, 3, n)
    return events, label


class _TonicLike:
    """What a tonic dataset offers: len, [i] -> (events, target), sensor_size."""

    sensor_size = (16, 1, 2)

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def test_fixed_bins_equal_tonic_to_frame():
    rng = np.random.default_rng(0)
    train = [_recording(rng, i % 2) for i in range(12)]
    val = [_recording(rng, i % 2) for i in range(4)]
    dm = EventDataModule(_TonicLike(train), val=val, n_time_bins=20, batch_size=4, shuffle=False)
    frames = dm.dataset("train").tensors[0]
    assert frames.shape == (12, 20, 2 * 16) and not dm.variable_length
    to_frame = ToFrame(sensor_size=(16, 1, 2), n_time_bins=20)
    for i, (events, _) in enumerate(train):
        expected = to_frame(events.copy())  # (T, P, W)
        assert torch.equal(frames[i], torch.from_numpy(expected.reshape(20, -1).astype(np.float32)))
    assert dm.dataset("train").tensors[1].tolist() == [i % 2 for i in range(12)]
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 20, 32) and float(x.sum()) > 0


def test_time_windows_count_events_per_window_and_pad_shorter_recordings():
    rng = np.random.default_rng(1)
    window = 1000
    train = [_recording(rng, i % 2, duration=int(rng.integers(3000, 9000))) for i in range(10)]
    dm = EventDataModule(train, val=train[:4], sensor_size=(16, 1, 2), time_window=window, start_time=0,
                         include_incomplete=True, batch_size=10, shuffle=False)
    assert dm.variable_length
    x, y, meta = next(iter(dm.train_dataloader()))
    lengths = meta["mask"].sum(1)
    assert len(set(lengths.tolist())) > 1  # recordings of different durations: different frame counts
    for i, (events, _) in enumerate(train):
        # the reference, by hand: frame k counts channel p * W + x's events with k w <= t < (k + 1) w
        reference = np.zeros((int(lengths[i]), 2 * 16), dtype=np.float32)
        for event in events:
            k = int(event["t"]) // window
            if k < len(reference):
                reference[k, int(event["p"]) * 16 + int(event["x"])] += 1
        assert np.array_equal(x[i, : len(reference)].numpy(), reference)
        assert int(lengths[i]) == int(events["t"].max()) // window + 1  # every event lands in a frame
        assert torch.all(x[i, len(reference):] == 0)
        tonic_frames = ToFrame(sensor_size=(16, 1, 2), time_window=window, start_time=0, include_incomplete=True)(events.copy())
        assert np.array_equal(tonic_frames.reshape(len(tonic_frames), -1), reference)


def test_two_dimensional_sensors_flatten_polarity_rows_columns():
    rng = np.random.default_rng(2)
    train = [_recording(rng, i % 2, width=4, two_d=True) for i in range(8)]
    dm = EventDataModule(train, val=train[:2], sensor_size=(4, 3, 2), n_time_bins=5, shuffle=False)
    frames = dm.dataset("train").tensors[0]
    assert frames.shape == (8, 5, 2 * 3 * 4)
    expected = ToFrame(sensor_size=(4, 3, 2), n_time_bins=5)(train[0][0].copy())  # (T, P, H, W)
    assert torch.equal(frames[0], torch.from_numpy(expected.reshape(5, -1).astype(np.float32)))
    event = train[0][0][0]  # one event's channel index is p * H * W + y * W + x
    assert frames[0, :, int(event["p"]) * 12 + int(event["y"]) * 4 + int(event["x"])].sum() >= 1


def test_stratified_validation_split_of_events():
    rng = np.random.default_rng(3)
    train = [_recording(rng, label) for label in [0] * 20 + [1] * 10]
    dm = EventDataModule(train, sensor_size=(16, 1, 2), n_time_bins=4, val_fraction=0.2)
    assert torch.bincount(dm.dataset("val").tensors[1]).tolist() == [4, 2]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_time_bins=4, time_window=100.0), "give exactly one of n_time_bins"),
        (dict(n_time_bins=0), r"n_time_bins=0 must be a positive integer"),
        (dict(n_time_bins=4, sensor_size=(8, 1, 2)), r"train\[1\] has events outside sensor_size=\(8, 1, 2\)"),
        (dict(n_time_bins=4, sensor_size=None), r"sensor_size=None; give the sensor's \(W, H, P\)"),
    ],
)
def test_bad_settings(kwargs, match):
    rng = np.random.default_rng(4)
    train = [_recording(rng, i % 2) for i in range(6)]
    kwargs = {"sensor_size": (16, 1, 2), **kwargs}
    with pytest.raises(ValueError, match=match):
        EventDataModule(train, **kwargs)


def test_frames_instead_of_events_are_refused_with_the_fix():
    frames = [(np.zeros((5, 2, 16)), i % 2) for i in range(6)]
    with pytest.raises(ValueError, match=r"train\[0\] holds ndarray \(5, 2, 16\).*remove it"):
        EventDataModule(frames, sensor_size=(16, 1, 2), n_time_bins=4)


def test_single_polarity_recordings_as_tonic_shd_stores_them():
    """SHD's events: fields (t, x, p), float microseconds, p = 1 on a (700, 1, 1) sensor."""
    rng = np.random.default_rng(5)
    dtype = [("t", np.float64), ("x", np.int64), ("p", np.int64)]
    train = []
    for i in range(8):
        events = np.zeros(50, dtype=dtype)
        events["t"], events["x"], events["p"] = np.sort(rng.uniform(0, 1e5, 50)), rng.integers(0, 20, 50), 1
        train.append((events, i % 2))
    dm = EventDataModule(train, val=train[:2], sensor_size=(20, 1, 1), n_time_bins=10, shuffle=False)
    expected = ToFrame(sensor_size=(20, 1, 1), n_time_bins=10)(train[0][0].copy())
    assert torch.equal(dm.dataset("train").tensors[0][0], torch.from_numpy(expected.reshape(10, -1).astype(np.float32)))
    assert train[0][0]["p"].min() == 1  # the datamodule bins a copy: the caller's events stay as they were
