"""The vendor SDK's example models run unchanged (imports renamed) and agree across paths."""

import contextlib
import warnings

import pytest
import torch

from nwave_lightning.kernels import record_kernels

from . import sdk_pattern_generator
from .sdk_pattern_generator import H2PatternGenerator
from .sdk_surrogate_snn import SurrogateSNN

CFG = {"in_ch": 13, "num_classes": 2, "neurons_per_class": 4, "dt": 2e-3, "hidden_1": 32,
       "tau_l1": 10e-3, "tau_l2": 20e-3, "tau_l3": 40e-3, "device": "cpu"}


@contextlib.contextmanager
def cuda_calls_stay_on_cpu():
    """The vendor SDK's ``forward`` hard-codes ``x.to("cuda")``; on a CPU-only machine send it to the CPU.

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


# The vendor SDK's forward sends x to "cuda": with a GPU the weights go there too (the step path
# then runs on CUDA as well); without one, cuda_calls_stay_on_cpu keeps that call on the CPU.
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
SEQUENCE_BACKEND = "triton" if DEVICE.type == "cuda" else "cpu"


def _assert_paths_ran(step_calls, sequence_calls, layers=3, backward=False):
    """The step path is the per-step reference (no scan launched); the sequence path one fast scan per layer."""
    assert step_calls == [], f"the step path launched scans: {step_calls}"
    stages = ["forward"] * layers + (["backward"] * layers if backward else [])
    assert sorted(c.stage for c in sequence_calls) == sorted(stages), sequence_calls
    assert {(c.backend, c.device) for c in sequence_calls} == {(SEQUENCE_BACKEND, DEVICE.type)}, sequence_calls


def _assert_same(a, b):
    if DEVICE.type == "cpu":
        assert torch.equal(a, b)  # the CPU scan makes the reference's operations in its order
    else:
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # Triton may contract a * b + c


def test_surrogate_snn_step_and_sequence_paths_are_identical():
    model = SurrogateSNN(CFG).to(DEVICE)
    x = _drive(model, (torch.rand(4, 50, 13) < 0.4).float()).to(DEVICE)
    with record_kernels() as step_calls:
        spikes_step, mems_step = model.forward_cpu(x)
    with cuda_calls_stay_on_cpu(), record_kernels() as sequence_calls:
        spikes_seq, mems_seq = model(x)
    _assert_paths_ran(step_calls, sequence_calls)
    assert len(spikes_step) == len(spikes_seq) == 3
    for a, b in zip(spikes_step, spikes_seq):
        assert a.shape == b.shape and a.dim() == 3
        assert torch.equal(a, b)
    for a, b in zip(mems_step, mems_seq):
        assert a.shape == b.shape and a.dim() == 3
        _assert_same(a, b)
    assert all(s.sum() > 0 for s in spikes_seq), "every layer should spike for a meaningful comparison"
    assert spikes_seq[-1].shape == (4, 50, 2 * 4)


def test_surrogate_snn_gradients_agree_between_paths():
    model = SurrogateSNN(CFG).to(DEVICE)
    x = _drive(model, (torch.rand(3, 30, 13) < 0.4).float()).to(DEVICE)
    grads, calls = [], []
    for path in ("step", "sequence"):
        model.zero_grad()
        with cuda_calls_stay_on_cpu(), record_kernels() as launched:
            spikes, mems = model.forward_cpu(x) if path == "step" else model(x)
            (spikes[-1].mean() + sum(m.pow(2).mean() for m in mems)).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
        calls.append(list(launched))
    _assert_paths_ran(*calls, backward=True)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_surrogate_snn_with_sdk_default_gpu_flag_runs_on_cpu():
    cfg = dict(CFG)
    del cfg["device"]  # the vendor SDK's default is "gpu"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SurrogateSNN(cfg)
    spikes, _ = model.forward_cpu(torch.rand(2, 5, 13, device=DEVICE))  # on CUDA the "gpu" flag keeps its meaning
    assert spikes[0].shape == (2, 5, 16)


@pytest.mark.parametrize("neurons", [8])
def test_pattern_generator_step_and_sequence_paths_are_identical(neurons, monkeypatch):
    torch.manual_seed(42)
    x = (torch.rand(16, 100, 8) < 0.4).float()
    monkeypatch.setattr(sdk_pattern_generator, "device_flag", "cpu")
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
    with record_kernels() as calls:
        spk_seq, mem_seq = model(x)
        torch.nn.functional.mse_loss(spk_seq.mean(dim=0), target).backward()
    assert [(c.backend, c.stage) for c in calls] == [("cpu", "forward"), ("cpu", "backward")]  # the fast scan, not the steps
    assert spk_step.sum() > 0
    assert torch.equal(spk_step, spk_seq) and torch.equal(mem_step, mem_seq)
    for a, b in zip(step_grads, (p.grad for p in model.parameters())):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
