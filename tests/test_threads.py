"""Concurrency and memory: Python threads calling one module at once get what sequential calls
get, also while other threads change torch's thread count (the C library keeps the count per
calling thread); many training calls do not grow resident memory."""
import random
import threading
import time

import pytest
import torch

import fastrnn
from fastrnn.harness.memory import status_mib


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_one_and_two_threads_give_the_same_bits(mode):
    """Outputs and every gradient, x's included, at a shape where torch's own sgemm (MKL on an
    Intel Xeon) gives other bits on one and two threads: dx is on the kernels' tiles
    (rule input_grad_tiles), whose sums run in a fixed order."""
    runs, before = [], torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.manual_seed(0)
            m = getattr(fastrnn, mode)(16, 256)
            x = torch.randn(6, 2, 16, requires_grad=True)
            torch.set_num_threads(threads)
            y, _ = m(x)
            y.pow(2).sum().backward()
            runs.append([y.detach(), x.grad] + [p.grad for p in m.parameters()])
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(a, b) for a, b in zip(*runs))


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
