"""Compiles a declared cell's generated C (fastrnn.user.codegen) with the kernels' headers into a
library of its own, once per CPU variant, and keeps it on disk: a second process finds it by
the hash of everything that went into it and pays only the loading.

The compiler is $CC (else `cc`) with the flags CMake gives the built-in cells' variant
(FASTRNN_CPU_VARIANTS in kernels/fastrnn.h); the library links against libfastrnn_cpu, whose
threads, rules and error messages it shares. Libraries live in $FASTRNN_CACHE_DIR, else
$XDG_CACHE_HOME/fastrnn/cells, else ~/.cache/fastrnn/cells.
"""
import hashlib
import os
import re
import shlex
import subprocess
import tempfile
import threading
import time

import cffi

from .. import _native

FLAGS = ["-O3", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math", "-fPIC", "-fopenmp"]
_CDEF = """
int fastrnn_user_forward_{t}(int64_t T, int64_t B, int64_t H, int64_t S, intptr_t gx,
    intptr_t h0, intptr_t W_hh, intptr_t b_hh, intptr_t v, intptr_t lengths, intptr_t y,
    intptr_t h_n, intptr_t hs, intptr_t cs, intptr_t gh, intptr_t scr, intptr_t sv);
int fastrnn_user_forward_x_{t}(int64_t T, int64_t B, int64_t I, int64_t H, intptr_t x,
    intptr_t W_ih, intptr_t b_ih, intptr_t h0, intptr_t W_hh, intptr_t b_hh, intptr_t v,
    intptr_t lengths, intptr_t y, intptr_t h_n, intptr_t hs, intptr_t cs, intptr_t gh,
    intptr_t scr);
int fastrnn_user_backward_{t}(int64_t T, int64_t B, int64_t H, intptr_t dy, intptr_t dh_n,
    intptr_t dc, intptr_t gx, intptr_t gh, intptr_t b_hh, intptr_t hs, intptr_t cs, intptr_t v,
    intptr_t W_hh, intptr_t lengths, intptr_t dgx, intptr_t dgh, intptr_t dh0, intptr_t dv,
    intptr_t scr, intptr_t sv);
int fastrnn_user_scan_forward_{t}(int64_t T, int64_t B, int64_t H, int64_t S, intptr_t gx,
    intptr_t h0, intptr_t v, intptr_t lengths, intptr_t y, intptr_t h_n, intptr_t hs,
    intptr_t cs, intptr_t scr, intptr_t sv);
int fastrnn_user_scan_backward_{t}(int64_t T, int64_t B, int64_t H, intptr_t dy, intptr_t dh_n,
    intptr_t dc, intptr_t gx, intptr_t hs, intptr_t cs, intptr_t v, intptr_t lengths,
    intptr_t dgx, intptr_t dh0, intptr_t dv, intptr_t scr, intptr_t sv);
"""
_lock = threading.Lock()
_loaded = {}  # library path -> the cffi library
compile_seconds = {}  # cell name -> seconds its last compilation took (0: found on disk)


def native():
    """The native library (fastrnn._native.cpu's), loaded on first use: importing fastrnn must
    not need it."""
    from .._native import cpu
    return cpu.library


def cache_dir():
    base = os.environ.get("FASTRNN_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "fastrnn", "cells")
    return base


def _variant_flags(variant):
    """(compiler flags, tile rows) of CPU variant `variant` from FASTRNN_CPU_VARIANTS."""
    with open(_native.find("fastrnn.h"), encoding="utf-8") as f:
        rows = re.findall(r'X\(a, (\w+), "[^"]*", (\d+), "([^"]*)"\)', f.read())
    for name, mr, flags in rows:
        if name == variant:
            return shlex.split(flags), int(mr)
    return [], 4


def _headers():
    """The folder holding cell_math.h, common.h, fastrnn.h, rules.def and cpu/*.h (installed
    beside the library, or the source tree's kernels/)."""
    found = _native.find(os.path.join("cpu", "user_cell.h"))
    if found is None:
        raise RuntimeError("fastrnn.cell: the kernels' headers (cpu/user_cell.h) are not "
                           "installed beside the native library; reinstall fastrnn")
    return os.path.dirname(os.path.dirname(found))


def _header_text(include):
    parts = []
    for folder in (include, os.path.join(include, "cpu")):
        for name in sorted(os.listdir(folder)):
            if name.endswith((".h", ".def")):
                with open(os.path.join(folder, name), "rb") as f:
                    parts.append(name.encode() + f.read())
    return b"".join(parts)


def load(decl):
    """The cffi library of declared cell `decl` for the CPU variant in force, compiled on first
    use (in this process, on this machine) -> (ffi, lib)."""
    library = native()
    variant = library.variant
    lib = decl.libraries.get(variant)
    if lib is None:
        lib = decl.libraries[variant] = _load(decl, library, variant)
    return lib


def _load(decl, library, variant):
    flags, mr = _variant_flags(variant)
    include, libdir = _headers(), os.path.dirname(library.path)
    cc = os.environ.get("CC", "cc")
    command = FLAGS + flags + [f"-DFR_MR={mr}", f"-DFR_VARIANT={variant or 'plain'}"]
    key = hashlib.sha256(b"\0".join([decl.source.encode(), " ".join([cc] + command).encode(),
                                     _header_text(include)])).hexdigest()[:20]
    path = os.path.join(cache_dir(), f"{decl.name}-{key}{_native._EXT}")
    with _lock:
        lib = _loaded.get(path)
        if lib is None:
            start = time.perf_counter()
            compiled = not os.path.exists(path)
            if compiled:
                _compile(decl, cc, command, include, libdir, path)
            ffi = cffi.FFI()
            ffi.cdef(_CDEF.format(t="f32") + _CDEF.format(t="f64"))
            lib = _loaded[path] = (ffi, ffi.dlopen(path))
            compile_seconds[decl.name] = time.perf_counter() - start if compiled else 0.0
    return lib


def _compile(decl, cc, command, include, libdir, path):
    """Two objects (float32, float64) from the generated C, linked into `path` (written to a
    temporary name and renamed: processes compiling the same cell at once each finish whole)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fastrnn-cell-") as tmp:
        src = os.path.join(tmp, f"{decl.name}.c")
        with open(src, "w", encoding="utf-8") as f:
            f.write(decl.source)
        objects, jobs = [], []
        for dtype, define in (("f32", []), ("f64", ["-DFASTRNN_F64=1"])):
            obj = os.path.join(tmp, f"{dtype}.o")
            objects.append(obj)
            jobs.append(subprocess.Popen([cc, *command, *define, "-I", include, "-c", src,
                                          "-o", obj], stderr=subprocess.PIPE, text=True))
        errors = [job.communicate()[1] for job in jobs]
        failed = [e for e, job in zip(errors, jobs) if job.returncode]
        if not failed:
            part = f"{path}.{os.getpid()}.part"
            link = subprocess.run([cc, "-shared", "-fopenmp", *objects, "-o", part,
                                   f"-L{libdir}", "-lfastrnn_cpu", f"-Wl,-rpath,{libdir}", "-lm"],
                                  stderr=subprocess.PIPE, text=True)
            if link.returncode:
                failed = [link.stderr]
            else:
                os.replace(part, path)
        if failed:
            raise RuntimeError(f"fastrnn.cell {decl.name}: compiling its kernels with {cc} "
                               f"failed:\n{failed[0][-4000:]}")

