"""The native CPU library as the direct calls (fastrnn._direct_calls, fastrnn._step_grad) use it:
bound on first use, a cell's forward by name and dtype, and addresses."""
import torch

from . import cells

DTYPES = {torch.float32: ("f32", 4), torch.float64: ("f64", 8)}  # the kernels' suffix, item size
# the cells the direct calls run, by their kernels' stems, and their forward_x calls
CELLS = {"lstm": cells.LSTM, "gru": cells.GRU, "rnn_tanh": cells.RNN, "rnn_relu": cells.RNN}
FORWARD_X = {stem: cells.forward_x_call(cell) for stem, cell in CELLS.items()}
_library = None  # the native library, bound on first use (importing it costs 0.7 µs a call)


def library():
    """The native CPU library (fastrnn._native.Library)."""
    global _library
    if _library is None:
        from ._native.cpu import library as lib
        _library = lib
    return _library


def loaded():
    """Whether library() has loaded the library."""
    return _library is not None


_kernels = {}  # (name, dtype, bf16, CPU variant): the bound function (Library.bound: 0.3 µs)


def kernel(name, dtype, bf16=False):
    """The forward of cell `name` (lstm, gru, rnn_tanh, rnn_relu) for dtype — with bf16, the one
    taking and giving everything in bfloat16 (dtype float32) — in the CPU variant the library
    runs now (library() has bound it)."""
    key = (name, dtype, bf16, _library.variant)
    fn = _kernels.get(key)
    if fn is None:
        stem = name + ("_forward_x_infer_bf16" if bf16 else "_forward_x_infer")
        fn = _kernels[key] = _library.bound(stem, DTYPES[dtype][0])
    return fn


def ptr(t):
    """t's address, or 0 (NULL) for None."""
    return 0 if t is None else t.data_ptr()
