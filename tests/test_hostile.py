"""Hostile input: NaN and infinities propagate as in torch.nn, pre-activations far past the
gates' range saturate, a 4096-step float32 sequence stays at torch.nn's accuracy, and nasty
calls of the C ABI and of the Python API return errors — run in a subprocess, so that a crash
would fail the test instead of ending the run."""
import subprocess
import sys
import textwrap

import pytest
import torch

import fastrnn
from _cases import Case, float32_limit, rel_err

BACKENDS = [b for b in ("native", "numba", "eager") if b in fastrnn.backends()]
MODES = ["LSTM", "GRU", "RNN"]


def _pair(mode, backend, **kw):
    torch.manual_seed(0)
    nn = getattr(torch.nn, mode)(3, 5, **kw)
    fast = getattr(fastrnn, mode)(3, 5, backend=backend, **kw)
    fast.load_state_dict(nn.state_dict())
    return nn, fast


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 1e4, -1e4])
def test_nan_inf_and_huge_inputs_behave_as_in_torch_nn(mode, backend, value):
    """NaN where torch.nn has NaN; elsewhere torch.nn's values (±1e4 inputs push every gate's
    pre-activation far past ±100, where each fast sigmoid and tanh must saturate, not overflow)."""
    nn, fast = _pair(mode, backend)
    x = torch.randn(6, 2, 3)
    x[2, 1, 0] = value
    with torch.no_grad():
        want, got = nn(x)[0], fast(x)[0]
    assert torch.equal(want.isnan(), got.isnan())
    finite = want.isfinite() & got.isfinite()
    assert torch.equal(want.isfinite(), got.isfinite())
    assert (want[finite] - got[finite]).abs().max() <= 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_gates_saturate_in_both_directions(cell, backend):
    """Pre-activations of ±100 and ±1000 (weights scaled up): outputs finite, equal to torch.nn's."""
    c = Case(cell, T=5, B=2, I=3, H=4, scale=300.0)
    nn = c.run_torch(torch.float32)
    got = c.run_fastrnn(backend, torch.float32)
    for k in ("y", "h_n"):
        assert torch.isfinite(torch.as_tensor(got[k])).all()
        assert abs(got[k] - nn[k]).max() <= 1e-5, k


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "eager"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_float32_over_4096_steps_is_torch_nn_level(cell, backend):
    c = Case(cell, T=4096, B=2, I=3, H=8, scale=8**-0.5)
    ref = c.run_reference()
    nn, got = c.run_torch(torch.float32), c.run_fastrnn(backend, torch.float32)
    for k in ref:
        err, nn_err = rel_err(got[k], ref[k]), rel_err(nn[k], ref[k])
        assert err <= float32_limit(nn_err), f"{k}: {err:.2e} vs torch.nn {nn_err:.2e}"


NASTY = textwrap.dedent(r"""
    import sys, torch, fastrnn, fastrnn.functional as F
    from fastrnn._native.cpu import library
    lib, ffi = library.lib, library.ffi
    buf, lens, bad = torch.zeros(4096), torch.tensor([2, 2]), torch.tensor([2, -1])  # kept alive
    p, n, bad_n = buf.data_ptr(), lens.data_ptr(), bad.data_ptr()
    failures = []

    def expect_error(what, rc, text):
        msg = ffi.string(lib.fastrnn_last_error()).decode()
        if rc == 0 or text not in msg:
            failures.append(f"{what}: rc {rc}, message {msg!r}")

    # The C ABI: sizes, NULL pointers and lengths are checked before anything is touched.
    expect_error("B=0", lib.fastrnn_lstm_forward_f32(2, 0, 4, p, p, p, p, n, p, p, p, p, p, p),
                 "expected T, B, H >= 1")
    expect_error("H=-3", lib.fastrnn_gru_forward_f32(2, 2, -3, p, p, p, p, n, p, p, p, p, p),
                 "expected T, B, H >= 1")
    expect_error("huge", lib.fastrnn_rnn_tanh_forward_f32(2**40, 2**20, 2**20, p, p, p, n, p,
                                                          p, p), "too large")
    expect_error("NULL x", lib.fastrnn_lstm_forward_x_f32(2, 2, 3, 4, 0, p, p, p, p, p, p, n, p,
                                                          p, p, p, p, p), "'x' is NULL")
    expect_error("NULL W_hr", lib.fastrnn_lstmp_forward_f32(2, 2, 4, 3, p, p, p, p, 0, n, p, p,
                                                            p, p, p, p, p), "'W_hr' is NULL")
    expect_error("R=0", lib.fastrnn_lstmp_backward_f64(2, 2, 4, 0, p, p, p, p, p, p, p, n, p, p,
                                                       p, p), "expected R >= 1")
    expect_error("I=0", lib.fastrnn_rnn_tanh_forward_x_f32(2, 2, 0, 4, p, p, 0, 0, p, p, n, p,
                                                           p, p), "expected I >= 1")
    expect_error("NULL lengths", lib.fastrnn_gru_backward_f32(2, 2, 4, p, p, p, p, p, p, 0, p,
                                                              p, p), "'lengths' is NULL")
    expect_error("lengths -1", lib.fastrnn_lstm_backward_f64(2, 2, 4, p, p, p, p, p, p, bad_n,
                                                             p, p, p), "lengths[1] = -1")

    # The Python API: errors that name the argument, never a crash.
    x, w = torch.randn(5, 2, 3), [torch.randn(8, 3), torch.randn(8, 2)]
    for call, text in [
        (lambda: F.lstm(x, None, *w, lengths=[5, 9]), "lengths: expected values in 0..5"),
        (lambda: F.lstm(x, None, *w, lengths=[5]), "lengths: expected shape [2]"),
        (lambda: F.lstm(x[:, :, :2], None, *w), "w_ih: expected shape"),
        (lambda: F.lstm(x.double(), None, *w), "expected dtype"),
        (lambda: F.gru(x, torch.zeros(3, 2), torch.randn(6, 3), torch.randn(6, 2)), "h0"),
        (lambda: F.rnn(x, None, torch.randn(2, 3), torch.randn(2, 2), nonlinearity="gelu"),
         "nonlinearity"),
        (lambda: fastrnn.LSTM(3, 2, backend="tpu")(x), "backend"),
        (lambda: fastrnn.LSTM(3, 2)(torch.randn(2, 3, 4, 5)), "expected input to be 2D or 3D"),
    ]:
        try:
            call()
            failures.append(f"no error for {text}")
        except (ValueError, TypeError, RuntimeError) as e:
            if text not in str(e):
                failures.append(f"{text!r} not in {e}")
    print("\n".join(failures) or "all nasty inputs refused")
    sys.exit(1 if failures else 0)
""")


def test_nasty_calls_are_refused_and_nothing_crashes():
    run = subprocess.run([sys.executable, "-c", NASTY], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout}\n{run.stderr[-3000:]}"
    assert "all nasty inputs refused" in run.stdout
