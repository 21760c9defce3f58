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

from . import _buffers, _checks, _grads, autograd, cells
from ._native_calls import CELLS, DTYPES, FORWARD_X, library, ptr


# each cell's calls and shapes, generated once from its description: forward_x's caller and
# whether its kernel reads b_hh always, backward's caller, the shapes of the saved buffers and
# of the backward's results (functions of the DIMS of fastrnn.cells)
_CALLS = {name: (FORWARD_X[name][1], FORWARD_X[name][2], cells.backward_call(c),
                 cells.sizes([sh for _, sh in c.saved]), cells.sizes([sh for _, sh in c.grads]))
          for name, c in CELLS.items()}
_HS = {name: [n for n, _ in c.saved].index("hs") for name, c in CELLS.items()}


class Step(torch.autograd.Function):
    """One step of cell `name` (lstm, gru, rnn_tanh, rnn_relu): x [B,I], h0 (c0) [B,H] or None
    (zeros), w_ih [G,I], w_hh [G,H], b_ih, b_hh [G] or None -> h [B,H] (LSTM: h, c)."""

    @staticmethod
    def forward(ctx, name, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        B, I = x.shape
        G, H = w_hh.shape
        lib, dt = library(), DTYPES[x.dtype][0]
        call, b_hh_read, _, saved_shapes, _ = _CALLS[name]
        n = _checks.full_lengths_kept(1, B, x.device)
        h = x.new_empty(B, H)  # y and h_n at once: one step writes the same values to both
        c = x.new_empty(B, H) if name == "lstm" else None
        # the saved buffers (hs among them: h0 and h1, what the weight gradient's product reads)
        saved = [x.new_empty(*s) for s in saved_shapes(1, B, G, H, H, 2, 1)]
        bh = ptr(b_hh) or (_buffers.zeros(G, x.dtype) if b_hh_read else 0)
        lib.lib.fastrnn_set_num_threads(torch.get_num_threads())
        rc = call(lib.bound(name + "_forward_x", dt), 1, B, I, H, x.data_ptr(), w_ih.data_ptr(),
                  ptr(b_ih), bh, ptr(h0), ptr(c0), w_hh.data_ptr(), n.data_ptr(), h.data_ptr(),
                  h.data_ptr(), ptr(c), saved)  # (NULL h0: zeros)
        lib.raise_for(rc)
        ctx.save_for_backward(x, w_ih, w_hh, *saved)
        ctx.name, ctx.zero_h0 = name, h0 is None
        return (h, c) if name == "lstm" else h

    @staticmethod
    def backward(ctx, dh, dc=None):
        x, w_ih, w_hh, *saved = ctx.saved_tensors
        name, (B, I), (G, H) = ctx.name, x.shape, w_hh.shape
        lib, dt = library(), DTYPES[x.dtype][0]
        _, _, call, _, grad_shapes = _CALLS[name]
        n = _checks.full_lengths_kept(1, B, x.device)
        dh, zeros = dh.contiguous(), _buffers.zeros(B * H, x.dtype)  # dy = dh, dh_n = 0
        need = ctx.needs_input_grad
        # ∂L/∂A (GRU: ∂L/∂G_x, ∂L/∂A_n), dh0 (NULL where unwanted: no product at step 0),
        # dc0 (LSTM)
        grads = {g: None if g == "dh0" and not need[2] else x.new_empty(*s)
                 for (g, _), s in zip(CELLS[name].grads, grad_shapes(1, B, G, H, H, 0, 0))}
        states = (zeros, dc.contiguous().data_ptr()) if name == "lstm" else (zeros,)  # dh_n, dc_n
        lib.lib.fastrnn_set_num_threads(torch.get_num_threads())
        rc = call(lib.bound(name + "_backward", dt), 1, B, H, dh.data_ptr(), states, saved,
                  w_hh.data_ptr(), n.data_ptr(), tuple(grads.values()))
        lib.raise_for(rc)
        dA, dh0, dc0 = grads.get("dA", grads.get("dGx")).view(B, G), grads["dh0"], grads.get("dc0")
        da_n = grads["dA_n"].view(B, H) if "dA_n" in grads else None
        hs = saved[_HS[name]]
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
