"""The report folder of `fastrnn bench`: REPORT.md, results.json and PNG plots."""
import json
import math
import os
import statistics
import time

from .points import BASELINE, FLOOR, PASSES

READING = """\
How to read it: **speed-up** = torch.nn time / fastrnn time, so above 1 fastrnn is faster (at
the LayerNorm cells, which torch.nn does not have, the baseline is their equations as a per-step
torch loop, as users write them: **ran** says so);
**×floor** = time / GEMM-floor time, where the floor is exactly the matmuls the algorithm must do
(the input projection over all T·B rows plus the T per-step recurrent products; for training also
the backward ones and the weight gradients), timed alone with torch.matmul in the same run: 1.0
would mean the recurrence's pointwise work and all overhead cost nothing. **GFLOP/s** counts those
GEMM flops only, and **% peak** reads them against the machine's sgemm peak (the fastest of
five 2048×2048×2048 torch.matmul products, before and after the run, same threads); **ran**
names the backend and CPU variant that ran. Times are medians of interleaved repetitions (every
candidate once per round). The `forward` pass runs under no_grad (inference); `train` is one
training step: forward, backward, and an SGD step updating the weights in place.
**peak MiB** (with --memory, training points on the CPU) is the peak resident memory of a fresh
process running that point once after a warm-up run, minus its resident size just before."""


def row(point, times, ran=None):
    """One result: the point, its times, the derived ratios, and what ran ({candidate: e.g.
    'native avx512'})."""
    t_nn, t_floor = times[BASELINE], times[FLOOR]
    flops = point.flops()
    return {"point": point.asdict(), "flops": flops, "seconds": times, "ran": ran or {},
            "speedup": {k: t_nn / v for k, v in times.items() if k not in (BASELINE, FLOOR)},
            "x_floor": {k: v / t_floor for k, v in times.items() if k != FLOOR},
            "gflops": {k: flops / v / 1e9 for k, v in times.items()}}


def write_suite(out_dir, filename, rows, title, reading, table):
    """A suite's report folder (the drop-in suite, the rules A/B): results.json (the machine and
    `rows`) and `filename` — `title`, when and on what it was measured, `reading` (how to read the
    table), then the `table` lines; returns the report's path."""
    from . import machine as machine_
    info = machine_.describe()
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"machine": info, "rows": rows}, f, indent=1)
    md = [f"# {title}", "",
          f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} on **{info['cpu']}** ({info['cores']} "
          f"cores), torch {info['torch']}, {info['torch threads']} threads, CPU variant "
          f"{info['native CPU variant']}. {reading}", "", *table]
    path = os.path.join(out_dir, filename)
    with open(path, "w") as f:
        f.write("\n".join(md) + "\n")
    return path


def _ms(s):
    return f"{s * 1e3:.3g}"


def _table(rows, backends, engines=(), peak=None):
    memory = [n for n in [BASELINE, *backends] if all(n in r.get("peak_mib", {}) for r in rows)]
    engines = [e for e in engines if all(e in r["seconds"] for r in rows)]
    head = ["cell", "T", "B", "I", "H", "torch.nn ms", "floor ms", "torch.nn ×floor"]
    pct = (lambda r, n: f"{100 * r['gflops'][n] / peak:.0f}") if peak else None
    head += ["torch.nn % peak"] if pct else []
    for b in backends:
        head += [f"{b} ms", f"{b} speed-up", f"{b} ×floor", f"{b} GFLOP/s"]
        head += [f"{b} % peak"] if pct else []
        head += ["auto ran"] if b == "auto" and all(b in r.get("ran", {}) for r in rows) else []
    for e in engines:  # the first backend against the engine: above 1 fastrnn is faster
        head += [f"{e} ms", f"{backends[0]} vs {e}"] + ([f"{e} % peak"] if pct else [])
    head += [f"{n} peak MiB" for n in memory]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        p, s = r["point"], r["seconds"]
        cells = [p["cell"], p["T"], p["B"], p["I"], p["H"], _ms(s[BASELINE]), _ms(s[FLOOR]),
                 f"{r['x_floor'][BASELINE]:.2f}"] + ([pct(r, BASELINE)] if pct else [])
        for b in backends:
            cells += [_ms(s[b]), f"**{r['speedup'][b]:.2f}**", f"{r['x_floor'][b]:.2f}",
                      f"{r['gflops'][b]:.1f}"]
            cells += [pct(r, b)] if pct else []
            cells += [r["ran"][b]] if b == "auto" and "auto ran" in head else []
        for e in engines:
            cells += [_ms(s[e]), f"**{s[e] / s[backends[0]]:.2f}**"] + ([pct(r, e)] if pct else [])
        cells += [f"{r['peak_mib'][n]:.1f}" for n in memory]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def _geomean(xs):
    return math.exp(statistics.fmean(math.log(x) for x in xs)) if xs else float("nan")


def summary(rows, backend):
    """A table of `backend`'s speed-up over torch.nn by cell and pass: its range at each batch
    size (over the other sizes) and its geometric mean over all — the README's table per CPU."""
    Bs = sorted({r["point"]["B"] for r in rows})
    lines = ["| cell | pass | " + " | ".join(f"B = {B}" for B in Bs) + " | geometric mean |",
             "|---|---|" + "---|" * (len(Bs) + 1)]
    for cell in sorted({r["point"]["cell"] for r in rows}, key=lambda c: CELL_ORDER.get(c, 9)):
        for pass_ in PASSES:
            sel = [r for r in rows if r["point"]["cell"] == cell and r["point"]["pass_"] == pass_]
            if not sel:
                continue
            by_B = [[r["speedup"][backend] for r in sel if r["point"]["B"] == B] for B in Bs]
            ranges = [f"{min(v):.2f}–{max(v):.2f}" if v else "" for v in by_B]
            name = "inference" if pass_ == "forward" else "training"
            lines.append(f"| {cell} | {name} | " + " | ".join(ranges) +
                         f" | **{_geomean([r['speedup'][backend] for r in sel]):.2f}** |")
    return "\n".join(lines)


CELL_ORDER = {"lstm": 0, "gru": 1, "rnn_tanh": 2, "rnn_relu": 3}


def write(out_dir, rows, backends, machine, load_before, load_after, busy, engines=(),
          peak=None):
    """Write REPORT.md, results.json and the plots into out_dir; return the REPORT.md path.
    peak: the machine's sgemm GFLOP/s (machine.sgemm_peak), or None."""
    os.makedirs(out_dir, exist_ok=True)
    meta = {"machine": machine, "load average before": load_before,
            "load average after": load_after, "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "sgemm peak GFLOP/s": peak}
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": rows}, f, indent=1)
    plots = _plots(out_dir, rows, backends)
    md = ["# fastrnn benchmark report", ""]
    md += [f"Measured {meta['date']} on **{machine['cpu']}** ({machine['cores']} cores; "
           f"vector extensions: {', '.join(machine['vector extensions']) or 'none found'}), "
           f"torch {machine['torch']} with **{machine['torch threads']} threads for every "
           f"candidate** (native's recurrence uses them at ≥ 2^16 multiply-adds a thread a step, "
           f"2^14 at B = 1; numba's runs on 1), numba {machine['numba']}; native CPU variant "
           f"{machine['native CPU variant']}"
           + (f"; sgemm peak **{peak:.0f} GFLOP/s**." if peak else ".")
           + (f" GPU: {machine['gpu']}, cuDNN {machine['cudnn']}." if "gpu" in machine else ""), ""]
    md += [f"Load average (1 min): {load_before:.2f} before, {load_after:.2f} after."]
    if busy:
        md += ["", "> **Warning: other work was running on this machine; the ratios below are "
               "unreliable.**"]
    md += ["", READING, ""]
    md += [f"Speed-up of {backends[0]} over torch.nn by cell, pass and batch (range over the other "
           "sizes):", "", summary(rows, backends[0]), ""]
    for pass_ in PASSES:
        sel = [r for r in rows if r["point"]["pass_"] == pass_]
        if not sel:
            continue
        md += [f"## {pass_}" + (" (inference)" if pass_ == "forward" else " (forward + backward)"),
               ""]
        for b in backends:
            md.append(f"- {b}: geometric-mean speed-up over torch.nn "
                      f"**{_geomean([r['speedup'][b] for r in sel]):.2f}×** over {len(sel)} points")
        timed = [e for e in engines if sel and all(e in r["seconds"] for r in sel)]
        for e in timed:
            ratios = [r["seconds"][e] / r["seconds"][backends[0]] for r in sel]
            md.append(f"- {backends[0]} against {e}: geometric mean **{_geomean(ratios):.2f}×**, "
                      f"range {min(ratios):.2f}–{max(ratios):.2f}× (above 1 fastrnn is faster)")
        if timed:
            best = [min(r["seconds"][n] for n in [BASELINE, *timed]) / r["seconds"][backends[0]]
                    for r in sel]
            md.append(f"- {backends[0]} against the best of torch.nn and {', '.join(timed)}: "
                      f"geometric mean **{_geomean(best):.2f}×**, wins "
                      f"{sum(x > 1 for x in best)} of {len(best)} points")
        md += ["", _table(sel, backends, engines, peak), ""]
    md += [f"![{os.path.splitext(p)[0]}]({p})" for p in plots]
    path = os.path.join(out_dir, "REPORT.md")
    with open(path, "w") as f:
        f.write("\n".join(md) + "\n")
    return path


def _plots(out_dir, rows, backends):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm
    written = []
    for cell in sorted({r["point"]["cell"] for r in rows}):
        sel = [r for r in rows if r["point"]["cell"] == cell]
        passes = [p for p in PASSES if any(r["point"]["pass_"] == p for r in sel)]
        Bs = sorted({r["point"]["B"] for r in sel})
        Hs = sorted({r["point"]["H"] for r in sel})
        fig, axes = plt.subplots(len(passes), len(backends), squeeze=False, layout="constrained",
                                 figsize=(3.2 * len(backends) + 1.2, 2.6 * len(passes) + 0.8))
        for i, pass_ in enumerate(passes):
            for j, b in enumerate(backends):
                grid = [[_geomean([r["speedup"][b] for r in sel if r["point"]["pass_"] == pass_
                                   and r["point"]["B"] == B and r["point"]["H"] == H])
                         for H in Hs] for B in Bs]
                ax = axes[i][j]
                im = ax.imshow(grid, cmap="RdYlGn", norm=LogNorm(vmin=0.25, vmax=4), aspect="auto")
                for y, line in enumerate(grid):
                    for x, v in enumerate(line):
                        if not math.isnan(v):
                            ax.text(x, y, f"{v:.2f}", ha="center", va="center", fontsize=8)
                ax.set_xticks(range(len(Hs)), Hs)
                ax.set_yticks(range(len(Bs)), Bs)
                ax.set_xlabel("hidden H")
                ax.set_ylabel("batch B")
                ax.set_title(f"{b}, {pass_}", fontsize=9)
        bar = fig.colorbar(im, ax=axes, label="speed-up over torch.nn")
        bar.set_ticks([0.25, 0.5, 1, 2, 4], labels=["0.25", "0.5", "1", "2", "4"])
        bar.minorticks_off()
        fig.suptitle(f"{cell}: speed-up over torch.nn (green: fastrnn faster)")
        name = f"speedup_{cell}.png"
        fig.savefig(os.path.join(out_dir, name), dpi=110)
        plt.close(fig)
        written.append(name)
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(rows) + 2), 4.5))
    labels = [f"{r['point']['cell']} {r['point']['pass_'][0]} B{r['point']['B']} "
              f"H{r['point']['H']} T{r['point']['T']}" for r in rows]
    for name in [BASELINE, *backends, FLOOR]:
        ax.plot(range(len(rows)), [r["seconds"][name] / r["point"]["T"] * 1e6 for r in rows],
                "o-" if name != FLOOR else "k--", label=name, markersize=4)
    ax.set_yscale("log")
    ax.set_xticks(range(len(rows)), labels, rotation=75, fontsize=7)
    ax.set_ylabel("µs per time step")
    ax.set_title("time per step (f: forward, t: train)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "time_per_step.png"), dpi=110)
    plt.close(fig)
    return written + ["time_per_step.png"]
