"""The contenders of ``layer_speed.py``: one factory per LIF implementation.

Every factory gets a :class:`Problem` (input spikes ``x`` (B, T, N_in), synapse
weight ``W`` (N_in, N) with ``requires_grad``, decay ``beta``, optional
recurrent matrix) and returns a zero-argument callable that runs the synapse
matmul and the LIF scan over the whole sequence and returns the output spikes
``(B, T, N)`` (or time-first ``(T, B, N)`` for libraries that use that layout;
their input is prepared time-first outside the timed region). A factory raises
:class:`Unavailable` with the reason when the library is missing or has no
such model.

All models are the same neuron: ``V = beta U + I``, spike at ``V >= 1``, reset
to zero, same decay; only Norse's LIF adds its own synaptic-current state and
scales the input by ``dt / tau`` (its standard form).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch

from nwave_lightning.kernels import lif_sequence
from nwave_lightning.surrogate import fast_sigmoid


class Unavailable(Exception):
    """The peer cannot run this problem (message says why)."""


@dataclass
class Problem:
    x: torch.Tensor  # (B, T, N_in) input spikes
    x_time_first: torch.Tensor  # (T, B, N_in), same data
    w: torch.Tensor  # (N_in, N), requires grad
    beta: float
    recurrent: torch.Tensor | None  # (N, N), requires grad, or None (FF)

    @property
    def n(self) -> int:
        return self.w.shape[1]


def make_problem(batch, steps, n, topology, device, seed=0) -> Problem:
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(batch, steps, n, generator=gen) < 0.2).float()
    # Mean drive ~0.4 per step with beta 0.9: neurons fire every few steps.
    w = (torch.rand(n, n, generator=gen) * 2 - 0.5) * (0.4 / (0.2 * n * 0.5))
    rec = (torch.rand(n, n, generator=gen) - 0.6) * (2.0 / n) if topology == "RC" else None
    to = lambda t: None if t is None else t.to(device).requires_grad_(True)
    x = x.to(device)
    return Problem(x, x.transpose(0, 1).contiguous(), to(w), 0.9, to(rec))


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise Unavailable("not installed")


def nwave(problem: Problem, backend: str = "auto"):
    beta = torch.full((problem.n,), problem.beta, device=problem.x.device)
    surrogate = fast_sigmoid(25.0)

    def run():
        spikes, _ = lif_sequence(problem.x @ problem.w, beta, 1.0, surrogate, problem.recurrent, None, False, backend)
        return spikes

    return run


def reference(problem: Problem):
    return nwave(problem, backend="reference")


def snntorch_leaky(problem: Problem):
    _require("snntorch")
    import snntorch
    from snntorch import surrogate

    grad = surrogate.fast_sigmoid(slope=25)
    if problem.recurrent is None:
        neuron = snntorch.Leaky(beta=problem.beta, threshold=1.0, reset_mechanism="zero", spike_grad=grad)
    else:
        neuron = snntorch.RLeaky(
            beta=problem.beta, threshold=1.0, reset_mechanism="zero", spike_grad=grad,
            all_to_all=True, linear_features=problem.n,
        )
    neuron = neuron.to(problem.x.device)

    def run():
        # unbind: per-step slices whose backward is one stack, not T full-size
        # zero tensors (what current[:, t] would cost).
        steps = (problem.x @ problem.w).unbind(1)
        out = []
        if problem.recurrent is None:
            mem = neuron.init_leaky()
            for current in steps:
                spk, mem = neuron(current, mem)
                out.append(spk)
        else:
            spk, mem = neuron.init_rleaky()
            for current in steps:
                spk, mem = neuron(current, spk, mem)
                out.append(spk)
        return torch.stack(out, 1)

    return run


def spikingjelly_lif(problem: Problem):
    _require("spikingjelly")
    if problem.recurrent is not None:
        raise Unavailable("n/a: no recurrent multi-step LIF")
    from spikingjelly.activation_based import functional, neuron, surrogate

    # decay_input=False: H = V - V / tau + X = (1 - 1/tau) V + X, i.e. beta = 1 - 1/tau.
    node = neuron.LIFNode(
        tau=1.0 / (1.0 - problem.beta), decay_input=False, v_threshold=1.0, v_reset=0.0,
        surrogate_function=surrogate.Sigmoid(), step_mode="m",
    ).to(problem.x.device)

    def run():
        functional.reset_net(node)
        return node(problem.x_time_first @ problem.w)

    return run


def norse_lif(problem: Problem):
    _require("norse")
    import norse.torch as norse

    dt = 1e-3
    tau = dt / (1.0 - problem.beta)
    params = norse.LIFParameters(
        tau_mem_inv=torch.tensor(1.0 / tau), tau_syn_inv=torch.tensor(200.0), v_leak=torch.tensor(0.0),
        v_th=torch.tensor(1.0), v_reset=torch.tensor(0.0),
    )
    if problem.recurrent is None:
        module = norse.LIF(p=params, dt=dt)
    else:
        module = norse.LIFRecurrent(problem.n, problem.n, p=params, dt=dt)
    module = module.to(problem.x.device)

    def run():
        spikes, _ = module(problem.x_time_first @ problem.w)
        return spikes

    return run


PEERS = {
    "reference loop": reference,
    "nwave (auto)": nwave,
    "snnTorch Leaky": snntorch_leaky,
    "SpikingJelly LIFNode (m)": spikingjelly_lif,
    "Norse LIF": norse_lif,
}
