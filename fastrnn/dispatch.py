"""Which backend runs a call: the registry of kernel backends and the `auto` rule (the dispatcher).

    numba    @njit CPU kernels (fastrnn/_numba)
    native   the C library (kernels/cpu), loaded with cffi
    cuda     the CUDA library (kernels/cuda), for CUDA tensors
    eager    plain PyTorch ops (fastrnn/_eager.py): any device, dtype and feature

The kernel backends share one interface: call(cell, kind, H, *tensors, flag=False, R=None) runs
a cell's kernel (kind forward, forward_infer or backward; native also forward_x[_infer][_bf16])
on torch tensors in the order of the cell's description (fastrnn.cells: the C ABI of
kernels/fastrnn.h), and FUSED says whether the backend has the forward_x kernels.
"""
import contextlib
import functools
import importlib
import warnings

import torch

from . import rules

NAMES = ("numba", "native", "cuda", "eager")
_MODULES = {"numba": "fastrnn._numba", "native": "fastrnn._native.cpu",
            "cuda": "fastrnn._native.cuda"}
_KERNEL_DTYPES = (torch.float32, torch.float64)
# bfloat16 calls run on the float32 kernels (fastrnn.functional widens them; bf16_products)
_WIDENED = (torch.bfloat16,)
_loaded, _why_not = {}, {}


def load(name):
    """The module implementing kernel backend `name`; RuntimeError saying why when it is unusable."""
    if name not in _loaded and name not in _why_not:
        try:
            _loaded[name] = importlib.import_module(_MODULES[name])
        except Exception as e:  # an import error, a missing library, no GPU: all say 'unusable'
            _why_not[name] = f"{type(e).__name__}: {e}"
    if name in _why_not:
        raise RuntimeError(f"fastrnn backend {name!r} is not usable here: {_why_not[name]}")
    return _loaded[name]


@torch.compiler.assume_constant_result  # torch.compile asks it once while tracing, for real:
def why_not(name):                      # Dynamo will not trace the import in load()
    """None when backend `name` is usable, else the reason it is not."""
    if name == "eager":
        return None
    try:
        load(name)
        return None
    except RuntimeError:
        return _why_not[name]


def backends():
    """Names of the backends usable on this machine, e.g. ['numba', 'native', 'eager']."""
    return [n for n in NAMES if why_not(n) is None]


def cpu_variants():
    """The native backend's CPU variants this machine runs, best first, e.g. ['avx512', 'avx2',
    'base'] ([] where the native backend is unusable or was built with a single variant)."""
    return list(load("native").library.variants) if why_not("native") is None else []


def cpu_variant():
    """The CPU variant the native kernels run now (None: a build with one variant)."""
    return load("native").library.variant if why_not("native") is None else None


def set_cpu_variant(name):
    """Pin the native kernels to CPU variant `name` (from cpu_variants()); None: the default, the
    one the environment variable FASTRNN_CPU_VARIANT names, else the best this CPU runs."""
    load("native").set_variant(name)


def resolve(backend, x):
    """The backend that runs a call on input `x`: `backend` itself, checked, or the `auto` choice."""
    if backend == "auto":
        return _auto(x)
    if backend not in NAMES:
        raise ValueError(f"backend must be one of {('auto',) + NAMES}, got {backend!r}")
    if backend == "eager":
        return backend
    if x.dtype not in _KERNEL_DTYPES + _WIDENED:
        raise ValueError(f"backend {backend!r} takes float32, float64 or bfloat16 input, got "
                         f"{x.dtype}; use backend='eager' or 'auto'")
    want = "cuda" if backend == "cuda" else "cpu"
    if x.device.type != want:
        raise ValueError(f"backend {backend!r} runs on {want} tensors, got input on {x.device}")
    reason = why_not(backend)
    if reason is not None:
        hint = ("reinstall fastrnn with a C compiler and CMake present (pip install -e .)"
                if backend == "native" else
                "reinstall with nvcc present and FASTRNN_CUDA=ON, on a machine with a GPU"
                if backend == "cuda" else "pip install numba scipy")
        raise RuntimeError(f"fastrnn backend {backend!r} is not usable: {reason}. To build it: {hint}")
    return backend


_warned = set()


def _auto(x):
    # float16: no kernel is faster than torch's own ops there; bfloat16: see bf16_products
    if x.dtype not in _KERNEL_DTYPES + _WIDENED:
        return "eager"
    # CPU, measured with `fastrnn bench` and `--dtype float64` (2-core AMD EPYC, AVX2, T=50,
    # B in {1,16,64}, H=I in {64,256}): the C library, whose packed, register-tiled product runs
    # on torch's threads, beat numba at 36 of 36 points in float32 and 36 of 36 in float64.
    if x.device.type == "cuda":
        order = ("cuda",)
    elif x.device.type == "cpu":
        order = ("native", "numba")
    else:
        order = ()
    for name in order:
        reason = why_not(name)
        if reason is None:
            return name
        if name not in _warned:
            _warned.add(name)
            warnings.warn(f"fastrnn: backend {name!r} is unavailable ({reason}); falling back to "
                          "the next one", RuntimeWarning, stacklevel=4)
    return "eager"


@functools.lru_cache(maxsize=None)
def cpuinfo(*keys):
    """The value of the first /proc/cpuinfo line whose name is one of `keys` ('' where there is
    none, or no /proc/cpuinfo), e.g. cpuinfo("vendor_id") -> 'AuthenticAMD'."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(keys):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def input_grad_on_tiles(d, w_cols, step=False):
    """Whether the backward's ∂L/∂x = ∂L/∂G_x W_ih (d: ∂L/∂G_x [N,G]; W_ih [G,w_cols]) runs on the
    native kernels' tiles (fastrnn_input_grad) rather than torch's BLAS: by the rule
    input_grad_tiles (everywhere: the tiles' sums do not depend on the thread count, MKL's do),
    from 2^input_grad_tiles_madds_log2 multiply-adds on (every size), or at any size in a cell's
    one-step backward (`step`), where MKL's first call after the kernel's costs twice its own
    time (fastrnn.rules: the measurements)."""
    if d.device.type != "cpu" or d.dtype not in _KERNEL_DTYPES:
        return False
    madds = d.shape[0] * d.shape[1] * w_cols
    return ((step or madds >= 1 << rules.value("input_grad_tiles_madds_log2"))
            and input_grad_tiles_here() and why_not("native") is None)


def input_grad_tiles_here():
    """Whether this CPU takes the backward's dx on the tiles by the rule input_grad_tiles: 0 never,
    1 on AMD CPUs, 2 everywhere."""
    where = rules.value("input_grad_tiles")
    return where == 2 or where == 1 and cpuinfo("vendor_id") == "AuthenticAMD"


def multiplies_in_bf16():
    """Whether this thread is inside bf16_products (with the native backend usable)."""
    if why_not("native") is not None:
        return False
    return bool(load("native").library.lib.fastrnn_get_bf16_products())


@contextlib.contextmanager
def bf16_products(on=True):
    """Inside it, the native kernels called on this thread multiply in bfloat16 where the CPU has
    AVX-512-BF16 (fastrnn_set_bf16_products in kernels/fastrnn.h): the weights, x_t, h_{t-1} (and
    in the backward ∂L/∂A_t) rounded to bfloat16 as torch.nn's bfloat16 kernels round them, sums
    and cell state in float32, at twice the float32 rate. For bfloat16 modules and autocast to
    bfloat16, whose torch.nn counterparts multiply in bfloat16 too; elsewhere it changes nothing."""
    lib = load("native").library.lib if on and why_not("native") is None else None
    if lib is None:
        yield
        return
    before = lib.fastrnn_get_bf16_products()
    lib.fastrnn_set_bf16_products(1)
    try:
        yield
    finally:
        lib.fastrnn_set_bf16_products(before)
