"""Kernel tests: switch Triton's CPU interpreter on before the kernels are built.

Triton reads ``TRITON_INTERPRET`` when ``@triton.jit`` decorates a kernel, i.e.
when ``nwave_lightning.kernels.triton_ops`` is first imported. pytest imports
this conftest before any test module of this folder, and nothing imports
``triton_ops`` eagerly, so setting it here is early enough. With a GPU the
variable is left alone: the compiled kernels run the ``gpu`` tests and the
interpreter tests skip themselves.

``NWAVE_BACKEND`` would override the backend every test asks for (and make a
parity test compare the reference with itself): exported, the kernel tests
refuse to run; set by a leaking test, it is cleared before each test.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

_EXPORTED_BACKEND = os.environ.get("NWAVE_BACKEND", "").strip()


@pytest.fixture(autouse=True)
def no_forced_backend(monkeypatch):
    """Refuse an exported ``NWAVE_BACKEND``; clear one that an earlier test left behind."""
    if _EXPORTED_BACKEND:
        pytest.fail(
            f"NWAVE_BACKEND={_EXPORTED_BACKEND!r} is exported: it overrides the backend each kernel test asks for, "
            "so the parity tests would not test the kernels they name. Run them without it "
            "(env -u NWAVE_BACKEND python -m pytest tests/kernels).",
            pytrace=False,
        )
    monkeypatch.delenv("NWAVE_BACKEND", raising=False)


@pytest.fixture
def interpreter():
    """Skip unless the Triton kernels run under the interpreter in this process."""
    pytest.importorskip("triton")
    from nwave_lightning.kernels import triton_ops

    if not triton_ops.interpreted():
        pytest.skip("Triton kernels are compiled for the GPU in this process; the gpu tests cover them")
    return triton_ops


@pytest.fixture
def cuda():
    """The CUDA device, for tests of the compiled kernels: skip without one, refuse the interpreter.

    With ``TRITON_INTERPRET`` on, "GPU" tests would run the interpreter on CUDA
    tensors instead of the compiled kernels they are about.
    """
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    pytest.importorskip("triton")
    from nwave_lightning.kernels import triton_ops

    if triton_ops.interpreted():
        pytest.fail(
            f"TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET')!r}: the Triton kernels were built for the CPU "
            "interpreter, so the gpu tests would not run the compiled kernels. Unset TRITON_INTERPRET.",
            pytrace=False,
        )
    return torch.device("cuda")


# benchmarks/gpu_check.sh --dry-run sets this: the compiled-kernel matrix then runs (a subset of it)
# on CPU tensors under the interpreter, so the script and the tests are exercised without a GPU.
GPU_DRY_RUN = os.environ.get("NWAVE_GPU_DRY_RUN", "") == "1"


@pytest.fixture
def gpu_device(request):
    """Device of the compiled-kernel matrix (test_triton_gpu.py): CUDA, or the CPU in a dry run.

    Without CUDA (and no dry run) the tests skip; a dry run must really run the interpreter.
    """
    if not GPU_DRY_RUN:
        return request.getfixturevalue("cuda")
    pytest.importorskip("triton")
    from nwave_lightning.kernels import triton_ops

    if not triton_ops.interpreted():
        pytest.fail("NWAVE_GPU_DRY_RUN=1 needs the Triton interpreter (TRITON_INTERPRET=1, no CUDA)", pytrace=False)
    return torch.device("cpu")
