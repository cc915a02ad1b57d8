import numpy as np
import pytest
import torch

from nwave_lightning.encode import MinMax, OnOff
from nwave_lightning.layers import H1v2Frontend


def test_on_off_splits_the_sign_into_two_channels_by_hand():
    x = torch.tensor([[[1.0, -0.5, 0.0], [-3.0, 2.0, 0.25]]])
    out = OnOff(scale=2.0)(x)
    # on channels (relu(x) / 2), then off channels (relu(-x) / 2)
    expected = [[[0.5, 0.0, 0.0, 0.0, 0.25, 0.0], [0.0, 1.0, 0.125, 1.5, 0.0, 0.0]]]
    assert out.tolist() == expected
    assert OnOff().out_features(3) == 6


def test_on_off_keeps_the_negative_half_that_the_frontend_would_clip():
    x = -torch.rand(1, 50, 1)  # a purely negative signal: the bare frontend is silent
    assert H1v2Frontend(1)(x.clamp_min(0)).sum() == 0
    spikes = H1v2Frontend(2)(OnOff()(x))
    assert spikes[..., 0].sum() == 0 and spikes[..., 1].sum() == int(np.floor(float((-x).double().sum())))


def test_min_max_per_channel_by_hand():
    enc = MinMax(low=[0.0, -10.0], high=[2.0, 10.0])
    x = torch.tensor([[[1.0, 0.0], [3.0, -20.0], [-1.0, 5.0]]])
    assert enc(x).tolist() == [[[0.5, 0.5], [1.0, 0.0], [0.0, 0.75]]]
    with pytest.raises(ValueError, match="input has 3 channels but low/high give 2"):
        enc(torch.zeros(1, 2, 3))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: OnOff(scale=0.0), r"OnOff: scale=0.0 must be > 0"),
        (lambda: MinMax(low=1.0, high=1.0), "must be above low"),
        (lambda: MinMax(low=[0, 0], high=[1, 1, 1]), "low has 2 entries but high has 3"),
        (lambda: OnOff()(torch.zeros(2, 3)), r"expected \(B, T, C\)"),
    ],
)
def test_bad_settings_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make()
