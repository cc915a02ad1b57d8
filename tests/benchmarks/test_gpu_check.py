"""benchmarks/gpu_check.sh: its dry run really runs the GPU matrix's subset under the interpreter."""

import os
import re
import subprocess

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_check.sh")


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "NWAVE_BACKEND", "NWAVE_GPU_DRY_RUN")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def _script_list(name):
    text = open(SCRIPT, encoding="utf-8").read()
    block = re.search(rf"{name}=\((.*?)\n\)", text, flags=re.S).group(1)
    return re.findall(r'"([^"]+)"', block)


@pytest.mark.slow
def test_dry_run_executes_the_subset_and_the_benchmark(tmp_path):
    pytest.importorskip("triton")
    out = tmp_path / "out"
    done = subprocess.run(["bash", SCRIPT, "--dry-run", str(out)], cwd=tmp_path, env=_env(OMP_NUM_THREADS="1"),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    subset = _script_list("DRY_RUN_TESTS")
    assert len(subset) >= 5 and all(t.startswith("tests/kernels/test_triton_gpu.py::") for t in subset)
    report = (out / "tests.txt").read_text()
    # Every test of the subset passed: none skipped (the cuda fixture would skip them without the dry run).
    assert re.search(rf"\b{len(subset)} passed\b", report) and "skipped" not in report, report[-2000:]
    table = (out / "layer_speed.md").read_text()
    assert "nwave (auto)" in table and "reference loop" in table
    assert done.stdout.rstrip().endswith(f"gpu_check: ok; results in {out}/")


def test_gpu_run_refuses_the_interpreter(tmp_path):
    done = subprocess.run(["bash", SCRIPT, str(tmp_path / "out")], cwd=tmp_path, env=_env(TRITON_INTERPRET="1"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "TRITON_INTERPRET=1 would run the interpreter, not the compiled kernels" in done.stderr


def test_gpu_run_without_cuda_points_to_the_dry_run(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the GPU run would start")
    done = subprocess.run(["bash", SCRIPT, str(tmp_path / "out")], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "no CUDA device; run 'benchmarks/gpu_check.sh --dry-run'" in done.stderr


def test_the_cuda_aware_tests_exist():
    # The script names tests by node id: renaming one must not silently drop it from the GPU run.
    for node in _script_list("CUDA_AWARE") + _script_list("DRY_RUN_TESTS"):
        path, name = node.split("::")
        base = re.sub(r"\[.*\]$", "", name)
        assert f"def {base}(" in open(os.path.join(ROOT, path), encoding="utf-8").read(), node
