"""The backward's products over all T·B rows, after the kernels' BPTT: weight gradients
(`gram`, `dW_hh`), the input gradient (`input_grad`), and in a ragged batch the rows that count
(`running`). Shape legend as in fastrnn.functional; N = T·B rows."""
import contextlib
import threading

import torch

from . import _checks, _buffers, dispatch, rules

BATCH_BYTES = 1 << 25  # a batched GEMM's partial products take at most so many bytes


def gram(a, b, rows=None, step=False):
    """aᵀ b [G,K] for a [N,G], b [N,K]: a weight gradient, summed over all N = T·B rows. One
    float32 GEMM accumulates each entry over the N rows in float32, and for long sequences that
    error grows past torch.nn's (LSTM, T = 4096, B = 2: dW_ih 2.9e-6 against its 3.8e-7), so
    partial products of R = grad_partial_rows rows are summed (fastrnn.rules): up to
    grad_partial_batch of them made by one batched GEMM and added up, those sums pairwise (each
    term meets at most grad_partial_batch + log2(N/R) additions; the
    T = 4096 test at 0.58 of its limit). Pairwise in float32, not sequentially in float64: at LSTM
    B = 64, H = 1024, T = 32 the float64 sum's conversions and fills (32 MB each) cost 200 of a
    715 ms step. Batched, the partials run a whole GEMM to a thread rather than each split
    between the threads (Zen 4, 2 threads, against 512-row partials one by one): the IMDB
    model's (N, G, K) = (16384, 512, 128) 14.9 → 13.7 ms, (16384, 256, 64) 4.3 → 3.5,
    (2048, 4096, 1024) 107 → 101, (2048, 1024, 256) 6.4 either way; training steps (module,
    SGD) LSTM T = 32, B = 64, H = 256 37.1 → 35.9 ms, T = 256, B = 8 38.0 → 37.2, GRU
    T = 32, B = 64 28.5 → 28.1; the IMDB step within its noise (116 → 113, 120 → 121).
    On CPU float32 and float64 the GEMMs run in blocks of rows fixed by the shapes, each one
    single-threaded BLAS call (fastrnn._native.cpu.gram_blocks), so the bits do not depend on the
    thread count; MKL's threaded sgemm gives other bits on 1 and 2 threads on an Intel Xeon at
    N = 2048 (T = 32, B = 64), held to AVX2 at most shapes. Cost there (Intel Xeon, 2 threads,
    training steps interleaved in one process, blocks against one threaded call): LSTM T = 32,
    B = 64, H = 1024 308 → 316 ms, H = 256 20.4 → 20.8, GRU H = 256 15.7 → 16.3, RNN H = 1024,
    LSTM T = 256, B = 8 and T = 100, B = 16 unchanged (±1 %), B = 1 points within their noise.
    rows [N'] (see running): the only rows of a and b that count. `step`: in a cell's one-step
    backward, where aᵀ b runs on the kernels' tiles as input_grad's product does (see there):
    B = 32, H = 128 training steps, Zen 4, interleaved, RNNCell 222 → 219 µs, LSTMCell 371 →
    356, GRUCell 349 → 325."""
    if step and not torch.is_grad_enabled() and dispatch.input_grad_on_tiles(a, b.shape[1], True):
        return dispatch.load("native").input_grad(a.t().contiguous(), b)
    if rows is not None:
        a, b = a.index_select(0, rows), b.index_select(0, rows)
    if a.is_cpu and torch.is_autocast_enabled("cpu"):  # (a bfloat16 GEMM's partials would be
        low = torch.get_autocast_dtype("cpu")            # rounded: one GEMM)
        return _rounded(a, "a", low).t() @ _rounded(b, "b", low)
    (N, G), K = a.shape, b.shape[1]
    R = rules.value("grad_partial_rows")
    lib = blocks(a)
    if a.dtype != torch.float32 or N <= 2 * R or a.device.type != "cpu":
        return a.t() @ b if lib is None else lib.gram_blocks(a.contiguous(), b.contiguous())[0]
    m = max(1, min(rules.value("grad_partial_batch"), BATCH_BYTES // (G * K * 4)))  # per GEMM
    full, partials = N // R * R, []  # (level, sum of 2^level sums): a binary counter

    def add(p, level=0):
        while partials and partials[-1][0] == level:
            p, level = partials.pop()[1].add_(p), level + 1
        partials.append((level, p))

    a, b = a.contiguous(), b.contiguous()
    for i in range(0, full, m * R):
        n = min(m, (full - i) // R)
        ai, bi = a[i:i + n * R], b[i:i + n * R]
        if lib is not None:
            add(lib.gram_blocks(ai, bi, n).sum(0))
        else:
            add(ai.t() @ bi if n == 1 else torch.bmm(ai.unflatten(0, (n, R)).transpose(1, 2),
                                                      bi.unflatten(0, (n, R))).sum(0))
    if full < N:
        add(a[full:].t() @ b[full:] if lib is None else lib.gram_blocks(a[full:], b[full:])[0])
    total = partials.pop()[1]
    while partials:
        total = partials.pop()[1].add_(total)
    return total


def blocks(t):
    """The native library (fastrnn._native.cpu) where it runs t's products in blocks whose bits do
    not depend on the thread count (gram_blocks, linear_blocks: CPU float32 and float64, with
    the BLAS torch links), else None: torch's own GEMMs then, whose bits may (MKL's sgemm on an
    Intel Xeon, torch 2.13: aᵀb over 2048 rows differs on 1 and 2 threads; held to AVX2, most
    shapes do). Not where the product must be differentiable (a backward differentiated) or is
    being traced."""
    if (t.device.type != "cpu" or t.dtype not in dispatch._KERNEL_DTYPES
            or torch.is_grad_enabled() or torch.compiler.is_compiling()
            or dispatch.why_not("native")):
        return None
    lib = dispatch.load("native")
    return lib if lib.BLAS is not None else None


def _rounded(t, slot, dtype):
    """t [N,·] as autocast rounds a float32 operand to dtype, but into this thread's buffer
    `slot` (fastrnn._buffers): dA's fresh bfloat16 copy faulted in its pages on every step (LSTM,
    T = 100, B = 16, H = 256: 800 of them, 0.6 ms, twice a step) — and inside rounding_once,
    once for all the GEMMs that take it. Traced, t is left to autocast (a kept buffer made while
    tracing would be the tracer's)."""
    if t.dtype != torch.float32 or torch.compiler.is_compiling():
        return t
    memo = getattr(_once, "memo", None)
    if memo is None:
        return _buffers.buffer(slot, t.shape, dtype).copy_(t)
    key = (t.data_ptr(), t.shape, t.stride(), dtype)
    if key not in memo:  # (each in its own buffer; t kept alive, so no other tensor has its key)
        memo[key] = (t, _buffers.buffer(f"{slot}{len(memo)}", t.shape, dtype).copy_(t))
    return memo[key][1]


_once = threading.local()


@contextlib.contextmanager
def rounding_once():
    """Within it (one backward of _LayerAutograd, fastrnn.autograd, which writes none of the tensors its
    GEMMs read), a weight gradient's operand is rounded once however many GEMMs take it: an LSTM's
    dA goes into dW_hh and into dW_ih (T = 100, B = 16, H = 256: a rounding 0.1–0.4 ms)."""
    _once.memo = {}
    try:
        yield
    finally:
        _once.memo = None


def dW_hh(dA, hs, rows=None):
    """dW_hh = Σ_t dA_tᵀ h_{t-1}, dA [T,B,G] with hs [T+1,B,H] -> [G,H]."""
    T, B, G = dA.shape
    return gram(dA.reshape(T * B, G), hs[:-1].reshape(T * B, hs.shape[-1]), rows)


def running(ctx, lengths, hs):
    """On the eager path (_LayerAutograd), for a ragged batch of which under 90 % of the T·B rows run: the
    flat indices [N] of the rows (t, b) with t < lengths[b], the only ones whose ∂L/∂A, ∂L/∂G_x
    are not zero, so that the weight gradients' GEMMs and ∂L/∂x take them alone (packed lengths
    20–200: about half the rows). Else None. Kept in ctx.rows for _LayerAutograd's own GEMMs
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
