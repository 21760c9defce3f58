"""The `fastrnn` command: one small module per subcommand, each with add_parser(sub) and run(args)."""
import importlib
import sys

from ._args import Parser

COMMANDS = ("info", "bench", "profile", "train-charlm", "generate", "train-sentiment",
            "finetune")


def main(argv=None):
    parser = Parser(prog="fastrnn", description="Fused RNN/LSTM/GRU kernels: benchmarks, "
                    "profiles and the applications.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {}
    for name in COMMANDS:
        modules[name] = importlib.import_module(f".{name.replace('-', '_')}", __name__)
        modules[name].add_parser(sub, name)
    args = parser.parse_args(argv)
    try:
        return modules[args.command].run(args) or 0
    except KeyboardInterrupt:
        print("fastrnn: interrupted", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, OSError) as e:  # a problem of input or setup: one line
        print(f"fastrnn {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
