"""Calls — a cell's step, a module's layers on a sequence (one direction, or one step) without
gradients — on the native kernels with as little Python around it as possible.

A step at B = 1 is a 2–7 µs kernel; through the general path (module plumbing, the functional
API's checks, six output buffers, cffi) a cell call cost 30–40 µs, slower than torch.nn's cell.
Here, when nothing needs the general path — no gradients (but for a cell's step, which has
its own lean autograd node, fastrnn._lean_grad), CPU, contiguous float32/float64 input, states
of the shapes torch.nn checks, the native backend usable and chosen, no projection, no dropout
in training — each layer allocates its outputs and makes one foreign call; the kernel's scratch
is the calling thread's own buffer, kept between calls, and missing initial states are NULL,
which the kernels read as zeros (multiplying nothing at step 0). Anything else returns None and
the caller takes the general path, errors included.

A module's layers without gradients take bfloat16 too — a bfloat16 module, or LSTM and RNN
under autocast to bfloat16 — on the float32 kernels with bfloat16 products (as
fastrnn.functional._widen does), the float32 copies of x and the weights and the float32 outputs
in buffers kept by the calling thread rather than fresh ones (T = 100, B = 16, H = 256, Zen 4,
one-process A/B against the general path: bfloat16 GRU 5.18 → 4.91 ms, RNN 2.25 → 2.01, RNN
under autocast 1.85 → 1.70; LSTM within the noise, 6.3–6.8 either way).
"""
import threading

import torch

from . import _checks, _lean_grad, dispatch

DTYPES = {torch.float32: ("f32", 4), torch.float64: ("f64", 8)}
WIDE = (torch.bfloat16,)  # run on the float32 kernels, widened (layers)
_STEMS = {"LSTMCell": "lstm", "GRUCell": "gru", "RNNCell": None}
_library = None  # the native library, bound on first use (importing it costs 0.7 µs a call)


def library():
    """The native CPU library (fastrnn._native.Library)."""
    global _library
    if _library is None:
        from ._native.cpu import library as lib
        _library = lib
    return _library


def _kernel(name, dtype):
    """The one-step forward of cell `name` (lstm, gru, rnn_tanh, rnn_relu) for dtype."""
    return library().bound(name + "_forward_x_infer", DTYPES[dtype][0])


def _usable(backend, x, dtypes=DTYPES, autocast=False):
    """Whether nothing about this call needs the general path (see the module docstring), but
    perhaps gradients: x of one of `dtypes`, and autocast off unless `autocast`."""
    # (is_compiling before the C-level tracing flag: Dynamo answers the first, not the second)
    return not (backend not in ("auto", "native") or not x.is_cpu
                or x.dtype not in dtypes or not x.is_contiguous()
                or torch.compiler.is_compiling() or torch._C._is_tracing()
                or (torch.is_autocast_enabled("cpu") and not autocast)
                or dispatch.why_not("native") is not None)


def _same(t, shape, x):
    return (t.shape == shape and t.dtype == x.dtype and t.device == x.device
            and t.is_contiguous())


def step(cell, x, hx):
    """cell(x, hx) for x [B,I], or None when the general path must run. With gradients to
    compute, one autograd node (fastrnn._lean_grad.Step)."""
    if x.dim() != 2 or not _usable(cell.backend, x):
        return None
    grad = torch.is_grad_enabled()
    B, I = x.shape
    H, name = cell.hidden_size, _STEMS[type(cell).__name__] or "rnn_" + cell.nonlinearity
    params = cell._parameters  # (nn.Module's attribute lookup costs 0.5 µs a name)
    w = (params["weight_ih"], params["weight_hh"], params.get("bias_ih"), params.get("bias_hh"))
    h0, c0 = (hx if name == "lstm" else (hx, None)) if hx is not None else (None, None)
    if (I != cell.input_size or B == 0 or (h0 is not None and not _same(h0, (B, H), x))
            or (c0 is not None and not _same(c0, (B, H), x))):
        return None
    if grad and any(t is not None and t.requires_grad for t in (x, *w, h0, c0)):
        if not all(t is None or _same(t, t.shape, x) for t in w):
            return None
        cell.__dict__["last_backend"] = "native"
        return _lean_grad.Step.apply(name, x, h0, c0, *w)
    out = _run(name, 1, x, h0, c0, *w)
    if out is None:
        return None
    cell.__dict__["last_backend"] = "native"
    return out[1:] if name == "lstm" else out[1]


def layers(module, x, h0, c0, low=None):
    """module's layers on x [T,B,I], h0 (c0) [L·D,B,H], without gradients: (y [T,B,D·H], h_n
    (, c_n)), or None when the general path must run. Bidirectional only for one step, which
    reads the same in both directions. A bfloat16 x (and module) runs widened (see the module
    docstring), and so does a float32 one with `low` = bfloat16, the dtype the module returns
    under autocast; the results come in that dtype."""
    wide = x.dtype in WIDE
    if (x.dim() != 3 or torch.is_grad_enabled() or getattr(module, "proj_size", 0)
            or (module.dropout and module.training)
            or not _usable(module.backend, x, WIDE if wide else DTYPES,
                           autocast=not wide and low == torch.bfloat16)):
        return None
    low = low or x.dtype
    if wide or low != x.dtype:
        with dispatch.bf16_products():
            return _layers(module, x, h0, c0, wide, low)
    return _layers(module, x, h0, c0, False, None)


def _layers(module, x, h0, c0, wide, low):
    """layers() once decided: wide, x and the weights are widened to float32 first; low, the
    float32 results are rounded to it (and y kept in this thread's buffers until then)."""
    T, B = x.shape[:2]
    D, H = 2 if module.bidirectional else 1, module.hidden_size
    lstm = module.mode == "LSTM"
    name = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu"}[
        module.mode]
    shape = (module.num_layers * D, B, H)
    if (B == 0 or (T > 1 and D == 2) or not _same(h0, shape, x)
            or (lstm and not _same(c0, shape, x))):
        return None
    xin, h_n, c_n = x if T > 1 else x[0], [], []  # (one step: [B,·] throughout)
    if wide:
        xin = _widened(xin, "x")
    for layer in range(module.num_layers):
        outs = []
        for d in range(D):
            k = layer * D + d
            w = module._weights(k)
            if w[0].dtype != x.dtype or xin.shape[-1] != w[0].shape[1]:
                return None
            h, c = h0[k], c0[k] if lstm else None
            if wide:
                w = [_widened(t, f"w{i}") for i, t in enumerate(w[:4])]
                h, c = h.float(), c if c is None else c.float()
            y = _buffer(f"y{layer % 2}", (T, B, H)) if low and T > 1 and D == 1 else None
            out = _run(name, T, xin, h, c, *w[:4], y=y)
            if out is None:
                return None
            outs.append(out[0])
            h_n.append(out[1])
            c_n.append(out[2])
        xin = outs[0] if D == 1 else torch.cat(outs, 1)
        if wide and layer + 1 < module.num_layers:  # a bfloat16 module's layers pass bfloat16 on
            xin = _widened(xin.to(x.dtype), "x")
    module.__dict__["last_backend"] = "native"
    h_n = torch.stack(h_n)
    y, state = (xin if T > 1 else xin[None]), ((h_n, torch.stack(c_n)) if lstm else h_n)
    if low:
        y, state = y.to(low), tuple(s.to(low) for s in state) if lstm else state.to(low)
    return y, state


def _run(name, T, x, h0, c0, w_ih, w_hh, b_ih, b_hh, y=None):
    """T steps of cell `name` (lstm, gru, rnn_tanh, rnn_relu) on x ([T,B,I], or [B,I] for one
    step; contiguous) from h0 (c0) [B,H] (None: zeros): (y, h_n, c_n or None), y [T,B,H] (into
    `y` if given) — for one step h_n itself. None when the kernel refuses."""
    B, I = x.shape[-2:]
    H = w_hh.shape[1]
    if w_ih.dtype != x.dtype or w_hh.dtype != x.dtype or not (
            w_ih.is_contiguous() and w_hh.is_contiguous()):
        return None
    G, size = w_ih.shape[0], DTYPES[x.dtype][1]
    fn = _kernel(name, x.dtype)
    n = _checks.full_lengths_kept(T, B, x.device)  # (no trace here: _usable said so)
    h0 = ptr(h0)  # (NULL: zeros, and step 0 multiplies nothing)
    h_n = x.new_empty(B, H)
    if y is None:  # (one step writes y and h_n alike: one buffer)
        y = h_n if T == 1 else x.new_empty(T, B, H)
    yp, c_n = y.data_ptr(), None
    _library.lib.fastrnn_set_num_threads(torch.get_num_threads())
    if name == "lstm":
        c0 = ptr(c0)
        c_n = x.new_empty(B, H)
        s = _scratch(B * (G + 4 * H) * size)  # gates [1,B,4H], cs [2,B,H], hs [2,B,H]
        rc = fn(T, B, I, H, x.data_ptr(), w_ih.data_ptr(), ptr(b_ih), ptr(b_hh), h0, c0,
                w_hh.data_ptr(), n.data_ptr(), yp, h_n.data_ptr(), c_n.data_ptr(), s,
                s + B * G * size, s + (B * G + 2 * B * H) * size)
    elif name == "gru":
        s = _scratch(B * (G + 3 * H) * size)  # gates [1,B,3H], a_n [1,B,H], hs [2,B,H]
        b = ptr(b_hh) or zeros(G, x.dtype)  # the kernel always reads b_hh
        rc = fn(T, B, I, H, x.data_ptr(), w_ih.data_ptr(), ptr(b_ih), h0, w_hh.data_ptr(), b,
                n.data_ptr(), yp, h_n.data_ptr(), s, s + B * G * size,
                s + (B * G + B * H) * size)
    else:
        s = _scratch(2 * B * H * size)  # hs [2,B,H]
        rc = fn(T, B, I, H, x.data_ptr(), w_ih.data_ptr(), ptr(b_ih), ptr(b_hh), h0,
                w_hh.data_ptr(), n.data_ptr(), yp, h_n.data_ptr(), s)
    return (y, h_n, c_n) if rc == 0 else None  # on an error the general path raises it


def ptr(t):
    return 0 if t is None else t.data_ptr()


_kept = threading.local()  # per thread: the kernels' scratch; zeros (only ever read)


def _scratch(nbytes):
    """Address of this thread's scratch buffer of at least nbytes (the kernel's gates and state
    ring, read by no one after the call), grown as needed: two threads never share one."""
    buf = getattr(_kept, "scratch", None)
    if buf is None or buf.numel() < nbytes:
        buf = _kept.scratch = torch.empty(max(nbytes, 1 << 16), dtype=torch.uint8)
    return buf.data_ptr()


KEEP_MAX = 1 << 25  # bytes: a larger buffer is allocated per call, its page faults small beside
# the work it holds (and a thread keeps no more than a few of these)


def _buffer(slot, shape):
    """A float32 tensor of `shape`: this thread's buffer `slot`, reused between calls (so written
    without page faults), or a new one above KEEP_MAX bytes. What it holds is the caller's until
    its next call: never hand it out."""
    n = 1
    for d in shape:
        n *= d
    if n * 4 > KEEP_MAX:
        return torch.empty(shape)
    bufs = _kept.__dict__.setdefault("buffers", {})
    buf = bufs.get(slot)
    if buf is None or buf.numel() < n:
        buf = bufs[slot] = torch.empty(n)
    return buf[:n].view(shape)


def _widened(t, slot):
    """t (bfloat16; None passes) as float32, in this thread's buffer `slot` (see _buffer)."""
    return None if t is None else _buffer(slot, t.shape).copy_(t)


def zeros(n, dtype):
    """Address of at least n zeros of dtype, which the kernels only read (a GRU's missing b_hh,
    a zero ∂L/∂h_n)."""
    buf = getattr(_kept, "zeros", None)
    nbytes = n * DTYPES[dtype][1]
    if buf is None or buf.numel() < nbytes:
        buf = _kept.zeros = torch.zeros(max(nbytes, 1 << 14), dtype=torch.uint8)
    return buf.data_ptr()
