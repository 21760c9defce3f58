"""Under torch.autocast("cpu", dtype=torch.bfloat16) every module and cell works on every
backend, returns the dtype torch.nn returns there (LSTM, RNN and RNNCell: bfloat16; GRU and the
LSTM and GRU cells: float32), and its error against float64 is at most torch.nn's own (fastrnn
computes in float32), gradients included."""
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import fastrnn
from _cases import torch_nn_runs_in_bfloat16, within_bfloat16_rounding

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


# torch.nn's rule: autocast lowers the ops of LSTM, RNN and RNNCell; GRU and the LSTM and GRU
# cells return float32
LOWERED = ("LSTM", "RNN", "RNNCell")


def _run(m, x, autocast):
    """m(x) (under autocast to bfloat16 if asked), backward of the sum of every output: the
    outputs, then the gradients of x and of every parameter."""
    xs = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = m(xs)
    sum(o.float().sum() for o in _flat(out)).backward()
    return out, [xs.grad] + [p.grad for p in m.parameters()]


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
    want, want_grads = _run(ref, x.double(), autocast=False)
    want = _flat(want)
    if not torch_nn_runs_in_bfloat16(mode):
        out, grads = _run(fast, x, autocast=True)
        low = torch.bfloat16 if mode in LOWERED else torch.float32
        assert _dtypes(out) == [low] * len(want)
        within_bfloat16_rounding(_flat(out) + grads, want + want_grads)
        return
    errs = {}
    for name, m in (("torch.nn", nn), ("fastrnn", fast)):
        out, grads = _run(m, x, autocast=True)
        errs[name] = (_dtypes(out), [(o.double() - w).abs().max().item()
                                     for o, w in zip(_flat(out), want)])
        assert torch.isfinite(grads[0]).all()
    assert errs["fastrnn"][0] == errs["torch.nn"][0]
    assert errs["fastrnn"][0] == [torch.bfloat16 if mode in LOWERED else torch.float32] * len(want)
    for ours, theirs in zip(errs["fastrnn"][1], errs["torch.nn"][1]):
        assert ours <= 2 * theirs + 1e-6


def test_the_probe_finds_torch_nn_where_onednn_has_a_bfloat16_lstm():
    """Where oneDNN's documented rule gives it a bfloat16 RNN (AVX-512 core, not restricted below
    it), torch.nn's LSTM must run under autocast, so the fallback above cannot hide a regression;
    where the probe says it cannot, the error is oneDNN's own. And only that error counts."""
    from fastrnn.harness import baseline
    if baseline.onednn_has_bf16_rnn():
        assert baseline.lstm_runs("autocast") and baseline.lstm_runs("bfloat16")
    if not baseline.lstm_runs("autocast"):
        with pytest.raises(RuntimeError, match="could not create a primitive descriptor"):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                torch.nn.LSTM(3, 3)(torch.randn(2, 1, 3))
    assert baseline.runs(lambda: None)
    with pytest.raises(RuntimeError, match="another error"):
        baseline.runs(lambda: (_ for _ in ()).throw(RuntimeError("another error")))


def test_autocast_packed_input_keeps_the_packed_form():
    lstm = fastrnn.LSTM(4, 6)
    packed = pack_padded_sequence(torch.randn(5, 3, 4), torch.tensor([5, 4, 2]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, (h, c) = lstm(packed)
    assert out.data.dtype == h.dtype == c.dtype == torch.bfloat16
    assert torch.equal(out.batch_sizes, packed.batch_sizes)


def test_an_isa_restriction_holds_torch_nn_and_fastrnn():
    """ONEDNN_MAX_CPU_ISA=AVX2 holds oneDNN to AVX2 (its verbose log names the ISA it runs) and
    FASTRNN_CPU_VARIANT=avx2 holds fastrnn, so CI shows an AVX2 machine's results on any CPU
    (.ci/run); unrestricted, oneDNN runs AVX-512 exactly where the CPU has it (named "AVX10.1"
    on Intel Xeons with AMX: AVX10.1 is AVX-512 under its new name)."""
    import os
    import subprocess
    import sys
    from fastrnn.harness.machine import cpu_flags
    env = dict(os.environ, ONEDNN_VERBOSE="1")
    log = subprocess.run([sys.executable, "-c", "import torch; torch.nn.LSTM(4, 4)(torch.randn(3, "
                          "2, 4))"], env=env, capture_output=True, text=True, check=True).stdout
    isa = next(line for line in log.splitlines() if ",isa:" in line).split(",isa:")[1]
    restricted = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() == "AVX2"
    wide = "AVX-512" in isa or "AVX10" in isa
    assert wide == ("avx512f" in cpu_flags() and not restricted), isa
    if os.environ.get("FASTRNN_CPU_VARIANT") and "native" in fastrnn.backends():
        assert fastrnn.cpu_variant() == os.environ["FASTRNN_CPU_VARIANT"]
