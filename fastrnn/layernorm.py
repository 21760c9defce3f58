"""LayerNorm LSTM and GRU (Ba, Kiros and Hinton 2016, arXiv:1607.06450): the layers, their
autograd, and the modules fastrnn.LayerNormLSTM and fastrnn.LayerNormGRU.

With LN(v; γ) = γ ⊙ (v − mean v) / sqrt(var v + 1e-5) over each whole row (fastrnn.reference):

    LSTM  a_t = LN(W_ih x_t; γ_ih) + LN(W_hh h_{t-1}; γ_hh) + b_ih + b_hh   (gates i, f, g, o)
          c_t = σ(f) ⊙ c_{t-1} + σ(i) ⊙ tanh(g),   h_t = σ(o) ⊙ tanh(LN(c_t; γ_c) + β_c)
    GRU   x̂ = LN(W_ih x_t; γ_ih) + b_ih,   ĥ = LN(W_hh h_{t-1}; γ_hh) + b_hh
          r = σ(x̂_r + ĥ_r), z = σ(x̂_z + ĥ_z), n = tanh(x̂_n + r ⊙ ĥ_n), h_t = (1 − z) n + z h_{t-1}

Only the recurrence is sequential: V = x W_ihᵀ is one GEMM over all T·B rows, and the native
kernels (fastrnn_ln_lstm_*, fastrnn_ln_gru_*) run the rest of each step — V_t's LayerNorm, the
per-step product and its LayerNorm, the gates, the cell's LayerNorm — and the BPTT, from which
dx, the weight, bias and gain gradients are GEMMs and sums over all rows here (summed by one
thread per column, so bitwise the same for any thread count, as the kernels' results).
Backends: native (CPU, float32 and float64), numba (the same loops, @njit), cuda (CUDA float32
and float64: kernels/cuda/ln_*.cu, compiled here and tested where a GPU exists) and eager (the
same equations as a per-step torch loop: any device and dtype); `auto` takes native where it
runs, else numba, cuda on CUDA tensors, else eager.
"""
import torch

from . import _checks, _eager, _grads, cells, dispatch, routes
from .autograd import CellOps
from .stacked import Stacked

BACKENDS = ("auto", "native", "numba", "cuda", "eager")


def _rows_sum(t):
    """Σ over the first two dimensions of t [T,B,N] -> [N]."""
    return t.reshape(-1, t.shape[-1]).sum(0)


def _not_to_onnx(module):
    """The clear error of an ONNX export (the module's forward raises it when it runs under the
    exporter; a graph recorded by torch.export meets it here, when the op is traced)."""
    if routes.exporting():
        kind = module.replace("LayerNorm", "LayerNorm ")
        raise RuntimeError(f"{module} cannot be exported to ONNX: no ONNX operator computes a "
                           f"{kind}")


# The gradients from the BPTT kernels' results (kernels/fastrnn.h): the gains' and biases' as
# sums over all T·B rows (one thread a column, so bitwise the same for any thread count); the
# weights' and x's are GEMMs (fastrnn.autograd: dW_hh here, dx and dW_ih from ∂L/∂V there).
def _lstm_grads(ctx, saved, dA, dV, dAh, du, dh0, dc0):
    """-> d(xv, g_ih, b_ih, b_hh, h0, c0, w_hh, g_hh, g_c, b_c)."""
    db = _rows_sum(dA)
    return (dV, _rows_sum(dA * saved["nx"]), db, db, dh0, dc0, _grads.dW_hh(dAh, saved["hs"]),
            _rows_sum(dA * saved["nh"]), _rows_sum(du * saved["nc"]), _rows_sum(du))


def _gru_grads(ctx, saved, dX, dHh, dV, dAh, dh0):
    """-> d(xv, g_ih, b_ih, h0, w_hh, g_hh, b_hh)."""
    return (dV, _rows_sum(dX * saved["nx"]), _rows_sum(dX), dh0,
            _grads.dW_hh(dAh, saved["hs"]), _rows_sum(dHh * saved["nh"]), _rows_sum(dHh))


# V = x W_ihᵀ by one GEMM, the rest — both LayerNorms of a_t, the gates, the cell's LayerNorm —
# in the kernels' loop: fastrnn::ln_lstm_forward / ln_gru_forward when recorded, else directly.
_ln_lstm = CellOps(cells.LN_LSTM, _lstm_grads, check=lambda: _not_to_onnx("LayerNormLSTM"))
_ln_gru = CellOps(cells.LN_GRU, _gru_grads, check=lambda: _not_to_onnx("LayerNormGRU"))


def _backend(backend, x):
    """native, numba, cuda or eager for a call on x: `auto` takes the first of native and numba
    usable here on CPU float32/float64 input, cuda on CUDA float32/float64 input (B >= 1), else
    eager."""
    _checks.choice("backend", backend, BACKENDS)
    where = "cuda" if x.device.type == "cuda" else "cpu"
    kernels = x.dtype in (torch.float32, torch.float64) and x.shape[1] > 0
    if backend in ("native", "numba", "cuda"):
        device = "CUDA" if backend == "cuda" else "CPU"
        if not kernels or where != device.lower():
            raise ValueError(f"backend {backend!r} runs the LayerNorm cells on {device} float32 "
                             f"and float64 input, got {x.dtype} on {x.device} (use "
                             f"backend='auto' or 'eager')")
        reason = dispatch.why_not(backend)
        if reason is not None:
            raise RuntimeError(f"fastrnn backend {backend!r} is not usable: {reason}")
        return backend
    if backend == "auto" and kernels:
        for name in ("native", "numba") if where == "cpu" else ("cuda",):
            if dispatch.why_not(name) is None:
                return name
    return "eager"


def _layer_args(x, h0, w_ih, w_hh, gates):
    T, B, I = x.shape
    H = w_hh.shape[1]
    _checks.tensor("w_ih", w_ih, (gates * H, I), x)
    _checks.tensor("w_hh", w_hh, (gates * H, H), x)
    h0 = x.new_zeros(B, H) if h0 is None else _checks.tensor("h0", h0, (B, H), x)
    return T, B, H, h0


def ln_lstm(x, hx, w_ih, w_hh, b_ih, b_hh, g_ih, g_hh, g_c, b_c, lengths=None, backend="auto"):
    """One layer, one direction of the LayerNorm LSTM. x [T,B,I], hx = (h0, c0) [B,H] or None,
    w_ih [4H,I], w_hh [4H,H], b_ih, b_hh [4H] or None, g_ih, g_hh [4H], g_c, b_c [H], lengths [B]
    -> (y [T,B,H], (h_n, c_n))."""
    h0, c0 = (None, None) if hx is None else hx
    T, B, H, h0 = _layer_args(x, h0, w_ih, w_hh, 4)
    c0 = x.new_zeros(B, H) if c0 is None else _checks.tensor("c0", c0, (B, H), x)
    n = None if lengths is None else _checks.lengths(lengths, T, B, x.device)
    name = _backend(backend, x)
    save = routes.needs_grad(x, w_ih, b_ih, b_hh, g_ih, h0, c0, w_hh, g_hh, g_c, b_c)
    route = routes.choose("layer", name, x, save)
    if route == "eager":
        y, h_n, c_n = _eager.ln_lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh, g_ih, g_hh, g_c, b_c, n)
        return y, (h_n, c_n)
    n = _checks.full_lengths(T, B, x.device) if n is None else n
    y, h_n, c_n, *_ = _ln_lstm(route, x, w_ih, None, None, g_ih, b_ih, b_hh, h0, c0, w_hh, g_hh,
                               g_c, b_c, n, save, name)
    return y, (h_n, c_n)


def ln_gru(x, h0, w_ih, w_hh, b_ih, b_hh, g_ih, g_hh, lengths=None, backend="auto"):
    """One layer, one direction of the LayerNorm GRU. x [T,B,I], h0 [B,H] or None, w_ih [3H,I],
    w_hh [3H,H], b_ih, b_hh [3H] or None, g_ih, g_hh [3H], lengths [B] -> (y [T,B,H], h_n)."""
    T, B, H, h0 = _layer_args(x, h0, w_ih, w_hh, 3)
    n = None if lengths is None else _checks.lengths(lengths, T, B, x.device)
    name = _backend(backend, x)
    save = routes.needs_grad(x, w_ih, b_ih, g_ih, h0, w_hh, g_hh, b_hh)
    route = routes.choose("layer", name, x, save)
    if route == "eager":
        return _eager.ln_gru(x, h0, w_ih, w_hh, b_ih, b_hh, g_ih, g_hh, n)
    n = _checks.full_lengths(T, B, x.device) if n is None else n
    y, h_n, *_ = _ln_gru(route, x, w_ih, None, None, g_ih, b_ih, h0, w_hh, g_hh, b_hh, n, save,
                         name)
    return y, h_n


class _LayerNormRecurrent(Stacked):
    """The multi-layer module: torch.nn.LSTM / GRU's constructor arguments, parameters (with the
    LayerNorm gains and, for the LSTM, the cell's shift) and calls (fastrnn.stacked)."""

    GATES = None  # 4 (LSTM) or 3 (GRU)
    BACKENDS = BACKENDS

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None, backend="auto"):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, backend)
        G, H = self.GATES * hidden_size, hidden_size
        kw = dict(device=device, dtype=dtype)
        for _, I, sfx in self.suffixes():
            p = {"weight_ih": (G, I), "weight_hh": (G, H)}
            if bias:
                p.update(bias_ih=(G,), bias_hh=(G,))
            p.update(ln_ih_weight=(G,), ln_hh_weight=(G,))
            if self.GATES == 4:
                p.update(ln_c_weight=(H,), ln_c_bias=(H,))
            for k, shape in p.items():
                self.register_parameter(k + sfx, torch.nn.Parameter(torch.empty(shape, **kw)))
        self.reset_parameters()

    def _reset(self, name, p):
        """LayerNorm gains one, the cell's shift zero."""
        p.fill_(0.0 if name.startswith("ln_c_bias") else 1.0)

    def _params(self, k):
        sfx = self.suffix(k)
        get = lambda n: getattr(self, n + sfx, None)  # noqa: E731
        names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh", "ln_ih_weight", "ln_hh_weight"]
        if self.GATES == 4:
            names += ["ln_c_weight", "ln_c_bias"]
        return [get(n) for n in names]

    def _backend(self, x):
        return _backend(self.backend, x)

    def forward(self, input, hx=None):
        _not_to_onnx(type(self).__name__)
        return super().forward(input, hx)

    def _run(self, k, x, states, lengths):
        p = self._params(k)
        if self.GATES == 4:
            y, (h, c) = ln_lstm(x, tuple(states), *p, lengths=lengths, backend=self.last_backend)
            return y, [h, c]
        y, h = ln_gru(x, states[0], *p, lengths=lengths, backend=self.last_backend)
        return y, [h]


class LayerNormLSTM(_LayerNormRecurrent):
    """LayerNorm LSTM (see fastrnn.layernorm): torch.nn.LSTM's constructor arguments (no
    proj_size) and calls, returning output, (h_n, c_n). Parameters per layer k and direction
    (suffix _l{k}, _l{k}_reverse): weight_ih, weight_hh, bias_ih, bias_hh as torch.nn.LSTM's,
    ln_ih_weight, ln_hh_weight [4H] (γ_ih, γ_hh, ones), ln_c_weight [H] (γ_c, ones), ln_c_bias [H]
    (β_c, zeros)."""

    GATES = 4
    STATES = ("h", "c")


class LayerNormGRU(_LayerNormRecurrent):
    """LayerNorm GRU (see fastrnn.layernorm): torch.nn.GRU's constructor arguments and calls,
    returning output, h_n. Parameters per layer k and direction: weight_ih, weight_hh, bias_ih,
    bias_hh as torch.nn.GRU's, ln_ih_weight, ln_hh_weight [3H] (γ_ih, γ_hh, ones)."""

    GATES = 3
