"""The fast CPU path (native C loops and the torch-loop fallback) against the reference."""

import os
import warnings

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

from nwave_lightning.kernels import _cpu_native, cpu, lif_sequence, record_kernels
from nwave_lightning.surrogate import fast_sigmoid

from ._compare import SURROGATES, assert_ran, compare, make_inputs, run_recorded

IMPLS = ["native", "torch"]


@pytest.fixture(params=IMPLS)
def impl(request, monkeypatch):
    if request.param == "native" and _cpu_native.library() is None:
        pytest.skip("no C compiler: only the torch loop is available")
    monkeypatch.setenv("NWAVE_CPU_IMPL", request.param)
    return request.param


@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
@pytest.mark.parametrize("topology", ["FF", "RC"])
@pytest.mark.parametrize("chip", ["H1v1", "H1v2"])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_values_and_gradients_match_reference(impl, surrogate, topology, chip, detach_reset):
    compare("cpu", (3, 12, 7), topology, chip, surrogate, detach_reset, kernel=impl)


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 9, 3), (4, 1, 5), (2, 7, 33), (5, 6, 130)])
@pytest.mark.parametrize("topology", ["FF", "RC"])
def test_shapes(impl, shape, topology):
    compare("cpu", shape, topology, "H1v2", "fast_sigmoid", False, kernel=impl)


@pytest.mark.parametrize("loss_on", [("spikes",), ("membranes",)])
@pytest.mark.parametrize("topology", ["FF", "RC"])
def test_loss_on_one_output_only(impl, loss_on, topology):
    # The unused output's grad is None inside the op (not a tensor of zeros).
    compare("cpu", (2, 7, 6), topology, "H1v1", "fast_sigmoid", False, loss_on=loss_on, kernel=impl)


@pytest.mark.parametrize("topology", ["FF", "RC"])
@pytest.mark.parametrize("chip", ["H1v1", "H1v2"])
def test_float64(impl, topology, chip):
    compare("cpu", (2, 15, 9), topology, chip, "atan", False, dtype=torch.float64, kernel=impl)


@pytest.mark.parametrize("chip", ["H1v1", "H1v2"])
def test_feed_forward_forward_is_bit_identical_to_reference(chip):
    # Same operations in the same order (no FMA contraction): not merely close.
    current, beta, _, _ = make_inputs(4, 40, 19, recurrent=False)
    syn = 0.8 if chip == "H1v1" else None
    expected = lif_sequence(current, beta, 1.0, fast_sigmoid(), None, syn, backend="reference")
    for name in IMPLS:
        os.environ["NWAVE_CPU_IMPL"] = name
        try:
            with record_kernels() as calls:
                got = lif_sequence(current, beta, 1.0, fast_sigmoid(), None, syn, backend="cpu")
        finally:
            del os.environ["NWAVE_CPU_IMPL"]
        assert [(c.backend, c.kernel) for c in calls] == [("cpu", name)]
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


@pytest.mark.parametrize("forward_blas_min_n", [1, None], ids=["fwd-blas", "fwd-c"])
@pytest.mark.parametrize("blas_min_n", [1, 10**9], ids=["bwd-blas", "bwd-c"])
@pytest.mark.parametrize("chip", ["H1v1", "H1v2"])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_both_recurrent_native_paths(monkeypatch, forward_blas_min_n, blas_min_n, chip, detach_reset):
    if _cpu_native.library() is None:
        pytest.skip("no C compiler")
    monkeypatch.setattr(_cpu_native, "RC_FORWARD_BLAS_MIN_N", forward_blas_min_n)
    monkeypatch.setattr(_cpu_native, "RC_BLAS_MIN_N", blas_min_n)
    monkeypatch.setenv("NWAVE_CPU_IMPL", "native")
    compare("cpu", (3, 9, 20), "RC", chip, "sigmoid", detach_reset, kernel="native")


def test_wide_recurrent_forward_is_bit_identical_to_reference(monkeypatch):
    # The per-step BLAS path makes the very torch.mm calls the reference makes.
    monkeypatch.setattr(_cpu_native, "RC_FORWARD_BLAS_MIN_N", 1)
    current, beta, w, _ = make_inputs(3, 30, 24, recurrent=True)
    for syn in (None, 0.8):
        expected = lif_sequence(current, beta, 1.0, fast_sigmoid(), w, syn, backend="reference")
        with record_kernels() as calls:
            got = lif_sequence(current, beta, 1.0, fast_sigmoid(), w, syn, backend="cpu")
        assert [(c.backend, c.kernel) for c in calls] == [("cpu", cpu.cpu_impl(torch.float32))]
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


def test_bfloat16_uses_the_torch_loop_and_matches_reference():
    current, beta, _, grads = make_inputs(2, 10, 6, recurrent=False, dtype=torch.bfloat16)
    assert cpu.cpu_impl(torch.bfloat16) == "torch"
    got, got_calls = run_recorded("cpu", current, beta, None, grads, fast_sigmoid(5.0))
    expected, expected_calls = run_recorded("reference", current, beta, None, grads, fast_sigmoid(5.0))
    assert_ran(got_calls, "cpu", "torch")
    assert_ran(expected_calls, "reference")
    assert torch.equal(got["spikes"], expected["spikes"])
    torch.testing.assert_close(got["membranes"], expected["membranes"])
    torch.testing.assert_close(got["current"], expected["current"], rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("syn_decay", [None, 0.7])
def test_gradcheck_float64(impl, syn_decay):
    # The surrogate replaces dS/dV, so only a path free of it can be checked
    # by finite differences: FF, reset detached, membranes out (beta too).
    current = (torch.rand(2, 6, 3, dtype=torch.float64) * 0.8).requires_grad_(True)
    beta = (torch.rand(3, dtype=torch.float64) * 0.5 + 0.4).requires_grad_(True)

    def membranes(current, beta):
        return cpu.lif_scan_cpu(current, beta, None, 1.0, syn_decay, "fast_sigmoid", 5.0, True)[1]

    with record_kernels() as calls:
        assert torch.autograd.gradcheck(membranes, (current, beta), eps=1e-7, atol=1e-8)
    assert {(c.backend, c.kernel) for c in calls} == {("cpu", impl)}


def test_opcheck():
    current, beta, w, _ = make_inputs(2, 4, 5, recurrent=True)
    for recurrent in (None, w.requires_grad_(True)):
        args = (current.requires_grad_(True), beta.requires_grad_(True), recurrent, 1.0, 0.6, "sigmoid", 4.0, False)
        torch.library.opcheck(cpu.lif_scan_cpu, args)


@pytest.mark.parametrize("topology, syn_decay", [("FF", None), ("RC", 0.8)])
def test_torch_compile_fullgraph_matches_reference(topology, syn_decay):
    # One graph with the custom op in it (no break, no traced time loop), and
    # the same loss and weight grads as the reference.
    x = torch.rand(2, 6, 4)
    w_in = torch.rand(4, 5)
    rec = (torch.rand(5, 5) - 0.5) * 0.5 if topology == "RC" else None
    beta = torch.full((5,), 0.9)

    def loss(w_in, rec, backend):
        spikes, membranes = lif_sequence(x @ w_in, beta, 1.0, fast_sigmoid(), rec, syn_decay, False, backend=backend)
        return spikes.sum() + membranes.pow(2).sum()

    leaves = lambda: [t.clone().requires_grad_(True) if t is not None else None for t in (w_in, rec)]
    ref_leaves, got_leaves = leaves(), leaves()
    counter = CompileCounterWithBackend("inductor")
    compiled = torch.compile(loss, fullgraph=True, backend=counter)
    with record_kernels() as ref_calls:
        ref_loss = loss(*ref_leaves, "reference")
        wanted = [t for t in ref_leaves if t is not None]
        ref_grads = torch.autograd.grad(ref_loss, wanted)
    with record_kernels() as got_calls:
        got_loss = compiled(*got_leaves, "cpu")
        got_grads = torch.autograd.grad(got_loss, [t for t in got_leaves if t is not None])
    assert counter.frame_count == 1
    assert "nwave.lif_scan_cpu" in counter.graphs[0].code
    assert_ran(ref_calls, "reference")
    assert_ran(got_calls, "cpu")  # the compiled graph ran the custom op, forward and backward
    torch.testing.assert_close(got_loss, ref_loss)
    for got, ref in zip(got_grads, ref_grads):
        torch.testing.assert_close(got, ref)


def test_batch_split_over_threads_gives_the_same_numbers(monkeypatch):
    if _cpu_native.library() is None:
        pytest.skip("no C compiler")
    current, beta, w, grads = make_inputs(5, 8, 6, recurrent=True)
    single, calls = run_recorded("cpu", current, beta, w, grads, fast_sigmoid(5.0))
    assert_ran(calls, "cpu", "native")
    monkeypatch.setattr(_cpu_native, "_MIN_WORK_PER_THREAD", 1)
    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        split, calls = run_recorded("cpu", current, beta, w, grads, fast_sigmoid(5.0))
        assert_ran(calls, "cpu", "native")
    finally:
        torch.set_num_threads(threads)
    for key in single:
        assert torch.equal(single[key], split[key]), key


@pytest.fixture
def fresh_native_state(monkeypatch):
    monkeypatch.setattr(_cpu_native, "_state", {})
    yield


def test_library_is_built_once_into_the_cache(tmp_path, monkeypatch, fresh_native_state):
    if _cpu_native.shutil.which("gcc") is None and _cpu_native.shutil.which("cc") is None:
        pytest.skip("no C compiler")
    monkeypatch.setenv("NWAVE_CACHE_DIR", str(tmp_path))
    assert _cpu_native.library() is not None
    built = list(tmp_path.glob("nwave_lif_cpu_*.so"))
    assert len(built) == 1 and not list(tmp_path.glob("tmp*")), "temporary build folder left behind"
    stamp = built[0].stat().st_mtime_ns
    monkeypatch.setattr(_cpu_native, "_state", {})
    assert _cpu_native.library() is not None
    assert built[0].stat().st_mtime_ns == stamp  # reused, not rebuilt


def test_without_a_compiler_the_torch_loop_takes_over(monkeypatch, fresh_native_state):
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(_cpu_native.shutil, "which", lambda name: None)
    with pytest.warns(RuntimeWarning, match="no C compiler"):
        assert _cpu_native.library() is None
    assert cpu.cpu_impl(torch.float32) == "torch"
    compare("cpu", (2, 6, 4), "RC", "H1v1", "triangle", False, kernel="torch")
    monkeypatch.setenv("NWAVE_CPU_IMPL", "native")
    with pytest.raises(ValueError, match="NWAVE_CPU_IMPL=native cannot be used: the C library could not be built"):
        cpu.cpu_impl(torch.float32)


def test_failed_build_warns_and_falls_back(monkeypatch, tmp_path, fresh_native_state):
    monkeypatch.setenv("NWAVE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _cpu_native.library() is None
    assert any("building the fast CPU scan failed" in str(w.message) for w in caught)


def test_unknown_cpu_impl_is_rejected(monkeypatch):
    monkeypatch.setenv("NWAVE_CPU_IMPL", "fortran")
    with pytest.raises(ValueError, match=r"NWAVE_CPU_IMPL='fortran' is unknown; choose one of \('auto', 'native', 'torch'\)"):
        cpu.cpu_impl(torch.float32)


def test_backward_accepts_expanded_and_non_contiguous_grads():
    current, beta, _, _ = make_inputs(2, 5, 4, recurrent=False)
    leaf = current.transpose(0, 1).contiguous().transpose(0, 1).requires_grad_(True)  # non-contiguous leaf
    with record_kernels() as calls:
        spikes, membranes = lif_sequence(leaf, beta, 1.0, fast_sigmoid(), backend="cpu")
        (spikes.sum() + membranes.sum()).backward()  # sum() hands back stride-0 grads
    assert_ran(calls, "cpu")
    ref_leaf = current.clone().requires_grad_(True)
    s, m = lif_sequence(ref_leaf, beta, 1.0, fast_sigmoid(), backend="reference")
    (s.sum() + m.sum()).backward()
    torch.testing.assert_close(leaf.grad, ref_leaf.grad)


def _strided_grad_losses():
    # Each loss hands the op output grads with unusual strides: expanded along
    # neurons (stride 0), transposed (neuron stride != 1), expanded everywhere.
    h = torch.linspace(-1.0, 1.0, 6)
    g = torch.randn(3, 7, 6, generator=torch.Generator().manual_seed(1))  # (B, N, T): contiguous after transposing s
    return {
        "expanded-neurons": lambda s, m: (s.sum(-1) * h).sum() + (m.sum(-1) ** 2).sum(),
        "transposed": lambda s, m: (s.transpose(1, 2).contiguous() * g).sum() + (m.transpose(1, 2).contiguous() * g).pow(2).sum(),
        "expanded-all": lambda s, m: s.sum() + m.sum(),
    }


@pytest.mark.parametrize("loss_name", sorted(_strided_grad_losses()))
@pytest.mark.parametrize("topology", ["FF", "RC"])
def test_strided_output_grads_match_reference(impl, monkeypatch, loss_name, topology):
    # Strided grads are read in place by the C loops (no contiguous copy).
    if topology == "RC":
        monkeypatch.setattr(_cpu_native, "RC_BLAS_MIN_N", 1)  # the per-step BLAS path too
        monkeypatch.setattr(_cpu_native, "RC_FORWARD_BLAS_MIN_N", 1)
    loss = _strided_grad_losses()[loss_name]
    current, beta, w, _ = make_inputs(3, 6, 7, recurrent=topology == "RC")
    results = []
    for backend in ("reference", "cpu"):
        leaves = [t.clone().requires_grad_(True) for t in (current, beta) + ((w,) if w is not None else ())]
        with record_kernels() as calls:
            spikes, membranes = lif_sequence(leaves[0], leaves[1], 1.0, fast_sigmoid(5.0), leaves[2] if w is not None else None,
                                             0.8, False, backend=backend)
            results.append(torch.autograd.grad(loss(spikes, membranes), leaves))
        assert_ran(calls, backend, impl if backend == "cpu" else None)
    for got, expected in zip(results[1], results[0]):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
