"""The padding-mask helpers: masks held over encoder-repeated steps, means over real steps."""

import pytest
import torch

from nwave_lightning.loss import balanced_population_mse, firing_rate_target_mse_loss
from nwave_lightning.loss._checks import check_step_mask, masked_time_mean


def test_mask_is_held_over_repeated_steps_and_mean_counts_real_steps_only():
    spikes = torch.tensor([[[1.0], [0.0], [1.0], [1.0], [1.0], [1.0]]])  # (1, 6, 1)
    weights = check_step_mask("t", torch.tensor([[True, True, False]]), spikes)  # 3 input steps, Hold(2)
    assert weights.tolist() == [[1.0, 1.0, 1.0, 1.0, 0.0, 0.0]]
    assert masked_time_mean(spikes, weights).item() == pytest.approx(3 / 4)


@pytest.mark.parametrize("mask, match", [(torch.ones(2, 3), "mask has shape"), (torch.ones(1, 4), "mask has shape"), (torch.ones(6), r"\(B, T\)")])
def test_bad_masks(mask, match):
    with pytest.raises(ValueError, match=match):
        check_step_mask("owner", mask, torch.zeros(1, 6, 2))


def test_population_and_activity_losses_by_hand_under_a_mask():
    spikes = torch.zeros(2, 4, 2)  # 2 classes x 1 neuron
    spikes[0, :2, 0] = 1.0  # sample 0 (class 0): its neuron fires on both real steps
    spikes[0, 2:, 1] = 1.0  # ... and the wrong neuron only on padding
    spikes[1, :, 1] = 1.0  # sample 1 (class 1): no padding
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    y = torch.tensor([0, 1])
    assert balanced_population_mse(spikes, y, 2, 1, 1.0, 0.0, mask=mask).item() == 0.0
    # padding counted: sample 0's rates become 0.5 and 0.5, each 0.25 off target; true and wrong means 0.125
    assert balanced_population_mse(spikes, y, 2, 1, 1.0, 0.0).item() == pytest.approx(0.5 * (0.125 + 0.125))
    # per-sample rates over real steps: 0.5 and 0.5 -> mean 0.5; (0.5 - 0.25)^2
    assert firing_rate_target_mse_loss([spikes], [0.25], [1.0], mask=mask).item() == pytest.approx(0.0625)
