"""bfloat16 modules: fastrnn's LSTM, GRU and RNN against torch.nn's, both `.to(torch.bfloat16)`,
the same weights, T = 100, I = H, inference (no_grad) and training (forward, backward, SGD
step), interleaved medians (fastrnn.harness.timing), torch's threads for both. torch.nn runs
oneDNN's bfloat16 LSTM (AMX or AVX-512-BF16 where the CPU has them) and ATen's GRU and RNN;
fastrnn multiplies in bfloat16 on AMX tiles or vdpbf16ps (`fastrnn info` says which).

    python bench/bf16_vs_torch.py [--cells LSTM,GRU,RNN] [--batch 1,16,64] [--hidden 256,1024]
                                  [--rounds 5]

Prints one line a point: both times and torch.nn's over fastrnn's (above 1: fastrnn faster),
or that torch.nn cannot run the point on this CPU.
"""
import argparse

import torch

import fastrnn
from fastrnn.harness import baseline, machine, timing
from fastrnn.harness.user_cell import step_call


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", default="LSTM,GRU,RNN")
    p.add_argument("--batch", default="1,16,64")
    p.add_argument("--hidden", default="256,1024")
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    print(f"{machine.describe()['cpu']}, {torch.get_num_threads()} threads, T={args.seq_len}, "
          f"bfloat16 modules")
    for mode in args.cells.split(","):
        for H in map(int, args.hidden.split(",")):
            for B in map(int, args.batch.split(",")):
                torch.manual_seed(0)
                nn = getattr(torch.nn, mode)(H, H).to(torch.bfloat16)
                ours = getattr(fastrnn, mode)(H, H).to(torch.bfloat16)
                ours.load_state_dict(nn.state_dict())
                x = torch.randn(args.seq_len, B, H, dtype=torch.bfloat16)
                dy = torch.randn(args.seq_len, B, H, dtype=torch.bfloat16)
                for pass_ in ("forward", "train"):
                    calls = {"torch.nn": step_call(nn, x, dy, pass_ == "train"),
                             "fastrnn": step_call(ours, x, dy, pass_ == "train")}
                    if not baseline.runs(calls["torch.nn"]):
                        del calls["torch.nn"]
                    ms = {k: v * 1e3 for k, v in timing.measure(calls, args.rounds).items()}
                    head = f"{mode:4s} {pass_:8s} B={B:3d} H={H:4d}  fastrnn {ms['fastrnn']:9.3f} ms"
                    if "torch.nn" not in ms:
                        print(f"{head}  torch.nn cannot run this here", flush=True)
                        continue
                    print(f"{head}  torch.nn {ms['torch.nn']:9.3f} ms  "
                          f"({ms['torch.nn'] / ms['fastrnn']:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
