"""LayerNorm LSTM and GRU recurrences (fastrnn.reference.ln_lstm_forward, ln_gru_forward) and
their BPTT, with the C kernels' arguments and saved buffers (kernels/fastrnn.h: fastrnn_ln_*):
V = x W_ihᵀ comes in over all T·B rows; each step normalises V_t's row and the product's row
(LN(v; γ) = γ (v − mean v) / sqrt(var v + 1e-5)), and the LSTM its cell's row too. Biases are
[G] arrays (zeros for none). Rings as in lstm.py: hs, cs have S slots; the other saved buffers T
(training) or 1.
"""
import numba as nb
import numpy as np

from ._common import gru_grads, sigmoid, signatures

EPS = 1e-5


@nb.njit(cache=True, inline="always")
def _stats(v):
    """(mean, 1/sqrt(biased variance + ε)) of the row v, summed in float64."""
    s = 0.0
    for k in range(v.shape[0]):
        s += v[k]
    mu = s / v.shape[0]
    q = 0.0
    for k in range(v.shape[0]):
        q += (v[k] - mu) * (v[k] - mu)
    return mu, 1.0 / np.sqrt(q / v.shape[0] + EPS)


@nb.njit(cache=True, inline="always")
def _ln_backward(d, g, n, rstd, dv):
    """dv = ∂L/∂v of LN(v; g) from d = ∂L/∂LN(v): rstd (d g − mean(d g) − n mean(d g n))."""
    s = q = 0.0
    for k in range(d.shape[0]):
        s += d[k] * g[k]
        q += d[k] * g[k] * n[k]
    m1, m2 = s / d.shape[0], q / d.shape[0]
    for k in range(d.shape[0]):
        dv[k] = rstd * (d[k] * g[k] - m1 - n[k] * m2)


@nb.njit(signatures("void(F[:,:,::1], F[::1], F[::1], F[::1], F[:,::1], F[:,::1], F[:,::1], F[::1],"
                    " F[::1], F[::1], int64[::1], F[:,:,::1], F[:,::1], F[:,::1], F[:,:,::1],"
                    " F[:,:,::1], F[:,::1], F[:,:,::1], F[:,::1], F[:,:,::1], F[:,:,::1], F[:,::1],"
                    " F[:,:,::1])"), cache=True, nogil=True)
def lstm_forward(xv, g_ih, b_ih, b_hh, h0, c0, W_hhT, g_hh, g_c, b_c, lengths, y, h_n, c_n, gates,
                 nx, rx, nh, rh, cs, nc, rc, hs):
    """xv [T,B,4H] = x W_ihᵀ, W_hhT [H,4H] -> y [T,B,H], h_n, c_n [B,H] and the saved buffers."""
    T, B, G = xv.shape
    H = G // 4
    S, Sg = hs.shape[0], gates.shape[0]
    zero = h0.dtype.type(0)
    a = np.empty((B, G), h0.dtype)
    hs[0], cs[0] = h0, c0
    for t in range(T):
        s = t % Sg
        h_prev, h_t, c_prev, c_t = hs[t % S], hs[(t + 1) % S], cs[t % S], cs[(t + 1) % S]
        np.dot(h_prev, W_hhT, a)
        for b in range(B):
            if t >= lengths[b]:
                h_t[b], c_t[b], y[t, b] = h_prev[b], c_prev[b], zero
                nx[s, b], nh[s, b], nc[s, b] = zero, zero, zero
                continue
            mx, rsx = _stats(xv[t, b])
            mh, rsh = _stats(a[b])
            rx[s, b], rh[s, b] = rsx, rsh
            gb = gates[s, b]
            for k in range(G):
                nx[s, b, k] = (xv[t, b, k] - mx) * rsx
                nh[s, b, k] = (a[b, k] - mh) * rsh
                gb[k] = g_ih[k] * nx[s, b, k] + g_hh[k] * nh[s, b, k] + b_ih[k] + b_hh[k]
            for j in range(H):
                i, f = sigmoid(gb[j]), sigmoid(gb[H + j])
                g, o = np.tanh(gb[2 * H + j]), sigmoid(gb[3 * H + j])
                gb[j], gb[H + j], gb[2 * H + j], gb[3 * H + j] = i, f, g, o
                c_t[b, j] = f * c_prev[b, j] + i * g
            mc, rsc = _stats(c_t[b])
            rc[s, b] = rsc
            for j in range(H):
                nc[s, b, j] = (c_t[b, j] - mc) * rsc
                h = gb[3 * H + j] * np.tanh(g_c[j] * nc[s, b, j] + b_c[j])
                h_t[b, j], y[t, b, j] = h, h
    h_n[:], c_n[:] = hs[T % S], cs[T % S]


@nb.njit(signatures("void(F[:,:,::1], F[:,::1], F[:,::1], F[:,:,::1], F[:,:,::1], F[:,::1],"
                    " F[:,:,::1], F[:,::1], F[:,:,::1], F[:,:,::1], F[:,::1], F[:,::1], F[::1],"
                    " F[::1], F[::1], F[::1], int64[::1], F[:,:,::1], F[:,:,::1], F[:,:,::1],"
                    " F[:,:,::1], F[:,::1], F[:,::1])"), cache=True, nogil=True)
def lstm_backward(dy, dh_n, dc_n, gates, nx, rx, nh, rh, cs, nc, rc, W_hh, g_ih, g_hh, g_c, b_c,
                  lengths, dA, dV, dAh, du, dh0, dc0):
    """-> dA = ∂L/∂a, dV = ∂L/∂V, dAh = ∂L/∂(h_{t-1} W_hhᵀ) [T,B,4H], du = ∂L/∂u [T,B,H] (u =
    LN(c_t) + β_c), dh0, dc0 [B,H] (also the running ∂L/∂h_t, ∂L/∂c_t)."""
    T, B, G = dA.shape
    H = G // 4
    zero, one = dy.dtype.type(0), dy.dtype.type(1)
    dh_rec = np.empty((B, H), dy.dtype)
    dh0[:], dc0[:] = dh_n, dc_n
    for t in range(T - 1, -1, -1):
        for b in range(B):
            if t >= lengths[b]:
                dA[t, b], dV[t, b], dAh[t, b], du[t, b] = zero, zero, zero, zero
                continue
            gb, dab, dub, ncb = gates[t, b], dA[t, b], du[t, b], nc[t, b]
            for j in range(H):
                dh, o = dy[t, b, j] + dh0[b, j], gb[3 * H + j]
                u = np.tanh(g_c[j] * ncb[j] + b_c[j])
                dab[3 * H + j] = dh * u * o * (one - o)
                dub[j] = dh * o * (one - u * u)
                dh0[b, j] = zero  # consumed: the product below adds step t's part
            s = q = 0.0
            for j in range(H):
                s += dub[j] * g_c[j]
                q += dub[j] * g_c[j] * ncb[j]
            m1, m2 = s / H, q / H
            for j in range(H):
                i, f, g = gb[j], gb[H + j], gb[2 * H + j]
                dc = dc0[b, j] + rc[t, b] * (dub[j] * g_c[j] - m1 - ncb[j] * m2)
                dab[j] = dc * g * i * (one - i)
                dab[H + j] = dc * cs[t, b, j] * f * (one - f)
                dab[2 * H + j] = dc * i * (one - g * g)
                dc0[b, j] = dc * f
            _ln_backward(dab, g_ih, nx[t, b], rx[t, b], dV[t, b])
            _ln_backward(dab, g_hh, nh[t, b], rh[t, b], dAh[t, b])
        np.dot(dAh[t], W_hh, dh_rec)
        dh0 += dh_rec  # (ended rows' dAh is zero: they carry their ∂L/∂h)


@nb.njit(signatures("void(F[:,:,::1], F[::1], F[::1], F[:,::1], F[:,::1], F[::1], F[::1],"
                    " int64[::1], F[:,:,::1], F[:,::1], F[:,:,::1], F[:,:,::1], F[:,:,::1],"
                    " F[:,::1], F[:,:,::1], F[:,::1], F[:,:,::1])"), cache=True, nogil=True)
def gru_forward(xv, g_ih, b_ih, h0, W_hhT, g_hh, b_hh, lengths, y, h_n, gates, a_n, nx, rx, nh,
                rh, hs):
    """xv [T,B,3H] = x W_ihᵀ, W_hhT [H,3H] -> y [T,B,H], h_n [B,H] and the saved buffers."""
    T, B, G = xv.shape
    H = G // 3
    S, Sg = hs.shape[0], gates.shape[0]
    zero, one = h0.dtype.type(0), h0.dtype.type(1)
    a = np.empty((B, G), h0.dtype)
    hs[0] = h0
    for t in range(T):
        s = t % Sg
        h_prev, h_t = hs[t % S], hs[(t + 1) % S]
        np.dot(h_prev, W_hhT, a)
        for b in range(B):
            if t >= lengths[b]:
                h_t[b], y[t, b], nx[s, b], nh[s, b] = h_prev[b], zero, zero, zero
                continue
            mx, rsx = _stats(xv[t, b])
            mh, rsh = _stats(a[b])
            rx[s, b], rh[s, b] = rsx, rsh
            for k in range(G):
                nx[s, b, k] = (xv[t, b, k] - mx) * rsx
                nh[s, b, k] = (a[b, k] - mh) * rsh
            n_x, n_h = nx[s, b], nh[s, b]
            for j in range(H):
                an = g_hh[2 * H + j] * n_h[2 * H + j] + b_hh[2 * H + j]
                r = sigmoid(g_ih[j] * n_x[j] + b_ih[j] + g_hh[j] * n_h[j] + b_hh[j])
                z = sigmoid(g_ih[H + j] * n_x[H + j] + b_ih[H + j] + g_hh[H + j] * n_h[H + j]
                            + b_hh[H + j])
                n = np.tanh(g_ih[2 * H + j] * n_x[2 * H + j] + b_ih[2 * H + j] + r * an)
                h = (one - z) * n + z * h_prev[b, j]
                gates[s, b, j], gates[s, b, H + j], gates[s, b, 2 * H + j] = r, z, n
                a_n[s, b, j], h_t[b, j], y[t, b, j] = an, h, h
    h_n[:] = hs[T % S]


@nb.njit(signatures("void(F[:,:,::1], F[:,::1], F[:,:,::1], F[:,:,::1], F[:,:,::1], F[:,::1],"
                    " F[:,:,::1], F[:,::1], F[:,:,::1], F[:,::1], F[::1], F[::1], int64[::1],"
                    " F[:,:,::1], F[:,:,::1], F[:,:,::1], F[:,:,::1], F[:,::1])"),
         cache=True, nogil=True)
def gru_backward(dy, dh_n, gates, a_n, nx, rx, nh, rh, hs, W_hh, g_ih, g_hh, lengths, dX, dHh, dV,
                 dAh, dh0):
    """-> dX = ∂L/∂x̂, dHh = ∂L/∂ĥ, dV = ∂L/∂V, dAh = ∂L/∂(h_{t-1} W_hhᵀ) [T,B,3H], dh0 [B,H]
    (also the running ∂L/∂h_t)."""
    T, B, G = dX.shape
    H = G // 3
    zero = dy.dtype.type(0)
    dh_rec = np.empty((B, H), dy.dtype)
    dh0[:] = dh_n
    for t in range(T - 1, -1, -1):
        for b in range(B):
            if t >= lengths[b]:
                dX[t, b], dHh[t, b], dV[t, b], dAh[t, b] = zero, zero, zero, zero
                continue
            for j in range(H):
                r, z, n = gates[t, b, j], gates[t, b, H + j], gates[t, b, 2 * H + j]
                dh = dy[t, b, j] + dh0[b, j]
                dr, dz, dn = gru_grads(r, z, n, a_n[t, b, j], hs[t, b, j], dh)
                dX[t, b, j], dX[t, b, H + j], dX[t, b, 2 * H + j] = dr, dz, dn
                dHh[t, b, j], dHh[t, b, H + j], dHh[t, b, 2 * H + j] = dr, dz, dn * r
                dh0[b, j] = dh * z  # the direct path; the recurrent one is added below
            _ln_backward(dX[t, b], g_ih, nx[t, b], rx[t, b], dV[t, b])
            _ln_backward(dHh[t, b], g_hh, nh[t, b], rh[t, b], dAh[t, b])
        np.dot(dAh[t], W_hh, dh_rec)
        dh0 += dh_rec
