"""Every cell the kernels run, declared once: what its kernels take and give, in their order.

From a cell's description follow its C ABI (kernels/abi.py writes, when CMake configures, the
declarations of fastrnn_cells.h and the entry points, which check their arguments and call the
cell's implementation with them in one struct), its kernels' cffi declarations and calls on every
backend (fastrnn._native, the numba bindings), its custom ops with their schemas and fake
implementations, and the allocation of its outputs and scratch (fastrnn.autograd.CellOps). What
stays per cell is its math: the C description (kernels/cpu/<file>.c, whose loop is
kernels/cpu/loop.h, and its implementation functions), the numba and reference equations, and the
gradients that follow the kernels' BPTT (its `grads` function).

A cell's kernels take, after the sizes T, B, [I,] H[, R]:

    forward    x_in, *inputs, *states, *params, lengths   -> y, *states_n, *saved
    forward_x  x, w_ih, *x_biases, *states, *params, lengths -> the same (CPU: G_x inside)
    backward   dy, *dstates_n, *reads, *bparams, lengths  -> *grads

x_in is G_x = x W_ihᵀ + b (the built-in cells) or V = x W_ihᵀ (the LayerNorm cells, whose biases
are `inputs`); `_infer` forwards keep ring buffers (S = 2, Sg = 1 slots) instead of every step
(S = T + 1, Sg = T). Shapes are written in T, B, G (= gates·H), H and R (h's width: the
projection's, else H).
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    name: str               # fastrnn::<name>_forward, fastrnn_<stem>_forward_f32 (fastrnn_cells.h)
    gates: int              # G = gates·H columns of G_x, W_ih and W_hh
    states: tuple           # ("h",) or ("h", "c"): h [B,R], c [B,H]
    params: tuple           # after the states, e.g. ("w_hh",); a trailing "?": may be None
    saved: tuple            # ((name, shape), ...) what the forward keeps for the backward
    reads: tuple            # the saved buffers the backward reads, in its order
    bparams: tuple          # the params the backward reads
    grads: tuple            # ((name, shape), ...) what the backward returns
    inputs: tuple = ()      # the forward's arguments between x_in and the states
    x_biases: tuple = None  # forward_x's biases; None: the cell has no forward_x
    flag: str = None        # a bool argument choosing between two kernels, e.g. "relu"
    stems: tuple = None     # the kernels' stems for flag False, True (default: (name, name))
    projected: bool = False  # the kernels take R after H
    bf16: bool = False      # forward_x[_infer]_bf16 kernels: every argument and result bfloat16
    cuda: bool = False      # the CUDA library has its CUDA_KINDS
    doc: str = ""           # its equations and what its arrays mean, for the C header
    notes: tuple = ()       # ((argument, what it holds), ...) for the C header

    def stem(self, flag=False):
        return self.stems[bool(flag)] if self.stems else self.name

    @property
    def flags(self):
        return (self.flag,) if self.flag else ()

    def forward_args(self):
        """The op's (and the kernels') inputs after x_in, with their optional marks."""
        return (*self.inputs, *(s + "0" for s in self.states), *self.params, "lengths")

    def backward_args(self):
        return ("dy", *(f"d{s}_n" for s in self.states), *self.reads, *self.bparams,
                "lengths")

    def outputs(self):
        """The forward's results: y, the final states, the saved buffers (name, shape)."""
        return (("y", "T,B,R"), *((f"{s}_n", _STATE[s]) for s in self.states), *self.saved)

    def kinds(self):
        """The passes its CPU kernels have (fastrnn_<stem>_<kind>_f32)."""
        x = ("forward_x", "forward_x_infer") if self.x_biases is not None else ()
        bf16 = ("forward_x_bf16", "forward_x_infer_bf16") if self.bf16 else ()
        return (*CUDA_KINDS, *x, *bf16)

    def kernel_args(self, kind):
        """(sizes, arrays): the names of a kernel's arguments, in its C order."""
        sizes = ("T", "B", *(("I",) if kind.startswith("forward_x") else ()), "H",
                 *(("R",) if self.projected else ()))
        if kind == "backward":
            return sizes, (*self.backward_args(), *(g for g, _ in self.grads))
        first = ("x", "w_ih", *self.x_biases) if kind.startswith("forward_x") else ("x_in",)
        args = (*first, *self.forward_args(), *(o for o, _ in self.outputs()))
        return sizes, tuple(a.rstrip("?") for a in args)

    def declarations(self, cuda=False):
        """Its CPU (or CUDA) kernels' declarations for cffi (fastrnn._native), float32 names,
        every array an address (intptr_t)."""
        out = []
        for stem in dict.fromkeys(self.stems or (self.name,)):
            for kind in CUDA_KINDS if cuda else self.kinds():
                sizes, arrays = self.kernel_args(kind)
                args = [f"int64_t {n}" for n in sizes] + [f"intptr_t {n}" for n in arrays]
                out.append(f"int fastrnn_{stem}_{kind}_f32({', '.join(args)});\n")
        return "".join(out)


CUDA_KINDS = ("forward", "forward_infer", "backward")  # every cell has these; CUDA only these
_STATE = {"h": "B,R", "c": "B,H"}
# The shapes of the arguments the cells name (inputs, states, params, the backward's gradients).
SHAPES = {"x_in": "T,B,G", "x": "T,B,I", "w_ih": "G,I", "lengths": "B", "h0": "B,R",
          "c0": "B,H", "w_hh": "G,R", "w_hr": "R,H", "b_ih": "G", "b_hh": "G", "g_ih": "G", "g_hh": "G", "g_c": "H", "b_c": "H", "dy": "T,B,R",
          "dh_n": "B,R", "dc_n": "B,H"}


def _shapes(*pairs):
    return tuple(tuple(p.split(":")) for p in pairs)


RNN = Cell("rnn", 1, ("h",), ("w_hh",), _shapes("hs:S,B,H"), ("hs",), ("w_hh",),
           _shapes("dA:T,B,G", "dh0:B,H"), x_biases=("b_ih", "b_hh"), flag="relu",
           stems=("rnn_tanh", "rnn_relu"), bf16=True, cuda=True,
           doc="Elman RNN: h_t = f(G_x[t] + h_{t-1} W_hhᵀ), f = tanh or relu.",
           notes=(("x_in", "G_x = x W_ihᵀ + b_ih + b_hh"), ("hs", "h_0..h_T"),
                  ("dA", "∂L/∂(pre-activation) = ∂L/∂G_x")))
LSTM = Cell("lstm", 4, ("h", "c"), ("w_hh",), _shapes("gates:Sg,B,G", "cs:S,B,H", "hs:S,B,H"),
            ("gates", "cs"), ("w_hh",), _shapes("dA:T,B,G", "dh0:B,H", "dc0:B,H"),
            x_biases=("b_ih", "b_hh"), bf16=True, cuda=True,
            doc="LSTM: a_t = G_x[t] + h_{t-1} W_hhᵀ; c_t = σ(f) c_{t-1} + σ(i) tanh(g); "
                "h_t = σ(o) tanh(c_t).",
            notes=(("x_in", "G_x = x W_ihᵀ + b_ih + b_hh"), ("gates", "activated i, f, g, o"),
                   ("cs", "c_0..c_T"), ("hs", "h_0..h_T"), ("dA", "∂L/∂a_t = ∂L/∂G_x")))
LSTMP = Cell("lstmp", 4, ("h", "c"), ("w_hh", "w_hr"),
             _shapes("gates:Sg,B,G", "cs:S,B,H", "hs:S,B,R", "rs:Sg,B,H"), ("gates", "cs"),
             ("w_hh", "w_hr"), _shapes("dA:T,B,G", "dh0:B,R", "dc0:B,H", "du:T,B,R"),
             x_biases=("b_ih", "b_hh"), projected=True, cuda=True,
             doc="LSTMP, the LSTM with a projection: r_t = σ(o) tanh(c_t) [B,H] and h_t = r_t "
                 "W_hrᵀ [B,R], which is y_t and what the next step's W_hh [4H,R] multiplies; rs "
                 "keeps r_t for dW_hr. The backward returns each step's ∂L/∂h_t in du (zero past "
                 "a sequence's end): dW_hr = Σ_t du_tᵀ r_t.",
             notes=(("x_in", "G_x = x W_ihᵀ + b_ih + b_hh"), ("gates", "activated i, f, g, o"),
                    ("cs", "c_0..c_T"), ("hs", "h_0..h_T"), ("rs", "r_1..r_T"),
                    ("dA", "∂L/∂a_t = ∂L/∂G_x"), ("du", "∂L/∂h_t")))
GRU = Cell("gru", 3, ("h",), ("w_hh", "b_hh"), _shapes("gates:Sg,B,G", "a_n:Sg,B,H", "hs:S,B,H"),
           ("gates", "a_n", "hs"), ("w_hh",), _shapes("dGx:T,B,G", "dA_n:T,B,H", "dh0:B,H"),
           x_biases=("b_ih",), bf16=True, cuda=True,
           doc="GRU (torch's form): A = h_{t-1} W_hhᵀ + b_hh; r = σ(G_x,r + A_r); z = σ(G_x,z "
               "+ A_z); n = tanh(G_x,n + r A_n); h_t = (1-z) n + z h_{t-1}. Its b_hh belongs to "
               "A, so G_x = x W_ihᵀ + b_ih only. The backward's dA_n = dGx's n block × r (∂L/∂A's "
               "r and z blocks are dGx's: dW_hh = Σ_t dA_tᵀ h_{t-1}).",
           notes=(("x_in", "G_x = x W_ihᵀ + b_ih"), ("gates", "activated r, z, n"),
                  ("a_n", "A_n"), ("hs", "h_0..h_T"),
                  ("dGx", "∂L/∂G_x"), ("dA_n", "∂L/∂A_n")))
LN_LSTM = Cell("ln_lstm", 4, ("h", "c"), ("w_hh", "g_hh", "g_c", "b_c"),
               _shapes("gates:Sg,B,G", "nx:Sg,B,G", "rx:Sg,B", "nh:Sg,B,G", "rh:Sg,B",
                       "cs:S,B,H", "nc:Sg,B,H", "rc:Sg,B", "hs:S,B,H"),
               ("gates", "nx", "rx", "nh", "rh", "cs", "nc", "rc"),
               ("w_hh", "g_ih", "g_hh", "g_c", "b_c"),
               _shapes("dA:T,B,G", "dV:T,B,G", "dAh:T,B,G", "du:T,B,H", "dh0:B,H", "dc0:B,H"),
               inputs=("g_ih", "b_ih?", "b_hh?"), cuda=True,
               doc="LayerNorm LSTM (fastrnn.reference.ln_lstm_forward), LN(v; γ) = γ "
                   "(v − mean v) / sqrt(var v + 1e-5) over a whole row: a_t = LN(V_t; g_ih) + "
                   "LN(h_{t-1} W_hhᵀ; g_hh) + b_ih + b_hh, where x_in is V = x W_ihᵀ over all "
                   "T·B rows; c_t = σ(f) c_{t-1} + σ(i) tanh(g); h_t = σ(o) tanh(LN(c_t; g_c) + "
                   "b_c). The backward returns ∂L/∂a (dA: db = Σ dA, dg_ih = Σ dA ⊙ nx, dg_hh = "
                   "Σ dA ⊙ nh), ∂L/∂V (dV: dx = dV W_ih, dW_ih = Σ dVᵀ x), ∂L/∂(h_{t-1} W_hhᵀ) "
                   "(dAh: dW_hh = Σ_t dAh_tᵀ h_{t-1}) and ∂L/∂u, u = LN(c_t; g_c) + b_c (du: dg_c "
                   "= Σ du ⊙ nc, db_c = Σ du). Saved rows past a sequence's end are zero.",
               notes=(("x_in", "V = x W_ihᵀ"), ("gates", "activated i, f, g, o"),
                      ("nx", "the normalised V_t"),
                      ("rx", "its 1/σ"), ("nh", "the normalised h_{t-1} W_hhᵀ"),
                      ("rh", "its 1/σ"), ("cs", "c_0..c_T"), ("nc", "the normalised c_t"),
                      ("rc", "its 1/σ"), ("hs", "h_0..h_T")))
LN_GRU = Cell("ln_gru", 3, ("h",), ("w_hh", "g_hh", "b_hh?"),
              _shapes("gates:Sg,B,G", "a_n:Sg,B,H", "nx:Sg,B,G", "rx:Sg,B", "nh:Sg,B,G",
                      "rh:Sg,B", "hs:S,B,H"),
              ("gates", "a_n", "nx", "rx", "nh", "rh", "hs"), ("w_hh", "g_ih", "g_hh"),
              _shapes("dX:T,B,G", "dHh:T,B,G", "dV:T,B,G", "dAh:T,B,G", "dh0:B,H"),
              inputs=("g_ih", "b_ih?"), cuda=True,
              doc="LayerNorm GRU (fastrnn.reference.ln_gru_forward): x̂ = LN(V_t; "
                  "g_ih) + b_ih, where x_in is V = x W_ihᵀ over all T·B rows; ĥ = LN(h_{t-1} "
                  "W_hhᵀ; g_hh) + b_hh; r, z, n and h_t as the GRU's. The backward returns ∂L/∂x̂ "
                  "(dX: db_ih = Σ dX, dg_ih = Σ dX ⊙ nx), ∂L/∂ĥ (dHh: db_hh = Σ dHh, dg_hh = Σ "
                  "dHh ⊙ nh), ∂L/∂V (dV) and ∂L/∂(h_{t-1} W_hhᵀ) (dAh).",
              notes=(("x_in", "V = x W_ihᵀ"), ("gates", "activated r, z, n"), ("a_n", "ĥ_n"),
                     ("nx", "the normalised V_t"),
                     ("rx", "its 1/σ"), ("nh", "the normalised h_{t-1} W_hhᵀ"),
                     ("rh", "its 1/σ"), ("hs", "h_0..h_T")))

CELLS = {c.name: c for c in (RNN, LSTM, LSTMP, GRU, LN_LSTM, LN_GRU)}


DIMS = ("T", "B", "G", "H", "R", "S", "Sg")


def size(shape, **dims):
    """A shape written in the dimension names (e.g. "Sg,B,G") with their values -> a tuple."""
    return tuple(dims[d] for d in shape.split(","))


def sizes(shapes):
    """A function of DIMS giving the tuple of `shapes` (written as for size), generated once: a
    call's allocation runs it rather than interpreting the shapes (LSTM T = 32, B = 1, H = 64,
    no-grad: 15 µs a call)."""
    body = ", ".join(f"({s},)" for s in shapes)
    return eval(f"lambda {', '.join(DIMS)}: ({body},)")  # noqa: S307 (our own declarations)


def _product(shape, S, Sg):
    """A shape (as for size) as the code of its element count, S and Sg given."""
    return "*".join({"S": str(S), "Sg": str(Sg)}.get(d, d) for d in shape.split(","))


# The pointers the direct calls (fastrnn._direct_calls, fastrnn._step_grad) hold, by the names
# the descriptions use; a cell's forward_x takes those it names, in its order.
DIRECT = ("x", "w_ih", "b_ih", "b_hh", "h0", "c0", "w_hh", "lengths", "y", "h_n", "c_n")


def forward_x_call(cell):
    """(scratch_call, call, b_hh_read) for a cell's forward_x kernels without a projection,
    generated once from its description, each calling fn(T, B, I, H, ...) with the pointers of
    DIRECT the cell names, in its order (those it does not name are ignored), then its saved
    buffers. scratch_call(fn, scratch, size, T, B, I, H, G, *DIRECT), for a call without a
    backward, lays those buffers (two state slots, one gate slot) one after another in
    scratch(bytes), items of `size` bytes; call(fn, T, B, I, H, *DIRECT, saved) takes them as
    tensors. b_hh_read: the kernel reads b_hh whatever the module has (a parameter not marked
    optional, GRU's: zeros where there is none). One generated function a call: a B = 1 step
    is a few µs, and each Python call around it costs a tenth of one."""
    order = ", ".join(cell.kernel_args("forward_x")[1][:-len(cell.saved)])  # (then the saved)
    at, offsets = "0", []
    for _, shape in cell.saved:
        offsets.append(at)
        at = f"{at} + {_product(shape, 2, 1)}"
    saved = ", ".join(f"s + ({o}) * size" for o in offsets)
    code = (f"def scratch_call(fn, scratch, size, T, B, I, H, G, {', '.join(DIRECT)}):\n"
            f"    s = scratch(({at}) * size)\n"
            f"    return fn(T, B, I, H, {order}, {saved})\n"
            f"def call(fn, T, B, I, H, {', '.join(DIRECT)}, saved):\n"
            f"    return fn(T, B, I, H, {order}, "
            + "".join(f"saved[{k}].data_ptr(), " for k in range(len(cell.saved))) + ")\n")
    made = {}
    exec(code, made)  # noqa: S102 (our own declarations)
    return made["scratch_call"], made["call"], "b_hh" in cell.params


def backward_call(cell):
    """caller(fn, T, B, H, dy, dstates_n, saved, w_hh, lengths, grads) for a cell's backward
    kernel without a projection, generated once from its description: fn(T, B, H, ...) with dy,
    the final states' gradients (a tuple in the states' order), the saved buffers it reads
    (picked from the tensors `saved`, in the order of cell.saved), W_hh, lengths and its results
    (the tensors `grads` in the order of cell.grads; None: NULL, unwanted)."""
    names = [n for n, _ in cell.saved]
    reads = "".join(f"saved[{names.index(r)}].data_ptr(), " for r in cell.reads)
    results = ", ".join(f"0 if grads[{k}] is None else grads[{k}].data_ptr()"
                        for k in range(len(cell.grads)))
    assert cell.bparams == ("w_hh",), cell.name  # (the cells with a direct call)
    made = {}
    exec(f"def call(fn, T, B, H, dy, dstates_n, saved, w_hh, lengths, grads):\n"  # noqa: S102
         f"    return fn(T, B, H, dy, *dstates_n, {reads}w_hh, lengths, {results})\n", made)
    return made["call"]
