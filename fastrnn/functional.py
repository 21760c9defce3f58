"""One recurrent layer, one direction, time-major: fastrnn.functional.rnn / lstm / gru.

Shape legend: T time, B batch, I input, H hidden, P projection (LSTM, P = H without one).
Weights have torch.nn's shapes and gate order (LSTM i, f, g, o; GRU r, z, n):
W_xh ≡ w_ih ≡ weight_ih_l{k}, W_hh ≡ w_hh ≡ weight_hh_l{k}, b_xh ≡ b_ih, b_hh, W_hr ≡ w_hr.

Only the recurrence is sequential: G_x = x W_xhᵀ + b is one GEMM over all T·B rows, done here by
torch; the kernel backend (see fastrnn.dispatch) runs the per-step loop and its BPTT.
`lengths` [B] gives per-sequence lengths: past its end a sequence keeps its state and outputs
zeros, as a packed sequence does. `backend` is 'auto' or a name from fastrnn.backends();
`resolve_backend` says which one a call runs on.
"""
import contextlib

import torch

from . import _checks, _eager, autograd, dispatch, routes


def resolve_backend(x, backend="auto"):
    """The backend a call with input `x` runs on."""
    return dispatch.resolve(backend, x)


def _layer(x, h0, w_ih, w_hh, b_ih, b_hh, gates, P=None):
    """Check one layer's arguments; return T, B, H and h0 (zeros when None)."""
    _checks.tensor("x", x, (None, None, None))
    if not (x.is_floating_point()):
        raise TypeError(f"x: expected a floating-point tensor, got {x.dtype}")
    T, B, I = x.shape
    if T == 0:
        raise ValueError("x: expected at least one time step, got shape " + str(list(x.shape)))
    _checks.tensor("w_ih", w_ih, (None, I), x)
    G = w_ih.shape[0]
    if G % gates or G == 0:
        raise ValueError(f"w_ih: expected {gates}·H rows, got {G}")
    H = G // gates
    P = H if P is None else P
    _checks.tensor("w_hh", w_hh, (G, P), x)
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if b is not None:
            _checks.tensor(name, b, (G,), x)
    h0 = x.new_zeros(B, P) if h0 is None else _checks.tensor("h0", h0, (B, P), x)
    return T, B, H, h0


_FLOAT = contextlib.nullcontext()


def _products(x):
    """The products' precision for a call on x: bfloat16 for bfloat16 x (dispatch.bf16_products),
    else x's."""
    return dispatch.bf16_products() if x.dtype in dispatch._WIDENED else _FLOAT


def _via_float32(fn, name, x, *args, **kwargs):
    """fn (rnn, lstm or gru) of a bfloat16 call on kernel backend `name`: float32 copies in (casts
    autograd differentiates, so gradients come back in bfloat16, as torch.nn's do), the products in
    bfloat16 where the CPU multiplies them so (dispatch.bf16_products), the state and the sums in
    float32, and the outputs rounded back to bfloat16."""
    def wide(t):
        if isinstance(t, tuple):
            return tuple(wide(u) for u in t)
        return t.float() if isinstance(t, torch.Tensor) and t.is_floating_point() else t
    with dispatch.bf16_products():
        y, state = fn(x.float(), *map(wide, args), backend=name, **kwargs)
    low = (lambda t: t.to(x.dtype))
    return low(y), tuple(map(low, state)) if isinstance(state, tuple) else low(state)


def rnn(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh", lengths=None,
        backend="auto"):
    """Elman RNN, h_t = f(W_xh x_t + b_xh + W_hh h_{t-1} + b_hh), f = tanh or relu.

    x [T,B,I], h0 [B,H] or None, w_ih [H,I], w_hh [H,H], b_ih, b_hh [H] or None, lengths [B]
    -> (y [T,B,H], h_n [B,H]).
    """
    T, B, H, h0 = _layer(x, h0, w_ih, w_hh, b_ih, b_hh, 1)
    relu = _checks.choice("nonlinearity", nonlinearity, ("tanh", "relu")) == "relu"
    n = None if lengths is None else _checks.lengths(lengths, T, B, x.device)
    name = "eager" if B == 0 else dispatch.resolve(backend, x)  # the kernels need B >= 1
    save = routes.needs_grad(x, h0, w_ih, w_hh, b_ih, b_hh)
    route = routes.choose("layer", name, x, save)
    if route == "eager":
        return _eager.rnn(x, h0, w_ih, w_hh, b_ih, b_hh, n, relu)
    if route == "widened":
        return _via_float32(rnn, name, x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity, n)
    n = _checks.full_lengths(T, B, x.device) if n is None else n
    with _products(x):
        y, h_n, *_ = autograd.rnn(route, x, w_ih, b_ih, b_hh, h0, w_hh, n, relu, save, name)
    return y, h_n


def lstm(x, hx, w_ih, w_hh, b_ih=None, b_hh=None, w_hr=None, lengths=None, backend="auto"):
    """LSTM, gates i, f, g, o; with w_hr, h_t = W_hr (o_t ⊙ tanh c_t) (LSTMP).

    x [T,B,I], hx = (h0 [B,P], c0 [B,H]) or None, w_ih [4H,I], w_hh [4H,P], b_ih, b_hh [4H] or
    None, w_hr [P,H] or None, lengths [B] -> (y [T,B,P], (h_n [B,P], c_n [B,H])).
    """
    P = None if w_hr is None else w_hr.shape[0]
    h0, c0 = (None, None) if hx is None else hx
    T, B, H, h0 = _layer(x, h0, w_ih, w_hh, b_ih, b_hh, 4, P)
    if w_hr is not None:
        _checks.tensor("w_hr", w_hr, (P, H), x)
    c0 = x.new_zeros(B, H) if c0 is None else _checks.tensor("c0", c0, (B, H), x)
    n = None if lengths is None else _checks.lengths(lengths, T, B, x.device)
    name = "eager" if B == 0 else dispatch.resolve(backend, x)
    save = routes.needs_grad(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr)
    route = routes.choose("layer", name, x, save, projected=w_hr is not None)
    if route == "eager":
        y, h_n, c_n = _eager.lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, n)
        return y, (h_n, c_n)
    if route == "widened":
        return _via_float32(lstm, name, x, (h0, c0), w_ih, w_hh, b_ih, b_hh, w_hr, n)
    n = _checks.full_lengths(T, B, x.device) if n is None else n
    if w_hr is not None:
        y, h_n, c_n, *_ = autograd.lstmp(route, x, w_ih, b_ih, b_hh, h0, c0, w_hh, w_hr, n,
                                         save, name)
        return y, (h_n, c_n)
    with _products(x):
        y, h_n, c_n, *_ = autograd.lstm(route, x, w_ih, b_ih, b_hh, h0, c0, w_hh, n, save, name)
    return y, (h_n, c_n)


def gru(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None, backend="auto"):
    """GRU in torch's form: n_t = tanh(W_xn x_t + b_xn + r_t ⊙ (W_hn h_{t-1} + b_hn)).

    x [T,B,I], h0 [B,H] or None, w_ih [3H,I], w_hh [3H,H], b_ih, b_hh [3H] or None, lengths [B]
    -> (y [T,B,H], h_n [B,H]).
    """
    T, B, H, h0 = _layer(x, h0, w_ih, w_hh, b_ih, b_hh, 3)
    n = None if lengths is None else _checks.lengths(lengths, T, B, x.device)
    name = "eager" if B == 0 else dispatch.resolve(backend, x)  # the kernels need B >= 1
    save = routes.needs_grad(x, h0, w_ih, w_hh, b_ih, b_hh)
    route = routes.choose("layer", name, x, save)
    if route == "eager":
        return _eager.gru(x, h0, w_ih, w_hh, b_ih, b_hh, n)
    if route == "widened":
        return _via_float32(gru, name, x, h0, w_ih, w_hh, b_ih, b_hh, n)
    n = _checks.full_lengths(T, B, x.device) if n is None else n
    b_hh = w_hh.new_zeros(3 * H) if b_hh is None else b_hh
    with _products(x):
        y, h_n, *_ = autograd.gru(route, x, w_ih, b_ih, None, h0, w_hh, b_hh, n, save, name)
    return y, h_n
