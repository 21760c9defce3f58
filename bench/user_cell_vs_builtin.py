"""The built-in LSTM's equations written as a declared cell (examples/cells.py: `lstm`, and
`lstm_ogif` with its gates in another order) against fastrnn.LSTM, which runs the hand-written
kernels: the generic compiled path's cost. T = 100, I = H, inference (no_grad) and training
(forward, backward, SGD step), interleaved medians (fastrnn.harness.timing).

    python bench/user_cell_vs_builtin.py [--batch 1,16,64] [--hidden 128,256] [--rounds 5]

Prints one line a point: each candidate's ms and fastrnn.LSTM's time over the cell's (≥ 0.8:
the cell runs at 80 % of the built-in's speed or better).
"""
import argparse
import os

import torch

import fastrnn
from fastrnn.harness import machine, timing, user_cell

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "cells.py")


def _calls(cells, B, H, T, train):
    torch.manual_seed(0)
    builtin = fastrnn.LSTM(H, H)
    modules = {"fastrnn.LSTM": builtin}
    for name, cell in cells.items():
        m = fastrnn.Recurrent(cell, H, H)
        state = builtin.state_dict()
        if name == "lstm_ogif":  # the same weights, its gate blocks in its order
            order = [3, 2, 0, 1]  # o, g, i, f from torch's i, f, g, o
            state = {k: v.view(4, H, *v.shape[1:])[order].reshape(v.shape)
                     for k, v in state.items()}
        m.load_state_dict(state)
        modules[name] = m
    x, dy = torch.randn(T, B, H), torch.randn(T, B, H)
    return {name: user_cell.step_call(m, x, dy, train) for name, m in modules.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", default="1,16,64")
    p.add_argument("--hidden", default="128,256")
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    cells = {name: user_cell.load_cell(f"{EXAMPLES}:{name}") for name in ("lstm", "lstm_ogif")}
    print(f"{machine.describe()['cpu']}, {torch.get_num_threads()} threads, T={args.seq_len}")
    for H in map(int, args.hidden.split(",")):
        for B in map(int, args.batch.split(",")):
            for pass_ in ("forward", "train"):
                calls = _calls(cells, B, H, args.seq_len, pass_ == "train")
                ms = {k: v * 1e3 for k, v in timing.measure(calls, args.rounds).items()}
                print(f"{pass_:8s} B={B:3d} H={H:4d}  fastrnn.LSTM {ms['fastrnn.LSTM']:8.3f} ms  "
                      + "  ".join(f"{n} {ms[n]:8.3f} ms ({ms['fastrnn.LSTM'] / ms[n]:.2f})"
                                  for n in cells), flush=True)


if __name__ == "__main__":
    main()
