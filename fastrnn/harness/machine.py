"""What a measurement ran on: CPU, vector extensions, threads, versions, GPU, load."""
import os
import platform
import time

import numpy
import torch

from .. import dispatch

VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni",
                "amx_tile", "amx_bf16", "asimd", "sve")


def cpu_model():
    return (dispatch.cpuinfo("model name", "Model", "cpu model") or platform.processor()
            or platform.machine())


def cpu_flags():
    have = set(dispatch.cpuinfo("flags", "Features").split())
    return [v for v in VECTOR_FLAGS if v in have]


def load_average():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def _variant():
    from .. import dispatch
    return f"{dispatch.cpu_variant() or 'one'} (of {', '.join(dispatch.cpu_variants()) or 'one'})"


def describe(threads=None):
    """A dict of facts about this machine and process, for reports and `fastrnn info`."""
    import numba
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "vector extensions": cpu_flags(),
        "torch threads": threads or torch.get_num_threads(),
        # native: up to torch's count, one per 2^16 multiply-adds of a step (2^14 at B = 1);
        # numba: 1
        "fastrnn recurrence threads": f"native {threads or torch.get_num_threads()}, numba 1",
        "native CPU variant": _variant(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numba": numba.__version__,
        "numpy": numpy.__version__,
        "onednn (mkldnn) enabled": torch.backends.mkldnn.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cudnn"] = torch.backends.cudnn.version()
    return info


def sgemm_peak(device="cpu", dtype=torch.float32, n=2048, reps=5):
    """GFLOP/s of the fastest of `reps` n×n×n torch.matmul products on `device` with torch's
    threads: the machine's measured GEMM peak, against which a point's GEMM flops are read."""
    a = torch.rand(n, n, dtype=dtype, device=device)
    b, c = torch.rand_like(a), torch.empty_like(a)
    torch.matmul(a, b, out=c)  # warm-up
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.matmul(a, b, out=c)
        if a.is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def busy(load_before, cores=None):
    """True when other work was running: a 1-minute load average above half the cores."""
    return load_before > 0.5 * (cores or os.cpu_count() or 1)
