"""What the Numba kernels share: explicit signatures for float32 and float64, the sigmoid, and
the GRU's pointwise backward."""
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


@nb.njit(cache=True, inline="always")
def gru_grads(r, z, n, a_n, h_prev, dh):
    """∂L/∂ of the GRU's r, z and n pre-activations (torch's form, the G_x side) for one element:
    activated gates r, z, n, the recurrent n part a_n, h_{t-1}, and dh = ∂L/∂h_t."""
    one = type(dh)(1)
    dn = dh * (one - z) * (one - n * n)
    dz = dh * (h_prev - n) * z * (one - z)
    return dn * a_n * r * (one - r), dz, dn
