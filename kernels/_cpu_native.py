"""The CPU scan as a small C library, compiled on first use and cached.

Why C through :mod:`ctypes` rather than a torch C++ extension: the scan is a
plain loop over contiguous buffers and needs no ATen, so it compiles with gcc
in about a second (a ``load_inline`` extension pulls in the torch headers and
takes a minute on two cores). Why not a per-step torch loop: at the shapes
people train on the CPU, per-op dispatch dominates (see ``benchmarks/``).

The shared object is built into ``$NWAVE_CACHE_DIR`` (default
``~/.cache/nwave_lightning``) under a name that hashes the source, the compiler
flags, the compiler version and the CPU's feature flags, so a cache shared by
different machines never loads a binary built for another CPU. The build
writes a temporary file and renames it into place, so concurrent processes
never load a half-written library. When no compiler is found or the build
fails, :func:`library` returns ``None`` and the caller uses the torch loop.

Loading a shared object runs its constructors, and the file name is
predictable: the cache folder and a cached file are used only when they belong
to the current user and nobody else can write to them (else the library is
built into a private temporary folder, removed at exit, with a warning). A
cached file that fails to load (empty, cut short, built elsewhere) is removed
and rebuilt once, with a warning; if that fails too, the torch loop takes over.

Numerics: ``-ffp-contract=off`` keeps ``a * b + c`` as two roundings, the way
the per-op reference computes it, so the forward pass is bit-identical to the
reference for feed-forward layers.
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

__all__ = ["library", "forward", "backward", "SOURCE"]

_TEMPLATE = r"""
/* Surrogate derivative of a row; one loop per kind so each vectorises. */
static inline void surrogate_row_SUF(const SCALAR* restrict vt, SCALAR* restrict sg, int64_t N, SCALAR theta,
                                     int kind, SCALAR value, SCALAR half_pi_value) {
    if (kind == 0) {
        for (int64_t n = 0; n < N; ++n) { SCALAR d = value * FABS(vt[n] - theta) + (SCALAR)1; sg[n] = (SCALAR)1 / (d * d); }
    } else if (kind == 1) {
        const SCALAR half = value / (SCALAR)2;
        for (int64_t n = 0; n < N; ++n) { SCALAR z = half_pi_value * (vt[n] - theta); sg[n] = half / ((SCALAR)1 + z * z); }
    } else if (kind == 2) {
        for (int64_t n = 0; n < N; ++n) {
            SCALAR s = (SCALAR)1 / ((SCALAR)1 + EXP(-(value * (vt[n] - theta))));
            sg[n] = value * s * ((SCALAR)1 - s);
        }
    } else {
        for (int64_t n = 0; n < N; ++n) {
            SCALAR r = (SCALAR)1 - FABS(vt[n] - theta) / value;
            sg[n] = (r > (SCALAR)0 ? r : (SCALAR)0) / value;
        }
    }
}

/* One step of one batch row. rt = (S[t-1] @ W) row or NULL; u, j = state. */
static inline void forward_row_SUF(const SCALAR* restrict it, const SCALAR* restrict rt, const SCALAR* restrict beta,
                                   SCALAR* restrict st, SCALAR* restrict vt, SCALAR* restrict u, SCALAR* restrict j,
                                   int64_t N, SCALAR theta, SCALAR a, int filtered) {
    /* Four copies of the loop so that each one vectorises without branches. */
    if (rt && filtered) {
        for (int64_t n = 0; n < N; ++n) {
            j[n] = a * j[n] + (it[n] + rt[n]);
            SCALAR v = beta[n] * u[n] + j[n];
            int s = v >= theta;
            vt[n] = v; st[n] = s ? (SCALAR)1 : (SCALAR)0; u[n] = s ? (SCALAR)0 : v;
        }
    } else if (rt) {
        for (int64_t n = 0; n < N; ++n) {
            SCALAR v = beta[n] * u[n] + (it[n] + rt[n]);
            int s = v >= theta;
            vt[n] = v; st[n] = s ? (SCALAR)1 : (SCALAR)0; u[n] = s ? (SCALAR)0 : v;
        }
    } else if (filtered) {
        for (int64_t n = 0; n < N; ++n) {
            j[n] = a * j[n] + it[n];
            SCALAR v = beta[n] * u[n] + j[n];
            int s = v >= theta;
            vt[n] = v; st[n] = s ? (SCALAR)1 : (SCALAR)0; u[n] = s ? (SCALAR)0 : v;
        }
    } else {
        for (int64_t n = 0; n < N; ++n) {
            SCALAR v = beta[n] * u[n] + it[n];
            int s = v >= theta;
            vt[n] = v; st[n] = s ? (SCALAR)1 : (SCALAR)0; u[n] = s ? (SCALAR)0 : v;
        }
    }
}

/* The reverse-step loop; FILTERED / DETACH are literals at each call site, so
   the always-inlined copies have no branches left in the loop. */
static inline __attribute__((always_inline)) void backward_core_SUF(
        const SCALAR* restrict gst, const SCALAR* restrict gvt, const SCALAR* restrict vt,
        const SCALAR* restrict beta, const SCALAR* restrict dst, SCALAR* restrict git, SCALAR* restrict du,
        SCALAR* restrict dj, const SCALAR* restrict sg, int64_t N, SCALAR theta, SCALAR a,
        const int FILTERED, const int DETACH) {
    for (int64_t n = 0; n < N; ++n) {
        const SCALAR v = vt[n];
        SCALAR gs = gst[n] + dst[n];
        if (!DETACH) gs = gs - v * du[n];  /* U = V (1 - S): dL/dS gets -V dL/dU */
        const SCALAR dv = (gvt[n] + (v >= theta ? (SCALAR)0 : du[n])) + sg[n] * gs;
        SCALAR g = dv;
        if (FILTERED) { dj[n] = dv + a * dj[n]; g = dj[n]; }
        git[n] = g;
        du[n] = beta[n] * dv;
    }
}

/* One reverse step of one batch row: git = dL/dI[t]. dst = dL/dS[t] through
   the recurrence; gst / gvt the output grads. Absent ones point at `zeros`
   (adding an exact 0 changes nothing). `sg` is an N-float scratch row. */
static inline void backward_row_SUF(const SCALAR* gst, const SCALAR* gvt, const SCALAR* restrict vt,
                                    const SCALAR* restrict beta, const SCALAR* dst, SCALAR* restrict git,
                                    SCALAR* restrict du, SCALAR* restrict dj, SCALAR* restrict sg,
                                    const SCALAR* zeros, int64_t N, SCALAR theta, SCALAR a, SCALAR value,
                                    SCALAR half_pi_value, int filtered, int kind, int detach_reset) {
    surrogate_row_SUF(vt, sg, N, theta, kind, value, half_pi_value);
    gst = gst ? gst : zeros;
    gvt = gvt ? gvt : zeros;
    dst = dst ? dst : zeros;
    if (filtered && detach_reset) backward_core_SUF(gst, gvt, vt, beta, dst, git, du, dj, sg, N, theta, a, 1, 1);
    else if (filtered) backward_core_SUF(gst, gvt, vt, beta, dst, git, du, dj, sg, N, theta, a, 1, 0);
    else if (detach_reset) backward_core_SUF(gst, gvt, vt, beta, dst, git, du, dj, sg, N, theta, a, 0, 1);
    else backward_core_SUF(gst, gvt, vt, beta, dst, git, du, dj, sg, N, theta, a, 0, 0);
}

/* Row (b, t) of an output grad with element strides s = (batch, time, neuron).
   A row that is not unit-stride (an expanded grad, e.g. from .sum()) is
   gathered into `buf` instead of materialising the whole tensor. NULL stays NULL. */
static inline const SCALAR* grad_row_SUF(const SCALAR* G, const int64_t* s, int64_t b, int64_t t, int64_t N,
                                         SCALAR* restrict buf) {
    if (!G) return NULL;
    const SCALAR* row = G + b * s[0] + t * s[1];
    if (s[2] == 1) return row;
    for (int64_t n = 0; n < N; ++n) buf[n] = row[n * s[2]];
    return buf;
}

/* Whole forward scan of batch rows [b0, b1). W is (N, N) row-major or NULL. */
void lif_forward_SUF(const SCALAR* restrict I, const SCALAR* restrict beta, const SCALAR* restrict W,
                     SCALAR* restrict S, SCALAR* restrict V, int64_t b0, int64_t b1, int64_t T, int64_t N,
                     SCALAR theta, SCALAR a, int filtered) {
    SCALAR* u = (SCALAR*)malloc(3 * N * sizeof(SCALAR));
    if (!u) return;
    SCALAR* j = u + N;
    SCALAR* rec = u + 2 * N;
    for (int64_t b = b0; b < b1; ++b) {
        memset(u, 0, 2 * N * sizeof(SCALAR));
        for (int64_t t = 0; t < T; ++t) {
            const int64_t off = (b * T + t) * N;
            const SCALAR* rt = NULL;
            if (W && t > 0) {
                /* S is binary: S[t-1] @ W is the sum of the rows of the active
                   neurons, added in ascending order like a sequential dot. */
                const SCALAR* sp = S + off - N;
                memset(rec, 0, N * sizeof(SCALAR));
                for (int64_t k = 0; k < N; ++k) {
                    if (sp[k] != (SCALAR)0) {
                        const SCALAR* restrict wk = W + k * N;
                        for (int64_t n = 0; n < N; ++n) rec[n] += wk[n];
                    }
                }
                rt = rec;
            }
            forward_row_SUF(I + off, rt, beta, S + off, V + off, u, j, N, theta, a, filtered);
        }
    }
    free(u);
}

/* Whole backward scan (reverse time) of batch rows [b0, b1). WT = W^T or NULL.
   gstr: the strides of GS (3) then GV (3), in elements. */
void lif_backward_SUF(const SCALAR* GS, const SCALAR* GV, const int64_t* gstr, const SCALAR* restrict V,
                      const SCALAR* restrict beta, const SCALAR* restrict WT, SCALAR* restrict GI,
                      int64_t b0, int64_t b1, int64_t T, int64_t N, SCALAR theta, SCALAR a,
                      SCALAR value, SCALAR half_pi_value, int filtered, int kind, int detach_reset) {
    SCALAR* du = (SCALAR*)calloc(7 * N, sizeof(SCALAR));
    if (!du) return;
    SCALAR* dj = du + N;
    SCALAR* ds = du + 2 * N;
    SCALAR* sg = du + 3 * N;
    const SCALAR* zeros = du + 4 * N;
    SCALAR* gs_buf = du + 5 * N;
    SCALAR* gv_buf = du + 6 * N;
    for (int64_t b = b0; b < b1; ++b) {
        memset(du, 0, 2 * N * sizeof(SCALAR));
        for (int64_t t = T - 1; t >= 0; --t) {
            const int64_t off = (b * T + t) * N;
            const SCALAR* dst = NULL;
            if (WT && t < T - 1) {
                /* dL/dS[t] through the recurrence: GI[t+1] @ W^T, as axpys over
                   contiguous rows of W^T (vectorises without reassociation). */
                const SCALAR* gn = GI + off + N;
                memset(ds, 0, N * sizeof(SCALAR));
                for (int64_t m = 0; m < N; ++m) {
                    const SCALAR g = gn[m];
                    if (g != (SCALAR)0) {
                        const SCALAR* restrict w = WT + m * N;
                        for (int64_t k = 0; k < N; ++k) ds[k] += g * w[k];
                    }
                }
                dst = ds;
            }
            backward_row_SUF(grad_row_SUF(GS, gstr, b, t, N, gs_buf), grad_row_SUF(GV, gstr + 3, b, t, N, gv_buf),
                             V + off, beta, dst, GI + off, du, dj, sg, zeros, N, theta, a, value, half_pi_value,
                             filtered, kind, detach_reset);
        }
    }
    free(du);
}

/* One step t for all B rows; the recurrent product (B, N) comes from BLAS
   (torch.mm) in the caller. u, j: (B, N) state. rec may be NULL. */
void lif_forward_step_SUF(const SCALAR* restrict I, const SCALAR* restrict beta, const SCALAR* restrict rec,
                          SCALAR* restrict S, SCALAR* restrict V, SCALAR* restrict u, SCALAR* restrict j,
                          int64_t B, int64_t T, int64_t N, int64_t t, SCALAR theta, SCALAR a, int filtered) {
    for (int64_t b = 0; b < B; ++b) {
        const int64_t off = (b * T + t) * N;
        forward_row_SUF(I + off, rec ? rec + b * N : NULL, beta, S + off, V + off, u + b * N, j + b * N, N,
                        theta, a, filtered);
    }
}

/* One reverse step t for all B rows; ds = GI[t+1] @ W^T (B, N) from BLAS or
   NULL; sg: 4N floats of scratch, the second N zero; gstr as in lif_backward. */
void lif_backward_step_SUF(const SCALAR* GS, const SCALAR* GV, const int64_t* gstr, const SCALAR* restrict V,
                           const SCALAR* restrict beta, const SCALAR* restrict ds, SCALAR* restrict GI,
                           SCALAR* restrict du, SCALAR* restrict dj, SCALAR* restrict sg, int64_t B, int64_t T,
                           int64_t N, int64_t t, SCALAR theta, SCALAR a, SCALAR value, SCALAR half_pi_value,
                           int filtered, int kind, int detach_reset) {
    for (int64_t b = 0; b < B; ++b) {
        const int64_t off = (b * T + t) * N;
        backward_row_SUF(grad_row_SUF(GS, gstr, b, t, N, sg + 2 * N), grad_row_SUF(GV, gstr + 3, b, t, N, sg + 3 * N),
                         V + off, beta, ds ? ds + b * N : NULL, GI + off, du + b * N, dj + b * N, sg, sg + N, N,
                         theta, a, value, half_pi_value, filtered, kind, detach_reset);
    }
}
"""

SOURCE = "#include <stdint.h>\n#include <stdlib.h>\n#include <string.h>\n#include <math.h>\n" + "".join(
    _TEMPLATE.replace("SCALAR", scalar).replace("SUF", suffix).replace("FABS", fabs).replace("EXP", exp)
    for scalar, suffix, fabs, exp in (("float", "f32", "fabsf", "expf"), ("double", "f64", "fabs", "exp"))
)

_BASE_FLAGS = ["-O3", "-shared", "-fPIC", "-std=c99", "-ffp-contract=off", "-fno-math-errno"]
_lock = threading.Lock()
_state: dict = {}


def _cpu_fingerprint() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return sys.platform
    keep = [line for line in text.splitlines() if line.startswith(("flags", "model name", "Features", "CPU part"))]
    return "\n".join(sorted(set(keep)))


def _private(path: Path, folder: bool) -> bool:
    """Whether ``path`` is a real folder / regular file of the current user that group and others cannot write."""
    try:
        info = os.lstat(path)  # lstat: a symlink planted in the cache is not followed
    except OSError:
        return False
    kind = stat.S_ISDIR(info.st_mode) if folder else stat.S_ISREG(info.st_mode)
    owner = not hasattr(os, "getuid") or info.st_uid == os.getuid()
    return kind and owner and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _warn(message: str) -> None:
    warnings.warn(f"nwave_lightning.kernels: {message}", RuntimeWarning, stacklevel=4)


def _private_temp_dir() -> Path:
    """A folder only this process uses (mode 0700), removed when the process exits."""
    if "private_dir" not in _state:
        path = tempfile.mkdtemp(prefix="nwave_lightning_")
        atexit.register(shutil.rmtree, path, True)
        _state["private_dir"] = Path(path)
    return _state["private_dir"]


def _cache_dir() -> Path:
    root = os.environ.get("NWAVE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "nwave_lightning"
    )
    path = Path(root)
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        probe = tempfile.NamedTemporaryFile(dir=path, delete=True)
        probe.close()
    except OSError:
        # A read-only home (containers, CI sandboxes): build per process instead.
        return _private_temp_dir()
    if not _private(path, folder=True):
        _warn(
            f"the kernel cache {path} is not a folder of yours closed to others (it must be owned by you and not "
            "group/other-writable, or anyone could plant a library there); building into a private temporary "
            f"folder instead. Fix it with `chmod go-w {path}` or point NWAVE_CACHE_DIR to a folder of your own."
        )
        return _private_temp_dir()
    return path


def _build(compiler: str, rebuild: bool = False) -> Path:
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout
    errors = []
    # -march=native first (AVX2/AVX-512 loops); a plain build if the compiler refuses it.
    for flags in (_BASE_FLAGS + ["-march=native"], _BASE_FLAGS):
        key = hashlib.sha256("\0".join([SOURCE, " ".join(flags), version, _cpu_fingerprint()]).encode()).hexdigest()[:16]
        target = _cache_dir() / f"nwave_lif_cpu_{key}.so"
        if os.path.lexists(target):
            if not _private(target, folder=False):
                _warn(f"{target} is not a file of yours closed to others; not loading it, building into a private temporary folder.")
                target = _private_temp_dir() / target.name
            elif rebuild or target.stat().st_size == 0:
                if not rebuild:
                    _warn(f"the cached library {target} is empty (an interrupted build?); rebuilding it.")
                target.unlink()  # ours but bad (empty, or it failed to load): build it again
            else:
                return target
            if os.path.lexists(target):
                return target
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            src = Path(tmp) / "lif.c"
            src.write_text(SOURCE)
            out = Path(tmp) / target.name
            proc = subprocess.run([compiler, *flags, str(src), "-o", str(out), "-lm"], capture_output=True, text=True)
            if proc.returncode == 0:
                os.chmod(out, 0o755)  # whatever the umask: never group/other-writable
                os.replace(out, target)
                return target
            errors.append(proc.stderr.strip()[-2000:])
    raise RuntimeError("compiling the CPU scan failed:\n" + "\n".join(errors))


def _load(compiler: str) -> ctypes.CDLL:
    """Load the cached library; one that fails to load is rebuilt once."""
    path = _build(compiler)
    try:
        lib = ctypes.CDLL(str(path))
        _declare(lib)
        return lib
    except (OSError, AttributeError) as err:
        _warn(f"the cached library {path} failed to load ({err}); rebuilding it.")
    lib = ctypes.CDLL(str(_build(compiler, rebuild=True)))
    _declare(lib)
    return lib


def _declare(lib: ctypes.CDLL) -> None:
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    for suffix, real in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
        fwd = getattr(lib, f"lif_forward_{suffix}")
        fwd.argtypes = [p, p, p, p, p, i64, i64, i64, i64, real, real, i32]
        fwd.restype = None
        bwd = getattr(lib, f"lif_backward_{suffix}")
        bwd.argtypes = [p, p, p, p, p, p, p, i64, i64, i64, i64, real, real, real, real, i32, i32, i32]
        bwd.restype = None
        fstep = getattr(lib, f"lif_forward_step_{suffix}")
        fstep.argtypes = [p, p, p, p, p, p, p, i64, i64, i64, i64, real, real, i32]
        fstep.restype = None
        bstep = getattr(lib, f"lif_backward_step_{suffix}")
        bstep.argtypes = [p, p, p, p, p, p, p, p, p, p, i64, i64, i64, i64, real, real, real, real, i32, i32, i32]
        bstep.restype = None


def library() -> ctypes.CDLL | None:
    """The loaded C library, building it on first call; ``None`` if unavailable.

    Example:
        >>> lib = library()
        >>> lib is None or hasattr(lib, "lif_forward_f32")
        True
    """
    with _lock:
        if "lib" in _state:
            return _state["lib"]
        lib = None
        compiler = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc") or shutil.which("clang")
        if compiler is None:
            warnings.warn(
                "nwave_lightning.kernels: no C compiler (gcc/cc/clang) found; the CPU scan uses the slower "
                "per-step torch loop. Install gcc for the fast CPU path.",
                RuntimeWarning,
                stacklevel=3,
            )
        else:
            try:
                lib = _load(compiler)
            except (OSError, AttributeError, RuntimeError, subprocess.SubprocessError) as err:
                warnings.warn(
                    f"nwave_lightning.kernels: building the fast CPU scan failed ({err}); using the per-step "
                    "torch loop instead (same numbers, slower).",
                    RuntimeWarning,
                    stacklevel=3,
                )
                lib = None
        _state["lib"] = lib
        return lib


# Batch rows are independent: split them over threads. ctypes releases the GIL
# during the call, so plain Python threads run the C loops in parallel. A
# thread hand-off costs ~50 us while the loop does ~1e9 elements/s, so only
# scans of a few million elements are split (measured on 2 cores, AVX-512).
_MIN_WORK_PER_THREAD = 1 << 21


# Backward of RC layers at least this wide: dL/dS = dL/dI[t+1] @ W^T from
# BLAS, one torch.mm per step (~10 us of call overhead per step buys a GEMM
# instead of the C axpy loops; the grads are dense, break-even is around
# N = 32..64 on AVX-512; at B=64, T=500, N=256: 70 ms vs 132 ms).
RC_BLAS_MIN_N = 64
# Forward of RC layers: S[t-1] @ W from BLAS only at least this wide (None:
# never). The C loop adds the rows of the neurons that fired, so its cost
# scales with the firing rate while the GEMM's does not; at the rates SNNs run
# at (measured 13 % and 22 %, N = 64..512, B = 16..64) it is 1x-5x faster than
# a torch.mm per step (B=64, T=500, N=256, 13 %: 46 ms vs 134 ms).
RC_FORWARD_BLAS_MIN_N: int | None = None


def _run_split(fn, batch: int, work: int, args_before: tuple, args_after: tuple) -> None:
    threads = max(1, min(torch.get_num_threads(), batch, work // _MIN_WORK_PER_THREAD))
    if threads == 1:
        fn(*args_before, 0, batch, *args_after)
        return
    pool = _state.get("pool")
    if pool is None or _state.get("pool_size") != threads:
        if pool is not None:
            pool.shutdown(wait=False)
        pool = _state["pool"] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="nwave-lif")
        _state["pool_size"] = threads
    bounds = [batch * i // threads for i in range(threads + 1)]
    futures = [pool.submit(fn, *args_before, lo, hi, *args_after) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]
    for future in futures:
        future.result()


def _ptr(tensor: torch.Tensor | None):
    return None if tensor is None else tensor.data_ptr()


def _suffix(dtype: torch.dtype) -> str:
    return "f32" if dtype == torch.float32 else "f64"


def forward(lib, current, beta, recurrent, threshold, syn_decay):
    """Spikes and membranes from contiguous float32/float64 CPU tensors."""
    batch, steps, n = current.shape
    spikes = torch.empty_like(current)
    membranes = torch.empty_like(current)
    filtered = syn_decay is not None
    scalars = (float(threshold), float(syn_decay or 0.0), int(filtered))
    if recurrent is not None and RC_FORWARD_BLAS_MIN_N is not None and n >= RC_FORWARD_BLAS_MIN_N:
        # Wide RC layer: S[t-1] @ W for the whole batch is a BLAS call per step
        # (the same torch.mm the reference makes); C does the neuron update.
        step = getattr(lib, f"lif_forward_step_{_suffix(current.dtype)}")
        state = current.new_zeros(2, batch, n)
        rec = current.new_empty(batch, n)
        for t in range(steps):
            if t > 0:
                torch.mm(spikes[:, t - 1], recurrent, out=rec)
            step(_ptr(current), _ptr(beta), _ptr(rec) if t > 0 else None, _ptr(spikes), _ptr(membranes),
                 _ptr(state[0]), _ptr(state[1]), batch, steps, n, t, *scalars)
        return spikes, membranes
    _run_split(
        getattr(lib, f"lif_forward_{_suffix(current.dtype)}"),
        batch,
        current.numel() * (n if recurrent is not None else 1),
        (_ptr(current), _ptr(beta), _ptr(recurrent), _ptr(spikes), _ptr(membranes)),
        (steps, n, *scalars),
    )
    return spikes, membranes


def _grad_strides(*grads) -> ctypes.Array:
    strides = []
    for grad in grads:
        strides += [0, 0, 0] if grad is None else list(grad.stride())
    return (ctypes.c_int64 * len(strides))(*strides)


def backward(lib, grad_spikes, grad_membranes, membranes, beta, recurrent_t, threshold, syn_decay, kind, value, detach_reset):
    """Gradient w.r.t. the current; ``recurrent_t`` is ``W.T`` contiguous or ``None``.

    The output grads may have any strides (an expanded grad from ``.sum()`` is
    read in place, not copied); ``membranes`` and ``beta`` must be contiguous.
    """
    batch, steps, n = membranes.shape
    grad_current = torch.empty_like(membranes)
    half_pi_value = 1.5707963267948966 * value  # computed in double, as the reference does
    scalars = (float(threshold), float(syn_decay or 0.0), float(value), half_pi_value, int(syn_decay is not None), kind, int(detach_reset))
    strides = _grad_strides(grad_spikes, grad_membranes)  # alive until the C calls return
    grads = (_ptr(grad_spikes), _ptr(grad_membranes), ctypes.addressof(strides), _ptr(membranes), _ptr(beta))
    if recurrent_t is not None and n >= RC_BLAS_MIN_N:
        step = getattr(lib, f"lif_backward_step_{_suffix(membranes.dtype)}")
        state = membranes.new_zeros(2, batch, n)  # dL/dU, dL/dJ
        grad_s = membranes.new_empty(batch, n)
        scratch = membranes.new_zeros(4 * n)  # surrogate row, a zero row, two gathered grad rows
        for t in range(steps - 1, -1, -1):
            if t < steps - 1:
                torch.mm(grad_current[:, t + 1], recurrent_t, out=grad_s)
            step(*grads, _ptr(grad_s) if t < steps - 1 else None, _ptr(grad_current), _ptr(state[0]), _ptr(state[1]),
                 _ptr(scratch), batch, steps, n, t, *scalars)
        return grad_current
    _run_split(
        getattr(lib, f"lif_backward_{_suffix(membranes.dtype)}"),
        batch,
        membranes.numel() * (n if recurrent_t is not None else 4),
        (*grads, _ptr(recurrent_t), _ptr(grad_current)),
        (steps, n, *scalars),
    )
    return grad_current
