"""record_kernels: what each lif_sequence call really ran, forward and backward."""

import threading

import pytest
import torch

from nwave_lightning.kernels import KernelCall, lif_sequence, record_kernels
from nwave_lightning.kernels import record as record_module
from nwave_lightning.surrogate import SurrogateSpike, fast_sigmoid

from ._compare import make_inputs


class _Custom(SurrogateSpike):
    kind = "custom_for_record"


def _forward_backward(backend="auto", surrogate=None, recurrent=False, dtype=torch.float32):
    current, beta, w, _ = make_inputs(2, 5, 4, recurrent=recurrent, dtype=dtype)
    current.requires_grad_(True)
    spikes, membranes = lif_sequence(current, beta, 1.0, surrogate or fast_sigmoid(), w, backend=backend)
    (spikes.sum() + membranes.sum()).backward()


def test_each_backend_is_recorded_forward_and_backward(monkeypatch):
    monkeypatch.setenv("NWAVE_CPU_IMPL", "torch")
    with record_kernels() as calls:
        _forward_backward("cpu")
        _forward_backward("reference")
    assert calls == [
        KernelCall("cpu", "torch", "forward", "cpu", torch.float32),
        KernelCall("cpu", "torch", "backward", "cpu", torch.float32),
        KernelCall("reference", "reference", "forward", "cpu", torch.float32),  # autograd does its backward
    ]


def test_the_record_tells_what_ran_not_what_was_asked(monkeypatch):
    # A forced environment and the custom-surrogate fallback both reroute an "auto"/"cpu" call.
    current, beta, _, _ = make_inputs(2, 5, 4, recurrent=False)
    with record_kernels() as calls:
        lif_sequence(current, beta, 1.0, _Custom(1.0))  # forward only: a kernel-less surrogate
    assert [(c.backend, c.stage) for c in calls] == [("reference", "forward")]
    monkeypatch.setenv("NWAVE_BACKEND", "reference")
    with record_kernels() as calls:
        _forward_backward("cpu")
    assert [(c.backend, c.stage) for c in calls] == [("reference", "forward")]


def test_dtype_and_cpu_implementation_are_recorded(monkeypatch):
    monkeypatch.setenv("NWAVE_CPU_IMPL", "auto")
    with record_kernels() as calls:
        _forward_backward("cpu", dtype=torch.bfloat16)  # no C loops for bfloat16: the torch loop
    assert {(c.kernel, c.dtype) for c in calls} == {("torch", torch.bfloat16)}


def test_nothing_is_recorded_outside_and_nested_records_both_see_inner_calls():
    _forward_backward("cpu")
    assert not record_module.recording()
    with record_kernels() as outer:
        _forward_backward("reference")
        with record_kernels() as inner:
            _forward_backward("cpu")
        assert record_module.recording()
    assert not record_module.recording()
    assert [c.backend for c in outer] == ["reference", "cpu", "cpu"]
    assert [c.backend for c in inner] == ["cpu", "cpu"]


def test_equal_open_records_close_in_any_order():
    first = record_kernels()
    second = record_kernels()
    a, b = first.__enter__(), second.__enter__()
    first.__exit__(None, None, None)  # closes a, not the equal (empty) list b
    _forward_backward("cpu")
    second.__exit__(None, None, None)
    assert a == [] and [c.stage for c in b] == ["forward", "backward"]


def test_launches_from_another_thread_are_recorded():
    with record_kernels() as calls:
        worker = threading.Thread(target=_forward_backward, args=("cpu",))
        worker.start()
        worker.join()
    assert [c.stage for c in calls] == ["forward", "backward"]


def test_under_torch_compile_the_op_is_recorded_when_the_graph_runs():
    current, beta, _, _ = make_inputs(2, 4, 3, recurrent=False)

    def loss(backend):
        return lif_sequence(current, beta, 1.0, fast_sigmoid(), backend=backend)[1].sum()

    compiled = torch.compile(loss, backend="aot_eager", fullgraph=True)
    with record_kernels() as calls:
        compiled("cpu")
        compiled("reference")  # traced into the graph: no launch of its own
    assert [(c.backend, c.stage) for c in calls] == [("cpu", "forward")]


@pytest.mark.parametrize("recurrent, kernel", [(False, "ff"), (True, "rc_onchip")])
def test_triton_launches_name_their_layout(interpreter, recurrent, kernel):
    with record_kernels() as calls:
        _forward_backward("triton", recurrent=recurrent)
    assert [(c.backend, c.kernel, c.stage, c.interpreted) for c in calls] == [
        ("triton", kernel, "forward", True), ("triton", kernel, "backward", True)
    ]
    assert {c.dot_precision for c in calls} == ({"ieee"} if recurrent else {None})
