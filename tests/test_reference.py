"""fastrnn.reference, the oracle, against torch.nn (float64) and against finite differences."""
import numpy as np
import pytest

from _cases import GATES, Case, rel_err
from fastrnn import reference

CASES = [dict(T=4, B=3, I=5, H=6), dict(T=1, B=1, I=2, H=3), dict(T=6, B=4, I=3, H=5, lengths=[6, 2, 5, 1]),
         dict(T=3, B=2, I=4, H=4, bias=False)]


@pytest.mark.parametrize("cell", GATES)
@pytest.mark.parametrize("kw", CASES)
def test_reference_matches_torch(cell, kw):
    c = Case(cell, **kw)
    ref, nn = c.run_reference(), c.run_torch(dtype=__import__("torch").float64)
    assert ref.keys() == nn.keys()
    for k in ref:
        assert rel_err(ref[k], nn[k]) < 1e-12, k


@pytest.mark.parametrize("kw", CASES[:3])
def test_reference_projected_lstm_matches_torch(kw):
    c = Case("lstm", proj=2, **kw)
    ref, nn = c.run_reference(), c.run_torch(dtype=__import__("torch").float64)
    for k in ref:
        assert rel_err(ref[k], nn[k]) < 1e-12, k


def _numeric_grad(loss, arrays, name, eps=1e-6):
    a = arrays[name]
    g = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        old = a[idx]
        a[idx] = old + eps
        up = loss()
        a[idx] = old - eps
        down = loss()
        a[idx] = old
        g[idx] = (up - down) / (2 * eps)
    return g


@pytest.mark.parametrize("cell", list(GATES) + ["lstm_proj"])
def test_reference_backward_matches_finite_differences(cell):
    rng = np.random.default_rng(1)
    T, B, I, H, P = 3, 2, 3, 4, 2
    lengths = [3, 2]
    G = GATES.get(cell, 4)
    Hin = P if cell == "lstm_proj" else H
    arrays = dict(x=rng.normal(size=(T, B, I)), h0=rng.normal(size=(B, Hin)),
                  c0=rng.normal(size=(B, H)), W_xh=rng.normal(size=(G * H, I)),
                  W_hh=rng.normal(size=(G * H, Hin)), b_xh=rng.normal(size=G * H),
                  b_hh=rng.normal(size=G * H), W_hr=rng.normal(size=(P, H)))
    wy, wh, wc = rng.normal(size=(T, B, Hin)), rng.normal(size=(B, Hin)), rng.normal(size=(B, H))
    a = arrays

    def run():
        if cell.startswith("lstm"):
            W_hr = a["W_hr"] if cell == "lstm_proj" else None
            y, (h_n, c_n), cache = reference.lstm_forward(a["x"], a["h0"], a["c0"], a["W_xh"],
                                                          a["W_hh"], a["b_xh"], a["b_hh"], W_hr,
                                                          lengths)
            return (y * wy).sum() + (h_n * wh).sum() + (c_n * wc).sum(), cache
        if cell == "gru":
            y, h_n, cache = reference.gru_forward(a["x"], a["h0"], a["W_xh"], a["W_hh"], a["b_xh"],
                                                  a["b_hh"], lengths)
        else:
            y, h_n, cache = reference.rnn_forward(a["x"], a["h0"], a["W_xh"], a["W_hh"], a["b_xh"],
                                                  a["b_hh"], cell[4:], lengths)
        return (y * wy).sum() + (h_n * wh).sum(), cache

    _, cache = run()
    if cell.startswith("lstm"):
        grads = reference.lstm_backward(wy, wh, wc, cache)
    elif cell == "gru":
        grads = reference.gru_backward(wy, wh, cache)
    else:
        grads = reference.rnn_backward(wy, wh, cache)
    assert len(grads) >= 6
    for name, g in grads.items():
        num = _numeric_grad(lambda: run()[0], arrays, name)
        assert rel_err(g, num) < 1e-7, name


@pytest.mark.parametrize("g", ["softmax", "sigmoid", "identity"])
def test_output_layer_backward_matches_finite_differences(g):
    rng = np.random.default_rng(2)
    a = dict(h=rng.normal(size=(3, 2, 4)), W_hy=rng.normal(size=(5, 4)), b_y=rng.normal(size=5))
    dy = rng.normal(size=(3, 2, 5))

    def loss():
        return (reference.output_forward(a["h"], a["W_hy"], a["b_y"], g) * dy).sum()

    y = reference.output_forward(a["h"], a["W_hy"], a["b_y"], g)
    grads = reference.output_backward(dy, a["h"], y, a["W_hy"], g)
    for name, grad in grads.items():
        assert rel_err(grad, _numeric_grad(loss, a, name)) < 1e-7, name


def test_softmax_output_is_a_distribution():
    y = reference.output_forward(np.ones((2, 3)), np.eye(4, 3), np.zeros(4), "softmax")
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-12)
