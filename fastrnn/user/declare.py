"""fastrnn.cell: a recurrent step written in Python as torch ops, declared once and run by
fastrnn's loop.

The declaration runs the step once on small tensors to check what it uses (elementwise ops,
chunks of the gate blocks, rows of the declared vectors; anything else is refused there, naming
the op and the line), then traces it and its derivative — as torch's autograd computes it, so
kinks (relu at 0, clamp's bounds, ties of maximum) get autograd's values — into graphs of ATen
ops, from which fastrnn.user.codegen writes the C the native loop inlines.
"""
import inspect
import linecache
import traceback

import torch
from torch.fx.experimental.proxy_tensor import make_fx
from torch.utils._python_dispatch import TorchDispatchMode

from . import codegen, ops

# What a step may contain (ATen ops, as torch dispatches the user's torch calls)
ALLOWED = {
    "add", "sub", "rsub", "mul", "div", "neg", "reciprocal", "sigmoid", "tanh", "relu", "exp",
    "log", "sqrt", "rsqrt", "abs", "pow", "clamp", "clamp_min", "clamp_max", "minimum",
    "maximum", "where", "gt", "lt", "ge", "le", "eq", "ne", "logical_and", "logical_or",
    "logical_not", "split", "split_with_sizes", "select", "view", "_unsafe_view", "reshape",
    "flatten", "detach", "clone", "alias", "lift_fresh_copy", "scalar_tensor", "_to_copy",
    "sign", "sgn", "expand", "sum", "mean", "unsqueeze", "squeeze", "lift_fresh",
}
TRACE_H = 8  # the trace's hidden size (the graphs do not depend on it)


class _Checked(TorchDispatchMode):
    """Refuses an op a step may not contain, naming it and the step's line that called it."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.code = fn.__code__

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__.rstrip("_")
        if name in ("sum", "mean"):  # row reductions: over the last dimension only
            dims = args[1] if len(args) > 1 else (kwargs or {}).get("dim")
            ndim = args[0].dim()
            dims = [dims] if isinstance(dims, int) else dims
            if not dims or [d % ndim for d in dims] != [ndim - 1]:
                raise ValueError(f"fastrnn.cell {self.fn.__name__}: {self._line()}: "
                                 f"{func.name()} over dimensions {dims}: a step may reduce a row "
                                 f"over its last dimension only (e.g. x.mean(-1, keepdim=True))")
        if name not in ALLOWED:
            raise ValueError(f"fastrnn.cell {self.fn.__name__}: {self._line()}: {func.name()} "
                             f"is not supported in a cell's step (elementwise ops, chunk/split "
                             f"of the gate blocks and rows of the declared vectors are)")
        return func(*args, **(kwargs or {}))

    def _line(self):
        for frame in reversed(traceback.extract_stack()):
            if frame.filename == self.code.co_filename and \
                    self.code.co_firstlineno <= frame.lineno:
                text = (frame.line or linecache.getline(frame.filename, frame.lineno)).strip()
                return f"line {frame.lineno} ({text})"
        return "a line of the step"


class Cell:
    """A declared cell: `fn(gx, gh, *states, *vectors) -> new states` with `gates` blocks of
    H units in gx = W_ih x_t + b_ih and gh = W_hh h_{t−1} + b_hh [..., gates·H], states [..., H]
    in the declared order (the first is the output), vectors [n, H]. Calling it calls fn."""

    def __init__(self, fn, gates, states, vectors, recurrent=True):
        name = getattr(fn, "__name__", "cell")
        if not isinstance(gates, int) or isinstance(gates, bool) or gates < 1:
            raise ValueError(f"fastrnn.cell {name}: gates: expected a positive integer, got "
                             f"{gates!r}")
        if isinstance(states, str) or not states or \
                not all(isinstance(s, str) and s.isidentifier() for s in states):
            raise ValueError(f"fastrnn.cell {name}: states: expected a tuple of names, the "
                             f"output's first, got {states!r}")
        self.fn, self.name, self.gates, self.states = fn, name, gates, tuple(states)
        self.recurrent = bool(recurrent)
        self.inputs = ("gx", "gh") if self.recurrent else ("gx",)  # before the states
        self.vectors, self.inits = [], {}
        for key, spec in dict(vectors or {}).items():
            n, init = (spec, None) if not isinstance(spec, tuple) else spec
            if not key.isidentifier() or not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ValueError(f"fastrnn.cell {name}: vectors: expected name: rows (a positive "
                                 f"integer) or name: (rows, initial value), got {key!r}: "
                                 f"{spec!r}")
            self.vectors.append((key, n))
            self.inits[key] = init
        self.vector_rows = sum(n for _, n in self.vectors)
        params = list(inspect.signature(fn).parameters)
        want = len(self.inputs) + len(self.states) + len(self.vectors)
        if len(params) != want:
            raise ValueError(f"fastrnn.cell {name}: expected a step taking "
                             f"({', '.join(self.inputs + self.states)}"
                             f"{''.join(', ' + k for k, _ in self.vectors)}): {want} arguments, "
                             f"got {len(params)} ({', '.join(params)})")
        # the trace's batch: a size no declared vector has, so that shapes tell them apart
        self.trace_H, self.trace_B = TRACE_H, 2 + max([n for _, n in self.vectors] + [1])
        self.libraries = {}  # CPU variant -> (ffi, lib) (user.build)
        example = self._example(torch.float64)
        with _Checked(fn):
            out = self._outputs(fn(*example))
        for s, o in zip(self.states, out):
            if o.shape != (self.trace_B, TRACE_H):
                raise ValueError(f"fastrnn.cell {name}: the new state {s!r}: expected shape "
                                 f"[batch, H], got {list(o.shape)} (from H = {TRACE_H})")
        try:
            self.forward_graph, self.backward_graph = self._trace(TRACE_H)
            # constants that scale with H (a mean's backward divides by the row's length) are
            # found by tracing again at another H
            for graph, other in zip((self.forward_graph, self.backward_graph),
                                    self._trace(2 * TRACE_H)):
                codegen.mark_per_unit_constants(graph, other, TRACE_H, 2 * TRACE_H)
            self.source = codegen.source(self)
            self.forward_op = ops.define(self)  # (what torch.compile and torch.export record)
        except codegen.Unsupported as e:
            raise ValueError(f"fastrnn.cell {name}: {e} is not supported in a cell's "
                             f"step") from None

    def _trace(self, H):
        """(forward, backward) traced at hidden size H, as fx GraphModules (their graphs, and the
        tensor constants the step made, e.g. torch.tensor(0.5), as their attributes)."""
        example = self._example(torch.float64, H=H)
        forward = make_fx(lambda *a: self._outputs(self.fn(*a)))(*example)
        grads = example + self._example(torch.float64, states_only=True, H=H)
        return forward, make_fx(self._vjp)(*grads)

    def __call__(self, *args):
        return self.fn(*args)

    def __repr__(self):
        vectors = ", ".join(f"{k}: {n}" for k, n in self.vectors)
        return (f"fastrnn.cell({self.name}, gates={self.gates}, states={self.states}, "
                f"vectors={{{vectors}}})")

    def _example(self, dtype, states_only=False, H=TRACE_H):
        B, G = self.trace_B, self.gates * H
        gen = torch.Generator().manual_seed(0)
        rand = lambda *s: torch.randn(*s, generator=gen, dtype=dtype)  # noqa: E731
        states = [rand(B, H) for _ in self.states]
        if states_only:
            return states
        return [rand(B, G) for _ in self.inputs] + states + [rand(n, H) for _, n in self.vectors]

    def _outputs(self, out):
        out = (out,) if isinstance(out, torch.Tensor) else tuple(out)
        if len(out) != len(self.states) or not all(isinstance(o, torch.Tensor) for o in out):
            raise ValueError(f"fastrnn.cell {self.name}: expected the step to return the new "
                             f"states {self.states} in that order, got {len(out)} values")
        return out

    def _vjp(self, *args):
        """The step's derivative: (inputs..., ∂L/∂new states...) -> ∂L/∂inputs (None where the
        step does not use an input)."""
        n = len(self.inputs) + len(self.states) + len(self.vectors)
        ins = [a.detach().requires_grad_() for a in args[:n]]
        with torch.enable_grad():
            outs = self._outputs(self.fn(*ins))
            used = [(o, g) for o, g in zip(outs, args[n:]) if o.requires_grad]
            if not used:
                return tuple(None for _ in ins)
            return torch.autograd.grad([o for o, _ in used], ins, [g for _, g in used],
                                       allow_unused=True)


def cell(fn=None, *, gates, states, vectors=None, recurrent=True):
    """Declares a recurrent cell from its step, a function of torch ops:

        @fastrnn.cell(gates=4, states=("h", "c"), vectors={"peep": 3})
        def peephole_lstm(gx, gh, h, c, peep):
            ...
            return h, c

    gx = W_ih x_t + b_ih and gh = W_hh h_{t−1} + b_hh [..., gates·H]; the states [..., H] in the
    declared order (the first is the output, which W_hh multiplies); each declared vector
    `name: rows` (or `name: (rows, initial value)`, zeros unless given) a parameter [rows, H].
    Returns the new states in the declared order. With recurrent=False the cell has no W_hh and
    its step takes no gh (its recurrence runs through its states and vectors only, as minGRU's
    or IndRNN's): it gets no weight_hh or bias_hh and pays for no product. fastrnn.Recurrent
    runs the cell; its backward is derived, never written."""
    if fn is None:
        return lambda f: Cell(f, gates, states, vectors, recurrent)
    return Cell(fn, gates, states, vectors, recurrent)
