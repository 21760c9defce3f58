"""Calls — a cell's step, a module's forward on a sequence (one direction, or one step) without
gradients — on the native kernels with as little Python around it as possible.

A step at B = 1 is a 2–7 µs kernel; through the general path (module plumbing, the functional
API's checks, six output buffers, cffi) a cell call cost 30–40 µs, slower than torch.nn's cell.
Here, when nothing needs the general path — no gradients (but for a cell's step, which has
its own autograd node, fastrnn._step_grad), CPU, contiguous float32/float64 input, states
of the shapes torch.nn checks, weights of the shapes the kernel reads, the native backend usable
and chosen, no projection, no dropout in training — a call allocates its outputs in their final
shapes and makes one foreign call a layer and direction, which writes its rows of h_n (c_n) in
place; the kernel's scratch is the calling thread's own buffer, kept between calls, and missing
initial states are NULL, which the kernels read as zeros (multiplying nothing at step 0).
Anything else returns None and the caller takes the general path, errors included. A module
call is tried before the module's own plumbing (torch.nn's argument checks, initial-state
zeros, per-layer states stacked): an LSTM's no-grad call at T = 1, B = 1, H = 64 went from
41 to 18 µs (Zen 4), torch.nn's taking 93.

A module's forward without gradients takes bfloat16 too — a bfloat16 module, or LSTM and RNN
under autocast to bfloat16 — on the float32 kernels with bfloat16 products (as
fastrnn.functional._via_float32 does). A bfloat16 module's call hands the kernel everything in
bfloat16 (<cell>_forward_x_infer_bf16: the weights packed for the bfloat16 products as they
lie, x, biases and states widened and the results rounded inside the call), so no torch op runs
around it: the widening of x and the rounding of y as torch ops had cost ~0.3 ms of a 5 ms LSTM
call at T = 100, B = 16, H = 256 (Zen 4), each waking torch's threads after the kernel's. Under
autocast the float32 results go to kept buffers and are rounded to bfloat16 after the call.
"""
import torch

from . import _buffers, _checks, _step_grad, dispatch
from ._native_calls import CELLS, DTYPES, FORWARD_X, kernel, library, ptr
from .routes import WIDE

_STEMS = {"LSTMCell": "lstm", "GRUCell": "gru", "RNNCell": None}


def _same(t, shape, x):
    return (t.shape == shape and t.dtype == x.dtype and t.device == x.device
            and t.is_contiguous())


def step(cell, x, hx, grad):
    """cell(x, hx) for x [B,I] on the route fastrnn.routes chose, direct or (`grad`) step: one
    autograd node (fastrnn._step_grad.Step); None where the tensors are not what the kernel
    reads (the general path then runs, errors included)."""
    B, I = x.shape
    H, name = cell.hidden_size, _STEMS[type(cell).__name__] or "rnn_" + cell.nonlinearity
    params = cell._parameters  # (nn.Module's attribute lookup costs 0.5 µs a name)
    w = (params["weight_ih"], params["weight_hh"], params.get("bias_ih"), params.get("bias_hh"))
    h0, c0 = (hx if name == "lstm" else (hx, None)) if hx is not None else (None, None)
    if (I != cell.input_size or B == 0 or (h0 is not None and not _same(h0, (B, H), x))
            or (c0 is not None and not _same(c0, (B, H), x))):
        return None
    if grad:
        if not all(t is None or _same(t, t.shape, x) for t in w):
            return None
        cell.__dict__["last_backend"] = "native"
        return _step_grad.Step.apply(name, x, h0, c0, *w)
    if not _weights_fit(*w, CELLS[name].gates * H, I, H, x.dtype):
        return None
    h = x.new_empty(B, H)  # (one step writes y and h_n alike: one buffer)
    hp = h.data_ptr()
    c = cp = 0
    if name == "lstm":
        c = x.new_empty(B, H)
        cp = c.data_ptr()
    if _call(name, 1, B, I, H, x.dtype, x.data_ptr(), *w, 0 if h0 is None else h0.data_ptr(),
             0 if c0 is None else c0.data_ptr(), hp, hp, cp) != 0:
        return None  # on an error the general path raises it
    cell.__dict__["last_backend"] = "native"
    return (h, c) if name == "lstm" else h


_STEMS_OF_MODES = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu"}


def forward(module, input, hx, low):
    """module(input, hx) for an RNN, LSTM or GRU on the direct route (fastrnn.routes), unpacked:
    (output, h_n) as torch.nn returns them, or None where the tensors are not what the kernels
    read (the general path then runs, errors included). `low`: the dtype torch.nn returns under
    autocast (fastrnn.modules._autocast_dtype), or None. Bidirectional only for one step, which
    reads the same in both directions. A bfloat16 input (and module) runs widened (see the
    module docstring), and so does a float32 one with `low` = bfloat16; the results come in that
    dtype.

    The outputs are allocated in their final shapes and each layer-direction's kernel writes
    its h_n (c_n) straight into its row of them; missing initial states are NULL; a stack's
    inner layers write into this thread's kept buffers (at one step, into their h_n rows)."""
    batched = input.dim() == 3
    if batched:
        x = input.transpose(0, 1) if module.batch_first else input
    else:
        x = input.unsqueeze(1)
    wide = x.dtype in WIDE
    h0, c0 = (hx if module.mode == "LSTM" else (hx, None)) if hx is not None else (None, None)
    if low is None and not wide:
        return _stack(module, input, x, h0, c0, batched, False, None)
    with dispatch.bf16_products():
        return _stack(module, input, x, h0, c0, batched, wide, low or x.dtype)


def _stack(module, input, x, h0, c0, batched, wide, low):
    """forward() once decided: x [T,B,I] the input time-major; wide, a bfloat16 module: every
    argument and result in bfloat16 (<cell>_forward_x_infer_bf16); low (else), the float32
    results are rounded to it."""
    T, B, I = x.shape
    L, D, H = module.num_layers, 2 if module.bidirectional else 1, module.hidden_size
    name = _STEMS_OF_MODES[module.mode]
    state = (L * D, B, H) if batched else (L * D, H)
    if (B == 0 or (T > 1 and D == 2) or (h0 is not None and not _same(h0, state, x))
            or (c0 is not None and not _same(c0, state, x))):
        return None
    lstm = name == "lstm"
    if lstm and (h0 is None) != (c0 is None):
        return None
    dtype = torch.float32 if low else x.dtype  # the kernel's (and its scratch's)
    io = x.dtype if wide else dtype  # of x, the weights, the states and the results
    rounded = low and not wide  # (float32 results in kept buffers, rounded to low at the end)
    y_shape = (*input.shape[:-1], D * H)  # (laid out as [T,B,D·H]: x is contiguous)
    y = _buffers.buffer("y", y_shape, dtype) if rounded else input.new_empty(y_shape)
    h_n = _buffers.buffer("h_n", state, dtype) if rounded else input.new_empty(state)
    c_n = ((_buffers.buffer("c_n", state, dtype) if rounded else input.new_empty(state)) if lstm
           else None)
    fw, n = module._flat_weights, 4 if module.bias else 2
    G, BH = CELLS[name].gates * H, B * H * io.itemsize
    h0p, c0p, hnp, cnp = ptr(h0), ptr(c0), h_n.data_ptr(), ptr(c_n)
    xin = x
    for layer in range(L):
        last = layer + 1 == L
        for d in range(D):
            k = layer * D + d
            w = fw[k * n:k * n + n]
            w_ih, w_hh = w[0], w[1]
            b_ih, b_hh = (w[2], w[3]) if n == 4 else (None, None)
            if not _weights_fit(w_ih, w_hh, b_ih, b_hh, G, xin.shape[-1], H, io):
                return None
            hk = hnp + k * BH
            if T == 1 and not (last and D == 1):  # y is h_n's row: the next layer reads it
                yp = hk
            elif last:
                yp = y.data_ptr()
            else:
                yp = _buffers.buffer(f"y{layer % 2}", (T, B, H), io).data_ptr()
            if _call(name, T, B, xin.shape[-1], H, dtype, xin.data_ptr(), w_ih, w_hh, b_ih,
                     b_hh, h0p and h0p + k * BH, c0p and c0p + k * BH, yp, hk,
                     cnp and cnp + k * BH, bf16=wide) != 0:
                return None  # on an error the general path raises it
        if D == 2:  # one step: the layer's output is its two h_n rows side by side
            rows = h_n.view(L * D, B, H)[2 * layer:2 * layer + 2]
            xin = torch.cat(tuple(rows), 1, out=y.view(B, 2 * H) if last else None)
        elif not last:
            xin = h_n.view(L, B, H)[layer] if T == 1 else _buffers.buffer(
                f"y{layer % 2}", (T, B, H), io)
    module.__dict__["last_backend"] = "native"
    if rounded:
        y, h_n, c_n = y.to(low), h_n.to(low), c_n if c_n is None else c_n.to(low)
    return y, ((h_n, c_n) if lstm else h_n)


def _weights_fit(w_ih, w_hh, b_ih, b_hh, G, I, H, dtype):
    """Whether the weights are what the kernel reads: w_ih [G,I], w_hh [G,H], b_ih, b_hh [G] or
    both None, of dtype and contiguous (whatever was assigned to them, through .data too)."""
    return (w_ih.shape == (G, I) and w_hh.shape == (G, H) and w_ih.dtype == dtype
            and w_hh.dtype == dtype and w_ih.is_contiguous() and w_hh.is_contiguous()
            and (b_ih is None and b_hh is None or (
                b_ih.shape == (G,) and b_hh.shape == (G,) and b_ih.dtype == dtype
                and b_hh.dtype == dtype and b_ih.is_contiguous() and b_hh.is_contiguous())))


def _call(name, T, B, I, H, dtype, xp, w_ih, w_hh, b_ih, b_hh, h0p, c0p, yp, hnp, cnp,
          bf16=False):
    """T steps of cell `name` (lstm, gru, rnn_tanh, rnn_relu) on x [T,B,I] at address xp from
    h0 (c0) [B,H] at h0p (c0p; 0: zeros) into y [T,B,H] at yp, h_n (c_n) at hnp (cnp): the
    kernel's return code. At one step y may be h_n (yp = hnp). bf16: every argument and result
    is bfloat16 (dtype float32: the kernel's and its scratch's). The kernel runs on as many
    threads as torch's (a per-thread setting of the library)."""
    library().lib.fastrnn_set_num_threads(torch.get_num_threads())
    fn, G, size = kernel(name, dtype, bf16), w_hh.shape[0], DTYPES[dtype][1]
    lengths = _lengths.get((T, B))  # (a local: alive through the call whatever _lengths drops)
    if lengths is None:
        lengths = _full_lengths(T, B)
    n = lengths.data_ptr()
    bi = 0 if b_ih is None else b_ih.data_ptr()  # (NULL: no bias; ptr() inline, 0.1 µs a call)
    bh = 0 if b_hh is None else b_hh.data_ptr()
    call, _, b_hh_read = FORWARD_X[name]
    if b_hh_read and not bh:
        bh = _buffers.zeros(G, dtype)
    return call(fn, _buffers.scratch, size, T, B, I, H, G, xp, w_ih.data_ptr(), bi, bh, h0p, c0p,
                w_hh.data_ptr(), n, yp, hnp, cnp)  # (its saved buffers in this thread's scratch)


_lengths = {}  # (T, B): lengths [B], every row T steps (a dict: lru_cache's key costs 0.3 µs)


def _full_lengths(T, B):
    if len(_lengths) >= 256:
        _lengths.clear()
    n = _lengths[T, B] = _checks.full_lengths_kept(T, B, torch.device("cpu"))
    return n  # (no trace here: the route is direct)

