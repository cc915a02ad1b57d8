"""Triton kernels of the H1 neuron scan (see :mod:`.reference` for the equations).

Layout: every sequence tensor is a contiguous ``(B, T, N)``; a program owns a
block of neurons of one batch row (FF) or a block of batch rows with all
neurons (RC, whose step needs every neuron's previous spike). State lives in
registers in ``ACC`` precision (float32, or float64 for float64 inputs); the
time loop is sequential inside the program. Forward writes ``S`` and ``V``;
backward reads only ``V`` (spikes are ``V >= theta`` again) and the two
output gradients, and writes ``dL/dI``.

Compile-time constants: the surrogate ``SG_KIND`` (codes of
``_ops.SURROGATE_CODES``), ``FILTERED`` (H1v1 synaptic filter),
``DETACH_RESET``, block sizes, ``ACC`` and the dot precision. Runtime scalars:
``theta``, ``syn_decay``, ``sg_value`` — a scheduler changing the surrogate
slope every epoch does not recompile anything.

Triton reads ``TRITON_INTERPRET`` when this module decorates the kernels, so
the interpreter (CPU tensors) must be switched on before its first import.
The kernels call only Triton builtins (``tl.full``, not the ``@jit`` helpers
``tl.zeros``/``tl.cdiv``): those helpers are decorated when ``triton.language``
is first imported — often by torch or Lightning, before the variable is set —
and a non-interpreted helper cannot run inside an interpreted kernel.
"""

import triton
import triton.language as tl


@triton.jit
def _surrogate_grad(x, value, SG_KIND: tl.constexpr):
    # Same formulas as nwave_lightning.surrogate.surrogate_derivative.
    if SG_KIND == 0:  # fast_sigmoid
        d = value * tl.abs(x) + 1.0
        out = 1.0 / (d * d)
    elif SG_KIND == 1:  # atan
        z = (1.5707963267948966 * value) * x
        out = (value * 0.5) / (1.0 + z * z)
    elif SG_KIND == 2:  # sigmoid
        s = 1.0 / (1.0 + tl.exp(-(value * x)))
        out = value * s * (1.0 - s)
    else:  # triangle
        out = tl.maximum(1.0 - tl.abs(x) / value, 0.0) / value
    return out


# --------------------------------------------------------------------------- FF
@triton.jit
def ff_forward_kernel(
    I, BETA, S, V, T, N, theta, syn_decay,
    BLOCK_N: tl.constexpr, FILTERED: tl.constexpr, ACC: tl.constexpr,
):
    # 1-D grid (the y dimension would cap the batch at 65535): programs walk
    # the neuron blocks of one batch row, then the next row.
    blocks = (N + BLOCK_N - 1) // BLOCK_N
    pid_b = tl.program_id(0) // blocks
    pid_n = tl.program_id(0) % blocks
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = cols < N
    beta = tl.load(BETA + cols, mask=mask, other=0.0).to(ACC)
    row = pid_b.to(tl.int64) * T * N + cols
    u = tl.full([BLOCK_N], 0.0, ACC)
    j = tl.full([BLOCK_N], 0.0, ACC)
    # One step of prefetch: the load of I[t+1] does not depend on the state,
    # so it is issued before step t's arithmetic and hides part of its latency.
    nxt = tl.load(I + row, mask=mask, other=0.0)
    for t in range(T):
        drive = nxt.to(ACC)
        n_next = tl.minimum(T - 1 - t, 1) * N  # N, or 0 at the last step (masks all)
        nxt = tl.load(I + row + (t + 1) * N, mask=cols < n_next, other=0.0)
        if FILTERED:
            j = syn_decay * j + drive
            drive = j
        v = beta * u + drive
        fired = v >= theta
        u = tl.where(fired, 0.0, v).to(ACC)
        tl.store(V + row + t * N, v.to(V.dtype.element_ty), mask=mask)
        tl.store(S + row + t * N, tl.where(fired, 1.0, 0.0).to(S.dtype.element_ty), mask=mask)


@triton.jit
def ff_backward_kernel(
    GS, GV, V, BETA, GI, T, N, theta, syn_decay, sg_value,
    BLOCK_N: tl.constexpr, FILTERED: tl.constexpr, DETACH_RESET: tl.constexpr,
    SG_KIND: tl.constexpr, ACC: tl.constexpr, HAS_GS: tl.constexpr, HAS_GV: tl.constexpr,
):
    # 1-D grid (the y dimension would cap the batch at 65535): programs walk
    # the neuron blocks of one batch row, then the next row.
    blocks = (N + BLOCK_N - 1) // BLOCK_N
    pid_b = tl.program_id(0) // blocks
    pid_n = tl.program_id(0) % blocks
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = cols < N
    beta = tl.load(BETA + cols, mask=mask, other=0.0).to(ACC)
    row = pid_b.to(tl.int64) * T * N + cols
    grad_u = tl.full([BLOCK_N], 0.0, ACC)  # dL/dU[t]
    grad_j = tl.full([BLOCK_N], 0.0, ACC)  # dL/dJ[t] (filtered synapse)
    last = row + (T - 1) * N
    v_n = tl.load(V + last, mask=mask, other=0.0)
    # HAS_GS / HAS_GV = False: that output is not in the loss; skip its reads.
    if HAS_GS:
        gs_n = tl.load(GS + last, mask=mask, other=0.0)
    if HAS_GV:
        gv_n = tl.load(GV + last, mask=mask, other=0.0)
    for i in range(T):
        t = T - 1 - i
        v = v_n.to(ACC)
        grad_s = tl.full([BLOCK_N], 0.0, ACC)
        if HAS_GS:
            grad_s = gs_n.to(ACC)
        grad_m = tl.full([BLOCK_N], 0.0, ACC)
        if HAS_GV:
            grad_m = gv_n.to(ACC)
        prev = row + (t - 1) * N
        has_prev = cols < tl.minimum(t, 1) * N  # all False at t = 0
        v_n = tl.load(V + prev, mask=has_prev, other=0.0)
        if HAS_GS:
            gs_n = tl.load(GS + prev, mask=has_prev, other=0.0)
        if HAS_GV:
            gv_n = tl.load(GV + prev, mask=has_prev, other=0.0)
        fired = v >= theta
        if not DETACH_RESET:
            grad_s = grad_s - v * grad_u  # U = V (1 - S): dL/dS gets -V dL/dU
        grad_v = grad_m + tl.where(fired, 0.0, grad_u) + _surrogate_grad(v - theta, sg_value, SG_KIND) * grad_s
        if FILTERED:
            grad_j = grad_v + syn_decay * grad_j
            grad = grad_j
        else:
            grad = grad_v
        tl.store(GI + row + t * N, grad.to(GI.dtype.element_ty), mask=mask)
        grad_u = (beta * grad_v).to(ACC)


# ------------------------------------------------------------ RC, W on chip
@triton.jit
def rc_forward_onchip_kernel(
    I, W, BETA, S, V, B, T, N, theta, syn_decay,
    BLOCK_B: tl.constexpr, N_PAD: tl.constexpr, FILTERED: tl.constexpr, ACC: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, N_PAD)
    cmask = cols < N
    mask = (rows < B)[:, None] & cmask[None, :]
    # W stays in registers for the whole sequence; padding rows/cols are 0.
    w = tl.load(W + cols[:, None] * N + cols[None, :], mask=cmask[:, None] & cmask[None, :], other=0.0).to(ACC)
    beta = tl.load(BETA + cols, mask=cmask, other=0.0).to(ACC)[None, :]
    base = rows[:, None].to(tl.int64) * T * N + cols[None, :]
    u = tl.full([BLOCK_B, N_PAD], 0.0, ACC)
    j = tl.full([BLOCK_B, N_PAD], 0.0, ACC)
    s = tl.full([BLOCK_B, N_PAD], 0.0, ACC)
    for t in range(T):
        drive = tl.load(I + base + t * N, mask=mask, other=0.0).to(ACC)
        drive = drive + tl.dot(s, w, input_precision=DOT_PRECISION, out_dtype=ACC)
        if FILTERED:
            j = syn_decay * j + drive
            drive = j
        v = beta * u + drive
        fired = v >= theta
        s = tl.where(fired, 1.0, 0.0).to(ACC)
        u = tl.where(fired, 0.0, v).to(ACC)
        tl.store(V + base + t * N, v.to(V.dtype.element_ty), mask=mask)
        tl.store(S + base + t * N, s.to(S.dtype.element_ty), mask=mask)


@triton.jit
def rc_backward_onchip_kernel(
    GS, GV, V, WT, BETA, GI, B, T, N, theta, syn_decay, sg_value,
    BLOCK_B: tl.constexpr, N_PAD: tl.constexpr, FILTERED: tl.constexpr, DETACH_RESET: tl.constexpr,
    SG_KIND: tl.constexpr, ACC: tl.constexpr, DOT_PRECISION: tl.constexpr, HAS_GS: tl.constexpr,
    HAS_GV: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, N_PAD)
    cmask = cols < N
    mask = (rows < B)[:, None] & cmask[None, :]
    wt = tl.load(WT + cols[:, None] * N + cols[None, :], mask=cmask[:, None] & cmask[None, :], other=0.0).to(ACC)
    beta = tl.load(BETA + cols, mask=cmask, other=0.0).to(ACC)[None, :]
    base = rows[:, None].to(tl.int64) * T * N + cols[None, :]
    grad_u = tl.full([BLOCK_B, N_PAD], 0.0, ACC)
    grad_j = tl.full([BLOCK_B, N_PAD], 0.0, ACC)
    grad_next = tl.full([BLOCK_B, N_PAD], 0.0, ACC)  # dL/dI[t+1], fed back through W^T
    for i in range(T):
        t = T - 1 - i
        v = tl.load(V + base + t * N, mask=mask, other=0.0).to(ACC)
        grad_s = tl.full([BLOCK_B, N_PAD], 0.0, ACC)
        if HAS_GS:
            grad_s = tl.load(GS + base + t * N, mask=mask, other=0.0).to(ACC)
        grad_s = grad_s + tl.dot(grad_next, wt, input_precision=DOT_PRECISION, out_dtype=ACC)
        fired = v >= theta
        if not DETACH_RESET:
            grad_s = grad_s - v * grad_u
        grad_v = tl.where(fired, 0.0, grad_u)
        if HAS_GV:
            grad_v = tl.load(GV + base + t * N, mask=mask, other=0.0).to(ACC) + grad_v
        grad_v = grad_v + _surrogate_grad(v - theta, sg_value, SG_KIND) * grad_s
        if FILTERED:
            grad_j = grad_v + syn_decay * grad_j
            grad = grad_j
        else:
            grad = grad_v
        tl.store(GI + base + t * N, grad.to(GI.dtype.element_ty), mask=mask)
        grad_u = (beta * grad_v).to(ACC)
        grad_next = grad.to(ACC)


# ------------------------------------------------------------ RC, W tiled
# W does not fit on chip: each step streams W (from L2) tile by tile. The
# previous step's spikes / input grads are read back from the outputs, so a
# barrier separates steps; state that must survive a step lives in scratch
# buffers double-buffered by step parity (no read/write race inside a step).
@triton.jit
def rc_forward_tiled_kernel(
    I, W, BETA, S, V, UBUF, JBUF, B, T, N, theta, syn_decay,
    BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, FILTERED: tl.constexpr,
    ACC: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    rmask = (rows < B)[:, None]
    base = rows[:, None].to(tl.int64) * T * N
    sbase = rows[:, None].to(tl.int64) * N
    for t in range(T):
        # Masks use "index < limit" with limit 0 at the first step; a scalar
        # boolean broadcast into a mask is not supported by the interpreter.
        n_prev = tl.minimum(t, 1) * N
        cur_buf = (t % 2) * B * N
        prev_buf = ((t + 1) % 2) * B * N
        for n0 in range(0, N, BLOCK_N):
            cols = n0 + tl.arange(0, BLOCK_N)
            cmask = cols < N
            mask = rmask & cmask[None, :]
            acc = tl.full([BLOCK_B, BLOCK_N], 0.0, ACC)
            for k0 in range(0, N, BLOCK_K):
                ks = k0 + tl.arange(0, BLOCK_K)
                kmask = ks < N
                s_prev = tl.load(S + base + (t - 1) * N + ks[None, :], mask=rmask & (ks < n_prev)[None, :], other=0.0)
                w = tl.load(W + ks[:, None] * N + cols[None, :], mask=kmask[:, None] & cmask[None, :], other=0.0)
                acc += tl.dot(s_prev.to(ACC), w.to(ACC), input_precision=DOT_PRECISION, out_dtype=ACC)
            drive = tl.load(I + base + t * N + cols[None, :], mask=mask, other=0.0).to(ACC) + acc
            if FILTERED:
                j = tl.load(JBUF + prev_buf + sbase + cols[None, :], mask=rmask & (cols < n_prev)[None, :], other=0.0)
                drive = syn_decay * j + drive
                tl.store(JBUF + cur_buf + sbase + cols[None, :], drive, mask=mask)
            u = tl.load(UBUF + prev_buf + sbase + cols[None, :], mask=rmask & (cols < n_prev)[None, :], other=0.0)
            beta = tl.load(BETA + cols, mask=cmask, other=0.0).to(ACC)[None, :]
            v = beta * u + drive
            fired = v >= theta
            tl.store(UBUF + cur_buf + sbase + cols[None, :], tl.where(fired, 0.0, v).to(ACC), mask=mask)
            tl.store(V + base + t * N + cols[None, :], v.to(V.dtype.element_ty), mask=mask)
            tl.store(S + base + t * N + cols[None, :], tl.where(fired, 1.0, 0.0).to(S.dtype.element_ty), mask=mask)
        tl.debug_barrier()  # step t's spikes are read by every tile of step t+1


@triton.jit
def rc_backward_tiled_kernel(
    GS, GV, V, WT, BETA, GI, UBUF, JBUF, B, T, N, theta, syn_decay, sg_value,
    BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, FILTERED: tl.constexpr,
    DETACH_RESET: tl.constexpr, SG_KIND: tl.constexpr, ACC: tl.constexpr, DOT_PRECISION: tl.constexpr,
    HAS_GS: tl.constexpr, HAS_GV: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    rmask = (rows < B)[:, None]
    base = rows[:, None].to(tl.int64) * T * N
    sbase = rows[:, None].to(tl.int64) * N
    for i in range(T):
        t = T - 1 - i
        n_next = tl.minimum(T - 1 - t, 1) * N  # 0 at the last step
        cur_buf = (t % 2) * B * N
        next_buf = ((t + 1) % 2) * B * N
        for n0 in range(0, N, BLOCK_N):
            cols = n0 + tl.arange(0, BLOCK_N)
            cmask = cols < N
            mask = rmask & cmask[None, :]
            acc = tl.full([BLOCK_B, BLOCK_N], 0.0, ACC)
            for m0 in range(0, N, BLOCK_K):
                ms = m0 + tl.arange(0, BLOCK_K)
                mmask = ms < N
                g_next = tl.load(GI + base + (t + 1) * N + ms[None, :], mask=rmask & (ms < n_next)[None, :], other=0.0)
                wt = tl.load(WT + ms[:, None] * N + cols[None, :], mask=mmask[:, None] & cmask[None, :], other=0.0)
                acc += tl.dot(g_next.to(ACC), wt.to(ACC), input_precision=DOT_PRECISION, out_dtype=ACC)
            v = tl.load(V + base + t * N + cols[None, :], mask=mask, other=0.0).to(ACC)
            next_mask = rmask & (cols < n_next)[None, :]
            grad_u = tl.load(UBUF + next_buf + sbase + cols[None, :], mask=next_mask, other=0.0)
            grad_s = acc
            if HAS_GS:
                grad_s = tl.load(GS + base + t * N + cols[None, :], mask=mask, other=0.0).to(ACC) + acc
            fired = v >= theta
            if not DETACH_RESET:
                grad_s = grad_s - v * grad_u
            grad_v = tl.where(fired, 0.0, grad_u)
            if HAS_GV:
                grad_v = tl.load(GV + base + t * N + cols[None, :], mask=mask, other=0.0).to(ACC) + grad_v
            grad_v = grad_v + _surrogate_grad(v - theta, sg_value, SG_KIND) * grad_s
            grad = grad_v
            if FILTERED:
                grad_j = tl.load(JBUF + next_buf + sbase + cols[None, :], mask=next_mask, other=0.0)
                grad = grad_v + syn_decay * grad_j
                tl.store(JBUF + cur_buf + sbase + cols[None, :], grad.to(ACC), mask=mask)
            beta = tl.load(BETA + cols, mask=cmask, other=0.0).to(ACC)[None, :]
            tl.store(UBUF + cur_buf + sbase + cols[None, :], (beta * grad_v).to(ACC), mask=mask)
            tl.store(GI + base + t * N + cols[None, :], grad.to(GI.dtype.element_ty), mask=mask)
        tl.debug_barrier()  # step t's input grads feed every tile of step t-1
