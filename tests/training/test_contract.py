"""Model output contract and batch format: every rule's message, and the checks inside fit."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from nwave_lightning.training import BatchFormatError, ContractError, unpack_batch, validate_contract

from ._tiny import STEPS, loader, make_module, trainer

X = torch.zeros(4, 10, 3)


def _pair(*shapes):
    return [torch.zeros(s) for s in shapes], [torch.zeros(s) for s in shapes]


def test_valid_outputs_pass_lists_and_tuples():
    validate_contract(_pair((4, 10, 5), (4, 10, 2)), X)
    spikes, membranes = _pair((4, 10, 5))
    validate_contract((tuple(spikes), tuple(membranes)), X)


@pytest.mark.parametrize(
    "outputs, rule, fragments",
    [
        (torch.zeros(4, 10, 5), 1, ["forward returned a Tensor"]),
        (([torch.zeros(4, 10, 5)],), 1, ["tuple of length 1"]),
        ((torch.zeros(4, 10, 5), torch.zeros(4, 10, 5)), 2, ["spikes_list is a Tensor", "(4, 10, 5)", "return [spk], [mem]"]),
        (([], []), 3, ["len(spikes_list)=0"]),
        (([torch.zeros(4, 10, 5)], []), 3, ["len(spikes_list)=1, len(membranes_list)=0"]),
        (([torch.zeros(4, 10, 5)], [None]), 4, ["layer 0", "membranes_list[0] is a NoneType"]),
        (_pair((4, 10, 5), (4, 10, 2))[0:1] + ([torch.zeros(4, 10, 5), torch.zeros(4, 10, 3)],), 5, ["layer 1", "spikes (4, 10, 2) vs membranes (4, 10, 3)"]),
        (_pair((4, 10)), 6, ["layer 0", "(4, 10)", "rank 2"]),
        (_pair((4, 10, 5), (2, 10, 5)), 7, ["layer 1", "B=2", "(4, 10, 3)"]),
    ],
)
def test_each_broken_rule_names_rule_layer_and_shapes(outputs, rule, fragments):
    with pytest.raises(ContractError) as info:
        validate_contract(outputs, X)
    message = str(info.value)
    assert f"rule {rule}:" in message
    for fragment in fragments:
        assert fragment in message
    # the vendor SDK's troubleshooting answer is part of every message
    assert "return spikes_list, membranes_list" in message
    assert "same length, matching shapes, and rank 3 tensors" in message


def test_contract_error_is_a_value_error():
    assert issubclass(ContractError, ValueError) and issubclass(BatchFormatError, ValueError)


@pytest.mark.parametrize("batch", [(X, torch.zeros(4)), [X, torch.zeros(4)], (X, torch.zeros(4), {"id": 1})])
def test_unpack_accepts_two_and_three_element_batches(batch):
    x, y, meta = unpack_batch(batch)
    assert x is X and y is batch[1]
    assert meta is (batch[2] if len(batch) == 3 else None)


@pytest.mark.parametrize(
    "batch, fragment",
    [
        ({"x": X, "y": 0}, "got a dict"),
        (X, "bare tensor of shape (4, 10, 3)"),
        ((X,), "tuple of 1 element"),
        ((X, 1, 2, 3), "tuple of 4 element"),
        (("x", torch.zeros(4)), "x is a str"),
    ],
)
def test_unpack_rejects_other_structures_clearly(batch, fragment):
    with pytest.raises(BatchFormatError) as info:
        unpack_batch(batch)
    assert fragment in str(info.value)
    assert "(x, y) or (x, y, meta)" in str(info.value)


def test_prediction_batches_may_lack_targets():
    assert unpack_batch(X, require_target=False) == (X, None, None)
    assert unpack_batch((X,), require_target=False)[1] is None


class _BareTensors(nn.Module):
    """The vendor SDK tutorial's model shape: returns tensors, not lists (breaks rule 2)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 4)

    def forward(self, x):
        out = self.linear(x)
        return out, out


def test_fit_fails_on_first_batch_with_the_guidance():
    module = make_module(net=_BareTensors(), metrics=None, activity=False)
    with pytest.raises(ContractError, match="rule 2"):
        trainer(None, max_epochs=1).fit(module, loader(4, 2))


def test_fit_rejects_a_dict_batch():
    data = [{"x": torch.zeros(2, STEPS, 3), "y": torch.zeros(2, dtype=torch.long)}]
    with pytest.raises(BatchFormatError, match="got a dict"):
        trainer(None, max_epochs=1).fit(make_module(), DataLoader(data, batch_size=None))


def test_contract_checked_once_not_every_batch(monkeypatch):
    import nwave_lightning.training.snn_module as snn

    calls = []
    monkeypatch.setattr(snn, "validate_contract", lambda outputs, x: calls.append(x.shape))
    trainer(None, max_epochs=2).fit(make_module(), loader(8, 4))
    assert len(calls) == 1
