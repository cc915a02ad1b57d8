"""``EventDataModule``: event data (the chips' natural input) from ``tonic`` datasets or event lists.

Events are NumPy structured arrays with fields ``x``, ``t``, ``p`` (and ``y`` for
2-D sensors), as ``tonic`` defines them. Each recording is binned into frames
with ``tonic.transforms.ToFrame`` (tonic's own binning: the same frames as any
tonic pipeline) and flattened to ``(T, C)`` with ``C = P * H * W`` channels
(polarity first, then rows, then columns); a frame holds the number of events
of each channel in the bin. The frames then go through :class:`ArrayDataModule`:
stratified validation split, optional standardisation, padding with a mask when
recordings give different numbers of frames (``time_window`` binning).

What the H1 frontend does with the frames: a count of 1 passes as one spike; a
count above 1 saturates to one spike per step (the frontend clips at 1), so pick
bins short enough that a channel rarely fires twice in one.

``tonic`` is imported only here, when the datamodule is built: install it with
``pip install -e ".[events]"``. Nothing is downloaded at run time.

Spiking Heidelberg Digits, for users who have the files (``shd_train.h5.zip`` and
``shd_test.h5.zip`` with the ``.h5`` files extracted beside them) in ``data/SHD/``::

    import tonic
    from nwave_lightning.data import EventDataModule
    dm = EventDataModule(tonic.datasets.SHD("data", train=True), test=tonic.datasets.SHD("data", train=False),
                         n_time_bins=100, val_fraction=0.1)      # 700 channels, 20 classes

Example:
    >>> import numpy as np
    >>> def recording(label, rng):
    ...     events = np.zeros(30, dtype=[("x", int), ("t", int), ("p", int)])
    ...     events["x"], events["t"] = rng.integers(0, 4, 30) + 4 * label, np.sort(rng.integers(0, 10_000, 30))
    ...     return events, label
    >>> rng = np.random.default_rng(0)
    >>> dm = EventDataModule([recording(i % 2, rng) for i in range(20)], sensor_size=(8, 1, 1), n_time_bins=10)
    >>> x, y = next(iter(dm.train_dataloader()))
    >>> tuple(x.shape[1:]), dm.num_classes
    ((10, 8), 2)
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .arrays import ArrayDataModule

__all__ = ["EventDataModule", "bin_events"]

_OWNER = "EventDataModule"


def _to_frame(sensor_size, n_time_bins, time_window, start_time, end_time, include_incomplete):
    try:
        from tonic.transforms import ToFrame
    except ImportError:
        raise ImportError(
            f"{_OWNER} bins events with tonic, which is not installed; install it with "
            "pip install -e \".[events]\" (or pip install tonic)."
        ) from None
    if (n_time_bins is None) == (time_window is None):
        raise ValueError(
            f"{_OWNER}: give exactly one of n_time_bins (a fixed number of frames per recording) and time_window "
            f"(frames of a fixed duration, in the events' time unit), got n_time_bins={n_time_bins!r}, time_window={time_window!r}."
        )
    if n_time_bins is not None and (isinstance(n_time_bins, bool) or not isinstance(n_time_bins, int) or n_time_bins < 1):
        raise ValueError(f"{_OWNER}: n_time_bins={n_time_bins!r} must be a positive integer.")
    if time_window is not None and (isinstance(time_window, bool) or not isinstance(time_window, (int, float)) or time_window <= 0):
        raise ValueError(f"{_OWNER}: time_window={time_window!r} must be a positive number (the events' time unit, e.g. us).")
    kwargs = dict(sensor_size=tuple(sensor_size), n_time_bins=n_time_bins, time_window=time_window)
    if time_window is not None:  # start/end and the last partial window apply to time windows only
        kwargs.update(start_time=start_time, end_time=end_time, include_incomplete=include_incomplete)
    return ToFrame(**kwargs)


def bin_events(recordings, sensor_size, to_frame, name: str) -> tuple[list[np.ndarray], np.ndarray]:
    """``(frames (T_i, C) list, labels (N,))`` of ``(events, label)`` items binned by ``to_frame``.

    Raises:
        ValueError: an item that is not ``(events, label)``, events without the ``x``/``t``/``p``
            fields, or events outside ``sensor_size``; naming the item.
    """
    frames, labels = [], []
    width, height, polarities = (int(v) for v in sensor_size)
    for index in range(len(recordings)):
        item = recordings[index]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ValueError(f"{_OWNER}: {name}[{index}] is a {type(item).__name__}; each item must be (events, label).")
        events, label = item
        fields = getattr(getattr(events, "dtype", None), "names", None) or ()
        if not {"x", "t", "p"} <= set(fields):
            raise ValueError(
                f"{_OWNER}: {name}[{index}] holds {type(events).__name__} {getattr(events, 'shape', '')} with fields {list(fields)}; "
                "events must be a structured array with fields x, t, p (and y), as tonic gives them. If the dataset "
                "has a transform that makes frames already, remove it: this datamodule bins with tonic's ToFrame."
            )
        # A single-polarity sensor takes any one p value (tonic's SHD stores p = 1; ToFrame maps it to 0).
        polarity_outside = polarities > 1 and (events["p"].min() < 0 or events["p"].max() >= polarities)
        if len(events) and (events["x"].min() < 0 or events["x"].max() >= width or polarity_outside
                            or ("y" in fields and (events["y"].min() < 0 or events["y"].max() >= height))):
            raise ValueError(
                f"{_OWNER}: {name}[{index}] has events outside sensor_size={tuple(sensor_size)} (x < {width}, y < {height}, "
                f"p < {polarities}); give the sensor size the recording was made with."
            )
        frame = to_frame(events.copy())  # ToFrame may rewrite p of single-polarity sensors in place
        frames.append(frame.reshape(frame.shape[0], -1).astype(np.float32))
        labels.append(int(np.asarray(label)))
    return frames, np.asarray(labels)


class EventDataModule(ArrayDataModule):
    """Event recordings, binned to ``(T, C)`` frames with ``tonic.transforms.ToFrame``.

    Args:
        train: A ``tonic`` dataset (any object with ``len`` and ``[i] -> (events, label)``)
            or a list of ``(events, label)`` pairs.
        val: Validation recordings (same forms); ``None``: a stratified ``val_fraction`` of ``train``.
        test: Test recordings; ``None``: as :class:`ArrayDataModule` (``test_fraction``, else the validation split).
        sensor_size: ``(W, H, P)`` of the sensor; default ``train.sensor_size`` (tonic datasets have it).
        n_time_bins: Frames per recording (ToFrame's ``n_time_bins``: the recording's own time span
            in equal bins); exclusive with ``time_window``.
        time_window: Frame duration in the events' time unit (ToFrame's ``time_window``); recordings
            of different durations give different numbers of frames, padded with a mask.
        start_time: With ``time_window``: where the first frame starts (default: the first event).
        end_time: With ``time_window``: where the last frame ends (default: the last event).
        include_incomplete: With ``time_window``: keep the last, partial frame.
        num_classes: As :class:`ArrayDataModule`.
        val_fraction: As :class:`ArrayDataModule`.
        test_fraction: As :class:`ArrayDataModule`.
        standardize: Standardise the event counts (default ``False``: counts are what the chip reads).
        encoder: As :class:`ArrayDataModule`.
        batch_size: Samples per batch.
        num_workers: DataLoader workers.
        seed: Seeds the splits and the shuffling.
        shuffle: Shuffle the training split every epoch.
    """

    def __init__(
        self,
        train: Any,
        val: Any = None,
        test: Any = None,
        sensor_size: Optional[Sequence[int]] = None,
        n_time_bins: Optional[int] = None,
        time_window: Optional[float] = None,
        start_time: Optional[float] = None,
        end_time: Optional[float] = None,
        include_incomplete: bool = False,
        num_classes: Optional[int] = None,
        val_fraction: float = 0.2,
        test_fraction: float = 0.0,
        standardize: bool = False,
        encoder: Any = None,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        sensor_size = sensor_size if sensor_size is not None else getattr(train, "sensor_size", None)
        if sensor_size is None or len(tuple(sensor_size)) != 3:
            raise ValueError(
                f"{_OWNER}: sensor_size={sensor_size!r}; give the sensor's (W, H, P), e.g. (700, 1, 1) for SHD "
                "(tonic datasets carry it as .sensor_size)."
            )
        self.sensor_size = tuple(int(v) for v in sensor_size)
        to_frame = _to_frame(self.sensor_size, n_time_bins, time_window, start_time, end_time, include_incomplete)
        arrays = {}
        for name, recordings in (("train", train), ("val", val), ("test", test)):
            if recordings is None:
                arrays[name] = (None, None)
                continue
            if not hasattr(recordings, "__len__") or not hasattr(recordings, "__getitem__") or len(recordings) == 0:
                raise ValueError(f"{_OWNER}: {name} must be a non-empty tonic dataset or list of (events, label) pairs.")
            arrays[name] = bin_events(recordings, self.sensor_size, to_frame, name)
        super().__init__(
            *arrays["train"], *arrays["val"], *arrays["test"],
            num_classes=num_classes, val_fraction=val_fraction, test_fraction=test_fraction, standardize=standardize,
            encoder=encoder, batch_size=batch_size, num_workers=num_workers, seed=seed, shuffle=shuffle,
        )
