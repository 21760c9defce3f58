"""cffi (ABI mode) loader of the compiled libraries: libfastrnn_cpu and libfastrnn_cuda.

The declarations come from the marked region of kernels/fastrnn.h, which is installed beside the
libraries; the f64 and CUDA declarations are derived from the f32 ones by the substitution that
the header describes. The libraries are looked for in every folder of this package's __path__
and of sys.path, so regular and editable installs both find them — or only in the folder the
environment variable FASTRNN_LIBRARY_DIR names, to run a build of one's own.
"""
import contextlib
import os
import re
import sys

import cffi
import torch

_NAMES = {"cpu": "libfastrnn_cpu", "cuda": "libfastrnn_cuda"}
_EXT = {"win32": ".dll", "darwin": ".dylib"}.get(sys.platform, ".so")


def _search_dirs():
    if os.environ.get("FASTRNN_LIBRARY_DIR"):
        return [os.environ["FASTRNN_LIBRARY_DIR"]]
    dirs = list(__path__)
    dirs += [os.path.join(p, "fastrnn", "_native") for p in sys.path if p]
    dirs.append(os.path.join(os.path.dirname(__file__), "..", "..", "kernels"))  # source tree
    return [d for i, d in enumerate(dirs) if d not in dirs[:i] and os.path.isdir(d)]


def find(filename):
    """Full path of `filename` in the first folder that has it, or None."""
    for d in _search_dirs():
        if os.path.isfile(os.path.join(d, filename)):
            return os.path.join(d, filename)
    return None


def _cdef(kind):
    header = find("fastrnn.h")
    if header is None:
        raise ImportError("fastrnn.h not found beside the compiled libraries")
    with open(header, encoding="utf-8") as f:
        text = f.read()
    region = text.split("/* FASTRNN_CDEF_BEGIN */")[1].split("/* FASTRNN_CDEF_END */")[0]
    region = re.sub(r"/\*.*?\*/", "", region, flags=re.S)
    common, f32 = region.split("int fastrnn_rnn_tanh_forward_f32", 1)
    # Every array is declared an address (intptr_t: the same register in the C calling convention)
    # so a call passes tensor.data_ptr() as it is, with no cffi pointer cast per argument.
    f32 = re.sub(r"(const\s+)?\w+\s*\*\s*(\w+)", r"intptr_t \2",
                 "int fastrnn_rnn_tanh_forward_f32" + f32)
    f64 = re.sub(r"int fastrnn_\w+_bf16_f64\([^;]*;", "", f32.replace("_f32(", "_f64("))  # f32 only
    if kind == "cpu":  # the plain names and each variant's (FASTRNN_CPU_VARIANTS, variants.c)
        variants = [""] + ["_" + v for v in re.findall(r"^  X\(a, (\w+),", text, flags=re.M)]
        return common + "".join((f32 + f64).replace("_f32(", f"_f32{v}(").replace("_f64(", f"_f64{v}(")
                                for v in variants)
    cuda = re.sub(r"int fastrnn_(\w+_x(_infer)?(_bf16)?|input_grad|ln_\w+)_f(32|64)\([^;]*;", "",  # CPU
                  f32 + f64)
    cuda = cuda.replace("_f32(", "_f32_cuda(").replace("_f64(", "_f64_cuda(")
    return common + cuda.replace(");", ", intptr_t stream);")


_ERRORS = {1: ValueError, 3: MemoryError}  # FASTRNN_EINVAL, FASTRNN_ENOMEM; EDEVICE: RuntimeError


class Library:
    """One compiled library and a call that turns its error codes into Python exceptions."""

    def __init__(self, kind):
        path = find(_NAMES[kind] + _EXT)
        if path is None:
            raise ImportError(f"{_NAMES[kind]}{_EXT} was not built or not installed")
        self.kind, self.path = kind, path
        self.ffi = cffi.FFI()
        self.ffi.cdef(_cdef(kind))
        self.lib = self.ffi.dlopen(path)
        self._fns = {}
        # The CPU variants this machine runs, best first (kernels/cpu/variants.c); `variant` is the
        # one whose functions the calls bind (None: the plain names, a build with one variant).
        self.variants = (self.ffi.string(self.lib.fastrnn_cpu_variants()).decode().split()
                         if kind == "cpu" else [])
        self.variant = self.variants[0] if self.variants else None

    def build_info(self):
        return self.ffi.string(self.lib.fastrnn_build_info()).decode()

    def bound(self, stem, dtype):
        """The function fastrnn_<stem>_<dtype> (dtype 'f32' or 'f64') of the current variant."""
        key = (stem, dtype, self.variant)
        fn = self._fns.get(key)
        if fn is None:
            suffix = "_cuda" if self.kind == "cuda" else f"_{self.variant}" if self.variant else ""
            fn = self._fns[key] = getattr(self.lib, f"fastrnn_{stem}_{dtype}{suffix}")
        return fn

    def call(self, stem, H, *tensors, stream=None, I=None, R=None):
        """fastrnn_<stem>_<dtype>[_cuda](T, B, [I,] H, [R,] *pointers[, stream]) on torch tensors
        (None for a NULL pointer)."""
        x = tensors[0]
        fn = self.bound(stem, {torch.float32: "f32", torch.float64: "f64",
                               torch.bfloat16: "f32"}[x.dtype])  # (bfloat16: the _bf16 stems)
        ptrs = [0 if t is None else t.data_ptr() for t in tensors]
        if stream is not None:
            ptrs.append(stream)
        if self.kind == "cpu":  # as many threads as torch.nn's CPU kernels use, which is a
            self.lib.fastrnn_set_num_threads(torch.get_num_threads())  # per-thread setting
        sizes = [x.shape[0], x.shape[1]] + ([] if I is None else [I]) + [H] + \
            ([] if R is None else [R])
        self.raise_for(fn(*sizes, *ptrs))

    def raise_for(self, rc):
        """Raises the error a call's return code `rc` names (with the library's message)."""
        if rc != 0:
            msg = self.ffi.string(self.lib.fastrnn_last_error()).decode()
            raise _ERRORS.get(rc, RuntimeError)(f"fastrnn {self.kind} kernel: {msg}")


def _forward(x, hs, name="forward"):
    """Which forward the state buffer hs [S,B,H] asks for: T+1 slots keep every state for
    backward (`name`), a two-slot ring does not (`name`_infer); x [T,...]."""
    return name if hs.shape[0] == x.shape[0] + 1 else name + "_infer"


def kernel_functions(library, stream=lambda t: None, device=lambda t: contextlib.nullcontext()):
    """The functions of the kernel-backend interface (see fastrnn.dispatch) on `library`;
    `stream(t)` gives the stream to launch on and `device(t)` a context making t's device current.
    The LSTM with a projection (lstmp_*): w_hr [R,H], h0 [B,R], rs [Sg,B,H] the cell outputs r_t
    it projects, du [T,B,R]."""

    def call(stem, H, *tensors, R=None):
        with device(tensors[0]):
            library.call(stem, H, *tensors, stream=stream(tensors[0]), R=R)

    def rnn_forward(gx, h0, w_hh, lengths, relu, y, h_n, hs):
        stem = f"rnn_{'relu' if relu else 'tanh'}_{_forward(gx, hs)}"
        call(stem, gx.shape[2], gx, h0, w_hh, lengths, y, h_n, hs)

    def rnn_backward(dy, dh_n, hs, w_hh, lengths, relu, dA, dh0):
        call(f"rnn_{'relu' if relu else 'tanh'}_backward", dy.shape[2], dy, dh_n, hs, w_hh,
             lengths, dA, dh0)

    def lstm_forward(gx, h0, c0, w_hh, lengths, y, h_n, c_n, gates, cs, hs):
        call(f"lstm_{_forward(gx, hs)}", gx.shape[2] // 4, gx, h0, c0, w_hh, lengths, y, h_n, c_n,
             gates, cs, hs)

    def lstm_backward(dy, dh_n, dc_n, gates, cs, w_hh, lengths, dA, dh0, dc0):
        call("lstm_backward", dy.shape[2], dy, dh_n, dc_n, gates, cs, w_hh, lengths, dA, dh0, dc0)

    def gru_forward(gx, h0, w_hh, b_hh, lengths, y, h_n, gates, a_n, hs):
        call(f"gru_{_forward(gx, hs)}", gx.shape[2] // 3, gx, h0, w_hh, b_hh, lengths, y, h_n,
             gates, a_n, hs)

    def gru_backward(dy, dh_n, gates, a_n, hs, w_hh, lengths, dGx, dA_n, dh0):
        call("gru_backward", dy.shape[2], dy, dh_n, gates, a_n, hs, w_hh, lengths, dGx, dA_n,
             dh0)

    def lstmp_forward(gx, h0, c0, w_hh, w_hr, lengths, y, h_n, c_n, gates, cs, hs, rs):
        call("lstmp_" + _forward(gx, hs), c0.shape[1], gx, h0, c0, w_hh, w_hr, lengths, y, h_n,
             c_n, gates, cs, hs, rs, R=h0.shape[1])

    def lstmp_backward(dy, dh_n, dc_n, gates, cs, w_hh, w_hr, lengths, dA, dh0, dc0, du):
        call("lstmp_backward", dc_n.shape[1], dy, dh_n, dc_n, gates, cs, w_hh, w_hr, lengths, dA,
             dh0, dc0, du, R=dh_n.shape[1])

    return (rnn_forward, rnn_backward, lstm_forward, lstm_backward, gru_forward, gru_backward,
            lstmp_forward, lstmp_backward)


def fused_functions(library):
    """The forwards with the input projection inside the kernel (the CPU library's *_forward_x):
    x [T,B,I], w_ih [G,I] and the biases b_ih, b_hh [G] (each may be None; GRU: b_ih only) in
    place of G_x. A bfloat16 x (with everything else but the float32 scratch and saved buffers
    in bfloat16) runs the *_forward_x[_infer]_bf16 kernels (but for the projection)."""

    def stem(cell, x, hs):
        return cell + _forward(x, hs, "forward_x") + ("_bf16" if x.dtype == torch.bfloat16 else "")

    def rnn_forward_x(x, w_ih, b_ih, b_hh, h0, w_hh, lengths, relu, y, h_n, hs):
        library.call(stem(f"rnn_{'relu' if relu else 'tanh'}_", x, hs), h0.shape[1], x, w_ih,
                     b_ih, b_hh, h0, w_hh, lengths, y, h_n, hs, I=x.shape[2])

    def lstm_forward_x(x, w_ih, b_ih, b_hh, h0, c0, w_hh, lengths, y, h_n, c_n, gates, cs, hs):
        library.call(stem("lstm_", x, hs), c0.shape[1], x, w_ih, b_ih, b_hh, h0, c0, w_hh,
                     lengths, y, h_n, c_n, gates, cs, hs, I=x.shape[2])

    def gru_forward_x(x, w_ih, b_ih, h0, w_hh, b_hh, lengths, y, h_n, gates, a_n, hs):
        library.call(stem("gru_", x, hs), h0.shape[1], x, w_ih, b_ih, h0, w_hh, b_hh, lengths,
                     y, h_n, gates, a_n, hs, I=x.shape[2])

    def lstmp_forward_x(x, w_ih, b_ih, b_hh, h0, c0, w_hh, w_hr, lengths, y, h_n, c_n, gates,
                        cs, hs, rs):
        library.call("lstmp_" + _forward(x, hs, "forward_x"), c0.shape[1], x, w_ih, b_ih, b_hh,
                     h0, c0, w_hh, w_hr, lengths, y, h_n, c_n, gates, cs, hs, rs, I=x.shape[2],
                     R=h0.shape[1])

    return rnn_forward_x, lstm_forward_x, gru_forward_x, lstmp_forward_x
