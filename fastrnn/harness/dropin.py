"""The drop-in suite (`fastrnn bench --suite dropin`): how torch.nn's recurrent layers are used
beyond the one-layer float32 grid — single steps of cells and of 2-layer modules, cells in a
training step, 2-layer bidirectional stacks, packed ragged batches, LSTM projections, bfloat16
modules and autocast — each point torch.nn's module against fastrnn's with the same state_dict,
interleaved medians. A point torch.nn cannot run on this CPU (baseline.py) times fastrnn alone.
"""
import contextlib
import functools

import torch
from torch.nn.utils.rnn import pack_padded_sequence

from . import baseline, report, timing

BASELINE = "torch.nn"


def _pair(cls_name, *args, dtype=torch.float32, **kw):
    import fastrnn
    torch.manual_seed(0)
    nn = getattr(torch.nn, cls_name)(*args, **kw).to(dtype)
    fast = getattr(fastrnn, cls_name)(*args, **kw).to(dtype)
    fast.load_state_dict(nn.state_dict())
    return nn, fast


def _infer(m, *inputs, autocast=False):
    """m(*inputs) without gradients (under autocast to bfloat16 if asked: entering even a
    disabled autocast costs 2 µs, a tenth of a one-step call, so it is entered only then)."""
    low = contextlib.nullcontext
    if autocast:
        low = functools.partial(torch.autocast, "cpu", dtype=torch.bfloat16)

    def call():
        with torch.no_grad(), low():
            m(*inputs)
    return call


def _train(m, x, autocast=False):
    """One forward + backward of m on x (a tensor that requires grad, or a PackedSequence whose
    data does), under autocast to bfloat16 if asked."""
    leaf = x.data if hasattr(x, "batch_sizes") else x

    def call():
        leaf.grad = None
        m.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = m(x)
            y = out[0] if isinstance(out, tuple) else out
            (y.data if hasattr(y, "batch_sizes") else y).float().sum().backward()
    return call


def points():
    """[(name, pass, make)] where make() returns {torch.nn: call, fastrnn: call}."""
    out = []
    for cell in ("LSTMCell", "GRUCell", "RNNCell"):
        for H in (64, 128, 256):
            def make(cell=cell, H=H):
                nn, fast = _pair(cell, H, H)
                x = torch.randn(1, H)
                return {BASELINE: _infer(nn, x), "fastrnn": _infer(fast, x)}
            out.append((f"{cell} B=1 H={H}", "inference", make))
        def make_train(cell=cell):
            nn, fast = _pair(cell, 128, 128)
            x = torch.randn(32, 128, requires_grad=True)
            return {BASELINE: _train(nn, x), "fastrnn": _train(fast, x)}
        out.append((f"{cell} B=32 H=128", "training step", make_train))
    for mode in ("LSTM", "GRU"):
        for H in (64, 128, 256):
            def make(mode=mode, H=H):
                nn, fast = _pair(mode, H, H, num_layers=2)
                x = torch.randn(1, 1, H)
                return {BASELINE: _infer(nn, x), "fastrnn": _infer(fast, x)}
            out.append((f"2-layer {mode} T=1 B=1 H={H}", "inference", make))
    for mode in ("LSTM", "GRU"):
        for pass_ in ("inference", "training"):
            def make(mode=mode, pass_=pass_):
                nn, fast = _pair(mode, 128, 128, num_layers=2, bidirectional=True)
                x = torch.randn(100, 16, 128, requires_grad=pass_ == "training")
                f = _infer if pass_ == "inference" else _train
                return {BASELINE: f(nn, x), "fastrnn": f(fast, x)}
            out.append((f"2-layer bidirectional {mode} T=100 B=16 H=128", pass_, make))
    for mode in ("LSTM", "GRU"):
        for pass_ in ("inference", "training"):
            def make(mode=mode, pass_=pass_):
                nn, fast = _pair(mode, 256, 256)
                g = torch.Generator().manual_seed(0)
                lengths = torch.randint(20, 201, (32,), generator=g)
                lengths[0] = 200
                x = torch.randn(200, 32, 256, generator=g)
                p = pack_padded_sequence(x, lengths, enforce_sorted=False)
                p.data.requires_grad_(pass_ == "training")  # a leaf: each step backward anew
                f = _infer if pass_ == "inference" else _train
                return {BASELINE: f(nn, p), "fastrnn": f(fast, p)}
            out.append((f"{mode} packed, lengths 20–200, B=32 H=256", pass_, make))
    for T, B, H, P in ((100, 8, 256, 64), (100, 32, 512, 128)):
        for pass_ in ("inference", "training"):
            def make(T=T, B=B, H=H, P=P, pass_=pass_):
                nn, fast = _pair("LSTM", H, H, proj_size=P)
                x = torch.randn(T, B, H, requires_grad=pass_ == "training")
                f = _infer if pass_ == "inference" else _train
                return {BASELINE: f(nn, x), "fastrnn": f(fast, x)}
            out.append((f"LSTM proj_size={P} T={T} B={B} H={H}", pass_, make))
    for mode in ("LSTM", "GRU", "RNN"):
        for pass_ in ("inference", "training"):
            def make_bf16(mode=mode, pass_=pass_):
                nn, fast = _pair(mode, 256, 256, dtype=torch.bfloat16)
                x = torch.randn(100, 16, 256, dtype=torch.bfloat16,
                                requires_grad=pass_ == "training")
                f = _infer if pass_ == "inference" else _train
                return {BASELINE: f(nn, x), "fastrnn": f(fast, x)}
            out.append((f"bfloat16 {mode} T=100 B=16 H=256", pass_, make_bf16))
            def make_autocast(mode=mode, pass_=pass_):
                nn, fast = _pair(mode, 256, 256)
                x = torch.randn(100, 16, 256, requires_grad=pass_ == "training")
                f = _infer if pass_ == "inference" else _train
                return {BASELINE: f(nn, x, autocast=True), "fastrnn": f(fast, x, autocast=True)}
            out.append((f"autocast(bfloat16) {mode} T=100 B=16 H=256", pass_, make_autocast))
    return out


def run(out_dir, rounds=5, quick=False, progress=None):
    """Times every point (quick: the first of each kind only) and writes DROPIN.md and
    results.json into out_dir; returns the DROPIN.md path."""
    rows, seen = [], set()
    for name, pass_, make in points():
        kind = name.split(" ")[0]
        if quick and kind in seen:
            continue
        seen.add(kind)
        calls = make()
        if not baseline.runs(calls[BASELINE]):  # (oneDNN refused it: fastrnn is timed alone)
            del calls[BASELINE]
        times = timing.measure(calls, rounds=rounds, target_s=0.005 if quick else 0.02)
        t_nn = times.get(BASELINE)
        rows.append(dict(point=name, pass_=pass_, torch_s=t_nn, fastrnn_s=times["fastrnn"],
                         ratio=t_nn / times["fastrnn"] if t_nn else None))
        if progress:
            progress(rows[-1])
    table = ["| point | pass | torch.nn ms | fastrnn ms | ratio |", "|---|---|---|---|---|"]
    for r in rows:
        t_nn = f"{r['torch_s'] * 1e3:.3g}" if r["torch_s"] else baseline.CANNOT_RUN
        ratio = f"**{r['ratio']:.2f}**" if r["ratio"] else "—"
        table.append(f"| {r['point']} | {r['pass_']} | {t_nn} | {r['fastrnn_s'] * 1e3:.3g} | "
                     f"{ratio} |")
    path = report.write_suite(out_dir, "DROPIN.md", rows, "fastrnn drop-in suite",
                              "ratio = torch.nn time / fastrnn time (above 1 fastrnn is faster), "
                              "the same threads for both; medians of interleaved rounds; same "
                              "state_dict.", table)
    return path
