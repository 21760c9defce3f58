"""LayerNorm LSTM and GRU: the reference's equations and hand-written BPTT against finite
differences and against the same equations run as a per-step torch loop under autograd."""
import numpy as np
import pytest
import torch

from _cases import rel_err
from fastrnn import _eager, reference

LENGTHS = [3, 2]


def _arrays(cell, rng, T=3, B=2, I=3, H=4):
    G = 4 * H if cell == "ln_lstm" else 3 * H
    a = dict(x=rng.normal(size=(T, B, I)), h0=rng.normal(size=(B, H)),
             W_xh=rng.normal(size=(G, I)), W_hh=rng.normal(size=(G, H)),
             b_xh=rng.normal(size=G), b_hh=rng.normal(size=G), g_xh=1 + 0.3 * rng.normal(size=G),
             g_hh=1 + 0.3 * rng.normal(size=G))
    if cell == "ln_lstm":
        a.update(c0=rng.normal(size=(B, H)), g_c=1 + 0.3 * rng.normal(size=H),
                 b_c=0.3 * rng.normal(size=H))
    return a


def _run_reference(cell, a, lengths):
    if cell == "ln_lstm":
        y, (h_n, c_n), cache = reference.ln_lstm_forward(
            a["x"], a["h0"], a["c0"], a["W_xh"], a["W_hh"], a["b_xh"], a["b_hh"], a["g_xh"],
            a["g_hh"], a["g_c"], a["b_c"], lengths)
        return (y, h_n, c_n), cache
    y, h_n, cache = reference.ln_gru_forward(a["x"], a["h0"], a["W_xh"], a["W_hh"], a["b_xh"],
                                             a["b_hh"], a["g_xh"], a["g_hh"], lengths)
    return (y, h_n), cache


def _backward(cell, weights, cache):
    if cell == "ln_lstm":
        return reference.ln_lstm_backward(*weights, cache)
    return reference.ln_gru_backward(*weights, cache)


def _numeric_grad(loss, a, name, eps=1e-6):
    g = np.zeros_like(a[name])
    for idx in np.ndindex(g.shape):
        old = a[name][idx]
        a[name][idx] = old + eps
        up = loss()
        a[name][idx] = old - eps
        down = loss()
        a[name][idx] = old
        g[idx] = (up - down) / (2 * eps)
    return g


@pytest.mark.parametrize("cell", ["ln_lstm", "ln_gru"])
def test_reference_backward_matches_finite_differences(cell):
    rng = np.random.default_rng(3)
    a = _arrays(cell, rng)
    outs, _ = _run_reference(cell, a, LENGTHS)
    weights = [rng.normal(size=o.shape) for o in outs]

    def loss():
        return sum((o * w).sum() for o, w in zip(_run_reference(cell, a, LENGTHS)[0], weights))

    grads = _backward(cell, weights, _run_reference(cell, a, LENGTHS)[1])
    assert set(grads) == set(a)
    for name, g in grads.items():
        assert rel_err(g, _numeric_grad(loss, a, name)) < 1e-7, name


def _run_eager(cell, a, lengths):
    t = {k: torch.tensor(v, requires_grad=True) for k, v in a.items()}
    n = None if lengths is None else torch.tensor(lengths)
    if cell == "ln_lstm":
        y, h, c = _eager.ln_lstm(t["x"], t["h0"], t["c0"], t["W_xh"], t["W_hh"], t["b_xh"],
                                 t["b_hh"], t["g_xh"], t["g_hh"], t["g_c"], t["b_c"], n)
        return t, (y, h, c)
    y, h = _eager.ln_gru(t["x"], t["h0"], t["W_xh"], t["W_hh"], t["b_xh"], t["b_hh"], t["g_xh"],
                         t["g_hh"], n)
    return t, (y, h)


@pytest.mark.parametrize("cell", ["ln_lstm", "ln_gru"])
@pytest.mark.parametrize("lengths", [None, [5, 1, 3]])
def test_reference_matches_the_per_step_torch_loop(cell, lengths):
    rng = np.random.default_rng(4)
    a = _arrays(cell, rng, T=5, B=3, I=6, H=8)
    outs, cache = _run_reference(cell, a, lengths)
    weights = [rng.normal(size=o.shape) for o in outs]
    grads = _backward(cell, weights, cache)
    t, touts = _run_eager(cell, a, lengths)
    sum((o * torch.tensor(w)).sum() for o, w in zip(touts, weights)).backward()
    for o, to in zip(outs, touts):
        assert rel_err(o, to.detach().numpy()) < 1e-12
    for name, g in grads.items():
        assert rel_err(g, t[name].grad.numpy()) < 1e-12, name
