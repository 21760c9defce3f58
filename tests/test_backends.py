"""Every kernel backend against the float64 reference: outputs, final states, every gradient.

float64: ‖fastrnn − reference‖/‖reference‖ ≤ 1e-10 per tensor. float32: see _cases.float32_limit.
"""
import random

import pytest
import torch

import fastrnn
from _cases import GATES, Case, float32_limit, rel_err

BACKENDS = [b for b in fastrnn.backends() if b != "cuda"]


def _cases():
    """Random shapes (seeded) plus the hostile ones: T=1, B=1, odd sizes, ragged lengths."""
    rng = random.Random(0)
    cases = []
    for cell in GATES:
        fixed = [dict(T=1, B=1, I=1, H=1), dict(T=1, B=5, I=3, H=7), dict(T=9, B=1, I=4, H=5),
                 dict(T=7, B=4, I=3, H=17, lengths=[7, 1, 4, 7]),
                 dict(T=5, B=3, I=6, H=9, lengths=[2, 5, 3], bias=False)]
        for k in range(4):
            T, B = rng.choice([2, 3, 8, 15]), rng.choice([1, 2, 6])
            lengths = [rng.randint(1, T) for _ in range(B)] if k % 2 else None
            fixed.append(dict(T=T, B=B, I=rng.choice([1, 5, 11]), H=rng.choice([2, 13, 33]),
                              lengths=lengths, bias=bool(k != 2), seed=k))
        cases += [(cell, kw) for kw in fixed]
        cases.append((cell, WIDE[cell]))
    cases += [("lstm", kw) for kw in PROJECTED]
    return cases


# LSTM with a projection (proj < H, as torch.nn requires), the last one wide enough for two
# threads (B·(4H·R + R·H) >= 2^17 multiply-adds a step).
PROJECTED = [dict(T=1, B=1, I=1, H=2, proj=1), dict(T=9, B=1, I=4, H=5, proj=3),
             dict(T=7, B=4, I=3, H=17, proj=5, lengths=[7, 1, 4, 7]),
             dict(T=5, B=3, I=6, H=9, proj=8, lengths=[2, 5, 3], bias=False),
             dict(T=8, B=6, I=5, H=33, proj=13, seed=1),
             dict(T=4, B=8, I=3, H=80, proj=48, lengths=[4, 1, 3, 4, 2, 4, 1, 3], seed=1)]


# Steps of >= 2^17 multiply-adds (B·G·H), where the native kernels split the hidden units across
# torch's threads; H is not a whole number of 16-wide tiles.
WIDE = {c: dict(T=4, B=8, I=3, H=h, lengths=[4, 1, 3, 4, 2, 4, 1, 3])
        for c, h in (("rnn_tanh", 136), ("rnn_relu", 136), ("lstm", 72), ("gru", 80))}


CASES = _cases()
IDS = [f"{c}-T{k['T']}B{k['B']}I{k['I']}H{k['H']}{'P%d' % k['proj'] if k.get('proj') else ''}"
       f"{'-ragged' if k.get('lengths') else ''}"
       f"{'-nobias' if k.get('bias') is False else ''}" for c, k in CASES]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell,kw", CASES, ids=IDS)
def test_float64_matches_reference(backend, cell, kw):
    c = Case(cell, **kw)
    ref, got = c.run_reference(), c.run_fastrnn(backend, torch.float64)
    assert got.keys() == ref.keys()
    for k in ref:
        assert rel_err(got[k], ref[k]) <= 1e-10, k


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell,kw", CASES, ids=IDS)
def test_float32_error_is_torch_nn_level(backend, cell, kw):
    c = Case(cell, **kw)
    ref, nn, got = c.run_reference(), c.run_torch(torch.float32), c.run_fastrnn(backend, torch.float32)
    for k in ref:
        err, nn_err = rel_err(got[k], ref[k]), rel_err(nn[k], ref[k])
        assert err <= float32_limit(nn_err), f"{k}: {err:.2e} vs torch.nn {nn_err:.2e}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", GATES)
def test_long_sequence(backend, cell):
    c = Case(cell, T=300, B=2, I=3, H=5, lengths=[300, 123])
    ref, got = c.run_reference(), c.run_fastrnn(backend, torch.float64)
    for k in ref:
        assert rel_err(got[k], ref[k]) <= 1e-10, k


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", [*GATES, "lstmp"])
def test_gradcheck_float64(backend, cell):
    T, B, I, H, G = 4, 3, 2, 3, GATES.get(cell, 4)
    R = 2 if cell == "lstmp" else H
    g = torch.Generator().manual_seed(3)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True)  # noqa
    x, h0, c0 = r(T, B, I), r(B, R), r(B, H)
    w = [r(G * H, I), r(G * H, R), r(G * H), r(G * H)] + ([r(R, H)] if cell == "lstmp" else [])
    lengths = [4, 1, 3]
    F = fastrnn.functional
    if cell.startswith("lstm"):
        def fn(x, h0, c0, *w):
            y, (h_n, c_n) = F.lstm(x, (h0, c0), *w, lengths=lengths, backend=backend)
            return y, h_n, c_n
        args = (x, h0, c0, *w)
    elif cell == "gru":
        fn = lambda x, h0, *w: F.gru(x, h0, *w, lengths=lengths, backend=backend)  # noqa
        args = (x, h0, *w)
    else:
        fn = lambda x, h0, *w: F.rnn(x, h0, *w, nonlinearity=cell[4:], lengths=lengths,  # noqa
                                     backend=backend)
        args = (x, h0, *w)
    assert torch.autograd.gradcheck(fn, args)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", [*GATES, "lstmp"])
def test_inference_path_equals_training_path(backend, cell):
    """Without gradients the kernels keep two state slots instead of T+1; same numbers."""
    proj = cell == "lstmp"
    cell = "lstm" if proj else cell
    c = Case(cell, T=6, B=3, I=4, H=5, lengths=[6, 2, 4], proj=3 if proj else 0)
    train = c.run_fastrnn(backend, torch.float32)
    with torch.no_grad():
        fn = {"lstm": fastrnn.functional.lstm, "gru": fastrnn.functional.gru}.get(cell)
        p = c.params(torch.float32)
        w = [p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"]]
        x, h0 = c.x.float(), c.h0.float()
        if cell == "lstm":
            y, (h_n, c_n) = fn(x, (h0, c.c0.float()), *w, w_hr=p.get("weight_hr_l0"),
                               lengths=c.lengths, backend=backend)
            assert torch.equal(c_n, torch.from_numpy(train["c_n"]).float())
        elif cell == "gru":
            y, h_n = fn(x, h0, *w, lengths=c.lengths, backend=backend)
        else:
            y, h_n = fastrnn.functional.rnn(x, h0, *w, nonlinearity=cell[4:], lengths=c.lengths,
                                            backend=backend)
    assert torch.equal(y, torch.from_numpy(train["y"]).float())
    assert torch.equal(h_n, torch.from_numpy(train["h_n"]).float())


@pytest.mark.parametrize("cell,kw", [*WIDE.items(), ("lstm", PROJECTED[-1])],
                         ids=[*WIDE, "lstmp"])
def test_native_threads_do_not_change_the_answer(cell, kw):
    """Two threads split each step's hidden units; every output and gradient is bitwise the
    single-thread one (each element is summed by one thread in a fixed order)."""
    c, before = Case(cell, **kw), torch.get_num_threads()
    try:
        runs = []
        for n in (1, 2):
            torch.set_num_threads(n)
            runs.append(c.run_fastrnn("native", torch.float32))
    finally:
        torch.set_num_threads(before)
    for k in runs[0]:
        assert (runs[0][k] == runs[1][k]).all(), k
