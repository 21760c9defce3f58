"""Recurrent cells written as Python steps and declared with fastrnn.cell — each runs in
fastrnn's compiled loop, with its backward derived:

    import fastrnn, torch
    from cells import peephole_lstm          # (this file, examples/cells.py)
    layer = fastrnn.Recurrent(peephole_lstm, input_size=64, hidden_size=128, num_layers=2)
    y, (h_n, c_n) = layer(torch.randn(100, 16, 64))

Time one against the same step as a per-step torch loop:

    fastrnn bench --cell-file examples/cells.py:peephole_lstm

gx = W_ih x_t + b_ih and gh = W_hh h_{t−1} + b_hh are [..., gates·H]; the states [..., H].
"""
import torch

import fastrnn


@fastrnn.cell(gates=4, states=("h", "c"))
def lstm(gx, gh, h, c):
    """torch.nn.LSTM's step (gates i, f, g, o)."""
    i, f, g, o = (gx + gh).chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


@fastrnn.cell(gates=4, states=("h", "c"))
def lstm_ogif(gx, gh, h, c):
    """The same LSTM with its gates in another order (o, g, i, f)."""
    o, g, i, f = (gx + gh).chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


@fastrnn.cell(gates=4, states=("h", "c"), vectors={"peep": 3})
def peephole_lstm(gx, gh, h, c, peep):
    """Peephole LSTM (Gers and Schmidhuber 2000): the gates also see the cell state, through
    per-unit weights peep [3, H] (input and forget gates the old c, output gate the new)."""
    i, f, g, o = (gx + gh).chunk(4, -1)
    i = torch.sigmoid(i + peep[0] * c)
    f = torch.sigmoid(f + peep[1] * c)
    c = f * c + i * torch.tanh(g)
    h = torch.sigmoid(o + peep[2] * c) * torch.tanh(c)
    return h, c


@fastrnn.cell(gates=3, states=("h", "c"))
def cifg_lstm(gx, gh, h, c):
    """Coupled input-forget gate LSTM (Greff et al. 2017): f = 1 − i, one gate block fewer."""
    i, g, o = (gx + gh).chunk(3, -1)
    i = torch.sigmoid(i)
    c = (1 - i) * c + i * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


@fastrnn.cell(gates=2, states=("h",), recurrent=False)
def min_gru(gx, h):
    """minGRU's sequential form (Feng et al. 2024, "Were RNNs All We Needed?"):
    z = σ(W_z x_t), h̃ = W_h x_t, h_t = (1 − z) ⊙ h_{t−1} + z ⊙ h̃ — no W_hh, no product."""
    z, candidate = gx.chunk(2, -1)
    z = torch.sigmoid(z)
    return (1 - z) * h + z * candidate


def layer_norm(v, gain, shift=0):
    """LN(v; γ, β) over each row: γ ⊙ (v − mean v) / sqrt(var v + 1e-5) + β."""
    d = v - v.mean(-1, keepdim=True)
    return gain * d * torch.rsqrt((d * d).mean(-1, keepdim=True) + 1e-5) + shift


@fastrnn.cell(gates=4, states=("h", "c"),
              vectors={"ln_ih": (4, 1.0), "ln_hh": (4, 1.0), "b": 4, "ln_c": (1, 1.0),
                       "shift_c": 1})
def ln_lstm(gx, gh, h, c, ln_ih, ln_hh, b, ln_c, shift_c):
    """fastrnn.LayerNormLSTM's equations (Ba et al. 2016), to be used with bias=False: the
    biases b [4, H] are added after both LayerNorms, whose gains are ln_ih, ln_hh [4, H]; the
    cell state's LayerNorm has gain ln_c and shift shift_c [1, H]."""
    a = layer_norm(gx, ln_ih.flatten()) + layer_norm(gh, ln_hh.flatten()) + b.flatten()
    i, f, g, o = a.chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(layer_norm(c, ln_c[0], shift_c[0])), c
