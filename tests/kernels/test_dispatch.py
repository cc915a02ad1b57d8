"""``lif_sequence`` / ``resolve_backend``: backend choice, overrides and argument checks."""

import doctest
import importlib

import pytest
import torch

from nwave_lightning import kernels
from nwave_lightning.kernels import BACKENDS, lif_sequence, resolve_backend
from nwave_lightning.layers import H1v1Layer, H1v2Layer
from nwave_lightning.surrogate import SurrogateSpike, fast_sigmoid

from ._compare import make_inputs


def test_backends_and_auto_choice(monkeypatch):
    monkeypatch.delenv("NWAVE_BACKEND", raising=False)
    assert BACKENDS == ("auto", "reference", "cpu", "triton")
    assert resolve_backend("auto", torch.zeros(1)) == "cpu"
    assert resolve_backend("auto", torch.zeros(1, device="meta")) == "reference"
    assert resolve_backend("triton", torch.zeros(1)) == "triton"  # device checked when it runs


def test_environment_forces_the_reference(monkeypatch):
    monkeypatch.setenv("NWAVE_BACKEND", "reference")
    assert resolve_backend("auto", torch.zeros(1)) == "reference"
    assert resolve_backend("cpu", torch.zeros(1)) == "reference"
    monkeypatch.setenv("NWAVE_BACKEND", "gpu-please")
    with pytest.raises(ValueError, match="environment variable NWAVE_BACKEND='gpu-please' is not a known backend"):
        resolve_backend("auto", torch.zeros(1))


def test_unknown_backend_name():
    with pytest.raises(ValueError, match=r"backend='numba' is not a known backend; choose one of"):
        resolve_backend("numba", torch.zeros(1))


def test_auto_on_cpu_runs_one_custom_op_not_a_per_step_graph(monkeypatch):
    monkeypatch.delenv("NWAVE_BACKEND", raising=False)
    current, beta, _, _ = make_inputs(2, 3, 4, recurrent=False)
    current.requires_grad_(True)
    spikes, _ = lif_sequence(current, beta, 1.0, fast_sigmoid())
    assert "nwave_lif_scan_cpu" in spikes.grad_fn.name()
    spikes, _ = lif_sequence(current, beta, 1.0, fast_sigmoid(), backend="reference")
    assert spikes.grad_fn.name() == "StackBackward0"


class _Steep(SurrogateSpike):
    kind = "my_steep"

    def derivative(self, x):
        return torch.exp(-x.abs())


def test_custom_surrogate_falls_back_to_reference_under_auto(monkeypatch):
    monkeypatch.delenv("NWAVE_BACKEND", raising=False)
    current, beta, _, _ = make_inputs(1, 4, 3, recurrent=False)
    expected = lif_sequence(current, beta, 1.0, fast_sigmoid(), backend="reference")
    got = lif_sequence(current, beta, 1.0, _Steep(1.0))
    assert torch.equal(got[1], expected[1])
    with pytest.raises(ValueError, match="backend='cpu' supports the surrogates"):
        lif_sequence(current, beta, 1.0, _Steep(1.0), backend="cpu")


def test_cpu_backend_refuses_other_devices():
    current = torch.zeros(1, 2, 3, device="meta")
    with pytest.raises(ValueError, match="backend='cpu' got a current on meta"):
        lif_sequence(current, torch.zeros(3, device="meta"), 1.0, fast_sigmoid(), backend="cpu")


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(current=torch.zeros(2, 3)), r"current must be a floating-point \(B, T, N\) tensor, got \(2, 3\)"),
        (dict(current=torch.zeros(1, 2, 3, dtype=torch.long)), "floating-point"),
        (dict(beta=torch.zeros(4)), r"beta must be a tensor of shape \(3,\)"),
        (dict(recurrent=torch.zeros(3, 4)), r"recurrent must be an \(3, 3\) matrix"),
        (dict(threshold=float("nan")), "threshold=nan must be a finite number"),
        (dict(syn_decay=1.5), r"syn_decay=1.5 must be in \[0, 1\)"),
    ],
)
def test_argument_errors(kwargs, fragment):
    args = dict(current=torch.zeros(1, 2, 3), beta=torch.full((3,), 0.9), threshold=1.0, surrogate=fast_sigmoid())
    args.update(kwargs)
    with pytest.raises(ValueError, match=fragment):
        lif_sequence(**args)


def test_scalar_beta_is_broadcast_and_gets_a_gradient():
    current, _, _, _ = make_inputs(2, 6, 4, recurrent=False)
    grads = []
    for backend in ("reference", "cpu"):
        beta = torch.tensor(0.8, requires_grad=True)
        spikes, membranes = lif_sequence(current, beta, 1.0, fast_sigmoid(), backend=backend)
        membranes.sum().backward()
        grads.append(beta.grad)
    torch.testing.assert_close(grads[1], grads[0])


@pytest.mark.parametrize("name", ["kernels", "kernels.cpu", "kernels._cpu_native", "kernels.record", "kernels.triton_ops"])
def test_docstring_examples(name):
    if name.endswith("triton_ops"):
        pytest.importorskip("triton")
    module = importlib.import_module(f"nwave_lightning.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0


def test_environment_forces_the_reference_through_lif_sequence(monkeypatch):
    # Not just the name: the per-step reference graph really runs, even when
    # the caller asked for the CPU kernel explicitly.
    current, beta, w, _ = make_inputs(2, 4, 3, recurrent=True)
    current.requires_grad_(True)
    monkeypatch.setenv("NWAVE_BACKEND", "reference")
    for backend in ("auto", "cpu"):
        spikes, _ = lif_sequence(current, beta, 1.0, fast_sigmoid(), w, backend=backend)
        assert spikes.grad_fn.name() == "StackBackward0"
    monkeypatch.setenv("NWAVE_BACKEND", "cpu")
    spikes, _ = lif_sequence(current, beta, 1.0, fast_sigmoid(), w, backend="reference")
    assert "nwave_lif_scan_cpu" in spikes.grad_fn.name()


def _layer_run(layer_cls, topology, backend, seed=0):
    torch.manual_seed(seed)
    layer = layer_cls(6, 20e-3, 1e-3, layer_topology=topology, backend=backend)
    current = (torch.rand(3, 12, 6) * 0.9).requires_grad_(True)
    spikes, membranes = layer(current)
    grads = torch.autograd.grad((spikes * torch.linspace(-1, 1, 6)).sum() + membranes.sum(), [current, *layer.parameters()])
    return spikes, membranes, grads


@pytest.mark.parametrize("layer_cls", [H1v1Layer, H1v2Layer], ids=["H1v1", "H1v2"])
@pytest.mark.parametrize("topology", ["FF", "RC"])
def test_layers_dispatch_to_the_cpu_kernel_and_match_the_reference(monkeypatch, layer_cls, topology):
    monkeypatch.delenv("NWAVE_BACKEND", raising=False)
    torch.manual_seed(0)
    layer = layer_cls(6, 20e-3, 1e-3, layer_topology=topology)
    spikes, _ = layer(torch.rand(2, 3, 6).requires_grad_(True))
    assert "nwave_lif_scan_cpu" in spikes.grad_fn.name()
    got = _layer_run(layer_cls, topology, "auto")
    expected = _layer_run(layer_cls, topology, "reference")
    assert expected[0].any(), "no spikes: the reset is not exercised"
    assert torch.equal(got[0], expected[0])
    torch.testing.assert_close(got[1], expected[1], rtol=1e-5, atol=1e-5)
    assert len(got[2]) == len(expected[2]) == (2 if topology == "RC" else 1)  # current (+ recurrent_weights)
    for g, e in zip(got[2], expected[2]):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layer_cls", [H1v1Layer, H1v2Layer], ids=["H1v1", "H1v2"])
def test_environment_forces_the_reference_in_the_layers(monkeypatch, layer_cls):
    torch.manual_seed(0)
    layer = layer_cls(5, 20e-3, 1e-3, layer_topology="RC")
    current = torch.rand(2, 4, 5).requires_grad_(True)
    monkeypatch.setenv("NWAVE_BACKEND", "reference")
    spikes, _ = layer(current)
    assert spikes.grad_fn.name() == "StackBackward0"


@pytest.mark.gpu
@pytest.mark.parametrize("topology", ["FF", "RC"])
def test_layers_dispatch_to_triton_on_cuda(cuda, monkeypatch, topology):
    monkeypatch.delenv("NWAVE_BACKEND", raising=False)
    layer = H1v2Layer(6, 20e-3, 1e-3, layer_topology=topology).to(cuda)
    spikes, _ = layer(torch.rand(2, 3, 6, device=cuda).requires_grad_(True))
    assert "nwave_lif_scan_triton" in spikes.grad_fn.name()
