"""C for a declared cell's step: its forward and its derivative, both traced as graphs of ATen ops
(fastrnn.user.declare), become the two row functions kernels/cpu/user_cell.h inlines into the
one loop.

Each traced value is a list of blocks of H units — G_x and the product have `gates` of them, a
state one, a declared vector [n,H] n — and each block one C scalar per unit j, so the generated
code is a single loop over a thread's units with one statement per op and block, which the
compiler vectorises. A value's batch dimension is implicit (the loop runs row by row); the
vectors' gradients, which torch sums over the batch, are each row's share there, added into a
per-row buffer and summed over the rows afterwards. A row reduction (mean or sum over a row)
starts a pass: its operand is stored to a scratch row, and the next pass, after the loop's
barrier, sums the whole row; what a pass needs from earlier ones is recomputed from the inputs.
The training forward keeps, in sv, the values the backward would otherwise recompute (_saved).
"""
import operator
import re

import torch

aten = torch.ops.aten


class Unsupported(ValueError):
    """An op or a use of one the generated code cannot express."""


class _Value:
    """blocks: C expressions, one a block of H units; stacked: the blocks lie along a leading
    dimension ([n,H], a declared vector) rather than the last; batched: differs row to row;
    summed: summed over the batch (the loop computes each row's share); boolean: a mask; row:
    one value a row (a row reduction's), broadcast over the units; level: the first pass over
    the step's rows that can compute it (each row reduction starts a pass)."""

    def __init__(self, blocks, stacked=False, batched=True, summed=False, boolean=False,
                 row=False, level=0):
        self.blocks, self.stacked, self.batched = list(blocks), stacked, batched
        self.summed, self.boolean, self.row, self.level = summed, boolean, row, level

    def like(self, blocks, **kw):
        """A value of these blocks with this one's flags but those given."""
        flags = dict(stacked=self.stacked, batched=self.batched, summed=self.summed,
                     boolean=self.boolean, row=self.row, level=self.level)
        flags.update(kw)
        return _Value(blocks, **flags)


class PerH:
    """A constant of the step that depends on H (the backward of a mean over a row divides by
    its length): coef·H^power, written with the run's H."""

    def __init__(self, coef, power):
        self.coef, self.power = coef, power

    def c(self):
        return f"((real){self.coef!r} * (real)H)" if self.power == 1 else \
            f"((real){self.coef!r} / (real)H)"


_SIZES = {"split", "split_with_sizes", "view", "_unsafe_view", "reshape", "expand",
          "select_backward", "new_zeros", "zeros", "new_full", "full", "new_ones", "squeeze",
          "unsqueeze", "flatten", "sum", "mean", "cat", "select"}


def mark_per_unit_constants(module, other, H, H_other):
    """The same step traced at two hidden sizes (fx GraphModules): module's elementwise constants
    that differ in `other` in proportion to H (or to 1/H) become PerH. Shapes and sizes are not constants of
    the math and may differ. Raises Unsupported where the graphs differ otherwise."""
    nodes, others = list(module.graph.nodes), list(other.graph.nodes)
    if len(nodes) != len(others) or any(a.target != b.target for a, b in zip(nodes, others)):
        raise Unsupported("a step whose ops depend on the hidden size")
    for a, b in zip(nodes, others):
        if a.op != "call_function" or not hasattr(a.target, "overloadpacket") or \
                a.target.overloadpacket.__name__.rstrip("_") in _SIZES:
            continue
        args = list(a.args)
        for i, (u, w) in enumerate(zip(a.args, b.args)):
            if isinstance(u, (int, float)) and not isinstance(u, bool) and u != w:
                if abs(u * H_other - w * H) <= 1e-12 * abs(w * H):
                    args[i] = PerH(u / H, 1)
                elif abs(u * H - w * H_other) <= 1e-12 * abs(u * H):
                    args[i] = PerH(u * H, -1)
                else:
                    raise Unsupported(f"a constant that depends on the hidden size ({u}, {w})")
        a.args = tuple(args)


def _lit(v):
    if isinstance(v, PerH):
        return v.c()
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return f"((real){v})"
    return f"((real){float(v)!r})"


# op -> C of its operands, elementwise (a, b, c: the operands' expressions; p: scalar arguments)
_UNARY = {
    "neg": "(-{a})", "reciprocal": "((real)1 / {a})", "sigmoid": "fr_sigmoid({a})",
    "tanh": "FR_TANH({a})", "exp": "FR_EXP({a})", "log": "U_LOG({a})", "sqrt": "FR_SQRT({a})",
    "rsqrt": "((real)1 / FR_SQRT({a}))", "abs": "U_ABS({a})", "relu": "({a} > 0 ? {a} : (real)0)",
    "sgn": "((real)(({a} > 0) - ({a} < 0)))", "sign": "((real)(({a} > 0) - ({a} < 0)))",
    "logical_not": "(!{a})",
}
_BINARY = {
    "add": "({a} + {b})", "sub": "({a} - {b})", "mul": "({a} * {b})", "div": "({a} / {b})",
    "rsub": "({b} - {a})", "maximum": "({a} > {b} || {a} != {a} ? {a} : {b})",
    "minimum": "({a} < {b} || {a} != {a} ? {a} : {b})",
    "gt": "({a} > {b})", "lt": "({a} < {b})", "ge": "({a} >= {b})", "le": "({a} <= {b})",
    "eq": "({a} == {b})", "ne": "({a} != {b})", "logical_and": "({a} && {b})",
    "logical_or": "({a} || {b})",
    "sigmoid_backward": "({a} * ({b} * ((real)1 - {b})))",
    "tanh_backward": "({a} * ((real)1 - {b} * {b}))",
}
_BOOLEAN = {"gt", "lt", "ge", "le", "eq", "ne", "logical_and", "logical_or", "logical_not"}
_IDENTITY = {"detach", "clone", "alias", "lift_fresh_copy", "_to_copy", "contiguous"}
_CONSTANT = {"zeros", "zeros_like", "new_zeros", "ones_like", "new_ones", "full", "full_like",
             "new_full", "scalar_tensor"}


class _Emitter:
    """Walks one graph, writing a C statement a block; `H` is the trace's hidden size, `B` its
    batch size. A statement is (kind, level, C, deps): `val` a unit's value in the units' loop,
    `row` a row's value before it, `store` a sink in the loop (a row reduction's operand into
    the scratch row, or an output)."""

    def __init__(self, H, B, prefix):
        self.H, self.B, self.prefix, self.stmts, self.scratch = H, B, prefix, {}, 0

    def new(self, expr, deps=(), level=0, boolean=False, kind="val"):
        name = f"{self.prefix}{len(self.stmts)}"
        ctype = "int" if boolean else "real"
        text = f"const {ctype} {name} = {expr};" if kind != "store" else expr
        self.stmts[name] = (kind, level, text, [d for d in deps if d in self.stmts])
        return name

    def load(self, expr):
        return _Value([self.new(expr)])

    def passes(self):
        return 1 + max((lvl for _, lvl, _, _ in self.stmts.values()), default=0)

    def code(self, outputs, kept=()):
        """The C of every pass: `if (phase == p) {row values; the units' loop}`; outputs:
        (C format with {0}, expression) stores for the last pass; `kept`: more, into sv, which
        only a training forward makes (its last pass is then two loops, chosen once). A value a
        pass computed that a later pass needs goes to the row's scratch (its units: the same
        thread's in both passes) and is read back there, not recomputed."""
        last = self.passes() - 1
        sinks = {p: [n for n, (k, lvl, _, _) in self.stmts.items() if k == "store" and lvl == p]
                 for p in range(last + 1)}
        sinks[last] += [self.new(fmt.format(e), [e], last, kind="store") for fmt, e in outputs]
        keep = [self.new(fmt.format(e), [e], last, kind="store") for fmt, e in kept]
        self.slots, bodies = {}, {}  # value -> its scratch slot; pass -> its lines
        for p in range(last, -1, -1):  # (a pass learns from later ones what to store)
            stored = [self.new(f"scr[{slot} * H + j] = {n};", [n], p, kind="store")
                      for n, slot in self.slots.items() if self.stmts[n][1] == p]
            if p == last and keep:
                bodies[p] = (["    if (sv) {"] + self._pass(p, sinks[p] + keep, "  ")
                             + ["    } else {"] + self._pass(p, sinks[p], "  ") + ["    }"])
            else:
                bodies[p] = self._pass(p, sinks[p] + stored)
        out = []
        for p in range(last + 1):
            out += [f"  if (phase == {p}) {{"] + bodies[p] + ["  }"]
        return "\n".join(out)

    def _pass(self, p, sinks, indent=""):
        """The lines of pass p that writes `sinks`: the row values it needs, then the loop; a
        value of an earlier pass (not a load) is read from its scratch slot."""
        need, stack, reread = set(), list(sinks), {}
        while stack:
            n = stack.pop()
            if n in need:
                continue
            need.add(n)
            kind, level, text, deps = self.stmts[n]
            if kind == "val" and level < p and deps:
                if n not in self.slots:
                    self.slots[n] = self.scratch
                    self.scratch += 1
                ctype = text.split(" ", 2)[1]
                reread[n] = f"const {ctype} {n} = scr[{self.slots[n]} * H + j];"
                continue
            stack.extend(d for d in deps if self.stmts[d][0] != "store")
        rows = [t for n, (k, _, t, _) in self.stmts.items() if n in need and k == "row"]
        loop = [reread.get(n, t) for n, (k, _, t, _) in self.stmts.items()
                if n in need and k != "row"]
        return [f"{indent}    {t}" for t in rows] + \
            [f"{indent}    #pragma omp simd", f"{indent}    for (int64_t j = j0; j < j1; j++) {{"] + \
            [f"{indent}      {t}" for t in loop] + [f"{indent}    }}"]

    def blocks_of(self, node):
        """How many blocks of H node's value has: along its last dimension, or its leading
        one for a stacked [n,H] value."""
        shape = node.meta["val"].shape
        return shape[-1] // self.H if len(shape) else 1

    def run(self, module, inputs):
        """Evaluates fx GraphModule `module` on inputs (a _Value per placeholder) -> the
        outputs' _Values. A one-value tensor constant becomes a number."""
        env = {}
        placeholders = iter(inputs)
        for node in module.graph.nodes:
            if node.op == "placeholder":
                env[node] = next(placeholders)
            elif node.op == "get_attr":
                constant = getattr(module, node.target)
                if constant.numel() != 1:
                    raise Unsupported("a tensor constant of more than one value")
                env[node] = constant.item()
            elif node.op == "output":
                outs = node.args[0]
                return [None if o is None else env[o] for o in outs]
            elif node.op == "call_function":
                env[node] = self.op(node, env)
            else:
                raise Unsupported(f"{node.op} {node.target}")

    def op(self, node, env):
        def arg(a):
            if isinstance(a, (list, tuple)):
                return [arg(x) for x in a]
            return env[a] if isinstance(a, torch.fx.Node) else a

        args = [arg(a) for a in node.args]
        if node.target is operator.getitem:
            return args[0][args[1]]
        packet = node.target.overloadpacket.__name__.rstrip("_")  # (in-place: fresh temps)
        kwargs = node.kwargs
        if packet in _IDENTITY:
            return args[0]
        if packet in _CONSTANT:
            value = {"zeros": 0, "zeros_like": 0, "new_zeros": 0, "ones_like": 1, "new_ones": 1,
                     "full": args[1] if len(args) > 1 else 0, "new_full": args[-1],
                     "full_like": args[-1], "scalar_tensor": args[0]}[packet]
            shape = node.meta["val"].shape
            stacked = len(shape) == 2 and shape[0] not in (1, self.B)
            n = shape[0] if stacked else self.blocks_of(node)
            return _Value([_lit(value)] * max(n, 1), stacked=stacked, batched=False)
        if packet in _UNARY:
            return self.elementwise(_UNARY[packet], [args[0]], packet in _BOOLEAN)
        if packet in ("add", "sub", "rsub") and kwargs.get("alpha", 1) != 1:
            args[1] = self.elementwise(_BINARY["mul"], [args[1], kwargs["alpha"]])
        if packet in _BINARY:
            return self.elementwise(_BINARY[packet], args[:2], packet in _BOOLEAN)
        if packet == "div" and kwargs.get("rounding_mode") is not None:
            raise Unsupported("div with a rounding_mode")
        if packet == "pow":
            return self.pow(args[0], args[1])
        if packet in ("clamp", "clamp_min", "clamp_max"):
            lo, hi = (args[1:3] + [None, None])[:2] if packet == "clamp" else \
                ((args[1], None) if packet == "clamp_min" else (None, args[1]))
            lo, hi = kwargs.get("min", lo), kwargs.get("max", hi)
            v = args[0]
            if lo is not None:
                v = self.elementwise("({a} < {b} ? {b} : {a})", [v, lo])
            if hi is not None:
                v = self.elementwise("({a} > {b} ? {b} : {a})", [v, hi])
            return v
        if packet == "where":
            return self.elementwise("({a} ? {b} : {c})", args[:3])
        if packet == "masked_fill":
            return self.elementwise("({b} ? {c} : {a})", args[:3])
        if packet == "threshold_backward":
            return self.elementwise("({b} <= {c} ? (real)0 : {a})", args[:3])
        if packet in ("split", "split_with_sizes"):
            return self.split(node, args)
        if packet == "select":
            return self.select(args)
        if packet == "select_backward":
            g, sizes, dim, index = args
            if dim != 0 or len(sizes) != 2:
                raise Unsupported("indexing other than a declared vector's rows")
            blocks = [_lit(0)] * sizes[0]
            blocks[index] = g.blocks[0]
            return g.like(blocks, stacked=True)
        if packet == "cat":
            parts, dim = args[0], args[1] if len(args) > 1 else 0
            return self.cat(node, parts, dim)
        if packet in ("view", "_unsafe_view", "reshape", "expand", "squeeze", "unsqueeze",
                      "flatten"):
            return self.reshape(node, args[0])
        if packet in ("sum", "mean") and len(args) > 1:
            return self.sum(node, args, packet == "mean")
        raise Unsupported(f"aten.{packet}")

    def elementwise(self, template, operands, boolean=False):
        values = [o for o in operands if isinstance(o, _Value)]
        n = max(len(v.blocks) for v in values if not v.row) if not all(
            v.row for v in values) else 1
        for v in values:
            if not v.row and len(v.blocks) not in (1, n):
                raise Unsupported("operands of different numbers of gate blocks")
        stacked = any(v.stacked for v in values) and not any(v.batched for v in values)
        summed = any(v.summed for v in values)
        if summed and not _linear(template, operands):
            raise Unsupported("a value summed over the batch used other than linearly")
        row = all(v.row for v in values)
        level = max(v.level for v in values)
        out = []
        for q in range(n):
            subs, deps = {}, []
            for key, o in zip("abc", operands):
                if isinstance(o, _Value):
                    subs[key] = o.blocks[q if len(o.blocks) > 1 else 0]
                    deps.append(subs[key])
                else:
                    subs[key] = _lit(o)
            out.append(self.new(template.format(**subs), deps, level, boolean,
                                "row" if row else "val"))
        return _Value(out, stacked, any(v.batched for v in values), summed, boolean, row, level)

    def reduce(self, node, v, mean):
        """A row's sum or mean over its last dimension: its blocks go to the scratch row in
        one pass, and the next pass sums them (each thread the whole row, in one order, in
        double: the same bits for any thread count)."""
        if v.row:  # (a row value broadcast over the units, summed back)
            n = node.args[0].meta["val"].shape[-1] // self.H
            return v if mean else self.elementwise(f"({{a}} * (real)({n} * H))", [v])
        k, off = len(v.blocks), self.scratch
        self.scratch += k
        stores = [self.new(f"scr[{off + q} * H + j] = {b};", [b], v.level, kind="store")
                  for q, b in enumerate(v.blocks)]
        total = f"fr_user_sum(scr + {off} * H, {k} * H)"
        expr = f"({total} / (real)({k} * H))" if mean else total
        return _Value([self.new(expr, stores, v.level + 1, kind="row")], batched=v.batched,
                      row=True, level=v.level + 1)

    def pow(self, base, p):
        if isinstance(base, _Value) and not isinstance(p, _Value):
            if p in (1, 1.0):
                return base
            if p in (2, 2.0):
                return self.elementwise("({a} * {a})", [base])
            if p in (3, 3.0):
                return self.elementwise("({a} * {a} * {a})", [base])
            if p in (0.5,):
                return self.elementwise("FR_SQRT({a})", [base])
            if p in (-1, -1.0):
                return self.elementwise("((real)1 / {a})", [base])
            return self.elementwise("U_POW({a}, {b})", [base, p])
        raise Unsupported("pow with a tensor exponent")

    def split(self, node, args):
        v, sizes = args[0], args[1]
        dim = args[2] if len(args) > 2 else node.kwargs.get("dim", 0)
        ndim = len(node.args[0].meta["val"].shape)
        if dim % ndim != ndim - 1 or v.stacked:
            raise Unsupported("split or chunk along any dimension but the last")
        total = len(v.blocks) * self.H
        sizes = [sizes] * (total // sizes) if isinstance(sizes, int) else list(sizes)
        if any(s % self.H for s in sizes):
            raise Unsupported("split or chunk into parts that are not whole gate blocks")
        out, q = [], 0
        for s in sizes:
            k = s // self.H
            out.append(v.like(v.blocks[q:q + k]))
            q += k
        return out

    def select(self, args):
        v, dim, index = args
        if not (v.stacked and dim == 0):
            raise Unsupported("indexing other than a declared vector's rows")
        return v.like([v.blocks[index]], stacked=False)

    def cat(self, node, parts, dim):
        ndim = len(node.meta["val"].shape)
        stacked = ndim == 2 and all(p.stacked for p in parts)
        if not stacked and dim % ndim != ndim - 1:
            raise Unsupported("cat along any dimension but the last")
        if any(p.row for p in parts):
            raise Unsupported("cat of a row reduction's value")
        return _Value([b for p in parts for b in p.blocks], stacked,
                      any(p.batched for p in parts), any(p.summed for p in parts),
                      level=max(p.level for p in parts))

    def reshape(self, node, v):
        """A vector [n,H] as one row [n·H] (or back), a batch sum's [1,H] as [H], a vector
        broadcast over the batch, a row's value [B,1] or [B] broadcast over its units: the
        blocks stay as they are."""
        if v.row:
            return v
        shape = node.meta["val"].shape
        before = node.args[0].meta["val"].shape
        if shape[-1] % self.H or before[-1] % self.H:
            raise Unsupported("a reshape that splits a block of H units")
        stacked = len(shape) == 2 and not v.batched and shape[0] > 1 and shape[-1] == self.H
        return v.like(v.blocks, stacked=stacked)

    def sum(self, node, args, mean):
        v, dims = args[0], args[1]
        ndim = len(node.args[0].meta["val"].shape)
        dims = [d % ndim for d in (dims if isinstance(dims, (list, tuple)) else [dims])]
        if dims == [0] and v.batched and ndim == 2 and not mean:  # torch's sum over the batch
            return v.like(v.blocks, stacked=False, batched=False, summed=True)
        if dims == [ndim - 1] and not v.stacked:
            return self.reduce(node, v, mean)
        raise Unsupported(f"a {'mean' if mean else 'sum'} over dimensions {dims}")


def _is_zero(v):
    return isinstance(v, _Value) and all(b == _lit(0) for b in v.blocks)


def _linear(template, operands):
    """Whether an op on a batch sum (each row's share, summed after the loop) may run on the
    shares: sums of such sums and zeros, negation, scaling by what does not vary by row."""
    shares = [o for o in operands if isinstance(o, _Value) and o.summed]
    others = [o for o in operands if not (isinstance(o, _Value) and o.summed)]
    if template in (_BINARY["add"], _BINARY["sub"], _BINARY["rsub"]):
        return all(_is_zero(o) for o in others)
    if template == _UNARY["neg"]:
        return True
    if template == _BINARY["mul"]:
        return len(shares) == 1 and not any(isinstance(o, _Value) and o.batched for o in others)
    if template == _BINARY["div"]:
        return operands[0] is shares[0] and len(shares) == 1 and \
            not (isinstance(operands[1], _Value) and operands[1].batched)
    return False


def _store(v, n, what):
    """v's n blocks' expressions (zeros for None) for an output `what`."""
    if v is None:
        return [_lit(0)] * n
    if len(v.blocks) == 1 and n > 1:
        return v.blocks * n
    if len(v.blocks) != n:
        raise Unsupported(f"{what}: expected {n} blocks of H units, got {len(v.blocks)}")
    return v.blocks


def _inputs(emit, decl, gx_stride):
    """A row's inputs, loaded where a pass needs them: G_x, the product (+ b_hh), the states,
    the vectors."""
    G = decl.gates
    values = [_Value([emit.new(f"gx[{q} * {gx_stride} + j]") for q in range(G)])]
    if decl.recurrent:
        values.append(_Value([emit.new(f"gh[{q} * H + j] + bh[{q} * H + j]") for q in range(G)]))
    values.append(emit.load("hp[j]"))
    values += [emit.load(f"cp[{k - 1} * ss + j]") for k in range(1, len(decl.states))]
    row = 0
    for _, n in decl.vectors:
        values.append(_Value([emit.new(f"v[{row + i} * H + j]") for i in range(n)],
                             stacked=True, batched=False))
        row += n
    return values


_HEAD = """/* Generated by fastrnn from the cell `{name}` (fastrnn.cell): its step and the step's
 * derivative as torch's autograd computes it, in passes over the step's rows (a row reduction
 * starts a pass); the loop is kernels/cpu/user_cell.h's. */
#define CELL_GATES {gates}
#define CELL_STATES {states}
#define CELL_VECTORS {vectors}
#define CELL_SCRATCH {scratch}
#define CELL_PHASES {passes}
#define CELL_BPHASES {bpasses}
#define CELL_RECURRENT {recurrent}
#define CELL_SAVED {saved}
#define CELL_KEEPS_PRODUCTS {keeps}
#include "cpu/internal.h"
#if FASTRNN_F64
#define U_LOG log
#define U_POW pow
#define U_ABS fabs
#else
#define U_LOG logf
#define U_POW powf
#define U_ABS fabsf
#endif

/* v [n] summed in order, in double */
static inline real fr_user_sum(const real *v, int64_t n) {{
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += v[i];
  return (real)s;
}}
"""

_FORWARD = """
static inline __attribute__((always_inline)) void user_forward(
    int phase, int64_t j0, int64_t j1, int64_t H, const real *gx, int64_t xs, const real *gh,
    const real *bh, const real *hp, const real *cp, real *cn, int64_t ss, const real *v,
    real *scr, real *sv, real *r, real *y) {{
{body}
}}
"""

_BACKWARD = """
static inline __attribute__((always_inline)) void user_backward(
    int phase, int64_t j0, int64_t j1, int64_t H, const real *gx, const real *gh,
    const real *bh, const real *hp, const real *cp, int64_t ss, const real *v, real *scr,
    const real *sv, const real *dy, real *dh, real *dc, int64_t ds, real *dgx, real *dgh,
    double *dv) {{
{body}
}}

#include "cpu/user_cell.h"
"""


def _saved(fwd, f_inputs, bwd, b_inputs):
    """The forward's values the backward should read rather than recompute: the backward graph
    starts by recomputing the step; its statements that are the forward's (the same expression
    of the same inputs, pass 0) and that the rest of the backward uses -> [(backward name,
    forward name)], in order; none where that would save more than 2·gates + 2 values a unit
    (then recomputing is the cheaper traffic)."""
    alias = {b: f for fv, bv in zip(f_inputs, b_inputs) for f, b in zip(fv.blocks, bv.blocks)}
    loads = set(alias)
    exprs = {t.split(" = ", 1)[1]: n for n, (k, lvl, t, _) in fwd.stmts.items()
             if k == "val" and lvl == 0}
    for name, (kind, level, text, _) in bwd.stmts.items():
        if kind == "val" and level == 0 and name not in alias:
            expr = re.sub(r"\bb\d+\b", lambda m: alias.get(m.group(0), "?"),
                          text.split(" = ", 1)[1])
            if "?" not in expr and expr in exprs:
                alias[name] = exprs[expr]
    used = {d for n, (_, _, _, deps) in bwd.stmts.items() if n not in alias for d in deps}
    frontier = [(b, alias[b]) for b in bwd.stmts if b in used and b in alias and b not in loads]
    return frontier if len(frontier) <= 2 * len(f_inputs[0].blocks) + 2 else []


def source(decl):
    """The C file of declared cell `decl` (fastrnn.user.declare.Cell): its traced forward and
    backward graphs as user_forward and user_backward, then user_cell.h."""
    G, S = decl.gates, len(decl.states)
    fwd = _Emitter(decl.trace_H, decl.trace_B, "f")
    f_inputs = _inputs(fwd, decl, "xs")
    outs = fwd.run(decl.forward_graph, f_inputs)
    bwd = _Emitter(decl.trace_H, decl.trace_B, "b")
    b_inputs = _inputs(bwd, decl, "H")
    values = b_inputs + [bwd.load("dy[j] + dh[j]")]
    values += [bwd.load(f"dc[{k - 1} * ds + j]") for k in range(1, S)]
    grads = bwd.run(decl.backward_graph, values)

    # what the training forward keeps for the backward, sv [T,B,saved,H] (NULL in inference)
    saved = _saved(fwd, f_inputs, bwd, b_inputs)
    for k, (b, _) in enumerate(saved):
        bwd.stmts[b] = ("val", 0, f"const real {b} = sv[{k} * H + j];", [])
    decl.saved = len(saved)

    stores = [("y[j] = r[j] = {};", _store(outs[0], 1, f"state {decl.states[0]!r}")[0])]
    stores += [(f"cn[{k - 1} * ss + j] = {{}};", _store(outs[k], 1, repr(decl.states[k]))[0])
               for k in range(1, S)]
    kept = [(f"sv[{k} * H + j] = {{}};", f) for k, (_, f) in enumerate(saved)]
    forward = _FORWARD.format(body=fwd.code(stores, kept))

    stores, m = [], len(decl.inputs)
    # ∂L/∂G_x = ∂L/∂(product) where both enter the math only through their sum (LSTM, RNN):
    # then the kernel writes one array, which the caller passes as both (fastrnn.user.kernels)
    decl.shared_dgx = decl.recurrent and _store(grads[0], G, "gx") == _store(grads[1], G, "gh")
    for name, g in zip(decl.inputs[1:] if decl.shared_dgx else decl.inputs,
                       grads[1:] if decl.shared_dgx else grads):
        stores += [(f"d{name}[{q} * H + j] = {{}};", e) for q, e in enumerate(_store(g, G, name))]
    stores.append(("dh[j] = {};", _store(grads[m], 1, "h")[0]))
    stores += [(f"dc[{k - 1} * ds + j] = {{}};", _store(grads[m + k], 1, decl.states[k])[0])
               for k in range(1, S)]
    row = 0
    for (name, n), g in zip(decl.vectors, grads[m + S:]):
        if g is not None:
            stores += [(f"dv[{row + i} * H + j] += (double)({{}});", e)
                       for i, e in enumerate(_store(g, n, name))]
        row += n
    body = bwd.code(stores)
    backward = _BACKWARD.format(body=body)
    # a backward that reads no product (all it needs was kept in sv) lets the forward keep one
    # (a read of gh[, not the writes of dgh[)
    decl.keeps_products = decl.recurrent and re.search(r"(?<![A-Za-z0-9_])gh\[", body) is not None
    decl.scratch = max(fwd.scratch, bwd.scratch)
    head = _HEAD.format(name=decl.name, gates=G, states=S, vectors=max(decl.vector_rows, 1),
                        scratch=max(decl.scratch, 1), passes=fwd.passes(),
                        bpasses=bwd.passes(), recurrent=int(decl.recurrent),
                        saved=max(decl.saved, 1), keeps=int(decl.keeps_products))
    return head + forward + backward
