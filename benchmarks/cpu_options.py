"""Why the CPU scan is C through ctypes: the candidate implementations, measured.

Times the LIF scan alone (current precomputed, FF, float32) forward+backward on
the small shape for each way of writing it, plus what each costs to build:

* ``native C (ctypes)``   — kernels/_cpu_native.py (the chosen path)
* ``torch loop, no_grad`` — kernels/cpu.py's fallback (custom op, per-step ops)
* ``torch.jit.script``    — the same loop scripted
* ``reference autograd``  — per-step autograd graph (the oracle)
* build time of the C library (fresh cache) and, with ``--cpp-extension``, of a
  trivial ``torch.utils.cpp_extension.load_inline`` module (the alternative).

Usage: ``python benchmarks/cpu_options.py [--repeat 20] [--threads 2] [--cpp-extension]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import torch

from nwave_lightning.kernels import _cpu_native, cpu, lif_sequence
from nwave_lightning.surrogate import fast_sigmoid


@torch.jit.script
def _scripted_forward(current: torch.Tensor, beta: torch.Tensor, threshold: float):
    spikes = torch.empty_like(current)
    membranes = torch.empty_like(current)
    u = torch.zeros_like(current[:, 0])
    for t in range(current.shape[1]):
        v = beta * u + current[:, t]
        fired = v >= threshold
        membranes[:, t] = v
        spikes[:, t] = fired.to(current.dtype)
        u = v.masked_fill(fired, 0.0)
    return spikes, membranes


@torch.jit.script
def _scripted_backward(grad_s: torch.Tensor, grad_m: torch.Tensor, membranes: torch.Tensor, beta: torch.Tensor, threshold: float, slope: float):
    grad_i = torch.empty_like(membranes)
    grad_u = torch.zeros_like(membranes[:, 0])
    for i in range(membranes.shape[1]):
        t = membranes.shape[1] - 1 - i
        v = membranes[:, t]
        fired = v >= threshold
        gs = grad_s[:, t] - v * grad_u
        sg = 1.0 / (slope * (v - threshold).abs() + 1.0) ** 2
        gv = grad_m[:, t] + grad_u.masked_fill(fired, 0.0) + sg * gs
        grad_i[:, t] = gv
        grad_u = beta * gv
    return grad_i


def _best(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3, sorted(times)[len(times) // 2] * 1e3


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cpp-extension", action="store_true", help="also time a load_inline build (~1 min)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    batch, steps, n = 32, 100, 128
    current = torch.rand(batch, steps, n) * 0.5
    beta = torch.full((n,), 0.9)
    grads = torch.randn(batch, steps, n), torch.randn(batch, steps, n)
    lib = _cpu_native.library()
    spikes, membranes = cpu.forward_torch(current, beta, None, 1.0, None)

    def native():
        _cpu_native.forward(lib, current, beta, None, 1.0, None)
        _cpu_native.backward(lib, *grads, membranes, beta, None, 1.0, None, 0, 25.0, False)

    def torch_loop():
        cpu.forward_torch(current, beta, None, 1.0, None)
        cpu.backward_torch(*grads, membranes, beta, None, 1.0, None, 0, 25.0, False)

    def scripted():
        _scripted_forward(current, beta, 1.0)
        _scripted_backward(*grads, membranes, beta, 1.0, 25.0)

    leaf = current.clone().requires_grad_(True)

    def reference():
        s, m = lif_sequence(leaf, beta, 1.0, fast_sigmoid(25.0), backend="reference")
        torch.autograd.backward((s, m), grads)

    rows = [("native C (ctypes)", native), ("torch loop, no_grad", torch_loop), ("torch.jit.script loop", scripted), ("reference autograd", reference)]
    print(f"LIF scan only, FF float32 B={batch} T={steps} N={n}, {torch.get_num_threads()} threads: fwd+bwd ms (min / median of {args.repeat})")
    for name, fn in rows:
        best, median = _best(fn, args.repeat)
        print(f"  {name:24s} {best:8.3f} / {median:8.3f}")

    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NWAVE_CACHE_DIR=cache)
        code = "import time; t=time.time(); from nwave_lightning.kernels import _cpu_native as c; c.library(); print(time.time()-t)"
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
        print(f"  build of the C library (fresh cache): {float(out.split()[-1]):.1f} s")
    if args.cpp_extension:
        from torch.utils.cpp_extension import load_inline

        with tempfile.TemporaryDirectory() as build:
            start = time.time()
            load_inline(name="nwave_probe", cpp_sources=["torch::Tensor twice(torch::Tensor x) { return x * 2; }"], functions=["twice"], build_directory=build)
            print(f"  build of a trivial load_inline extension: {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
