"""fastrnn_input_grad, the backward's ∂L/∂x = ∂L/∂G_x W_ih on the kernels' tiles: equal to the
float64 product within float32 rounding on every CPU variant, float32 and float64, any shape;
bad arguments refused."""
import pytest
import torch

import fastrnn
from fastrnn import dispatch, rules

pytestmark = pytest.mark.skipif("native" not in fastrnn.backends(), reason="native not built")
VARIANTS = dispatch.cpu_variants() or [None]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("T,B,G,I", [(1, 1, 4, 1), (7, 3, 40, 13), (5, 9, 96, 33),
                                     (3, 16, 256, 64), (2, 33, 100, 200)])
def test_input_grad_is_the_product(T, B, G, I, dtype, variant):
    g = torch.Generator().manual_seed(0)
    d = torch.randn(T, B, G, generator=g, dtype=dtype)
    w = torch.randn(G, I, generator=g, dtype=dtype)
    try:
        fastrnn.set_cpu_variant(variant)
        dx = dispatch.load("native").input_grad(d.view(T * B, G), w).view(T, B, I)
    finally:
        fastrnn.set_cpu_variant(None)
    want = d.double() @ w.double()
    tol = (1e-12 if dtype == torch.float64 else 1e-5) * G**0.5 * want.abs().max()
    assert (dx.double() - want).abs().max() <= tol


def test_input_grad_refuses_bad_arguments():
    library = dispatch.load("native").library
    fn = library.bound("input_grad", "f32")
    message = lambda: library.ffi.string(library.lib.fastrnn_last_error()).decode()  # noqa: E731
    d, w, dx = torch.randn(2, 3, 8), torch.randn(8, 4), torch.empty(2, 3, 4)
    assert fn(2, 3, 0, 8, d.data_ptr(), w.data_ptr(), dx.data_ptr()) == 1  # FASTRNN_EINVAL
    assert "expected I >= 1, got I=0" in message()
    assert fn(2, 3, 4, 8, d.data_ptr(), 0, dx.data_ptr()) == 1
    assert "'W_ih' is NULL" in message()


def test_the_rule_takes_the_tiles_everywhere_at_any_size(monkeypatch):
    """dispatch.input_grad_on_tiles by the rules in force: every CPU, every size (the tiles' sums
    do not depend on the thread count); input_grad_tiles 1 takes them on AMD CPUs only, 0 never;
    from 2^input_grad_tiles_madds_log2 multiply-adds on, or at any size in a cell's one-step
    backward; never for an unsupported dtype; and a cell step's dx and dW_ih then come from the
    tiles (equal to fastrnn_input_grad's results bitwise)."""
    small, large = torch.randn(32, 128), torch.randn(1024, 512)
    for vendor in ("AuthenticAMD", "GenuineIntel"):
        monkeypatch.setattr(dispatch, "cpuinfo", lambda *keys, v=vendor: v)
        assert dispatch.input_grad_on_tiles(small, 128) is True
        assert dispatch.input_grad_on_tiles(large, 128) is True
        assert dispatch.input_grad_on_tiles(small.half(), 128, step=True) is False
        with rules.override(input_grad_tiles=1):
            assert dispatch.input_grad_on_tiles(large, 128) is (vendor == "AuthenticAMD")
        with rules.override(input_grad_tiles=0):
            assert dispatch.input_grad_on_tiles(large, 128, step=True) is False
        with rules.override(input_grad_tiles_madds_log2=22):
            assert dispatch.input_grad_on_tiles(small, 128) is False
            assert dispatch.input_grad_on_tiles(large, 128) is True
            assert dispatch.input_grad_on_tiles(small, 128, step=True) is True
    monkeypatch.setattr(dispatch, "cpuinfo", lambda *keys: "AuthenticAMD")
    torch.manual_seed(0)
    cell = fastrnn.RNNCell(16, 24)
    x = torch.randn(8, 16, requires_grad=True)
    calls = []
    real = dispatch.load("native").input_grad
    monkeypatch.setattr(dispatch.load("native"), "input_grad",
                        lambda *a: calls.append(a[0].clone()) or real(*a))
    cell(x).sum().backward()
    assert len(calls) == 2  # dx = dA W_ih, then dW_ih = dAᵀ x (fastrnn._grads.gram, step)
    dA = calls[0]
    assert torch.equal(x.grad, real(dA, cell.weight_ih.detach()))
    assert torch.equal(calls[1], dA.t())
    assert torch.equal(cell.weight_ih.grad, real(dA.t().contiguous(), x.detach()))
    assert torch.allclose(cell.weight_ih.grad, dA.t() @ x.detach(), rtol=1e-5, atol=1e-6)
