"""LSTM recurrence (gates i, f, g, o) and its BPTT, with or without a projection (LSTMP).

    a_t = G_x[t] + h_{t-1} W_hhᵀ        G_x = x W_xhᵀ + b_xh + b_hh, one GEMM outside
    c_t = σ(f) ⊙ c_{t-1} + σ(i) ⊙ tanh(g),   r_t = σ(o) ⊙ tanh(c_t)
    h_t = r_t                  (LSTM)
    h_t = r_t W_hrᵀ            (LSTMP: W_hr [R,H], so h_t is R wide and W_hh is [4H,R])

State rings have S slots (S = T+1 for training, 2 for inference); `gates` keeps the activated
gates of each step for backward (T slots) or of the current step only (1 slot).
"""
import numba as nb
import numpy as np

from ._common import sigmoid, signatures


@nb.njit(cache=True, inline="always")
def _cell(t, a, gxt, c_prev, c_t, r, lengths):
    """Step t's pointwise part: a [B,4H] (h_{t-1} W_hhᵀ in, activated gates out), gxt [B,4H],
    c_prev, c_t, r [B,H]. Rows past their sequence's end carry c and leave r to the caller."""
    B, H = r.shape
    for b in range(B):
        if t >= lengths[b]:
            c_t[b] = c_prev[b]
            continue
        for j in range(H):
            i = sigmoid(a[b, j] + gxt[b, j])
            f = sigmoid(a[b, H + j] + gxt[b, H + j])
            g = np.tanh(a[b, 2 * H + j] + gxt[b, 2 * H + j])
            o = sigmoid(a[b, 3 * H + j] + gxt[b, 3 * H + j])
            c = f * c_prev[b, j] + i * g
            a[b, j], a[b, H + j], a[b, 2 * H + j], a[b, 3 * H + j] = i, f, g, o
            c_t[b, j] = c
            r[b, j] = o * np.tanh(c)


@nb.njit(cache=True, inline="always")
def _emit(t, h_prev, h_t, y_t, lengths):
    """y_t = h_t, or, past a sequence's end, h_t = h_{t-1} and y_t = 0 ([B,R] each)."""
    for b in range(h_t.shape[0]):
        if t >= lengths[b]:
            h_t[b] = h_prev[b]
            y_t[b] = 0
        else:
            y_t[b] = h_t[b]


@nb.njit(cache=True, inline="always")
def _cell_backward(t, dr, dG_t, gates_t, c_t, c_prev, dc, lengths):
    """Step t's pointwise BPTT: dr [B,H] = ∂L/∂r_t in, dG_t [B,4H] = ∂L/∂a_t out, dc [B,H] the
    running ∂L/∂c (in: from step t+1; out: to step t-1). Ended rows get dG_t = 0."""
    B, H = dr.shape
    one = dr.dtype.type(1)
    for b in range(B):
        if t >= lengths[b]:
            dG_t[b] = 0
            continue
        for j in range(H):
            i, f = gates_t[b, j], gates_t[b, H + j]
            g, o = gates_t[b, 2 * H + j], gates_t[b, 3 * H + j]
            tc = np.tanh(c_t[b, j])
            dh = dr[b, j]
            d = dc[b, j] + dh * o * (one - tc * tc)
            dG_t[b, j] = d * g * i * (one - i)
            dG_t[b, H + j] = d * c_prev[b, j] * f * (one - f)
            dG_t[b, 2 * H + j] = d * i * (one - g * g)
            dG_t[b, 3 * H + j] = dh * tc * o * (one - o)
            dc[b, j] = d * f


@nb.njit(signatures("void(F[:,:,::1], F[:,::1], F[:,::1], F[:,::1], int64[::1],"
                    " F[:,:,::1], F[:,::1], F[:,::1], F[:,:,::1], F[:,:,::1], F[:,:,::1])"),
         cache=True, nogil=True)
def forward(gx, h0, c0, W_hhT, lengths, y, h_n, c_n, gates, cs, hs):
    """gx [T,B,4H], h0 [B,H], c0 [B,H], W_hhT [H,4H], lengths [B]
    -> y [T,B,H], h_n, c_n [B,H], gates [T or 1,B,4H], cs [S,B,H], hs [S,B,H]."""
    T = gx.shape[0]
    S, Sg = hs.shape[0], gates.shape[0]
    hs[0] = h0
    cs[0] = c0
    for t in range(T):
        a, h_prev, h_t = gates[t % Sg], hs[t % S], hs[(t + 1) % S]
        np.dot(h_prev, W_hhT, a)
        _cell(t, a, gx[t], cs[t % S], cs[(t + 1) % S], h_t, lengths)
        _emit(t, h_prev, h_t, y[t], lengths)
    h_n[:] = hs[T % S]
    c_n[:] = cs[T % S]


@nb.njit(signatures("void(F[:,:,::1], F[:,::1], F[:,::1], F[:,::1], F[:,::1], int64[::1],"
                    " F[:,:,::1], F[:,::1], F[:,::1], F[:,:,::1], F[:,:,::1], F[:,:,::1],"
                    " F[:,:,::1])"), cache=True, nogil=True)
def forward_projected(gx, h0, c0, W_hhT, W_hrT, lengths, y, h_n, c_n, gates, cs, hs, rs):
    """gx [T,B,4H], h0 [B,R], c0 [B,H], W_hhT [R,4H], W_hrT [H,R], lengths [B]
    -> y [T,B,R], h_n [B,R], c_n [B,H], gates [T or 1,B,4H], cs [S,B,H], hs [S,B,R],
    rs [T or 1,B,H] (r_t, zero past a sequence's end)."""
    T = gx.shape[0]
    S, Sg = hs.shape[0], gates.shape[0]
    hs[0] = h0
    cs[0] = c0
    for t in range(T):
        a, r, h_prev, h_t = gates[t % Sg], rs[t % Sg], hs[t % S], hs[(t + 1) % S]
        np.dot(h_prev, W_hhT, a)
        r[:] = 0
        _cell(t, a, gx[t], cs[t % S], cs[(t + 1) % S], r, lengths)
        np.dot(r, W_hrT, h_t)
        _emit(t, h_prev, h_t, y[t], lengths)
    h_n[:] = hs[T % S]
    c_n[:] = cs[T % S]


@nb.njit(signatures("void(F[:,:,::1], F[:,::1], F[:,::1], F[:,:,::1], F[:,:,::1], F[:,::1],"
                    " int64[::1], F[:,:,::1], F[:,::1], F[:,::1])"), cache=True, nogil=True)
def backward(dy, dh_n, dc_n, gates, cs, W_hh, lengths, dG, dh0, dc0):
    """dy [T,B,H], dh_n, dc_n [B,H], gates [T,B,4H], cs [T+1,B,H], W_hh [4H,H]
    -> dG [T,B,4H] (∂L/∂a_t), dh0, dc0 [B,H] (which double as the running ∂L/∂h_t, ∂L/∂c_t)."""
    T = dG.shape[0]
    dh = np.empty_like(dh0)
    dh_rec = np.empty_like(dh0)
    dh0[:] = dh_n
    dc0[:] = dc_n
    for t in range(T - 1, -1, -1):
        np.add(dy[t], dh0, dh)
        _cell_backward(t, dh, dG[t], gates[t], cs[t + 1], cs[t], dc0, lengths)
        np.dot(dG[t], W_hh, dh_rec)
        for b in range(dh0.shape[0]):
            if t < lengths[b]:
                dh0[b] = dh_rec[b]


@nb.njit(signatures("void(F[:,:,::1], F[:,::1], F[:,::1], F[:,:,::1], F[:,:,::1], F[:,::1],"
                    " F[:,::1], int64[::1], F[:,:,::1], F[:,::1], F[:,::1], F[:,:,::1])"),
         cache=True, nogil=True)
def backward_projected(dy, dh_n, dc_n, gates, cs, W_hh, W_hr, lengths, dG, dh0, dc0, du):
    """dy [T,B,R], dh_n [B,R], dc_n [B,H], gates [T,B,4H], cs [T+1,B,H], W_hh [4H,R],
    W_hr [R,H] -> dG [T,B,4H], dh0 [B,R], dc0 [B,H] (the running ∂L/∂h_t, ∂L/∂c_t), and
    du [T,B,R]: each step's ∂L/∂h_t (zero past a sequence's end), for dW_hr = Σ_t du_tᵀ r_t."""
    T, B, H = dG.shape[0], dG.shape[1], cs.shape[2]
    dr = np.empty((B, H), dy.dtype)
    dh_rec = np.empty_like(dh0)
    dh0[:] = dh_n
    dc0[:] = dc_n
    for t in range(T - 1, -1, -1):
        for b in range(B):
            if t < lengths[b]:
                dh0[b] += dy[t, b]
                du[t, b] = dh0[b]
            else:
                du[t, b] = 0
        np.dot(dh0, W_hr, dr)
        _cell_backward(t, dr, dG[t], gates[t], cs[t + 1], cs[t], dc0, lengths)
        np.dot(dG[t], W_hh, dh_rec)
        for b in range(B):
            if t < lengths[b]:
                dh0[b] = dh_rec[b]
