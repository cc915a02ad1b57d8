"""Speed of one H1 LIF layer (synapse matmul + time scan), side by side with the peers.

Prints forward (inference, ``no_grad``) and forward+backward time and the peak
memory used during forward+backward (CUDA: allocated bytes; CPU: resident-set
growth, see :func:`peak_memory_mb`), for the reference loop, this
project's auto-dispatched path, snnTorch, SpikingJelly 2.x and Norse. On a GPU
it also prints the bandwidth the Triton scans reach against the device's.

Usage::

    python benchmarks/layer_speed.py                    # all shapes (CPU: slow rows measured once)
    python benchmarks/layer_speed.py --device cuda      # all shapes + bandwidth lines
    python benchmarks/layer_speed.py --shapes small,rc --repeat 10 --markdown out.md

Times are medians (``--stat min`` on a shared machine) over ``--repeat`` runs
after one warm-up run. A row whose
estimated cost (scaled from the small shape) exceeds what is left of
``--budget`` seconds is skipped and says so.

``--slow-cap SECONDS`` keeps the slow baselines of the big shapes affordable
without dropping their rows: a row whose forward+backward is expected (scaled
from the previous shape) or measured to take longer than that is measured
once: the peak-memory run doubles as the warm-up, then one timed
forward+backward and one timed forward. Its note says "1 run (--slow-cap)".
The default caps at 10 s on the CPU and is off on a GPU.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import PEERS, Problem, Unavailable, make_problem  # noqa: E402

# Cheapest first: a CPU run under --budget gets as far as it can.
SHAPES = {
    "small": (32, 100, 128, "FF"),
    "rc": (64, 500, 256, "RC"),
    "medium": (128, 500, 256, "FF"),
    "large": (256, 1000, 512, "FF"),
}
# Nominal HBM bandwidth (GB/s) by device-name fragment, for the roofline line.
NOMINAL_GBPS = {"H200": 4800, "H100 SXM": 3350, "H100 NVL": 3900, "H100 PCIe": 2000, "H100": 3350, "A100-SXM4-80GB": 2039, "A100": 1555}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


STAT = {"value": statistics.median}


def _once(fn, device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _timed(fn, device, repeat: int) -> float:
    fn()  # warm-up (compilation, caches)
    return STAT["value"]([_once(fn, device) for _ in range(repeat)])


def _train_step(run, problem: Problem):
    def step():
        spikes = run()
        spikes.sum().backward()
        problem.w.grad = None
        if problem.recurrent is not None:
            problem.recurrent.grad = None

    return step


def _inference(run):
    def forward():
        with torch.no_grad():
            run()

    return forward


def peak_memory_mb(fn, device: torch.device) -> float:
    """Peak memory while ``fn`` runs, above what was in use before, in MiB.

    CUDA: the caching allocator's peak of allocated bytes. CPU (Linux): the
    growth of the process's resident set, ``VmHWM`` after the run minus
    ``VmRSS`` before it, with the peak reset (``/proc/self/clear_refs``) and
    freed heap handed back (``malloc_trim``) first; this counts every buffer,
    the C scan's scratch included, and costs nothing. (The profiler's memory
    events count tensors only and, on the per-step loops of the large shape,
    took minutes and gigabytes of trace.) Elsewhere: the profiler.
    """
    if device.type == "cuda":
        _sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        _sync(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    peak = _rss_peak_growth_bytes(fn)
    if peak is not None:
        return peak / 2**20
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(
        (e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"), key=lambda e: e.start_ns()
    )
    current = peak = 0
    for event in events:
        current += event.nbytes()
        peak = max(peak, current)
    return peak / 2**20


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def _rss_peak_growth_bytes(fn) -> int | None:
    """``VmHWM`` after ``fn`` minus ``VmRSS`` before, or ``None`` off Linux."""
    try:
        import ctypes

        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # reset VmHWM to the current RSS
        before = _status_kb("VmRSS")
    except (OSError, AttributeError):
        return None
    fn()
    return max(0, _status_kb("VmHWM") - before) * 1024


def _size(shape) -> float:
    batch, steps, n, topology = shape
    return batch * steps * n * (n / 128 if topology == "RC" else 1.0)


def _measure_once(row, step, forward, device, memory_done: bool) -> None:
    """A capped row: memory (doubling as the warm-up), one train, one forward."""
    if not memory_done:
        row["mem"] = peak_memory_mb(step, device)
        row["train"] = _once(step, device)
    row["fwd"] = _once(forward, device)
    row["notes"].append("1 run (--slow-cap)")


def run_benchmarks(device, shape_names, repeat, budget, slow_cap=0.0):
    """Rows of measurements. Peers are timed round-robin (one run each per
    round) so that load from other jobs on the machine hits all of them alike.
    ``slow_cap`` (seconds, 0 = off): rows slower than that are measured once."""
    rows = []
    deadline = time.monotonic() + budget if budget > 0 else float("inf")
    per_element: dict[str, float] = {}  # one fwd+bwd, seconds per element-unit, from the last shape
    for shape_name in shape_names:
        shape = SHAPES[shape_name]
        problem = make_problem(*shape, device=device)
        active = {}
        for peer, factory in PEERS.items():
            row = {"shape": shape_name, "peer": peer, "fwd": None, "train": None, "mem": None, "notes": []}
            rows.append(row)
            if peer == "snnTorch Leaky" and shape[3] == "RC":
                row["notes"].append("RLeaky")
            try:
                run = factory(problem)
            except Unavailable as why:
                row["notes"].append(str(why))
                continue
            estimate = 4 * per_element.get(peer, 0.0) * _size(shape)  # warm-up, 1 train, 1 fwd, memory
            if estimate > deadline - time.monotonic():
                row["notes"].append(f"skipped: ~{estimate:.0f} s > what is left of --budget")
                continue
            expected = per_element.get(peer, 0.0) * _size(shape)
            step, forward = _train_step(run, problem), _inference(run)
            try:
                if slow_cap > 0 and expected > slow_cap:
                    _measure_once(row, step, forward, device, memory_done=False)
                    per_element[peer] = row["train"] / _size(shape)
                    continue
                step()  # warm-up: compilation, caches, allocator
                first = _once(step, device)
                if slow_cap > 0 and first > slow_cap:  # slower than the scaling promised
                    row["train"], row["mem"] = first, peak_memory_mb(step, device)
                    _measure_once(row, step, forward, device, memory_done=True)
                    per_element[peer] = first / _size(shape)
                    continue
            except Exception as err:  # a peer failing must not hide the others' numbers
                row["notes"].append(f"failed: {type(err).__name__}: {str(err).splitlines()[0][:80]}")
                continue
            per_element[peer] = first / _size(shape)
            active[peer] = (row, step, forward, [first], [])
        round_cost = 2.0 * sum(first[3][0] for first in active.values())
        left = deadline - time.monotonic() - round_cost  # keep one round for memory + fwd warm-up
        rounds = repeat if not math.isfinite(left) else max(1, min(repeat, int(left / max(round_cost, 1e-9))))
        for _, _, forward, _, _ in active.values():
            forward()  # warm-up of the no_grad path
        for r in range(rounds):
            for _, step, forward, train_times, fwd_times in active.values():
                if r > 0:
                    train_times.append(_once(step, device))
                fwd_times.append(_once(forward, device))
        for row, step, _, train_times, fwd_times in active.values():
            row["train"] = STAT["value"](train_times)
            row["fwd"] = STAT["value"](fwd_times)
            row["mem"] = peak_memory_mb(step, device)
            if rounds < repeat:
                row["notes"].append(f"{rounds} run(s): --budget")
        if device.type == "cuda":
            torch.cuda.empty_cache()
    for row in rows:
        row["note"] = "; ".join(row.pop("notes"))
    return rows


def bandwidth_rows(device, shape_names, repeat):
    """GB/s of the Triton scan kernels alone (current precomputed), FF shapes."""
    out = []
    for shape_name in shape_names:
        batch, steps, n, topology = SHAPES[shape_name]
        if topology != "FF":
            continue
        current = torch.rand(batch, steps, n, device=device) * 0.5
        beta = torch.full((n,), 0.9, device=device)
        fwd = lambda: torch.ops.nwave.lif_scan_triton(current, beta, None, 1.0, None, "fast_sigmoid", 25.0, False)
        spikes, membranes = fwd()
        grads = torch.randn_like(spikes), torch.randn_like(spikes)
        bwd = lambda: torch.ops.nwave.lif_scan_triton_backward(
            grads[0], grads[1], membranes, beta, None, 1.0, None, "fast_sigmoid", 25.0, False
        )
        seconds = _timed(lambda: (fwd(), bwd()), device, repeat)
        moved = current.numel() * current.element_size() * 7  # fwd: I -> S, V; bwd: gS, gV, V -> gI
        out.append((shape_name, seconds, moved / seconds / 1e9))
    return out


def device_bandwidth_gbps(device) -> tuple[float, float | None]:
    """(measured copy bandwidth, nominal bandwidth or None) in GB/s."""
    src = torch.empty(2**28, device=device)  # 1 GiB
    dst = torch.empty_like(src)
    seconds = _timed(lambda: dst.copy_(src), device, 10)
    name = torch.cuda.get_device_name(device)
    nominal = next((v for k, v in NOMINAL_GBPS.items() if k in name), None)
    return 2 * src.numel() * 4 / seconds / 1e9, nominal


def _fmt(value, unit=""):
    return "-" if value is None else f"{value:.2f}{unit}"


def render(rows, device_name):
    headers = ["shape", "implementation", "fwd ms", "fwd+bwd ms", "peak MB (fwd+bwd)", "nwave speed-up (fwd+bwd)", "note"]
    fast = {r["shape"]: r["train"] for r in rows if r["peer"] == "nwave (auto)" and r["train"]}
    table = []
    for r in rows:
        ratio = r["train"] / fast[r["shape"]] if r["train"] and fast.get(r["shape"]) else None
        shape = SHAPES[r["shape"]]
        label = f"{r['shape']} {shape[3]} B={shape[0]} T={shape[1]} N={shape[2]}"
        table.append([
            label, r["peer"], _fmt(r["fwd"] and r["fwd"] * 1e3), _fmt(r["train"] and r["train"] * 1e3),
            _fmt(r["mem"]), _fmt(ratio, "x"), r["note"],
        ])
    return headers, table


def markdown(headers, table) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in table]
    return "\n".join(lines) + "\n"


def print_table(headers, table, title):
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        print(markdown(headers, table))
        return
    rich_table = Table(title=title)
    for h in headers:
        rich_table.add_column(h, overflow="fold")
    for row in table:
        rich_table.add_row(*row)
    Console(width=200).print(rich_table)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--shapes", default=",".join(SHAPES), help=f"comma list of {list(SHAPES)}")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--budget", type=float, default=0.0, help="seconds for the whole run; 0 (default) = unlimited")
    parser.add_argument(
        "--stat", choices=["median", "min"], default="median",
        help="min is the robust choice on a machine shared with other jobs",
    )
    parser.add_argument(
        "--slow-cap", type=float, default=None,
        help="seconds; a row whose fwd+bwd takes longer is measured once (default 10 on CPU, off on GPU; 0 = off)",
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--markdown", default=None, help="also write the table as markdown to this file")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is available")
    if args.threads:
        torch.set_num_threads(args.threads)
    STAT["value"] = min if args.stat == "min" else statistics.median
    names = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = [s for s in names if s not in SHAPES]
    if unknown:
        parser.error(f"--shapes: unknown {unknown}; choose from {list(SHAPES)}")
    budget = args.budget
    if device.type == "cpu":
        device_name = f"CPU ({torch.get_num_threads()} threads)"
    else:
        device_name = torch.cuda.get_device_name(device)
    slow_cap = args.slow_cap if args.slow_cap is not None else (10.0 if device.type == "cpu" else 0.0)
    rows = run_benchmarks(device, names, args.repeat, budget, slow_cap)
    headers, table = render(rows, device_name)
    title = f"H1 layer speed on {device_name}, torch {torch.__version__}, {args.stat} of {args.repeat}"
    if slow_cap > 0:
        title += f", --slow-cap {slow_cap:g} s"
    print_table(headers, table, title)
    text = f"### {title}\n\n" + markdown(headers, table)
    if device.type == "cuda":
        measured, nominal = device_bandwidth_gbps(device)
        lines = [f"device copy bandwidth {measured:.0f} GB/s" + (f", nominal {nominal} GB/s" if nominal else "")]
        for shape_name, seconds, gbps in bandwidth_rows(device, names, args.repeat):
            roof = nominal or measured
            lines.append(f"{shape_name}: Triton FF scan fwd+bwd {seconds * 1e3:.3f} ms, {gbps:.0f} GB/s = {100 * gbps / roof:.0f} % of {roof:.0f} GB/s")
        print("\n".join(lines))
        text += "\n" + "\n".join(f"- {line}" for line in lines) + "\n"
    if args.markdown:
        target = Path(args.markdown)
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, target)


if __name__ == "__main__":
    main()
