"""Concurrency and memory: Python threads calling one module at once get what sequential calls
get, also while other threads change torch's thread count (the C library keeps the count per
calling thread); many training calls do not grow resident memory."""
import random
import threading
import time

import pytest
import torch

import fastrnn
from fastrnn import dispatch
from fastrnn.harness.memory import status_mib


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("T,B,I,H", [(6, 2, 16, 256), (32, 64, 16, 32)])
def test_one_and_two_threads_give_the_same_bits(mode, T, B, I, H):
    """Outputs and every gradient, x's included, at shapes where torch's own sgemm (MKL on an
    Intel Xeon) gives other bits on one and two threads — x [6,2,16] ∂L/∂G_x W_ih, and the
    weight gradients' sums over T·B = 2048 rows: dx is on the kernels' tiles (rule
    input_grad_tiles), the weight gradients in fixed blocks (fastrnn._native.cpu.gram_blocks)."""
    runs, before = [], torch.get_num_threads()
    try:
        for threads in (1, 2, 3):
            torch.manual_seed(0)
            m = getattr(fastrnn, mode)(I, H)
            x = torch.randn(T, B, I, requires_grad=True)
            torch.set_num_threads(threads)
            y, _ = m(x)
            y.pow(2).sum().backward()
            runs.append([y.detach(), x.grad] + [p.grad for p in m.parameters()])
    finally:
        torch.set_num_threads(before)
    for run in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(runs[0], run))


def cpu_blas():
    from fastrnn._native import cpu
    return cpu.BLAS


@pytest.mark.skipif(dispatch.why_not("native") is not None or cpu_blas() is None,
                    reason="the native library, or the BLAS torch links, is absent")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_blas_products_in_blocks_are_right_and_the_same_on_any_thread_count(dtype):
    """gram_blocks (aᵀb per chunk of rows) and linear_blocks (x wᵀ): against float64 torch, and
    bitwise the same on 1 to 4 threads, at shapes where one threaded sgemm call is not."""
    from fastrnn._native import cpu
    torch.manual_seed(0)
    before = torch.get_num_threads()
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    try:
        for N, G, K, n in [(12, 64, 16, 1), (2048, 240, 80, 1), (640, 1024, 16, 1),
                           (3 * 200, 100, 24, 3), (64, 28, 1024, 1)]:
            a, b = torch.randn(N, G, dtype=dtype), torch.randn(N, K, dtype=dtype)
            want = torch.bmm(a.double().view(n, -1, G).transpose(1, 2), b.double().view(n, -1, K))
            x, w = a[:, :min(G, 64)].contiguous(), torch.randn(K, min(G, 64), dtype=dtype)
            runs = []
            for threads in (1, 2, 3, 4):
                torch.set_num_threads(threads)
                runs.append((cpu.gram_blocks(a, b, n), cpu.linear_blocks(x, w)))
            got, lin = runs[0]
            assert got.shape == (n, G, K) and lin.shape == (N, K)
            assert ((got - want).abs().max() / want.abs().max()).item() <= tol
            lin_want = x.double() @ w.double().t()
            assert ((lin - lin_want).abs().max() / lin_want.abs().max()).item() <= tol
            assert all(torch.equal(g, got) and torch.equal(q, lin) for g, q in runs[1:])
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_threads_calling_one_module_get_the_sequential_results(mode):
    torch.manual_seed(0)
    m = getattr(fastrnn, mode)(16, 64, num_layers=2)
    xs = [torch.randn(20, 8, 16, requires_grad=True) for _ in range(8)]

    def run(x):
        y, _ = m(x)
        (dx,) = torch.autograd.grad(y.square().sum(), x)
        return y.detach(), dx

    expected = [run(x) for x in xs]
    got, errors, stop = [None] * len(xs), [], threading.Event()

    def worker(i):
        try:
            for _ in range(10):
                y, dx = run(xs[i])
                if not (torch.equal(y, expected[i][0]) and torch.equal(dx, expected[i][1])):
                    got[i] = "differs"
                    return
            got[i] = "same"
        except Exception as e:  # reported below, not lost in the thread
            errors.append(e)

    def meddler():  # torch's count is per OS thread; the kernels' must not leak across threads
        while not stop.is_set():
            torch.set_num_threads(random.choice([1, 2]))
            time.sleep(1e-4)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(xs))]
    meddlers = [threading.Thread(target=meddler) for _ in range(2)]
    for t in threads + meddlers:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    for t in meddlers:
        t.join()
    assert not errors, errors
    assert got == ["same"] * len(xs)


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="Linux only")
def test_many_training_calls_do_not_grow_memory():
    torch.manual_seed(0)
    m = fastrnn.LSTM(8, 16, num_layers=2)
    opt = torch.optim.SGD(m.parameters(), lr=1e-3)
    x = torch.randn(6, 3, 8)
    rss = []
    for i in range(10_000):
        opt.zero_grad()
        y, (h, c) = m(x)
        (y.sum() + c.sum()).backward()
        opt.step()
        if i in (1_999, 9_999):
            rss.append(status_mib("VmRSS"))
    assert rss[1] - rss[0] <= 20, f"resident memory grew {rss[1] - rss[0]:.1f} MiB"


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="Linux only")
def test_threads_that_exit_give_back_their_kept_work_buffers():
    """The kernels keep each calling thread's work buffers (packed weights: 2 MB here) for its
    next call (kernels/cpu/workspace.c); a thread that exits frees them."""
    torch.manual_seed(0)
    m, x = fastrnn.LSTM(256, 256), torch.randn(2, 4, 256)

    def call():
        with torch.no_grad():
            m(x)

    def in_threads(n):
        for _ in range(n):
            t = threading.Thread(target=call)
            t.start()
            t.join()

    in_threads(5)
    before = status_mib("VmRSS")
    in_threads(60)  # would keep 60 × 2 MB if the buffers outlived their threads
    grown = status_mib("VmRSS") - before
    assert grown <= 30, f"resident memory grew {grown:.1f} MiB"


def test_the_c_library_keeps_the_thread_count_per_calling_thread():
    from fastrnn._native.cpu import library
    lib, seen = library.lib, []
    lib.fastrnn_set_num_threads(3)
    t = threading.Thread(target=lambda: seen.append(lib.fastrnn_get_num_threads()))
    t.start()
    t.join()
    assert lib.fastrnn_get_num_threads() == 3 and seen == [1]  # a new thread starts at 1
    lib.fastrnn_set_num_threads(torch.get_num_threads())
