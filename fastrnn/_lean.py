"""One no-grad step of a cell on the native kernels with as little Python around it as possible.

A cell step at B = 1 is a 2–7 µs kernel; through the general path (module plumbing, the
functional API's checks, six output buffers, the b_ih + b_hh sum, cffi) the call cost 30–40 µs,
slower than torch.nn's cell. Here, when nothing needs the general path — no gradients, CPU, a
2-D float32/float64 input, weights and states of the shapes torch.nn checks, the native backend
usable and chosen — a step allocates its two outputs and one scratch tensor and makes one
foreign call; the summed bias is kept until a parameter changes (its version counter moves).
Anything else returns None and the caller takes the general path, errors included.
"""
import torch

from . import _checks, dispatch

_DTYPES = {torch.float32: ("f32", 4), torch.float64: ("f64", 8)}
_STEMS = {"LSTMCell": "lstm", "GRUCell": "gru", "RNNCell": None}


def step(cell, x, hx):
    """cell(x, hx) for x [B,I] without gradients, or None when the general path must run."""
    if (torch.is_grad_enabled() or cell.backend not in ("auto", "native") or x.dim() != 2
            or x.device.type != "cpu" or x.dtype not in _DTYPES or not x.is_contiguous()
            or torch.jit.is_tracing() or torch.compiler.is_compiling()
            or torch.is_autocast_enabled("cpu") or dispatch.why_not("native") is not None):
        return None
    B, I = x.shape
    H, lstm = cell.hidden_size, type(cell).__name__ == "LSTMCell"
    params = cell._parameters  # (nn.Module's attribute lookup costs 0.5 µs a name)
    w_ih, w_hh, b_ih, b_hh = (params["weight_ih"], params["weight_hh"], params.get("bias_ih"),
                              params.get("bias_hh"))
    if I != cell.input_size or B == 0 or w_ih.dtype != x.dtype or not (
            w_ih.is_contiguous() and w_hh.is_contiguous()):
        return None
    h0, c0 = (hx if lstm else (hx, None)) if hx is not None else (None, None)
    if w_hh.dtype != x.dtype:
        return None
    for s in (h0, c0):
        if s is not None and (s.shape != (B, H) or s.dtype != x.dtype or s.device != x.device
                              or not s.is_contiguous()):
            return None
    h0 = x.new_zeros(B, H) if h0 is None else h0
    c0 = x.new_zeros(B, H) if lstm and c0 is None else c0
    from ._native.cpu import library
    name = _STEMS[type(cell).__name__] or f"rnn_{cell.nonlinearity}"
    sfx, size = _DTYPES[x.dtype]
    fn = library.bound(f"{name}_forward_x_infer", sfx)
    G = w_ih.shape[0]
    n = _checks.full_lengths(1, B, x.device)
    h_n = x.new_empty(B, H)
    p = [h_n.data_ptr()]  # y [1,B,H] is h_n itself: the step writes both with the same values
    library.lib.fastrnn_set_num_threads(torch.get_num_threads())
    if lstm:
        c_n, scratch = x.new_empty(B, H), x.new_empty(B * (G + 4 * H))  # gates [1,B,4H], cs, hs
        s = scratch.data_ptr()
        rc = fn(1, B, I, H, x.data_ptr(), w_ih.data_ptr(), _bias(cell, b_ih, b_hh),
                h0.data_ptr(), c0.data_ptr(), w_hh.data_ptr(), n.data_ptr(), p[0], p[0],
                c_n.data_ptr(), s,
                s + B * G * size, s + (B * G + 2 * B * H) * size)
        out = (h_n, c_n)
    elif name == "gru":
        scratch = x.new_empty(B * (G + 3 * H))  # gates [1,B,3H], a_n [1,B,H], hs [2,B,H]
        s = scratch.data_ptr()
        rc = fn(1, B, I, H, x.data_ptr(), w_ih.data_ptr(), _ptr(b_ih), h0.data_ptr(),
                w_hh.data_ptr(), _gru_b_hh(cell, b_hh).data_ptr(), n.data_ptr(), p[0], p[0], s,
                s + B * G * size, s + (B * G + B * H) * size)
        out = h_n
    else:
        scratch = x.new_empty(2 * B * H)  # hs [2,B,H]
        rc = fn(1, B, I, H, x.data_ptr(), w_ih.data_ptr(), _bias(cell, b_ih, b_hh),
                h0.data_ptr(), w_hh.data_ptr(), n.data_ptr(), p[0], p[0], scratch.data_ptr())
        out = h_n
    if rc != 0:
        return None  # the general path raises the error with its message
    cell.__dict__["last_backend"] = "native"
    return out


def _ptr(t):
    return 0 if t is None else t.data_ptr()


def _bias(cell, b_ih, b_hh):
    """Address of b_ih + b_hh (0 without bias), summed again only when a bias has changed."""
    if b_ih is None:
        return 0
    key = (b_ih.data_ptr(), b_ih._version, b_hh.data_ptr(), b_hh._version)
    kept = cell.__dict__.get("_lean_bias")
    if kept is None or kept[0] != key:
        with torch.no_grad():
            kept = cell.__dict__["_lean_bias"] = (key, (b_ih + b_hh).contiguous())
    return kept[1].data_ptr()


def _gru_b_hh(cell, b_hh):
    """b_hh, or zeros for a cell without bias (the GRU kernel always reads it)."""
    if b_hh is not None:
        return b_hh
    w_hh = cell._parameters["weight_hh"]
    kept = cell.__dict__.get("_lean_zeros")
    if kept is None or kept.dtype != w_hh.dtype:
        kept = cell.__dict__["_lean_zeros"] = w_hh.new_zeros(w_hh.shape[0])
    return kept
