"""LSTM recurrence (gates i, f, g, o) and its BPTT.

    a_t = G_x[t] + h_{t-1} W_hhᵀ        G_x = x W_xhᵀ + b_xh + b_hh, one GEMM outside
    c_t = σ(f) ⊙ c_{t-1} + σ(i) ⊙ tanh(g),   h_t = σ(o) ⊙ tanh(c_t)

State rings have S slots (S = T+1 for training, 2 for inference); `gates` keeps the activated
gates of each step for backward (T slots) or of the current step only (1 slot).
"""
import numba as nb
import numpy as np

from ._common import sigmoid, signatures


@nb.njit(signatures("void(F[:,:,::1], F[:,::1], F[:,::1], F[:,::1], int64[::1],"
                    " F[:,:,::1], F[:,::1], F[:,::1], F[:,:,::1], F[:,:,::1], F[:,:,::1])"),
         cache=True, nogil=True)
def forward(gx, h0, c0, W_hhT, lengths, y, h_n, c_n, gates, cs, hs):
    """gx [T,B,4H], h0 [B,H], c0 [B,H], W_hhT [H,4H], lengths [B]
    -> y [T,B,H], h_n, c_n [B,H], gates [T or 1,B,4H], cs [S,B,H], hs [S,B,H]."""
    T, B, G = gx.shape
    H = G // 4
    S, Sg = hs.shape[0], gates.shape[0]
    zero = h0.dtype.type(0)
    hs[0] = h0
    cs[0] = c0
    for t in range(T):
        a = gates[t % Sg]
        h_prev, c_prev = hs[t % S], cs[t % S]
        h_t, c_t = hs[(t + 1) % S], cs[(t + 1) % S]
        np.dot(h_prev, W_hhT, a)
        for b in range(B):
            if t >= lengths[b]:
                h_t[b] = h_prev[b]
                c_t[b] = c_prev[b]
                y[t, b] = zero
                continue
            for j in range(H):
                i = sigmoid(a[b, j] + gx[t, b, j])
                f = sigmoid(a[b, H + j] + gx[t, b, H + j])
                g = np.tanh(a[b, 2 * H + j] + gx[t, b, 2 * H + j])
                o = sigmoid(a[b, 3 * H + j] + gx[t, b, 3 * H + j])
                c = f * c_prev[b, j] + i * g
                h = o * np.tanh(c)
                a[b, j], a[b, H + j], a[b, 2 * H + j], a[b, 3 * H + j] = i, f, g, o
                c_t[b, j] = c
                h_t[b, j] = h
                y[t, b, j] = h
    h_n[:] = hs[T % S]
    c_n[:] = cs[T % S]


@nb.njit(signatures("void(F[:,:,::1], F[:,::1], F[:,::1], F[:,:,::1], F[:,:,::1], F[:,::1],"
                    " int64[::1], F[:,:,::1], F[:,::1], F[:,::1])"), cache=True, nogil=True)
def backward(dy, dh_n, dc_n, gates, cs, W_hh, lengths, dG, dh0, dc0):
    """dy [T,B,H], dh_n, dc_n [B,H], gates [T,B,4H], cs [T+1,B,H], W_hh [4H,H]
    -> dG [T,B,4H] (∂L/∂a_t), dh0, dc0 [B,H] (which double as the running ∂L/∂h_t, ∂L/∂c_t)."""
    T, B, G = dG.shape
    H = G // 4
    zero, one = dy.dtype.type(0), dy.dtype.type(1)
    dh_rec = np.empty((B, H), dy.dtype)
    dh0[:] = dh_n
    dc0[:] = dc_n
    for t in range(T - 1, -1, -1):
        for b in range(B):
            if t >= lengths[b]:
                dG[t, b] = zero
                continue
            for j in range(H):
                i, f = gates[t, b, j], gates[t, b, H + j]
                g, o = gates[t, b, 2 * H + j], gates[t, b, 3 * H + j]
                tc = np.tanh(cs[t + 1, b, j])
                dh = dy[t, b, j] + dh0[b, j]
                dc = dc0[b, j] + dh * o * (one - tc * tc)
                dG[t, b, j] = dc * g * i * (one - i)
                dG[t, b, H + j] = dc * cs[t, b, j] * f * (one - f)
                dG[t, b, 2 * H + j] = dc * i * (one - g * g)
                dG[t, b, 3 * H + j] = dh * tc * o * (one - o)
                dc0[b, j] = dc * f
        np.dot(dG[t], W_hh, dh_rec)
        for b in range(B):
            if t < lengths[b]:
                dh0[b] = dh_rec[b]
