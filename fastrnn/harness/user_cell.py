"""`fastrnn bench --cell-file FILE.py:NAME`: a cell declared with fastrnn.cell, timed on the
native backend against the same step as a per-step torch loop (backend='eager', the way users
write such a cell) and against that loop with its step compiled by torch.compile (its compile
time measured once and reported apart). Inference (no_grad) and training (forward, backward and
an SGD step), interleaved medians (timing.measure), the same weights and inputs for every
candidate. The report is a markdown table in the output folder.
"""
import copy
import datetime
import functools
import importlib.util
import os
import time

import torch

from . import machine, timing

CANDIDATES = ("fastrnn", "torch loop", "compiled loop")


def load_cell(spec):
    """'path/to/file.py:NAME' -> the fastrnn.cell NAME declared in that file."""
    from ..user.declare import Cell
    path, sep, name = spec.rpartition(":")
    if not sep or not path.endswith(".py") or not name:
        raise ValueError(f"--cell-file: expected FILE.py:NAME, got {spec!r}")
    if not os.path.isfile(path):
        raise ValueError(f"--cell-file: {path}: no such file")
    cell = getattr(_module(os.path.abspath(path)), name, None)
    if not isinstance(cell, Cell):
        raise ValueError(f"--cell-file: {path} has no cell {name!r} declared with fastrnn.cell "
                         f"(got {type(cell).__name__})")
    return cell


@functools.lru_cache(maxsize=None)
def _module(path):
    """The Python file at `path`, run once a process (its cells declared once)."""
    spec = importlib.util.spec_from_file_location("fastrnn_bench_cells", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _compiled(cell):
    """The cell with its step compiled by torch.compile (for the eager loop)."""
    twin = copy.copy(cell)
    twin.fn = torch.compile(cell.fn, dynamic=False)
    return twin


def step_call(m, x, dy, train):
    """A callable running module m once on x [T,B,I]: under no_grad, or (train) forward,
    backward of y against dy [T,B,H] and an SGD step (small lr: the timed work stays that of
    the same point)."""
    sgd = torch.optim.SGD(m.parameters(), lr=1e-6)

    def run():
        if not train:
            with torch.no_grad():
                m(x)
            return
        sgd.zero_grad(set_to_none=True)
        m(x)[0].backward(dy)
        sgd.step()
    return run


def _calls(cell, B, T, H, train, dtype):
    from ..user.layer import Recurrent
    torch.manual_seed(0)
    modules = {"fastrnn": Recurrent(cell, H, H, dtype=dtype, backend="native"),
               "torch loop": Recurrent(cell, H, H, dtype=dtype, backend="eager"),
               "compiled loop": Recurrent(_compiled(cell), H, H, dtype=dtype, backend="eager")}
    for m in modules.values():
        m.load_state_dict(modules["fastrnn"].state_dict())
    g = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, H, generator=g, dtype=dtype)
    dy = torch.randn(T, B, H, generator=g, dtype=dtype)
    return {name: step_call(m, x, dy, train) for name, m in modules.items()}


def run(cell, out, batch, hidden, seq_len, rounds, dtype="float32", progress=print):
    """Times `cell` at every (pass, B, H) with T = each of seq_len, I = H -> the report's path."""
    dt = getattr(torch, dtype)
    rows, compile_s = [], {}
    for T in seq_len:
        for H in hidden:
            for B in batch:
                for pass_ in ("forward", "train"):
                    calls = _calls(cell, B, T, H, pass_ == "train", dt)
                    start = time.perf_counter()
                    calls["compiled loop"]()  # the compilation, timed apart
                    compile_s[(pass_, B, H, T)] = time.perf_counter() - start
                    ms = {k: v * 1e3 for k, v in timing.measure(calls, rounds).items()}
                    rows.append(dict(pass_=pass_, T=T, B=B, H=H, ms=ms,
                                     compile_s=compile_s[(pass_, B, H, T)]))
                    progress(rows[-1])
    return _write(cell, out, rows, dtype)


def _write(cell, out, rows, dtype):
    from ..user import build
    info = machine.describe()
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [f"# fastrnn bench: cell `{cell.name}` ({cell.gates} gates, states "
             f"{', '.join(cell.states)}{'' if cell.recurrent else ', no W_hh'})", "",
             f"{stamp}, {info['cpu']}, {torch.get_num_threads()} threads, torch "
             f"{torch.__version__}, {dtype}. Ratios: the candidate's time over fastrnn's "
             f"(higher: fastrnn faster); medians of interleaved rounds. First use compiled the "
             f"cell's kernels in {build.compile_seconds.get(cell.name, 0.0):.1f} s (0: found "
             f"on disk).", "",
             "| pass | T | B | H | fastrnn ms | torch loop ms | × | compiled loop ms | × | "
             "torch.compile s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ms = r["ms"]
        lines.append(f"| {r['pass_']} | {r['T']} | {r['B']} | {r['H']} | {ms['fastrnn']:.3f} | "
                     f"{ms['torch loop']:.3f} | {ms['torch loop'] / ms['fastrnn']:.2f} | "
                     f"{ms['compiled loop']:.3f} | "
                     f"{ms['compiled loop'] / ms['fastrnn']:.2f} | {r['compile_s']:.1f} |")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"cell-{cell.name}.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path
