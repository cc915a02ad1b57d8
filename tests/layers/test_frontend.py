import dataclasses

import pytest
import torch

from nwave_lightning.hardware import H1V2
from nwave_lightning.layers import H1v1Frontend, H1v2Frontend, prepare_net


def _loop(x, gain=1.0, x_max=1.0):
    """A[t] = A[t-1] + gain * clamp(x, 0, x_max); F = H(A - 1); A -= F, written out per element."""
    b, t_steps, c = x.shape
    out = torch.zeros_like(x)
    for i in range(b):
        for k in range(c):
            acc = 0.0
            for t in range(t_steps):
                acc += gain * min(max(float(x[i, t, k]), 0.0), x_max)
                if acc >= 1.0:
                    out[i, t, k] = 1.0
                    acc -= 1.0
    return out


@pytest.mark.parametrize("cls", [H1v1Frontend, H1v2Frontend])
def test_analog_input_encoding_matches_the_equation(cls):
    x = torch.rand(2, 40, 3) * 1.4 - 0.2  # includes negatives and values above x_max
    frontend = cls(3)
    expected = _loop(x.double()).float()
    with pytest.warns(UserWarning, match="negative values"):
        assert torch.equal(frontend(x), expected)
    prepare_net(frontend)
    steps = torch.stack([frontend(x[:, t]) for t in range(x.shape[1])], 1)
    assert torch.equal(steps, expected)


def test_binary_spike_trains_pass_unchanged_and_carry_no_gradient():
    spikes = (torch.rand(3, 50, 13) < 0.3).float().requires_grad_(True)
    out = H1v2Frontend(13)(spikes)
    assert torch.equal(out, spikes.detach())
    assert not out.requires_grad


def test_constant_input_fires_at_its_rate():
    out = H1v2Frontend(1)(torch.full((1, 100, 1), 0.25))
    assert int(out.sum()) == 25


def test_frontend_has_no_parameters_and_validates_width():
    frontend = H1v2Frontend(4)
    assert list(frontend.parameters()) == []
    with pytest.raises(ValueError, match=r"H1v2Frontend: input has 5 features .* in_ch is 4"):
        frontend(torch.rand(2, 3, 5))
    with pytest.raises(ValueError, match="in_ch=-1 must be a positive integer"):
        H1v2Frontend(-1)


def test_long_fractional_sequences_match_the_loop_exactly():
    # The sequence path counts spikes as floor(cumulative input); for float32 inputs that
    # is exact, so it must agree with the subtractive loop on every step of a long run.
    x = torch.rand(2, 600, 2)
    assert torch.equal(H1v1Frontend(2)(x), _loop(x.double()).float())


def test_a_gain_above_one_over_x_max_falls_back_to_the_loop():
    # gain * x_max > 1 can charge the accumulator past 2 in one step: the closed form no
    # longer holds, and the layer must still follow the equation (one spike per step at most).
    chip = dataclasses.replace(H1V2, frontend_gain=1.5)
    x = torch.rand(2, 30, 3)
    out = H1v2Frontend(3, chip=chip)(x)
    assert torch.equal(out, _loop(x.double(), gain=1.5).float())
    assert out.max() <= 1.0


def test_negative_input_warns_once_naming_on_off():
    frontend = H1v2Frontend(2)
    with pytest.warns(UserWarning, match=r"negative values.*nwave_lightning\.encode\.OnOff"):
        frontend(torch.tensor([[[0.5, -0.2], [0.1, 0.3]]]))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second negative batch stays quiet
        frontend(torch.tensor([[[-1.0, 0.0]]]))
        H1v2Frontend(2)(torch.rand(1, 5, 2))  # non-negative input never warns
