"""The drop-in modules against torch.nn with the same state_dict: outputs, final states and
every gradient, over random configurations; the cells; state_dict round trips; convert."""
import copy
import random

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_sequence

import fastrnn
from _cases import float32_limit, rel_err

BACKENDS = ["auto"] + [b for b in fastrnn.backends() if b != "cuda"]
PAIRS = {"RNN": (torch.nn.RNN, fastrnn.RNN), "LSTM": (torch.nn.LSTM, fastrnn.LSTM),
         "GRU": (torch.nn.GRU, fastrnn.GRU)}


def _configs(n=36):
    rng = random.Random(5)
    out = []
    for k in range(n):
        mode = ["RNN", "LSTM", "GRU"][k % 3]
        kw = dict(input_size=rng.choice([1, 3, 7]), hidden_size=rng.choice([1, 5, 12]),
                  num_layers=rng.choice([1, 2, 3]), bias=rng.random() > 0.25,
                  batch_first=rng.random() > 0.5, bidirectional=rng.random() > 0.5,
                  dropout=rng.choice([0.0, 0.3]))
        if mode == "RNN":
            kw["nonlinearity"] = rng.choice(["tanh", "relu"])
        if mode == "LSTM" and k % 4 == 1:
            kw["proj_size"] = rng.choice([1, 3])
        form = ["padded", "packed_sorted", "packed_unsorted", "unbatched"][(k // 3) % 4]
        out.append((mode, kw, form, k % 2 == 0, k))
    return out


CONFIGS = _configs()
IDS = [f"{m}-{f}-{'hx' if h else 'nohx'}-{i}" for m, kw, f, h, i in CONFIGS]


def _inputs(mode, kw, form, given_hx, seed, dtype):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64).to(dtype)  # noqa: E731
    I, H = kw["input_size"], kw["hidden_size"]
    D, L = 2 if kw["bidirectional"] else 1, kw["num_layers"]
    H_out = kw.get("proj_size", 0) or H
    if form == "unbatched":
        B, x = None, r(6, I)
    elif form == "padded":
        B = 3
        x = r(3, 6, I) if kw["batch_first"] else r(6, 3, I)
    else:
        lens = [6, 4, 4, 1] if form == "packed_sorted" else [3, 6, 1, 4]
        B, x = 4, pack_sequence([r(n, I) for n in lens], enforce_sorted=form == "packed_sorted")
    shape = (L * D, H_out) if B is None else (L * D, B, H_out)
    hx = None
    if given_hx:
        hx = r(*shape)
        if mode == "LSTM":
            hx = (hx, r(*shape[:-1], H))
    return x, hx


def _run(module, x, hx, seed):
    """Outputs, final states and the gradients of a random weighting of them, by name."""
    leaves = {}
    if isinstance(x, PackedSequence):
        data = x.data.clone().requires_grad_(True)
        x, leaves["x"] = PackedSequence(data, x.batch_sizes, x.sorted_indices, x.unsorted_indices), data
    else:
        x = leaves["x"] = x.clone().requires_grad_(True)
    if hx is not None:
        hx = tuple(h.clone().requires_grad_(True) for h in hx) if isinstance(hx, tuple) \
            else hx.clone().requires_grad_(True)
        leaves |= {f"hx{i}": h for i, h in enumerate(hx if isinstance(hx, tuple) else (hx,))}
    leaves |= dict(module.named_parameters())
    y, h = module(x, hx)
    outs = {"y": y.data if isinstance(y, PackedSequence) else y}
    outs |= {f"h_n{i}": t for i, t in enumerate(h if isinstance(h, tuple) else (h,))}
    g = torch.Generator().manual_seed(seed + 1)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=torch.float64).to(o.dtype)).sum()
               for o in outs.values())
    grads = torch.autograd.grad(loss, list(leaves.values()))
    res = {k: v.detach().double() for k, v in outs.items()}
    res |= {"d" + k: v.double() for k, v in zip(leaves, grads)}
    return res


def _pair(mode, kw, backend, dtype):
    """torch.nn and fastrnn modules with one state_dict."""
    torch_cls, fast_cls = PAIRS[mode]
    torch.manual_seed(0)
    nn = torch_cls(**kw).to(dtype).eval()
    fast = fast_cls(**kw, backend=backend).to(dtype).eval()
    fast.load_state_dict(nn.state_dict())
    return nn, fast


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode,kw,form,given_hx,seed", CONFIGS, ids=IDS)
def test_module_matches_torch_nn_float64(backend, mode, kw, form, given_hx, seed):
    nn, fast = _pair(mode, kw, backend, torch.float64)
    x, hx = _inputs(mode, kw, form, given_hx, seed, torch.float64)
    want, got = _run(nn, x, hx, seed), _run(fast, x, hx, seed)
    assert got.keys() == want.keys()
    for k in want:
        assert got[k].shape == want[k].shape, k
        assert rel_err(got[k].numpy(), want[k].numpy()) <= 1e-10, k


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode,kw,form,given_hx,seed", CONFIGS, ids=IDS)
def test_module_float32_error_is_torch_nn_level(backend, mode, kw, form, given_hx, seed):
    nn64, _ = _pair(mode, kw, backend, torch.float64)
    nn32, fast32 = _pair(mode, kw, backend, torch.float32)
    x64, hx64 = _inputs(mode, kw, form, given_hx, seed, torch.float64)
    x32, hx32 = _inputs(mode, kw, form, given_hx, seed, torch.float32)
    ref, nn, got = _run(nn64, x64, hx64, seed), _run(nn32, x32, hx32, seed), _run(fast32, x32, hx32, seed)
    for k in ref:
        err, nn_err = rel_err(got[k].numpy(), ref[k].numpy()), rel_err(nn[k].numpy(), ref[k].numpy())
        assert err <= float32_limit(nn_err), f"{k}: {err:.2e} vs torch.nn {nn_err:.2e}"


@pytest.mark.parametrize("mode", PAIRS)
def test_same_seed_same_parameters_and_state_dicts_load_both_ways(mode):
    torch_cls, fast_cls = PAIRS[mode]
    kw = dict(input_size=4, hidden_size=6, num_layers=2, bidirectional=True)
    torch.manual_seed(3)
    nn = torch_cls(**kw)
    torch.manual_seed(3)
    fast = fast_cls(**kw)
    assert isinstance(fast, torch_cls)
    assert [n for n, _ in nn.named_parameters()] == [n for n, _ in fast.named_parameters()]
    for (_, p), (_, q) in zip(nn.named_parameters(), fast.named_parameters()):
        assert torch.equal(p, q)
    other = torch_cls(**kw)
    other.load_state_dict(fast.state_dict())
    fast.load_state_dict(torch_cls(**kw).state_dict())
    fast.flatten_parameters()


def test_dropout_is_applied_between_layers_in_training():
    torch.manual_seed(0)
    m = fastrnn.LSTM(3, 8, num_layers=2, dropout=0.5)
    x = torch.randn(5, 2, 3)
    m.eval()
    y_eval, _ = m(x)
    m.train()
    torch.manual_seed(1)
    y1, _ = m(x)
    torch.manual_seed(1)
    y2, _ = m(x)
    assert torch.equal(y1, y2) and not torch.allclose(y1, y_eval)


def test_last_backend_reports_what_ran():
    m = fastrnn.LSTM(3, 4)
    m(torch.randn(2, 1, 3))
    assert m.last_backend in ("native", "numba")
    p = fastrnn.LSTM(3, 4, proj_size=2)
    p(torch.randn(2, 1, 3))
    assert p.last_backend == m.last_backend  # the projection runs on the same kernels
    p.half()(torch.randn(2, 1, 3).half())
    assert p.last_backend == "eager"


def test_module_errors_match_torch():
    m = fastrnn.GRU(3, 4)
    with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size"):
        m(torch.randn(2, 1, 5))
    with pytest.raises(RuntimeError, match="Expected hidden size"):
        m(torch.randn(2, 1, 3), torch.randn(1, 2, 4))
    with pytest.raises(ValueError, match="expected input to be 2D or 3D, got 4D"):
        m(torch.randn(2, 1, 3, 1))


CELLS = {"RNNCell": (torch.nn.RNNCell, fastrnn.RNNCell), "LSTMCell": (torch.nn.LSTMCell, fastrnn.LSTMCell),
         "GRUCell": (torch.nn.GRUCell, fastrnn.GRUCell)}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("batched,given_hx,bias", [(True, True, True), (True, False, False),
                                                   (False, True, True), (False, False, True)])
def test_cells_match_torch_nn(backend, name, batched, given_hx, bias):
    torch_cls, fast_cls = CELLS[name]
    kw = dict(input_size=5, hidden_size=7, bias=bias)
    if name == "RNNCell":
        kw["nonlinearity"] = "relu"
    torch.manual_seed(0)
    nn = torch_cls(**kw).double()
    torch.manual_seed(0)
    fast = fast_cls(**kw, backend=backend).double()
    assert isinstance(fast, torch_cls)
    x = torch.randn(3, 5, dtype=torch.float64) if batched else torch.randn(5, dtype=torch.float64)
    hshape = (3, 7) if batched else (7,)
    hx = None
    if given_hx:
        hx = torch.randn(hshape, dtype=torch.float64)
        hx = (hx, torch.randn(hshape, dtype=torch.float64)) if name == "LSTMCell" else hx

    def run(m):
        xx = x.clone().requires_grad_(True)
        out = m(xx, hx)
        outs = out if isinstance(out, tuple) else (out,)
        loss = sum((o * (i + 1.5)).sum() for i, o in enumerate(outs))
        grads = torch.autograd.grad(loss, [xx] + list(m.parameters()))
        return list(outs) + list(grads)

    for a, b in zip(run(fast), run(nn)):
        assert a.shape == b.shape
        assert rel_err(a.detach().numpy(), b.detach().numpy()) <= 1e-10


class _Tagger(torch.nn.Module):
    """Embedding → 2-layer bidirectional LSTM → GRU → GRUCell over the last step → head."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(50, 8)
        self.lstm = torch.nn.LSTM(8, 16, num_layers=2, bidirectional=True, batch_first=True)
        self.gru = torch.nn.GRU(32, 12, batch_first=True)
        self.cell = torch.nn.GRUCell(12, 12)
        self.head = torch.nn.Linear(12, 3)

    def forward(self, tokens):
        y, _ = self.lstm(self.emb(tokens))
        y, h = self.gru(y)
        return self.head(self.cell(y[:, -1], h[0]))


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_convert_keeps_weights_mode_and_outputs(dtype, tol):
    torch.manual_seed(0)
    model = _Tagger().to(dtype).eval()
    tokens = torch.randint(0, 50, (4, 9))
    before = model(tokens)
    params = [p for p in model.parameters()]
    assert fastrnn.convert(model) is model
    assert type(model.lstm) is fastrnn.LSTM and type(model.gru) is fastrnn.GRU
    assert type(model.cell) is fastrnn.GRUCell and type(model.head) is torch.nn.Linear
    assert all(p is q for p, q in zip(params, model.parameters()))
    assert not model.training and model.lstm.weight_ih_l0.dtype == dtype
    after = model(tokens)
    assert model.lstm.last_backend in ("native", "numba")
    assert rel_err(after.detach().numpy(), before.detach().numpy()) <= tol
    copy.deepcopy(model)(tokens)  # a converted model still copies and runs


def test_convert_to_torch_undoes_convert():
    torch.manual_seed(0)
    model = _Tagger().eval()
    tokens = torch.randint(0, 50, (4, 9))
    before = model(tokens)
    params = list(model.parameters())
    fastrnn.convert(model)
    assert fastrnn.convert(model, to="torch") is model
    assert type(model.lstm) is torch.nn.LSTM and type(model.gru) is torch.nn.GRU
    assert type(model.cell) is torch.nn.GRUCell
    assert "backend" not in vars(model.lstm) and "last_backend" not in vars(model.cell)
    assert all(p is q for p, q in zip(params, model.parameters()))
    assert torch.equal(model(tokens), before)
    with pytest.raises(ValueError, match="to: expected one of"):
        fastrnn.convert(model, to="onnx")


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("kw", [dict(), dict(num_layers=2, bidirectional=True),
                                dict(batch_first=True)])
def test_a_batch_of_zero_sequences_gives_empty_outputs_as_torch_nn(mode, kw):
    shapes = []
    for m in (getattr(torch.nn, mode)(3, 4, **kw), getattr(fastrnn, mode)(3, 4, **kw)):
        x = torch.randn(0, 5, 3) if kw.get("batch_first") else torch.randn(5, 0, 3)
        x.requires_grad_(True)
        y, h = m(x)
        h = h[0] if isinstance(h, tuple) else h
        (y.sum() + h.sum()).backward()
        shapes.append((y.shape, h.shape, x.grad.shape))
    assert shapes[0] == shapes[1]


@pytest.mark.parametrize("mode", ["LSTMCell", "GRUCell", "RNNCell"])
def test_a_cell_on_zero_rows_gives_empty_outputs_as_torch_nn(mode):
    a, b = getattr(torch.nn, mode)(3, 4)(torch.randn(0, 3)), getattr(fastrnn, mode)(3, 4)(
        torch.randn(0, 3))
    shape = lambda h: [t.shape for t in h] if isinstance(h, tuple) else h.shape  # noqa: E731
    assert shape(a) == shape(b)


def test_zero_batch_with_an_explicit_kernel_backend():
    x, w = torch.randn(4, 0, 3), [torch.randn(8, 3), torch.randn(8, 2)]
    y, (h, c) = fastrnn.functional.lstm(x, None, *w, backend="native")
    assert y.shape == (4, 0, 2) and h.shape == c.shape == (0, 2)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_zero_time_steps_is_an_error_as_in_torch_nn(mode):
    x = torch.randn(0, 2, 3)
    with pytest.raises(RuntimeError, match="sequence length"):
        getattr(torch.nn, mode)(3, 4)(x)
    with pytest.raises(ValueError, match="x: expected at least one time step"):
        getattr(fastrnn, mode)(3, 4)(x)


@pytest.mark.parametrize("mode", ["LSTMCell", "GRUCell", "RNNCell"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_the_direct_no_grad_cell_step_equals_the_general_path(mode, dtype, bias, monkeypatch):
    """A no-grad cell step goes straight to the kernel (fastrnn/_direct_calls.py): the same numbers as
    the general path, bitwise, also after the biases change in place and with no state given."""
    if "native" not in fastrnn.backends():
        pytest.skip("the direct path runs on native")
    from fastrnn import _direct_calls, routes
    torch.manual_seed(0)
    cell = getattr(fastrnn, mode)(5, 7, bias=bias).to(dtype)
    x = torch.randn(3, 5, dtype=dtype)
    hx = (torch.randn(3, 7, dtype=dtype), torch.randn(3, 7, dtype=dtype)) \
        if mode == "LSTMCell" else torch.randn(3, 7, dtype=dtype)
    flat = lambda o: list(o) if isinstance(o, tuple) else [o]  # noqa: E731

    def both(*args):
        with torch.no_grad():
            direct = _direct_calls.step(cell, *args, False)
            with monkeypatch.context() as mp:
                mp.setattr(_direct_calls, "step", lambda *a: None)
                general = cell(*args)
        assert direct is not None
        for a, b in zip(flat(direct), flat(general)):
            assert torch.equal(a, b)

    both(x, hx)
    both(x, None)
    if bias:
        with torch.no_grad():
            cell.bias_hh.add_(0.5)  # the kept sum b_ih + b_hh must follow
        both(x, hx)
    with torch.no_grad():  # what the direct path does not take goes the general way, errors too
        assert routes.choose("cell", "auto", x[0], module=cell) == "layers"
        with pytest.raises((ValueError, RuntimeError)):
            cell(torch.randn(3, 4, dtype=dtype))


@pytest.mark.parametrize("mode", ["LSTMCell", "GRUCell", "RNNCell", "RNNCell-relu"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_the_direct_cell_training_step_equals_the_general_path(mode, dtype, bias, monkeypatch):
    """A cell step with gradients is one autograd node (fastrnn/_step_grad.py): outputs and
    every gradient as the general path gives them — with a state and without (zeros, whose W_hh
    gradient is zeros without a product), with only some inputs requiring gradients, outputs
    partly used — and a second derivative meets the clear error."""
    if "native" not in fastrnn.backends():
        pytest.skip("the direct path runs on native")
    from fastrnn import _direct_calls
    torch.manual_seed(0)
    mode, _, f = mode.partition("-")
    cell = getattr(fastrnn, mode)(5, 7, bias=bias, **({"nonlinearity": f} if f else {}))
    cell = cell.to(dtype)
    lstm = mode == "LSTMCell"
    x = torch.randn(3, 5, dtype=dtype)
    h = torch.randn(3, 7, dtype=dtype)
    flat = lambda o: list(o) if isinstance(o, tuple) else [o]  # noqa: E731

    def run(given, x_grad, h_grad, use_c, general):
        xs = x.clone().requires_grad_(x_grad)
        hs = h.clone().requires_grad_(h_grad)
        state = None if not given else (hs, hs * 0.5) if lstm else hs
        cell.zero_grad(set_to_none=True)
        with monkeypatch.context() as mp:
            if general:
                mp.setattr(_direct_calls, "step", lambda *a: None)
            out = flat(cell(xs, state))
        assert cell.last_backend == "native"
        loss = (out[0] * torch.linspace(-1, 1, 21, dtype=dtype).view(3, 7)).sum()
        if lstm and use_c:
            loss = loss + out[1].pow(2).sum()
        loss.backward()
        return out, [p.grad for p in cell.parameters()] + [xs.grad, hs.grad]

    for given in (False, True):
        for x_grad, h_grad, use_c in ((True, True, True), (False, False, False),
                                      (True, False, True)):
            direct = run(given, x_grad, h_grad and given, use_c, False)
            general = run(given, x_grad, h_grad and given, use_c, True)
            for a, b in zip(direct[0], general[0]):
                assert torch.equal(a, b)
            for a, b in zip(direct[1], general[1]):
                assert (a is None) == (b is None)
                if a is not None:
                    tol = 1e-6 if dtype == torch.float32 else 1e-14
                    torch.testing.assert_close(a, b, rtol=0, atol=tol)
    xs = x.clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(flat(cell(xs))[0].sum(), xs, create_graph=True)
    with pytest.raises(RuntimeError, match="second derivatives .* use backend='eager'"):
        gx.sum().backward()


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("kw", [dict(), dict(num_layers=2, bidirectional=True),
                                dict(num_layers=3, batch_first=True, bias=False),
                                dict(nonlinearity="relu", num_layers=2)])
@pytest.mark.parametrize("T", [1, 4])
def test_the_direct_module_call_equals_the_general_path(mode, kw, T, monkeypatch):
    """A no-grad call runs each layer straight to the kernel (one direction, or one step): the
    same numbers as the general path, bitwise, with and without initial states."""
    if "native" not in fastrnn.backends() or ("nonlinearity" in kw and mode != "RNN"):
        pytest.skip("the direct path runs on native; nonlinearity is the RNN's")
    from fastrnn import _direct_calls
    torch.manual_seed(0)
    m = getattr(fastrnn, mode)(5, 6, **kw)
    D = 2 if kw.get("bidirectional") else 1
    x = torch.randn(3, T, 5) if kw.get("batch_first") else torch.randn(T, 3, 5)
    # (more steps: a time-major, contiguous x and one direction only)
    direct_runs = T == 1 or not (kw.get("bidirectional") or kw.get("batch_first"))
    h = torch.randn(kw.get("num_layers", 1) * D, 3, 6)
    flat = lambda o: [t for v in o for t in (v if isinstance(v, tuple) else (v,))]  # noqa: E731
    results, layers = [], _direct_calls.forward

    def recorded(*args):
        results.append(layers(*args))
        return results[-1]

    for hx in (None, (h, h.clone()) if mode == "LSTM" else h):
        with torch.no_grad():
            results.clear()
            with monkeypatch.context() as mp:
                mp.setattr(_direct_calls, "forward", recorded)
                direct = m(x, hx)
            assert (bool(results) and results[-1] is not None) == direct_runs
            with monkeypatch.context() as mp:
                mp.setattr(_direct_calls, "forward", lambda *a: None)
                general = m(x, hx)
        for a, b in zip(flat(direct), flat(general)):
            assert torch.equal(a, b)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("form", ["unbatched", "batch_first B=1", "one step, 2 layers"])
def test_the_direct_module_call_writes_torch_nns_shapes(mode, dtype, form, monkeypatch):
    """The direct call allocates its outputs in their final shapes (unbatched, batch-first) and
    writes each layer's h_n (c_n) in place: the general path's numbers and shapes, bitwise."""
    if "native" not in fastrnn.backends():
        pytest.skip("the direct path runs on native")
    from fastrnn import _direct_calls
    torch.manual_seed(0)
    L = 2 if form.startswith("one step") else 1
    m = getattr(fastrnn, mode)(5, 6, num_layers=L, batch_first="batch_first" in form).to(dtype)
    x = {"unbatched": torch.randn(4, 5), "batch_first B=1": torch.randn(1, 4, 5),
         "one step, 2 layers": torch.randn(1, 3, 5)}[form].to(dtype)
    h = torch.randn(L, *x.shape[1:-1] if form != "batch_first B=1" else (1,), 6, dtype=dtype)
    flat = lambda o: [t for v in o for t in (v if isinstance(v, tuple) else (v,))]  # noqa: E731
    for hx in (None, (h, h * 0.5) if mode == "LSTM" else h):
        with torch.no_grad():
            taken = _direct_calls.forward(m, x, hx, None)
            with monkeypatch.context() as mp:
                mp.setattr(_direct_calls, "forward", lambda *a: None)
                general = m(x, hx)
        assert taken is not None
        for a, b in zip(flat(taken), flat(general), strict=True):
            assert a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("low", ["bfloat16", "autocast"])
@pytest.mark.parametrize("kw", [dict(T=6), dict(T=1, num_layers=2, bidirectional=True),
                                dict(T=6, num_layers=3, bias=False),
                                dict(T=7, size=(37, 40, 9)), dict(T=1, size=(37, 40, 9))])
def test_the_direct_widened_call_equals_the_general_path(mode, low, kw, monkeypatch):
    """A bfloat16 module, or LSTM and RNN under autocast to bfloat16, without gradients: the direct
    path (a bfloat16 module's arguments and results all in bfloat16, widened and rounded by the
    kernel, its weights read as they are: fastrnn/_direct_calls.py) gives the general path's numbers
    and dtypes, bitwise, call after call, on every CPU variant (where the weights are packed for
    bfloat16 products, from the bfloat16 values; elsewhere widened by the kernel)."""
    if "native" not in fastrnn.backends():
        pytest.skip("the direct path runs on native")
    from fastrnn import _direct_calls
    from fastrnn._native import cpu
    torch.manual_seed(0)
    kw = dict(kw)
    T = kw.pop("T")
    I, H, B = kw.pop("size", (5, 6, 3))
    m = getattr(fastrnn, mode)(I, H, **kw)
    if low == "bfloat16":
        m = m.bfloat16()
    x = torch.randn(T, B, I, dtype=next(m.parameters()).dtype)
    for variant in cpu.library.variants or [None]:
        with monkeypatch.context() as mp:
            mp.setattr(cpu.library, "variant", variant)
            _the_direct_call_is_the_general_one(m, x, low, mode, monkeypatch)


def _the_direct_call_is_the_general_one(m, x, low, mode, monkeypatch):
    """Two calls of m on x, the second reusing the kept buffers and starting from the first's
    final states: direct == general, bitwise."""
    from fastrnn import _direct_calls
    flat = lambda o: [t for v in o for t in (v if isinstance(v, tuple) else (v,))]  # noqa: E731
    taken, layers = [], _direct_calls.forward

    def recorded(*args):
        out = layers(*args)
        taken.append(out is not None)
        return out

    hx = None
    for call in range(2):
        taken.clear()
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=low == "autocast"):
            with monkeypatch.context() as mp:
                mp.setattr(_direct_calls, "forward", recorded)
                out = m(x * (call + 1), hx)
            with monkeypatch.context() as mp:
                mp.setattr(_direct_calls, "forward", lambda *a: None)
                general = flat(m(x * (call + 1), hx))
        # (autocast GRU is float32: the general route)
        assert (bool(taken) and taken[-1]) == (low == "bfloat16" or mode != "GRU")
        for a, b in zip(flat(out), general, strict=True):
            assert a.dtype == b.dtype and torch.equal(a, b)
        hx = out[1].to(x.dtype) if mode != "LSTM" else tuple(t.to(x.dtype) for t in out[1])


@pytest.mark.parametrize("mode", ["LSTMCell", "GRUCell", "RNNCell", "LSTM", "GRU", "RNN"])
def test_a_bias_written_through_data_is_seen_by_the_next_step(mode):
    """`p.data` writes move no version counter: nothing about the biases may be kept between
    calls (the kernels take b_ih and b_hh themselves)."""
    torch.manual_seed(0)
    m = getattr(fastrnn, mode)(4, 5)
    x = torch.randn(2, 4) if mode.endswith("Cell") else torch.randn(1, 2, 4)
    first = lambda out: out[0] if isinstance(out, tuple) else out  # noqa: E731
    with torch.no_grad():
        before = first(m(x)).clone()
        for name in ("bias_ih", "bias_hh", "bias_ih_l0", "bias_hh_l0"):
            if hasattr(m, name):
                getattr(m, name).data += 0.5
        after = first(m(x))
        want = first(getattr(torch.nn, mode).forward(m, x))
    assert not torch.allclose(before, after)
    assert torch.allclose(after, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["LSTM", "LSTMCell", "GRU", "GRUCell", "RNN", "RNNCell"])
@pytest.mark.parametrize("grad", [False, True])
def test_hx_of_the_wrong_kind_is_a_clear_error(mode, grad):
    """An LSTM's hx is a tuple (h_0, c_0), the others' one tensor: given the other kind torch.nn
    raises a TypeError, and so does fastrnn (a tensor would otherwise unpack along its first
    dimension into h_0 and c_0 and run)."""
    cell = mode.endswith("Cell")
    m = getattr(fastrnn, mode)(4, 5)
    x = torch.randn(3, 4) if cell else torch.randn(6, 3, 4)
    h = torch.randn(3, 5) if cell else torch.randn(1, 3, 5)
    wrong = torch.stack([h, h]) if mode.startswith("LSTM") else (h, h)
    with torch.set_grad_enabled(grad), pytest.raises(TypeError, match=f"{mode}: hx: expected"):
        m(x, wrong)
    with torch.set_grad_enabled(grad):  # the right kind runs
        m(x, (h, h) if mode.startswith("LSTM") else h)


@pytest.mark.parametrize("mode", ["LSTM", "LSTMCell"])
@pytest.mark.parametrize("grad", [False, True])
def test_an_lstm_takes_hx_as_a_list_too(mode, grad):
    """torch.nn takes an LSTM's (h_0, c_0) as a list as well: so does fastrnn, unbatched too."""
    torch.manual_seed(0)
    nn = getattr(torch.nn, mode)(4, 5)
    m = getattr(fastrnn, mode)(4, 5)
    m.load_state_dict(nn.state_dict())
    x = torch.randn(4) if mode == "LSTMCell" else torch.randn(6, 4)
    h = torch.randn(5) if mode == "LSTMCell" else torch.randn(1, 5)
    with torch.set_grad_enabled(grad):
        want, got = nn(x, [h, h * 0.5]), m(x, [h, h * 0.5])
    flat = lambda o: [t for v in o for t in (v if isinstance(v, tuple) else (v,))]  # noqa: E731
    for a, b in zip(flat(got), flat(want), strict=True):
        torch.testing.assert_close(a, b)
