"""pytest-benchmark suite of per-call cost, where a call is one step: cells and 2-layer modules at
T = 1 (text generation, streaming, decoders), B = 1, inference; torch.nn and fastrnn with the same
weights, grouped so each group reads as a ratio.

    pytest bench/test_dropin.py --benchmark-group-by=param:name,param:H --benchmark-columns=median
"""
import pytest
import torch

import fastrnn

NAMES = ["RNNCell", "LSTMCell", "GRUCell", "LSTM", "GRU"]  # the modules run 2 layers at T = 1


def _pair(name, H):
    kw = {"num_layers": 2} if not name.endswith("Cell") else {}
    ref = getattr(torch.nn, name)(H, H, **kw)
    ours = getattr(fastrnn, name)(H, H, **kw)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(1, H) if name.endswith("Cell") else torch.randn(1, 1, H)
    return ref, ours, x


@pytest.mark.parametrize("impl", ["torch.nn", "fastrnn"])
@pytest.mark.parametrize("H", [64, 128, 256])
@pytest.mark.parametrize("name", NAMES)
def test_call(benchmark, name, H, impl):
    ref, ours, x = _pair(name, H)
    m = ref if impl == "torch.nn" else ours
    with torch.no_grad():
        out = benchmark(m, x)
        want = ref(x)
    got, want = (out[0], want[0]) if isinstance(out, tuple) else (out, want)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
