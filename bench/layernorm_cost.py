"""What LayerNorm costs: fastrnn's LayerNorm LSTM / GRU against fastrnn's plain LSTM / GRU of the
same size, native, inference (no_grad), T = 100, I = H ∈ {128, 256, 512}, B ∈ {1, 16, 64}; the
two interleaved in one process (each round runs both, alternating which goes first), medians.
Prints a Markdown table of LN time, plain time and their ratio.

    python bench/layernorm_cost.py [--rounds N] [--threads N]
"""
import argparse
import statistics
import time

import torch

import fastrnn


def median_ms(calls, rounds):
    """{name: median ms} of calls run interleaved, at least `rounds` rounds, up to 3 s more."""
    ts = {k: [] for k in calls}
    with torch.no_grad():
        for f in calls.values():
            f(), f()
        end, r = time.perf_counter() + 3.0, 0
        while r < rounds or (time.perf_counter() < end and r < 6 * rounds):
            for k in (list(calls) if r % 2 == 0 else list(calls)[::-1]):
                t0 = time.perf_counter()
                calls[k]()
                ts[k].append(time.perf_counter() - t0)
            r += 1
    return {k: statistics.median(v) * 1e3 for k, v in ts.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"T = 100, I = H, native inference, {args.threads} threads\n")
    print("| cell | B | H | LayerNorm ms | plain ms | LayerNorm / plain |\n|---|---|---|---|---|---|")
    for cell in ("LSTM", "GRU"):
        for B in (1, 16, 64):
            for H in (128, 256, 512):
                ln = getattr(fastrnn, "LayerNorm" + cell)(H, H, backend="native")
                plain = getattr(fastrnn, cell)(H, H, backend="native")
                x = torch.randn(100, B, H)
                t = median_ms({"ln": lambda: ln(x), "plain": lambda: plain(x)}, args.rounds)
                print(f"| {cell} | {B} | {H} | {t['ln']:.2f} | {t['plain']:.2f} | "
                      f"{t['ln'] / t['plain']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
