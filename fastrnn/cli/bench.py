"""`fastrnn bench`: time fastrnn's backends against torch.nn over a grid of shapes and write a
report folder (REPORT.md, results.json, PNG plots).

The quick default grid takes about two minutes on 2 cores; --full adds every cell, larger shapes
and the community's reference points: T=100, B=64, I=H=512 (PyTorch's benchmarks/fastrnns);
a 4-layer LSTM with H=512, B=64, T=100 (Appleyard, Kočiský & Blunsom 2016, arXiv:1604.01946);
B=16, T=1024, H=768 (FlashRNN's README chart); and haste's T=50 sweep (B ∈ {1, 16, 64},
H = I ∈ {128, 256, 512, 1024})."""
import itertools
import sys

import torch

from .. import dispatch
from ..harness import machine, memory, report, timing
from ..harness.baseline import CANNOT_RUN
from ..harness.points import BASELINE, FLOOR, PASSES, Point, candidates
from . import _args

QUICK = dict(cells=["lstm", "gru", "rnn_tanh"], batch=[1, 16, 64], hidden=[64, 256], seq_len=[50])
FULL = dict(cells=["lstm", "gru", "rnn_tanh", "rnn_relu"], batch=[1, 16, 64],
            hidden=[128, 256, 512, 1024], seq_len=[50])
REFERENCE_POINTS = [("lstm", 64, 100, 512, 512, 1), ("gru", 64, 100, 512, 512, 1),
                    ("lstm", 64, 100, 512, 512, 4), ("lstm", 16, 1024, 768, 768, 1)]


def add_parser(sub, name):
    p = sub.add_parser(name, help="time fastrnn against torch.nn and write a report",
                       description=__doc__.split(":", 1)[1].strip())
    p.add_argument("--full", action="store_true", help="the whole grid plus reference points")
    p.add_argument("--suite", choices=["grid", "dropin", "rules"], default="grid",
                   help="grid: one layer over shapes (default); dropin: cells, 2-layer steps, "
                        "packed batches, projections, bfloat16 and autocast (fastrnn/harness/dropin.py); "
                        "rules: each tuned rule A/B'd against its alternatives (fastrnn info lists them)")
    p.add_argument("--quick", action="store_true",
                   help="with --suite dropin or rules: one small point of each kind")
    p.add_argument("--rules", type=_args.name_list, help="with --suite rules: the rules to A/B")
    p.add_argument("--cells", type=_args.cell_list,
                   help="e.g. lstm,gru,rnn_tanh,rnn_relu; ln_lstm,ln_gru (LayerNorm cells, against "
                        "their equations as a per-step torch loop)")
    p.add_argument("--batch", type=_args.int_list, help="batch sizes B, e.g. 1,32")
    p.add_argument("--hidden", type=_args.int_list, help="hidden sizes H, e.g. 64,256")
    p.add_argument("--input", type=_args.int_list, help="input sizes I (default: I = H)")
    p.add_argument("--seq-len", type=_args.int_list, help="sequence lengths T, e.g. 50")
    p.add_argument("--layers", type=_args.positive_int, default=1, help="stacked layers L")
    p.add_argument("--passes", type=_args.name_list, default=list(PASSES),
                   help="forward (inference) and/or train (forward+backward)")
    p.add_argument("--backends", type=_args.name_list,
                   help="fastrnn backends to time (default: auto and every kernel backend here)")
    p.add_argument("--baselines", type=_args.name_list, default=[],
                   help="what fastrnn is timed against: torch (torch.nn, always timed) and the "
                        "inference engines, at forward points: onnxruntime, openvino (torch.nn's "
                        "module exported to ONNX), e.g. torch,onnxruntime,openvino")
    p.add_argument("--threads", type=_args.positive_int, help="torch threads for every candidate")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--rounds", type=_args.positive_int, default=5, help="interleaved rounds")
    p.add_argument("--memory", action="store_true",
                   help="also measure each training point's peak memory (a fresh process each)")
    p.add_argument("--cell-file", metavar="FILE.py:NAME",
                   help="time the cell NAME declared with fastrnn.cell in FILE.py against the "
                        "same step as a per-step torch loop and that loop torch.compile'd "
                        "(default points: T=100, I=H in 128,256, B in 1,16,64)")
    p.add_argument("--out", type=_args.writable_dir, default="bench-report",
                   help="report folder (default: bench-report)")


def _backends(args):
    """'auto' (what a user gets by default, timed as such) and each kernel backend usable here."""
    usable = [b for b in dispatch.backends()
              if b != "eager" and (b == "cuda") == args.device.startswith("cuda")]
    if args.backends is None:
        return ["auto", *usable]
    for b in args.backends:
        if b != "auto" and b not in dispatch.NAMES:
            raise ValueError(f"unknown backend {b!r}; choose from auto, {', '.join(dispatch.NAMES)}")
        if b != "auto" and dispatch.why_not(b) is not None:
            raise ValueError(f"backend {b!r} is not usable here: {dispatch.why_not(b)}")
    return args.backends


def grid(args):
    base = FULL if args.full else QUICK
    cells = args.cells or base["cells"]
    for pass_ in args.passes:
        if pass_ not in PASSES:
            raise ValueError(f"unknown pass {pass_!r}; choose from {', '.join(PASSES)}")
    points = []
    for cell, B, H, T, pass_ in itertools.product(cells, args.batch or base["batch"],
                                                  args.hidden or base["hidden"],
                                                  args.seq_len or base["seq_len"], args.passes):
        for I in args.input or [H]:
            points.append(Point(cell, B, T, I, H, args.layers, pass_, args.dtype, args.device))
    if args.full:
        points += [Point(c, B, T, I, H, L, pass_, args.dtype, args.device)
                   for c, B, T, I, H, L in REFERENCE_POINTS for pass_ in args.passes]
    return points


def run_dropin(args):
    from ..harness import dropin

    def progress(r):
        fast = f"fastrnn {r['fastrnn_s'] * 1e3:8.3f} ms"
        print(f"{r['point']:48s} {r['pass_']:14s} "
              + (f"torch.nn {r['torch_s'] * 1e3:8.3f} ms  {fast} ({r['ratio']:.2f}x)"
                 if r["torch_s"] else f"{fast} ({CANNOT_RUN})"), file=sys.stderr)

    path = dropin.run(args.out, args.rounds, args.quick, progress)
    print(open(path).read())
    print(f"report written to {path}")


def run_rules(args):
    from ..harness import rules_ab

    def progress(r):
        print(f"{r['rule']:22s} {r['point']:40s} "
              + "  ".join(f"{v}: {ms:8.3f} ms" for v, ms in r["ms"].items()), file=sys.stderr)

    path = rules_ab.run(args.out, args.rules, args.rounds, args.quick, progress)
    print(open(path).read())
    print(f"report written to {path}")


def run_cell_file(args):
    from ..harness import user_cell
    cell = user_cell.load_cell(args.cell_file)

    def progress(r):
        ms = r["ms"]
        print(f"{cell.name} {r['pass_']:8s} T={r['T']} B={r['B']} H={r['H']}  fastrnn "
              f"{ms['fastrnn']:8.3f} ms  torch loop {ms['torch loop']:8.3f} ms "
              f"({ms['torch loop'] / ms['fastrnn']:.2f}x)  compiled loop "
              f"{ms['compiled loop']:8.3f} ms ({ms['compiled loop'] / ms['fastrnn']:.2f}x, "
              f"compiled in {r['compile_s']:.1f} s)", file=sys.stderr)

    path = user_cell.run(cell, args.out, args.batch or [1, 16, 64], args.hidden or [128, 256],
                         args.seq_len or [100], args.rounds, args.dtype, progress)
    print(open(path).read())
    print(f"report written to {path}")


def run(args):
    from tqdm import tqdm
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cell_file:
        return run_cell_file(args)
    if args.suite == "dropin":
        return run_dropin(args)
    if args.suite == "rules":
        return run_rules(args)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is visible to torch")
    backends = _backends(args)
    from ..harness import engines
    args.baselines = [e for e in args.baselines if e not in ("torch", BASELINE)]  # (always timed)
    for e in args.baselines:
        if engines.why_not(e):
            raise ValueError(f"--baselines: {engines.why_not(e)}")
    points = grid(args)
    load_before = machine.load_average()
    info = machine.describe()
    print(f"fastrnn bench: {len(points)} points, backends {', '.join(backends)} vs torch.nn, "
          f"{torch.get_num_threads()} torch threads, {info['cpu']}", file=sys.stderr)
    dtype = getattr(torch, args.dtype)
    peak = machine.sgemm_peak(args.device, dtype)
    rows = []
    for p in tqdm(points, desc="bench", unit="point", file=sys.stderr, disable=None):
        calls = candidates(p, backends, engines=args.baselines)
        times = timing.measure(calls, rounds=args.rounds)
        rows.append(report.row(p, times, {n: f.ran() for n, f in calls.items()
                                          if hasattr(f, "ran")}))
        if args.memory and p.pass_ == "train" and p.device == "cpu":
            rows[-1]["peak_mib"] = {n: memory.peak_mb(p, n) for n in [BASELINE, *backends]}
        tqdm.write(f"{p.label():48s} {calls[BASELINE].ran()} {times[BASELINE] * 1e3:8.3f} ms  "
                   + "  ".join(f"{b} {times[b] * 1e3:8.3f} ms ({times[BASELINE] / times[b]:.2f}x)"
                               for b in backends)
                   + "".join(f"  {e} {times[e] * 1e3:.3f} ms" for e in args.baselines if e in times)
                   + f"  floor {times[FLOOR] * 1e3:.3f} ms", file=sys.stderr)
    load_after = machine.load_average()
    peak = max(peak, machine.sgemm_peak(args.device, dtype))  # (the faster of before and after)
    busy = machine.busy(load_before)
    if busy:
        print(f"warning: load average was {load_before:.2f} before the run: other work is "
              "running, the ratios are unreliable", file=sys.stderr)
    path = report.write(args.out, rows, backends, info, load_before, load_after, busy,
                        engines=args.baselines, peak=peak)
    print(f"report written to {path}")
