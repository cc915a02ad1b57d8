"""The compiled Triton kernels against the reference on CUDA: the interpreter matrix, compiled.

Every test is marked ``gpu`` and takes the ``gpu_device`` fixture: CUDA with the
compiled kernels (it refuses the interpreter), skipped without a GPU. Run them all
with ``benchmarks/gpu_check.sh``; ``gpu_check.sh --dry-run`` runs a subset on the
CPU under the interpreter (CI does, through tests/benchmarks/test_gpu_check.py).

Tolerances (spikes always exact; membranes and gradients elementwise):
float64 rtol = atol = 1e-10; float32 rtol 1e-4 with atol 1e-5 x the largest reference value (sums
over 30-40 steps, 100-200 neurons and the H1v1 filter's gain reach ~700 for dL/dW: the
float32 reference itself is off from float64 by up to 4e-6 x that, and the kernels sum
in another order); tf32x3 the same; tf32 rtol 5e-3, atol 2e-3 x the largest value,
against the reference whose
recurrent matrix is rounded to tf32 as the dot rounds it (S is 0/1, so S @ W_tf32
is exact; backward also rounds dL/dI). float16 / bfloat16 (half-precision tensors in
and out, float32 inside) against the float32 reference on the same values, normwise
relative error: membranes 1e-3 / 1e-2, gradients 6e-2 (see ``_compare.NORMWISE``).
"""

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

from nwave_lightning.kernels import lif_sequence, record_kernels, resolve_backend
from nwave_lightning.surrogate import fast_sigmoid

from ._compare import SURROGATES, assert_ran, compare, make_inputs, run, run_recorded

pytestmark = pytest.mark.gpu

DTYPES = {"fp64": torch.float64, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# (shape, topology, kernel): N = 130 spans two FF blocks; RC N = 100 pads to 128 (8 warps, W in
# registers; 64 is float64's on-chip limit, so it runs N = 50 there); N = 200 is tiled.
LAYOUTS = {
    "ff": ((9, 40, 130), "FF"),
    "rc_onchip": ((9, 40, 100), "RC"),
    "rc_tiled": ((20, 30, 200), "RC"),
}
ONCHIP_FP64_SHAPE = (9, 40, 50)


TOLERANCE = {torch.float64: dict(rtol=1e-10, atol=1e-10), torch.float32: dict(rtol=1e-4, atol=1e-5, atol_scale=1e-5)}


def _shape(kernel, dtype):
    shape, topology = LAYOUTS[kernel]
    return (ONCHIP_FP64_SHAPE if kernel == "rc_onchip" and dtype == torch.float64 else shape), topology


@pytest.fixture
def triton_ops():
    pytest.importorskip("triton")
    from nwave_lightning.kernels import triton_ops

    return triton_ops


@pytest.mark.parametrize("dtype", sorted(DTYPES), ids=str)
@pytest.mark.parametrize("kernel", sorted(LAYOUTS))
@pytest.mark.parametrize("chip", ["H1v1", "H1v2"])
def test_dtypes_layouts_and_chips(gpu_device, dtype, kernel, chip):
    shape, topology = _shape(kernel, DTYPES[dtype])
    compare("triton", shape, topology, chip, "fast_sigmoid", False, dtype=DTYPES[dtype], device=gpu_device, kernel=kernel,
            tolerance=TOLERANCE.get(DTYPES[dtype]))


@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
@pytest.mark.parametrize("kernel", sorted(LAYOUTS))
@pytest.mark.parametrize("detach_reset", [False, True], ids=["reset-grad", "detached-reset"])
def test_surrogates_and_detached_reset(gpu_device, surrogate, kernel, detach_reset):
    shape, topology = _shape(kernel, torch.float32)
    compare("triton", shape, topology, "H1v1", surrogate, detach_reset, device=gpu_device, kernel=kernel,
            tolerance=TOLERANCE[torch.float32])


@pytest.mark.parametrize("loss_on", [("spikes",), ("membranes",)], ids=["spikes-only", "membranes-only"])
@pytest.mark.parametrize("kernel", sorted(LAYOUTS))
@pytest.mark.parametrize("chip", ["H1v1", "H1v2"])
def test_loss_on_one_output_only(gpu_device, loss_on, kernel, chip):
    shape, topology = _shape(kernel, torch.float32)
    compare("triton", shape, topology, chip, "atan", True, device=gpu_device, loss_on=loss_on, kernel=kernel,
            tolerance=TOLERANCE[torch.float32])


@pytest.mark.parametrize("block", [16, 32, 64, 128])
def test_forced_feed_forward_blocks(gpu_device, triton_ops, monkeypatch, block):
    # block_sizes_ff picks by batch and SM count; each BLOCK_N it can pick is compiled here.
    monkeypatch.setattr(triton_ops, "block_sizes_ff", lambda batch, n, sm_count: (block, max(1, block // 32)))
    compare("triton", (5, 20, 150), "FF", "H1v1", "sigmoid", False, device=gpu_device, kernel="ff",
            tolerance=TOLERANCE[torch.float32])


@pytest.mark.parametrize("block_n, block_k", [(16, 16), (32, 64), (64, 64), (128, 64), (64, 16)])
@pytest.mark.parametrize("dtype", ["fp32", "fp64"])
def test_forced_tiles(gpu_device, triton_ops, monkeypatch, block_n, block_k, dtype):
    monkeypatch.setitem(triton_ops.RC_TILES, "BLOCK_N", block_n)
    monkeypatch.setitem(triton_ops.RC_TILES, "BLOCK_K", block_k)
    monkeypatch.setitem(triton_ops.ONCHIP_MAX_N, torch.float32, 0)
    monkeypatch.setitem(triton_ops.ONCHIP_MAX_N, torch.float64, 0)
    # N = 150: not a multiple of any tile; B = 17: two 16-row programs.
    compare("triton", (17, 12, 150), "RC", "H1v1", "triangle", True, dtype=DTYPES[dtype], device=gpu_device,
            kernel="rc_tiled", tolerance=TOLERANCE.get(DTYPES[dtype]))


def _round_to_tf32(t):
    """Round float32 to tf32's 10-bit mantissa (to nearest, ties away), as the tensor cores' conversion does."""
    bits = t.contiguous().view(torch.int32)
    return ((bits + 0x1000) & ~0x1FFF).view(torch.float32)


@pytest.mark.parametrize("precision", ["ieee", "tf32x3", "tf32"])
@pytest.mark.parametrize("kernel", ["rc_onchip", "rc_tiled"])
def test_each_dot_precision(gpu_device, monkeypatch, precision, kernel):
    monkeypatch.setenv("NWAVE_TRITON_DOT_PRECISION", precision)
    shape, topology = _shape(kernel, torch.float32)
    if precision == "tf32":
        # Spikes are 0/1 (exact in tf32), so S @ W_tf32 is exact: the forward matches a reference on the
        # rounded matrix to float32 rounding; backward also rounds dL/dI in dL/dI @ W^T.
        round_w = lambda c, b, w, g: (c, b, _round_to_tf32(w), g)
        got = compare("triton", shape, topology, "H1v2", "fast_sigmoid", False, device=gpu_device, kernel=kernel,
                      reference_inputs=round_w, tolerance=dict(rtol=5e-3, atol=5e-3, atol_scale=2e-3))
    else:
        tolerance = TOLERANCE[torch.float32]
        got = compare("triton", shape, topology, "H1v2", "fast_sigmoid", False, device=gpu_device, kernel=kernel,
                      tolerance=tolerance)
    assert got["spikes"].any()


@pytest.mark.parametrize("precision", ["ieee", "tf32x3", "tf32"])
def test_dot_precision_is_recorded(gpu_device, monkeypatch, precision):
    monkeypatch.setenv("NWAVE_TRITON_DOT_PRECISION", precision)
    current, beta, w, grads = make_inputs(4, 6, 20, recurrent=True, device=gpu_device)
    _, calls = run_recorded("triton", current, beta, w, grads, fast_sigmoid(5.0))
    assert {c.dot_precision for c in calls} == {precision}


@pytest.mark.parametrize("topology", ["FF", "RC"])
def test_torch_compile_inductor_matches_reference(gpu_device, topology):
    # One graph with the custom op; the compiled step's loss and weight gradients equal the reference's.
    current, beta, w, grads = make_inputs(4, 30, 64, recurrent=topology == "RC", device=gpu_device)
    x = torch.rand(4, 30, 16, device=gpu_device)
    w_in = torch.rand(16, 64, device=gpu_device) * 0.2

    def loss(w_in, w, backend):
        spikes, membranes = lif_sequence(x @ w_in, beta, 1.0, fast_sigmoid(5.0), w, 0.8, False, backend=backend)
        return (spikes * grads[0]).sum() + (membranes * grads[1]).sum()

    leaves = lambda: [t.clone().requires_grad_(True) for t in (w_in, w) if t is not None]
    ref_leaves, got_leaves = leaves(), leaves()
    pad = [None] if w is None else []
    with record_kernels() as ref_calls:
        ref_loss = loss(*ref_leaves, *pad, "reference")
        ref_grads = torch.autograd.grad(ref_loss, ref_leaves)
    backend = "aot_eager" if gpu_device.type == "cpu" else "inductor"  # the dry run has no C++/CUDA codegen to spare
    counter = CompileCounterWithBackend(backend)
    compiled = torch.compile(loss, fullgraph=True, backend=counter)
    with record_kernels() as got_calls:
        got_loss = compiled(*got_leaves, *pad, "triton")
        got_grads = torch.autograd.grad(got_loss, got_leaves)
    assert counter.frame_count == 1
    assert "nwave.lif_scan_triton" in counter.graphs[0].code
    assert_ran(ref_calls, "reference", device=gpu_device)
    assert_ran(got_calls, "triton", "ff" if topology == "FF" else "rc_onchip", device=gpu_device)
    torch.testing.assert_close(got_loss, ref_loss, rtol=1e-5, atol=1e-4)
    for got, ref in zip(got_grads, ref_grads):
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
def test_auto_dispatch(gpu_device, surrogate):
    want = "triton" if gpu_device.type == "cuda" else "cpu"
    assert resolve_backend("auto", torch.zeros(1, device=gpu_device)) == want
    compare("auto", (8, 50, 64), "RC", "H1v2", surrogate, True, device=gpu_device, tolerance=TOLERANCE[torch.float32])


def test_surrogate_value_is_not_a_compile_constant(gpu_device):
    from nwave_lightning.kernels import triton_kernels as K

    if gpu_device.type != "cuda":
        pytest.skip("the interpreter keeps no compiled-kernel cache")
    current, beta, _, grads = make_inputs(4, 10, 32, recurrent=False, device=gpu_device)
    run("triton", current, beta, None, grads, fast_sigmoid(25.0))
    caches = getattr(K.ff_backward_kernel, "device_caches", None)
    if caches is None:
        pytest.skip("this Triton version does not expose its kernel cache")
    count = lambda: sum(len(entry[0]) for entry in caches.values())
    before = count()
    run("triton", current, beta, None, grads, fast_sigmoid(10.0))
    assert count() == before


def test_compiled_kernels_are_what_ran(gpu_device):
    # The record's own word that these were compiled (on CUDA) or interpreted (the dry run).
    current, beta, w, grads = make_inputs(2, 5, 8, recurrent=True, device=gpu_device)
    _, calls = run_recorded("triton", current, beta, w, grads, fast_sigmoid(5.0))
    assert_ran(calls, "triton", "rc_onchip", device=gpu_device)
