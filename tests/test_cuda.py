"""The `cuda` backend on a GPU: against the float64 reference, and float32 judged as in
tests/test_backends.py (within twice torch.nn's own float32 error, torch.nn here being cuDNN with
TF32 off). Skipped, whole, on machines without a CUDA device or without the library;
bench/gpu_check.sh runs it on a GPU machine. What can be checked without a GPU (these shapes, the
precision settings, the script) is in tests/test_cuda_harness.py."""
import subprocess
import sys
import textwrap

import pytest
import torch

import fastrnn
import fastrnn.functional as Fr
from _cases import CUDA_CASES, CUDA_IDS, GATES, Case, float32_limit, ieee_float32, rel_err

pytestmark = pytest.mark.skipif(
    "cuda" not in fastrnn.backends(),
    reason="no CUDA device or no libfastrnn_cuda here (bench/gpu_check.sh runs these on a GPU)")


@pytest.fixture(autouse=True)
def no_tf32():
    with ieee_float32():
        yield


def _call(cell, x, h0, c0, w, lengths=None):
    """One functional call on the `cuda` backend: (y, h_n[, c_n])."""
    if cell == "lstm":
        y, (h, c) = Fr.lstm(x, (h0, c0), *w, lengths=lengths, backend="cuda")
        return y, h, c
    if cell == "gru":
        return Fr.gru(x, h0, *w, lengths=lengths, backend="cuda")
    return Fr.rnn(x, h0, *w, nonlinearity=cell[4:], lengths=lengths, backend="cuda")


def _inputs(cell, T=12, B=3, I=5, H=40, dtype=torch.float32):
    g = torch.Generator().manual_seed(1)
    r = lambda *s: (torch.rand(*s, generator=g, dtype=dtype) * 2 - 1).cuda()  # noqa: E731
    G = GATES[cell] * H
    w = [r(G, I) / I**0.5, r(G, H) / H**0.5, r(G), r(G)]
    return r(T, B, I), r(B, H), r(B, H), w


@pytest.mark.parametrize("cell,kw", CUDA_CASES, ids=CUDA_IDS)
def test_cuda_float64_matches_reference(cell, kw):
    c = Case(cell, **kw)
    ref, got = c.run_reference(), c.run_fastrnn("cuda", torch.float64, "cuda")
    for k in ref:
        assert rel_err(got[k], ref[k]) <= 1e-10, k


@pytest.mark.parametrize("cell,kw", CUDA_CASES, ids=CUDA_IDS)
def test_cuda_float32_error_is_cudnn_level(cell, kw):
    c = Case(cell, **kw)
    ref = c.run_reference()
    cudnn, got = c.run_torch(torch.float32, "cuda"), c.run_fastrnn("cuda", torch.float32, "cuda")
    for k in ref:
        err, nn_err = rel_err(got[k], ref[k]), rel_err(cudnn[k], ref[k])
        assert err <= float32_limit(nn_err), f"{k}: {err:.2e} vs cuDNN {nn_err:.2e}"


@pytest.mark.parametrize("cell", GATES)
@pytest.mark.parametrize("lengths", [None, [12, 3, 7]])
def test_cuda_no_grad_path_equals_training_forward(cell, lengths):
    """Without grad the kernels keep a two-slot ring of states instead of every step's."""
    x, h0, c0, w = _inputs(cell)
    for t in (x, h0, c0, *w):
        t.requires_grad_(True)
    train = _call(cell, x, h0, c0, w, lengths)
    with torch.no_grad():
        infer = _call(cell, x, h0, c0, w, lengths)
    for a, b in zip(train, infer):
        assert torch.equal(a.detach(), b)


@pytest.mark.parametrize("cell", GATES)
def test_cuda_runs_on_the_current_stream(cell):
    """The kernels go to torch's current stream: on a side stream, the results (read after that
    stream is synchronised) equal the default stream's, backward included."""
    x, h0, c0, w = _inputs(cell, T=30, B=16, H=256)
    params = [t.clone().requires_grad_(True) for t in (x, h0, c0, *w)]
    out = _call(cell, *params[:3], params[3:])
    grads = torch.autograd.grad(sum(o.sum() for o in out), params, allow_unused=True)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        params2 = [t.detach().clone().requires_grad_(True) for t in params]
        out2 = _call(cell, *params2[:3], params2[3:])
        grads2 = torch.autograd.grad(sum(o.sum() for o in out2), params2, allow_unused=True)
    side.synchronize()
    for a, b in zip(list(out) + list(grads), list(out2) + list(grads2)):
        if a is not None:
            assert torch.equal(a.detach(), b.detach())


@pytest.mark.parametrize("cell", GATES)
def test_cuda_call_does_not_synchronise(cell):
    """Lengths given on the CPU are checked there; nothing in a call waits for the GPU."""
    x, h0, c0, w = _inputs(cell)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        _call(cell, x, h0, c0, w, lengths=[12, 3, 7])
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_cuda_bad_lengths_on_the_gpu_fail_loudly():
    """A lengths tensor already on the GPU is checked there; a bad value ends in an error, not in
    silently wrong outputs. (It poisons the CUDA context, so it runs in its own process.)"""
    code = textwrap.dedent("""
        import torch, fastrnn.functional as Fr
        H = 8
        x, h0 = torch.randn(5, 2, 3, device="cuda"), torch.zeros(2, H, device="cuda")
        w = [torch.randn(H, 3, device="cuda"), torch.randn(H, H, device="cuda"), None, None]
        y, h = Fr.rnn(x, h0, *w, lengths=torch.tensor([5, 9], device="cuda"), backend="cuda")
        torch.cuda.synchronize()
        print("no error")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "no error" not in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_cuda_module_matches_cudnn_module(mode):
    torch.manual_seed(0)
    kw = dict(input_size=16, hidden_size=32, num_layers=2, bidirectional=True, batch_first=True)
    nn = getattr(torch.nn, mode)(**kw).cuda()
    fast = getattr(fastrnn, mode)(**kw).cuda()
    fast.load_state_dict(nn.state_dict())
    x = torch.randn(8, 12, 16, device="cuda")
    y1, _ = nn(x)
    y2, _ = fast(x)
    assert fast.last_backend == "cuda"
    assert rel_err(y2.detach().cpu().numpy(), y1.detach().cpu().numpy()) <= 1e-5


@pytest.mark.parametrize("cls", ["LayerNormLSTM", "LayerNormGRU"])
@pytest.mark.parametrize("kw", [dict(), dict(num_layers=2, bidirectional=True, batch_first=True)])
@pytest.mark.parametrize("lengths", [None, [9, 2, 6]])
def test_cuda_layernorm_cells_match_native_in_float64(cls, kw, lengths):
    """The LayerNorm cells' CUDA kernels (kernels/cuda/ln_*.cu) against the native ones, which
    tests/test_layernorm.py holds to the float64 reference: outputs, final states and every
    gradient within 1e-10, packed ragged sequences included, and the no-grad forward (its ring
    buffers) equal to the training one; the cuda backend is what ran."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    torch.manual_seed(3)
    native = getattr(fastrnn, cls)(5, 24, backend="native", **kw).double()
    with torch.no_grad():  # gains and shifts away from their initial ones and zeros
        for name, p in native.named_parameters():
            if name.startswith("ln_"):
                p.add_(0.2 * torch.randn_like(p))
    gpu = getattr(fastrnn, cls)(5, 24, backend="cuda", **kw).double().cuda()
    gpu.load_state_dict(native.state_dict())
    bf = kw.get("batch_first", False)
    x = torch.randn((3, 9, 5) if bf else (9, 3, 5), dtype=torch.float64)

    def run(m, x):
        x = x.detach().clone().requires_grad_(True)
        inp = x if lengths is None else pack_padded_sequence(x, lengths, batch_first=bf,
                                                             enforce_sorted=False)
        y, h = m(inp)
        y = y if lengths is None else pad_packed_sequence(y, batch_first=bf)[0]
        hs = h if isinstance(h, tuple) else (h,)
        (y.pow(2).sum() + sum((t * t.sin()).sum() for t in hs)).backward()
        return [y, *hs, x.grad, *(p.grad for p in m.parameters())]

    want, got = run(native, x), run(gpu, x.cuda())
    assert gpu.last_backend == "cuda"
    for k, (a, b) in enumerate(zip(want, got)):
        assert rel_err(b.cpu(), a) <= 1e-10, k
    if lengths is None:
        with torch.no_grad():
            y, _ = gpu(x.cuda())
        assert rel_err(y.cpu(), got[0].detach().cpu()) <= 1e-12
