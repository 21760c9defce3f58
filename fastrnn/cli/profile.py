"""`fastrnn profile`: one configuration swept over sequence lengths — time for forward and
forward+backward, µs per step, peak memory and where the time goes, for each backend beside
torch.nn; writes PROFILE.md, results.json and profile.png."""
import sys

import torch

from ..bench import machine, profile
from ..bench.points import BASELINE
from . import _args
from .bench import _backends


def add_parser(sub, name):
    p = sub.add_parser(name, help="how cost grows with sequence length, and where it goes",
                       description=__doc__.split(":", 1)[1].strip())
    p.add_argument("--cell", type=_args.cell_list, default=["lstm"], help="lstm, gru, rnn_tanh, rnn_relu")
    p.add_argument("--batch", type=_args.positive_int, default=16, help="batch size B")
    p.add_argument("--hidden", type=_args.positive_int, default=128, help="hidden size H")
    p.add_argument("--input", type=_args.positive_int, help="input size I (default: H)")
    p.add_argument("--seq-lens", type=_args.int_list, default=[16, 64, 256, 1024, 4096],
                   help="sequence lengths T (default 16,64,256,1024,4096)")
    p.add_argument("--backends", type=_args.name_list, help="fastrnn backends (default: all kernels)")
    p.add_argument("--threads", type=_args.positive_int, help="torch threads for every candidate")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--rounds", type=_args.positive_int, default=3, help="interleaved rounds")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes")
    p.add_argument("--out", type=_args.writable_dir, default="profile-report", help="output folder")


def run(args):
    from tqdm import tqdm
    if len(args.cell) != 1:
        raise ValueError(f"--cell takes one cell, got {','.join(args.cell)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    backends = [b for b in _backends(args) if b != "auto"]  # profile times the kernels themselves
    config = dict(cell=args.cell[0], B=args.batch, I=args.input or args.hidden, H=args.hidden,
                  device=args.device, dtype=args.dtype)
    bar = tqdm(total=len(args.seq_lens), desc="profile", unit="T", file=sys.stderr, disable=None)

    def progress(row):
        bar.update()
        bar.write(f"T={row['T']:5d}  " + "  ".join(
            f"{n} {row['train'][n] / row['T'] * 1e6:.1f} µs/step" for n in [BASELINE, *backends]),
            file=sys.stderr)

    rows = profile.sweep(config["cell"], config["B"], config["I"], config["H"], args.seq_lens,
                         backends, args.device, args.dtype, args.rounds, not args.no_memory,
                         progress)
    bar.close()
    path = profile.write(args.out, config, rows, backends, machine.describe())
    print(open(path).read())
    print(f"profile written to {path}")
