"""How cost grows with sequence length: one configuration swept over T, for every backend
beside torch.nn: forward and forward+backward time, µs per step, peak memory, and where a kernel
backend's time goes (input-projection GEMM, recurrent loop, backward loop, weight-gradient GEMMs)."""
import json
import os

import torch
import torch.nn.functional as F

from .. import _grads, autograd
from . import memory, timing
from .points import BASELINE, FLOOR, Inputs, Point, candidates

PARTS = ("input projection", "recurrent loop", "backward loop", "weight-gradient GEMMs")


def breakdown_calls(inp, backend):
    """The four parts of one training step on a kernel backend, each as a callable."""
    p, s = inp.p, inp.state
    x, h0, c0 = inp.x.detach(), inp.h0[0], inp.c0[0]
    w_ih, w_hh = s["weight_ih_l0"], s["weight_hh_l0"]
    b_ih, b_hh = s["bias_ih_l0"], s["bias_hh_l0"]
    bias = b_ih if p.cell == "gru" else b_ih + b_hh
    n = torch.full((p.B,), p.T, dtype=torch.int64, device=x.device)
    gx = F.linear(x, w_ih, bias)
    gy, gh, gc = inp.gy, inp.gh[0], inp.gc[0]
    if p.cell == "lstm":
        def fwd():
            return autograd.lstm_forward(gx, h0, c0, w_hh, n, True, backend)
        _, _, _, gates, cs, hs = fwd()

        def bwd():
            return autograd.lstm_backward(gy, gh, gc, gates, cs, w_hh, n, backend)
        dGx = dA = bwd()[0]
    elif p.cell == "gru":
        def fwd():
            return autograd.gru_forward(gx, h0, w_hh, b_hh, n, True, backend)
        _, _, gates, a_n, hs = fwd()

        def bwd():
            return autograd.gru_backward(gy, gh, gates, a_n, hs, w_hh, n, backend)
        dGx, dA_n, _ = bwd()
        hh_grads = lambda: autograd._gru_hh_grads(dGx, dA_n, hs)  # noqa: E731
    else:
        relu = p.cell == "rnn_relu"

        def fwd():
            return autograd.rnn_forward(gx, h0, w_hh, n, relu, True, backend)
        hs = fwd()[2]

        def bwd():
            return autograd.rnn_backward(gy, gh, hs, w_hh, n, relu, backend)
        dGx = dA = bwd()[0]
    if p.cell != "gru":
        hh_grads = lambda: _grads.dW_hh(dA, hs)  # noqa: E731
    T, B, G = dGx.shape
    x2, dGx2 = x.reshape(T * B, -1), dGx.reshape(T * B, G)

    def wgrad():
        dGx2 @ w_ih, dGx2.t() @ x2, hh_grads()

    return dict(zip(PARTS, (lambda: F.linear(x, w_ih, bias), fwd, bwd, wgrad)))


def sweep(cell, B, I, H, seq_lens, backends, device="cpu", dtype="float32", rounds=3,
          with_memory=True, progress=None):
    """One row per T: times per candidate and pass, breakdowns and peak memory."""
    rows = []
    for T in seq_lens:
        row = {"T": T, "forward": {}, "train": {}, "breakdown": {}, "peak_mib": {}}
        for pass_ in ("forward", "train"):
            p = Point(cell, B, T, I, H, 1, pass_, dtype, device)
            row[pass_] = timing.measure(candidates(p, backends), rounds=rounds)
        p = Point(cell, B, T, I, H, 1, "train", dtype, device)
        for b in backends:
            if b != "eager":
                row["breakdown"][b] = timing.measure(breakdown_calls(Inputs(p), b), rounds=rounds)
        if with_memory and device == "cpu":
            for name in [BASELINE, *backends]:
                row["peak_mib"][name] = memory.peak_mb(p, name)
        rows.append(row)
        if progress:
            progress(row)
    return rows


def _ms(s):
    return f"{s * 1e3:.3g}"


def write(out_dir, config, rows, backends, machine):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"config": config, "machine": machine, "rows": rows}, f, indent=1)
    names = [BASELINE, *backends, FLOOR]
    md = [f"# fastrnn profile: {config['cell']}, B={config['B']}, I={config['I']}, "
          f"H={config['H']}, {config['dtype']} on {config['device']}", "",
          f"Measured on {machine['cpu']} ({machine['cores']} cores), torch "
          f"{machine['torch']} with {machine['torch threads']} threads for every candidate.", "",
          "Times are medians of interleaved repetitions; `train` is forward + backward; peak "
          "memory is the peak resident memory of a fresh process running one training step, "
          "minus its size before the step.", "",
          "| T | candidate | forward ms | train ms | train µs/step | peak MiB | "
          + " | ".join(f"{p} ms" for p in PARTS) + " |",
          "|" + "---|" * (6 + len(PARTS))]
    for r in rows:
        for name in names:
            bd = r["breakdown"].get(name)
            md.append(f"| {r['T']} | {name} | {_ms(r['forward'][name])} | {_ms(r['train'][name])} "
                      f"| {r['train'][name] / r['T'] * 1e6:.1f} | "
                      + (f"{r['peak_mib'][name]:.1f}" if name in r["peak_mib"] else "–") + " | "
                      + " | ".join(_ms(bd[p]) if bd else "–" for p in PARTS) + " |")
    md += ["", "![profile](profile.png)"]
    path = os.path.join(out_dir, "PROFILE.md")
    with open(path, "w") as f:
        f.write("\n".join(md) + "\n")
    _plot(os.path.join(out_dir, "profile.png"), config, rows, backends)
    return path


def _plot(path, config, rows, backends):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    Ts = [r["T"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
    for i, name in enumerate([BASELINE, *backends, FLOOR]):
        color = "k" if name == FLOOR else f"C{i}"
        for pass_, ls in (("train", "o-"), ("forward", "s:")):
            axes[0].plot(Ts, [r[pass_][name] / r["T"] * 1e6 for r in rows], ls, color=color,
                         markersize=4, label=f"{name} {pass_}")
    axes[0].set(xscale="log", yscale="log", xlabel="sequence length T", ylabel="µs per step",
                title="time per step (solid: train, dotted: forward)")
    axes[0].legend(fontsize=7)
    for name in [BASELINE, *backends]:
        if rows and name in rows[0]["peak_mib"]:
            axes[1].plot(Ts, [r["peak_mib"][name] for r in rows], "o-", label=name)
    axes[1].set(xscale="log", xlabel="sequence length T", ylabel="MiB",
                title="peak memory of a training step")
    for ax in axes[:2]:
        ax.set_xticks(Ts, [str(t) for t in Ts])
        ax.minorticks_off()
    axes[1].legend(fontsize=8)
    kernel = [b for b in backends if rows and b in rows[0]["breakdown"]]
    width = 0.8 / max(len(kernel), 1)
    for k, b in enumerate(kernel):
        bottom = [0.0] * len(rows)
        for j, part in enumerate(PARTS):
            vals = [r["breakdown"][b][part] / r["T"] * 1e6 for r in rows]
            axes[2].bar([i + k * width for i in range(len(rows))], vals, width, bottom=bottom,
                        color=f"C{j}", label=part if k == 0 else None, edgecolor="white")
            bottom = [a + v for a, v in zip(bottom, vals)]
    axes[2].set_xticks([i + width * (len(kernel) - 1) / 2 for i in range(len(rows))],
                       [str(t) for t in Ts])
    axes[2].set(xlabel="sequence length T (bars: " + ", ".join(kernel) + ")",
                ylabel="µs per step", title="where a training step's time goes")
    axes[2].legend(fontsize=8)
    fig.suptitle(f"{config['cell']}  B={config['B']}  I={config['I']}  H={config['H']}")
    fig.savefig(path, dpi=110)
    plt.close(fig)
