"""GRU recurrence in torch's form (gates r, z, n) and its BPTT.

    A_t = h_{t-1} W_hhᵀ + b_hh          G_x = x W_xhᵀ + b_xh, one GEMM outside
    r = σ(G_x,r + A_r),  z = σ(G_x,z + A_z),  n = tanh(G_x,n + r ⊙ A_n),  h_t = (1-z) ⊙ n + z ⊙ h_{t-1}

r multiplies the recurrent part A_n only, so ∂L/∂G_x and ∂L/∂A differ in the n block and b_hh
stays inside the loop. Rings as in lstm.py: hs has S slots; gates and a_n have T (train) or 1.
"""
import numba as nb
import numpy as np

from ._common import gru_grads, sigmoid, signatures


@nb.njit(signatures("void(F[:,:,::1], F[:,::1], F[:,::1], F[::1], int64[::1],"
                    " F[:,:,::1], F[:,::1], F[:,:,::1], F[:,:,::1], F[:,:,::1])"),
         cache=True, nogil=True)
def forward(gx, h0, W_hhT, b_hh, lengths, y, h_n, gates, a_n, hs):
    """gx [T,B,3H], h0 [B,H], W_hhT [H,3H], b_hh [3H], lengths [B]
    -> y [T,B,H], h_n [B,H], gates (r,z,n) [T or 1,B,3H], a_n [T or 1,B,H], hs [S,B,H]."""
    T, B, G = gx.shape
    H = G // 3
    S, Sg = hs.shape[0], gates.shape[0]
    zero, one = h0.dtype.type(0), h0.dtype.type(1)
    hs[0] = h0
    for t in range(T):
        a, an = gates[t % Sg], a_n[t % Sg]
        h_prev, h_t = hs[t % S], hs[(t + 1) % S]
        np.dot(h_prev, W_hhT, a)
        for b in range(B):
            if t >= lengths[b]:
                h_t[b] = h_prev[b]
                y[t, b] = zero
                continue
            for j in range(H):
                r = sigmoid(gx[t, b, j] + a[b, j] + b_hh[j])
                z = sigmoid(gx[t, b, H + j] + a[b, H + j] + b_hh[H + j])
                an[b, j] = a[b, 2 * H + j] + b_hh[2 * H + j]
                n = np.tanh(gx[t, b, 2 * H + j] + r * an[b, j])
                h = (one - z) * n + z * h_prev[b, j]
                a[b, j], a[b, H + j], a[b, 2 * H + j] = r, z, n
                h_t[b, j] = h
                y[t, b, j] = h
    h_n[:] = hs[T % S]


@nb.njit(signatures("void(F[:,:,::1], F[:,::1], F[:,:,::1], F[:,:,::1], F[:,:,::1], F[:,::1],"
                    " int64[::1], F[:,:,::1], F[:,:,::1], F[:,::1])"), cache=True, nogil=True)
def backward(dy, dh_n, gates, a_n, hs, W_hh, lengths, dGx, dA_n, dh0):
    """dy [T,B,H], dh_n [B,H], gates [T,B,3H], a_n [T,B,H], hs [T+1,B,H], W_hh [3H,H]
    -> dGx [T,B,3H] (∂L/∂G_x), dA_n [T,B,H] (the n block of ∂L/∂A; its r and z blocks are
    dGx's), dh0 [B,H] (also the running ∂L/∂h_t)."""
    T, B, G = dGx.shape
    H = G // 3
    zero = dy.dtype.type(0)
    dh_rec = np.empty((B, H), dy.dtype)
    dA = np.empty((B, G), dy.dtype)  # step t's ∂L/∂A
    dh0[:] = dh_n
    for t in range(T - 1, -1, -1):
        for b in range(B):
            if t >= lengths[b]:
                dGx[t, b] = zero
                dA[b] = zero
                dA_n[t, b] = zero
                continue
            for j in range(H):
                r, z, n = gates[t, b, j], gates[t, b, H + j], gates[t, b, 2 * H + j]
                dh = dy[t, b, j] + dh0[b, j]
                dr, dz, dn = gru_grads(r, z, n, a_n[t, b, j], hs[t, b, j], dh)
                dGx[t, b, j], dGx[t, b, H + j], dGx[t, b, 2 * H + j] = dr, dz, dn
                dA[b, j], dA[b, H + j], dA[b, 2 * H + j] = dr, dz, dn * r
                dA_n[t, b, j] = dn * r
                dh0[b, j] = dh * z          # the direct path; the recurrent one is added below
        np.dot(dA, W_hh, dh_rec)
        for b in range(B):
            if t < lengths[b]:
                for j in range(H):
                    dh0[b, j] += dh_rec[b, j]
