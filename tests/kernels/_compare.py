"""Run one backend end to end and compare it with the reference oracle.

Every comparison also checks, from :func:`record_kernels`, which backend and
kernel produced each side: a forced backend (``NWAVE_BACKEND``), a fallback or a
layout switch that did not take effect would otherwise make a parity test
compare the reference with itself, or test a kernel other than the one it names.
"""

import torch

from nwave_lightning.kernels import lif_sequence, record_kernels
from nwave_lightning.surrogate import atan, fast_sigmoid, sigmoid, triangle

SURROGATES = {
    "fast_sigmoid": lambda: fast_sigmoid(5.0),
    "atan": lambda: atan(2.0),
    "sigmoid": lambda: sigmoid(4.0),
    "triangle": lambda: triangle(0.5),
}
SYN_DECAY = {"H1v2": None, "H1v1": 0.8}  # delta synapse / filtered synapse


def make_inputs(batch, steps, n, recurrent, seed=0, dtype=torch.float32, device="cpu"):
    """A current that makes neurons fire now and then (exercises the reset)."""
    gen = torch.Generator().manual_seed(seed)
    current = torch.rand(batch, steps, n, generator=gen) * 0.8
    beta = torch.rand(n, generator=gen) * 0.5 + 0.4
    w = (torch.rand(n, n, generator=gen) - 0.5) * (1.2 / max(n, 1) ** 0.5) if recurrent else None
    grads = torch.randn(2, batch, steps, n, generator=gen)
    move = lambda t: None if t is None else t.to(device=device, dtype=dtype)
    return move(current), move(beta), move(w), move(grads)


def run_recorded(backend, *args, **kwargs):
    """:func:`run` and the kernel launches it made (forward and backward)."""
    with record_kernels() as calls:
        result = run(backend, *args, **kwargs)
    return result, list(calls)


def assert_ran(calls, backend, kernel=None, device="cpu"):
    """``calls`` are the launches of one forward + backward of ``backend`` (and ``kernel`` when given).

    ``backend="auto"`` must have picked the device's kernel: Triton on CUDA, the CPU scan on the CPU.
    """
    device = torch.device(device).type
    want = {"auto": "triton" if device == "cuda" else "cpu"}.get(backend, backend)
    seen = [(c.backend, c.kernel, c.stage, c.device) for c in calls]
    if want == "reference":
        assert seen == [("reference", "reference", "forward", device)], f"expected one reference scan, ran {seen}"
        return
    assert [c.stage for c in calls] == ["forward", "backward"], f"expected one {want} forward and backward, ran {seen}"
    for call in calls:
        assert call.backend == want and call.device == device, f"expected backend {want!r} on {device}, ran {seen}"
        if kernel is not None:
            assert call.kernel == kernel, f"expected the {kernel!r} kernel, ran {seen}"
        if want == "triton":
            # On the CPU only the interpreter runs Triton; on CUDA the compiled kernels must.
            assert call.interpreted == (device == "cpu"), f"Triton interpreted={call.interpreted} on {device}"


def run(backend, current, beta, w, grads, surrogate, syn_decay=None, detach_reset=False, loss_on=("spikes", "membranes")):
    """Outputs and the gradients w.r.t. current, beta and the recurrent matrix.

    ``loss_on`` picks the outputs in the loss; one left out reaches the
    kernels' backward as a ``None`` grad.
    """
    current = current.clone().requires_grad_(True)
    beta = beta.clone().requires_grad_(True)
    leaves = [current, beta]
    if w is not None:
        w = w.clone().requires_grad_(True)
        leaves.append(w)
    spikes, membranes = lif_sequence(current, beta, 1.0, surrogate, w, syn_decay, detach_reset, backend=backend)
    terms = {"spikes": (spikes * grads[0]).sum(), "membranes": (membranes * grads[1]).sum()}
    loss = sum(terms[name] for name in loss_on)
    loss.backward()
    return {"spikes": spikes.detach(), "membranes": membranes.detach(), **{n: l.grad for n, l in zip(("current", "beta", "recurrent"), leaves)}}


# Elementwise tolerances of membranes and gradients against the reference.
TOLERANCES = {torch.float64: dict(rtol=1e-10, atol=1e-10), torch.float32: dict(rtol=1e-5, atol=1e-5)}
# float16/bfloat16 kernels read and write half-precision tensors but compute in float32: the
# reference runs in float32 on the same (exactly upcast) inputs. The stored membranes differ by
# their rounding; backward recomputes the spikes and the surrogate from those rounded membranes
# (a neuron a rounding away from threshold gets another surrogate slope), and the beta / W
# reductions run in the half dtype, so gradients are held to a normwise relative error
# ||got - ref|| / ||ref||: (membranes, gradients).
NORMWISE = {torch.float16: (1e-3, 6e-2), torch.bfloat16: (1e-2, 6e-2)}
LOW_PRECISION = tuple(NORMWISE)


def assert_matches_reference(got, expected, dtype=torch.float32, tolerance=None):
    """Spikes exactly; membranes and gradients to the dtype's rounding (or ``tolerance``, elementwise).

    ``tolerance`` takes ``rtol``, ``atol`` and optionally ``atol_scale``: the atol becomes at least
    ``atol_scale`` times the largest magnitude of the reference's tensor (sums of many terms).
    """
    assert torch.equal(got["spikes"].to(expected["spikes"].dtype), expected["spikes"])
    if expected["spikes"].shape[1] >= 3:
        assert expected["spikes"].any(), "inputs never made a neuron fire: the reset is not exercised"
    for key in ("membranes", "current", "beta", "recurrent"):
        if key not in expected:
            continue
        value = got[key].to(expected[key].dtype)
        if tolerance is None and dtype in NORMWISE:
            bound = NORMWISE[dtype][0 if key == "membranes" else 1]
            error = float((value - expected[key]).norm() / expected[key].norm().clamp_min(1e-30))
            assert error <= bound, f"{key}: normwise relative error {error:.2e} > {bound:.0e} ({dtype})"
        else:
            tol = dict(tolerance or TOLERANCES[dtype])
            scale = tol.pop("atol_scale", 0.0)  # an atol relative to the largest reference value
            tol["atol"] = max(tol["atol"], scale * float(expected[key].abs().max()))
            torch.testing.assert_close(value, expected[key], **tol, msg=lambda m: f"{key}: {m}")


def compare(backend, shape, topology, chip, surrogate, detach_reset, dtype=torch.float32, seed=0, device="cpu",
            loss_on=("spikes", "membranes"), kernel=None, tolerance=None, reference_inputs=None):
    """``backend`` (and its ``kernel`` when given) against the reference, each side checked to be what it claims.

    Half-precision inputs are compared with the float32 reference on the same values;
    ``reference_inputs`` maps the inputs ``(current, beta, w, grads)`` to the reference's
    (e.g. weights rounded as a reduced-precision dot rounds them).
    """
    current, beta, w, grads = make_inputs(*shape, recurrent=topology == "RC", seed=seed, dtype=dtype, device=device)
    tensors = (current, beta, w, grads)
    args = (*tensors, SURROGATES[surrogate](), SYN_DECAY[chip], detach_reset, loss_on)
    reference_tensors = tuple(None if t is None else t.float() for t in tensors) if dtype in LOW_PRECISION else tensors
    if reference_inputs is not None:
        reference_tensors = reference_inputs(*reference_tensors)
    expected, expected_calls = run_recorded("reference", *reference_tensors, *args[4:])
    got, got_calls = run_recorded(backend, *args)
    assert_ran(expected_calls, "reference", device=device)
    assert_ran(got_calls, backend, kernel, device=device)
    assert {c.dtype for c in got_calls} == {dtype}, got_calls
    assert_matches_reference(got, expected, dtype, tolerance)
    return got
