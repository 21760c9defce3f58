"""Cells declared in Python (fastrnn.cell) on the native backend, against the same step run as a
per-step torch loop under autograd (backend='eager'): outputs, final states and every gradient."""
import importlib.util
import inspect
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import fastrnn
from _cases import rel_err
from fastrnn import dispatch
from fastrnn.user import build
from fastrnn.user.layer import layer

pytestmark = pytest.mark.skipif(dispatch.why_not("native") is not None,
                                reason="the native library is not built")


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """The compiled cells in a folder of this module's own (compiled once for all its tests)."""
    old = os.environ.get("FASTRNN_CACHE_DIR")
    os.environ["FASTRNN_CACHE_DIR"] = str(tmp_path_factory.mktemp("cells"))
    yield os.environ["FASTRNN_CACHE_DIR"]
    if old is None:
        del os.environ["FASTRNN_CACHE_DIR"]
    else:
        os.environ["FASTRNN_CACHE_DIR"] = old


def _examples():
    """examples/cells.py, the repository's example cells."""
    path = os.path.join(os.path.dirname(__file__), "..", "examples", "cells.py")
    spec = importlib.util.spec_from_file_location("example_cells", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXAMPLES = _examples()


def gru(gx, gh, h):  # torch.nn.GRU's step: r multiplies gh's n block, b_hh included
    xr, xz, xn = gx.chunk(3, -1)
    hr, hz, hn = gh.chunk(3, -1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return (1 - z) * n + z * h


def kinks(gx, gh, h, scale):  # relu, clamp, where, maximum, abs, pow, rsqrt, a flattened
    a, b = (gx + gh * scale.flatten()).split(gx.shape[-1] // 2, -1)  # vector, a tensor constant
    z = torch.where(a > 0, torch.relu(b), b.clamp(-1, 1)) + torch.tensor(0.5) * torch.maximum(a, h)
    return torch.tanh(z - 1 / (1 + a.abs()) + 0.1 * a.pow(2) + torch.rsqrt(b * b + 1) - h / 3)


def ind_rnn(gx, h, u):  # IndRNN (Li et al. 2018): h_t = relu(W x_t + u ⊙ h_{t−1} + b)
    return torch.relu(gx + u[0] * h)


CELLS = {
    "peephole_lstm": EXAMPLES.peephole_lstm,
    "cifg_lstm": EXAMPLES.cifg_lstm,
    "min_gru": EXAMPLES.min_gru,
    "ln_lstm": EXAMPLES.ln_lstm,
    "gru": fastrnn.cell(gates=3, states=("h",))(gru),
    "kinks": fastrnn.cell(gates=2, states=("h",), vectors={"scale": (2, 1.0)})(kinks),
    "ind_rnn": fastrnn.cell(gates=1, states=("h",), vectors={"u": (1, 0.5)},
                            recurrent=False)(ind_rnn),
}


def test_a_layernorm_lstm_written_as_a_cell_is_fastrnns_layernorm_lstm():
    """Row reductions (mean over a row) in passes: the user's LayerNorm LSTM (bias in a vector,
    as the built-in adds it after the LayerNorms) against fastrnn.LayerNormLSTM."""
    torch.manual_seed(4)
    builtin = fastrnn.LayerNormLSTM(5, 12, num_layers=2, dtype=torch.float64)
    user = fastrnn.Recurrent(CELLS["ln_lstm"], 5, 12, num_layers=2, bias=False,
                             dtype=torch.float64)
    with torch.no_grad():
        for p in builtin.parameters():
            p.add_(0.3 * torch.randn_like(p))
        for k in range(2):
            get = lambda n: getattr(builtin, f"{n}_l{k}")  # noqa: E731
            getattr(user, f"weight_ih_l{k}").copy_(get("weight_ih"))
            getattr(user, f"weight_hh_l{k}").copy_(get("weight_hh"))
            getattr(user, f"ln_ih_l{k}").copy_(get("ln_ih_weight").view(4, 12))
            getattr(user, f"ln_hh_l{k}").copy_(get("ln_hh_weight").view(4, 12))
            getattr(user, f"b_l{k}").copy_((get("bias_ih") + get("bias_hh")).view(4, 12))
            getattr(user, f"ln_c_l{k}").copy_(get("ln_c_weight")[None])
            getattr(user, f"shift_c_l{k}").copy_(get("ln_c_bias")[None])
    x = torch.randn(7, 3, 5, dtype=torch.float64, requires_grad=True)
    y, (h, c) = user(x)
    y2, (h2, c2) = builtin(x)
    for a, b in ((y, y2), (h, h2), (c, c2)):
        assert rel_err(a.detach(), b.detach()) <= 1e-12
    mine = ["weight_ih_l1", "weight_hh_l0", "ln_ih_l0", "ln_hh_l1", "ln_c_l0", "shift_c_l1"]
    theirs = ["weight_ih_l1", "weight_hh_l0", "ln_ih_weight_l0", "ln_hh_weight_l1",
              "ln_c_weight_l0", "ln_c_bias_l1"]
    w = lambda y, h, c: (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)  # noqa
                         ).sum() + (h ** 2).sum() + c.sum()
    got = torch.autograd.grad(w(y, h, c), [x] + [getattr(user, n) for n in mine])
    want = torch.autograd.grad(w(y2, h2, c2), [x] + [getattr(builtin, n) for n in theirs])
    for a, b in zip(got, want):
        assert rel_err(a.reshape(b.shape), b) <= 1e-10


def _pair(cell, I, H, dtype=torch.float64, **kw):
    """The module on the native backend and the same parameters on the eager loop."""
    torch.manual_seed(0)
    native = fastrnn.Recurrent(cell, I, H, dtype=dtype, backend="native", **kw)
    with torch.no_grad():
        for name, p in native.named_parameters():
            if not name.startswith(("weight", "bias")):
                p.add_(0.5 * torch.randn_like(p))
    loop = fastrnn.Recurrent(cell, I, H, dtype=dtype, backend="eager", **kw)
    loop.load_state_dict(native.state_dict())
    return native, loop


def _run(module, x, hx, packed_lengths=None, batch_first=False):
    """Outputs, final states, and the gradients of x, hx and every parameter of a loss that
    weighs each output differently."""
    inp = x
    if packed_lengths is not None:
        inp = torch.nn.utils.rnn.pack_padded_sequence(x, packed_lengths, batch_first=batch_first,
                                                      enforce_sorted=False)
    y, states = module(inp, hx)
    if packed_lengths is not None:
        y = y.data
    states = states if isinstance(states, tuple) else (states,)
    loss = (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum() + \
        sum((s ** 2).sum() * (k + 1) for k, s in enumerate(states))
    leaves = [x] + ([] if hx is None else list(hx if isinstance(hx, tuple) else (hx,)))
    grads = torch.autograd.grad(loss, leaves + list(module.parameters()), allow_unused=True)
    return [None if t is None else t.detach() for t in (y, *states, *grads)]


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("layers,bidirectional,batch_first,with_states,packed,bias", [
    (1, False, False, False, False, True),
    (2, True, False, True, False, True),
    (2, False, True, True, True, True),
    (1, True, True, False, True, False),
])
def test_float64_matches_the_torch_loop(name, layers, bidirectional, batch_first, with_states,
                                        packed, bias):
    cell = CELLS[name]
    T, B, I, H = 5, 4, 3, 6
    native, loop = _pair(cell, I, H, num_layers=layers, bidirectional=bidirectional,
                         batch_first=batch_first, bias=bias)
    g = torch.Generator().manual_seed(1)
    x = torch.randn((B, T, I) if batch_first else (T, B, I), generator=g, dtype=torch.float64)
    x.requires_grad_()
    D = 2 if bidirectional else 1
    hx = None
    if with_states:
        hx = tuple(torch.randn(layers * D, B, H, generator=g, dtype=torch.float64,
                               requires_grad=True) for _ in cell.states)
        hx = hx if len(hx) > 1 else hx[0]
    lengths = torch.tensor([5, 2, 4, 1]) if packed else None
    got = _run(native, x, hx, lengths, batch_first)
    want = _run(loop, x, hx, lengths, batch_first)
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        if b is None:
            assert a is None or not a.abs().max(), i
            continue
        assert rel_err(a, b) <= 1e-10, (i, rel_err(a, b))


@pytest.mark.parametrize("name", CELLS)
def test_float32_within_twice_the_loops_error(name):
    """float32 against float64, per tensor (outputs, final states, every gradient): within twice
    the per-step torch loop's error as the geometric mean over six draws (weights and inputs) of
    the ratio: a single draw's ratio is the loop's luck as much as the kernels' (even the
    summed error over all tensors of one draw reached 2.2x the loop's)."""
    cell, logs = CELLS[name], 0
    for draw in range(6):
        native, loop = _pair(cell, 8, 16, torch.float32, num_layers=2)
        g = torch.Generator().manual_seed(2 + draw)
        with torch.no_grad():
            for p in native.parameters():
                p.add_(0.1 * torch.randn(p.shape, generator=g))
        loop.load_state_dict(native.state_dict())
        exact = fastrnn.Recurrent(cell, 8, 16, dtype=torch.float64, backend="eager", num_layers=2)
        exact.load_state_dict({k: v.double() for k, v in native.state_dict().items()})
        x = torch.randn(30, 8, 8, generator=g)
        want = _run(exact, x.double().requires_grad_(), None)
        err = lambda m: torch.tensor([rel_err(a.double(), b) for a, b in  # noqa: E731
                                      zip(_run(m, x.clone().requires_grad_(), None), want)])
        logs = logs + (err(native) / err(loop)).log()
    ratios = (logs / 6).exp()
    assert ratios.max() <= 2, ratios


@pytest.mark.parametrize("name", CELLS)
def test_gradcheck(name):
    """x, the states, weights, biases and vectors of one layer, ragged lengths."""
    cell = CELLS[name]
    g = torch.Generator().manual_seed(3)
    T, B, I, H, G = 3, 2, 2, 3, cell.gates * 3
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64,  # noqa: E731
                               requires_grad=True)
    x, w_ih, b_ih = r(T, B, I), r(G, I), r(G)
    recurrent = [r(G, H), r(G)] if cell.recurrent else []  # W_hh, b_hh
    vectors = [r(n, H) for _, n in cell.vectors]
    states = [r(B, H) for _ in cell.states]
    m, n = len(recurrent), len(vectors)

    def f(x, w_ih, b_ih, *rest):
        w_hh, b_hh = rest[:m] if m else (None, None)
        y, finals = layer(cell, x, rest[m + n:], w_ih, w_hh, b_ih, b_hh, rest[m:m + n],
                          torch.tensor([3, 2]), backend="native")
        return (y, *finals)

    assert torch.autograd.gradcheck(f, (x, w_ih, b_ih, *recurrent, *vectors, *states))


@pytest.mark.parametrize("name", ["peephole_lstm", "ln_lstm", "min_gru"])
@pytest.mark.parametrize("T,B", [(20, 16), (32, 64)])
def test_results_are_bitwise_the_same_for_any_thread_count(name, T, B):
    """Each route (no-grad: G_x inside the loop; training: G_x by one GEMM) bitwise the same for
    1, 2 and 3 threads, the training route's gradients included (x's and every parameter's; at
    T·B = 2048 rows torch's threaded sgemm gives other weight gradients on an Intel Xeon); the
    two routes within float32 roundoff of each other."""
    cell = CELLS[name]
    native, _ = _pair(cell, 16, 64, torch.float32)
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            x = torch.randn(T, B, 16, generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                inference = native(x)
            y, states = native(x.requires_grad_())
            native.zero_grad()
            (y.square().sum() + sum(s.sum() for s in states)).backward()
            grads = [x.grad] + [p.grad for p in native.parameters()]
            results.append(([t.detach() for t in (inference[0], *inference[1])],
                            [t.detach() for t in (y, *states)], grads))
    finally:
        torch.set_num_threads(threads)
    for run in results[1:]:
        for a, b in zip(sum(results[0], []), sum(run, [])):
            assert torch.equal(a, b)
    for a, b in zip(results[0][0], results[0][1]):
        assert rel_err(a, b) <= 1e-5


def test_unbatched_input_and_the_module_form():
    cell = CELLS["gru"]
    native, loop = _pair(cell, 3, 5)
    x = torch.randn(4, 3, dtype=torch.float64)
    with torch.no_grad():
        y, h = native(x)
        y2, h2 = loop(x)
    assert y.shape == (4, 5) and h.shape == (1, 5)
    assert rel_err(y, y2) <= 1e-12 and rel_err(h, h2) <= 1e-12
    assert "gru" in repr(native)
    names = {n for n, _ in fastrnn.Recurrent(CELLS["peephole_lstm"], 3, 5, num_layers=2,
                                             bidirectional=True).named_parameters()}
    assert {"weight_ih_l0", "bias_hh_l1_reverse", "peep_l0", "peep_l1_reverse"} <= names
    names = {n for n, _ in fastrnn.Recurrent(CELLS["min_gru"], 3, 5).named_parameters()}
    assert names == {"weight_ih_l0", "bias_ih_l0"}  # no W_hh, no product
    scale = fastrnn.Recurrent(CELLS["kinks"], 3, 5).scale_l0
    assert scale.shape == (2, 5) and torch.equal(scale, torch.ones(2, 5))


@pytest.mark.parametrize("name", ["peephole_lstm", "kinks"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_the_direct_inference_call_equals_the_general_one(name, batch_first, monkeypatch):
    """One layer, no initial states, no gradient: the call goes straight to the kernel (the
    stacking is not run) and gives bitwise what the general path gives with zero states."""
    cell = CELLS[name]
    native, loop = _pair(cell, 3, 5, batch_first=batch_first)
    x = torch.randn(4, 6, 3, dtype=torch.float64)
    zeros = [torch.zeros(1, 4 if batch_first else 6, 5, dtype=torch.float64)
             for _ in cell.states]
    hx = zeros[0] if len(zeros) == 1 else tuple(zeros)
    with torch.no_grad():
        general = native(x, hx)  # (initial states given: the general path)
        stacked = fastrnn.stacked.Stacked.forward
        monkeypatch.setattr(fastrnn.stacked.Stacked, "forward",
                            lambda *a: pytest.fail("the direct call ran the stacking"))
        direct = native(x)
        monkeypatch.setattr(fastrnn.stacked.Stacked, "forward", stacked)
        eager = loop(x)
    for a, b, c in zip(torch.utils._pytree.tree_leaves(direct),
                       torch.utils._pytree.tree_leaves(general),
                       torch.utils._pytree.tree_leaves(eager)):
        assert torch.equal(a, b) and rel_err(a, c) <= 1e-12


def test_the_training_forward_keeps_every_product_only_for_a_backward_that_reads_it():
    """Products [T,B,G] are written on every training step only where the derived backward
    reads them: the LSTM-like cells keep what they need in sv (their backward writes dgh[ but
    reads no gh[), the LayerNorm cell recomputes from its products."""
    for name in ("peephole_lstm", "cifg_lstm"):
        assert not CELLS[name].keeps_products, name
        assert "dgh[" in CELLS[name].source
    assert CELLS["ln_lstm"].keeps_products


def bad_matmul(gx, gh, h):
    return torch.tanh(gx + gh) @ torch.eye(h.shape[-1], dtype=h.dtype)


def test_unsupported_ops_are_refused_at_declaration_naming_op_and_line():
    with pytest.raises(ValueError, match=r"bad_matmul: line \d+ \(return torch.tanh.*aten::"):
        fastrnn.cell(gates=1, states=("h",))(bad_matmul)
    with pytest.raises(ValueError, match="aten::cumsum is not supported"):
        fastrnn.cell(gates=1, states=("h",))(lambda gx, gh, h: torch.tanh(gx + gh).cumsum(-1))
    with pytest.raises(ValueError, match=r"aten::sum.dim_IntList over dimensions \[0\]: a step "
                                         r"may reduce a row over its last dimension only"):
        fastrnn.cell(gates=1, states=("h",))(lambda gx, gh, h: h - torch.tanh(gx).sum(0))
    with pytest.raises(ValueError, match="expected a step taking"):
        fastrnn.cell(gates=1, states=("h", "c"))(lambda gx, gh, h: h)
    with pytest.raises(ValueError, match="return the new states"):
        fastrnn.cell(gates=1, states=("h", "c"))(lambda gx, gh, h, c: h)
    with pytest.raises(ValueError, match="gates: expected a positive integer, got 0"):
        fastrnn.cell(gates=0, states=("h",))(lambda gx, gh, h: h)
    with pytest.raises(TypeError, match="cell: expected a cell declared with fastrnn.cell"):
        fastrnn.Recurrent(gru, 3, 5)


def test_onnx_export_raises_naming_the_cell(tmp_path):
    m = fastrnn.Recurrent(CELLS["gru"], 3, 5)
    with pytest.raises(Exception, match=r"Recurrent\(gru\) cannot be exported to ONNX"):
        torch.onnx.export(m, (torch.randn(2, 1, 3),), str(tmp_path / "m.onnx"), dynamo=False)


def test_a_second_process_finds_the_compiled_cell_on_disk(cache):
    script = "import torch, fastrnn\nfrom fastrnn.user import build\n" + \
        inspect.getsource(gru) + textwrap.dedent("""
        cell = fastrnn.cell(gates=3, states=("h",))(gru)
        fastrnn.Recurrent(cell, 3, 5)(torch.randn(2, 1, 3))
        print(build.compile_seconds["gru"])
    """)
    CELLS["gru"].libraries.clear()
    fastrnn.Recurrent(CELLS["gru"], 3, 5)(torch.randn(2, 1, 3))  # compiled here, if not yet
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=dict(os.environ, FASTRNN_CACHE_DIR=cache), check=True)
    assert float(out.stdout.split()[-1]) == 0.0  # found, not compiled
    assert any(f.startswith("gru-") for f in os.listdir(cache))
    assert build.cache_dir() == cache


def test_torch_compile_fullgraph_and_export_record_one_op_a_layer():
    cell = CELLS["peephole_lstm"]
    native, _ = _pair(cell, 3, 5, num_layers=2, bidirectional=True)
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    want = _run(native, x, None)
    got = _run(torch.compile(native, fullgraph=True), x, None)
    for a, b in zip(got, want):
        assert rel_err(a, b) <= 1e-12
    exported = torch.export.export(native, (x.detach(),))
    recorded = [n.target for n in exported.graph.nodes if n.op == "call_function"
                and "fastrnn_user" in str(n.target)]
    assert len(recorded) == 4 and len(set(recorded)) == 1  # 2 layers × 2 directions
    with torch.no_grad():
        y = exported.module()(x.detach())[0]
    assert rel_err(y, want[0]) <= 1e-12


def test_bench_cell_file_times_the_cell_against_its_loops(tmp_path):
    from fastrnn.harness import user_cell
    path = os.path.join(os.path.dirname(__file__), "..", "examples", "cells.py")
    cell = user_cell.load_cell(f"{path}:min_gru")
    rows = []
    report = user_cell.run(cell, str(tmp_path), [2], [8], [3], rounds=1, progress=rows.append)
    assert [r["pass_"] for r in rows] == ["forward", "train"]
    assert all(set(r["ms"]) == set(user_cell.CANDIDATES) for r in rows)
    assert open(report).read().count("| 3 | 2 | 8 |") == 2
    with pytest.raises(ValueError, match="expected FILE.py:NAME"):
        user_cell.load_cell(path)
    with pytest.raises(ValueError, match="has no cell 'layer_norm' declared with fastrnn.cell"):
        user_cell.load_cell(f"{path}:layer_norm")
