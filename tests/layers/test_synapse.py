import math

import pytest
import torch
from torch import nn

from nwave_lightning.hardware import H1V1, H1V2
from nwave_lightning.layers import H1v1Synapse, H1v2Synapse, prepare_net


def test_h1v2_synapse_is_linear_with_gain():
    syn = H1v2Synapse(3, 2)
    x = (torch.rand(4, 6, 3) < 0.5).float()
    torch.testing.assert_close(syn(x), 0.25 * x @ syn.weight)
    assert syn.weight.shape == (3, 2)


def test_h1v1_synapse_uses_the_exponential_efficacy():
    syn = H1v1Synapse(2, 1, init=nn.init.ones_)
    with torch.no_grad():
        syn.weight.copy_(torch.tensor([[0.5], [-0.25]]))
    eff = lambda w: math.copysign(math.expm1(2 * abs(w)) / math.expm1(2), w)
    assert syn(torch.tensor([[1.0, 1.0]])).item() == pytest.approx(eff(0.5) + eff(-0.25))


def test_seed_init_argument_and_default_init_in_range():
    torch.manual_seed(1)
    syn = H1v2Synapse(13, 16, init=nn.init.xavier_uniform_, lif_threshold=1.0)
    bound = math.sqrt(6 / (13 + 16))
    assert syn.weight.abs().max() <= bound
    for chip, cls in ((H1V1, H1v1Synapse), (H1V2, H1v2Synapse)):
        default = cls(2, 50)  # few inputs: the bound is capped at the chip limit
        assert default.weight.abs().max() <= chip.weight_limit


def test_clamp_to_range_limits_the_effective_weight():
    syn = H1v2Synapse(1, 1, init=nn.init.ones_, clamp_to_range=True)
    with torch.no_grad():
        syn.weight.fill_(3.0)
    assert syn(torch.ones(1, 1)).item() == pytest.approx(0.25 * 1.66)


def test_prepared_matrix_is_used_only_while_current():
    syn = H1v2Synapse(2, 2)
    prepare_net(syn)
    x = torch.ones(1, 2)
    before = syn(x)
    with torch.no_grad():
        syn.weight.add_(1.0)
    torch.testing.assert_close(syn(x), before + 0.25 * 2)  # stale cache detected, recomputed


@pytest.mark.parametrize(
    "args, kwargs, fragment",
    [((0, 2), {}, "nb_inputs=0"), ((2, 2.5), {}, "nb_outputs=2.5"), ((2, 2), {"init": "xavier"}, "init='xavier' must be a callable"),
     ((2, 2), {"lif_threshold": 0}, "lif_threshold=0 must be > 0")],
)
def test_synapse_construction_errors(args, kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        H1v2Synapse(*args, **kwargs)
