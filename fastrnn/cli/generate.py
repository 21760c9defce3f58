"""`fastrnn generate`: sample text from a character-model checkpoint."""
import sys
import time

from ..apps import charlm
from . import _args


def add_parser(sub, name):
    p = sub.add_parser(name, help="sample text from a character-model checkpoint",
                       description=__doc__.split(":", 1)[1].strip())
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--prompt", default="\n")
    p.add_argument("--length", type=_args.positive_int, default=500, help="characters to sample")
    p.add_argument("--temperature", type=_args.positive_float, default=0.8)
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same text")
    p.add_argument("--impl", choices=["fastrnn", "torch"], default="fastrnn")


def run(args):
    model, _, vocab = charlm.load(args.checkpoint, args.impl)
    t0 = time.perf_counter()
    text = charlm.generate(model, vocab, args.prompt, args.length, args.temperature, args.seed)
    dt = time.perf_counter() - t0
    print(text)
    print(f"{args.length} characters in {dt:.2f} s ({args.length / dt:.0f} characters/s, "
          f"{args.impl})", file=sys.stderr)
