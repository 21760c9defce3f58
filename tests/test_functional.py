"""The functional API: argument errors, backend choice, custom-op registration, torch.compile."""
import pytest
import torch

import fastrnn
import fastrnn.functional as F
from fastrnn import autograd, dispatch, routes

KERNELS = [b for b in fastrnn.backends() if b in ("numba", "native")]


def _lstm_args(T=3, B=2, I=4, H=5, dtype=torch.float32):
    return (torch.randn(T, B, I, dtype=dtype), None, torch.randn(4 * H, I, dtype=dtype),
            torch.randn(4 * H, H, dtype=dtype), torch.randn(4 * H, dtype=dtype),
            torch.randn(4 * H, dtype=dtype))


def test_backends_lists_what_runs_here():
    names = fastrnn.backends()
    assert "eager" in names and "numba" in names
    assert set(names) <= set(dispatch.NAMES)
    for name in set(dispatch.NAMES) - set(names):
        assert dispatch.why_not(name)


def test_auto_picks_the_c_library_on_cpu():
    x = torch.randn(2, 2, 2)
    assert F.resolve_backend(x) == "native"
    assert F.resolve_backend(x.double()) == "native"
    assert F.resolve_backend(x.half()) == "eager"



@pytest.mark.parametrize("bad,match", [
    (dict(x=torch.randn(3, 4)), r"x: expected shape \[\*, \*, \*\], got \[3, 4\]"),
    (dict(w_ih=torch.randn(20, 3)), r"w_ih: expected shape \[\*, 4\], got \[20, 3\]"),
    (dict(w_hh=torch.randn(20, 4)), r"w_hh: expected shape \[20, 5\], got \[20, 4\]"),
    (dict(b_ih=torch.randn(19)), r"b_ih: expected shape \[20\], got \[19\]"),
    (dict(hx=(torch.randn(3, 5), None)), r"h0: expected shape \[2, 5\], got \[3, 5\]"),
    (dict(w_hh=torch.randn(20, 5, dtype=torch.float64)), r"w_hh: expected dtype torch.float32"),
    (dict(lengths=[3, 4]), r"lengths: expected values in 0..3 .*max 4"),
    (dict(lengths=[3]), r"lengths: expected shape \[2\]"),
    (dict(backend="cudnn"), r"backend must be one of .*got 'cudnn'"),
])
def test_bad_arguments_name_the_argument(bad, match):
    x, hx, w_ih, w_hh, b_ih, b_hh = _lstm_args()
    kw = dict(x=x, hx=hx, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh) | bad
    with pytest.raises((ValueError, TypeError), match=match):
        F.lstm(**kw)


def test_bad_nonlinearity_and_gate_count():
    x = torch.randn(2, 1, 3)
    with pytest.raises(ValueError, match="nonlinearity: expected one of .*got 'sigmoid'"):
        F.rnn(x, None, torch.randn(4, 3), torch.randn(4, 4), nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="w_ih: expected 3·H rows, got 7"):
        F.gru(x, None, torch.randn(7, 3), torch.randn(7, 2))


@pytest.mark.parametrize("backend", KERNELS)
def test_kernel_backends_refuse_what_they_do_not_cover(backend):
    x, hx, w_ih, w_hh, b_ih, b_hh = _lstm_args()
    with pytest.raises(ValueError, match="float32, float64 or bfloat16 input, got torch.float16"):
        F.lstm(x.half(), None, w_ih.half(), w_hh.half(), backend=backend)



@pytest.mark.parametrize("backend", KERNELS)
def test_second_derivatives_raise_clearly(backend):
    x, hx, w_ih, w_hh, b_ih, b_hh = _lstm_args(dtype=torch.float64)
    x.requires_grad_(True)
    y, _ = F.lstm(x, None, w_ih, w_hh, b_ih, b_hh, backend=backend)
    (gx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="second derivatives .* use backend='eager'"):
        gx.sum().backward()


@pytest.mark.parametrize("backend", KERNELS)
@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN", "LayerNormLSTM", "LayerNormGRU"])
def test_second_derivatives_raise_clearly_from_every_module(backend, cls):
    """Even where only x requires grad (the gradient depends on x through the saved buffers
    alone) and the result is summed with a term that does: never a silently dropped term."""
    torch.manual_seed(0)
    m = getattr(fastrnn, cls)(3, 4, backend=backend).double()
    for p in m.parameters():
        p.requires_grad_(False)
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    (gx,) = torch.autograd.grad((m(x)[0] ** 2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="second derivatives .* use backend='eager'"):
        (gx.sum() + (x ** 2).sum()).backward()


def test_eager_supports_second_derivatives():
    x, hx, w_ih, w_hh, b_ih, b_hh = _lstm_args(dtype=torch.float64)
    x.requires_grad_(True)
    y, _ = F.lstm(x, None, w_ih, w_hh, b_ih, b_hh, backend="eager")
    (gx,) = torch.autograd.grad((y**2).sum(), x, create_graph=True)
    (ggx,) = torch.autograd.grad(gx.sum(), x)
    assert ggx.abs().sum() > 0


def test_eager_runs_half_precision():
    x, hx, w_ih, w_hh, b_ih, b_hh = _lstm_args()
    y, (h, c) = F.lstm(x.bfloat16(), None, w_ih.bfloat16(), w_hh.bfloat16())
    assert y.dtype == torch.bfloat16 and y.shape == (3, 2, 5)


@pytest.mark.parametrize("backend", KERNELS)
def test_custom_ops_pass_opcheck(backend):
    """Schema, fake (meta) implementations and autograd registration, checked by torch."""
    T, B, H = 3, 2, 4
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True)  # noqa
    n = torch.tensor([3, 2])
    cases = [(autograd.rnn_forward, (r(T, B, H), r(B, H), r(H, H), n, False, True, backend)),
             (autograd.lstm_forward, (r(T, B, 4 * H), r(B, H), r(B, H), r(4 * H, H), n, True,
                                      backend)),
             (autograd.gru_forward, (r(T, B, 3 * H), r(B, H), r(3 * H, H), r(3 * H), n, True,
                                     backend)),
             (autograd.lstmp_forward, (r(T, B, 4 * H), r(B, 3), r(B, H), r(4 * H, 3), r(3, H), n,
                                       True, backend))]
    for op, args in cases:
        torch.library.opcheck(op, args, test_utils=("test_schema", "test_faketensor",
                                                   "test_autograd_registration"))


@pytest.mark.parametrize("backend", KERNELS)
def test_torch_compile_traces_the_ops(backend):
    x, hx, w_ih, w_hh, b_ih, b_hh = _lstm_args()
    x.requires_grad_(True)

    def f(x):
        y, (h, c) = F.lstm(x, None, w_ih, w_hh, b_ih, b_hh, backend=backend)
        return y.sum() + h.sum()

    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    # eager computes G_x inside the native kernel (autograd.CellOps): equal to float32 roundoff
    assert torch.allclose(compiled(x), f(x), rtol=1e-5, atol=1e-5)
    (g1,) = torch.autograd.grad(compiled(x), x)
    (g2,) = torch.autograd.grad(f(x), x)
    assert torch.allclose(g1, g2, rtol=1e-5, atol=1e-5)


def test_unusable_backend_says_how_to_build_it(monkeypatch):
    monkeypatch.setitem(dispatch._why_not, "native", "ImportError: libfastrnn_cpu.so missing")
    monkeypatch.delitem(dispatch._loaded, "native", raising=False)
    x, hx, w_ih, w_hh, b_ih, b_hh = _lstm_args()
    with pytest.raises(RuntimeError, match="'native' is not usable.*To build it"):
        F.lstm(x, None, w_ih, w_hh, backend="native")
    monkeypatch.setattr(dispatch, "_warned", set())
    with pytest.warns(RuntimeWarning, match="'native' is unavailable"):
        assert F.resolve_backend(x) == "numba"


@pytest.mark.parametrize("backend", KERNELS)
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "lstmp"])
def test_fast_eager_path_equals_the_op_path(backend, cell, monkeypatch):
    """Eager calls skip torch.library's dispatch; traced ones go through the ops. Same numbers,
    outputs and gradients, to float32 roundoff: the eager call passes x to the kernels (native
    computes G_x inside) and takes the weight gradients' GEMMs over the running rows alone (a
    ragged batch: _running); the op path has F.linear and GEMMs over every row."""
    G, R = {"rnn": 1, "lstm": 4, "gru": 3, "lstmp": 4}[cell], 4 if cell == "lstmp" else 6
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, 4, generator=g)
    w = [torch.randn(G * 6, 4, generator=g), torch.randn(G * 6, R, generator=g),
         torch.randn(G * 6, generator=g), torch.randn(G * 6, generator=g)]
    w += [torch.randn(R, 6, generator=g)] if cell == "lstmp" else []
    fn = getattr(F, cell[:4])

    def run():
        xs, ws = x.clone().requires_grad_(), [t.clone().requires_grad_() for t in w]
        y, h = fn(xs, None, *ws, lengths=[5, 2, 4], backend=backend)
        h = h[0] if cell.startswith("lstm") else h
        (y.sum() + (h * h).sum()).backward()
        with torch.no_grad():
            y_inf = fn(x, None, *w, lengths=[5, 2, 4], backend=backend)[0]
        return [y, h, y_inf, xs.grad, *[t.grad for t in ws]]

    fast = run()
    monkeypatch.setattr(routes, "traced", lambda: True)
    op = run()
    for a, b in zip(fast, op):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5)


def test_a_call_under_inference_mode_does_not_break_a_later_training_call():
    """The shared full-lengths tensor is made outside inference mode, so backward can save it."""
    m = fastrnn.LSTM(4, 6)
    x = torch.randn(5, 2, 4)
    with torch.inference_mode():
        m(x)
    y, _ = m(x)
    y.sum().backward()
    assert m.weight_hh_l0.grad is not None and torch.isfinite(m.weight_hh_l0.grad).all()
