"""The tuned rules: every choice fastrnn makes by a measured threshold — how many threads a step
is worth, when threads split a batch by rows, when W is packed, how long an input-projection
chunk is, how weight gradients are summed, who computes dx — with what it decides and the CPU and
measurement that set it. One table, kernels/rules.def, read by the C kernels and here;
`fastrnn info` prints it, and `override` changes rules for a measurement (`fastrnn bench --suite
rules` A/Bs each against its alternatives: fastrnn/harness/rules_ab.py).
"""
import contextlib
import functools
import re
from dataclasses import dataclass

_STRINGS = r'((?:"(?:[^"\\]|\\.)*"\s*)+)'
_ROW = re.compile(r"FR_RULE\(\s*(\w+),\s*(\d+),\s*" + _STRINGS + r",\s*" + _STRINGS + r"\)")


@dataclass(frozen=True)
class Rule:
    name: str
    default: int
    what: str    # what it decides
    where: str   # the CPU and the measurement that set it


def _joined(literals):
    return "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', literals))


@functools.cache
def table():
    """{name: Rule}, in the order of kernels/rules.def (installed beside the C library)."""
    from ._native import find
    path = find("rules.def")
    if path is None:
        raise ImportError("rules.def not found beside the compiled libraries or in kernels/")
    with open(path, encoding="utf-8") as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    return {m[1]: Rule(m[1], int(m[2]), _joined(m[3]), _joined(m[4]))
            for m in _ROW.finditer(text)}


_values = {}  # the rules overridden now (override); the others have their defaults


def value(name):
    """The value of rule `name` in force."""
    v = _values.get(name)
    return table()[name].default if v is None else v


def _set_in_library(name, v):
    try:
        from ._native.cpu import library
    except ImportError:  # no C library: the Python side's rules alone apply
        return
    library.raise_for(library.lib.fastrnn_set_rule(name.encode(), v))


@contextlib.contextmanager
def override(**values):
    """Inside it, the rules named take the values given, in the C kernels and in Python alike,
    for the whole process (a measurement's tool: not while other threads call fastrnn), e.g.
    `with rules.override(chunk_rows=64): ...`."""
    for name, v in values.items():
        if name not in table():
            raise ValueError(f"rules.override: no rule named {name!r}; the rules are "
                             f"{', '.join(table())}")
        if not isinstance(v, int) or v < 0:
            raise ValueError(f"rules.override: {name} must be an int >= 0, got {v!r}")
    before = {name: value(name) for name in values}
    try:
        for name, v in values.items():
            _values[name] = v
            _set_in_library(name, v)
        yield
    finally:
        for name, v in before.items():
            _values[name] = v
            _set_in_library(name, v)
