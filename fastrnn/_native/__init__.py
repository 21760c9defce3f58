"""cffi (ABI mode) loader of the compiled libraries: libfastrnn_cpu and libfastrnn_cuda.

The cells' kernels are declared as their descriptions say (fastrnn.cells), the rest as the marked
region of kernels/fastrnn.h, installed beside the libraries, declares it; the f64 and CUDA
declarations are derived from the f32 ones by the substitution that the header describes. The
libraries are looked for in every folder of this package's __path__ and of sys.path, so regular
and editable installs both find them — or only in the folder the environment variable
FASTRNN_LIBRARY_DIR names, to run a build of one's own.
"""
import os
import re
import sys

import cffi
import torch

from .. import cells

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
    # The cells' kernels as their descriptions declare them (fastrnn.cells, from which the build
    # writes fastrnn_cells.h too), then the header's other kernels (input_grad, gemm_blocks).
    # Every array (and gemm_blocks' BLAS functions) is an address (intptr_t: the same register in
    # the C calling convention), so a call passes tensor.data_ptr() as it is, with no cffi
    # pointer cast per argument.
    others = re.findall(r"int fastrnn_\w+_f32\([^;]*;", region)
    common = re.sub(r"int fastrnn_\w+_f32\([^;]*;", "", region)
    pointer = r"(const\s+)?\w+\s*\*\s*(\w+)"
    others = re.sub(pointer, r"intptr_t \2", "\n".join(others))
    common = re.sub(r"int fastrnn_gemm_blocks\([^;]*;",
                    lambda m: re.sub(pointer, r"intptr_t \2", m.group(0)), common)
    f32 = "".join(c.declarations() for c in cells.CELLS.values()) + others
    f64 = re.sub(r"int fastrnn_\w+_bf16_f64\([^;]*;", "", f32.replace("_f32(", "_f64("))  # f32 only
    if kind == "cpu":  # the plain names and each variant's (FASTRNN_CPU_VARIANTS, variants.c)
        variants = [""] + ["_" + v for v in re.findall(r"^  X\(a, (\w+),", text, flags=re.M)]
        return common + "".join((f32 + f64).replace("_f32(", f"_f32{v}(").replace("_f64(", f"_f64{v}(")
                                for v in variants)
    cuda = "".join(c.declarations(cuda=True) for c in cells.CELLS.values() if c.cuda)
    cuda = cuda + cuda.replace("_f32(", "_f64(")
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


def kernel_call(library, stream=None, device=None):
    """The kernel-backend interface (see fastrnn.dispatch) on `library`: call(cell, kind, H,
    *tensors, flag=False, R=None) runs fastrnn_<stem>_<kind>_<dtype> of a cell description
    (fastrnn.cells) on its tensors, in the cell's order; kind is forward, forward_infer,
    forward_x, forward_x_infer (these two with _bf16 for bfloat16 tensors) or backward.
    `stream(t)` gives the stream to launch on and `device(t)` a context making t's device
    current (CUDA)."""
    stems = {}  # (cell name, kind, flag): the function's stem, whether it takes I

    def call(cell, kind, H, *tensors, flag=False, R=None):
        key = (cell.name, kind, flag)
        stem = stems.get(key)
        if stem is None:
            stem = stems[key] = (f"{cell.stem(flag)}_{kind}", kind.startswith("forward_x"))
        stem, takes_x = stem
        I = tensors[0].shape[2] if takes_x else None
        R = R if cell.projected else None
        if device is None:
            return library.call(stem, H, *tensors, I=I, R=R)
        with device(tensors[0]):
            library.call(stem, H, *tensors, stream=stream(tensors[0]), I=I, R=R)

    return call
