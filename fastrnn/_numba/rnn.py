"""Elman RNN recurrence, h_t = f(G_x[t] + h_{t-1} W_hhᵀ), f = tanh or relu, and its BPTT.

G_x = x W_xhᵀ + b_xh + b_hh is computed outside over all T·B rows (one GEMM); these kernels do
only the sequential part. State buffers are rings of S slots: S = T+1 keeps every h_t for
backward, S = 2 keeps only the current and previous one (inference).
"""
import numba as nb
import numpy as np

from ._common import signatures


@nb.njit(signatures("void(F[:,:,::1], F[:,::1], F[:,::1], int64[::1], boolean,"
                    " F[:,:,::1], F[:,::1], F[:,:,::1])"), cache=True, nogil=True)
def forward(gx, h0, W_hhT, lengths, relu, y, h_n, hs):
    """gx [T,B,H], h0 [B,H], W_hhT [H,H], lengths [B] -> y [T,B,H], h_n [B,H], hs [S,B,H]."""
    T, B, H = gx.shape
    S = hs.shape[0]
    zero = h0.dtype.type(0)
    hs[0] = h0
    for t in range(T):
        h_prev, h_t = hs[t % S], hs[(t + 1) % S]
        np.dot(h_prev, W_hhT, h_t)          # the recurrent product, then the fused pointwise
        for b in range(B):
            if t >= lengths[b]:             # past this sequence's end: carry the state
                h_t[b] = h_prev[b]
                y[t, b] = zero
                continue
            if relu:
                for j in range(H):
                    h_t[b, j] = max(h_t[b, j] + gx[t, b, j], zero)
            else:
                for j in range(H):
                    h_t[b, j] = np.tanh(h_t[b, j] + gx[t, b, j])
            y[t, b] = h_t[b]
    h_n[:] = hs[T % S]


@nb.njit(signatures("void(F[:,:,::1], F[:,::1], F[:,:,::1], F[:,::1], int64[::1], boolean,"
                    " F[:,:,::1], F[:,::1])"), cache=True, nogil=True)
def backward(dy, dh_n, hs, W_hh, lengths, relu, dG, dh0):
    """dy [T,B,H], dh_n [B,H], hs [T+1,B,H], W_hh [H,H] -> dG [T,B,H] (∂L/∂a_t), dh0 [B,H].

    dh0 doubles as the running ∂L/∂h_t while walking back in time.
    """
    T, B, H = dy.shape
    zero, one = dy.dtype.type(0), dy.dtype.type(1)
    dh_rec = np.empty((B, H), dy.dtype)
    dh0[:] = dh_n
    for t in range(T - 1, -1, -1):
        for b in range(B):
            if t >= lengths[b]:
                dG[t, b] = zero
                continue
            for j in range(H):
                dh = dy[t, b, j] + dh0[b, j]
                h = hs[t + 1, b, j]
                if relu:
                    dG[t, b, j] = dh if h > zero else zero
                else:
                    dG[t, b, j] = dh * (one - h * h)
        np.dot(dG[t], W_hh, dh_rec)
        for b in range(B):
            if t < lengths[b]:
                dh0[b] = dh_rec[b]
