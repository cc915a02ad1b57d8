import torch
from torch.nn.utils import parametrize

from nwave_lightning.layers import H1v2Layer, H1v2Synapse
from nwave_lightning.layers.walk import dense_weights, synapse_layer_pairs
from nwave_lightning.layers.sign import SignBlockParametrization, block_signs, coherence_pct, hard_signed, minority_sign_mass

import pytest


def test_block_statistics_by_hand_with_blocks_of_two_rows():
    w = torch.tensor([[1.0, -2.0], [0.5, 0.0], [-1.0, -1.0], [3.0, 0.0], [0.2, 0.2]])
    # blocks: rows 0-1 sum -0.5 -> sign -1; rows 2-3 sum 1 -> +1; row 4 sum 0.4 -> +1
    assert block_signs(w, 2).flatten().tolist() == [-1.0, 1.0, 1.0]
    aligned = 2.0 + 3.0 + 0.4  # |W| carried with the block's sign
    total = w.abs().sum().item()
    assert coherence_pct(w, 2).item() == pytest.approx(100 * aligned / total)
    assert minority_sign_mass(w, 2).item() == pytest.approx(1.0 + 0.5 + 2.0)
    assert torch.equal(hard_signed(w, 2), torch.tensor([[0.0, -2.0], [0.0, 0.0], [0.0, 0.0], [3.0, 0.0], [0.2, 0.2]]))


def test_minority_mass_gradient_pushes_minority_weights_to_zero():
    w = torch.tensor([[1.0, -0.5]], requires_grad=True)
    minority_sign_mass(w, 1).backward()
    assert w.grad.tolist() == [[0.0, -1.0]]


def test_parametrization_keeps_magnitudes_and_sharpens_with_alpha():
    # Blocks of two rows whose sums have mixed signs; every row holds both signs.
    original = torch.tensor([[1.0, -0.5, 0.2], [-0.3, 0.4, 0.1],      # block 0: sum +0.9
                             [-2.0, 0.5, -0.1], [0.3, -0.2, 0.4],     # block 1: sum -1.1
                             [0.6, -0.1, -0.3]])                       # block 2 (one row): sum +0.2
    block_sum = torch.tensor([0.9, -1.1, 0.2])
    logits = block_sum / block_sum.abs().mean()  # c_b: block sums over their mean magnitude
    row_block = torch.tensor([0, 0, 1, 1, 2])
    syn = H1v2Synapse(5, 3)
    with torch.no_grad():
        syn.weight.copy_(original)
    parametrize.register_parametrization(syn, "weight", SignBlockParametrization(original, 2, alpha=1.0))
    param = syn.parametrizations.weight[0]
    for alpha in (0.5, 1.0, 3.0):
        param.alpha = alpha
        # W = |V| * tanh(alpha * c_b), by hand: each row's sign is its block's, never its own entry's.
        expected = original.abs() * torch.tanh(alpha * logits[row_block]).unsqueeze(1)
        torch.testing.assert_close(syn.weight, expected)
    soft = syn.weight.detach().abs().clone()
    param.alpha = 1e4
    hard = syn.weight.detach()
    # With a huge alpha each row carries its block's sign times the stored magnitude ...
    torch.testing.assert_close(hard, original.abs() * torch.sign(block_sum)[row_block].unsqueeze(1))
    assert coherence_pct(hard, 2).item() == pytest.approx(100.0)
    # ... and sharpening only ever grows magnitudes, towards |V|.
    assert bool((hard.abs() > soft).all())
def test_inspect_finds_dense_matrices_and_pairs():
    net = torch.nn.Module()
    net.s1, net.s2 = H1v2Synapse(3, 4), H1v2Synapse(4, 2)
    net.l1, net.l2 = H1v2Layer(4, 20e-3, 1e-3, layer_topology="RC"), H1v2Layer(2, 20e-3, 1e-3)
    assert [(d.module_name, d.attr) for d in dense_weights(net)] == [("s1", "weight"), ("s2", "weight"), ("l1", "recurrent_weights")]
    assert synapse_layer_pairs(net) == [(net.s1, net.l1), (net.s2, net.l2)]
    net.l2 = H1v2Layer(3, 20e-3, 1e-3)
    with pytest.raises(ValueError, match="nb_outputs=2 but the H1v2Layer it feeds has n_neurons=3"):
        synapse_layer_pairs(net)
