"""Buffers a thread keeps between calls: memory the kernels or a backward write on every call,
which a fresh tensor would fault in page by page each time (a bfloat16 LSTM training step,
T = 100, B = 16, H = 256, faulted in 2,400 pages, about 10 MB, on every step; torch.nn's none).
Each thread has its own, so two threads never share one; what a buffer holds is its caller's
until that caller's next call, so none is ever handed out."""
import threading

import torch

_local = threading.local()  # per thread: the kernels' scratch, zeros (only ever read), buffers

KEEP_MAX = 1 << 25  # bytes: a larger buffer is allocated per call, its page faults small beside
# the work it holds (and a thread keeps no more than a few of these)


def scratch(nbytes):
    """Address of this thread's scratch buffer of at least nbytes (the kernel's gates and state
    ring, read by no one after the call), grown as needed."""
    buf = getattr(_local, "scratch", None)
    if buf is None or buf.numel() < nbytes:
        buf = _local.scratch = torch.empty(max(nbytes, 1 << 16), dtype=torch.uint8)
    return buf.data_ptr()


def buffer(slot, shape, dtype=torch.float32):
    """A tensor of `shape` and dtype: this thread's buffer `slot`, reused between calls (so
    written without page faults), or a new one above KEEP_MAX bytes."""
    n = 1
    for d in shape:
        n *= d
    if n * dtype.itemsize > KEEP_MAX:
        return torch.empty(shape, dtype=dtype)
    bufs = _local.__dict__.setdefault("buffers", {})
    buf = bufs.get((slot, dtype))
    if buf is None or buf.numel() < n:
        with torch.inference_mode(False):  # (one made under inference_mode could not be
            buf = bufs[slot, dtype] = torch.empty(n, dtype=dtype)  # written outside it)
    return buf[:n].view(shape)


def zeros(n, dtype):
    """Address of at least n zeros of dtype, which the kernels only read (a GRU's missing b_hh,
    a zero ∂L/∂h_n)."""
    buf = getattr(_local, "zeros", None)
    nbytes = n * dtype.itemsize
    if buf is None or buf.numel() < nbytes:
        buf = _local.zeros = torch.zeros(max(nbytes, 1 << 14), dtype=torch.uint8)
    return buf.data_ptr()
