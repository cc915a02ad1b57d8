"""The refinement loop on a synthetic layer with known response."""

import math

import pytest

from nwave_lightning.init.refine import Measured, refine


class SaturatingLayer:
    """Mean and std grow sub-linearly with the weights (like a membrane capped by reset)."""

    def __init__(self):
        self.scale = self.rc_scale = None

    def apply(self, scale, rc_scale):
        self.scale, self.rc_scale = scale, rc_scale

    def simulate(self):
        drive = 0.3 * self.scale
        capped = drive / (1 + 0.5 * drive)
        rate = 0.01 * capped
        var_ff = (0.1 * capped) ** 2
        var_rc = (0.5 * self.scale * self.rc_scale) ** 2 * rate  # recurrent drive grows with the rate
        std = math.sqrt(var_ff + var_rc)
        mean = 2.0 * capped
        return Measured((1.0 - mean) / std, mean, std, var_ff, var_rc, rate, 0)


@pytest.mark.parametrize("alpha,use_rc", [(1.0, False), (0.85, True), (0.6, True)])
def test_refine_reaches_the_measured_targets(alpha, use_rc):
    layer = SaturatingLayer()
    result = refine(layer.apply, layer.simulate, 1.0, 2.0, alpha, use_rc)
    assert result.converged
    assert result.measured.xi == pytest.approx(2.0, rel=0.03)
    if use_rc:
        assert result.measured.ff_share == pytest.approx(alpha, abs=0.03)
    assert (layer.scale, layer.rc_scale) == (result.scale, result.rc_scale)


class OnsetLayer:
    """A recurrent layer at the onset of spiking, as tutorial 7's layer is in its stationary state.

    Below the onset the membrane fluctuates little; a few percent more weight
    and rare spikes set in, whose resets (large excursions to zero) then
    dominate the membrane variance, so xi drops by a factor of two within a
    few percent of ``scale``.
    """

    def __init__(self):
        self.scale = self.rc_scale = None

    def apply(self, scale, rc_scale):
        self.scale, self.rc_scale = scale, rc_scale

    def simulate(self):
        mean_free, std_free = 0.85 * self.scale, 0.055 * self.scale
        rate = 0.004 / (1.0 + math.exp(-(self.scale - 0.95) / 0.01))
        var_ff = std_free**2
        var_rc = (0.4 * self.rc_scale) ** 2 * rate
        std = math.sqrt(var_ff + var_rc + 8.0 * rate)  # + the reset excursions
        mean = mean_free - 10.0 * rate
        return Measured((1.0 - mean) / std, mean, std, var_ff, var_rc, rate, 0)


def test_refine_converges_where_xi_falls_steeply_at_the_onset_of_spiking():
    # Regression: moving both scales at once (and restarting the secant whenever the
    # recurrent scale moved) jumped between a silent and a spiking layer for all 40
    # iterations here; the bracketed search converges.
    layer = OnsetLayer()
    result = refine(layer.apply, layer.simulate, 1.0, 2.0, 0.85, True)
    assert result.converged and result.iterations <= 20
    assert result.measured.xi == pytest.approx(2.0, rel=0.03)
    assert result.measured.ff_share == pytest.approx(0.85, abs=0.03)


def test_refine_reports_failure_when_the_target_cannot_be_reached():
    layer = SaturatingLayer()
    result = refine(layer.apply, layer.simulate, 1.0, 2.0, 1.0, False, max_iter=1)
    assert not result.converged and result.iterations == 1
