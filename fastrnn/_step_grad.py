"""A cell's step with gradients (cell(x, hx) in a training loop) on the native kernels, with as
little Python around it as possible: one autograd node, one foreign call each way.

Through the general path (module plumbing, the functional API's checks, the kernels' custom-op
layers) a step's Python cost more than its kernels: at B = 32, H = 128 an RNNCell training step
took 300 µs where torch.nn's took 190, of which our kernels and GEMMs were about 110. Here the
forward is one call of the kernel that keeps the gates and states (T = 1), and the backward one
call of the BPTT kernel followed by the GEMMs F.linear's backward would run: dx = dA W_ih,
dW_ih = dAᵀ x, dW_hh = dAᵀ h0, db = Σ_b dA. A missing initial state is zeros, so its W_hh
gradient is zeros without a product. `_direct_calls.step` calls this under the same conditions as its
no-grad step (see fastrnn._direct_calls), with gradients enabled and something requiring them.
"""
import torch

from . import _buffers, _checks, _grads, autograd
from ._native_calls import DTYPES, library, ptr


class Step(torch.autograd.Function):
    """One step of cell `name` (lstm, gru, rnn_tanh, rnn_relu): x [B,I], h0 (c0) [B,H] or None
    (zeros), w_ih [G,I], w_hh [G,H], b_ih, b_hh [G] or None -> h [B,H] (LSTM: h, c)."""

    @staticmethod
    def forward(ctx, name, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        B, I = x.shape
        G, H = w_hh.shape
        lib, dt = library(), DTYPES[x.dtype][0]
        n = _checks.full_lengths_kept(1, B, x.device)
        hs = x.new_empty(2, B, H)  # h0, h1: what the backward's products read
        h = x.new_empty(B, H)  # y and h_n at once: one step writes the same values to both
        hp = ptr(h0)  # NULL: zeros, and step 0 multiplies nothing
        args = (1, B, I, H, x.data_ptr(), w_ih.data_ptr(), ptr(b_ih))
        lib.lib.fastrnn_set_num_threads(torch.get_num_threads())
        if name == "lstm":
            c, cs, gates = x.new_empty(B, H), x.new_empty(2, B, H), x.new_empty(1, B, G)
            cp = ptr(c0)
            rc = lib.bound("lstm_forward_x", dt)(
                *args, ptr(b_hh), hp, cp, w_hh.data_ptr(), n.data_ptr(), h.data_ptr(),
                h.data_ptr(), c.data_ptr(), gates.data_ptr(), cs.data_ptr(), hs.data_ptr())
            saved, out = (gates, cs), (h, c)
        elif name == "gru":
            gates, a_n = x.new_empty(1, B, G), x.new_empty(1, B, H)
            bp = ptr(b_hh) or _buffers.zeros(G, x.dtype)  # the kernel always reads b_hh
            rc = lib.bound("gru_forward_x", dt)(
                *args, hp, w_hh.data_ptr(), bp, n.data_ptr(), h.data_ptr(), h.data_ptr(),
                gates.data_ptr(), a_n.data_ptr(), hs.data_ptr())
            saved, out = (gates, a_n), (h,)
        else:
            rc = lib.bound(name + "_forward_x", dt)(
                *args, ptr(b_hh), hp, w_hh.data_ptr(), n.data_ptr(), h.data_ptr(),
                h.data_ptr(), hs.data_ptr())
            saved, out = (), (h,)
        lib.raise_for(rc)
        ctx.save_for_backward(x, w_ih, w_hh, hs, *saved)
        ctx.name, ctx.zero_h0 = name, h0 is None
        return out if name == "lstm" else h

    @staticmethod
    def backward(ctx, dh, dc=None):
        x, w_ih, w_hh, hs, *saved = ctx.saved_tensors
        name, (B, I), (G, H) = ctx.name, x.shape, w_hh.shape
        lib, dt = library(), DTYPES[x.dtype][0]
        n = _checks.full_lengths_kept(1, B, x.device)
        dh, zeros = dh.contiguous(), _buffers.zeros(B * H, x.dtype)  # dy = dh, dh_n = 0
        need = ctx.needs_input_grad
        dA, dh0 = x.new_empty(B, G), x.new_empty(B, H) if need[2] else None  # (NULL: unwanted,
        lib.lib.fastrnn_set_num_threads(torch.get_num_threads())         # no product at step 0)
        dc0 = da_n = None
        if name == "lstm":
            gates, cs = saved
            dc0 = x.new_empty(B, H)
            rc = lib.bound("lstm_backward", dt)(
                1, B, H, dh.data_ptr(), zeros, dc.contiguous().data_ptr(), gates.data_ptr(),
                cs.data_ptr(), w_hh.data_ptr(), n.data_ptr(), dA.data_ptr(), ptr(dh0),
                dc0.data_ptr())
        elif name == "gru":
            gates, a_n = saved
            da_n = x.new_empty(B, H)
            rc = lib.bound("gru_backward", dt)(
                1, B, H, dh.data_ptr(), zeros, gates.data_ptr(), a_n.data_ptr(), hs.data_ptr(),
                w_hh.data_ptr(), n.data_ptr(), dA.data_ptr(), da_n.data_ptr(), ptr(dh0))
        else:
            rc = lib.bound(name + "_backward", dt)(
                1, B, H, dh.data_ptr(), zeros, hs.data_ptr(), w_hh.data_ptr(), n.data_ptr(),
                dA.data_ptr(), ptr(dh0))
        lib.raise_for(rc)
        # ∂L/∂A: dA itself, but for GRU, whose A's n block is r ⊙ (W_hn h + b_hn): dA_n there
        dA_hh = dA if da_n is None else torch.cat([dA[:, :2 * H], da_n], 1)
        dx = _grads.input_grad(dA, w_ih, step=True) if need[1] else None
        dw_ih = _grads.gram(dA, x, step=True) if need[4] else None
        dw_hh = None
        if need[5]:
            dw_hh = torch.zeros_like(w_hh) if ctx.zero_h0 else _grads.gram(dA_hh, hs[0], step=True)
        db_ih = dA.sum(0) if need[6] else None
        db_hh = None
        if need[7]:  # (RNN, LSTM: the same sum as db_ih)
            db_hh = db_ih if da_n is None and db_ih is not None else dA_hh.sum(0)
        grads = (dx, dh0, dc0 if need[3] else None, dw_ih, dw_hh, db_ih, db_hh)
        if torch.is_grad_enabled():  # create_graph: these may not be differentiated again
            grads = autograd.underivable(grads)
        return (None, *grads)
