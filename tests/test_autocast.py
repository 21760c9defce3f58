"""Under torch.autocast("cpu", dtype=torch.bfloat16) every module and cell works on every
backend, returns the dtype torch.nn returns there (LSTM, RNN and RNNCell: bfloat16; GRU and the
LSTM and GRU cells: float32), and its error against float64 is at most torch.nn's own (fastrnn
computes in float32), gradients included."""
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import fastrnn

BACKENDS = [b for b in ("auto", "native", "numba", "eager") if b == "auto" or
            b in fastrnn.backends()]


def _dtypes(out):
    if isinstance(out, tuple):
        return [d for o in out for d in _dtypes(o)]
    return [out.data.dtype if hasattr(out, "batch_sizes") else out.dtype]


def _flat(out):
    if isinstance(out, tuple):
        return [t for o in out for t in _flat(o)]
    return [out.data if hasattr(out, "batch_sizes") else out]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell"])
def test_autocast_dtype_and_error_follow_torch_nn(mode, backend):
    torch.manual_seed(0)
    cell = mode.endswith("Cell")
    nn = getattr(torch.nn, mode)(4, 6)
    fast = getattr(fastrnn, mode)(4, 6, backend=backend)
    fast.load_state_dict(nn.state_dict())
    ref = getattr(torch.nn, mode)(4, 6).double()
    ref.load_state_dict(nn.state_dict())
    x = torch.randn(3, 4) if cell else torch.randn(7, 3, 4)
    want = _flat(ref(x.double()))
    errs = {}
    for name, m in (("torch.nn", nn), ("fastrnn", fast)):
        xs = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = m(xs)
        errs[name] = (_dtypes(out), [(o.double() - w).abs().max().item()
                                     for o, w in zip(_flat(out), want)])
        sum(o.float().sum() for o in _flat(out)).backward()
        assert torch.isfinite(xs.grad).all()
    assert errs["fastrnn"][0] == errs["torch.nn"][0]
    for ours, theirs in zip(errs["fastrnn"][1], errs["torch.nn"][1]):
        assert ours <= 2 * theirs + 1e-6


def test_autocast_packed_input_keeps_the_packed_form():
    lstm = fastrnn.LSTM(4, 6)
    packed = pack_padded_sequence(torch.randn(5, 3, 4), torch.tensor([5, 4, 2]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, (h, c) = lstm(packed)
    assert out.data.dtype == h.dtype == c.dtype == torch.bfloat16
    assert torch.equal(out.batch_sizes, packed.batch_sizes)
