"""One random case of one layer, run three ways: fastrnn (any backend, any dtype), torch.nn, and
the float64 reference; each returns outputs, final states and every gradient, by name.

The loss is a random weighting of every output (y, h_n, c_n), so every gradient is exercised.
"""
import contextlib
import copy
import warnings
from dataclasses import dataclass

import numpy as np
import torch

import fastrnn.functional as Fr
from fastrnn import reference
from fastrnn._native_calls import CELLS

# the torch.nn cells by their kernels' stems, with their gate counts from the cell registry
GATES = {stem: cell.gates for stem, cell in CELLS.items()}
TORCH = {"rnn_tanh": torch.nn.RNN, "rnn_relu": torch.nn.RNN, "lstm": torch.nn.LSTM,
         "gru": torch.nn.GRU}


@dataclass
class Case:
    cell: str
    T: int
    B: int
    I: int
    H: int
    lengths: list = None
    bias: bool = True
    proj: int = 0
    seed: int = 0
    scale: float = 0.7  # weights uniform in ±scale

    def __post_init__(self):
        g = torch.Generator().manual_seed(self.seed)
        kw = dict(bias=self.bias)
        if self.cell.startswith("rnn"):
            kw["nonlinearity"] = self.cell[4:]
        if self.proj:
            kw["proj_size"] = self.proj
        torch.manual_seed(self.seed)
        self.module = TORCH[self.cell](self.I, self.H, **kw).double()
        with torch.no_grad():  # by default larger weights than torch's, so gates saturate
            for p in self.module.parameters():
                p.uniform_(-self.scale, self.scale, generator=g)
        P = self.proj or self.H
        r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
        self.x, self.h0, self.c0 = r(self.T, self.B, self.I), r(self.B, P), r(self.B, self.H)
        self.wy, self.wh, self.wc = r(self.T, self.B, P), r(self.B, P), r(self.B, self.H)
        if self.lengths is not None:  # the loss sees no padded output, as with packed sequences
            mask = torch.arange(self.T)[:, None] < torch.tensor(self.lengths)[None, :]
            self.wy = self.wy * mask[:, :, None]

    def params(self, dtype=torch.float64):
        names = ["weight_ih_l0", "weight_hh_l0"] + (["bias_ih_l0", "bias_hh_l0"] if self.bias else [])
        names += ["weight_hr_l0"] if self.proj else []
        return {n: getattr(self.module, n).detach().to(dtype) for n in names}

    def _grads(self, inputs, y, h_n, c_n):
        w = {k: getattr(self, k).to(y.device, y.dtype) for k in ("wy", "wh", "wc")}
        loss = (y * w["wy"]).sum() + (h_n * w["wh"]).sum()
        if c_n is not None:
            loss = loss + (c_n * w["wc"]).sum()
        grads = torch.autograd.grad(loss, list(inputs.values()))
        out = {"y": y, "h_n": h_n} | ({"c_n": c_n} if c_n is not None else {})
        out |= {"d" + k: g for k, g in zip(inputs, grads)}
        return {k: v.detach().double().cpu().numpy() for k, v in out.items()}

    def run_fastrnn(self, backend, dtype=torch.float64, device="cpu"):
        p = {k: v.to(device) for k, v in self.params(dtype).items()}
        inputs = {"x": self.x.to(device, dtype), "h0": self.h0.to(device, dtype)}
        if self.cell == "lstm":
            inputs["c0"] = self.c0.to(device, dtype)
        inputs |= p
        for t in inputs.values():
            t.requires_grad_(True)
        w = [p["weight_ih_l0"], p["weight_hh_l0"], p.get("bias_ih_l0"), p.get("bias_hh_l0")]
        x, h0 = inputs["x"], inputs["h0"]
        c_n = None
        if self.cell == "lstm":
            y, (h_n, c_n) = Fr.lstm(x, (h0, inputs["c0"]), *w, w_hr=p.get("weight_hr_l0"),
                                    lengths=self.lengths, backend=backend)
        elif self.cell == "gru":
            y, h_n = Fr.gru(x, h0, *w, lengths=self.lengths, backend=backend)
        else:
            y, h_n = Fr.rnn(x, h0, *w, nonlinearity=self.cell[4:], lengths=self.lengths,
                            backend=backend)
        return self._grads(inputs, y, h_n, c_n)

    def run_torch(self, dtype=torch.float32, device="cpu"):
        m = copy.deepcopy(self.module).to(device, dtype)
        inputs = {"x": self.x.to(device, dtype).requires_grad_(True),
                  "h0": self.h0.to(device, dtype).requires_grad_(True)}
        if self.cell == "lstm":
            inputs["c0"] = self.c0.to(device, dtype).requires_grad_(True)
        inputs |= dict(m.named_parameters())
        x = inputs["x"]
        if self.lengths is not None:
            x = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(self.lengths),
                                                        enforce_sorted=False)
        hx = (inputs["h0"][None], inputs["c0"][None]) if self.cell == "lstm" else inputs["h0"][None]
        y, hn = m(x, hx)
        if self.lengths is not None:
            y = torch.nn.utils.rnn.pad_packed_sequence(y, total_length=self.T)[0]
        h_n, c_n = (hn[0][0], hn[1][0]) if self.cell == "lstm" else (hn[0], None)
        return self._grads(inputs, y, h_n, c_n)

    def run_reference(self):
        p = {k: v.numpy() for k, v in self.params().items()}
        W = (p["weight_ih_l0"], p["weight_hh_l0"])
        zeros = np.zeros(W[0].shape[0])
        b = (p.get("bias_ih_l0", zeros), p.get("bias_hh_l0", zeros))
        x, h0, c0 = self.x.numpy(), self.h0.numpy(), self.c0.numpy()
        wy, wh, wc = self.wy.numpy(), self.wh.numpy(), self.wc.numpy()
        out = {}
        if self.cell == "lstm":
            y, (h_n, c_n), cache = reference.lstm_forward(x, h0, c0, *W, *b, p.get("weight_hr_l0"),
                                                          self.lengths)
            g = reference.lstm_backward(wy, wh, wc, cache)
            out["c_n"], out["dc0"] = c_n, g["c0"]
        elif self.cell == "gru":
            y, h_n, cache = reference.gru_forward(x, h0, *W, *b, self.lengths)
            g = reference.gru_backward(wy, wh, cache)
        else:
            y, h_n, cache = reference.rnn_forward(x, h0, *W, *b, self.cell[4:], self.lengths)
            g = reference.rnn_backward(wy, wh, cache)
        out |= {"y": y, "h_n": h_n, "dx": g["x"], "dh0": g["h0"], "dweight_ih_l0": g["W_xh"],
                "dweight_hh_l0": g["W_hh"]}
        if self.bias:
            out |= {"dbias_ih_l0": g["b_xh"], "dbias_hh_l0": g["b_hh"]}
        if self.proj:
            out["dweight_hr_l0"] = g["W_hr"]
        return out


def rel_err(a, b):
    """‖a − b‖ / ‖b‖ (the plain difference when b is zero)."""
    d, n = np.linalg.norm(a - b), np.linalg.norm(b)
    return d / n if n > 0 else d


FLOOR32 = 8 * 2.0**-24


def float32_limit(nn_err):
    """The largest float32 error allowed, given torch.nn's own float32 error on the same inputs
    (both against a float64 result): twice torch.nn's, plus a floor of 8 float32 units of
    roundoff (8·2⁻²⁴ ≈ 4.8e-7) for tensors where torch.nn's error is by chance near zero; and
    at most 1e-5 wherever torch.nn itself stays within 1e-5 (deep ReLU stacks can have gradients
    so ill-conditioned that torch.nn's own float32 error passes 1e-5)."""
    limit = 2 * nn_err + FLOOR32
    return min(limit, 1e-5) if nn_err <= 1e-5 else limit


def torch_nn_runs_in_bfloat16(mode, how="autocast"):
    """Whether torch.nn's `mode` runs in bfloat16 on this CPU, under autocast (how="autocast") or
    as a bfloat16 module (how="bfloat16"). Its LSTM cannot where oneDNN has no bfloat16 LSTM
    (fastrnn.harness.baseline: CPUs without AVX-512, or ONEDNN_MAX_CPU_ISA=AVX2); the test then
    warns that torch.nn could not run and judges fastrnn against the float64 reference alone
    (within_bfloat16_rounding)."""
    from fastrnn.harness import baseline
    if mode != "LSTM" or baseline.lstm_runs(how):  # (the cells run on ATen)
        return True
    warnings.warn(f"torch.nn's {mode} cannot run in bfloat16 ({how}) on this CPU (oneDNN has no "
                  "bfloat16 LSTM here): fastrnn judged against the float64 reference alone")
    return False


def within_bfloat16_rounding(ours, want, limit=1e-2):
    """Each tensor of `ours` within bfloat16's rounding of the float64 `want` at its place:
    max |a − b| / max |b| ≤ limit (1e-2 for float32 modules under autocast; a bfloat16 module's
    parameters and gradients are bfloat16 too, and torch.nn's own error there reaches 1.7e-2 —
    2-layer bidirectional LSTM, H = 32, Zen 3 — so its tests give 2e-2)."""
    assert len(ours) == len(want)
    for k, (a, b) in enumerate(zip(ours, want)):
        err = (a.double() - b.double()).abs().max() / b.double().abs().max()
        assert err <= limit, f"tensor {k}: max |a - b| / max |b| = {err:.3g} > {limit}"


# The CUDA suite's shapes. The large ones have weights of ±1/√H: with ±0.7 at T=50, H=256 the
# recurrence is chaotic and torch.nn's own float32 result is off by O(1), which no kernel can
# match (tests/test_cuda_harness.py checks these stay tame, on the CPU).
CUDA_SHAPES = [dict(T=1, B=1, I=1, H=1), dict(T=7, B=5, I=3, H=17, lengths=[7, 1, 4, 7, 2]),
               dict(T=20, B=3, I=8, H=33, bias=False),
               dict(T=50, B=64, I=128, H=256, scale=256**-0.5),
               dict(T=9, B=2, I=4, H=300, lengths=[9, 5], scale=300**-0.5),
               dict(T=16, B=1, I=32, H=1024, scale=1024**-0.5)]
# The LSTM with a projection (LSTMP) on the same kinds of shapes; every (cell, kw) of the suite.
CUDA_PROJECTED = [dict(T=7, B=5, I=3, H=17, proj=5, lengths=[7, 1, 4, 7, 2]),
                  dict(T=50, B=64, I=128, H=256, proj=64, scale=256**-0.5),
                  dict(T=16, B=1, I=32, H=1024, proj=256, scale=1024**-0.5)]
CUDA_CASES = ([(c, kw) for c in GATES for kw in CUDA_SHAPES]
              + [("lstm", kw) for kw in CUDA_PROJECTED])
CUDA_IDS = [f"{c}-T{k['T']}B{k['B']}H{k['H']}{'P%d' % k['proj'] if 'proj' in k else ''}"
            for c, k in CUDA_CASES]


@contextlib.contextmanager
def ieee_float32():
    """Plain float32 (no TF32) in cuDNN's RNNs and cuBLAS's matmuls, set and restored through
    torch's `fp32_precision` settings only: mixing them with the legacy `allow_tf32` flags makes
    torch >= 2.9 raise whenever a flag is read afterwards."""
    flags = [torch.backends.cudnn.rnn, torch.backends.cuda.matmul]
    old = [f.fp32_precision for f in flags]
    for f in flags:
        f.fp32_precision = "ieee"
    try:
        yield
    finally:
        for f, value in zip(flags, old):
            f.fp32_precision = value
