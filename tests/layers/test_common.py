"""Layers in evaluation warn once on NaN / Inf input; training inputs are the run's NonFiniteGuard's job."""

import warnings

import torch

from nwave_lightning.models import H1Classifier


def _caught(net, x):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net(x)
        net(x)
    return [str(w.message) for w in caught if "NaN or Inf" in str(w.message)]


def test_each_layer_warns_once_on_non_finite_input_in_evaluation():
    net = H1Classifier(in_ch=3, num_classes=2, neurons_per_class=2, hidden=[5]).eval()
    x = torch.rand(2, 10, 3)
    x[0, 3, 1] = float("nan")
    messages = _caught(net, x)
    assert messages[0].startswith("H1v2Frontend: 1 of 60 input values are NaN or Inf")
    assert len(messages) == len({m.split(":")[0] for m in messages})  # once per layer, not per call
    assert _caught(net, x) == []


def test_no_warning_while_training_or_on_clean_input():
    net = H1Classifier(in_ch=3, num_classes=2, neurons_per_class=2, hidden=[5])
    x = torch.rand(2, 10, 3)
    assert _caught(net.eval(), x) == []
    x[0, 3, 1] = float("nan")
    assert _caught(net.train(), x) == []
