"""bfloat16 on the kernels: bfloat16 modules run on the float32 kernels with bfloat16 products
(fastrnn.dispatch.bf16_products), outputs and gradients in bfloat16 as torch.nn's, and an error
against a float64 reference at most twice torch.nn's own bfloat16 error; the products themselves
are exactly the float32 sums of bfloat16-rounded operands on CPUs with AVX-512-BF16."""
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import fastrnn
from _cases import torch_nn_runs_in_bfloat16, within_bfloat16_rounding
from fastrnn import dispatch
from fastrnn.harness.machine import cpu_flags

KERNELS = [b for b in ("native", "numba") if b in fastrnn.backends()]
BF16_CPU = "avx512_bf16" in cpu_flags() and dispatch.cpu_variant() == "avx512"  # (in force)
bf = torch.bfloat16


def _bf(t):
    return t.to(bf).double()


def _flat(out):
    if hasattr(out, "batch_sizes"):  # (a PackedSequence is a tuple too)
        return [out.data]
    if isinstance(out, tuple):
        return [t for o in out for t in _flat(o)]
    return [out]


@pytest.mark.skipif(not BF16_CPU, reason="needs AVX-512-BF16 (this CPU: the float32 products run)")
@pytest.mark.parametrize("T,B,I,H", [(3, 8, 37, 40), (4, 16, 64, 33), (9, 1, 20, 96),
                                     (3, 35, 70, 40), (2, 64, 96, 130), (3, 16, 31, 63)])
def test_bf16_products_are_float32_sums_of_rounded_operands(T, B, I, H):
    """An Elman RNN under bf16_products equals, to float32 rounding, the float64 recurrence on
    bfloat16-rounded x_t, W_ih, W_hh and h_{t-1} — and differs from the unrounded one. From 16
    rows on AMX CPUs run the products on tiles: partial row, column and pair blocks included."""
    g = torch.Generator().manual_seed(0)
    x, h0 = torch.randn(T, B, I, generator=g), torch.randn(B, H, generator=g)
    w_ih, w_hh = torch.randn(H, I, generator=g) / I**0.5, torch.randn(H, H, generator=g) / H**0.5
    b = torch.randn(H, generator=g)
    with torch.no_grad(), dispatch.bf16_products():
        y, h_n = fastrnn.functional.rnn(x, h0, w_ih, w_hh, b, None, backend="native")
    want, exact, h, he = [], [], h0.double(), h0.double()
    for t in range(T):
        h = torch.tanh(_bf(x[t]) @ _bf(w_ih).t() + b.double() + _bf(h) @ _bf(w_hh).t())
        he = torch.tanh(x[t].double() @ w_ih.double().t() + b.double() + he @ w_hh.double().t())
        want.append(h)
        exact.append(he)
    want, exact = torch.stack(want), torch.stack(exact)
    assert (y.double() - want).abs().max() < 2e-6
    assert (y.double() - exact).abs().max() > 1e-4  # it did round
    assert torch.equal(h_n, y[-1])


@pytest.mark.skipif(not BF16_CPU, reason="needs AVX-512-BF16")
def test_bf16_products_change_nothing_on_other_variants():
    x, w_ih, w_hh = torch.randn(6, 8, 20), torch.randn(80, 20), torch.randn(80, 20)
    try:
        fastrnn.set_cpu_variant("avx2")
        plain = fastrnn.functional.lstm(x, None, w_ih, w_hh, backend="native")[0]
        with dispatch.bf16_products():
            low = fastrnn.functional.lstm(x, None, w_ih, w_hh, backend="native")[0]
    finally:
        fastrnn.set_cpu_variant(None)
    assert torch.equal(plain, low)


@pytest.mark.parametrize("B", [8, 16, 48])
def test_bf16_products_do_not_depend_on_threads(B):
    """Outputs and gradients of a bfloat16 LSTM on one thread and on two, split by units (B = 8,
    16) and by rows (B = 48), on AMX tiles from B = 16 where the CPU has them."""
    torch.manual_seed(0)
    lstm = fastrnn.LSTM(64, 256).to(bf)
    x = torch.randn(9, B, 64, dtype=bf)
    runs, before = [], torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            runs.append(_run(lstm, x, None)[:2])
            lstm.zero_grad()
    finally:
        torch.set_num_threads(before)
    (y1, g1), (y2, g2) = runs
    assert all(torch.equal(a, b) for a, b in zip(y1 + g1, y2 + g2))


@pytest.mark.skipif(not BF16_CPU, reason="needs AVX-512-BF16")
def test_amx_tiles_run_exactly_where_the_cpu_has_them():
    """From amx_min_rows rows a call, an AMX CPU's bfloat16 products run on tiles, whose sums
    round in another order than vdpbf16ps's: other bits, within bfloat16 rounding of them;
    without AMX the rule changes nothing."""
    from fastrnn import rules
    torch.manual_seed(0)
    lstm = fastrnn.LSTM(64, 256).to(bf)
    x = torch.randn(9, 32, 64, dtype=bf)
    with torch.no_grad():
        tiles = lstm(x)[0]
        with rules.override(amx_min_rows=1 << 20):
            vdp = lstm(x)[0]
    if "amx_bf16" in cpu_flags():
        assert not torch.equal(tiles, vdp)
        within_bfloat16_rounding([tiles], [vdp])
    else:
        assert torch.equal(tiles, vdp)


CASES = [  # (module, kwargs, input shape, packed lengths or None)
    ("LSTM", {}, (12, 9, 24), None),
    ("GRU", {}, (12, 9, 24), None),
    ("RNN", {}, (12, 9, 24), None),
    ("LSTM", {"num_layers": 2, "bidirectional": True}, (10, 8, 24), None),
    ("GRU", {"num_layers": 2}, (10, 8, 24), [10, 7, 7, 5, 3, 3, 2, 1]),
    ("LSTM", {"proj_size": 16}, (10, 8, 24), None),
    ("LSTMCell", {}, (8, 24), None),
    ("GRUCell", {}, (8, 24), None),
]


def _run(m, x, lengths):
    xs = x.clone().requires_grad_(True)
    inp = xs if lengths is None else pack_padded_sequence(xs, torch.tensor(lengths))
    out = m(inp)
    loss = sum((o.double() * torch.linspace(-1, 1, o.numel()).view(o.shape)).sum()
               for o in _flat(out))
    loss.backward()
    return [o.double() for o in _flat(out)], [xs.grad] + [p.grad for p in m.parameters()], out


@pytest.mark.parametrize("backend", ["auto"] + KERNELS)
@pytest.mark.parametrize("mode,kwargs,shape,lengths", CASES)
def test_bfloat16_modules_run_on_the_kernels_at_torch_nn_accuracy(mode, kwargs, shape, lengths,
                                                                  backend):
    torch.manual_seed(0)
    nn = getattr(torch.nn, mode)(24, 32, **kwargs).to(bf)
    fast = getattr(fastrnn, mode)(24, 32, backend=backend, **kwargs).to(bf)
    fast.load_state_dict(nn.state_dict())
    ref = getattr(torch.nn, mode)(24, 32, **kwargs).double()
    ref.load_state_dict(nn.state_dict())
    x = torch.randn(*shape).to(bf)
    want_out, want_grads, _ = _run(ref, x.double(), lengths)
    ours_out, ours_grads, out = _run(fast, x, lengths)
    assert fast.last_backend == (backend if backend != "auto" else "native")
    assert [o.dtype for o in _flat(out)] == [bf] * len(ours_out)
    assert all(g.dtype == bf for g in ours_grads)
    if not torch_nn_runs_in_bfloat16(mode, "bfloat16"):
        within_bfloat16_rounding(ours_out + ours_grads, want_out + want_grads, limit=2e-2)
        return
    theirs_out, theirs_grads, _ = _run(nn, x, lengths)
    for ours, theirs, want in zip(ours_out + ours_grads, theirs_out + theirs_grads,
                                  want_out + want_grads):
        err = (ours.double() - want.double()).abs().max().item()
        limit = (theirs.double() - want.double()).abs().max().item()
        assert err <= 2 * limit + 1e-3 * want.abs().max().item()


@pytest.mark.parametrize("mode", ["LSTM", "RNN"])
def test_autocast_gradients_within_twice_torch_nn_error(mode):
    """Under autocast LSTM and RNN multiply in bfloat16 forward and backward, as torch.nn's."""
    torch.manual_seed(0)
    nn, fast = getattr(torch.nn, mode)(24, 48), getattr(fastrnn, mode)(24, 48)
    fast.load_state_dict(nn.state_dict())
    ref = getattr(torch.nn, mode)(24, 48).double()
    ref.load_state_dict(nn.state_dict())
    x = torch.randn(20, 16, 24)
    want_out, want, _ = _run(ref, x.double(), None)
    if not torch_nn_runs_in_bfloat16(mode):
        with torch.autocast("cpu", dtype=bf):
            ours_out, ours, out = _run(fast, x, None)
        assert [o.dtype for o in _flat(out)] == [bf] * len(want_out)
        within_bfloat16_rounding(ours_out + ours, want_out + want)
        return
    with torch.autocast("cpu", dtype=bf):
        theirs, ours = _run(nn, x, None)[1], _run(fast, x, None)[1]
    for o, t, w in zip(ours, theirs, want):
        assert (o.double() - w).abs().max() <= 2 * (t.double() - w).abs().max() + 1e-6


def test_float16_stays_on_eager():
    x = torch.randn(3, 2, 4, dtype=torch.float16)
    assert fastrnn.functional.resolve_backend(x) == "eager"
    assert fastrnn.functional.resolve_backend(x.to(bf)) in ("native", "numba")
    lstm = fastrnn.LSTM(4, 5).half()
    assert lstm(x)[0].dtype == torch.float16 and lstm.last_backend == "eager"


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_bfloat16_hostile_input_gives_torch_nn_nan_pattern(mode):
    torch.manual_seed(0)
    nn = getattr(torch.nn, mode)(16, 32).to(bf)
    fast = getattr(fastrnn, mode)(16, 32).to(bf)
    fast.load_state_dict(nn.state_dict())
    x = torch.randn(10, 16, 16).to(bf)
    x[3, 2, 5], x[5, 4, 1], x[6, 6, 0] = float("nan"), float("inf"), -1e30
    if not torch_nn_runs_in_bfloat16(mode, "bfloat16"):  # (the float64 layer's pattern)
        nn = getattr(torch.nn, mode)(16, 32).double()
        nn.load_state_dict(fast.state_dict())
        x = x.double()
    theirs, ours = nn(x)[0], fast(x.to(bf))[0]
    assert torch.equal(theirs.isnan(), ours.isnan())
    finite = ~theirs.isnan()
    assert (theirs.float() - ours.float())[finite].abs().max() < 2e-2


def test_a_backward_rounds_each_gemm_operand_once():
    """fastrnn._grads.rounding_once (a bfloat16 backward of the eager path): a weight gradient's
    operand is rounded once for every GEMM that takes it — the same tensor, or a view of it with
    its layout, gets the same rounded copy — two tensors never share one, and outside it nothing
    is remembered."""
    from fastrnn import _grads
    a, b = torch.randn(6, 5), torch.randn(6, 5)
    low = lambda t: _grads._rounded(t, "a", torch.bfloat16)  # noqa: E731
    with _grads.rounding_once():
        ra = low(a)
        assert low(a.view(6, 5)) is ra and torch.equal(ra, a.to(torch.bfloat16))
        rb = low(b)
        assert rb is not ra and torch.equal(rb, b.to(torch.bfloat16))
        assert torch.equal(low(a), a.to(torch.bfloat16))  # (b's rounding left a's alone)
    a.mul_(2)
    assert torch.equal(low(a), a.to(torch.bfloat16))


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("given", [False, True])
def test_a_bfloat16_training_call_runs_the_kernels_as_it_is(mode, given, monkeypatch):
    """A bfloat16 module's training call on native hands the kernels x, weights, states and
    results in bfloat16 (no torch op widens or rounds around them), and its outputs and every
    gradient are bitwise those of the call widened by torch ops (the widened route)."""
    if "native" not in fastrnn.backends():
        pytest.skip("the direct bfloat16 call runs on native")
    from fastrnn import functional, routes
    choose = routes.choose
    torch.manual_seed(0)
    m = getattr(fastrnn, mode)(24, 40, num_layers=2).to(bf)
    x = torch.randn(7, 5, 24).to(bf)
    h = torch.randn(2, 5, 40).to(bf) if given else None
    hx = (h, torch.randn(2, 5, 40).to(bf)) if given and mode == "LSTM" else h
    widened = []
    real = functional._via_float32

    def run(direct):
        with monkeypatch.context() as mp:
            mp.setattr(functional, "_via_float32", lambda *a, **k: widened.append(1) or real(*a, **k))
            if not direct:
                mp.setattr(routes, "choose", lambda where, backend, x, *a, **k: "widened"
                           if where == "layer" and x.dtype == bf else choose(where, backend, x,
                                                                             *a, **k))
            m.zero_grad()
            xs = x.clone().requires_grad_(True)
            y, state = m(xs, hx)
            states = state if isinstance(state, tuple) else (state,)
            (y.float().square().sum() + sum(s.float().sum() for s in states)).backward()
            return [y, *states, xs.grad] + [p.grad.clone() for p in m.parameters()]

    direct = run(True)
    assert not widened
    for a, b in zip(direct, run(False), strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)
    assert widened
