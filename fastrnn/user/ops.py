"""A declared cell's custom ops, which torch.compile and torch.export record (one forward op per
layer, its backward op in the backward graph) where the eager path calls the kernels directly:

    fastrnn_user::<cell>_<key>_forward(gx, w_hh, b_hh?, v?, lengths, states[], save)
        -> [y, *final states, gh, hs, cs, sv]
    fastrnn_user::<cell>_<key>_backward(dy, dfinals[], gx, gh, b_hh?, hs, cs, sv, v?, w_hh?,
                                        lengths)
        -> [dgx, dgh, dh0, dc, dv]

G_x = F.linear(x, W_ih, b_ih) is recorded before the forward op as an ATen op, so autograd takes
dx, dW_ih and db_ih from ∂L/∂G_x itself. <key> is the hash of the cell's generated code: cells of
the same name and different math get different ops.
"""
import hashlib
import re
from typing import List, Optional

import torch

from .. import autograd
from . import kernels

_ops = {}  # op name -> (forward op, backward op)


def define(decl):
    """The forward op of declared cell `decl` (defined once a process for each name and key;
    at declaration: torch.compile cannot trace the hashing)."""
    key = hashlib.sha256(decl.source.encode()).hexdigest()[:12]
    name = f"{re.sub(r'[^0-9A-Za-z_]', '_', decl.name)}_{key}"
    if name not in _ops:
        _ops[name] = _define(decl, name)
    return _ops[name][0]


def _define(decl, name):
    n = len(decl.states)

    @torch.library.custom_op(f"fastrnn_user::{name}_forward", mutates_args=())
    def forward(gx: torch.Tensor, w_hh: Optional[torch.Tensor], b_hh: Optional[torch.Tensor],
                v: Optional[torch.Tensor], lengths: torch.Tensor, states: List[torch.Tensor],
                save: bool) -> List[torch.Tensor]:
        y, finals, (gh, hs, cs, sv) = kernels.forward(decl, gx, states, w_hh, b_hh, v, lengths,
                                                      save)
        gh = gx.new_empty(0) if gh is None else gh  # (no W_hh: no products)
        # (outputs must not alias each other: the other final states are views of cs)
        return [y, finals[0], *[f.clone() for f in finals[1:]], gh, hs, cs, sv]

    @forward.register_fake
    def _(gx, w_hh, b_hh, v, lengths, states, save):
        T, B, G = gx.shape
        H = states[0].shape[1]
        S = T + 1 if save else 2
        new = gx.new_empty
        gh = new(T if save and decl.keeps_products else 1, B, G) if decl.recurrent else new(0)
        sv = new(T, B, max(decl.saved, 1), H) if save else new(0)
        return [new(T, B, H), *[new(B, H) for _ in range(n)], gh, new(S, B, H),
                new(max(n - 1, 1), S, B, H), sv]

    @torch.library.custom_op(f"fastrnn_user::{name}_backward", mutates_args=())
    def backward(dy: torch.Tensor, dfinals: List[torch.Tensor], gx: torch.Tensor,
                 gh: torch.Tensor, b_hh: Optional[torch.Tensor], hs: torch.Tensor,
                 cs: torch.Tensor, sv: torch.Tensor, v: Optional[torch.Tensor],
                 w_hh: Optional[torch.Tensor], lengths: torch.Tensor) -> List[torch.Tensor]:
        dgx, dgh, *rest = kernels.backward(decl, dy, dfinals, gx, gh if decl.recurrent else None,
                                           b_hh, hs, cs, sv, v, w_hh, lengths)
        # (outputs must not alias: a ∂L/∂(product) that is ∂L/∂G_x comes back once)
        return [dgx, dgx.new_empty(0) if dgh is None or dgh is dgx else dgh, *rest]

    @backward.register_fake
    def _(dy, dfinals, gx, gh, b_hh, hs, cs, sv, v, w_hh, lengths):
        T, B, G = gx.shape
        H = hs.shape[2]
        new = gx.new_empty
        shared = not decl.recurrent or decl.shared_dgx
        return [new(T, B, G), new(0) if shared else new(T, B, G), new(B, H), new(max(n - 1, 1), B, H),
                new(B, max(decl.vector_rows, 1), H, dtype=torch.float64)]

    def setup(ctx, inputs, output):
        gx, w_hh, b_hh, v, lengths, _, _ = inputs
        gh, hs, cs, sv = output[-4:]
        ctx.save_for_backward(gx, gh, b_hh, hs, cs, sv, v, w_hh, lengths)

    def grad(ctx, grads):
        gx, gh, b_hh, hs, cs, sv, v, w_hh, lengths = ctx.saved_tensors
        dgx, dgh, dh0, dc, dv = backward(_given(grads[0], gx, hs), [
            _given(d, hs[0]) for d in grads[1:1 + n]], gx, gh, b_hh, hs, cs, sv, v, w_hh,
            lengths)
        dw_hh, db_hh, d_v = kernels.param_grads(decl, dgx if decl.shared_dgx else dgh, hs,
                                                b_hh, v, dv)
        return (dgx, dw_hh, db_hh, d_v, None, [dh0, *dc[:n - 1]], None)

    forward.register_autograd(grad, setup_context=setup)
    backward.register_autograd(autograd._no_double_backward, setup_context=autograd._no_setup)
    return forward, backward


def _given(d, like, hs=None):
    """d, or zeros for an output whose gradient autograd did not give: like's shape, or with
    hs [T+1,B,H], dy's [T,B,H]."""
    if d is not None:
        return d
    if hs is None:
        return torch.zeros_like(like)
    return like.new_zeros(like.shape[0], like.shape[1], hs.shape[2])
