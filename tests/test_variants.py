"""Each CPU variant of the native kernels (avx512, avx2, base: whichever this CPU runs) against the
float64 reference, forced one at a time, on shapes that reach every path of the per-step product:
in place (few rows: the dot-product forward, the row-strided backward) and packed (whole
FR_MR-row tiles, a leftover row, a partial column block), on one thread and on two."""
import math

import pytest
import torch

import fastrnn
from _cases import GATES, Case, float32_limit, rel_err

VARIANTS = fastrnn.cpu_variants() if "native" in fastrnn.backends() else []

SHAPES = [dict(T=1, B=1, I=3, H=64),                       # a cell step: W_hh read in place
          dict(T=2, B=3, I=5, H=37, lengths=[2, 1, 2]),     # T·B below every tile height
          dict(T=3, B=1, I=4, H=130),                       # one row, H past two column blocks
          dict(T=4, B=9, I=3, H=70, lengths=[4, 1, 3, 4, 2, 4, 1, 3, 4]),  # a tile and leftovers
          dict(T=3, B=16, I=6, H=96),                       # whole tiles, 2 threads a step
          dict(T=3, B=17, I=6, H=96)]                       # the rows split, some left over
CASES = [(cell, kw) for cell in GATES for kw in SHAPES]
CASES += [("lstm", kw | dict(proj=p)) for kw, p in zip(SHAPES, (17, 5, 64, 33, 40, 40))]  # LSTMP
IDS = [f"{c}-T{k['T']}B{k['B']}H{k['H']}{'P%d' % k['proj'] if 'proj' in k else ''}"
       for c, k in CASES]


@pytest.fixture(params=VARIANTS or [pytest.param(None, marks=pytest.mark.skip(
    reason="native backend built with a single variant or unusable"))])
def variant(request):
    fastrnn.set_cpu_variant(request.param)
    yield request.param
    fastrnn.set_cpu_variant(None)  # (the default: FASTRNN_CPU_VARIANT's pin, else the best)


@pytest.mark.parametrize("cell,kw", CASES, ids=IDS)
def test_variant_matches_reference(variant, cell, kw):
    """float64 within 1e-10 per tensor; float32 per tensor within float32_limit of torch.nn's own
    error, as the geometric mean over six draws of the ratio: on these few values one draw's
    ratio is luck (on an Intel Xeon, 2-3 draws in 8 exceed the limit for every variant, avx512
    included, where torch.nn's MKL errs less than on AMD)."""
    assert fastrnn.cpu_variant() == variant
    logs = {}
    for seed in range(6):
        c = Case(cell, **kw, seed=seed)
        ref = c.run_reference()
        got32, nn32 = c.run_fastrnn("native", torch.float32), c.run_torch(torch.float32)
        if seed == 0:
            got64 = c.run_fastrnn("native", torch.float64)
            for k in ref:
                assert rel_err(got64[k], ref[k]) <= 1e-10, k
        for k in ref:
            ratio = rel_err(got32[k], ref[k]) / float32_limit(rel_err(nn32[k], ref[k]))
            logs[k] = logs.get(k, 0.0) + math.log(max(ratio, 1e-6))
    means = {k: round(math.exp(v / 6), 2) for k, v in logs.items()}
    assert max(means.values()) <= 1, means


@pytest.mark.parametrize("B,H", [(5, 200), (17, 96), (1, 256)], ids=["units", "rows", "one row"])
@pytest.mark.parametrize("cell", list(GATES))
def test_variant_is_bitwise_the_same_on_any_thread_count(variant, cell, B, H):
    """Two threads split a step's hidden units (few rows) or, from two whole tiles of rows each,
    the batch's rows (B = 17 leaves rows over on every variant: FR_MR is 8, 6 or 4); a single
    row from 2^15 multiply-adds a step (an RNN's H = 256)."""
    c, before = Case(cell, T=3, B=B, I=6, H=H), torch.get_num_threads()
    try:
        runs = []
        for n in (1, 2, 1):
            torch.set_num_threads(n)
            runs.append(c.run_fastrnn("native", torch.float32))
    finally:
        torch.set_num_threads(before)
    for k in runs[0]:
        assert (runs[0][k] == runs[1][k]).all() and (runs[0][k] == runs[2][k]).all(), k


def test_unknown_variant_is_refused():
    if not VARIANTS:
        pytest.skip("native backend built with a single variant or unusable")
    before = fastrnn.cpu_variant()  # (the best, or the one FASTRNN_CPU_VARIANT pins)
    with pytest.raises(ValueError, match=r"CPU variant: expected one of .* got 'sse9'"):
        fastrnn.set_cpu_variant("sse9")
    assert fastrnn.cpu_variant() == before


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_the_ops_rows_split_is_bitwise_the_one_thread_result(variant, cell):
    """The custom ops take G_x ready (what torch.compile and export record): with the batch's rows
    split between two threads (B = 17, rows left over on every variant) the outputs and the
    gradients of G_x, h0 (c0) and W_hh are the one-thread ones, bitwise."""
    from fastrnn import autograd
    T, B, H = 4, 17, 96
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell] * H
    g = torch.Generator().manual_seed(0)
    n = torch.full((B,), T)
    base = [torch.randn(T, B, G, generator=g), torch.randn(B, H, generator=g),
            torch.randn(B, H, generator=g), torch.randn(G, H, generator=g) * H**-0.5,
            torch.randn(G, generator=g)]

    def run(threads):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            gx, h0, c0, w_hh, b_hh = [t.clone().requires_grad_(True) for t in base]
            if cell == "rnn":
                out = autograd.rnn_forward(gx, h0, w_hh, n, False, True, "native")
                inputs = (gx, h0, w_hh)
            elif cell == "lstm":
                out = autograd.lstm_forward(gx, h0, c0, w_hh, n, True, "native")
                inputs = (gx, h0, c0, w_hh)
            else:
                out = autograd.gru_forward(gx, h0, w_hh, b_hh, n, True, "native")
                inputs = (gx, h0, w_hh, b_hh)
            grads = torch.autograd.grad(out[0].square().sum() + out[1].sum(), inputs)
            return [out[0].detach(), out[1].detach(), *grads]
        finally:
            torch.set_num_threads(before)

    for a, b in zip(run(1), run(2)):
        assert torch.equal(a, b)


def test_restoring_the_default_keeps_the_environment_s_pin(monkeypatch):
    """set_cpu_variant(None) returns to the default: the variant FASTRNN_CPU_VARIANT names, else
    the best — so a test that pins and restores does not drop a pin CI set for the whole run."""
    if not VARIANTS:
        pytest.skip("native backend built with a single variant or unusable")
    try:
        monkeypatch.setenv("FASTRNN_CPU_VARIANT", VARIANTS[-1])
        fastrnn.set_cpu_variant(VARIANTS[0])
        fastrnn.set_cpu_variant(None)
        assert fastrnn.cpu_variant() == VARIANTS[-1]
        monkeypatch.delenv("FASTRNN_CPU_VARIANT")
        fastrnn.set_cpu_variant(None)
        assert fastrnn.cpu_variant() == VARIANTS[0]
    finally:
        monkeypatch.undo()
        fastrnn.set_cpu_variant(None)
