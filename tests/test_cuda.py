"""The `cuda` backend on a GPU: against the float64 reference and against cuDNN (torch.nn on the
GPU with TF32 off). Skipped, whole, on machines without a CUDA device or without the library;
bench/gpu_check.sh runs it on a GPU machine."""
import pytest
import torch

import fastrnn
from _cases import GATES, Case, rel_err

pytestmark = pytest.mark.skipif(
    "cuda" not in fastrnn.backends(),
    reason="no CUDA device or no libfastrnn_cuda here (bench/gpu_check.sh runs these on a GPU)")

SHAPES = [dict(T=1, B=1, I=1, H=1), dict(T=7, B=5, I=3, H=17, lengths=[7, 1, 4, 7, 2]),
          dict(T=20, B=3, I=8, H=33, bias=False), dict(T=50, B=64, I=128, H=256),
          dict(T=9, B=2, I=4, H=300, lengths=[9, 5])]


@pytest.fixture(autouse=True)
def no_tf32():
    """torch enables TF32 for cuDNN RNNs by default; compare in true float32."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    rnn = getattr(getattr(torch.backends.cudnn, "rnn", None), "fp32_precision", None)
    if rnn is not None:
        torch.backends.cudnn.rnn.fp32_precision = "ieee"
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old
    if rnn is not None:
        torch.backends.cudnn.rnn.fp32_precision = rnn


@pytest.mark.parametrize("cell", GATES)
@pytest.mark.parametrize("kw", SHAPES)
def test_cuda_float64_matches_reference(cell, kw):
    c = Case(cell, **kw)
    ref, got = c.run_reference(), c.run_fastrnn("cuda", torch.float64, "cuda")
    for k in ref:
        assert rel_err(got[k], ref[k]) <= 1e-10, k


@pytest.mark.parametrize("cell", GATES)
@pytest.mark.parametrize("kw", SHAPES)
def test_cuda_float32_matches_cudnn(cell, kw):
    c = Case(cell, **kw)
    cudnn, got = c.run_torch(torch.float32, "cuda"), c.run_fastrnn("cuda", torch.float32, "cuda")
    for k in cudnn:
        assert rel_err(got[k], cudnn[k]) <= 1e-5, k


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
