"""LayerNorm LSTM and GRU: the reference's equations and hand-written BPTT against finite
differences and against the same equations run as a per-step torch loop under autograd."""
import numpy as np
import pytest
import torch

from _cases import rel_err
from fastrnn import _eager, reference

LENGTHS = [3, 2]


def _arrays(cell, rng, T=3, B=2, I=3, H=4):
    G = 4 * H if cell == "ln_lstm" else 3 * H
    a = dict(x=rng.normal(size=(T, B, I)), h0=rng.normal(size=(B, H)),
             W_xh=rng.normal(size=(G, I)), W_hh=rng.normal(size=(G, H)),
             b_xh=rng.normal(size=G), b_hh=rng.normal(size=G), g_xh=1 + 0.3 * rng.normal(size=G),
             g_hh=1 + 0.3 * rng.normal(size=G))
    if cell == "ln_lstm":
        a.update(c0=rng.normal(size=(B, H)), g_c=1 + 0.3 * rng.normal(size=H),
                 b_c=0.3 * rng.normal(size=H))
    return a


def _run_reference(cell, a, lengths):
    if cell == "ln_lstm":
        y, (h_n, c_n), cache = reference.ln_lstm_forward(
            a["x"], a["h0"], a["c0"], a["W_xh"], a["W_hh"], a["b_xh"], a["b_hh"], a["g_xh"],
            a["g_hh"], a["g_c"], a["b_c"], lengths)
        return (y, h_n, c_n), cache
    y, h_n, cache = reference.ln_gru_forward(a["x"], a["h0"], a["W_xh"], a["W_hh"], a["b_xh"],
                                             a["b_hh"], a["g_xh"], a["g_hh"], lengths)
    return (y, h_n), cache


def _backward(cell, weights, cache):
    if cell == "ln_lstm":
        return reference.ln_lstm_backward(*weights, cache)
    return reference.ln_gru_backward(*weights, cache)


def _numeric_grad(loss, a, name, eps=1e-6):
    g = np.zeros_like(a[name])
    for idx in np.ndindex(g.shape):
        old = a[name][idx]
        a[name][idx] = old + eps
        up = loss()
        a[name][idx] = old - eps
        down = loss()
        a[name][idx] = old
        g[idx] = (up - down) / (2 * eps)
    return g


@pytest.mark.parametrize("cell", ["ln_lstm", "ln_gru"])
def test_reference_backward_matches_finite_differences(cell):
    rng = np.random.default_rng(3)
    a = _arrays(cell, rng)
    outs, _ = _run_reference(cell, a, LENGTHS)
    weights = [rng.normal(size=o.shape) for o in outs]

    def loss():
        return sum((o * w).sum() for o, w in zip(_run_reference(cell, a, LENGTHS)[0], weights))

    grads = _backward(cell, weights, _run_reference(cell, a, LENGTHS)[1])
    assert set(grads) == set(a)
    for name, g in grads.items():
        assert rel_err(g, _numeric_grad(loss, a, name)) < 1e-7, name


def _run_eager(cell, a, lengths):
    t = {k: torch.tensor(v, requires_grad=True) for k, v in a.items()}
    n = None if lengths is None else torch.tensor(lengths)
    if cell == "ln_lstm":
        y, h, c = _eager.ln_lstm(t["x"], t["h0"], t["c0"], t["W_xh"], t["W_hh"], t["b_xh"],
                                 t["b_hh"], t["g_xh"], t["g_hh"], t["g_c"], t["b_c"], n)
        return t, (y, h, c)
    y, h = _eager.ln_gru(t["x"], t["h0"], t["W_xh"], t["W_hh"], t["b_xh"], t["b_hh"], t["g_xh"],
                         t["g_hh"], n)
    return t, (y, h)


@pytest.mark.parametrize("cell", ["ln_lstm", "ln_gru"])
@pytest.mark.parametrize("lengths", [None, [5, 1, 3]])
def test_reference_matches_the_per_step_torch_loop(cell, lengths):
    rng = np.random.default_rng(4)
    a = _arrays(cell, rng, T=5, B=3, I=6, H=8)
    outs, cache = _run_reference(cell, a, lengths)
    weights = [rng.normal(size=o.shape) for o in outs]
    grads = _backward(cell, weights, cache)
    t, touts = _run_eager(cell, a, lengths)
    sum((o * torch.tensor(w)).sum() for o, w in zip(touts, weights)).backward()
    for o, to in zip(outs, touts):
        assert rel_err(o, to.detach().numpy()) < 1e-12
    for name, g in grads.items():
        assert rel_err(g, t[name].grad.numpy()) < 1e-12, name


# ---- the layers and modules, native against the reference and the torch loop ----------------
import fastrnn  # noqa: E402
from fastrnn import layernorm  # noqa: E402

NATIVE = pytest.mark.skipif(fastrnn.dispatch.why_not("native") is not None,
                            reason="the C library is not built")
KERNELS = pytest.mark.parametrize("backend", [
    pytest.param(b, marks=pytest.mark.skipif(fastrnn.dispatch.why_not(b) is not None,
                                             reason=f"backend {b} is not usable here"))
    for b in ("native", "numba")])


def _layer(cell, a, lengths, backend, dtype=torch.float64):
    """The functional layer on a's arrays (requires_grad), returning (tensors, outputs)."""
    t = {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in a.items()}
    n = None if lengths is None else torch.tensor(lengths)
    if cell == "ln_lstm":
        y, (h, c) = layernorm.ln_lstm(t["x"], (t["h0"], t["c0"]), t["W_xh"], t["W_hh"],
                                      t["b_xh"], t["b_hh"], t["g_xh"], t["g_hh"], t["g_c"],
                                      t["b_c"], lengths=n, backend=backend)
        return t, (y, h, c)
    y, h = layernorm.ln_gru(t["x"], t["h0"], t["W_xh"], t["W_hh"], t["b_xh"], t["b_hh"],
                            t["g_xh"], t["g_hh"], lengths=n, backend=backend)
    return t, (y, h)


@KERNELS
@pytest.mark.parametrize("cell", ["ln_lstm", "ln_gru"])
@pytest.mark.parametrize("shape", [dict(T=5, B=3, I=6, H=8, lengths=None),
                                   dict(T=6, B=4, I=5, H=7, lengths=[6, 2, 5, 1]),
                                   dict(T=1, B=1, I=2, H=3, lengths=None),
                                   dict(T=4, B=20, I=9, H=40, lengths=None)])
@pytest.mark.parametrize("threads", [1, 2])
def test_kernels_match_the_reference_in_float64(backend, cell, shape, threads):
    """Outputs, final states and every gradient (x, states, weights, biases, gains) within 1e-10
    of the float64 reference, split by units (few rows) and by rows (B = 20)."""
    shape = dict(shape)
    lengths = shape.pop("lengths")
    rng = np.random.default_rng(5)
    a = _arrays(cell, rng, **shape)
    outs, cache = _run_reference(cell, a, lengths)
    weights = [rng.normal(size=o.shape) for o in outs]
    grads = _backward(cell, weights, cache)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        t, touts = _layer(cell, a, lengths, backend)
        sum((o * torch.tensor(w)).sum() for o, w in zip(touts, weights)).backward()
    finally:
        torch.set_num_threads(before)
    for o, to in zip(outs, touts):
        assert rel_err(o, to.detach().numpy()) < 1e-10
    for name, g in grads.items():
        assert rel_err(g, t[name].grad.numpy()) < 1e-10, name


@NATIVE
@pytest.mark.parametrize("cls", ["LayerNormLSTM", "LayerNormGRU"])
def test_results_are_bitwise_the_same_for_any_thread_count(cls):
    """The row reductions sum in a fixed order: 1, 2 and 3 threads, split by units (B = 2) and by
    rows (B = 48), give the same bits, outputs and gradients."""
    for B in (2, 48):
        results = []
        for threads in (1, 2, 3):
            torch.manual_seed(0)
            m = getattr(fastrnn, cls)(16, 256, backend="native")
            x = torch.randn(6, B, 16, requires_grad=True)
            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                y, _ = m(x)
                y.pow(2).sum().backward()
            finally:
                torch.set_num_threads(before)
            results.append([y.detach(), x.grad] + [p.grad for p in m.parameters()])
        for other in results[1:]:
            assert all(torch.equal(a, b) for a, b in zip(results[0], other)), B


def _module_pair(cls, dtype, I=5, H=6, **kw):
    torch.manual_seed(1)
    m = getattr(fastrnn, cls)(I, H, **kw).to(dtype)
    with torch.no_grad():  # gains and shifts away from their initial ones and zeros
        for name, p in m.named_parameters():
            if name.startswith("ln_"):
                p.add_(0.2 * torch.randn_like(p))
    return m


def _run_module(m, backend, x, hx):
    m.backend = backend
    m.zero_grad()
    x = x.detach().clone().requires_grad_(True)
    hx = None if hx is None else tuple(h.detach().clone().requires_grad_(True) for h in hx)
    y, h = m(x, hx if hx is None or len(hx) == 2 else hx[0])
    hs = h if isinstance(h, tuple) else (h,)
    (y.pow(2).sum() + sum((t * t.sin()).sum() for t in hs)).backward()
    grads = [x.grad] + ([] if hx is None else [t.grad for t in hx])
    return [y, *hs, *grads, *(p.grad for p in m.parameters())]


@KERNELS
@pytest.mark.parametrize("cls", ["LayerNormLSTM", "LayerNormGRU"])
@pytest.mark.parametrize("kw", [dict(), dict(num_layers=2, bidirectional=True),
                                dict(batch_first=True), dict(bias=False, num_layers=2)])
@pytest.mark.parametrize("with_states", [False, True])
def test_kernels_module_matches_the_torch_loop(backend, cls, kw, with_states):
    """Every calling form's outputs, states and gradients in float64 (T = 7, B = 3, H = 6): the
    kernels against the same equations as a per-step torch loop, each within 1e-10. (float32 is
    judged over draws in test_float32_error_within_twice_the_loops_over_draws: one draw's ratio
    is the loop's luck as much as the kernels' — 0.5 to 3.1 over five draws of one form on an
    Intel Xeon.)"""
    T, B, I, H = 7, 3, 5, 6
    m = _module_pair(cls, torch.float64, I, H, **kw)
    D, L = 2 if kw.get("bidirectional") else 1, kw.get("num_layers", 1)
    x = torch.randn((B, T, I) if kw.get("batch_first") else (T, B, I), dtype=torch.float64)
    n = 2 if cls == "LayerNormLSTM" else 1
    hx = tuple(torch.randn(L * D, B, H, dtype=torch.float64) for _ in range(n)) if with_states \
        else None
    for a, b in zip(_run_module(m, backend, x, hx), _run_module(m, "eager", x, hx)):
        assert rel_err(a.detach().numpy(), b.detach().numpy()) < 1e-10


@KERNELS
@pytest.mark.parametrize("cls", ["LayerNormLSTM", "LayerNormGRU"])
@pytest.mark.parametrize("kw", [dict(), dict(num_layers=2, bidirectional=True),
                                dict(batch_first=True), dict(bias=False, num_layers=2)])
def test_float32_error_within_twice_the_loops_over_draws(backend, cls, kw):
    """float32 within twice the error of the same equations as a per-step torch loop, per tensor
    (outputs, final states, every gradient), each error against float64: the geometric mean over
    six draws (weights, inputs, states) of the ratio. A single draw's ratio is the loop's luck as
    much as the kernels' — up to 4.8 on a draw where this mean is 1.5 — so one draw cannot
    carry a factor of two (T = 30, B = 8, H = 64)."""
    T, B, I, H = 30, 8, 32, 64
    L = kw.get("num_layers", 1) * (2 if kw.get("bidirectional") else 1)
    logs = 0
    for draw in range(6):
        m = _module_pair(cls, torch.float32, I, H, **kw)
        gen = torch.Generator().manual_seed(100 + draw)
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
        x = torch.randn((B, T, I) if kw.get("batch_first") else (T, B, I), generator=gen)
        hx = tuple(torch.randn(L, B, H, generator=gen)
                   for _ in range(2 if cls == "LayerNormLSTM" else 1))
        ours, loop = _run_module(m, backend, x, hx), _run_module(m, "eager", x, hx)
        exact = _run_module(m.double(), "eager", x.double(), tuple(h.double() for h in hx))
        err = lambda ts: np.array([rel_err(a.detach().double().numpy(), e.detach().numpy())  # noqa: E731
                                   for a, e in zip(ts, exact)])
        logs = logs + np.log(err(ours) / err(loop))
    ratios = np.exp(logs / 6)
    assert ratios.max() <= 2, ratios.round(2)


@NATIVE
@pytest.mark.parametrize("cls", ["LayerNormLSTM", "LayerNormGRU"])
def test_packed_and_unbatched_calls_are_the_padded_ones(cls):
    """A PackedSequence (unsorted lengths) gives each sequence what it gives alone; an unbatched
    call gives the batched call's row."""
    torch.manual_seed(2)
    m = getattr(fastrnn, cls)(4, 5, num_layers=2, bidirectional=True, dtype=torch.float64)
    xs = [torch.randn(n, 4, dtype=torch.float64) for n in (3, 6, 1)]
    packed = torch.nn.utils.rnn.pack_sequence(xs, enforce_sorted=False)
    y, h = m(packed)
    y, lens = torch.nn.utils.rnn.pad_packed_sequence(y)
    h = h[0] if isinstance(h, tuple) else h
    for b, x in enumerate(xs):
        yb, hb = m(x)
        hb = hb[0] if isinstance(hb, tuple) else hb
        assert lens[b] == x.shape[0]
        torch.testing.assert_close(y[:x.shape[0], b], yb, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(h[:, b], hb, rtol=1e-10, atol=1e-12)


@KERNELS
def test_gradcheck_through_the_kernels(backend):
    for cls in (fastrnn.LayerNormLSTM, fastrnn.LayerNormGRU):
        m = cls(3, 4, dtype=torch.float64, backend=backend)
        names = [n for n, _ in m.named_parameters()]
        x = torch.randn(3, 2, 3, dtype=torch.float64, requires_grad=True)
        lengths = torch.tensor([3, 2])

        def f(x, *ps):
            packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths)
            y, h = torch.func.functional_call(m, dict(zip(names, ps)), (packed,))
            return y.data, *(h if isinstance(h, tuple) else (h,))
        params = tuple(p.detach().clone().requires_grad_(True) for p in m.parameters())
        assert torch.autograd.gradcheck(f, (x, *params))


@pytest.mark.parametrize("cls", ["LayerNormLSTM", "LayerNormGRU"])
def test_parameters_are_named_and_initialised_as_declared(cls):
    m = getattr(fastrnn, cls)(3, 4, num_layers=2, bidirectional=True)
    G = 16 if cls == "LayerNormLSTM" else 12
    shapes = {n: tuple(p.shape) for n, p in m.named_parameters()}
    assert shapes["weight_ih_l0"] == (G, 3) and shapes["weight_ih_l1_reverse"] == (G, 8)
    assert shapes["ln_hh_weight_l1_reverse"] == (G,)
    assert (cls == "LayerNormLSTM") == ("ln_c_bias_l0" in shapes)
    assert torch.equal(m.ln_ih_weight_l0, torch.ones(G))
    if cls == "LayerNormLSTM":
        assert torch.equal(m.ln_c_bias_l0, torch.zeros(4))
    assert not isinstance(m, (torch.nn.LSTM, torch.nn.GRU))


@pytest.mark.parametrize("cls", ["LayerNormLSTM", "LayerNormGRU"])
def test_bad_calls_say_what_was_expected(cls):
    m = getattr(fastrnn, cls)(3, 4)
    with pytest.raises(ValueError, match="input_size 3"):
        m(torch.randn(2, 1, 5))
    with pytest.raises(ValueError, match="2D or 3D"):
        m(torch.randn(5))
    with pytest.raises(RuntimeError, match="h_0: expected shape"):
        m(torch.randn(2, 1, 3), (torch.zeros(1, 2, 4),) * 2 if cls == "LayerNormLSTM"
          else torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="backend"):
        getattr(fastrnn, cls)(3, 4, backend="gpu")
    with pytest.raises(ValueError, match="'cuda' runs the LayerNorm cells on CUDA float32"):
        getattr(fastrnn, cls)(3, 4, backend="cuda")(torch.randn(2, 1, 3))
    with pytest.raises(ValueError, match="'native' runs the LayerNorm cells on CPU float32"):
        getattr(fastrnn, cls)(3, 4, backend="native").bfloat16()(torch.randn(2, 1, 3).bfloat16())
    with pytest.raises(ValueError, match="dropout"):
        getattr(fastrnn, cls)(3, 4, dropout=2)


@pytest.mark.parametrize("cls", ["LayerNormLSTM", "LayerNormGRU"])
@pytest.mark.parametrize("dynamo", [False, True])
def test_onnx_export_raises_naming_the_module(cls, dynamo, tmp_path):
    """Both exporters stop with the module's own message (the dynamo one inside its report)."""
    m = getattr(fastrnn, cls)(3, 4)
    with pytest.raises(Exception, match=f"{cls} cannot be exported to ONNX"):
        torch.onnx.export(m, (torch.randn(2, 1, 3),), str(tmp_path / "m.onnx"), dynamo=dynamo)
