"""Independent float64 NumPy model of the H1 neuron, forward and hand-derived BPTT.

Written from hardware-model.md alone (no library code), as the oracle for the
layer tests.
"""

import numpy as np


def fast_sigmoid_grad(x, slope):
    return 1.0 / (slope * np.abs(x) + 1.0) ** 2


def forward(current, beta, theta, w_rc=None, syn_decay=0.0):
    """current (B, T, N) -> spikes, membranes (pre-reset), after-reset membranes."""
    b, t_steps, n = current.shape
    u = np.zeros((b, n))
    s = np.zeros((b, n))
    j = np.zeros((b, n))
    spikes, membranes, resets = [], [], []
    for t in range(t_steps):
        drive = current[:, t] + (s @ w_rc if w_rc is not None else 0.0)
        j = syn_decay * j + drive
        v = beta * u + j
        s = (v >= theta).astype(np.float64)
        u = v * (1.0 - s)
        spikes.append(s)
        membranes.append(v)
        resets.append(u)
    return np.stack(spikes, 1), np.stack(membranes, 1)


def backward(current, beta, theta, slope, grad_spikes, grad_membranes, w_rc=None, syn_decay=0.0, detach_reset=False):
    """Gradients of sum(gS * S + gV * V) w.r.t. the current and w_rc (BPTT by hand)."""
    spikes, membranes = forward(current, beta, theta, w_rc, syn_decay)
    b, t_steps, n = current.shape
    grad_current = np.zeros_like(current)
    grad_w = np.zeros((n, n)) if w_rc is not None else None
    dv_next = np.zeros((b, n))  # dL/dV[t+1]
    dj_next = np.zeros((b, n))  # dL/dJ[t+1]
    for t in reversed(range(t_steps)):
        v, s = membranes[:, t], spikes[:, t]
        du = beta * dv_next  # U[t] feeds V[t+1] = beta * U[t] + J[t+1]
        ds = grad_spikes[:, t] + (dj_next @ w_rc.T if w_rc is not None else 0.0)
        if not detach_reset:
            ds = ds + du * (-v)  # U[t] = V[t] * (1 - S[t])
        dv = grad_membranes[:, t] + du * (1.0 - s) + ds * fast_sigmoid_grad(v - theta, slope)
        dj = dv + syn_decay * dj_next  # J[t] feeds V[t] and J[t+1]
        grad_current[:, t] = dj
        if w_rc is not None and t > 0:
            grad_w += spikes[:, t - 1].T @ dj
        dv_next, dj_next = dv, dj
    return grad_current, grad_w
