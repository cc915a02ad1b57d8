"""Triton kernels against the reference: under the interpreter on CPU (CI), compiled on CUDA (``gpu``)."""

import os
import subprocess
import sys

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

from nwave_lightning.kernels import lif_sequence, record_kernels
from nwave_lightning.surrogate import fast_sigmoid

from ._compare import SURROGATES, assert_ran, compare, make_inputs, run, run_recorded

KERNEL = {"FF": "ff", "RC": "rc_onchip"}  # the layout each topology takes at small N


@pytest.fixture
def tiled(interpreter, monkeypatch):
    """Force the tiled RC kernels with 16-wide tiles, so small N spans several tiles."""
    monkeypatch.setitem(interpreter.ONCHIP_MAX_N, torch.float32, 0)
    monkeypatch.setitem(interpreter.ONCHIP_MAX_N, torch.float64, 0)
    monkeypatch.setitem(interpreter.RC_TILES, "BLOCK_N", 16)
    monkeypatch.setitem(interpreter.RC_TILES, "BLOCK_K", 16)
    return interpreter


@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
@pytest.mark.parametrize("topology", ["FF", "RC"])
@pytest.mark.parametrize("chip", ["H1v1", "H1v2"])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_values_and_gradients_match_reference(interpreter, surrogate, topology, chip, detach_reset):
    compare("triton", (2, 6, 7), topology, chip, surrogate, detach_reset, kernel=KERNEL[topology])


# N = 17 / 33 / 130: not a multiple of the FF block (16 .. 128) nor of the RC padding.
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 7, 3), (3, 1, 5), (2, 5, 17), (1, 3, 130)])
def test_feed_forward_shapes(interpreter, shape):
    compare("triton", shape, "FF", "H1v2", "fast_sigmoid", False, kernel="ff")


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 6, 3), (17, 3, 5), (2, 4, 33)])
def test_recurrent_onchip_shapes(interpreter, shape):
    # B = 17 spans two 16-row programs; N = 33 pads to 64.
    compare("triton", shape, "RC", "H1v2", "atan", False, kernel="rc_onchip")


@pytest.mark.parametrize("chip", ["H1v1", "H1v2"])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_recurrent_tiled(tiled, chip, detach_reset):
    # N = 37 -> three 16-wide tiles, the last one partial; B = 17 -> two programs.
    compare("triton", (17, 4, 37), "RC", chip, "sigmoid", detach_reset, kernel="rc_tiled")


@pytest.mark.parametrize("loss_on", [("spikes",), ("membranes",)])
@pytest.mark.parametrize("topology", ["FF", "RC"])
def test_loss_on_one_output_only(interpreter, loss_on, topology):
    # The unused output's grad is None inside the op (not a tensor of zeros).
    compare("triton", (2, 7, 6), topology, "H1v1", "fast_sigmoid", False, loss_on=loss_on, kernel=KERNEL[topology])


@pytest.mark.parametrize("topology", ["FF", "RC"])
@pytest.mark.parametrize("chip", ["H1v1", "H1v2"])
def test_float64(interpreter, topology, chip):
    compare("triton", (2, 8, 9), topology, chip, "triangle", True, dtype=torch.float64, kernel=KERNEL[topology])


def test_recurrent_tiled_float64(tiled):
    compare("triton", (3, 5, 20), "RC", "H1v1", "fast_sigmoid", False, dtype=torch.float64, kernel="rc_tiled")


@pytest.mark.parametrize("syn_decay", [None, 0.7])
def test_gradcheck_float64(interpreter, syn_decay):
    # Finite differences can only see the surrogate-free path (see test_cpu).
    current = (torch.rand(1, 5, 3, dtype=torch.float64) * 0.8).requires_grad_(True)
    beta = (torch.rand(3, dtype=torch.float64) * 0.5 + 0.4).requires_grad_(True)

    def membranes(current, beta):
        return interpreter.lif_scan_triton(current, beta, None, 1.0, syn_decay, "fast_sigmoid", 5.0, True)[1]

    with record_kernels() as calls:
        assert torch.autograd.gradcheck(membranes, (current, beta), eps=1e-7, atol=1e-8)
    assert {(c.backend, c.kernel, c.interpreted) for c in calls} == {("triton", "ff", True)}


def test_opcheck(interpreter):
    current, beta, w, _ = make_inputs(2, 3, 5, recurrent=True)
    for recurrent in (None, w.requires_grad_(True)):
        args = (current.requires_grad_(True), beta.requires_grad_(True), recurrent, 1.0, 0.6, "atan", 2.0, False)
        torch.library.opcheck(interpreter.lif_scan_triton, args)


def test_half_precision_inputs_compute_in_float32(interpreter):
    current, beta, _, grads = make_inputs(2, 6, 5, recurrent=False, dtype=torch.float16)
    got, calls = run_recorded("triton", current, beta, None, grads, fast_sigmoid(5.0))
    ref = run("reference", *(t.float() for t in (current, beta)), None, grads.float(), fast_sigmoid(5.0))
    assert_ran(calls, "triton", "ff")
    assert {c.dtype for c in calls} == {torch.float16}
    assert got["membranes"].dtype == torch.float16
    torch.testing.assert_close(got["membranes"].float(), ref["membranes"], rtol=1e-3, atol=1e-3)


def test_cpu_tensors_without_the_interpreter_are_refused(monkeypatch):
    pytest.importorskip("triton")
    from nwave_lightning.kernels import triton_ops

    monkeypatch.setattr(triton_ops, "interpreted", lambda: False)
    current, beta, _, _ = make_inputs(1, 2, 3, recurrent=False)
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1 before nwave_lightning.kernels.triton_ops is first imported"):
        lif_sequence(current, beta, 1.0, fast_sigmoid(), backend="triton")


_LATE_INTERPRETER_SCRIPT = """
import os, sys
import lightning, triton.language  # what a user's script (or an earlier test) imports first
os.environ["TRITON_INTERPRET"] = "1"
import torch
from nwave_lightning.kernels import lif_sequence, record_kernels, triton_ops
from nwave_lightning.surrogate import atan
assert triton_ops.interpreted()
torch.manual_seed(0)
current = torch.randn(2, 4, 5)
beta = torch.full((5,), 0.8)
recurrent = 0.3 * torch.randn(5, 5)
for w in (None, recurrent):
    with record_kernels() as calls:
        got = lif_sequence(current, beta, 1.0, atan(), recurrent=w, backend="triton")
    assert [(c.backend, c.interpreted) for c in calls] == [("triton", True)], calls
    ref = lif_sequence(current, beta, 1.0, atan(), recurrent=w, backend="reference")
    torch.testing.assert_close(got, ref)
print("ok")
"""


def test_interpreter_switched_on_after_triton_language_was_imported(tmp_path):
    # CI regression: Lightning imports triton.language (and its @jit helpers) before a
    # test or script sets TRITON_INTERPRET=1; the interpreted kernels must still run.
    pytest.importorskip("triton")
    script = tmp_path / "late_interpreter.py"
    script.write_text(_LATE_INTERPRETER_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


def test_block_sizes_keep_every_sm_busy():
    pytest.importorskip("triton")
    from nwave_lightning.kernels.triton_ops import block_sizes_ff

    assert block_sizes_ff(batch=256, n=512, sm_count=132) == (128, 4)
    assert block_sizes_ff(batch=32, n=128, sm_count=132) == (32, 1)
    assert block_sizes_ff(batch=1, n=3, sm_count=132) == (16, 1)


# The compiled kernels on CUDA: test_triton_gpu.py.


@pytest.mark.parametrize("topology", ["FF", "RC"])
def test_torch_compile_fullgraph_matches_reference(interpreter, topology):
    # The custom op is opaque to Dynamo: one graph, no break, no traced time loop;
    # its fake kernels give the shapes, autograd goes through the backward op.
    current, beta, w, grads = make_inputs(2, 5, 6, recurrent=topology == "RC")
    x = torch.rand(2, 5, 4)
    w_in = torch.rand(4, 6) * 0.4

    def loss(w_in, w, backend):
        spikes, membranes = lif_sequence(x @ w_in, beta, 1.0, fast_sigmoid(5.0), w, 0.8, False, backend=backend)
        return (spikes * grads[0]).sum() + (membranes * grads[1]).sum()

    leaves = lambda: [t.clone().requires_grad_(True) for t in (w_in, w) if t is not None]
    ref_leaves, got_leaves = leaves(), leaves()
    with record_kernels() as ref_calls:
        ref_loss = loss(*ref_leaves, *([None] if w is None else []), "reference")
        ref_grads = torch.autograd.grad(ref_loss, ref_leaves)
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(loss, fullgraph=True, backend=counter)
    with record_kernels() as got_calls:
        got_loss = compiled(*got_leaves, *([None] if w is None else []), "triton")
        got_grads = torch.autograd.grad(got_loss, got_leaves)
    assert counter.frame_count == 1
    assert "nwave.lif_scan_triton" in counter.graphs[0].code
    assert_ran(ref_calls, "reference")
    assert_ran(got_calls, "triton", KERNEL[topology])
    torch.testing.assert_close(got_loss, ref_loss, rtol=1e-5, atol=1e-5)
    for got, ref in zip(got_grads, ref_grads):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
