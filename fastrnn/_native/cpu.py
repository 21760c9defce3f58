"""The `native` backend: the C library libfastrnn_cpu (kernels/cpu) on CPU tensors.

The library holds each kernel once per CPU variant (avx512, avx2, base; kernels/cpu/variants.c).
Calls use the best variant this CPU runs, or the one named by the environment variable
FASTRNN_CPU_VARIANT or set with fastrnn.set_cpu_variant — to compare them, or to test each.
"""
import ctypes
import os

import torch

from . import Library, kernel_call

library = Library("cpu")
call = kernel_call(library)
FUSED = True  # the forwards with G_x inside the loop (<cell>_forward_x, kernels/fastrnn.h)


def input_grad(d, w_ih):
    """d [N,G] · w_ih [G,I] -> dx [N,I] (fastrnn_input_grad), d contiguous. One foreign call and
    nothing else: in a cell's training step library.call's generic Python (views, pointer lists)
    cost 6 µs around a 7.5 µs product (B = 32, H = 128)."""
    (N, G), I = d.shape, w_ih.shape[1]
    w = w_ih.contiguous()
    dx = d.new_empty(N, I)
    fn = library.bound("input_grad", "f32" if d.dtype == torch.float32 else "f64")
    library.lib.fastrnn_set_num_threads(torch.get_num_threads())
    library.raise_for(fn(1, N, I, G, d.data_ptr(), w.data_ptr(), dx.data_ptr()))
    return dx


def set_variant(name):
    """Run the native kernels on CPU variant `name` (one of `library.variants`); None: the
    default, FASTRNN_CPU_VARIANT where it is set, else the best — so code that pins a variant and
    then restores the default keeps a pin the environment asked for."""
    name = name or os.environ.get("FASTRNN_CPU_VARIANT") or None
    if name is None:
        library.variant = library.variants[0] if library.variants else None
    elif name not in library.variants:
        raise ValueError(f"CPU variant: expected one of {library.variants} (what this CPU and this "
                         f"build run), got {name!r}")
    else:
        library.variant = name


set_variant(None)


def _blas():
    """(gemm by dtype, mkl_set_num_threads_local_) as addresses: the Fortran interfaces (every
    argument by reference) of the MKL that torch links, which libtorch_cpu exports on x86-64;
    None where torch has none."""
    path = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    try:
        lib = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_GLOBAL)
        fns = [ctypes.cast(getattr(lib, n), ctypes.c_void_p).value
               for n in ("sgemm_", "dgemm_", "mkl_set_num_threads_local_")]
    except (OSError, AttributeError):
        return None
    return {torch.float32: fns[0], torch.float64: fns[1]}, fns[2]


BLAS = _blas()
CORES = os.cpu_count() or 1


def _blocks(M, n=1):
    """The rows per block for n products of M rows each (rules blas_blocks_per_core and
    blas_block_rows: blocks from the shapes and the machine's cores, never the thread count):
    with n ≥ the blocks wanted, whole products — the larger calls (chunks of 1024 rows of an LSTM's
    (N, G, K) = (16384, 4096, 1024) weight gradient cut in 1024-row blocks had cost 3 % more)."""
    rule = library.lib.fastrnn_get_rule  # (the library holds the rules in force: fastrnn.rules)
    per = -(-max(4, rule(b"blas_blocks_per_core") * CORES) // n)
    return max(rule(b"blas_block_rows"), -(-M // (16 * per)) * 16)


def gram_blocks(a, b, n=1):
    """a_iᵀ b_i [n,G,K] for the n chunks of R rows of a [n·R,G] and b [n·R,K] (contiguous,
    float32 or float64), bitwise the same for any number of threads (kernels/cpu/gemm_blocks.c).
    BLAS must not be None. (Shapes read once, no views: a small product costs 3 µs more than
    torch's, against 10 through generic batched views.)"""
    (NR, G), K = a.shape, b.shape[1]
    R = NR // n
    if not (R and G and K):  # (an empty product: zeros, as torch's)
        return a.new_zeros(n, G, K)
    c = a.new_empty(n, G, K)
    library.raise_for(library.lib.fastrnn_gemm_blocks(
        a.dtype == torch.float64, BLAS[0][a.dtype], BLAS[1], 1, 0, n, G, K, R, a.data_ptr(), G,
        R * G, b.data_ptr(), K, R * K, c.data_ptr(), K, G * K, _blocks(G, n),
        torch.get_num_threads()))
    return c


def linear_blocks(x, w, out=None):
    """x wᵀ [N,G] for x [N,I], w [G,I] (contiguous, float32 or float64), bitwise the same for any
    number of threads, as gram_blocks; into out [N,G] (contiguous) if given."""
    (N, I), G = x.shape, w.shape[0]
    if not (N and I and G):
        return x.new_zeros(N, G)
    c = x.new_empty(N, G) if out is None else out
    library.raise_for(library.lib.fastrnn_gemm_blocks(
        x.dtype == torch.float64, BLAS[0][x.dtype], BLAS[1], 0, 1, 1, N, G, I, x.data_ptr(), I,
        0, w.data_ptr(), I, 0, c.data_ptr(), G, 0, _blocks(N), torch.get_num_threads()))
    return c
