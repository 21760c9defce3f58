"""Microseconds per time step on the GPU, fastrnn's `cuda` backend against torch.nn on cuDNN (TF32
off), timed with CUDA events: forward (grad on, as in training), no-grad forward and training
(forward + backward), for LSTM, GRU and RNN at the shapes below. Writes gpu-speed.json and
gpu-speed.md under --out and prints the table. bench/gpu_check.sh runs it; `--device cpu`
(perf_counter instead of events, `native` instead of `cuda`) lets the script be tried anywhere.

    python bench/gpu_speed.py [--out DIR] [--device cuda|cpu] [--quick] [--rounds N]
"""
import argparse
import json
import pathlib
import statistics
import sys
import time

import torch

from fastrnn.harness.points import Inputs, Point

SHAPES = [dict(B=16, H=256), dict(B=1, H=1024), dict(B=64, H=512)]  # T=256, I=H
CELLS = ("lstm", "gru", "rnn_tanh")
PASSES = ("forward", "no-grad", "training")


def call(inp, m, pass_):
    """One call of module m on the point's inputs, launched without waiting for the GPU."""
    hx = (inp.h0, inp.c0) if inp.p.cell == "lstm" else inp.h0
    if pass_ == "no-grad":
        with torch.no_grad():
            return m(inp.x, hx)
    y, h = m(inp.x, hx)
    if pass_ == "training":
        outs = [y, *h] if isinstance(h, tuple) else [y, h]
        torch.autograd.backward(outs, [inp.gy, inp.gh, inp.gc][:len(outs)])
        m.zero_grad(set_to_none=True)
        inp.x.grad = None


def seconds(fn, device, reps):
    """Seconds per call of fn over `reps` back-to-back calls: CUDA events on a GPU."""
    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / reps
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def cudnn_algorithm(fn):
    """Which cuDNN RNN algorithm torch.nn's call ran, from its kernels' names: 'persistent'
    (W_hh held on chip across steps) when a kernel's name says so, else 'standard' (a GEMM per
    step); 'unknown' where the profiler sees no GPU kernels."""
    try:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            fn()
            torch.cuda.synchronize()
        names = [e.key.lower() for e in prof.key_averages()]
    except Exception:  # no CUPTI here: say so rather than guess
        return "unknown"
    if not names:
        return "unknown"
    return "persistent" if any("persist" in n for n in names) else "standard"


def measure(cell, B, H, T, pass_, device, backend, rounds):
    p = Point(cell, B=B, T=T, I=H, H=H, pass_="forward" if pass_ == "no-grad" else "train",
              device=device)
    inp = Inputs(p)
    if pass_ != "training":
        inp.x.requires_grad_(False)
    mods = {"torch.nn": inp.module(), "fastrnn": inp.module(backend)}
    if pass_ == "forward":  # grad on, no backward: the forward of a training step
        for m in mods.values():
            m.requires_grad_(True)
    fns = {k: (lambda m=m: call(inp, m, pass_)) for k, m in mods.items()}
    for fn in fns.values():  # warm-up: allocator, cuDNN plans, packing
        fn(), fn()
    once = seconds(fns["fastrnn"], device, 1)
    reps = max(1, min(50, int(0.05 / max(once, 1e-6))))
    samples = {k: [] for k in fns}
    for _ in range(rounds):  # interleaved: drift hits both alike
        for k, fn in fns.items():
            samples[k].append(seconds(fn, device, reps))
    us = {k: statistics.median(s) / T * 1e6 for k, s in samples.items()}
    algo = cudnn_algorithm(fns["torch.nn"]) if device == "cuda" else "n/a (CPU)"
    assert mods["fastrnn"].last_backend == backend, mods["fastrnn"].last_backend
    return dict(cell=cell, B=B, H=H, T=T, pass_=pass_, torch_us=us["torch.nn"],
                fastrnn_us=us["fastrnn"], speedup=us["torch.nn"] / us["fastrnn"],
                cudnn_algorithm=algo)


def markdown(rows, title):
    lines = [f"## {title}", "",
             "µs per time step, median of interleaved rounds; speed-up = torch.nn / fastrnn.", "",
             "| cell | B | H | T | pass | torch.nn µs/step | fastrnn µs/step | speed-up | "
             "cuDNN algorithm |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['cell']} | {r['B']} | {r['H']} | {r['T']} | {r['pass_']} | "
                     f"{r['torch_us']:.1f} | {r['fastrnn_us']:.1f} | {r['speedup']:.2f}× | "
                     f"{r['cudnn_algorithm']} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="gpu-report")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="tiny shapes, to try the script")
    a = ap.parse_args(argv)
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_speed: --device cuda but torch sees no CUDA device (try --device cpu)")
    backend = "cuda" if a.device == "cuda" else "native"
    shapes, T = ([dict(B=2, H=16)], 8) if a.quick else (SHAPES, 256)
    if a.device == "cuda":  # plain float32 on both sides: the fastrnn kernels do not use TF32
        torch.backends.cudnn.rnn.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        title = f"{torch.cuda.get_device_name(0)}, cuDNN {torch.backends.cudnn.version()}"
    else:
        from fastrnn.harness.machine import cpu_model
        title = f"{cpu_model()}, {torch.get_num_threads()} threads (CPU trial of the GPU table)"
    rows = []
    for cell in CELLS:
        for s in shapes:
            for pass_ in PASSES:
                rows.append(measure(cell, s["B"], s["H"], T, pass_, a.device, backend, a.rounds))
                r = rows[-1]
                print(f"{cell} B={r['B']} H={r['H']} {pass_}: torch.nn {r['torch_us']:.1f} "
                      f"µs/step, fastrnn {r['fastrnn_us']:.1f} ({r['speedup']:.2f}×)", flush=True)
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu-speed.json").write_text(json.dumps(dict(machine=title, rows=rows), indent=1))
    (out / "gpu-speed.md").write_text(markdown(rows, title))
    print(markdown(rows, title))


if __name__ == "__main__":
    main()
