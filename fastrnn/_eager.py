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
