"""`fastrnn profile`: how cost grows with sequence length — of your own model (--model
file.py:factory, torch.nn's recurrent layers beside fastrnn's) or of one layer configuration
(--cell, for each backend): time for forward and forward+backward, peak memory and where the time
goes; writes PROFILE.md, results.json and profile.png."""
import importlib.util
import os
import sys

import torch

from ..harness import machine, profile
from ..harness.points import BASELINE
from . import _args
from .bench import _backends


def add_parser(sub, name):
    p = sub.add_parser(name, help="how cost grows with sequence length, and where it goes",
                       description=__doc__.split(":", 1)[1].strip())
    p.add_argument("--model", metavar="FILE.py:FACTORY",
                   help="profile your model: FACTORY() in FILE.py returns (model, make_input) "
                        "or (model, make_input, loss_fn), make_input(T, B) giving its input")
    p.add_argument("--memory-budget", metavar="SIZE",
                   help="with --model: the largest T whose training step fits, e.g. 4GiB")
    p.add_argument("--no-train", action="store_true",
                   help="with --model: forward only (no backward, no training-step memory)")
    p.add_argument("--cell", type=_args.cell_list, default=["lstm"], help="lstm, gru, rnn_tanh, rnn_relu")
    p.add_argument("--batch", type=_args.positive_int, default=16, help="batch size B")
    p.add_argument("--hidden", type=_args.positive_int, default=128, help="hidden size H")
    p.add_argument("--input", type=_args.positive_int, help="input size I (default: H)")
    p.add_argument("--seq-lens", type=_args.int_list,
                   help="sequence lengths T (default 16,64,256,1024; 16,...,4096 with --cell)")
    p.add_argument("--backends", type=_args.name_list, help="fastrnn backends (default: all kernels)")
    p.add_argument("--threads", type=_args.positive_int, help="torch threads for every candidate")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--rounds", type=_args.positive_int, default=3, help="interleaved rounds")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes")
    p.add_argument("--out", type=_args.writable_dir, default="profile-report", help="output folder")


def load_factory(spec):
    """FILE.py:FACTORY -> (model, make_input, loss_fn or None), each problem a one-line error."""
    path, sep, name = spec.rpartition(":")
    if not sep or not path or not name:
        raise ValueError(f"--model: expected FILE.py:FACTORY, got {spec!r}")
    if not os.path.isfile(path):
        raise ValueError(f"--model: no file {path!r}")
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))  # its own imports of neighbours
    try:
        mod_spec = importlib.util.spec_from_file_location("fastrnn_user_model", path)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    except Exception as e:
        raise ValueError(f"--model: importing {path} raised {type(e).__name__}: {e}") from None
    finally:
        sys.path.pop(0)
    factory = getattr(module, name, None)
    if not callable(factory):
        raise ValueError(f"--model: {path} has no function {name!r}")
    try:
        got = factory()
    except Exception as e:
        raise ValueError(f"--model: {name}() raised {type(e).__name__}: {e}") from None
    if not (isinstance(got, tuple) and len(got) in (2, 3) and isinstance(got[0], torch.nn.Module)
            and all(callable(f) for f in got[1:])):
        raise ValueError(f"--model: expected {name}() to return (model, make_input) or (model, "
                         f"make_input, loss_fn), got {_describe(got)}")
    return got if len(got) == 3 else (*got, None)


def _describe(obj):
    if isinstance(obj, tuple):
        return "(" + ", ".join(type(o).__name__ for o in obj) + ")"
    return type(obj).__name__


def run_model(args):
    from tqdm import tqdm

    from ..harness.model import profile as profile_model
    from ..harness.model_report import parse_size
    budget = parse_size(args.memory_budget) if args.memory_budget else None
    model, make_input, loss_fn = load_factory(args.model)
    seq_lens = args.seq_lens or [16, 64, 256, 1024]
    bar = tqdm(total=len(seq_lens), desc="profile", unit="T", file=sys.stderr, disable=None)

    def progress(rows):
        bar.update()
        key = "forward_s" if args.no_train else "train_s"
        bar.write(f"T={rows[0]['T']:5d}  " + "  ".join(
            f"{r['impl']} {r[key] * 1e3:.3g} ms" for r in rows), file=sys.stderr)

    try:
        result = profile_model(model, make_input, seq_lens, args.batch, not args.no_train,
                               loss_fn, args.device, rounds=args.rounds,
                               memory=not args.no_memory, progress=progress)
    except TypeError as e:  # a make_input or loss_fn that returns the wrong thing
        raise ValueError(str(e)) from None
    finally:
        bar.close()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        f.write(result.to_json(budget))
    result.plot(os.path.join(args.out, "profile.png"))
    path = os.path.join(args.out, "PROFILE.md")
    with open(path, "w") as f:
        f.write(result.markdown(budget, plot_name="profile.png"))
    print(open(path).read())
    print(f"profile written to {path}")


def run(args):
    from tqdm import tqdm
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model:
        return run_model(args)
    if args.memory_budget or args.no_train:
        raise ValueError("--memory-budget and --no-train go with --model")
    args.seq_lens = args.seq_lens or [16, 64, 256, 1024, 4096]
    if len(args.cell) != 1:
        raise ValueError(f"--cell takes one cell, got {','.join(args.cell)}")
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
