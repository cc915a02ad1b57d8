"""The seeds' example models run unchanged (imports renamed) and agree across paths."""

import contextlib
import warnings

import pytest
import torch

from . import seed_pattern_generator
from .seed_pattern_generator import H2PatternGenerator
from .seed_surrogate_snn import SurrogateSNN

CFG = {"in_ch": 13, "num_classes": 2, "neurons_per_class": 4, "dt": 2e-3, "hidden_1": 32,
       "tau_l1": 10e-3, "tau_l2": 20e-3, "tau_l3": 40e-3, "device": "cpu"}


@contextlib.contextmanager
def cuda_calls_stay_on_cpu():
    """The seed's ``forward`` hard-codes ``x.to("cuda")``; on a CPU-only machine send it to the CPU.

    Only that device string is rewritten; the model code itself is untouched.
    """
    if torch.cuda.is_available():
        yield
        return
    original = torch.Tensor.to

    def to(self, *args, **kwargs):
        if args and args[0] == "cuda":
            args = ("cpu",) + args[1:]
        return original(self, *args, **kwargs)

    torch.Tensor.to = to
    try:
        yield
    finally:
        torch.Tensor.to = original


def _drive(model, x):
    # Scale the first synapse so that every layer actually spikes in the test.
    with torch.no_grad():
        for syn in (model.s1, model.s2, model.s3):
            syn.weight.mul_(6.0)
    return x


def test_surrogate_snn_step_and_sequence_paths_are_identical():
    model = SurrogateSNN(CFG)
    x = _drive(model, (torch.rand(4, 50, 13) < 0.4).float())
    spikes_step, mems_step = model.forward_cpu(x)
    with cuda_calls_stay_on_cpu():
        spikes_seq, mems_seq = model(x)
    assert len(spikes_step) == len(spikes_seq) == 3
    for a, b in zip(spikes_step + mems_step, spikes_seq + mems_seq):
        assert a.shape == b.shape and a.dim() == 3
        assert torch.equal(a, b)
    assert all(s.sum() > 0 for s in spikes_seq), "every layer should spike for a meaningful comparison"
    assert spikes_seq[-1].shape == (4, 50, 2 * 4)


def test_surrogate_snn_gradients_agree_between_paths():
    model = SurrogateSNN(CFG)
    x = _drive(model, (torch.rand(3, 30, 13) < 0.4).float())
    grads = []
    for path in ("step", "sequence"):
        model.zero_grad()
        with cuda_calls_stay_on_cpu():
            spikes, mems = model.forward_cpu(x) if path == "step" else model(x)
        (spikes[-1].mean() + sum(m.pow(2).mean() for m in mems)).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_surrogate_snn_with_seed_default_gpu_flag_runs_on_cpu():
    cfg = dict(CFG)
    del cfg["device"]  # the seed's default is "gpu"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SurrogateSNN(cfg)
    spikes, _ = model.forward_cpu(torch.rand(2, 5, 13))
    assert spikes[0].shape == (2, 5, 16)


@pytest.mark.parametrize("neurons", [8])
def test_pattern_generator_step_and_sequence_paths_are_identical(neurons, monkeypatch):
    torch.manual_seed(42)
    x = (torch.rand(16, 100, 8) < 0.4).float()
    monkeypatch.setattr(seed_pattern_generator, "device_flag", "cpu")
    model = H2PatternGenerator(n_neurons=neurons, taus=25e-3, dt=1e-3)
    with torch.no_grad():
        model.synapse.weight.mul_(3.0)
    target = torch.rand(100, neurons)
    spk_step, mem_step = model(x)
    loss = torch.nn.functional.mse_loss(spk_step.mean(dim=0), target)
    loss.backward()
    step_grads = [p.grad.clone() for p in model.parameters()]

    model.zero_grad()
    model.device_flag = "gpu"  # the tutorial's GPU branch: forward_gpu on the whole sequence
    spk_seq, mem_seq = model(x)
    torch.nn.functional.mse_loss(spk_seq.mean(dim=0), target).backward()
    assert spk_step.sum() > 0
    assert torch.equal(spk_step, spk_seq) and torch.equal(mem_step, mem_seq)
    for a, b in zip(step_grads, (p.grad for p in model.parameters())):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
