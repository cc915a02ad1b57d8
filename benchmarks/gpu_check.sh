#!/usr/bin/env bash
# Everything that needs a GPU, in one call: the compiled-kernel tests and the GPU benchmark rows.
#
#   benchmarks/gpu_check.sh [OUT_DIR]             on a CUDA machine (under 8 minutes on one GPU)
#   benchmarks/gpu_check.sh --dry-run [OUT_DIR]   anywhere: a subset, on the CPU under Triton's interpreter
#
# The GPU run: every test marked `gpu` (tests/kernels/test_triton_gpu.py's compiled-kernel matrix and
# the CUDA dispatch tests), the tests that put the vendor SDK's models on CUDA, then
# benchmarks/layer_speed.py on the GPU (all shapes, the Triton scans' GB/s). OUT_DIR (default
# gpu_check/) receives tests.txt, device.txt and layer_speed.md: paste them into benchmarks/RESULTS.md.
# The dry run executes a representative subset of the same matrix under the interpreter and the
# benchmark's small shape on the CPU, to check the script and the tests themselves (CI runs it:
# tests/benchmarks/test_gpu_check.py). Exit status: non-zero if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."

dry_run=0
if [ "${1:-}" = "--dry-run" ]; then dry_run=1; shift; fi
out="${1:-gpu_check}"
mkdir -p "$out"

# Tests that run on either device and put the vendor SDK's models on CUDA when there is one.
CUDA_AWARE=(
    "tests/vendor_sdk/test_sdk_models.py::test_surrogate_snn_step_and_sequence_paths_are_identical"
    "tests/vendor_sdk/test_sdk_models.py::test_surrogate_snn_gradients_agree_between_paths"
    "tests/init/test_fluct_init.py::test_the_hpo_guides_build_model_with_a_pickled_loader"
)
# The dry run's subset: every layout, dtype family, surrogate class, forced blocks, a dot
# precision and torch.compile, each at least once.
DRY_RUN_TESTS=(
    "tests/kernels/test_triton_gpu.py::test_dtypes_layouts_and_chips[H1v2-rc_tiled-bf16]"
    "tests/kernels/test_triton_gpu.py::test_dtypes_layouts_and_chips[H1v1-ff-fp64]"
    "tests/kernels/test_triton_gpu.py::test_surrogates_and_detached_reset[detached-reset-rc_onchip-triangle]"
    "tests/kernels/test_triton_gpu.py::test_loss_on_one_output_only[H1v1-ff-spikes-only]"
    "tests/kernels/test_triton_gpu.py::test_forced_feed_forward_blocks[64]"
    "tests/kernels/test_triton_gpu.py::test_forced_tiles[fp32-32-64]"
    "tests/kernels/test_triton_gpu.py::test_each_dot_precision[rc_onchip-tf32x3]"
    "tests/kernels/test_triton_gpu.py::test_torch_compile_inductor_matches_reference[FF]"
    "tests/kernels/test_triton_gpu.py::test_compiled_kernels_are_what_ran"
)

pytest_args=(-q -rs -p no:cacheprovider)
if [ "$dry_run" = 1 ]; then
    export TRITON_INTERPRET=1 NWAVE_GPU_DRY_RUN=1 CUDA_VISIBLE_DEVICES=""
    tests=("${DRY_RUN_TESTS[@]}")
    bench=(--device cpu --shapes small --repeat 1)
    echo "gpu_check: dry run (CPU, Triton interpreter): ${#tests[@]} tests of the GPU matrix, the benchmark's small shape"
else
    if [ -n "${TRITON_INTERPRET:-}" ]; then
        echo "gpu_check: TRITON_INTERPRET=${TRITON_INTERPRET} would run the interpreter, not the compiled kernels; unset it." >&2
        exit 2
    fi
    if ! python3 -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
        echo "gpu_check: no CUDA device; run 'benchmarks/gpu_check.sh --dry-run' to check the script on the CPU." >&2
        exit 2
    fi
    unset NWAVE_BACKEND NWAVE_GPU_DRY_RUN
    tests=(tests -m gpu)
    bench=(--device cuda --stat min --budget 240)
    { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
      python3 -c "import torch, triton; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'triton', triton.__version__)"
      date -u; } > "$out/device.txt"
    cat "$out/device.txt"
fi

(
    failed=0
    python3 -m pytest "${pytest_args[@]}" "${tests[@]}" || failed=1
    if [ "$dry_run" = 0 ]; then python3 -m pytest "${pytest_args[@]}" "${CUDA_AWARE[@]}" || failed=1; fi
    exit "$failed"
) 2>&1 | tee "$out/tests.txt"
status=${PIPESTATUS[0]}
# A run where nothing ran proves nothing: the GPU tests must not have skipped wholesale.
if ! grep -Eq "[1-9][0-9]* passed" "$out/tests.txt"; then echo "gpu_check: no test passed" >&2; status=1; fi
if grep -Eq "[0-9]+ (failed|error)" "$out/tests.txt"; then status=1; fi

python3 benchmarks/layer_speed.py "${bench[@]}" --markdown "$out/layer_speed.md" || status=1

echo "gpu_check: $( [ "$status" = 0 ] && echo ok || echo FAILED ); results in $out/"
exit "$status"
