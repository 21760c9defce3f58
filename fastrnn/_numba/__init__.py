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


from . import layernorm as _ln  # noqa: E402

# Each cell's (forward, backward) @njit kernels: the C ABI's arguments (kernels/fastrnn.h, in a
# cell's order, fastrnn.cells) but the forward's weights transposed (h_{t-1} W_hhᵀ reads rows) and
# a cell's flag (RNN's relu) after lengths.
_KERNELS = {"rnn": (_rnn.forward, _rnn.backward), "lstm": (_lstm.forward, _lstm.backward),
            "lstmp": (_lstm.forward_projected, _lstm.backward_projected),
            "gru": (_gru.forward, _gru.backward),
            "ln_lstm": (_ln.lstm_forward, _ln.lstm_backward),
            "ln_gru": (_ln.gru_forward, _ln.gru_backward)}
FUSED = False  # no forward with G_x inside: the caller computes it


def call(cell, kind, H, *tensors, flag=False, R=None):
    """fastrnn_<stem>_<kind> (kind forward, forward_infer or backward) of cell description `cell`
    (fastrnn.cells) on its tensors, in its order, on the @njit kernels."""
    forward = kind.startswith("forward")
    names = ("x_in", *cell.forward_args()) if forward else cell.backward_args()
    args = list(tensors)
    for k, name in enumerate(names):
        if forward and name.startswith(("w_hh", "w_hr")):
            args[k] = args[k].t().contiguous()
        elif name.endswith("?") and args[k] is None:  # a missing bias [G]: zeros
            args[k] = args[0].new_zeros(args[0].shape[2])
    arrays = _np(*args)
    if cell.flag:
        arrays.insert(len(names), flag)
    with _one_blas_thread():
        _KERNELS[cell.name][0 if forward else 1](*arrays)
