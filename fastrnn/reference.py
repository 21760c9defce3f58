"""The oracle: the textbook equations of the Elman RNN, LSTM and GRU, and of the LayerNorm LSTM
and GRU, in float64 NumPy.

One equation per line, forward and hand-written backward (BPTT), readable as math. Every backend
of fastrnn is tested against these functions, and these functions are tested against torch.nn and
against finite differences.

Shape legend: T time, B batch, I input, H hidden, P projection, O output; time-major [T, B, *].
Weights have torch.nn's shapes and gate order (LSTM i, f, g, o; GRU r, z, n), with the textbook
names:  W_xh ≡ weight_ih_l{k},  W_hh ≡ weight_hh_l{k},  b_xh ≡ bias_ih_l{k},  b_hh ≡ bias_hh_l{k},
W_hr ≡ weight_hr_l{k}.  Row vectors: W_xh x_t is written x_t @ W_xh.T.

`lengths` [B] (optional) gives each sequence's length: at steps t >= lengths[b] the state of
sequence b is carried unchanged and its output is zero, as in a packed sequence.
"""
import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _mask(T, B, lengths):
    """m[t, b, None] = 1.0 while step t is inside sequence b, else 0.0; [T, B, 1]."""
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    return (np.arange(T)[:, None] < lengths[None, :]).astype(np.float64)[:, :, None]


# ----------------------------------------------------------------------------------------------
# Elman RNN:  h_t = f(W_xh x_t + b_xh + W_hh h_{t-1} + b_hh),   y_t = g(W_hy h_t + b_y)

def rnn_forward(x, h0, W_xh, W_hh, b_xh, b_hh, nonlinearity="tanh", lengths=None):
    """x [T,B,I], h0 [B,H], W_xh [H,I], W_hh [H,H], b_xh [H], b_hh [H] -> (h [T,B,H], h_T [B,H], cache)."""
    T, B, _ = x.shape
    m = _mask(T, B, lengths)
    f = np.tanh if nonlinearity == "tanh" else (lambda a: np.maximum(a, 0.0))
    hs = [h0]
    for t in range(T):
        a_t = x[t] @ W_xh.T + b_xh + hs[-1] @ W_hh.T + b_hh
        h_t = f(a_t)
        hs.append(m[t] * h_t + (1 - m[t]) * hs[-1])
    h = np.stack(hs[1:]) * m
    return h, hs[-1], (x, np.stack(hs), W_xh, W_hh, nonlinearity, m)


def rnn_backward(dh, dh_T, cache):
    """dh [T,B,H] (gradient of the outputs), dh_T [B,H] -> dict of gradients named as the inputs."""
    x, hs, W_xh, W_hh, nonlinearity, m = cache
    dW_xh, dW_hh = np.zeros_like(W_xh), np.zeros_like(W_hh)
    db, dx = np.zeros(W_hh.shape[0]), np.zeros_like(x)
    dh_next = dh_T
    for t in reversed(range(x.shape[0])):
        dh_t = m[t] * (dh[t] + dh_next)
        h_t, h_prev = hs[t + 1], hs[t]
        da = dh_t * (1 - h_t**2) if nonlinearity == "tanh" else dh_t * (h_t > 0)
        dW_xh += da.T @ x[t]
        dW_hh += da.T @ h_prev
        db += da.sum(0)
        dx[t] = da @ W_xh
        dh_next = da @ W_hh + (1 - m[t]) * dh_next
    return dict(x=dx, h0=dh_next, W_xh=dW_xh, W_hh=dW_hh, b_xh=db, b_hh=db.copy())


def output_forward(h, W_hy, b_y, g="softmax"):
    """y_t = g(W_hy h_t + b_y).  h [..., H], W_hy [O,H], b_y [O] -> y [..., O]."""
    z = h @ W_hy.T + b_y
    if g == "softmax":
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    return sigmoid(z) if g == "sigmoid" else z


def output_backward(dy, h, y, W_hy, g="softmax"):
    """Gradients of y = g(W_hy h + b_y) given dy [..., O]: dict(h, W_hy, b_y)."""
    if g == "softmax":
        dz = y * (dy - (dy * y).sum(-1, keepdims=True))
    else:
        dz = dy * y * (1 - y) if g == "sigmoid" else dy
    dz2, h2 = dz.reshape(-1, dz.shape[-1]), h.reshape(-1, h.shape[-1])
    return dict(h=dz @ W_hy, W_hy=dz2.T @ h2, b_y=dz2.sum(0))


# ----------------------------------------------------------------------------------------------
# LSTM (gates i, f, g, o; optional projection h_t = W_hr (o_t ⊙ tanh c_t))

def lstm_forward(x, h0, c0, W_xh, W_hh, b_xh, b_hh, W_hr=None, lengths=None):
    """x [T,B,I], h0 [B,P], c0 [B,H], W_xh [4H,I], W_hh [4H,P], W_hr [P,H] or None (then P = H)
    -> (h [T,B,P], (h_T [B,P], c_T [B,H]), cache)."""
    T, B, _ = x.shape
    H = c0.shape[1]
    m = _mask(T, B, lengths)
    hs, cs, steps = [h0], [c0], []
    for t in range(T):
        a_t = x[t] @ W_xh.T + b_xh + hs[-1] @ W_hh.T + b_hh
        i_t = sigmoid(a_t[:, 0 * H:1 * H])
        f_t = sigmoid(a_t[:, 1 * H:2 * H])
        g_t = np.tanh(a_t[:, 2 * H:3 * H])
        o_t = sigmoid(a_t[:, 3 * H:4 * H])
        c_t = f_t * cs[-1] + i_t * g_t
        u_t = o_t * np.tanh(c_t)
        h_t = u_t if W_hr is None else u_t @ W_hr.T
        steps.append((i_t, f_t, g_t, o_t, c_t, u_t))
        hs.append(m[t] * h_t + (1 - m[t]) * hs[-1])
        cs.append(m[t] * c_t + (1 - m[t]) * cs[-1])
    h = np.stack(hs[1:]) * m
    return h, (hs[-1], cs[-1]), (x, hs, cs, steps, W_xh, W_hh, W_hr, m)


def lstm_backward(dh, dh_T, dc_T, cache):
    """dh [T,B,P], dh_T [B,P], dc_T [B,H] -> dict of gradients named as the inputs."""
    x, hs, cs, steps, W_xh, W_hh, W_hr, m = cache
    grads = dict(x=np.zeros_like(x), W_xh=np.zeros_like(W_xh), W_hh=np.zeros_like(W_hh),
                 b_xh=np.zeros(W_xh.shape[0]))
    if W_hr is not None:
        grads["W_hr"] = np.zeros_like(W_hr)
    dh_next, dc_next = dh_T, dc_T
    for t in reversed(range(x.shape[0])):
        i_t, f_t, g_t, o_t, c_t, u_t = steps[t]
        dh_t = m[t] * (dh[t] + dh_next)
        if W_hr is not None:
            grads["W_hr"] += dh_t.T @ u_t
            dh_t = dh_t @ W_hr
        dc_t = m[t] * dc_next + dh_t * o_t * (1 - np.tanh(c_t) ** 2)
        da = np.concatenate([dc_t * g_t * i_t * (1 - i_t),
                             dc_t * cs[t] * f_t * (1 - f_t),
                             dc_t * i_t * (1 - g_t**2),
                             dh_t * np.tanh(c_t) * o_t * (1 - o_t)], axis=1)
        grads["W_xh"] += da.T @ x[t]
        grads["W_hh"] += da.T @ hs[t]
        grads["b_xh"] += da.sum(0)
        grads["x"][t] = da @ W_xh
        dh_next = da @ W_hh + (1 - m[t]) * dh_next
        dc_next = dc_t * f_t + (1 - m[t]) * dc_next
    grads.update(h0=dh_next, c0=dc_next, b_hh=grads["b_xh"].copy())
    return grads


# ----------------------------------------------------------------------------------------------
# GRU in torch's form: the reset gate multiplies the recurrent part only,
#   n_t = tanh(W_xn x_t + b_xn + r_t ⊙ (W_hn h_{t-1} + b_hn)),   h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

def gru_forward(x, h0, W_xh, W_hh, b_xh, b_hh, lengths=None):
    """x [T,B,I], h0 [B,H], W_xh [3H,I], W_hh [3H,H] -> (h [T,B,H], h_T [B,H], cache)."""
    T, B, _ = x.shape
    H = h0.shape[1]
    m = _mask(T, B, lengths)
    hs, steps = [h0], []
    for t in range(T):
        ax_t = x[t] @ W_xh.T + b_xh
        ah_t = hs[-1] @ W_hh.T + b_hh
        r_t = sigmoid(ax_t[:, 0 * H:1 * H] + ah_t[:, 0 * H:1 * H])
        z_t = sigmoid(ax_t[:, 1 * H:2 * H] + ah_t[:, 1 * H:2 * H])
        n_t = np.tanh(ax_t[:, 2 * H:3 * H] + r_t * ah_t[:, 2 * H:3 * H])
        h_t = (1 - z_t) * n_t + z_t * hs[-1]
        steps.append((r_t, z_t, n_t, ah_t[:, 2 * H:3 * H]))
        hs.append(m[t] * h_t + (1 - m[t]) * hs[-1])
    h = np.stack(hs[1:]) * m
    return h, hs[-1], (x, hs, steps, W_xh, W_hh, m)


def gru_backward(dh, dh_T, cache):
    """dh [T,B,H], dh_T [B,H] -> dict of gradients named as the inputs."""
    x, hs, steps, W_xh, W_hh, m = cache
    dW_xh, dW_hh, dx = np.zeros_like(W_xh), np.zeros_like(W_hh), np.zeros_like(x)
    db_xh, db_hh = np.zeros(W_xh.shape[0]), np.zeros(W_hh.shape[0])
    dh_next = dh_T
    for t in reversed(range(x.shape[0])):
        r_t, z_t, n_t, hn_t = steps[t]
        dh_t = m[t] * (dh[t] + dh_next)
        dn = dh_t * (1 - z_t) * (1 - n_t**2)
        dz = dh_t * (hs[t] - n_t) * z_t * (1 - z_t)
        dr = dn * hn_t * r_t * (1 - r_t)
        dax = np.concatenate([dr, dz, dn], axis=1)
        dah = np.concatenate([dr, dz, dn * r_t], axis=1)
        dW_xh += dax.T @ x[t]
        dW_hh += dah.T @ hs[t]
        db_xh += dax.sum(0)
        db_hh += dah.sum(0)
        dx[t] = dax @ W_xh
        dh_next = dah @ W_hh + dh_t * z_t + (1 - m[t]) * dh_next
    return dict(x=dx, h0=dh_next, W_xh=dW_xh, W_hh=dW_hh, b_xh=db_xh, b_hh=db_hh)


# ----------------------------------------------------------------------------------------------
# LayerNorm LSTM and GRU (Ba, Kiros and Hinton 2016, "Layer Normalization", arXiv:1607.06450):
# LN(v; γ) = γ ⊙ (v − mean v) / sqrt(var v + ε), mean and biased variance over the whole row v.

LN_EPS = 1e-5


def layer_norm(v, gamma):
    """v [B,N], gamma [N] -> (γ ⊙ n [B,N], cache): n the normalised v, rstd = 1/sqrt(var + ε)."""
    mu = v.mean(-1, keepdims=True)
    rstd = 1.0 / np.sqrt(((v - mu) ** 2).mean(-1, keepdims=True) + LN_EPS)
    n = (v - mu) * rstd
    return gamma * n, (n, rstd)


def layer_norm_backward(dy, gamma, cache):
    """dy [B,N] -> (dv [B,N], dγ [N])."""
    n, rstd = cache
    dn = dy * gamma
    dv = rstd * (dn - dn.mean(-1, keepdims=True) - n * (dn * n).mean(-1, keepdims=True))
    return dv, (dy * n).sum(0)


def ln_lstm_forward(x, h0, c0, W_xh, W_hh, b_xh, b_hh, g_xh, g_hh, g_c, b_c, lengths=None):
    """a_t = LN(W_xh x_t; g_xh) + LN(W_hh h_{t-1}; g_hh) + b_xh + b_hh, gates i, f, g, o;
    c_t = σ(f) ⊙ c_{t-1} + σ(i) ⊙ tanh(g);  h_t = σ(o) ⊙ tanh(LN(c_t; g_c) + b_c).
    x [T,B,I], h0, c0 [B,H], W_xh [4H,I], W_hh [4H,H], b_xh, b_hh, g_xh, g_hh [4H], g_c, b_c [H]
    -> (h [T,B,H], (h_T, c_T), cache)."""
    T, B, _ = x.shape
    H = c0.shape[1]
    m = _mask(T, B, lengths)
    hs, cs, steps = [h0], [c0], []
    for t in range(T):
        ax, ln_x = layer_norm(x[t] @ W_xh.T, g_xh)
        ah, ln_h = layer_norm(hs[-1] @ W_hh.T, g_hh)
        a_t = ax + ah + b_xh + b_hh
        i_t = sigmoid(a_t[:, 0 * H:1 * H])
        f_t = sigmoid(a_t[:, 1 * H:2 * H])
        g_t = np.tanh(a_t[:, 2 * H:3 * H])
        o_t = sigmoid(a_t[:, 3 * H:4 * H])
        c_t = f_t * cs[-1] + i_t * g_t
        lc, ln_c = layer_norm(c_t, g_c)
        u_t = np.tanh(lc + b_c)
        h_t = o_t * u_t
        steps.append((i_t, f_t, g_t, o_t, u_t, ln_x, ln_h, ln_c))
        hs.append(m[t] * h_t + (1 - m[t]) * hs[-1])
        cs.append(m[t] * c_t + (1 - m[t]) * cs[-1])
    h = np.stack(hs[1:]) * m
    return h, (hs[-1], cs[-1]), (x, hs, cs, steps, W_xh, W_hh, g_xh, g_hh, g_c, m)


def ln_lstm_backward(dh, dh_T, dc_T, cache):
    """dh [T,B,H], dh_T, dc_T [B,H] -> dict of gradients named as the inputs."""
    x, hs, cs, steps, W_xh, W_hh, g_xh, g_hh, g_c, m = cache
    grads = {k: np.zeros_like(v) for k, v in
             dict(x=x, W_xh=W_xh, W_hh=W_hh, b_xh=g_xh, g_xh=g_xh, g_hh=g_hh, g_c=g_c,
                  b_c=g_c).items()}
    dh_next, dc_next = dh_T, dc_T
    for t in reversed(range(x.shape[0])):
        i_t, f_t, g_t, o_t, u_t, ln_x, ln_h, ln_c = steps[t]
        dh_t = m[t] * (dh[t] + dh_next)
        du = dh_t * o_t * (1 - u_t**2)
        grads["b_c"] += du.sum(0)
        dc_ln, dg = layer_norm_backward(du, g_c, ln_c)
        grads["g_c"] += dg
        dc_t = m[t] * dc_next + dc_ln
        da = np.concatenate([dc_t * g_t * i_t * (1 - i_t),
                             dc_t * cs[t] * f_t * (1 - f_t),
                             dc_t * i_t * (1 - g_t**2),
                             dh_t * u_t * o_t * (1 - o_t)], axis=1)
        grads["b_xh"] += da.sum(0)
        dax, dg = layer_norm_backward(da, g_xh, ln_x)
        grads["g_xh"] += dg
        dah, dg = layer_norm_backward(da, g_hh, ln_h)
        grads["g_hh"] += dg
        grads["W_xh"] += dax.T @ x[t]
        grads["W_hh"] += dah.T @ hs[t]
        grads["x"][t] = dax @ W_xh
        dh_next = dah @ W_hh + (1 - m[t]) * dh_next
        dc_next = dc_t * f_t + (1 - m[t]) * dc_next
    grads.update(h0=dh_next, c0=dc_next, b_hh=grads["b_xh"].copy())
    return grads


def ln_gru_forward(x, h0, W_xh, W_hh, b_xh, b_hh, g_xh, g_hh, lengths=None):
    """x̂ = LN(W_xh x_t; g_xh) + b_xh, ĥ = LN(W_hh h_{t-1}; g_hh) + b_hh;  r = σ(x̂_r + ĥ_r),
    z = σ(x̂_z + ĥ_z), n = tanh(x̂_n + r ⊙ ĥ_n), h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}.
    x [T,B,I], h0 [B,H], W_xh [3H,I], W_hh [3H,H], b_xh, b_hh, g_xh, g_hh [3H]
    -> (h [T,B,H], h_T [B,H], cache)."""
    T, B, _ = x.shape
    H = h0.shape[1]
    m = _mask(T, B, lengths)
    hs, steps = [h0], []
    for t in range(T):
        ax, ln_x = layer_norm(x[t] @ W_xh.T, g_xh)
        ah, ln_h = layer_norm(hs[-1] @ W_hh.T, g_hh)
        ax, ah = ax + b_xh, ah + b_hh
        r_t = sigmoid(ax[:, 0 * H:1 * H] + ah[:, 0 * H:1 * H])
        z_t = sigmoid(ax[:, 1 * H:2 * H] + ah[:, 1 * H:2 * H])
        n_t = np.tanh(ax[:, 2 * H:3 * H] + r_t * ah[:, 2 * H:3 * H])
        h_t = (1 - z_t) * n_t + z_t * hs[-1]
        steps.append((r_t, z_t, n_t, ah[:, 2 * H:3 * H], ln_x, ln_h))
        hs.append(m[t] * h_t + (1 - m[t]) * hs[-1])
    h = np.stack(hs[1:]) * m
    return h, hs[-1], (x, hs, steps, W_xh, W_hh, g_xh, g_hh, m)


def ln_gru_backward(dh, dh_T, cache):
    """dh [T,B,H], dh_T [B,H] -> dict of gradients named as the inputs."""
    x, hs, steps, W_xh, W_hh, g_xh, g_hh, m = cache
    grads = {k: np.zeros_like(v) for k, v in
             dict(x=x, W_xh=W_xh, W_hh=W_hh, b_xh=g_xh, b_hh=g_hh, g_xh=g_xh, g_hh=g_hh).items()}
    dh_next = dh_T
    for t in reversed(range(x.shape[0])):
        r_t, z_t, n_t, hn_t, ln_x, ln_h = steps[t]
        dh_t = m[t] * (dh[t] + dh_next)
        dn = dh_t * (1 - z_t) * (1 - n_t**2)
        dz = dh_t * (hs[t] - n_t) * z_t * (1 - z_t)
        dr = dn * hn_t * r_t * (1 - r_t)
        dx_hat = np.concatenate([dr, dz, dn], axis=1)
        dh_hat = np.concatenate([dr, dz, dn * r_t], axis=1)
        grads["b_xh"] += dx_hat.sum(0)
        grads["b_hh"] += dh_hat.sum(0)
        dax, dg = layer_norm_backward(dx_hat, g_xh, ln_x)
        grads["g_xh"] += dg
        dah, dg = layer_norm_backward(dh_hat, g_hh, ln_h)
        grads["g_hh"] += dg
        grads["W_xh"] += dax.T @ x[t]
        grads["W_hh"] += dah.T @ hs[t]
        grads["x"][t] = dax @ W_xh
        dh_next = dah @ W_hh + dh_t * z_t + (1 - m[t]) * dh_next
    grads.update(h0=dh_next)
    return grads
