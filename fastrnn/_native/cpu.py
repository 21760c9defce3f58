"""The `native` backend: the C library libfastrnn_cpu (kernels/cpu) on CPU tensors.

The library holds each kernel once per CPU variant (avx512, avx2, base; kernels/cpu/variants.c).
Calls use the best variant this CPU runs, or the one named by the environment variable
FASTRNN_CPU_VARIANT or set with fastrnn.set_cpu_variant — to compare them, or to test each.
"""
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
