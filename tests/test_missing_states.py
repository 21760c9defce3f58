"""The CPU library's missing states (kernels/fastrnn.h): forward_x with h0, c0 NULL runs as with
zeros and skips step 0's product; backward with dh0 NULL skips step 0's product and gives the
same ∂L/∂A — bitwise, on every CPU variant this machine runs, ragged lengths included."""
import pytest
import torch

import fastrnn

pytestmark = pytest.mark.skipif("native" not in fastrnn.backends(), reason="needs native")

GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3, "lstmp": 4}


def _variants():
    from fastrnn._native.cpu import library
    return library.variants or [None]


def _case(cell, T, dtype):
    g = torch.Generator().manual_seed(0)
    B, I, H = 5, 6, 7
    R = 3 if cell == "lstmp" else H
    G = GATES[cell] * H
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    return dict(B=B, I=I, H=H, R=R, G=G, x=r(T, B, I), w_ih=r(G, I) * 0.3, w_hh=r(G, R) * 0.3,
                w_hr=r(R, H) * 0.3, b_ih=r(G), b_hh=r(G), dy=r(T, B, R), dh_n=r(B, R),
                dc_n=r(B, H), lengths=torch.tensor([T, T - 1, 0, T, 1][:B]).clamp(0, T))


def _out(*shape, dtype):
    """An output buffer, filled with 7 so that what the kernel leaves unwritten shows."""
    return torch.full(shape, 7.0, dtype=dtype)


def _forward(lib, cell, c, T, zero_states):
    """forward_x (keeping every state) from NULL or zero initial states -> outputs."""
    B, H, R, G, dt = c["B"], c["H"], c["R"], c["G"], c["x"].dtype
    h0 = c0 = None if not zero_states else torch.zeros(B, R, dtype=dt)
    if zero_states:
        c0 = torch.zeros(B, H, dtype=dt)
    y, h_n, hs = _out(T, B, R, dtype=dt), _out(B, R, dtype=dt), \
        _out(T + 1, B, R, dtype=dt)
    common = (c["x"], c["w_ih"], c["b_ih"])
    if cell.startswith("rnn"):
        lib.call(cell + "_forward_x", H, *common, c["b_hh"], h0, c["w_hh"], c["lengths"], y, h_n,
                 hs, I=c["I"])
        return dict(y=y, h_n=h_n, hs=hs)
    if cell == "gru":
        gates, a_n = _out(T, B, G, dtype=dt), _out(T, B, H, dtype=dt)
        lib.call("gru_forward_x", H, *common, h0, c["w_hh"], c["b_hh"], c["lengths"], y, h_n,
                 gates, a_n, hs, I=c["I"])
        return dict(y=y, h_n=h_n, hs=hs, gates=gates, a_n=a_n)
    c_n, gates, cs = _out(B, H, dtype=dt), _out(T, B, G, dtype=dt), \
        _out(T + 1, B, H, dtype=dt)
    out = dict(y=y, h_n=h_n, hs=hs, c_n=c_n, gates=gates, cs=cs)
    if cell == "lstm":
        lib.call("lstm_forward_x", H, *common, c["b_hh"], h0, c0, c["w_hh"], c["lengths"], y, h_n,
                 c_n, gates, cs, hs, I=c["I"])
    else:
        out["rs"] = _out(T, B, H, dtype=dt)
        lib.call("lstmp_forward_x", H, *common, c["b_hh"], h0, c0, c["w_hh"], c["w_hr"],
                 c["lengths"], y, h_n, c_n, gates, cs, hs, out["rs"], I=c["I"], R=R)
    return out


def _backward(lib, cell, c, f, T, want_dh0):
    B, H, R, G, dt = c["B"], c["H"], c["R"], c["G"], c["x"].dtype
    dA, dh0 = _out(T, B, G, dtype=dt), torch.zeros(B, R, dtype=dt) if want_dh0 else None
    if cell.startswith("rnn"):
        lib.call(cell + "_backward", H, c["dy"], c["dh_n"], f["hs"], c["w_hh"], c["lengths"], dA,
                 dh0)
        return dict(dA=dA)
    if cell == "gru":
        dA_n = _out(T, B, H, dtype=dt)
        lib.call("gru_backward", H, c["dy"], c["dh_n"], f["gates"], f["a_n"], f["hs"], c["w_hh"],
                 c["lengths"], dA, dA_n, dh0)
        return dict(dA=dA, dA_n=dA_n)
    dc0 = _out(B, H, dtype=dt)
    if cell == "lstm":
        lib.call("lstm_backward", H, c["dy"], c["dh_n"], c["dc_n"], f["gates"], f["cs"],
                 c["w_hh"], c["lengths"], dA, dh0, dc0)
        return dict(dA=dA, dc0=dc0)
    du = _out(T, B, R, dtype=dt)
    lib.call("lstmp_backward", H, c["dy"], c["dh_n"], c["dc_n"], f["gates"], f["cs"], c["w_hh"],
             c["w_hr"], c["lengths"], dA, dh0, dc0, du, R=R)
    return dict(dA=dA, dc0=dc0, du=du)


@pytest.mark.parametrize("variant", _variants())
@pytest.mark.parametrize("cell", list(GATES))
@pytest.mark.parametrize("T", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_null_states_equal_zeros_bitwise(variant, cell, T, dtype):
    from fastrnn._native import cpu
    old = cpu.library.variant
    cpu.library.variant = variant
    try:
        c = _case(cell, T, dtype)
        null, zeros = (_forward(cpu.library, cell, c, T, z) for z in (False, True))
        for k in null:
            assert torch.equal(null[k], zeros[k]), k
        skipped, full = (_backward(cpu.library, cell, c, zeros, T, w) for w in (False, True))
        for k in skipped:
            assert torch.equal(skipped[k], full[k]), k
    finally:
        cpu.library.variant = old
