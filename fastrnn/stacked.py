"""The multi-layer modules that are not torch.nn subclasses (fastrnn.LayerNormLSTM/GRU,
fastrnn.Recurrent): torch.nn.LSTM/GRU's constructor arguments and calls — batched, unbatched,
batch_first, PackedSequence, initial states — over a layer function their subclass gives."""
import math

import torch
from torch.nn.utils.rnn import PackedSequence

from . import _checks
from .modules import _unpack, stack_layers


class Stacked(torch.nn.Module):
    """A subclass sets STATES (the states' names, the output's first) and BACKENDS, registers its
    parameters per layer k and direction (suffix _l{k}, _l{k}_reverse; see `suffix`) and defines
    `_run(k, x, states, lengths) -> (y [T,B,H], new states)` for layer-direction k on x [T,B,I]
    with states [B,H] each and lengths [B] or None. `last_backend` is what the latest call's
    `_backend(x)` chose."""

    STATES = ("h",)
    BACKENDS = ("auto",)

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, backend="auto"):
        super().__init__()
        name = type(self).__name__
        for arg, v in (("input_size", input_size), ("hidden_size", hidden_size),
                       ("num_layers", num_layers)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: {arg}: expected a positive integer, got {v!r}")
        if not (isinstance(dropout, (int, float)) and 0 <= dropout <= 1):
            raise ValueError(f"{name}: dropout: expected a number in [0, 1], got {dropout!r}")
        _checks.choice("backend", backend, self.BACKENDS)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.backend, self.last_backend = bidirectional, backend, None

    def suffix(self, k):
        """The parameter names' suffix of layer-direction k: _l{layer}, _l{layer}_reverse."""
        layer, d = divmod(k, 2 if self.bidirectional else 1)
        return f"_l{layer}" + ("_reverse" if d else "")

    def suffixes(self):
        """(k, layer input size, suffix) for every layer-direction k."""
        D = 2 if self.bidirectional else 1
        for k in range(self.num_layers * D):
            I = self.input_size if k < D else D * self.hidden_size
            yield k, I, self.suffix(k)

    def reset_parameters(self):
        """Weights and biases uniform in ±1/sqrt(H), as torch.nn's; every other parameter as
        the subclass's `_reset(name, p)` says."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.startswith(("weight_", "bias_")):
                    p.uniform_(-bound, bound)
                else:
                    self._reset(name, p)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        for k, default in (("num_layers", 1), ("bias", True), ("batch_first", False),
                           ("dropout", 0.0), ("bidirectional", False)):
            if getattr(self, k) != default:
                s += f", {k}={getattr(self, k)}"
        return s + f", backend={self.backend!r}"

    def forward(self, input, hx=None):
        name = type(self).__name__
        D, H = 2 if self.bidirectional else 1, self.hidden_size
        packed = isinstance(input, PackedSequence)
        lengths = sorted_idx = unsorted_idx = rows = None
        if packed:
            data, batch_sizes, sorted_idx, unsorted_idx = input
            x, lengths, rows = _unpack(data, batch_sizes)
            batched = True
        else:
            if not isinstance(input, torch.Tensor):
                raise TypeError(f"{name}: input: expected a tensor or a PackedSequence, got "
                                f"{type(input).__name__}")
            if input.dim() not in (2, 3):
                raise ValueError(f"{name}: input: expected a 2D or 3D tensor, got "
                                 f"{input.dim()}D")
            batched = input.dim() == 3
            x = input if batched else input.unsqueeze(1)
            if batched and self.batch_first:
                x = x.transpose(0, 1)
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input: expected input_size {self.input_size} features, "
                             f"got {x.shape[-1]}")
        states = self._initial(hx, x, batched, name)
        if packed and sorted_idx is not None:
            states = [s.index_select(1, sorted_idx) for s in states]
        self.last_backend = self._backend(x)
        if self.num_layers == 1 and D == 1:  # (one layer: no stacking, 60 µs of a B = 1 call)
            x, finals = self._run(0, x, [s[0] for s in states], lengths)
            finals = [f[None] for f in finals]
        else:
            x, finals = self._stack(x, states, lengths)
        if packed:
            out = PackedSequence(x.reshape(-1, D * H).index_select(0, rows), batch_sizes,
                                 sorted_idx, unsorted_idx)
            if unsorted_idx is not None:
                finals = [s.index_select(1, unsorted_idx) for s in finals]
        else:
            out = x.transpose(0, 1) if batched and self.batch_first else x
            if not batched:
                out, finals = out.squeeze(1), [s.squeeze(1) for s in finals]
        return out, (finals[0] if len(finals) == 1 else tuple(finals))

    def _stack(self, x, states, lengths):
        """The layers over x [T,B,I] from states [L·D,B,H] each -> (output, final states)."""
        # stack_layers carries the first state and the others stacked [L·D, S−1, B, H]
        h0 = states[0]
        c0 = None if len(states) == 1 else torch.stack(states[1:], 1)

        def layer(k, xin, h, c):
            y, new = self._run(k, xin, [h] + ([] if c is None else list(c.unbind(0))), lengths)
            return y, new[0], None if c is None else torch.stack(new[1:])
        x, h_n, c_n = stack_layers(self, x, h0, c0, lengths, layer)
        return x, [h_n] + ([] if c_n is None else list(c_n.unbind(1)))

    def _initial(self, hx, x, batched, name):
        """The initial states [L·D,B,H] from hx as torch.nn takes it: one tensor for a
        one-state cell, else a tuple of one per state."""
        D, B, n = 2 if self.bidirectional else 1, x.shape[1], len(self.STATES)
        shape = (self.num_layers * D, B, self.hidden_size)
        if hx is None:
            return [x.new_zeros(shape) for _ in range(n)]
        if n > 1:
            if not (isinstance(hx, (tuple, list)) and len(hx) == n
                    and all(isinstance(t, torch.Tensor) for t in hx)):
                names = ", ".join(f"{s}_0" for s in self.STATES)
                raise TypeError(f"{name}: hx: expected a tuple of {n} tensors ({names}), got "
                                f"{type(hx).__name__}")
            given = list(hx)
        else:
            if not isinstance(hx, torch.Tensor):
                raise TypeError(f"{name}: hx: expected a tensor, got {type(hx).__name__}")
            given = [hx]
        out = []
        for label, s in zip(self.STATES, given):
            s = s if batched else s.unsqueeze(1)
            if tuple(s.shape) != shape:
                want = shape if batched else (shape[0], shape[2])
                got = tuple(s.shape) if batched else tuple(s.shape[:1]) + tuple(s.shape[2:])
                raise RuntimeError(f"{name}: {label}_0: expected shape {want}, got {got}")
            out.append(s.to(x.dtype))
        return out
