"""What the Numba kernels share: explicit signatures for float32 and float64, and the sigmoid."""
import numba as nb
import numpy as np


def signatures(spec):
    """One explicit signature per float type: 'F' in `spec` stands for float32, then float64.

    Explicit C-contiguous signatures compile once at import and are cached on disk (cache=True),
    so neither tests nor users pay for compilation twice.
    """
    return [spec.replace("F", t) for t in ("float32", "float64")]


@nb.njit(cache=True, inline="always")
def sigmoid(a):
    """σ(a) in a's own precision (a.dtype-typed constant, so float32 stays float32)."""
    one = type(a)(1)
    return one / (one + np.exp(-a))
