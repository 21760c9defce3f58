"""The `eager` backend: the same recurrences in plain PyTorch ops, differentiated by autograd.

It runs anywhere torch runs (any device, any dtype, LSTM projection, double backward) and is the
fallback for whatever the compiled kernels do not cover. Shapes as in fastrnn.functional.
"""
import torch


def _masks(T, lengths, like):
    """keep[t] [B,1] is True while step t is inside the sequence; None when every length is T."""
    if lengths is None:
        return [None] * T
    steps = torch.arange(T, device=lengths.device)[:, None]
    return list((steps < lengths[None, :]).to(like.device)[:, :, None])


def _step(keep, new, old):
    return new if keep is None else torch.where(keep, new, old)


def _linear(a, w, b, like):
    """a wᵀ + b in like's dtype: under autocast the product is taken in bfloat16, as torch.nn's,
    and its result widened, so that the sums and the states stay in x's dtype — as in the
    kernels (without it the cell state would be rounded to bfloat16 at every step)."""
    return torch.nn.functional.linear(a, w, b).to(like.dtype)


def _outputs(hs, keep):
    y = torch.stack(hs)
    return y if keep[0] is None else y * torch.stack(keep).to(y.dtype)


def rnn(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, relu):
    f = torch.relu if relu else torch.tanh
    gx = _linear(x, w_ih, b_ih, x)
    keep, h, hs = _masks(x.shape[0], lengths, x), h0, []
    for t in range(x.shape[0]):
        h = _step(keep[t], f(gx[t] + _linear(h, w_hh, b_hh, x)), h)
        hs.append(h)
    return _outputs(hs, keep), h


def lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, lengths):
    gx = _linear(x, w_ih, b_ih, x)
    keep, h, c, hs = _masks(x.shape[0], lengths, x), h0, c0, []
    for t in range(x.shape[0]):
        i, f, g, o = (gx[t] + _linear(h, w_hh, b_hh, x)).chunk(4, 1)
        c_t = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_t = torch.sigmoid(o) * torch.tanh(c_t)
        if w_hr is not None:
            h_t = _linear(h_t, w_hr, None, x)
        h, c = _step(keep[t], h_t, h), _step(keep[t], c_t, c)
        hs.append(h)
    return _outputs(hs, keep), h, c


def gru(x, h0, w_ih, w_hh, b_ih, b_hh, lengths):
    gx = _linear(x, w_ih, b_ih, x)
    keep, h, hs = _masks(x.shape[0], lengths, x), h0, []
    for t in range(x.shape[0]):
        xr, xz, xn = gx[t].chunk(3, 1)
        ar, az, an = _linear(h, w_hh, b_hh, x).chunk(3, 1)
        r, z = torch.sigmoid(xr + ar), torch.sigmoid(xz + az)
        n = torch.tanh(xn + r * an)
        h = _step(keep[t], (1 - z) * n + z * h, h)
        hs.append(h)
    return _outputs(hs, keep), h


def _ln(v, gamma):
    """LN(v; γ) over v's last dimension (fastrnn.reference.LN_EPS), no shift."""
    return torch.nn.functional.layer_norm(v, v.shape[-1:], gamma, None, 1e-5)


def ln_lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh, g_ih, g_hh, g_c, b_c, lengths):
    """LayerNorm LSTM (fastrnn.reference.ln_lstm_forward); biases may be None."""
    gx = _ln(_linear(x, w_ih, None, x), g_ih)
    bias = sum(b for b in (b_ih, b_hh) if b is not None)
    keep, h, c, hs = _masks(x.shape[0], lengths, x), h0, c0, []
    for t in range(x.shape[0]):
        i, f, g, o = (gx[t] + _ln(_linear(h, w_hh, None, x), g_hh) + bias).chunk(4, 1)
        c_t = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_t = torch.sigmoid(o) * torch.tanh(_ln(c_t, g_c) + b_c)
        h, c = _step(keep[t], h_t, h), _step(keep[t], c_t, c)
        hs.append(h)
    return _outputs(hs, keep), h, c


def ln_gru(x, h0, w_ih, w_hh, b_ih, b_hh, g_ih, g_hh, lengths):
    """LayerNorm GRU (fastrnn.reference.ln_gru_forward); biases may be None."""
    gx = _ln(_linear(x, w_ih, None, x), g_ih) + (0 if b_ih is None else b_ih)
    keep, h, hs = _masks(x.shape[0], lengths, x), h0, []
    for t in range(x.shape[0]):
        xr, xz, xn = gx[t].chunk(3, 1)
        ah = _ln(_linear(h, w_hh, None, x), g_hh) + (0 if b_hh is None else b_hh)
        ar, az, an = ah.chunk(3, 1)
        r, z = torch.sigmoid(xr + ar), torch.sigmoid(xz + az)
        n = torch.tanh(xn + r * an)
        h = _step(keep[t], (1 - z) * n + z * h, h)
        hs.append(h)
    return _outputs(hs, keep), h
