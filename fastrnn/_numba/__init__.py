"""The `numba` backend: @njit CPU kernels on NumPy views of torch's CPU tensors.

Every function takes contiguous torch tensors, outputs allocated by the caller (torch's
allocator), and writes the outputs in place; the argument lists are the C ABI's (kernels/fastrnn.h).
"""
import contextlib

from . import gru as _gru, lstm as _lstm, rnn as _rnn

try:  # Numba's np.dot calls SciPy's BLAS; hold it to one thread so it does not fight torch's pool.
    import scipy.linalg.cython_blas  # noqa: F401  (load it first, so the controller sees it)
    from threadpoolctl import ThreadpoolController
    _blas = ThreadpoolController().select(user_api="blas")
except Exception:  # threadpoolctl missing or unable to find the library: BLAS keeps its own setting
    _blas = None


def _one_blas_thread():
    return _blas.limit(limits=1) if _blas else contextlib.nullcontext()


def _np(*tensors):
    return [t.detach().numpy() for t in tensors]


def rnn_forward(gx, h0, w_hh, lengths, relu, y, h_n, hs):
    with _one_blas_thread():
        _rnn.forward(*_np(gx, h0, w_hh.t().contiguous(), lengths), relu, *_np(y, h_n, hs))


def rnn_backward(dy, dh_n, hs, w_hh, lengths, relu, dG, dh0):
    with _one_blas_thread():
        _rnn.backward(*_np(dy, dh_n, hs, w_hh, lengths), relu, *_np(dG, dh0))


def lstm_forward(gx, h0, c0, w_hh, lengths, y, h_n, c_n, gates, cs, hs):
    with _one_blas_thread():
        _lstm.forward(*_np(gx, h0, c0, w_hh.t().contiguous(), lengths, y, h_n, c_n, gates, cs, hs))


def lstm_backward(dy, dh_n, dc_n, gates, cs, w_hh, lengths, dG, dh0, dc0):
    with _one_blas_thread():
        _lstm.backward(*_np(dy, dh_n, dc_n, gates, cs, w_hh, lengths, dG, dh0, dc0))


def gru_forward(gx, h0, w_hh, b_hh, lengths, y, h_n, gates, a_n, hs):
    with _one_blas_thread():
        _gru.forward(*_np(gx, h0, w_hh.t().contiguous(), b_hh, lengths, y, h_n, gates, a_n, hs))


def gru_backward(dy, dh_n, gates, a_n, hs, w_hh, lengths, dGx, dA, dh0):
    with _one_blas_thread():
        _gru.backward(*_np(dy, dh_n, gates, a_n, hs, w_hh, lengths, dGx, dA, dh0))
