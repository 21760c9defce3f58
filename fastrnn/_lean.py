"""One no-grad time step — of a cell, or of a module's layers on a one-step sequence — on the
native kernels with as little Python around it as possible.

A step at B = 1 is a 2–7 µs kernel; through the general path (module plumbing, the functional
API's checks, six output buffers, the b_ih + b_hh sum, cffi) a cell call cost 30–40 µs, slower
than torch.nn's cell. Here, when nothing needs the general path — no gradients, CPU, contiguous
float32/float64 input, states of the shapes torch.nn checks, the native backend usable and
chosen, no projection, no dropout in training — each layer allocates its two outputs and one
scratch tensor and makes one foreign call; the summed bias is kept until a bias changes (its
version counter moves). Anything else returns None and the caller takes the general path,
errors included.
"""
import torch

from . import _checks, dispatch

_DTYPES = {torch.float32: ("f32", 4), torch.float64: ("f64", 8)}
_STEMS = {"LSTMCell": "lstm", "GRUCell": "gru", "RNNCell": None}


def _usable(backend, x):
    """Whether nothing about this call needs the general path (see the module docstring)."""
    return not (torch.is_grad_enabled() or backend not in ("auto", "native")
                or x.device.type != "cpu" or x.dtype not in _DTYPES or not x.is_contiguous()
                or torch.jit.is_tracing() or torch.compiler.is_compiling()
                or torch.is_autocast_enabled("cpu") or dispatch.why_not("native") is not None)


def _same(t, shape, x):
    return (t.shape == shape and t.dtype == x.dtype and t.device == x.device
            and t.is_contiguous())


def step(cell, x, hx):
    """cell(x, hx) for x [B,I] without gradients, or None when the general path must run."""
    if x.dim() != 2 or not _usable(cell.backend, x):
        return None
    B, I = x.shape
    H, lstm = cell.hidden_size, type(cell).__name__ == "LSTMCell"
    params = cell._parameters  # (nn.Module's attribute lookup costs 0.5 µs a name)
    w = (params["weight_ih"], params["weight_hh"], params.get("bias_ih"), params.get("bias_hh"))
    h0, c0 = (hx if lstm else (hx, None)) if hx is not None else (None, None)
    if I != cell.input_size or B == 0 or any(
            s is not None and not _same(s, (B, H), x) for s in (h0, c0)):
        return None
    name = _STEMS[type(cell).__name__] or f"rnn_{cell.nonlinearity}"
    out = _run(name, x, h0, c0, *w, cell.__dict__, "_lean_bias")
    if out is not None:
        cell.__dict__["last_backend"] = "native"
    return out


def layers(module, x, h0, c0):
    """module's layers for one time step, x [1,B,I], h0 (c0) [L·D,B,H], without gradients:
    (y [1,B,D·H], h_n (, c_n)), or None when the general path must run. A one-step sequence
    reads the same in both directions."""
    if (x.dim() != 3 or x.shape[0] != 1 or not _usable(module.backend, x)
            or getattr(module, "proj_size", 0) or (module.dropout and module.training)):
        return None
    D, H, B = 2 if module.bidirectional else 1, module.hidden_size, x.shape[1]
    lstm = module.mode == "LSTM"
    name = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu"}[
        module.mode]
    shape = (module.num_layers * D, B, H)
    if B == 0 or not _same(h0, shape, x) or (lstm and not _same(c0, shape, x)):
        return None
    xin, h_n, c_n = x[0], [], []
    for layer in range(module.num_layers):
        outs = []
        for d in range(D):
            k = layer * D + d
            w = module._weights(k)
            if w[0].dtype != x.dtype or xin.shape[1] != w[0].shape[1]:
                return None
            out = _run(name, xin, h0[k], c0[k] if lstm else None, *w[:4], module.__dict__,
                       f"_lean_bias{k}")
            if out is None:
                return None
            h, c = out if lstm else (out, None)
            outs.append(h)
            h_n.append(h)
            c_n.append(c)
        xin = outs[0] if D == 1 else torch.cat(outs, 1)
    module.__dict__["last_backend"] = "native"
    h_n = torch.stack(h_n)
    return xin[None], ((h_n, torch.stack(c_n)) if lstm else h_n)


def _run(name, x, h0, c0, w_ih, w_hh, b_ih, b_hh, cache, slot):
    """One step of cell `name` (lstm, gru, rnn_tanh, rnn_relu) on x [B,I] from h0 (c0) [B,H]
    (None: zeros); the summed bias is kept in cache[slot]. None when the kernel refuses."""
    B, I = x.shape
    H = w_hh.shape[1]
    if w_ih.dtype != x.dtype or w_hh.dtype != x.dtype or not (
            w_ih.is_contiguous() and w_hh.is_contiguous()):
        return None
    lstm = name == "lstm"
    h0 = x.new_zeros(B, H) if h0 is None else h0
    c0 = x.new_zeros(B, H) if lstm and c0 is None else c0
    from ._native.cpu import library
    sfx, size = _DTYPES[x.dtype]
    fn = library.bound(f"{name}_forward_x_infer", sfx)
    G = w_ih.shape[0]
    n = _checks.full_lengths(1, B, x.device)
    h_n = x.new_empty(B, H)
    y = h_n.data_ptr()  # y [1,B,H] is h_n itself: the step writes both with the same values
    library.lib.fastrnn_set_num_threads(torch.get_num_threads())
    if lstm:
        c_n, scratch = x.new_empty(B, H), x.new_empty(B * (G + 4 * H))  # gates [1,B,4H], cs, hs
        s = scratch.data_ptr()
        rc = fn(1, B, I, H, x.data_ptr(), w_ih.data_ptr(), _bias(cache, slot, b_ih, b_hh),
                h0.data_ptr(), c0.data_ptr(), w_hh.data_ptr(), n.data_ptr(), y, y,
                c_n.data_ptr(), s, s + B * G * size, s + (B * G + 2 * B * H) * size)
        out = (h_n, c_n)
    elif name == "gru":
        scratch = x.new_empty(B * (G + 3 * H))  # gates [1,B,3H], a_n [1,B,H], hs [2,B,H]
        s = scratch.data_ptr()
        rc = fn(1, B, I, H, x.data_ptr(), w_ih.data_ptr(), _ptr(b_ih), h0.data_ptr(),
                w_hh.data_ptr(), _gru_b_hh(cache, b_hh, w_hh).data_ptr(), n.data_ptr(), y, y, s,
                s + B * G * size, s + (B * G + B * H) * size)
        out = h_n
    else:
        scratch = x.new_empty(2 * B * H)  # hs [2,B,H]
        rc = fn(1, B, I, H, x.data_ptr(), w_ih.data_ptr(), _bias(cache, slot, b_ih, b_hh),
                h0.data_ptr(), w_hh.data_ptr(), n.data_ptr(), y, y, scratch.data_ptr())
        out = h_n
    return out if rc == 0 else None  # on an error the general path raises it with its message


def _ptr(t):
    return 0 if t is None else t.data_ptr()


def _bias(cache, slot, b_ih, b_hh):
    """Address of b_ih + b_hh (0 without bias), kept in cache[slot] and summed again only when
    a bias has changed (its address or version counter moved)."""
    if b_ih is None:
        return 0
    key = (b_ih.data_ptr(), b_ih._version, b_hh.data_ptr(), b_hh._version)
    kept = cache.get(slot)
    if kept is None or kept[0] != key:
        with torch.no_grad():
            kept = cache[slot] = (key, (b_ih + b_hh).contiguous())
    return kept[1].data_ptr()


def _gru_b_hh(cache, b_hh, w_hh):
    """b_hh, or zeros for a GRU without bias (the kernel always reads it)."""
    if b_hh is not None:
        return b_hh
    kept = cache.get("_lean_zeros")
    if kept is None or kept.dtype != w_hh.dtype or kept.shape[0] != w_hh.shape[0]:
        kept = cache["_lean_zeros"] = w_hh.new_zeros(w_hh.shape[0])
    return kept
