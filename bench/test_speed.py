"""pytest-benchmark suite: forward and forward+backward per cell × backend × shape, with torch.nn
(oneDNN/ATen on CPU, cuDNN on GPU) as the baseline; shape and GFLOP/s in extra_info.

    pytest bench                                  # time everything
    pytest bench --benchmark-disable              # smoke: run each once (CI)
    pytest bench -k "lstm and train" --benchmark-compare

Not collected by a plain `pytest` (testpaths = tests). For reports with ratios against torch.nn
and the GEMM floor measured in the same run, use `fastrnn bench`.
"""
import pytest
import torch

import fastrnn
from fastrnn.harness.points import BASELINE, Inputs, Point, module_call

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SHAPES = [(1, 50, 64), (16, 50, 128), (64, 50, 256)]  # B, T, H (= I)


RUNS = [(device, c) for device in DEVICES
        for c in [BASELINE] + [b for b in fastrnn.backends()
                               if b != "eager" and (b == "cuda") == (device == "cuda")]]


@pytest.mark.parametrize("pass_", ["forward", "train"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("B,T,H", SHAPES, ids=[f"B{b}-T{t}-H{h}" for b, t, h in SHAPES])
@pytest.mark.parametrize("device,candidate", RUNS, ids=[f"{d}-{c}" for d, c in RUNS])
def test_speed(benchmark, device, candidate, B, T, H, cell, pass_):
    p = Point(cell, B, T, H, H, 1, pass_, "float32", device)
    call = module_call(Inputs(p), None if candidate == BASELINE else candidate)
    benchmark.group = p.label()
    benchmark.extra_info.update(p.asdict(), candidate=candidate, gemm_flops=p.flops(),
                                threads=torch.get_num_threads())
    benchmark(call)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and stats.stats.median:
        benchmark.extra_info["gflops"] = p.flops() / stats.stats.median / 1e9
