"""Each documented situation takes its route (fastrnn.routes), checked by what ran — the native
library's foreign calls, by kernel, and the op dispatches and autograd nodes torch's profiler
records — besides the route the chooser named; and every route agrees with the eager backend's
per-step torch loop (float64 roundoff; bfloat16's rounding where the call is in bfloat16)."""
import collections
import re

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import fastrnn
from fastrnn import _native_calls, routes

pytestmark = pytest.mark.skipif(fastrnn.dispatch.why_not("native") is not None,
                                reason="the routes to the kernels run on native")
f64, bf = torch.float64, torch.bfloat16


@pytest.fixture
def ran(monkeypatch):
    """What the calls in a test ran: .routes, the chooser's answers [(where, route)]; .kernels,
    the native library's kernel calls, by name without the fastrnn_ prefix and CPU variant."""
    lib, seen = _native_calls.library(), collections.Counter()
    real, choose = lib.lib, routes.choose
    record = type("Ran", (), {})()
    record.routes, record.kernels = [], seen

    class Counted:  # the library's functions, each call of a kernel counted
        def __getattr__(self, name):
            fn = getattr(real, name)
            if not re.search(r"_(forward|backward)", name):
                return fn
            stem = re.sub(r"^fastrnn_|_(avx512|avx2|base)$", "", name)
            return lambda *args: seen.update([stem]) or fn(*args)

    def chosen(where, *args, **kwargs):
        route = choose(where, *args, **kwargs)
        assert route in routes.ROUTES
        record.routes.append((where, route))
        return route

    def forget():  # the functions bound so far: bound again, through Counted or not
        lib._fns.clear()
        _native_calls._kernels.clear()

    forget()
    monkeypatch.setattr(lib, "lib", Counted())
    monkeypatch.setattr(routes, "choose", chosen)
    yield record
    forget()


def _profiled(fn):
    """fn()'s result and the names of the ops and autograd nodes torch's profiler recorded."""
    with torch.autograd.profiler.profile() as prof:
        out = fn()
    return out, collections.Counter(e.name for e in prof.function_events)


def _fastrnn_ops(events):
    """The custom ops dispatched (a traced op with gradients shows twice: its autograd layer and
    its kernel)."""
    return {k for k in events if k.startswith("fastrnn::")}


def _flat(out):
    """The tensors of a module's result (a PackedSequence's data)."""
    if isinstance(out, PackedSequence):
        return [out.data]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat(o)]
    return [out]


def _run(m, x, train=False):
    """m(x)'s tensors, and with `train` x's gradient and the parameters' after a backward; x a
    tensor or a PackedSequence."""
    packed = isinstance(x, PackedSequence)
    data = (x.data if packed else x).detach().requires_grad_(train)
    with torch.set_grad_enabled(train):
        out = _flat(m(PackedSequence(data, *x[1:]) if packed else data))
    if not train:
        return out
    m.zero_grad()
    sum(t.float().square().sum() for t in out).backward()
    return out + [data.grad] + [p.grad for p in m.parameters()]


def _agree(m, got, call, tol=1e-12):
    """got equals the same call on the eager backend, each tensor to `tol` of its largest value."""
    backend, m.backend = m.backend, "eager"
    try:
        want = call()
    finally:
        m.backend = backend
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape
        scale = b.double().abs().max().clamp_min(1e-30)
        assert (a.double() - b.double()).abs().max() <= tol * scale


def _lstm(dtype=f64, **kw):
    torch.manual_seed(0)
    return fastrnn.LSTM(5, 6, **kw).to(dtype), torch.randn(4, 3, 5, dtype=dtype)


@pytest.mark.parametrize("mode, stem", [("LSTM", "lstm"), ("GRU", "gru"), ("RNN", "rnn_tanh"),
                                        ("RNN-relu", "rnn_relu")])
@pytest.mark.parametrize("train", [False, True])
def test_eager_calls(ran, mode, stem, train):
    """Eager training: the layers route, then one autograd node a layer (_LayerAutograd) around
    the forward_x kernel and its BPTT. Without gradients: the direct route, one foreign call a
    layer and direction and no torch op but allocations (no autograd node, no custom op)."""
    torch.manual_seed(0)
    kw = dict(nonlinearity="relu") if mode == "RNN-relu" else {}
    m = getattr(fastrnn, mode.split("-")[0])(5, 6, num_layers=2, **kw).double()
    x = torch.randn(4, 3, 5, dtype=f64)
    got, events = _profiled(lambda: _run(m, x, train=train))
    if train:
        assert ran.routes == [("module", "layers"), ("layer", "autograd"), ("layer", "autograd")]
        assert ran.kernels == {f"{stem}_forward_x_f64": 2, f"{stem}_backward_f64": 2}
        assert events["_LayerAutograd"] == 2
    else:
        assert ran.routes == [("module", "direct")]
        assert ran.kernels == {f"{stem}_forward_x_infer_f64": 2}
        assert "_LayerAutograd" not in events
    # (no initial state: direct hands the kernel NULL, the layers' plumbing makes zeros)
    assert ("aten::new_zeros" in events) == train
    assert not _fastrnn_ops(events) and "aten::linear" not in events  # (G_x in the kernel)
    _agree(m, got, lambda: _run(m, x, train=train))


@pytest.mark.parametrize("train", [False, True])
def test_packed_and_bidirectional_calls_take_the_layers(ran, train):
    """A PackedSequence (and a bidirectional call of more than one step) goes through the module's
    plumbing: per layer and direction the no_grad route (the forward_x kernel, nothing kept) or
    the autograd one."""
    m, x = _lstm(bidirectional=True)
    packed = pack_padded_sequence(x, [4, 2, 1])
    got, events = _profiled(lambda: _run(m, packed, train=train))
    layer = "autograd" if train else "no_grad"
    assert ran.routes == [("module", "layers"), ("layer", layer), ("layer", layer)]
    want = {"lstm_forward_x_f64" if train else "lstm_forward_x_infer_f64": 2}
    assert ran.kernels == (want | {"lstm_backward_f64": 2} if train else want)
    assert events["_LayerAutograd"] == (2 if train else 0)
    assert "aten::new_zeros" in events  # (the plumbing's initial states)
    assert not _fastrnn_ops(events) and "aten::linear" not in events
    _agree(m, got, lambda: _run(m, packed, train=train))


def test_one_step_of_a_bidirectional_stack_is_direct(ran):
    """T = 1 reads the same both ways: a bidirectional stack without gradients runs direct."""
    m, x = _lstm(num_layers=2, bidirectional=True)
    got, events = _profiled(lambda: _run(m, x[:1]))
    assert ran.routes == [("module", "direct")]
    assert ran.kernels == {"lstm_forward_x_infer_f64": 4}
    assert not _fastrnn_ops(events) and "_LayerAutograd" not in events
    _agree(m, got, lambda: _run(m, x[:1]))


@pytest.mark.parametrize("cls", ["LSTMCell", "GRUCell", "RNNCell"])
@pytest.mark.parametrize("train", [False, True])
def test_cells_step_straight_to_the_kernel(ran, cls, train):
    """A cell's step: direct without gradients; with them, the step route — one autograd node
    (Step) and one foreign call each way."""
    torch.manual_seed(0)
    m = getattr(fastrnn, cls)(5, 6).double()
    x = torch.randn(3, 5, dtype=f64)
    got, events = _profiled(lambda: _run(m, x, train=train))
    stem = {"LSTMCell": "lstm", "GRUCell": "gru", "RNNCell": "rnn_tanh"}[cls]
    assert ran.routes == [("cell", "step" if train else "direct")]
    if train:
        assert ran.kernels == {f"{stem}_forward_x_f64": 1, f"{stem}_backward_f64": 1}
        assert events["Step"] == 1
    else:
        assert ran.kernels == {f"{stem}_forward_x_infer_f64": 1}
        assert "Step" not in events
    assert not _fastrnn_ops(events)
    _agree(m, got, lambda: _run(m, x, train=train))


def test_torch_compile_records_the_custom_ops(ran):
    """torch.compile: the traced route, F.linear and the custom op in its graph; running it
    dispatches fastrnn::lstm_forward and, in the backward, fastrnn::lstm_backward, which run the
    forward kernel that takes G_x ready and its BPTT."""
    m, x = _lstm()
    torch._dynamo.reset()
    with torch._dynamo.config.patch(allow_rnn=True):  # (the README's line for torch.nn RNNs)
        compiled = torch.compile(m, backend="eager", fullgraph=True)
        _run(compiled, x, train=True)  # compiles
        assert ran.routes == [("module", "layers"), ("layer", "traced")]
        ran.kernels.clear()
        got, events = _profiled(lambda: _run(compiled, x, train=True))
    torch._dynamo.reset()
    assert ran.kernels == {"lstm_forward_f64": 1, "lstm_backward_f64": 1}
    assert _fastrnn_ops(events) == {"fastrnn::lstm_forward", "fastrnn::lstm_backward"}
    assert "_LayerAutograd" not in events and "aten::linear" in events
    _agree(m, got, lambda: _run(m, x, train=True))


def test_torch_export_and_jit_trace_record_the_custom_op(ran):
    """torch.export and torch.jit.trace: the traced route; the exported program and the
    TorchScript graph call fastrnn::lstm_forward, which runs the forward kernel."""
    m, x = _lstm()
    program = torch.export.export(m, (x,))
    assert ran.routes == [("module", "layers"), ("layer", "traced")]
    assert "torch.ops.fastrnn.lstm_forward" in program.graph_module.code
    ran.routes.clear()
    with torch.no_grad():
        traced = torch.jit.trace(m, (x,), check_trace=False)  # (its check reruns m eagerly)
    assert ran.routes == [("module", "layers"), ("layer", "traced")]
    assert "fastrnn::lstm_forward" in str(traced.graph)
    for run in (program.module(), traced):
        ran.kernels.clear()
        got, events = _profiled(lambda: _run(run, x))
        assert sum(ran.kernels.values()) == 1
        assert set(ran.kernels) <= {"lstm_forward_f64", "lstm_forward_infer_f64"}
        assert _fastrnn_ops(events) == {"fastrnn::lstm_forward"}
        _agree(m, got, lambda: _run(m, x))


def test_onnx_export_records_torch_nn(ran, tmp_path):
    """ONNX export: the onnx route, torch.nn's own forward (a standard LSTM node); no kernel."""
    onnx = pytest.importorskip("onnx")
    m, x = _lstm(torch.float32)
    path = tmp_path / "m.onnx"
    torch.onnx.export(m.eval(), (x,), str(path), dynamo=False)
    assert ran.routes == [("module", "onnx")]
    assert not ran.kernels
    assert "LSTM" in {n.op_type for n in onnx.load(str(path)).graph.node}


@pytest.mark.parametrize("train", [False, True])
def test_autocast_runs_the_float32_kernels(ran, train):
    """Under autocast to bfloat16 an LSTM runs the float32 kernels with bfloat16 products: direct
    without gradients, the autograd route with them; results in bfloat16 as torch.nn's."""
    m, x = _lstm(torch.float32)
    with torch.autocast("cpu", dtype=bf):
        got, events = _profiled(lambda: _run(m, x, train=train))
        want = [("module", "direct")] if not train else [("module", "layers"),
                                                           ("layer", "autograd")]
        assert ran.routes == want
        assert ran.kernels == ({"lstm_forward_x_f32": 1, "lstm_backward_f32": 1} if train
                               else {"lstm_forward_x_infer_f32": 1})
        assert got[0].dtype == bf
        _agree(m, got, lambda: _run(m, x, train=train), tol=2e-2)


@pytest.mark.parametrize("train", [False, True])
def test_bfloat16_modules(ran, train):
    """A bfloat16 module on native hands the kernels bfloat16 as it is (its _bf16 kernels):
    direct without gradients, the autograd route with them. With a projection (LSTMP) the
    layer is widened: float32 copies around the float32 kernels, then the autograd route."""
    m, x = _lstm(bf)
    got, _ = _profiled(lambda: _run(m, x, train=train))
    if train:
        assert ran.routes == [("module", "layers"), ("layer", "autograd")]
        assert ran.kernels == {"lstm_forward_x_bf16_f32": 1, "lstm_backward_f32": 1}
    else:
        assert ran.routes == [("module", "direct")]
        assert ran.kernels == {"lstm_forward_x_infer_bf16_f32": 1}
    _agree(m, got, lambda: _run(m, x, train=train), tol=2e-2)
    ran.routes.clear()
    ran.kernels.clear()
    torch.manual_seed(0)
    p = fastrnn.LSTM(5, 6, proj_size=3).to(bf)
    got = _run(p, x, train=train)
    assert ran.routes == [("module", "layers"), ("layer", "widened"),
                          ("layer", "autograd" if train else "no_grad")]
    assert ran.kernels == ({"lstmp_forward_x_f32": 1, "lstmp_backward_f32": 1} if train
                           else {"lstmp_forward_x_infer_f32": 1})
    _agree(p, got, lambda: _run(p, x, train=train), tol=2e-2)


def test_the_eager_backend_runs_no_kernel(ran):
    m, x = _lstm()
    m.backend = "eager"
    _run(m, x, train=True)
    assert ran.routes == [("module", "layers"), ("layer", "eager")]
    assert not ran.kernels


@pytest.mark.parametrize("cls", ["LayerNormLSTM", "LayerNormGRU"])
@pytest.mark.parametrize("train", [False, True])
def test_layernorm_cells_take_the_layer_routes(ran, cls, train):
    """The LayerNorm modules' layers: autograd or no_grad, V = x W_ihᵀ by torch, the rest in the
    kernels."""
    torch.manual_seed(0)
    m = getattr(fastrnn, cls)(5, 6).double()
    x = torch.randn(4, 3, 5, dtype=f64)
    got, events = _profiled(lambda: _run(m, x, train=train))
    stem = "ln_lstm" if cls == "LayerNormLSTM" else "ln_gru"
    assert ran.routes == [("layer", "autograd" if train else "no_grad")]
    assert ran.kernels == ({f"{stem}_forward_f64": 1, f"{stem}_backward_f64": 1} if train
                           else {f"{stem}_forward_infer_f64": 1})
    assert events["_LayerAutograd"] == (1 if train else 0)
    assert not _fastrnn_ops(events)
    _agree(m, got, lambda: _run(m, x, train=train))
