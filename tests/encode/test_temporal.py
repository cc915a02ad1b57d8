import pytest
import torch

from nwave_lightning.encode import Compose, DeltaModulation, Hold, OnOff
from nwave_lightning.layers import H1v2Frontend


def _delta_by_hand(values, threshold):
    """The delta modulator written out for one channel: (up, down) lists."""
    reference, up, down = values[0], [0.0], [0.0]
    for value in values[1:]:
        rise, fall = value - reference >= threshold, reference - value >= threshold
        reference += threshold * (rise - fall)
        up.append(float(rise))
        down.append(float(fall))
    return up, down


def test_delta_modulation_matches_the_hand_loop():
    signal = torch.tensor([0.0, 0.3, 1.0, 1.05, 0.4, -0.6, -0.5, 2.0, 2.0])
    up, down = _delta_by_hand(signal.tolist(), 0.25)
    assert up == [0, 1, 1, 1, 0, 0, 0, 1, 1] and down == [0, 0, 0, 0, 1, 1, 1, 0, 0]
    x = torch.stack([signal, -signal], dim=-1).unsqueeze(0)  # two channels: the mirror swaps up and down
    out = DeltaModulation(0.25)(x)[0]
    assert out[:, 0].tolist() == up and out[:, 2].tolist() == down
    assert out[:, 1].tolist() == down and out[:, 3].tolist() == up


def test_delta_events_pass_the_frontend_unchanged_and_a_constant_is_silent():
    x = torch.cumsum(torch.randn(3, 40, 2) * 0.3, dim=1)
    events = DeltaModulation(0.2)(x)
    assert torch.equal(H1v2Frontend(4)(events), events)
    assert DeltaModulation(0.2)(torch.full((1, 10, 1), 3.0)).sum() == 0


def test_hold_repeats_each_step():
    x = torch.arange(6.0).reshape(1, 3, 2)
    out = Hold(3)(x)
    assert out.shape == (1, 9, 2)
    assert out[0, :, 0].tolist() == [0, 0, 0, 2, 2, 2, 4, 4, 4]
    with pytest.raises(ValueError, match="k=0 must be a positive integer"):
        Hold(0)


def test_compose_chains_widths_and_steps():
    enc = Compose([OnOff(), Hold(2), DeltaModulation(0.5)])
    assert enc.out_features(3) == 12 and enc.steps_factor == 2
    x = torch.randn(2, 5, 3)
    assert torch.equal(enc(x), DeltaModulation(0.5)(Hold(2)(OnOff()(x))))
    with pytest.raises(ValueError, match="Compose: encoders must be"):
        Compose([torch.nn.ReLU()])
