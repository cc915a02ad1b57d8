"""Kernel tests: switch Triton's CPU interpreter on before the kernels are built.

Triton reads ``TRITON_INTERPRET`` when ``@triton.jit`` decorates a kernel, i.e.
when ``nwave_lightning.kernels.triton_ops`` is first imported. pytest imports
this conftest before any test module of this folder, and nothing imports
``triton_ops`` eagerly, so setting it here is early enough. With a GPU the
variable is left alone: the compiled kernels run the ``gpu`` tests and the
interpreter tests skip themselves.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


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
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    pytest.importorskip("triton")
    return torch.device("cuda")
