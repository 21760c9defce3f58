"""The generated kernels of a declared cell (kernels/cpu/user_cell.h) on torch tensors: the steps
from G_x, and their BPTT. Shape legend: T steps, B rows, H units, G = gates·H, n states,
V vector rows."""
import torch

from .. import _buffers, _grads
from . import build


def _kernel(decl, t, which):
    _, lib = build.load(decl)
    build.native().lib.fastrnn_set_num_threads(torch.get_num_threads())
    return getattr(lib, f"fastrnn_user_{which}_{'f32' if t.dtype == torch.float32 else 'f64'}")


def _ptr(t):
    """A tensor's address (None: NULL; an int: an address already)."""
    return 0 if t is None else t if isinstance(t, int) else t.data_ptr()


def _scratch(decl, like, B, H):
    """The rows a pass leaves to the next, [B, scratch blocks, H]: read by no one after the
    call, so this thread's kept buffer (each fresh tensor costs µs of a B = 1 call)."""
    return _buffers.buffer("user_scratch", (B, max(decl.scratch, 1), H), like.dtype)


def _outputs(like, states, T, B, H, S):
    """y [T,B,H], h_n [B,H], hs [S,B,H] and cs [max(n−1,1),S,B,H], the other states' slot 0
    holding their initial values (states [B,H] each, n of them)."""
    y, h_n, hs = like.new_empty(T, B, H), like.new_empty(B, H), like.new_empty(S, B, H)
    cs = like.new_empty(max(len(states) - 1, 1), S, B, H)
    for k in range(1, len(states)):
        cs[k - 1, 0] = states[k]
    return y, h_n, hs, cs


def _finals(h_n, cs, n, T, S):
    """The n final states: h_n, then the others' slot of step T in cs (views)."""
    return [h_n] + [cs[k - 1, T % S] for k in range(1, n)]


def _bias(b, like, G):
    """b [G] contiguous, or the address of this thread's kept zeros (the kernels add b_hh: no
    branch a step); for _ptr."""
    return _buffers.zeros(G, like.dtype) if b is None else b.contiguous()


def _raise_for(rc):
    if rc:
        build.native().raise_for(rc)


def forward(decl, gx, states, w_hh, b_hh, v, lengths, save):
    """gx [T,B,G], states [B,H] each, w_hh [G,H] (None without W_hh), b_hh [G] or None, v [V,H]
    or None, lengths [B] -> (y [T,B,H], final states (views of cs but the first), (gh, hs, cs,
    sv): what the backward reads, all T steps' with `save`, else the last's; gh None without
    W_hh; sv [T,B,saved,H] the values the generated backward reads, empty without `save`)."""
    T, B, G = gx.shape
    H, n = states[0].shape[1], len(states)
    S = T + 1 if save else 2
    y, h_n, hs, cs = _outputs(gx, states, T, B, H, S)
    gx, h0 = gx.contiguous(), states[0].contiguous()
    scr = _scratch(decl, gx, B, H)  # (every tensor named: alive over the foreign call)
    sv = gx.new_empty(T, B, max(decl.saved, 1), H) if save else gx.new_empty(0)
    if not decl.recurrent:
        _raise_for(_kernel(decl, gx, "scan_forward")(
            T, B, H, S, gx.data_ptr(), h0.data_ptr(), _ptr(v), lengths.data_ptr(), y.data_ptr(),
            h_n.data_ptr(), hs.data_ptr(), cs.data_ptr(), scr.data_ptr(), sv.data_ptr()))
        return y, _finals(h_n, cs, n, T, S), (None, hs, cs, sv)
    gh = gx.new_empty(T if save and decl.keeps_products else 1, B, G)
    b_hh, w_hh = _bias(b_hh, gx, G), w_hh.contiguous()
    _raise_for(_kernel(decl, gx, "forward")(
        T, B, H, S, gx.data_ptr(), h0.data_ptr(), w_hh.data_ptr(), _ptr(b_hh), _ptr(v),
        lengths.data_ptr(), y.data_ptr(), h_n.data_ptr(), hs.data_ptr(), cs.data_ptr(),
        gh.data_ptr(), scr.data_ptr(), sv.data_ptr()))
    return y, _finals(h_n, cs, n, T, S), (gh, hs, cs, sv)


def forward_x(decl, x, states, w_ih, b_ih, w_hh, b_hh, v, lengths):
    """Inference from x [T,B,I], w_ih [G,I], b_ih [G] or None (G_x inside the loop, a chunk
    ahead), states [B,H] each or None (zeros) -> (y [T,B,H], final states). What no one reads
    after the call — the two-slot state rings, the step's product, the scratch rows — are this
    thread's kept buffers, and a missing b_hh its kept zeros (a B = 1 call is a few hundred µs:
    each fresh tensor costs µs)."""
    T, B, I = x.shape
    G, H = w_hh.shape
    n, dt = len(decl.states), x.dtype
    y, h_n = x.new_empty(T, B, H), x.new_empty(B, H)
    hs = _buffers.buffer("user_hs", (2, B, H), dt)
    cs = _buffers.buffer("user_cs", (max(n - 1, 1), 2, B, H), dt)
    if states is None:
        cs[:, 0] = 0
        h0 = _buffers.zeros(B * H, dt)
    else:
        for k in range(1, n):
            cs[k - 1, 0] = states[k]
        h0 = states[0].contiguous()
    gh, scr = _buffers.buffer("user_gh", (1, B, G), dt), _scratch(decl, x, B, H)
    x, w_ih, w_hh, b_hh = x.contiguous(), w_ih.contiguous(), w_hh.contiguous(), _bias(b_hh, x, G)
    b_ih = None if b_ih is None else b_ih.contiguous()
    _raise_for(_kernel(decl, x, "forward_x")(
        T, B, I, H, x.data_ptr(), w_ih.data_ptr(), _ptr(b_ih), _ptr(h0), w_hh.data_ptr(),
        _ptr(b_hh), _ptr(v), lengths.data_ptr(),
        y.data_ptr(), h_n.data_ptr(), hs.data_ptr(), cs.data_ptr(), gh.data_ptr(),
        scr.data_ptr()))
    return y, [h_n] + [cs[k - 1, T % 2].clone() for k in range(1, n)]


def backward(decl, dy, dfinals, gx, gh, b_hh, hs, cs, sv, v, w_hh, lengths, kept=False):
    """The BPTT of a forward with save: dy [T,B,H] or None, dfinals [B,H] each or None, the
    forward's gx, gh, hs, cs, sv -> (∂L/∂G_x, ∂L/∂(W_hh h_{t−1}) [T,B,G], ∂L/∂h0 [B,H], ∂L/∂(other
    initial states) [max(n−1,1),B,H], each row's share of ∂L/∂v [B,max(V,1),H] in float64);
    without W_hh (w_hh, gh None) ∂L/∂(W_hh h_{t−1}) is None. With `kept` the two [T,B,G] results
    are this thread's kept buffers, valid until its next backward (fresh, they fault in their
    pages on every step: 3.2 MB each at B = 16, H = 128, where that cost a training step of the
    LSTM written as a cell 0.4 ms of 5.5)."""
    new = (lambda slot, *shape: _buffers.buffer(slot, shape, gx.dtype)) if kept else \
        (lambda slot, *shape: gx.new_empty(*shape))
    T, B, G = gx.shape
    H, n = hs.shape[2], len(dfinals)
    dy = gx.new_zeros(T, B, H) if dy is None else dy.contiguous()
    dfinals = [gx.new_zeros(B, H) if d is None else d for d in dfinals]
    dc = torch.stack(dfinals[1:]) if n > 1 else gx.new_zeros(1, B, H)
    dgx, dh0 = new("user_dgx", T, B, G), gx.new_empty(B, H)
    dv = gx.new_zeros(B, max(decl.vector_rows, 1), H, dtype=torch.float64)  # (summed in double)
    scr, dh_n = _scratch(decl, gx, B, H), dfinals[0].contiguous()
    if not decl.recurrent:
        _raise_for(_kernel(decl, gx, "scan_backward")(
            T, B, H, dy.data_ptr(), dh_n.data_ptr(), dc.data_ptr(), gx.data_ptr(),
            hs.data_ptr(), cs.data_ptr(), _ptr(v), lengths.data_ptr(), dgx.data_ptr(),
            dh0.data_ptr(), dv.data_ptr(), scr.data_ptr(), sv.data_ptr()))
        return dgx, None, dh0, dc, dv
    dgh = dgx if decl.shared_dgx else new("user_dgh", T, B, G)
    b_hh, w_hh = _bias(b_hh, gx, G), w_hh.contiguous()
    _raise_for(_kernel(decl, gx, "backward")(
        T, B, H, dy.data_ptr(), dh_n.data_ptr(), dc.data_ptr(), gx.data_ptr(), gh.data_ptr(),
        _ptr(b_hh), hs.data_ptr(), cs.data_ptr(), _ptr(v), w_hh.data_ptr(),
        lengths.data_ptr(), dgx.data_ptr(), dgh.data_ptr(), dh0.data_ptr(), dv.data_ptr(),
        scr.data_ptr(), sv.data_ptr()))
    return dgx, dgh, dh0, dc, dv


def param_grads(decl, dgh, hs, b_hh, v, dv, w_hh_grad=True):
    """From the BPTT's results: (∂L/∂W_hh = Σ_t ∂L/∂(product)_tᵀ h_{t−1} [G,H], ∂L/∂b_hh [G],
    ∂L/∂v [V,H]), each None where the layer has no such parameter (or, for W_hh, where no
    gradient is wanted)."""
    recurrent = decl.recurrent
    dw_hh = _grads.dW_hh(dgh, hs) if recurrent and w_hh_grad else None
    db_hh = dgh.sum((0, 1)) if recurrent and b_hh is not None else None
    return dw_hh, db_hh, None if v is None else dv.sum(0).to(v.dtype)
