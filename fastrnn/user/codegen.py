"""C for a declared cell's step: its forward and its derivative, both traced as graphs of ATen ops
(fastrnn.user.declare), become the two row functions kernels/cpu/user_cell.h inlines into the
one loop.

Each traced value is a list of blocks of H units — G_x and the product have `gates` of them, a
state one, a declared vector [n,H] n — and each block one C scalar per unit j, so the generated
code is a single loop over a thread's units with one statement per op and block, which the
compiler vectorises. A value's batch dimension is implicit (the loop runs row by row); the
vectors' gradients, which torch sums over the batch, are each row's share there, added into a
per-row buffer and summed over the rows afterwards.
"""
import operator

import torch

aten = torch.ops.aten


class Unsupported(ValueError):
    """An op or a use of one the generated code cannot express."""


class _Value:
    """blocks: C expressions, one a block of H units; stacked: the blocks lie along a leading
    dimension ([n,H], a declared vector) rather than the last; batched: differs row to row;
    summed: summed over the batch (the loop computes each row's share); boolean: a mask."""

    def __init__(self, blocks, stacked=False, batched=True, summed=False, boolean=False):
        self.blocks, self.stacked, self.batched = list(blocks), stacked, batched
        self.summed, self.boolean = summed, boolean


def _lit(v):
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
    """Walks one graph, writing a C statement a block; `H` is the trace's hidden size."""

    def __init__(self, H, prefix):
        self.H, self.prefix, self.lines, self.count = H, prefix, [], 0

    def new(self, expr, boolean=False):
        name = f"{self.prefix}{self.count}"
        self.count += 1
        self.lines.append(f"    const {'int' if boolean else 'real'} {name} = {expr};")
        return name

    def blocks_of(self, node):
        """How many blocks of H node's value has: along its last dimension, or its leading
        one for a stacked [n,H] value."""
        shape = node.meta["val"].shape
        return shape[-1] // self.H if len(shape) else 1

    def run(self, graph, inputs):
        """Evaluates graph on inputs (a _Value per placeholder) -> the outputs' _Values."""
        env = {}
        placeholders = iter(inputs)
        for node in graph.nodes:
            if node.op == "placeholder":
                env[node] = next(placeholders)
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
            n = shape[0] if len(shape) == 2 and shape[0] != 1 else self.blocks_of(node)
            return _Value([_lit(value)] * max(n, 1), stacked=len(shape) == 2, batched=False)
        if packet in _UNARY:
            return self.elementwise(_UNARY[packet], [args[0]], packet in _BOOLEAN)
        if packet in ("add", "sub", "rsub") and kwargs.get("alpha", 1) != 1:
            args[1] = self.elementwise("({a} * {b})", [args[1], kwargs["alpha"]])
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
            return _Value(blocks, stacked=True, batched=g.batched, summed=g.summed)
        if packet == "cat":
            parts, dim = args[0], args[1] if len(args) > 1 else 0
            return self.cat(node, parts, dim)
        if packet in ("view", "_unsafe_view", "reshape", "expand", "squeeze", "unsqueeze",
                      "flatten"):
            return self.reshape(node, args[0])
        if packet == "sum" and len(args) > 1:
            return self.sum(node, args)
        if packet in ("mean", "sum", "var", "std"):
            raise Unsupported(f"a row reduction ({packet}) — not yet run by the generated "
                              f"kernels")
        raise Unsupported(f"aten.{packet}")

    def elementwise(self, template, operands, boolean=False):
        values = [o for o in operands if isinstance(o, _Value)]
        n = max(len(v.blocks) for v in values)
        for v in values:
            if len(v.blocks) not in (1, n):
                raise Unsupported("operands of different numbers of gate blocks")
        stacked = any(v.stacked for v in values) and not any(v.batched for v in values)
        summed = any(v.summed for v in values)
        if summed and not _linear(template, operands):
            raise Unsupported("a value summed over the batch used other than linearly")
        out = []
        for q in range(n):
            subs = {}
            for key, o in zip("abc", operands):
                if isinstance(o, _Value):
                    subs[key] = o.blocks[q if len(o.blocks) > 1 else 0]
                else:
                    subs[key] = _lit(o)
            out.append(self.new(template.format(**subs), boolean))
        return _Value(out, stacked, any(v.batched for v in values), summed, boolean)

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
            out.append(_Value(v.blocks[q:q + k], v.stacked, v.batched, v.summed, v.boolean))
            q += k
        return out

    def select(self, args):
        v, dim, index = args
        if not (v.stacked and dim == 0):
            raise Unsupported("indexing other than a declared vector's rows")
        return _Value([v.blocks[index]], batched=v.batched, summed=v.summed)

    def cat(self, node, parts, dim):
        ndim = len(node.meta["val"].shape)
        stacked = ndim == 2 and all(p.stacked for p in parts)
        if not stacked and dim % ndim != ndim - 1:
            raise Unsupported("cat along any dimension but the last")
        return _Value([b for p in parts for b in p.blocks], stacked,
                      any(p.batched for p in parts), any(p.summed for p in parts))

    def reshape(self, node, v):
        """A vector [n,H] as one row [n·H] (or back), a batch sum's [1,H] as [H], a vector
        broadcast over the batch: the blocks stay as they are."""
        shape = node.meta["val"].shape
        before = node.args[0].meta["val"].shape
        if shape[-1] % self.H or before[-1] % self.H:
            raise Unsupported("a reshape that splits a block of H units")
        stacked = len(shape) == 2 and not v.batched and shape[0] > 1 and shape[-1] == self.H
        return _Value(v.blocks, stacked, v.batched, v.summed, v.boolean)

    def sum(self, node, args):
        v, dims = args[0], args[1]
        ndim = len(node.args[0].meta["val"].shape)
        dims = [d % ndim for d in (dims if isinstance(dims, (list, tuple)) else [dims])]
        if dims == [0] and v.batched and ndim == 2:  # torch's sum over the broadcast batch
            return _Value(v.blocks, False, False, True)
        raise Unsupported("a row reduction (sum) — not yet run by the generated kernels")


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
    if template in (_BINARY["mul"], "({a} * {b})"):
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
    """The loads of a row's inputs: G_x, the product (+ b_hh), the states, the vectors."""
    G = decl.gates
    loads = [f"    const real gx{q} = gx[{q} * {gx_stride} + j];" for q in range(G)]
    loads += [f"    const real gh{q} = gh[{q} * H + j] + bh[{q} * H + j];" for q in range(G)]
    loads.append("    const real s0 = hp[j];")
    loads += [f"    const real s{k} = cp[{k - 1} * ss + j];" for k in range(1, len(decl.states))]
    loads += [f"    const real v{i} = v[{i} * H + j];" for i in range(decl.vector_rows)]
    values = [_Value([f"gx{q}" for q in range(G)]), _Value([f"gh{q}" for q in range(G)])]
    values += [_Value([f"s{k}"]) for k in range(len(decl.states))]
    row = 0
    for _, n in decl.vectors:
        values.append(_Value([f"v{row + i}" for i in range(n)], stacked=True, batched=False))
        row += n
    return loads, values


_HEAD = """/* Generated by fastrnn from the cell `{name}` (fastrnn.cell): its step and the step's
 * derivative as torch's autograd computes it; the loop is kernels/cpu/user_cell.h's. */
#define CELL_GATES {gates}
#define CELL_STATES {states}
#define CELL_VECTORS {vector_rows_or_1}
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
"""

_FORWARD = """
static inline __attribute__((always_inline)) void user_forward(
    int64_t j0, int64_t j1, int64_t H, const real *gx, int64_t xs, const real *gh,
    const real *bh, const real *hp, const real *cp, real *cn, int64_t ss, const real *v,
    real *r, real *y) {{
  #pragma omp simd
  for (int64_t j = j0; j < j1; j++) {{
{body}
  }}
}}
"""

_BACKWARD = """
static inline __attribute__((always_inline)) void user_backward(
    int64_t j0, int64_t j1, int64_t H, const real *gx, const real *gh, const real *bh,
    const real *hp, const real *cp, int64_t ss, const real *v, const real *dy, real *dh,
    real *dc, int64_t ds, real *dgx, real *dgh, real *dv) {{
  #pragma omp simd
  for (int64_t j = j0; j < j1; j++) {{
{body}
  }}
}}

#include "cpu/user_cell.h"
"""


def source(decl):
    """The C file of declared cell `decl` (fastrnn.user.declare.Cell): its traced forward and
    backward graphs as user_forward and user_backward, then user_cell.h."""
    G, S = decl.gates, len(decl.states)
    emit = _Emitter(decl.trace_H, "f")
    loads, values = _inputs(emit, decl, "xs")
    outs = emit.run(decl.forward_graph, values)
    body = loads + emit.lines
    h = _store(outs[0], 1, f"state {decl.states[0]!r}")[0]
    body.append(f"    y[j] = r[j] = {h};")
    for k in range(1, S):
        body.append(f"    cn[{k - 1} * ss + j] = {_store(outs[k], 1, repr(decl.states[k]))[0]};")
    forward = _FORWARD.format(body="\n".join(body))

    emit = _Emitter(decl.trace_H, "b")
    loads, values = _inputs(emit, decl, "H")
    loads.append("    const real d0 = dy[j] + dh[j];")
    loads += [f"    const real d{k} = dc[{k - 1} * ds + j];" for k in range(1, S)]
    values += [_Value([f"d{k}"]) for k in range(S)]
    grads = emit.run(decl.backward_graph, values)
    body = loads + emit.lines
    for name, g, out in (("gx", grads[0], "dgx"), ("gh", grads[1], "dgh")):
        body += [f"    {out}[{q} * H + j] = {e};" for q, e in enumerate(_store(g, G, name))]
    body.append(f"    dh[j] = {_store(grads[2], 1, 'h')[0]};")
    for k in range(1, S):
        body.append(f"    dc[{k - 1} * ds + j] = {_store(grads[2 + k], 1, decl.states[k])[0]};")
    row = 0
    for (name, n), g in zip(decl.vectors, grads[2 + S:]):
        if g is not None:
            body += [f"    dv[{row + i} * H + j] += {e};"
                     for i, e in enumerate(_store(g, n, name))]
        row += n
    backward = _BACKWARD.format(body="\n".join(body))
    head = _HEAD.format(name=decl.name, gates=G, states=S,
                        vector_rows_or_1=max(decl.vector_rows, 1))
    return head + forward + backward
