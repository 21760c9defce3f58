"""The `native` backend: the C library libfastrnn_cpu (kernels/cpu) on CPU tensors.

The library holds each kernel once per CPU variant (avx512, avx2, base; kernels/cpu/variants.c).
Calls use the best variant this CPU runs, or the one named by the environment variable
FASTRNN_CPU_VARIANT or set with fastrnn.set_cpu_variant — to compare them, or to test each.
"""
import os

from . import Library, fused_functions, kernel_functions

library = Library("cpu")
(rnn_forward, rnn_backward, lstm_forward, lstm_backward, gru_forward, gru_backward,
 lstmp_forward, lstmp_backward) = kernel_functions(library)
rnn_forward_x, lstm_forward_x, gru_forward_x, lstmp_forward_x = fused_functions(library)


def input_grad(dgx, w_ih, dx):
    """dx [T,B,I] = dgx [T,B,G] · w_ih [G,I] (fastrnn_input_grad)."""
    library.call("input_grad", dgx.shape[2], dgx, w_ih, dx, I=w_ih.shape[1])


def set_variant(name):
    """Run the native kernels on CPU variant `name` (one of `library.variants`); None: the best."""
    if name is None:
        library.variant = library.variants[0] if library.variants else None
    elif name not in library.variants:
        raise ValueError(f"CPU variant: expected one of {library.variants} (what this CPU and this "
                         f"build run), got {name!r}")
    else:
        library.variant = name


set_variant(os.environ.get("FASTRNN_CPU_VARIANT") or None)
