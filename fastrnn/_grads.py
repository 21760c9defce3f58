"""The backward's products over all T·B rows, after the kernels' BPTT: weight gradients
(`gram`, `dW_hh`), the input gradient (`input_grad`), and in a ragged batch the rows that count
(`running`). Shape legend as in fastrnn.functional; N = T·B rows."""
import torch

from . import _checks, dispatch

ROWS = 512  # rows of one float32 partial product in gram


def gram(a, b, rows=None):
    """aᵀ b [G,K] for a [N,G], b [N,K]: a weight gradient, summed over all N = T·B rows. One
    float32 GEMM accumulates each entry over the N rows in float32, and for long sequences that
    error grows past torch.nn's (LSTM, T = 4096, B = 2: dW_ih 2.9e-6 against its 3.8e-7), so
    partial products of ROWS rows are summed pairwise (each term meets at most log2(N/ROWS)
    additions). Pairwise in float32, not sequentially in float64: at LSTM B = 64, H = 1024,
    T = 32 the float64 sum's conversions and fills (32 MB each) cost 200 of a 715 ms step.
    rows [N'] (see running): the only rows of a and b that count."""
    if rows is not None:
        a, b = a.index_select(0, rows), b.index_select(0, rows)
    N = a.shape[0]
    if (a.dtype != torch.float32 or N <= 2 * ROWS or a.device.type != "cpu"
            or torch.is_autocast_enabled("cpu")):  # (a bfloat16 GEMM's partials would be rounded)
        return a.t() @ b
    partials = []  # (level, sum of 2^level partial products): a binary counter
    for i in range(0, N, ROWS):
        p, level = a[i:i + ROWS].t() @ b[i:i + ROWS], 0
        while partials and partials[-1][0] == level:
            p, level = partials.pop()[1].add_(p), level + 1
        partials.append((level, p))
    total = partials.pop()[1]
    while partials:
        total = partials.pop()[1].add_(total)
    return total


def dW_hh(dA, hs, rows=None):
    """dW_hh = Σ_t dA_tᵀ h_{t-1}, dA [T,B,G] with hs [T+1,B,H] -> [G,H]."""
    T, B, G = dA.shape
    return gram(dA.reshape(T * B, G), hs[:-1].reshape(T * B, hs.shape[-1]), rows)


def running(ctx, lengths, hs):
    """On the eager path (_Fast), for a ragged batch of which under 90 % of the T·B rows run: the
    flat indices [N] of the rows (t, b) with t < lengths[b], the only ones whose ∂L/∂A, ∂L/∂G_x
    are not zero, so that the weight gradients' GEMMs and ∂L/∂x take them alone (packed lengths
    20–200: about half the rows). Else None. Kept in ctx.rows for _Fast's own GEMMs
    (fastrnn.autograd). Not on the op path, which torch.compile traces: the count depends on the
    data; nor on a GPU, where counting would wait for the device."""
    T, B = hs.shape[0] - 1, hs.shape[1]  # (hs [T+1,B,·]: every state)
    ctx.rows = None
    if (getattr(ctx, "fast", False) and T > 1 and lengths.device.type == "cpu"
            and lengths.data_ptr() != _checks.full_lengths_kept(T, B, lengths.device).data_ptr()):
        # (the kept full lengths of an unpacked call: every row runs, nothing to count — the
        # count cost 30–40 µs, its int() included: T = 32, B = 1, H = 64 training step, Zen 4,
        # LSTM 520 → 481 µs, RNN 386 → 355)
        live = torch.arange(T, device=lengths.device)[:, None] < lengths[None, :]
        if int(live.sum()) < 0.9 * T * B:
            ctx.rows = live.reshape(-1).nonzero().squeeze(1)
    return ctx.rows


def input_grad(d, w_ih, step=False):
    """∂L/∂x = d w_ih [N,I] for d = ∂L/∂G_x [N,G] (contiguous), w_ih [G,I]: on the kernels' tiles
    where dispatch.input_grad_on_tiles says they beat torch's BLAS (`step`: in a cell's one-step
    backward) — unless the backward itself is being differentiated (create_graph), which only the
    differentiable product can be."""
    if torch.is_grad_enabled() or not dispatch.input_grad_on_tiles(d, w_ih.shape[1], step):
        return d @ w_ih
    return dispatch.load("native").input_grad(d, w_ih)
