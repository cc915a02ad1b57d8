import dataclasses
import math

import pytest
import torch

from nwave_lightning.hardware import H1V1, H1V2, ChipSpec, decay_factor, efficacy, validate_taus, weights_out_of_range


def test_reference_constants_match_the_hardware_model_table():
    assert H1V1.weight_range == (-1.0, 1.0) and H1V2.weight_range == (-1.66, 1.66)
    assert (H1V1.synaptic_gain, H1V2.synaptic_gain) == (1.0, 0.25)
    assert (H1V1.efficacy, H1V1.kappa) == ("exponential", 2.0)
    assert (H1V2.efficacy, H1V2.kappa) == ("linear", None)
    assert (H1V1.tau_syn, H1V2.tau_syn) == (5e-3, None)
    for chip in (H1V1, H1V2):
        assert chip.threshold == 1.0
        assert chip.tau_range == (1e-3, 500e-3)
        assert chip.sign_block == 1
        assert chip.frontend_gain == 1.0


def test_chipspec_is_frozen_and_overridable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        H1V2.synaptic_gain = 1.0
    custom = dataclasses.replace(H1V2, synaptic_gain=0.5)
    assert custom.synaptic_gain == 0.5 and H1V2.synaptic_gain == 0.25


@pytest.mark.parametrize(
    "field, value, fragment",
    [("weight_range", (1.0, -1.0), "weight_range"), ("kappa", None, "kappa"), ("sign_block", 0, "sign_block"),
     ("tau_range", (0.0, 1.0), "tau_range"), ("efficacy", "cubic", "efficacy")],
)
def test_chipspec_rejects_inconsistent_constants(field, value, fragment):
    with pytest.raises(ValueError, match=fragment):
        dataclasses.replace(H1V1, **{field: value})


def test_efficacy_maps_match_the_equations():
    w = torch.linspace(-1, 1, 11, dtype=torch.float64)
    expected_v1 = torch.tensor([math.copysign(math.expm1(2 * abs(x)) / math.expm1(2), x) for x in w.tolist()], dtype=torch.float64)
    torch.testing.assert_close(efficacy(w, H1V1), expected_v1)
    torch.testing.assert_close(efficacy(w, H1V2), 0.25 * w)


def test_decay_factor():
    assert float(decay_factor(20e-3, 1e-3)) == pytest.approx(math.exp(-1 / 20))


def test_validate_taus_broadcasts_and_checks_range_and_dt():
    assert validate_taus(20e-3, 1e-3, 4, H1V2, "L").tolist() == pytest.approx([20e-3] * 4)
    with pytest.raises(ValueError, match=r"L: taus\[1\]=0.9 s is outside the H1v2 range \[0.001, 0.5\]"):
        validate_taus([0.02, 0.9], 1e-3, 2, H1V2, "L")
    with pytest.raises(ValueError, match="dt=0.01 s must be smaller than every tau"):
        validate_taus(5e-3, 10e-3, 2, H1V2, "L")
    with pytest.raises(ValueError, match=r"expected a scalar or shape \(3,\)"):
        validate_taus([0.02, 0.03], 1e-3, 3, H1V2, "L")
    with pytest.raises(ValueError, match="dt=-1"):
        validate_taus(0.02, -1, 3, H1V2, "L")


def test_weights_out_of_range_counts_both_sides():
    assert weights_out_of_range(torch.tensor([-1.7, -1.66, 0.0, 1.66, 1.7, 3.0]), H1V2) == 3


def test_custom_chip_validation():
    with pytest.raises(ValueError, match="synaptic_gain"):
        ChipSpec("X", (-1, 1), 0.0, "linear", None, None, 1.0, (1e-3, 0.5), 1, 1.0)
