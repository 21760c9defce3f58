"""One layer of a declared cell (fastrnn.cell) and the module fastrnn.Recurrent.

G_x = x W_ihᵀ + b_ih is one GEMM over all T·B rows; the generated kernels run the steps — the
product W_hh h_{t−1}, the cell's math — and the BPTT, which leaves ∂L/∂G_x and ∂L/∂(product)
[T,B,G], from which dx and the weights' and biases' gradients are GEMMs and sums here. The
`eager` backend runs the user's step as a per-step torch loop under autograd (any device).
"""
import warnings

import torch

from .. import _checks, _grads, routes
from ..stacked import Stacked
from . import build
from .declare import Cell

BACKENDS = ("auto", "native", "eager")


def _ptr(t):
    return 0 if t is None else t.data_ptr()


def _kernels(decl, x):
    ffi, lib = build.load(decl)
    t = "f32" if x.dtype == torch.float32 else "f64"
    return getattr(lib, f"fastrnn_user_forward_{t}"), getattr(lib, f"fastrnn_user_backward_{t}")


def _scratch(decl, x, B, H):
    """The rows a pass leaves to the next, [B, scratch blocks, H] (kernels/cpu/user_cell.h)."""
    return x.new_empty(B, max(decl.scratch, 1), H)


def _raise_for(rc):
    if rc:
        build.cpu.library.raise_for(rc)


def _forward(decl, x, states, w_ih, w_hh, b_ih, b_hh, v, lengths, save):
    """The kernels' forward: x [T,B,I], states [B,H] each, w_ih [G,I], w_hh [G,H], b_ih, b_hh [G]
    or None, v [V,H], lengths [B] -> (y [T,B,H], new states, what the backward reads)."""
    T, B, _ = x.shape
    H, G, n = w_hh.shape[1], w_hh.shape[0], len(states)
    gx = torch.nn.functional.linear(x, w_ih, b_ih).contiguous()
    S = T + 1 if save else 2
    y, h_n, hs = x.new_empty(T, B, H), x.new_empty(B, H), x.new_empty(S, B, H)
    cs = x.new_empty(max(n - 1, 1), S, B, H)
    for k in range(1, n):
        cs[k - 1, 0] = states[k]
    gh = x.new_empty(T if save else 1, B, G)
    b_hh = x.new_zeros(G) if b_hh is None else b_hh.contiguous()
    forward, _ = _kernels(decl, x)
    scr, h0 = _scratch(decl, x, B, H), states[0].contiguous()  # (kept alive over the call)
    build.cpu.library.lib.fastrnn_set_num_threads(torch.get_num_threads())
    _raise_for(forward(T, B, H, S, gx.data_ptr(), h0.data_ptr(),
                       w_hh.data_ptr(), b_hh.data_ptr(), _ptr(v), lengths.data_ptr(),
                       y.data_ptr(), h_n.data_ptr(), hs.data_ptr(), cs.data_ptr(), gh.data_ptr(),
                       scr.data_ptr()))
    return y, [h_n] + [cs[k - 1, T % S] for k in range(1, n)], (gx, gh, b_hh, hs, cs)


class _Layer(torch.autograd.Function):
    """A layer's forward and BPTT on the generated kernels; inputs after (decl, lengths): x,
    w_ih, w_hh, b_ih, b_hh, v, then the states."""

    @staticmethod
    def forward(ctx, decl, lengths, x, w_ih, w_hh, b_ih, b_hh, v, *states):
        y, finals, saved = _forward(decl, x, states, w_ih, w_hh, b_ih, b_hh, v, lengths, True)
        ctx.decl, ctx.lengths, ctx.has = decl, lengths, (b_ih is not None, b_hh is not None)
        ctx.save_for_backward(x, w_ih, w_hh, v, *saved)
        return (y, *finals)

    @staticmethod
    def backward(ctx, dy, *dfinals):
        x, w_ih, w_hh, v, gx, gh, b_hh, hs, cs = ctx.saved_tensors
        T, B, I = x.shape
        G, H = w_hh.shape
        n, V = len(dfinals), 0 if v is None else v.shape[0]
        zero = lambda: x.new_zeros(B, H)  # noqa: E731
        dfinals = [zero() if d is None else d for d in dfinals]
        dy = x.new_zeros(T, B, H) if dy is None else dy.contiguous()
        dc = torch.stack(dfinals[1:]) if n > 1 else x.new_zeros(1, B, H)
        dgx, dgh, dh0 = x.new_empty(T, B, G), x.new_empty(T, B, G), x.new_empty(B, H)
        dv = x.new_zeros(B, max(V, 1), H)
        _, backward = _kernels(ctx.decl, x)
        scr, dh_n = _scratch(ctx.decl, x, B, H), dfinals[0].contiguous()
        build.cpu.library.lib.fastrnn_set_num_threads(torch.get_num_threads())
        _raise_for(backward(T, B, H, dy.data_ptr(), dh_n.data_ptr(),
                            dc.data_ptr(), gx.data_ptr(), gh.data_ptr(), b_hh.data_ptr(),
                            hs.data_ptr(), cs.data_ptr(), _ptr(v), w_hh.data_ptr(),
                            ctx.lengths.data_ptr(), dgx.data_ptr(), dgh.data_ptr(),
                            dh0.data_ptr(), dv.data_ptr(), scr.data_ptr()))
        flat = dgx.view(T * B, G)
        dx = (flat @ w_ih).view(T, B, I) if ctx.needs_input_grad[2] else None
        dw_ih = _grads.gram(flat, x.reshape(T * B, I)) if ctx.needs_input_grad[3] else None
        dw_hh = _grads.dW_hh(dgh, hs) if ctx.needs_input_grad[4] else None
        db_ih = flat.sum(0) if ctx.has[0] else None
        db_hh = dgh.view(T * B, G).sum(0) if ctx.has[1] else None
        d_v = dv.sum(0) if V else None
        return (None, None, dx, dw_ih, dw_hh, db_ih, db_hh, d_v, dh0, *dc[:n - 1])


def eager(decl, x, states, w_ih, w_hh, b_ih, b_hh, vectors, lengths=None):
    """The cell as a per-step torch loop under autograd (what users write today): x [T,B,I],
    states [B,H] each, vectors [n,H] each, lengths [B] or None -> (y [T,B,H], new states)."""
    gx = torch.nn.functional.linear(x, w_ih, b_ih)
    states, ys = list(states), []
    for t in range(x.shape[0]):
        gh = torch.nn.functional.linear(states[0], w_hh, b_hh)
        new = decl._outputs(decl.fn(gx[t], gh, *states, *vectors))
        if lengths is not None:
            running = (t < lengths).unsqueeze(1)
            new = [torch.where(running, a, s) for a, s in zip(new, states)]
            ys.append(torch.where(running, new[0], torch.zeros_like(new[0])))
        else:
            ys.append(new[0])
        states = list(new)
    return torch.stack(ys), states


def layer(decl, x, states, w_ih, w_hh, b_ih=None, b_hh=None, vectors=(), lengths=None,
          backend="auto"):
    """One layer, one direction of declared cell `decl`: x [T,B,I], states [B,H] each (the
    declared order), w_ih [G,I], w_hh [G,H], b_ih, b_hh [G] or None, vectors [n,H] each (the
    declared order), lengths [B] or None -> (y [T,B,H], new states)."""
    T, B, _ = x.shape
    H = w_hh.shape[1]
    _checks.tensor("w_ih", w_ih, (decl.gates * H, x.shape[2]), x)
    _checks.tensor("w_hh", w_hh, (decl.gates * H, H), x)
    for name, s in zip(decl.states, states):
        _checks.tensor(name, s, (B, H), x)
    name = _backend(backend, x)
    if name == "eager":
        return eager(decl, x, states, w_ih, w_hh, b_ih, b_hh, vectors, lengths)
    lengths = _checks.full_lengths(T, B, x.device) if lengths is None else lengths
    v = torch.cat([t.reshape(-1, H) for t in vectors]).contiguous() if vectors else None
    tensors = (x, w_ih, w_hh, b_ih, b_hh, v, *states)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        y, *finals = _Layer.apply(decl, lengths, x.contiguous(), w_ih.contiguous(),
                                  w_hh.contiguous(), b_ih, b_hh, v, *states)
        return y, finals
    y, finals, _ = _forward(decl, x.contiguous(), states, w_ih.contiguous(), w_hh.contiguous(),
                            b_ih, b_hh, v, lengths, False)
    return y, finals


def _backend(backend, x):
    """native (CPU float32/float64) or eager; `auto` takes native where it runs."""
    _checks.choice("backend", backend, BACKENDS)
    kernels = x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) \
        and x.shape[1] > 0
    if backend == "native" and not kernels:
        raise ValueError(f"backend 'native' runs a declared cell on CPU float32 and float64 "
                         f"input, got {x.dtype} on {x.device} (use backend='auto' or 'eager')")
    if backend == "eager" or not kernels:
        if x.device.type == "cuda":
            warnings.warn("fastrnn.Recurrent: a declared cell runs on CUDA tensors as a per-step "
                          "torch loop (no fused CUDA kernel yet)", stacklevel=4)
        return "eager"
    return "native"


class Recurrent(Stacked):
    """A multi-layer recurrent module of a declared cell (fastrnn.cell): torch.nn.LSTM/GRU's
    constructor arguments and calls, returning output and the final states — one tensor h_n for
    a one-state cell, else a tuple in the declared order. Parameters per layer k and direction
    (suffix _l{k}, _l{k}_reverse): weight_ih [G,I], weight_hh [G,H], bias_ih, bias_hh [G] (as
    torch.nn's: uniform in ±1/sqrt(H)), and each declared vector `name` as {name}_l{k} [n,H]."""

    BACKENDS = BACKENDS

    def __init__(self, cell, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None,
                 backend="auto"):
        if not isinstance(cell, Cell):
            raise TypeError(f"Recurrent: cell: expected a cell declared with fastrnn.cell, got "
                            f"{type(cell).__name__}")
        self.STATES = cell.states
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, backend)
        self.cell = cell
        G, H = cell.gates * hidden_size, hidden_size
        kw = dict(device=device, dtype=dtype)
        for _, I, sfx in self.suffixes():
            p = {"weight_ih": (G, I), "weight_hh": (G, H)}
            if bias:
                p.update(bias_ih=(G,), bias_hh=(G,))
            p.update({k: (n, H) for k, n in cell.vectors})
            for k, shape in p.items():
                self.register_parameter(k + sfx, torch.nn.Parameter(torch.empty(shape, **kw)))
        self.reset_parameters()

    def _reset(self, name, p):
        """A declared vector: its initial value (a number or a function of the parameter),
        zeros unless declared."""
        init = self.cell.inits[name[:name.rindex("_l")]]
        if callable(init):
            init(p)
        else:
            p.fill_(0.0 if init is None else init)

    def extra_repr(self):
        return f"{self.cell.name}, " + super().extra_repr()

    def _backend(self, x):
        return _backend(self.backend, x)

    def forward(self, input, hx=None):
        if routes.exporting():
            raise RuntimeError(f"Recurrent({self.cell.name}) cannot be exported to ONNX: no ONNX "
                               f"operator computes a cell declared with fastrnn.cell")
        return super().forward(input, hx)

    def _run(self, k, x, states, lengths):
        sfx = next(s for kk, _, s in self.suffixes() if kk == k)
        get = lambda n: getattr(self, n + sfx, None)  # noqa: E731
        return layer(self.cell, x, states, get("weight_ih"), get("weight_hh"), get("bias_ih"),
                     get("bias_hh"), [get(n) for n, _ in self.cell.vectors], lengths,
                     self.last_backend)
