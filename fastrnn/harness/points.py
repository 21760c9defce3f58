"""A benchmark point (cell, shape, layers, dtype, device, pass) and the callables timed at it:
torch.nn's module (the baseline), fastrnn's module on each backend, and the GEMM floor.

Shape legend: T time, B batch, I input, H hidden, L layers, G = gates·H. Each callable runs one
forward (pass 'forward', under no_grad: inference) or one forward+backward (pass 'train'), and
synchronises CUDA before returning, so a timer around it measures the whole work.
"""
from dataclasses import asdict, dataclass

import torch

from .. import cells

# the kernels' cells by their C stems (rnn_tanh, rnn_relu, lstm, gru, ln_lstm, ln_gru; LSTMP is
# the LSTM with proj_size), with their gate counts
GATES = {stem: c.gates for c in cells.CELLS.values() if not c.projected
         for stem in dict.fromkeys(c.stems or (c.name,))}
CELLS = tuple(GATES)
LOOP = "per-step torch loop"  # what stands for torch.nn at cells it does not have (LayerNorm)
PASSES = ("forward", "train")
BASELINE, FLOOR = "torch.nn", "gemm floor"


@dataclass(frozen=True)
class Point:
    cell: str
    B: int
    T: int
    I: int
    H: int
    L: int = 1
    pass_: str = "train"
    dtype: str = "float32"
    device: str = "cpu"

    def label(self):
        layers = f" L={self.L}" if self.L > 1 else ""
        dtype = f" {self.dtype}" if self.dtype != "float32" else ""
        return (f"{self.cell} {self.pass_} T={self.T} B={self.B} I={self.I} H={self.H}{layers}"
                f"{dtype}")

    def asdict(self):
        return asdict(self)

    def flops(self):
        """The GEMM flops the algorithm must do: 2·T·B·G·(I_l + H) per layer forward (I_l = I for
        the first layer, H above); training adds dX, dW_ih, dW_hh and the per-step dh: 3×."""
        G = GATES[self.cell] * self.H
        fwd = sum(2 * self.T * self.B * G * ((self.I if l == 0 else self.H) + self.H)
                  for l in range(self.L))
        return 3 * fwd if self.pass_ == "train" else fwd


_TORCH = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn_tanh": torch.nn.RNN,
          "rnn_relu": torch.nn.RNN}


def make_module(p: Point, backend=None):
    """torch.nn's module for the point (backend None), or fastrnn's on `backend`. A LayerNorm
    cell's baseline is fastrnn's module on `eager`: its equations as a per-step torch loop, the
    way users write the cell without fastrnn."""
    from .. import layernorm, modules
    if p.cell.startswith("ln_"):
        cls = layernorm.LayerNormLSTM if p.cell == "ln_lstm" else layernorm.LayerNormGRU
        return cls(p.I, p.H, num_layers=p.L, backend=backend or "eager")
    kw = {"nonlinearity": p.cell[4:]} if p.cell.startswith("rnn") else {}
    cls = _TORCH[p.cell] if backend is None else getattr(modules, _TORCH[p.cell].__name__)
    if backend is not None:
        kw["backend"] = backend
    return cls(p.I, p.H, num_layers=p.L, **kw)


class Inputs:
    """Random inputs, output gradients and one set of weights for a point, shared by every
    candidate (each candidate's module loads the same state_dict)."""

    def __init__(self, p: Point, seed=0):
        g = torch.Generator().manual_seed(seed)
        dt, dev = getattr(torch, p.dtype), torch.device(p.device)

        def r(*s):
            return (torch.rand(*s, generator=g, dtype=torch.float64) * 2 - 1).to(dev, dt)

        torch.manual_seed(seed)
        self.p, self.train = p, p.pass_ == "train"
        self.state = make_module(p).to(dev, dt).state_dict()
        self.x = r(p.T, p.B, p.I).requires_grad_(self.train)
        self.h0, self.c0 = r(p.L, p.B, p.H), r(p.L, p.B, p.H)
        self.gy, self.gh, self.gc = r(p.T, p.B, p.H), r(p.L, p.B, p.H), r(p.L, p.B, p.H)

    def module(self, backend=None):
        m = make_module(self.p, backend).to(self.x.device, self.x.dtype)
        m.load_state_dict(self.state)
        return m.requires_grad_(self.train)


def _sync(p):
    if p.device.startswith("cuda"):
        torch.cuda.synchronize()


def module_call(inp, backend=None):
    """One forward (no_grad) or training step of torch.nn (backend None) or fastrnn: forward,
    backward and an SGD step that updates the weights in place, as real training does — so no
    kept copy of the weights (packed, widened) looks better here than it would there. The lr is
    small: the weights move, the timed work stays that of the same point. `call.module` is the
    module; `call.ran()` names what ran (fastrnn: its backend, and the native CPU variant)."""
    m, p = inp.module(backend), inp.p
    hx = (inp.h0, inp.c0) if p.cell in ("lstm", "ln_lstm") else inp.h0
    sgd = torch.optim.SGD(m.parameters(), lr=1e-6) if inp.train else None

    def call():
        if not inp.train:
            with torch.no_grad():
                m(inp.x, hx)
        else:
            inp.x.grad = None
            sgd.zero_grad(set_to_none=True)
            y, h = m(inp.x, hx)
            outs = [y, *h] if isinstance(h, tuple) else [y, h]
            torch.autograd.backward(outs, [inp.gy, inp.gh, inp.gc][:len(outs)])
            sgd.step()
        _sync(p)

    def ran():
        if backend is None:
            return LOOP if p.cell.startswith("ln_") else BASELINE
        from .. import dispatch
        variant = dispatch.cpu_variant() if m.last_backend == "native" else None
        return m.last_backend + (f" {variant}" if variant else "")
    call.module, call.ran = m, ran
    return call


def gemm_floor_calls(inp):
    """The matmuls the algorithm must do, alone, as a dict of callables by part, summed over
    layers: 'input projection' (one GEMM over T·B rows), 'recurrent products' (T per-step
    GEMMs), and for training 'backward recurrent products' (T per-step dh GEMMs) and 'weight
    gradients' (dX, dW_ih, dW_hh over T·B rows). Their sum is the floor."""
    p = inp.p
    T, B, H, G = p.T, p.B, p.H, GATES[p.cell] * p.H
    kw = dict(dtype=inp.x.dtype, device=inp.x.device)
    layers = []
    for l in range(p.L):
        I = p.I if l == 0 else H
        layers.append(dict(x=torch.rand(T * B, I, **kw), w_ih=inp.state[f"weight_ih_l{l}"],
                           w_hh=inp.state[f"weight_hh_l{l}"], gx=torch.empty(T * B, G, **kw),
                           dG=torch.rand(T * B, G, **kw), dx=torch.empty(T * B, I, **kw),
                           dW_ih=torch.empty(G, I, **kw), dW_hh=torch.empty(G, H, **kw)))
    h, a, dh = torch.rand(B, H, **kw), torch.empty(B, G, **kw), torch.empty(B, H, **kw)
    hs = torch.rand(T * B, H, **kw)

    def each(f):
        def call():
            for z in layers:
                f(z)
            _sync(p)
        return call

    def recurrent(z):
        for _ in range(T):
            torch.matmul(h, z["w_hh"].t(), out=a)

    def back_recurrent(z):
        for t in range(T):
            torch.matmul(z["dG"][t * B:(t + 1) * B], z["w_hh"], out=dh)

    def weights(z):
        torch.matmul(z["dG"], z["w_ih"], out=z["dx"])
        torch.matmul(z["dG"].t(), z["x"], out=z["dW_ih"])
        torch.matmul(z["dG"].t(), hs, out=z["dW_hh"])

    parts = {"input projection": each(lambda z: torch.matmul(z["x"], z["w_ih"].t(), out=z["gx"])),
             "recurrent products": each(recurrent)}
    if inp.train:
        parts |= {"backward recurrent products": each(back_recurrent),
                  "weight gradients": each(weights)}
    return parts


def floor_call(inp):
    parts = list(gemm_floor_calls(inp).values())

    def call():
        for f in parts:
            f()
    return call


def candidates(p: Point, backends, seed=0, engines=()):
    """{name: callable} for torch.nn, each fastrnn backend, the GEMM floor and, at forward points
    on the CPU, each inference engine in `engines` (see engines.py), on shared inputs."""
    inp = Inputs(p, seed)
    out = {BASELINE: module_call(inp)}
    out |= {b: module_call(inp, b) for b in backends}
    out[FLOOR] = floor_call(inp)
    if p.pass_ == "forward" and p.device == "cpu" and not p.cell.startswith("ln_"):
        from . import engines as engines_
        out |= engines_.calls(inp, engines)
    return out
