"""The `numba` backend: @njit CPU kernels on NumPy views of torch's CPU tensors.

Every function takes contiguous torch tensors, outputs allocated by the caller (torch's
allocator), and writes the outputs in place; the argument lists are the C ABI's (kernels/fastrnn.h).
"""
import contextlib
import os
import warnings


def _check_cache_dir():
    """Numba caches the compiled kernels on disk; where the folder NUMBA_CACHE_DIR names cannot
    be written it still runs, silently compiling again in every process (seconds each): say so
    once."""
    folder = os.environ.get("NUMBA_CACHE_DIR")
    if not folder:
        return
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, ".fastrnn-write-test")
        open(probe, "w").close()
        os.remove(probe)
    except OSError as e:
        warnings.warn(f"fastrnn: the Numba cache folder NUMBA_CACHE_DIR={folder!r} cannot be "
                      f"written ({e.strerror}); the numba backend works but compiles its kernels "
                      "again in every process. Point NUMBA_CACHE_DIR at a writable folder.",
                      RuntimeWarning, stacklevel=2)


_check_cache_dir()
from . import gru as _gru, lstm as _lstm, rnn as _rnn  # noqa: E402  (compiles, or loads the cache)

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


def lstmp_forward(gx, h0, c0, w_hh, w_hr, lengths, y, h_n, c_n, gates, cs, hs, rs):
    with _one_blas_thread():
        _lstm.forward_projected(*_np(gx, h0, c0, w_hh.t().contiguous(), w_hr.t().contiguous(),
                                     lengths, y, h_n, c_n, gates, cs, hs, rs))


def lstmp_backward(dy, dh_n, dc_n, gates, cs, w_hh, w_hr, lengths, dG, dh0, dc0, du):
    with _one_blas_thread():
        _lstm.backward_projected(*_np(dy, dh_n, dc_n, gates, cs, w_hh, w_hr, lengths, dG, dh0,
                                      dc0, du))


def gru_forward(gx, h0, w_hh, b_hh, lengths, y, h_n, gates, a_n, hs):
    with _one_blas_thread():
        _gru.forward(*_np(gx, h0, w_hh.t().contiguous(), b_hh, lengths, y, h_n, gates, a_n, hs))


def gru_backward(dy, dh_n, gates, a_n, hs, w_hh, lengths, dGx, dA_n, dh0):
    with _one_blas_thread():
        _gru.backward(*_np(dy, dh_n, gates, a_n, hs, w_hh, lengths, dGx, dA_n, dh0))


from . import layernorm as _ln  # noqa: E402

# The LayerNorm kernels by the stem of their C name: the function, where W_hh sits among the
# arguments when the forward takes it transposed, and where the biases sit (None: zeros).
_LN = {"ln_lstm_forward": (_ln.lstm_forward, 6, (2, 3)),
       "ln_lstm_backward": (_ln.lstm_backward, None, ()),
       "ln_gru_forward": (_ln.gru_forward, 4, (2, 6)),
       "ln_gru_backward": (_ln.gru_backward, None, ())}


def ln_call(stem, H, *tensors):
    """fastrnn_<stem> (kernels/fastrnn.h: ln_lstm_forward[_infer], ln_lstm_backward and the
    GRU's) with the C ABI's arguments, on the Numba LayerNorm kernels."""
    fn, w, biases = _LN[stem.replace("_infer", "")]
    args = list(tensors)
    for k in biases:
        if args[k] is None:
            args[k] = args[1].new_zeros(args[1].shape)  # (g_ih: [G])
    if w is not None:
        args[w] = args[w].t().contiguous()
    with _one_blas_thread():
        fn(*_np(*args))
