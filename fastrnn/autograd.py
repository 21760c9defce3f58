"""The kernels as torch custom ops: forward, backward, fake implementations and autograd.

Each cell has two ops, `fastrnn::<cell>_forward` and `fastrnn::<cell>_backward`, that run only
the sequential recurrence on a kernel backend (numba, native, cuda) from G_x = x W_xhᵀ + b, which
the caller computes with F.linear (autograd differentiates it); dW_hh = dAᵀ · H_prev is a GEMM
over all T·B rows in the backward below.

`save=False` (inference) keeps only two state slots and one gate slot, so no per-step buffers
are kept; such a forward cannot be differentiated. Second derivatives raise a clear error.

Two paths reach the kernels. torch.compile, torch.export, tracing and ONNX export see F.linear
and the custom ops. A plain eager call skips torch.library's dispatch of Python-implemented ops,
which costs tens of µs a call (as much as a whole small step), and passes x, W_ih and the
biases instead of G_x (`_Cell.__call__`): native computes G_x inside its loop, a chunk of steps
ahead, so G_x over all T never exists; the other backends get it from torch first. Without
gradients the kernel is called directly, with gradients through `_LayerAutograd`, a
torch.autograd.Function sharing the ops' backward that also gives x, W_ih and the biases their
gradients. The LSTM with a projection is its own cell, `lstmp`.
"""
import torch
from torch import Tensor

from . import _grads, _buffers, dispatch


def _traced():
    """True while torch.compile/export or torch.jit.trace records the call. ONNX export records
    through one of the two (TorchScript tracing for dynamo=False, torch.export for dynamo=True),
    so torch.onnx.is_in_onnx_export(), ten times as slow to ask, adds nothing."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def _dense(grad, like):
    """Autograd passes None for an output that received no gradient."""
    return torch.zeros_like(like) if grad is None else grad.contiguous()


def _check_saved(ctx):
    if not ctx.save:
        raise RuntimeError("fastrnn: this forward ran with save=False (inference) and kept "
                           "nothing for backward; call it with gradients enabled")


def _no_double_backward(ctx, *grads):
    raise RuntimeError("fastrnn: second derivatives of the kernel backends are not supported; "
                       "use backend='eager' for double backward")


def _no_zero_grads(ctx):
    """The saved buffers (outputs too, see _LayerAutograd) get no gradient: without this autograd fills
    zeros of their size for them (the gates alone: T·B·G values) that the backward never reads;
    the outputs' missing gradients are made dense where needed (_dense)."""
    ctx.set_materialize_grads(False)


def _no_setup(ctx, inputs, output):
    pass


def _slots(T, save):
    """(state slots, gate slots): T+1 and T when saving for backward, else 2 and 1 (rings)."""
    return (T + 1, T) if save else (2, 1)


def _backward_fn(ctx, op, direct):
    """The backward op itself, when its result may be differentiated again (so the op's clear
    error is what a second derivative meets) or on the op path; else its body, called directly,
    with its ∂L/∂A in kept buffers (_grad_out): _LayerAutograd's backward consumes them itself."""
    fast = getattr(ctx, "fast", False)  # set by _LayerAutograd only
    if fast and not torch.is_grad_enabled():
        return lambda *args: direct(*args, kept=True)
    return op


def _grad_out(like, slot, kept):
    """A tensor like `like` for a backward body's result: with `kept` (and on the CPU), this
    thread's buffer `slot` (fastrnn._buffers), else a new one. A bfloat16 LSTM training step,
    T = 100, B = 16, H = 256, faulted in the pages of a fresh dA, 6.5 MB, on every step."""
    if kept and like.is_cpu:
        return _buffers.buffer(slot, like.shape, like.dtype)
    return torch.empty_like(like)


class _LayerAutograd(torch.autograd.Function):
    """The eager path with gradients: the forward body from x, W_ih and the biases of G_x, the
    ops' setup and backward, and the gradients of x, W_ih and the biases from ∂L/∂G_x as
    F.linear's backward gives them: dx = dG_x W_ih, dW_ih = dG_xᵀ x (_grads.gram), db = Σ dG_x."""

    @staticmethod
    def forward(ctx, cell, x, w_ih, b_ih, b_hh, *inputs):
        out = cell.forward_x(x, w_ih, b_ih, b_hh, *inputs)
        cell.setup(ctx, (None, *inputs), out, (x, w_ih))
        ctx.cell, ctx.fast, ctx.bf16 = cell, True, dispatch.multiplies_in_bf16()
        return out  # the saved buffers stay differentiable outputs, as the ops' are, so that a
        # second derivative reaches the backward op's clear error (see _backward_fn)

    @staticmethod
    def backward(ctx, *grads):
        # a forward that multiplied in bfloat16 (a bfloat16 module, autocast) has its backward's
        # products and weight gradients' GEMMs in bfloat16 too, as torch.nn's bfloat16 backward has
        if not ctx.bf16:
            return _LayerAutograd._backward(ctx, *grads)
        grads = [g if g is None or g.dtype != torch.bfloat16 else g.float() for g in grads]
        with (torch.autocast("cpu", dtype=torch.bfloat16), dispatch.bf16_products(),
              _grads.rounding_once()):  # (a bfloat16 call's outputs: their gradients widened)
            return _LayerAutograd._backward(ctx, *grads)

    @staticmethod
    def _backward(ctx, *grads):
        dgx, *rest = ctx.cell.grad(ctx, *grads)
        x, w_ih = ctx.saved_tensors[-2:]
        T, B, G = dgx.shape
        d, x, rows = dgx.reshape(T * B, G), x.reshape(T * B, -1), ctx.rows
        if rows is not None:  # only these rows count (the others' ∂L/∂G_x is zero): taken once
            d, x = d.index_select(0, rows), x.index_select(0, rows)
        need = ctx.needs_input_grad
        dx = None
        if need[1]:
            dx = _grads.input_grad(d, _wide(w_ih))
            if rows is not None:  # the ended rows' dx is zero
                dx = dx.new_zeros(T * B, dx.shape[1]).index_copy_(0, rows, dx)
            dx = dx.view(T, B, -1)
        dw_ih = _grads.gram(d, x) if need[2] else None
        db = d.sum(0) if need[3] or need[4] else None
        return (None, dx, dw_ih, db if need[3] else None, db if need[4] else None, *rest)


class _Cell:
    """One cell: its forward body from G_x (the op's), the forward body from x, W_ih and the
    biases (`forward_x`), the op's setup and backward, and the op itself."""

    def __init__(self, forward, setup, grad, op, forward_x):
        self.forward, self.setup, self.grad, self.op = forward, setup, grad, op
        self.forward_x = forward_x

    def __call__(self, x, w_ih, b_ih, b_hh, *inputs):
        """The cell on x [T,B,I] with W_ih and the biases of G_x = x W_ihᵀ + b_ih + b_hh (each
        may be None; GRU's b_hh is not part of G_x: None here, its own in `inputs`); `inputs` as
        the op's after G_x. Traced calls record F.linear and the op; eager ones pass x, W_ih and
        the biases to the kernels (native computes G_x inside its loop; the others get it from
        torch first, _gx), directly without gradients, else through _LayerAutograd."""
        if _traced():  # (G_x in x's dtype under autocast too: the kernels take float32)
            with torch.autocast(x.device.type, enabled=False):
                gx = torch.nn.functional.linear(x, w_ih, _bias(b_ih, b_hh))
            return self.op(gx, *inputs)
        if not inputs[-2]:
            return self.forward_x(x, w_ih, b_ih, b_hh, *inputs)
        return _LayerAutograd.apply(self, x, w_ih, b_ih, b_hh, *inputs)


def _has_x(backend, cell):
    """Whether `backend`'s kernels compute G_x themselves (native's <cell>_forward_x)."""
    return hasattr(dispatch.load(backend), cell + "_forward_x")


def _bias(b_ih, b_hh):
    return b_ih if b_hh is None else b_hh if b_ih is None else b_ih + b_hh


def _gx(x, w_ih, b_ih, b_hh):
    """G_x = x W_ihᵀ + b_ih + b_hh [T,B,G] for backends that take it ready (no autograd: _LayerAutograd's
    backward gives x, w_ih and the biases their gradients)."""
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):  # the kernels take x's
        return torch.nn.functional.linear(x, w_ih, _bias(b_ih, b_hh))    # dtype, not bf16


def _c(t):
    return None if t is None else t.contiguous()


def _work(like, *shape):
    """A kernel's saved or scratch buffer (gates, states) for a call on `like`: float32 for a
    bfloat16 call (the native *_bf16 kernels: the work in float32), else like's dtype."""
    return like.new_empty(shape, dtype=torch.float32 if like.dtype == torch.bfloat16 else None)


def _wide(t):
    """t as the kernels multiply it in a backward: a bfloat16 weight widened to float32."""
    return t.float() if t.dtype == torch.bfloat16 else t


# ---------------------------------------------------------------------------------------- RNN
def _rnn_out(like, T, B, H, save):
    S, _ = _slots(T, save)
    return like.new_empty(T, B, H), like.new_empty(B, H), _work(like, S, B, H)


def _rnn_forward(gx, h0, w_hh, lengths, relu, save, backend):
    y, h_n, hs = _rnn_out(gx, *gx.shape, save)
    dispatch.load(backend).rnn_forward(gx.contiguous(), h0.contiguous(), w_hh.contiguous(),
                                       lengths, relu, y, h_n, hs)
    return y, h_n, hs


def _rnn_forward_x(x, w_ih, b_ih, b_hh, h0, w_hh, lengths, relu, save, backend):
    if not _has_x(backend, "rnn"):
        return _rnn_forward(_gx(x, w_ih, b_ih, b_hh), h0, w_hh, lengths, relu, save, backend)
    y, h_n, hs = _rnn_out(x, x.shape[0], x.shape[1], h0.shape[1], save)
    dispatch.load(backend).rnn_forward_x(x.contiguous(), w_ih.contiguous(), _c(b_ih), _c(b_hh),
                                         h0.contiguous(), w_hh.contiguous(), lengths, relu, y,
                                         h_n, hs)
    return y, h_n, hs


def _rnn_backward(dy, dh_n, hs, w_hh, lengths, relu, backend, kept=False):
    dA, dh0 = _grad_out(dy, "dA", kept), torch.empty_like(dh_n)
    dispatch.load(backend).rnn_backward(dy, dh_n, hs, _wide(w_hh).contiguous(), lengths, relu, dA,
                                        dh0)
    return dA, dh0


@torch.library.custom_op("fastrnn::rnn_forward", mutates_args=())
def rnn_forward(gx: Tensor, h0: Tensor, w_hh: Tensor, lengths: Tensor, relu: bool, save: bool,
                backend: str) -> tuple[Tensor, Tensor, Tensor]:
    """gx [T,B,H], h0 [B,H], w_hh [H,H], lengths [B] -> y [T,B,H], h_n [B,H], hs [S,B,H]."""
    return _rnn_forward(gx, h0, w_hh, lengths, relu, save, backend)


@rnn_forward.register_fake
def _(gx, h0, w_hh, lengths, relu, save, backend):
    return _rnn_out(gx, *gx.shape, save)


@torch.library.custom_op("fastrnn::rnn_backward", mutates_args=())
def rnn_backward(dy: Tensor, dh_n: Tensor, hs: Tensor, w_hh: Tensor, lengths: Tensor, relu: bool,
                 backend: str) -> tuple[Tensor, Tensor]:
    """dy [T,B,H], dh_n [B,H], hs [T+1,B,H] -> dA [T,B,H], dh0 [B,H]."""
    return _rnn_backward(dy, dh_n, hs, w_hh, lengths, relu, backend)


@rnn_backward.register_fake
def _(dy, dh_n, hs, w_hh, lengths, relu, backend):
    return torch.empty_like(dy), torch.empty_like(dh_n)


def _rnn_setup(ctx, inputs, output, extra=()):
    _, _, w_hh, lengths, ctx.relu, ctx.save, ctx.backend = inputs
    ctx.save_for_backward(w_hh, lengths, output[2], *extra)
    _no_zero_grads(ctx)


def _rnn_grad(ctx, dy, dh_n, _):
    _check_saved(ctx)
    w_hh, lengths, hs = ctx.saved_tensors[:3]
    dA, dh0 = _backward_fn(ctx, rnn_backward, _rnn_backward)(
        _dense(dy, hs[1:]), _dense(dh_n, hs[0]), hs, w_hh, lengths, ctx.relu, ctx.backend)
    dW_hh = _grads.dW_hh(dA, hs, _grads.running(ctx, lengths, hs))
    return dA, dh0, dW_hh, None, None, None, None


rnn_forward.register_autograd(_rnn_grad, setup_context=_rnn_setup)
rnn_backward.register_autograd(_no_double_backward, setup_context=_no_setup)
rnn = _Cell(_rnn_forward, _rnn_setup, _rnn_grad, rnn_forward, _rnn_forward_x)


# --------------------------------------------------------------------------------------- LSTM
def _lstm_out(like, T, B, H, save):
    S, Sg = _slots(T, save)
    return (like.new_empty(T, B, H), like.new_empty(B, H), like.new_empty(B, H),
            _work(like, Sg, B, 4 * H), _work(like, S, B, H), _work(like, S, B, H))


def _lstm_forward(gx, h0, c0, w_hh, lengths, save, backend):
    out = _lstm_out(gx, gx.shape[0], gx.shape[1], gx.shape[2] // 4, save)
    dispatch.load(backend).lstm_forward(gx.contiguous(), h0.contiguous(), c0.contiguous(),
                                        w_hh.contiguous(), lengths, *out)
    return out


def _lstm_forward_x(x, w_ih, b_ih, b_hh, h0, c0, w_hh, lengths, save, backend):
    if not _has_x(backend, "lstm"):
        return _lstm_forward(_gx(x, w_ih, b_ih, b_hh), h0, c0, w_hh, lengths, save, backend)
    out = _lstm_out(x, x.shape[0], x.shape[1], c0.shape[1], save)
    dispatch.load(backend).lstm_forward_x(x.contiguous(), w_ih.contiguous(), _c(b_ih), _c(b_hh),
                                          h0.contiguous(), c0.contiguous(), w_hh.contiguous(),
                                          lengths, *out)
    return out


def _lstm_backward(dy, dh_n, dc_n, gates, cs, w_hh, lengths, backend, kept=False):
    dA, dh0, dc0 = _grad_out(gates, "dA", kept), torch.empty_like(dh_n), torch.empty_like(dc_n)
    dispatch.load(backend).lstm_backward(dy, dh_n, dc_n, gates, cs, _wide(w_hh).contiguous(),
                                         lengths, dA, dh0, dc0)
    return dA, dh0, dc0


@torch.library.custom_op("fastrnn::lstm_forward", mutates_args=())
def lstm_forward(gx: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, lengths: Tensor, save: bool,
                 backend: str) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """gx [T,B,4H], h0, c0 [B,H], w_hh [4H,H], lengths [B]
    -> y [T,B,H], h_n, c_n [B,H], gates [Sg,B,4H], cs [S,B,H], hs [S,B,H]."""
    return _lstm_forward(gx, h0, c0, w_hh, lengths, save, backend)


@lstm_forward.register_fake
def _(gx, h0, c0, w_hh, lengths, save, backend):
    return _lstm_out(gx, gx.shape[0], gx.shape[1], gx.shape[2] // 4, save)


@torch.library.custom_op("fastrnn::lstm_backward", mutates_args=())
def lstm_backward(dy: Tensor, dh_n: Tensor, dc_n: Tensor, gates: Tensor, cs: Tensor, w_hh: Tensor,
                  lengths: Tensor, backend: str) -> tuple[Tensor, Tensor, Tensor]:
    """dy [T,B,H], dh_n, dc_n [B,H], gates [T,B,4H], cs [T+1,B,H] -> dA [T,B,4H], dh0, dc0 [B,H]."""
    return _lstm_backward(dy, dh_n, dc_n, gates, cs, w_hh, lengths, backend)


@lstm_backward.register_fake
def _(dy, dh_n, dc_n, gates, cs, w_hh, lengths, backend):
    return torch.empty_like(gates), torch.empty_like(dh_n), torch.empty_like(dc_n)


def _lstm_setup(ctx, inputs, output, extra=()):
    _, _, _, w_hh, lengths, ctx.save, ctx.backend = inputs
    ctx.save_for_backward(w_hh, lengths, *output[3:], *extra)
    _no_zero_grads(ctx)


def _lstm_grad(ctx, dy, dh_n, dc_n, *_):
    _check_saved(ctx)
    w_hh, lengths, gates, cs, hs = ctx.saved_tensors[:5]
    dA, dh0, dc0 = _backward_fn(ctx, lstm_backward, _lstm_backward)(
        _dense(dy, hs[1:]), _dense(dh_n, hs[0]), _dense(dc_n, cs[0]), gates, cs, w_hh, lengths,
        ctx.backend)
    dW_hh = _grads.dW_hh(dA, hs, _grads.running(ctx, lengths, hs))
    return dA, dh0, dc0, dW_hh, None, None, None


lstm_forward.register_autograd(_lstm_grad, setup_context=_lstm_setup)
lstm_backward.register_autograd(_no_double_backward, setup_context=_no_setup)
lstm = _Cell(_lstm_forward, _lstm_setup, _lstm_grad, lstm_forward, _lstm_forward_x)


# -------------------------------------------------------------------------------------- LSTMP
# The LSTM with a projection: r_t = σ(o) ⊙ tanh(c_t) [B,H], h_t = r_t W_hrᵀ [B,R] (R = proj_size).
def _lstmp_out(like, T, B, H, R, save):
    S, Sg = _slots(T, save)
    return (like.new_empty(T, B, R), like.new_empty(B, R), like.new_empty(B, H),
            like.new_empty(Sg, B, 4 * H), like.new_empty(S, B, H), like.new_empty(S, B, R),
            like.new_empty(Sg, B, H))


def _lstmp_forward(gx, h0, c0, w_hh, w_hr, lengths, save, backend):
    out = _lstmp_out(gx, gx.shape[0], gx.shape[1], c0.shape[1], h0.shape[1], save)
    dispatch.load(backend).lstmp_forward(gx.contiguous(), h0.contiguous(), c0.contiguous(),
                                         w_hh.contiguous(), w_hr.contiguous(), lengths, *out)
    return out


def _lstmp_forward_x(x, w_ih, b_ih, b_hh, h0, c0, w_hh, w_hr, lengths, save, backend):
    if not _has_x(backend, "lstmp"):
        return _lstmp_forward(_gx(x, w_ih, b_ih, b_hh), h0, c0, w_hh, w_hr, lengths, save,
                              backend)
    out = _lstmp_out(x, x.shape[0], x.shape[1], c0.shape[1], h0.shape[1], save)
    dispatch.load(backend).lstmp_forward_x(x.contiguous(), w_ih.contiguous(), _c(b_ih),
                                           _c(b_hh), h0.contiguous(), c0.contiguous(),
                                           w_hh.contiguous(), w_hr.contiguous(), lengths, *out)
    return out


def _lstmp_backward(dy, dh_n, dc_n, gates, cs, w_hh, w_hr, lengths, backend, kept=False):
    dA, dh0, dc0 = _grad_out(gates, "dA", kept), torch.empty_like(dh_n), torch.empty_like(dc_n)
    du = _grad_out(dy, "du", kept)
    dispatch.load(backend).lstmp_backward(dy, dh_n, dc_n, gates, cs, w_hh.contiguous(),
                                          w_hr.contiguous(), lengths, dA, dh0, dc0, du)
    return dA, dh0, dc0, du


@torch.library.custom_op("fastrnn::lstmp_forward", mutates_args=())
def lstmp_forward(gx: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, w_hr: Tensor,
                  lengths: Tensor, save: bool, backend: str
                  ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """gx [T,B,4H], h0 [B,R], c0 [B,H], w_hh [4H,R], w_hr [R,H], lengths [B]
    -> y [T,B,R], h_n [B,R], c_n [B,H], gates [Sg,B,4H], cs [S,B,H], hs [S,B,R], rs [Sg,B,H]."""
    return _lstmp_forward(gx, h0, c0, w_hh, w_hr, lengths, save, backend)


@lstmp_forward.register_fake
def _(gx, h0, c0, w_hh, w_hr, lengths, save, backend):
    return _lstmp_out(gx, gx.shape[0], gx.shape[1], c0.shape[1], h0.shape[1], save)


@torch.library.custom_op("fastrnn::lstmp_backward", mutates_args=())
def lstmp_backward(dy: Tensor, dh_n: Tensor, dc_n: Tensor, gates: Tensor, cs: Tensor,
                   w_hh: Tensor, w_hr: Tensor, lengths: Tensor, backend: str
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """dy [T,B,R], dh_n [B,R], dc_n [B,H], gates [T,B,4H], cs [T+1,B,H]
    -> dA [T,B,4H], dh0 [B,R], dc0 [B,H], du [T,B,R] (each step's ∂L/∂h_t)."""
    return _lstmp_backward(dy, dh_n, dc_n, gates, cs, w_hh, w_hr, lengths, backend)


@lstmp_backward.register_fake
def _(dy, dh_n, dc_n, gates, cs, w_hh, w_hr, lengths, backend):
    return (torch.empty_like(gates), torch.empty_like(dh_n), torch.empty_like(dc_n),
            torch.empty_like(dy))


def _lstmp_setup(ctx, inputs, output, extra=()):
    _, _, _, w_hh, w_hr, lengths, ctx.save, ctx.backend = inputs
    ctx.save_for_backward(w_hh, w_hr, lengths, *output[3:], *extra)
    _no_zero_grads(ctx)


def _lstmp_grad(ctx, dy, dh_n, dc_n, *_):
    _check_saved(ctx)
    w_hh, w_hr, lengths, gates, cs, hs, rs = ctx.saved_tensors[:7]
    dA, dh0, dc0, du = _backward_fn(ctx, lstmp_backward, _lstmp_backward)(
        _dense(dy, hs[1:]), _dense(dh_n, hs[0]), _dense(dc_n, cs[0]), gates, cs, w_hh, w_hr,
        lengths, ctx.backend)
    T, B, R = du.shape
    rows = _grads.running(ctx, lengths, hs)
    dw_hr = _grads.gram(du.reshape(T * B, R), rs.reshape(T * B, -1), rows)  # Σ_t du_tᵀ r_t
    return dA, dh0, dc0, _grads.dW_hh(dA, hs, rows), dw_hr, None, None, None


lstmp_forward.register_autograd(_lstmp_grad, setup_context=_lstmp_setup)
lstmp_backward.register_autograd(_no_double_backward, setup_context=_no_setup)
lstmp = _Cell(_lstmp_forward, _lstmp_setup, _lstmp_grad, lstmp_forward, _lstmp_forward_x)


# ---------------------------------------------------------------------------------------- GRU
def _gru_out(like, T, B, H, save):
    S, Sg = _slots(T, save)
    return (like.new_empty(T, B, H), like.new_empty(B, H), _work(like, Sg, B, 3 * H),
            _work(like, Sg, B, H), _work(like, S, B, H))


def _gru_forward(gx, h0, w_hh, b_hh, lengths, save, backend):
    out = _gru_out(gx, gx.shape[0], gx.shape[1], gx.shape[2] // 3, save)
    dispatch.load(backend).gru_forward(gx.contiguous(), h0.contiguous(), w_hh.contiguous(),
                                       b_hh.contiguous(), lengths, *out)
    return out


def _gru_forward_x(x, w_ih, b_ih, _, h0, w_hh, b_hh, lengths, save, backend):
    # (_: G_x's second bias, always None: GRU's b_hh belongs to A)
    if not _has_x(backend, "gru"):
        return _gru_forward(_gx(x, w_ih, b_ih, None), h0, w_hh, b_hh, lengths, save, backend)
    out = _gru_out(x, x.shape[0], x.shape[1], h0.shape[1], save)
    dispatch.load(backend).gru_forward_x(x.contiguous(), w_ih.contiguous(), _c(b_ih),
                                         h0.contiguous(), w_hh.contiguous(), b_hh.contiguous(),
                                         lengths, *out)
    return out


def _gru_backward(dy, dh_n, gates, a_n, hs, w_hh, lengths, backend, kept=False):
    dGx, dA_n = _grad_out(gates, "dA", kept), _grad_out(dy, "dA_n", kept)
    dh0 = torch.empty_like(dh_n)
    dispatch.load(backend).gru_backward(dy, dh_n, gates, a_n, hs, _wide(w_hh).contiguous(),
                                        lengths, dGx, dA_n, dh0)
    return dGx, dA_n, dh0


def _gru_hh_grads(dGx, dA_n, hs, rows=None):
    """dW_hh [3H,H] and db_hh [3H] from ∂L/∂A = [dGx's r and z blocks, dA_n], dGx [T,B,3H],
    dA_n [T,B,H], hs [T+1,B,H]: two products instead of a T·B·3H copy of ∂L/∂A."""
    T, B, G = dGx.shape
    H = G // 3
    d_rz, d_n = dGx.reshape(T * B, G)[:, :2 * H], dA_n.reshape(T * B, H)
    h = hs[:-1].reshape(T * B, H)
    if rows is not None:  # (see _grads.running)
        d_rz, d_n, h = (t.index_select(0, rows) for t in (d_rz, d_n, h))
    return (torch.cat([_grads.gram(d_rz, h), _grads.gram(d_n, h)]),
            torch.cat([d_rz.sum(0), d_n.sum(0)]))


@torch.library.custom_op("fastrnn::gru_forward", mutates_args=())
def gru_forward(gx: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor, lengths: Tensor, save: bool,
                backend: str) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """gx [T,B,3H], h0 [B,H], w_hh [3H,H], b_hh [3H], lengths [B]
    -> y [T,B,H], h_n [B,H], gates [Sg,B,3H], a_n [Sg,B,H], hs [S,B,H]."""
    return _gru_forward(gx, h0, w_hh, b_hh, lengths, save, backend)


@gru_forward.register_fake
def _(gx, h0, w_hh, b_hh, lengths, save, backend):
    return _gru_out(gx, gx.shape[0], gx.shape[1], gx.shape[2] // 3, save)


@torch.library.custom_op("fastrnn::gru_backward", mutates_args=())
def gru_backward(dy: Tensor, dh_n: Tensor, gates: Tensor, a_n: Tensor, hs: Tensor, w_hh: Tensor,
                 lengths: Tensor, backend: str) -> tuple[Tensor, Tensor, Tensor]:
    """dy [T,B,H], dh_n [B,H], gates [T,B,3H], a_n [T,B,H], hs [T+1,B,H]
    -> dGx [T,B,3H], dA_n [T,B,H] (∂L/∂A's n block; its r, z blocks are dGx's), dh0 [B,H]."""
    return _gru_backward(dy, dh_n, gates, a_n, hs, w_hh, lengths, backend)


@gru_backward.register_fake
def _(dy, dh_n, gates, a_n, hs, w_hh, lengths, backend):
    return torch.empty_like(gates), torch.empty_like(dy), torch.empty_like(dh_n)


def _gru_setup(ctx, inputs, output, extra=()):
    _, _, w_hh, _, lengths, ctx.save, ctx.backend = inputs
    ctx.save_for_backward(w_hh, lengths, *output[2:], *extra)
    _no_zero_grads(ctx)


def _gru_grad(ctx, dy, dh_n, *_):
    _check_saved(ctx)
    w_hh, lengths, gates, a_n, hs = ctx.saved_tensors[:5]
    dGx, dA_n, dh0 = _backward_fn(ctx, gru_backward, _gru_backward)(
        _dense(dy, hs[1:]), _dense(dh_n, hs[0]), gates, a_n, hs, w_hh, lengths, ctx.backend)
    hh = _gru_hh_grads(dGx, dA_n, hs, _grads.running(ctx, lengths, hs))
    return dGx, dh0, *hh, None, None, None


gru_forward.register_autograd(_gru_grad, setup_context=_gru_setup)
gru_backward.register_autograd(_no_double_backward, setup_context=_no_setup)
gru = _Cell(_gru_forward, _gru_setup, _gru_grad, gru_forward, _gru_forward_x)
