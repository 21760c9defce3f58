"""One layer of a declared cell (fastrnn.cell) and the module fastrnn.Recurrent.

G_x = x W_ihᵀ + b_ih is one GEMM over all T·B rows (in training before the steps, dx, dW_ih and
db_ih then from ∂L/∂G_x as the built-in cells'; in inference inside the kernels' loop, a chunk
ahead); the generated kernels run the steps — the product W_hh h_{t−1}, the cell's math — and
the BPTT, whose ∂L/∂(product) gives dW_hh and db_hh (fastrnn.user.kernels). Traced, a layer is
one custom op (fastrnn.user.ops). The `eager` backend runs the user's step as a per-step torch
loop under autograd (any device).
"""
import warnings

import torch

from .. import _checks, _grads, dispatch, routes
from ..autograd import input_projection
from ..stacked import Stacked
from . import kernels
from .declare import Cell

BACKENDS = ("auto", "native", "eager")


class _Layer(torch.autograd.Function):
    """A layer's steps and BPTT on the generated kernels; inputs after (decl, lengths): x, w_ih,
    b_ih, w_hh, b_hh, v, then the states. G_x = x W_ihᵀ + b_ih is one GEMM over all T·B rows
    before the steps, and ∂L/∂x, dW_ih, db_ih come from ∂L/∂G_x as the built-in cells' do
    (fastrnn._grads: dx on the kernels' tiles, dW_ih in fixed blocks — bitwise the same for any
    thread count, which torch's threaded sgemm under autograd is not on an Intel Xeon)."""

    @staticmethod
    def forward(ctx, decl, lengths, x, w_ih, b_ih, w_hh, b_hh, v, *states):
        gx = input_projection(x, w_ih, b_ih, None)
        y, finals, saved = kernels.forward(decl, gx, states, w_hh, b_hh, v, lengths, True)
        ctx.decl, ctx.n = decl, len(states)
        ctx.save_for_backward(x, w_ih, gx, w_hh, b_hh, v, lengths, *saved)
        return (y, finals[0], *[f.clone() for f in finals[1:]])  # (not views of saved cs)

    @staticmethod
    def backward(ctx, dy, *dfinals):
        x, w_ih, gx, w_hh, b_hh, v, lengths, gh, hs, cs, sv = ctx.saved_tensors
        dgx, dgh, dh0, dc, dv = kernels.backward(ctx.decl, dy, list(dfinals), gx, gh, b_hh, hs,
                                                 cs, sv, v, w_hh, lengths, kept=True)
        need = ctx.needs_input_grad
        dw_hh, db_hh, d_v = kernels.param_grads(ctx.decl, dgh, hs, b_hh, v, dv, need[5])
        T, B, G = dgx.shape
        d = dgx.reshape(T * B, G)
        dx = _grads.input_grad(d, w_ih).view(T, B, -1) if need[2] else None
        dw_ih = _grads.gram(d, x.reshape(T * B, -1)) if need[3] else None
        db_ih = d.sum(0) if need[4] else None
        return (None, None, dx, dw_ih, db_ih, dw_hh, db_hh, d_v, dh0, *dc[:ctx.n - 1])


def eager(decl, x, states, w_ih, w_hh, b_ih, b_hh, vectors, lengths=None):
    """The cell as a per-step torch loop under autograd (what users write today): x [T,B,I],
    states [B,H] each, vectors [n,H] each, lengths [B] or None -> (y [T,B,H], new states)."""
    gx = torch.nn.functional.linear(x, w_ih, b_ih)
    states, ys = list(states), []
    for t in range(x.shape[0]):
        gh = [torch.nn.functional.linear(states[0], w_hh, b_hh)] if decl.recurrent else []
        new = decl._outputs(decl.fn(gx[t], *gh, *states, *vectors))
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
    declared order), w_ih [G,I], w_hh [G,H] (None without W_hh), b_ih, b_hh [G] or None,
    vectors [n,H] each (the declared order), lengths [B] or None -> (y [T,B,H], new states)."""
    T, B, _ = x.shape
    H = w_ih.shape[0] // decl.gates
    _checks.tensor("w_ih", w_ih, (decl.gates * H, x.shape[2]), x)
    if decl.recurrent:
        _checks.tensor("w_hh", w_hh, (decl.gates * H, H), x)
    for name, s in zip(decl.states, states):
        _checks.tensor(name, s, (B, H), x)
    return _run(decl, x, states, w_ih, w_hh, b_ih, b_hh, vectors, lengths, _backend(backend, x))


def _run(decl, x, states, w_ih, w_hh, b_ih, b_hh, vectors, lengths, name):
    """layer() on checked arguments, on backend `name` (native or eager)."""
    T, B, _ = x.shape
    H = w_ih.shape[0] // decl.gates
    if name == "eager":
        return eager(decl, x, states, w_ih, w_hh, b_ih, b_hh, vectors, lengths)
    lengths = _checks.full_lengths(T, B, x.device) if lengths is None else lengths
    v = _stacked(vectors, H)
    save = routes.needs_grad(x, w_ih, b_ih, w_hh, b_hh, v, *states)
    traced = routes.traced()
    if not (save or traced) and decl.recurrent:  # inference: G_x inside the loop
        return kernels.forward_x(decl, x, states, w_ih, b_ih, w_hh, b_hh, v, lengths)
    if traced:  # one op a layer in the recorded graph
        with torch.autocast(x.device.type, enabled=False):  # (the kernels take x's dtype)
            gx = torch.nn.functional.linear(x, w_ih, b_ih)
        out = decl.forward_op(gx, w_hh, b_hh, v, lengths, list(states), save)
        return out[0], out[1:1 + len(states)]
    if not save:  # inference of a cell without W_hh: G_x, read by this call alone, in a kept buffer
        y, finals, _ = kernels.forward(decl, input_projection(x, w_ih, b_ih, None, "user_gx"),
                                       states, w_hh, b_hh, v, lengths, False)
        return y, finals
    y, *finals = _Layer.apply(decl, lengths, x, w_ih, b_ih, w_hh, b_hh, v, *states)
    return y, finals


def _stacked(vectors, H):
    """The declared vectors ([n,H] each, or flattened) as the kernels take them, one [V,H], or
    None without any."""
    return torch.cat([t.reshape(-1, H) for t in vectors]).contiguous() if vectors else None


def _backend(backend, x):
    """native (CPU float32/float64, the library usable) or eager; `auto` takes native where it
    runs."""
    _checks.choice("backend", backend, BACKENDS)
    runs = x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) \
        and x.shape[1] > 0
    if backend == "native" and not runs:
        raise ValueError(f"backend 'native' runs a declared cell on CPU float32 and float64 "
                         f"input, got {x.dtype} on {x.device} (use backend='auto' or 'eager')")
    if backend != "eager" and runs:
        reason = dispatch.why_not("native")
        if reason is not None:
            if backend == "native":
                raise RuntimeError(f"fastrnn backend 'native' is not usable: {reason}")
            runs = False
    if backend == "eager" or not runs:
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
    torch.nn's: uniform in ±1/sqrt(H); a cell declared recurrent=False has no weight_hh and
    bias_hh), and each declared vector `name` as {name}_l{k} [n,H]."""

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
        self.cell, self._names = cell, {}
        G, H = cell.gates * hidden_size, hidden_size
        kw = dict(device=device, dtype=dtype)
        for _, I, sfx in self.suffixes():
            p = {"weight_ih": (G, I)}
            if cell.recurrent:
                p["weight_hh"] = (G, H)
            if bias:
                p.update(bias_ih=(G,), **({"bias_hh": (G,)} if cell.recurrent else {}))
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
        out = self._inference(input, hx)
        return super().forward(input, hx) if out is None else out

    def _inference(self, x, hx):
        """The commonest inference call — one layer, one direction, a batched tensor, no
        initial states, no gradient, not traced, on the native backend — straight to the kernel
        (a B = 1 call is a few hundred µs, and the general path's checks and reshaping cost tens);
        None for any other call."""
        if (hx is not None or self.num_layers > 1 or self.bidirectional or not self.cell.recurrent
                or type(x) is not torch.Tensor or x.dim() != 3 or x.shape[-1] != self.input_size
                or routes.traced()):
            return None
        w_ih, w_hh, b_ih, b_hh, *vectors = self._params(0)
        if torch.is_grad_enabled() and (x.requires_grad or any(
                p.requires_grad for p in (w_ih, w_hh, b_ih, b_hh, *vectors) if p is not None)):
            return None
        self.last_backend = self._backend(x)
        if self.last_backend != "native":
            return None
        xt = x.transpose(0, 1) if self.batch_first else x
        T, B, H = xt.shape[0], xt.shape[1], self.hidden_size
        y, finals = kernels.forward_x(self.cell, xt, None, w_ih, b_ih, w_hh, b_hh,
                                      _stacked(vectors, H),
                                      _checks.full_lengths(T, B, x.device))
        finals = [f[None] for f in finals]
        return (y.transpose(0, 1) if self.batch_first else y,
                finals[0] if len(finals) == 1 else tuple(finals))

    def _params(self, k):
        """Layer-direction k's weight_ih, weight_hh, bias_ih, bias_hh and vectors (None where it
        has none), as they are now (parametrized ones included)."""
        names = self._names.get(k)
        if names is None:  # (the names, made once)
            names = self._names[k] = [n + self.suffix(k) for n in (
                "weight_ih", "weight_hh", "bias_ih", "bias_hh", *(v for v, _ in self.cell.vectors))]
        return [getattr(self, n, None) for n in names]

    def _run(self, k, x, states, lengths):
        # (the parameters' shapes are the module's, the states' checked by Stacked)
        w_ih, w_hh, b_ih, b_hh, *vectors = self._params(k)
        return _run(self.cell, x, states, w_ih, w_hh, b_ih, b_hh, vectors, lengths,
                    self.last_backend)
