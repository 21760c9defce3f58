"""The kernels as torch custom ops: forward, backward, fake implementations and autograd.

Each cell has two ops, `fastrnn::<cell>_forward` and `fastrnn::<cell>_backward`, that run only
the sequential recurrence on a kernel backend (numba, native, cuda) from G_x = x W_xhᵀ + b, which
the caller computes with F.linear (autograd differentiates it); dW_hh = dAᵀ · H_prev is a GEMM
over all T·B rows in the backward below. Both are built from the cell's description
(fastrnn.cells) by CellOps, with the cell's gradient rule (_lstm_grads and the like).

`save=False` (inference) keeps only two state slots and one gate slot, so no per-step buffers
are kept; such a forward cannot be differentiated. Second derivatives raise a clear error.

Three layer routes (fastrnn.routes) reach the kernels here. torch.compile, torch.export and
tracing see F.linear and the custom ops (traced). A plain eager call skips torch.library's
dispatch of Python-implemented ops, which costs tens of µs a call (as much as a whole small
step), and passes x, W_ih and the biases instead of G_x (`CellOps.__call__`): native computes G_x
inside its loop, a chunk of steps ahead, so G_x over all T never exists; the other backends get
it from torch first. Without gradients the kernel is called directly (no_grad), with gradients
through `_LayerAutograd`, a torch.autograd.Function sharing the ops' backward that also gives x,
W_ih and the biases their gradients (autograd). The LSTM with a projection is its own cell,
`lstmp`.
"""
import torch

from . import _grads, _buffers, cells, dispatch


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
    """The saved buffers (the op's outputs too) get no gradient: without this autograd fills
    zeros of their size for them (the gates alone: T·B·G values) that the backward never reads;
    the outputs' missing gradients are made dense where needed (_dense)."""
    ctx.set_materialize_grads(False)


def _no_setup(ctx, inputs, output):
    pass


def _slots(T, save):
    """(state slots, gate slots): T+1 and T when saving for backward, else 2 and 1 (rings)."""
    return (T + 1, T) if save else (2, 1)


def _backward_fn(ctx, op, direct):
    """The backward op on the op path (a second derivative meets its clear error); else, for
    _LayerAutograd, its body, called directly, with its ∂L/∂A in kept buffers (_grad_out):
    _LayerAutograd's backward consumes them itself."""
    if getattr(ctx, "fast", False):  # set by _LayerAutograd only
        return lambda *args: direct(*args, kept=True)
    return op


class _Underivable(torch.autograd.Function):
    """The identity on gradients that cannot be differentiated again: a second derivative that
    reaches it raises _no_double_backward's error. Its first input, a fresh tensor requiring
    grad, makes its outputs require grad even where no input of the backward did (a gradient
    that depends on x through the saved buffers alone), so that none is silently dropped."""

    @staticmethod
    def forward(ctx, anchor, *grads):
        return tuple(g.view_as(g) for g in grads)

    backward = staticmethod(_no_double_backward)


def underivable(grads):
    """grads, each tensor among them routed through _Underivable."""
    at = [k for k, g in enumerate(grads) if isinstance(g, torch.Tensor)]
    with torch.enable_grad():
        out = _Underivable.apply(torch.zeros((), requires_grad=True), *(grads[k] for k in at))
    grads = list(grads)
    for k, g in zip(at, out):
        grads[k] = g
    return tuple(grads)


def _grad_out(like, shape, slot, kept):
    """A tensor of `shape` in like's dtype and device for a backward body's result: with `kept`
    (and on the CPU), this thread's buffer `slot` (fastrnn._buffers), else a new one. A bfloat16
    LSTM training step, T = 100, B = 16, H = 256, faulted in the pages of a fresh dA, 6.5 MB, on
    every step."""
    if kept and like.is_cpu:
        return _buffers.buffer(slot, shape, like.dtype)
    return like.new_empty(*shape)


class _LayerAutograd(torch.autograd.Function):
    """The eager path with gradients: the forward body from x, W_ih and the biases of G_x, the
    ops' setup and backward, and the gradients of x, W_ih and the biases from ∂L/∂G_x as
    F.linear's backward gives them: dx = dG_x W_ih, dW_ih = dG_xᵀ x (_grads.gram), db = Σ dG_x."""

    @staticmethod
    def forward(ctx, cell, x, w_ih, b_ih, b_hh, *inputs):  # cell: its CellOps
        out = cell.forward_x(x, w_ih, b_ih, b_hh, *inputs)
        cell.setup(ctx, (None, *inputs), out, (x, w_ih))
        ctx.cell, ctx.fast, ctx.bf16 = cell, True, dispatch.multiplies_in_bf16()
        # y and the final states only: the saved buffers as outputs too (as the op's) cost a
        # LayerNorm LSTM B = 1 training step (nine of them) 8 % on Zen 3
        return out[:-cell.n_saved]

    @staticmethod
    def backward(ctx, *grads):
        if torch.is_grad_enabled():  # create_graph: what differentiates the result meets the error
            with torch.no_grad():
                return underivable(_LayerAutograd._backward_in(ctx, *grads))
        return _LayerAutograd._backward_in(ctx, *grads)

    @staticmethod
    def _backward_in(ctx, *grads):
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


def _bias(b_ih, b_hh):
    return b_ih if b_hh is None else b_hh if b_ih is None else b_ih + b_hh


def input_projection(x, w_ih, b_ih, b_hh, kept=None):
    """G_x = x W_ihᵀ + b_ih + b_hh [T,B,G] for backends that take it ready (no autograd:
    _LayerAutograd's backward gives x, w_ih and the biases their gradients); on CPU float32 and
    float64 in fixed blocks (fastrnn._grads.blocks), bitwise the same for any thread count, and
    in this thread's kept buffer `kept` if named (valid until its next use: for a G_x read by one
    call alone — fresh, a large one faults in its pages every call)."""
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):  # the kernels take x's
        lib, b = _grads.blocks(x), _bias(b_ih, b_hh)                     # dtype, not bf16
        if lib is None:
            return torch.nn.functional.linear(x, w_ih, b)
        T, B, I = x.shape
        out = None if kept is None else _buffers.buffer(kept, (T * B, w_ih.shape[0]), x.dtype)
        gx = lib.linear_blocks(x.reshape(T * B, I).contiguous(), w_ih.contiguous(), out)
        return (gx if b is None else gx.add_(b)).view(T, B, -1)


def _c(t):
    return None if t is None else t.contiguous()


def _wide(t):
    """t as the kernels multiply it in a backward: a bfloat16 weight widened to float32."""
    return t.float() if t.dtype == torch.bfloat16 else t




def _schema(args, flags, results, save=True):
    """A custom op's schema: tensor arguments (Tensor? where marked "?"), the cell's bool flags,
    save (the forward) and backend -> a tuple of `results` tensors."""
    params = [f"Tensor{'?' if a.endswith('?') else ''} {a.rstrip('?')}" for a in args]
    params += [f"bool {f}" for f in flags] + (["bool save"] if save else []) + ["str backend"]
    return f"({', '.join(params)}) -> ({', '.join(['Tensor'] * results)})"


_X_KINDS = {(save, bf16): ("forward_x" if save else "forward_x_infer") + ("_bf16" if bf16 else "")
            for save in (False, True) for bf16 in (False, True)}  # by (save, bfloat16 x)


class CellOps:
    """A cell's custom ops and the bodies they share with the eager path, all from its
    description (fastrnn.cells) but `grads`, its gradient rule: grads(ctx, saved, *k) -> the
    gradients of the forward op's tensor arguments from the backward kernel's results k, where
    `saved` maps the names of the saved buffers, the backward's params and lengths to tensors.

    fastrnn::<cell>_forward(x_in, *inputs, *states, *params, lengths, [flag,] save, backend) and
    fastrnn::<cell>_backward(dy, *dstates_n, *reads, *bparams, lengths, [flag,] backend) run the
    kernels of the backend named (fastrnn.dispatch); `check`, if given, runs in the forward's
    fake implementation (while torch.compile or torch.export records it)."""

    def __init__(self, cell, grads, check=None):
        self.cell, self.rule, self.check = cell, grads, check
        args = cell.forward_args()
        self.n_in = 1 + len(args)  # the forward op's tensor arguments, x_in first
        names = [a.rstrip("?") for a in args]
        self.h0 = 1 + names.index("h0")  # whose width is R
        self.bparams = [1 + names.index(p) for p in cell.bparams]
        self.w_hh = 1 + len(cell.states) + len(cell.reads)  # in the backward's arguments
        self.n_saved = len(cell.saved)
        self.saved_names = [n for n, _ in cell.saved] + list(cell.bparams) + ["lengths"]
        # where grad() finds the backward's arguments among the saved tensors
        self.state_slots = [self.saved_names.index(s + "s") for s in cell.states]
        self.backward_saved = [self.saved_names.index(n)
                               for n in (*cell.reads, *cell.bparams, "lengths")]
        self.optional = any(a.endswith("?") for a in args)
        self.no_grads = (None,) * (3 + len(cell.flags))  # lengths, the flag, save, backend
        outs = cell.outputs()
        self.out_shapes = cells.sizes([s for _, s in outs])
        self.grad_shapes = cells.sizes([s for _, s in cell.grads])
        self.kept = [name if s[0] == "T" else None for name, s in cell.grads]  # kept buffer slots
        self.op = torch.library.custom_op(
            f"fastrnn::{cell.name}_forward", self.forward, mutates_args=(),
            schema=_schema(("x_in", *args), cell.flags, len(outs)))
        self.op.register_fake(self._fake)
        self.backward_op = torch.library.custom_op(
            f"fastrnn::{cell.name}_backward", self.backward, mutates_args=(),
            schema=_schema(cell.backward_args(), cell.flags, len(cell.grads), save=False))
        self.backward_op.register_fake(lambda *args: self._grads_out(args, False))
        self.op.register_autograd(self.grad, setup_context=self.setup)
        self.backward_op.register_autograd(_no_double_backward, setup_context=_no_setup)

    def __call__(self, route, x, w_ih, b_ih, b_hh, *inputs):
        """The cell on x [T,B,I] with W_ih and the biases of G_x = x W_ihᵀ + b_ih + b_hh (each
        may be None; GRU's b_hh is not part of G_x: None here, its own in `inputs`; the LayerNorm
        cells': None, theirs in `inputs`); `inputs` as the op's after x_in; `route` the layer
        route fastrnn.routes chose. Traced calls record F.linear and the op; the others pass x,
        W_ih and the biases to the kernels (native computes G_x inside its loop; the others get
        it first, input_projection), directly (no_grad) or through _LayerAutograd (autograd)."""
        if route == "traced":  # (G_x in x's dtype under autocast too: the kernels take float32)
            with torch.autocast(x.device.type, enabled=False):
                gx = torch.nn.functional.linear(x, w_ih, _bias(b_ih, b_hh))
            return self.op(gx, *inputs)
        if route == "no_grad":
            return self.forward_x(x, w_ih, b_ih, b_hh, *inputs)
        return _LayerAutograd.apply(self, x, w_ih, b_ih, b_hh, *inputs)

    def _dims(self, tensors, G):
        T, B = tensors[0].shape[:2]
        return T, B, G // self.cell.gates, tensors[self.h0].shape[-1]

    def _outputs(self, like, T, B, H, R, save):
        """y and the final states in like's dtype, the saved buffers in the kernels': float32 for a
        bfloat16 call (the native *_bf16 kernels: the work in float32), else like's."""
        S, Sg = _slots(T, save)
        shapes = self.out_shapes(T, B, self.cell.gates * H, H, R, S, Sg)
        new = like.new_empty
        if like.dtype != torch.bfloat16:
            return tuple([new(*s) for s in shapes])  # (new(*s): new(s) takes 1 µs more)
        n = len(shapes) - self.n_saved
        return tuple(new(*s) if k < n else new(*s, dtype=torch.float32)
                     for k, s in enumerate(shapes))

    def _split(self, args):
        """The op's arguments -> (tensors, flag, save, backend)."""
        n, flag = self.n_in, args[self.n_in] if self.cell.flag else False
        return args[:n], flag, args[-2], args[-1]

    def forward(self, *args):
        """The forward op's body: its arguments (see the class) -> y, states_n, saved."""
        tensors, flag, save, backend = self._split(args)
        T, B, H, R = self._dims(tensors, tensors[0].shape[2])
        out = self._outputs(tensors[0], T, B, H, R, save)
        dispatch.load(backend).call(self.cell, "forward" if save else "forward_infer", H,
                                    *map(_c, tensors), *out, flag=flag, R=R)
        return out

    def _fake(self, *args):
        if self.check:
            self.check()
        tensors, _, save, _ = self._split(args)
        return self._outputs(tensors[0], *self._dims(tensors, tensors[0].shape[2]), save)

    def forward_x(self, x, w_ih, b_ih, b_hh, *inputs):
        """The forward from x [T,B,I], W_ih and G_x's biases, `inputs` as the op's after x_in:
        the kernel's forward_x where the backend has one, else forward(G_x, ...)."""
        cell, lib = self.cell, dispatch.load(inputs[-1])
        if not (lib.FUSED and cell.x_biases):  # (without save G_x is read by this call alone)
            gx = input_projection(x, w_ih, b_ih, b_hh, None if inputs[-2] else "gx")
            return self.forward(gx, *inputs)
        n, save = self.n_in - 1, inputs[-2]  # (inputs[:n]: the op's tensors after x_in)
        H = w_ih.shape[0] // cell.gates
        R = inputs[self.h0 - 1].shape[-1]
        out = self._outputs(x, x.shape[0], x.shape[1], H, R, save)
        biases = (b_ih, b_hh) if len(cell.x_biases) == 2 else (b_ih,)
        lib.call(cell, _X_KINDS[save, x.dtype == torch.bfloat16], H, x.contiguous(),
                 w_ih.contiguous(), *[_c(t) for t in biases], *[_c(t) for t in inputs[:n]],
                 *out, flag=inputs[n] if cell.flag else False, R=R)
        return out

    def _grads_out(self, args, kept):
        """The backward's results for its arguments `args` (dy [T,B,R] first): the T-long ones
        in this thread's kept buffers with `kept` (see _grad_out)."""
        dy, G = args[0], args[self.w_hh].shape[0]
        T, B, R = dy.shape
        shapes = self.grad_shapes(T, B, G, G // self.cell.gates, R, 0, 0)
        return tuple(_grad_out(dy, s, slot, kept and slot is not None)
                     for s, slot in zip(shapes, self.kept))

    def backward(self, *args, kept=False):
        """The backward op's body: its arguments (see the class) -> the cell's grads."""
        cell = self.cell
        flag = args[-2] if cell.flag else False
        tensors = list(args[:-2 if cell.flag else -1])
        for k in range(self.w_hh, len(tensors) - 1):  # the params: widened, contiguous
            tensors[k] = _wide(tensors[k]).contiguous()
        out = self._grads_out(tensors, kept)
        dispatch.load(args[-1]).call(cell, "backward", tensors[self.w_hh].shape[0] // cell.gates,
                                     *tensors, *out, flag=flag, R=tensors[0].shape[2])
        return out

    def setup(self, ctx, inputs, output, extra=()):
        """The forward op's (and _LayerAutograd's) setup_context: keeps the saved buffers, the
        backward's params, lengths and `extra` (_LayerAutograd's x and W_ih)."""
        tensors, ctx.flag, ctx.save, ctx.backend = self._split(inputs)
        if self.optional:  # (x_in: None from _LayerAutograd, which takes dx_in itself)
            ctx.present = [True] + [t is not None for t in tensors[1:]]
        ctx.rows = None
        ctx.save_for_backward(*output[-self.n_saved:], *(tensors[k] for k in self.bparams),
                              tensors[self.n_in - 1], *extra)
        _no_zero_grads(ctx)

    def grad(self, ctx, *grads):
        """The forward op's gradient: the backward kernel (the op, or its body, see
        _backward_fn), then the cell's rule; None for lengths, the flag, save and backend."""
        _check_saved(ctx)
        kept = ctx.saved_tensors
        saved = dict(zip(self.saved_names, kept))
        hs = saved["hs"]
        args = [_dense(grads[0], hs[1:])]
        for g, k in zip(grads[1:], self.state_slots):
            args.append(_dense(g, kept[k][0]))
        args += [kept[k] for k in self.backward_saved]
        args += [ctx.flag, ctx.backend] if self.cell.flag else [ctx.backend]
        out = self.rule(ctx, saved, *_backward_fn(ctx, self.backward_op, self.backward)(*args))
        if self.optional:  # a missing bias gets no gradient
            out = [g if p else None for g, p in zip(out, ctx.present)]
        return (*out, *self.no_grads)


def _hh(ctx, saved):
    """The rows of a ragged batch that count (_grads.running) and hs."""
    return _grads.running(ctx, saved["lengths"], saved["hs"]), saved["hs"]


def _rnn_grads(ctx, saved, dA, dh0):
    rows, hs = _hh(ctx, saved)
    return dA, dh0, _grads.dW_hh(dA, hs, rows)


def _lstm_grads(ctx, saved, dA, dh0, dc0):
    rows, hs = _hh(ctx, saved)
    return dA, dh0, dc0, _grads.dW_hh(dA, hs, rows)


def _lstmp_grads(ctx, saved, dA, dh0, dc0, du):
    rows, hs = _hh(ctx, saved)
    T, B, R = du.shape
    dw_hr = _grads.gram(du.reshape(T * B, R), saved["rs"].reshape(T * B, -1), rows)  # Σ du_tᵀ r_t
    return dA, dh0, dc0, _grads.dW_hh(dA, hs, rows), dw_hr


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


def _gru_grads(ctx, saved, dGx, dA_n, dh0):
    rows, hs = _hh(ctx, saved)
    return dGx, dh0, *_gru_hh_grads(dGx, dA_n, hs, rows)


rnn = CellOps(cells.RNN, _rnn_grads)
lstm = CellOps(cells.LSTM, _lstm_grads)
lstmp = CellOps(cells.LSTMP, _lstmp_grads)  # the LSTM with a projection
gru = CellOps(cells.GRU, _gru_grads)
rnn_forward, rnn_backward = rnn.op, rnn.backward_op
lstm_forward, lstm_backward = lstm.op, lstm.backward_op
lstmp_forward, lstmp_backward = lstmp.op, lstmp.backward_op
gru_forward, gru_backward = gru.op, gru.backward_op
