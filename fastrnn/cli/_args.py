"""Argument types shared by the subcommands; each bad value becomes a one-line error."""
import argparse
import os

from ..harness.points import CELLS


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def int_list(text):
    """'4,16,64' -> [4, 16, 64]; every value a positive integer."""
    items = [t for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list of positive integers, "
                                         "got an empty list")
    try:
        values = [int(t) for t in items]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}") from None
    bad = [v for v in values if v <= 0]
    if bad:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {bad[0]}")
    return values


def positive_int(text):
    values = int_list(text)
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"expected one positive integer, got {text!r}")
    return values[0]


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def cell_list(text):
    """'lstm,gru' -> ['lstm', 'gru'], each one of the known cells ('rnn' means rnn_tanh)."""
    items = [{"rnn": "rnn_tanh"}.get(t.strip(), t.strip()) for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list of cells, got an empty list")
    for c in items:
        if c not in CELLS:
            raise argparse.ArgumentTypeError(f"unknown cell {c!r}; choose from {', '.join(CELLS)}")
    return items


def name_list(text):
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list, got an empty list")
    return items


def writable_dir(path):
    """Create `path` if needed and check that a file can be written in it."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".fastrnn-write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise argparse.ArgumentTypeError(f"cannot write to output folder {path!r}: "
                                         f"{e.strerror}") from None
    return path
