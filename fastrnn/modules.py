"""Drop-in modules: fastrnn.RNN / LSTM / GRU and RNNCell / LSTMCell / GRUCell.

Each is a subclass of its torch.nn class: the same constructor arguments (plus `backend`), the
same parameters, names, shapes, gate order and initialisation, so state_dicts load both ways
and `isinstance(m, torch.nn.LSTM)` holds. Only forward differs: it runs fastrnn.functional.

    textbook     torch.nn / fastrnn parameter
    W_xh         weight_ih_l{k}[_reverse]     [G·H, I] for layer 0, [G·H, D·H_out] above
    W_hh         weight_hh_l{k}[_reverse]     [G·H, H_out]
    b_xh, b_hh   bias_ih_l{k}, bias_hh_l{k}   [G·H]
    W_hr         weight_hr_l{k}               [P, H] (LSTM with proj_size = P; H_out = P)

G = 1 (RNN), 4 (LSTM: i, f, g, o), 3 (GRU: r, z, n); D = 2 when bidirectional.
`backend` ('auto' or a name from fastrnn.backends()) is resolved per call from the input's
device and dtype; `last_backend` says which backend the last forward ran on.
"""
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import PackedSequence

from . import _checks, _direct_calls, dispatch, functional, routes


def _reverse(x, lengths):
    """Each sequence of x [T,B,*] reversed within its own length (lengths [B] or None)."""
    if lengths is None:
        return x.flip(0)
    T = x.shape[0]
    t = torch.arange(T, device=x.device)[:, None]
    n = lengths.to(x.device)[None, :]
    idx = torch.where(t < n, n - 1 - t, t)  # an involution: applying it twice is the identity
    return x.gather(0, idx[:, :, None].expand_as(x))


def _unpack(data, batch_sizes):
    """A packed batch's data [N,I] (batch_sizes [T], sorted by length) as x [T,B,I], zero past each
    sequence's end, with lengths [B] and rows [N], the flat indices into [T·B] of the packed rows
    (their order: time-major, each step a prefix of the batch). One index copy, where
    pad_packed_sequence copies step by step (T copies forward, T more in backward: 6 of a GRU's
    100 ms training step at T = 200)."""
    T, B = batch_sizes.shape[0], int(batch_sizes[0])
    live = torch.arange(B)[None, :] < batch_sizes[:, None]  # [T,B]: (t, b) still running
    rows = live.reshape(-1).nonzero().squeeze(1).to(data.device)
    x = data.new_zeros(T * B, data.shape[1]).index_copy(0, rows, data).view(T, B, -1)
    return x, live.sum(0).to(data.device), rows


def stack_layers(module, x, h0, c0, lengths, layer):
    """A multi-layer, maybe bidirectional stack over x [T,B,I]: layer(k, x_k, h0[k], c0[k]) ->
    (y, h, c) runs layer-direction k (c0, c None without a cell state); the reverse direction
    sees each sequence reversed within its length; dropout between layers in training.
    -> (output [T,B,D·H], h_n [L·D,B,H], c_n or None)."""
    D = 2 if module.bidirectional else 1
    h_n, c_n = [], []
    for layer_index in range(module.num_layers):
        outs = []
        for d in range(D):
            k = layer_index * D + d
            xin = x if d == 0 else _reverse(x, lengths)
            y, h, c = layer(k, xin, h0[k], None if c0 is None else c0[k])
            outs.append(y if d == 0 else _reverse(y, lengths))
            h_n.append(h)
            c_n.append(c)
        x = outs[0] if D == 1 else torch.cat(outs, 2)
        if module.dropout and module.training and layer_index < module.num_layers - 1:
            x = F.dropout(x, module.dropout, training=True)
    stack = (lambda ts: ts[0][None]) if len(h_n) == 1 else torch.stack  # (a view is cheaper)
    return x, stack(h_n), None if c0 is None else stack(c_n)


def _autocast_dtype(module, x):
    """The dtype torch.nn's module returns for float32 input under autocast, or None where it
    returns float32: autocast lowers the ops of LSTM, RNN and RNNCell, not those of GRU or the
    LSTM and GRU cells. fastrnn keeps float32 state and sums either way, multiplies in bfloat16
    where torch.nn does (dispatch.bf16_products), and returns the dtype torch.nn returns."""
    device = x.device.type
    if (x.dtype == torch.float32 and torch.is_autocast_enabled(device)
            and isinstance(module, (torch.nn.LSTM, torch.nn.RNN, torch.nn.RNNCell))):
        return torch.get_autocast_dtype(device)
    return None


def _hx(module, hx):
    """hx as torch.nn takes it — a tuple (h_0, c_0) for an LSTM or LSTM cell (a list too, made
    a tuple here), else one tensor — or a TypeError naming it (a tensor given to an LSTM would
    otherwise unpack along its first dimension)."""
    if isinstance(module, (torch.nn.LSTM, torch.nn.LSTMCell)):
        # (two isinstance calls: a generator over hx cost 1 µs, 5 % of a B = 1 cell step)
        if not (isinstance(hx, (tuple, list)) and len(hx) == 2
                and isinstance(hx[0], torch.Tensor) and isinstance(hx[1], torch.Tensor)):
            raise TypeError(f"{type(module).__name__}: hx: expected a tuple of two tensors "
                            f"(h_0, c_0), got {type(hx).__name__}")
        return hx if type(hx) is tuple else tuple(hx)
    if not isinstance(hx, torch.Tensor):
        raise TypeError(f"{type(module).__name__}: hx: expected a tensor, got "
                        f"{type(hx).__name__}")
    return hx


def _cast(out, dtype):
    """out (tensors, tuples of them, a PackedSequence) with its floating-point tensors in dtype."""
    if isinstance(out, PackedSequence):
        return PackedSequence(out.data.to(dtype), out.batch_sizes, out.sorted_indices,
                              out.unsorted_indices)
    if isinstance(out, tuple):
        return tuple(_cast(o, dtype) for o in out)
    return out.to(dtype)


class _Recurrent:
    """forward for the multi-layer modules; subclasses give `_layer` for their cell."""

    def __init__(self, *args, backend="auto", **kwargs):
        super().__init__(*args, **kwargs)
        self.backend = backend
        self.last_backend = None

    def extra_repr(self):
        return super().extra_repr() + f", backend={self.backend!r}"

    def _weights(self, k):
        """w_ih, w_hh, b_ih, b_hh, w_hr of layer-direction k (None where absent), from the list
        torch.nn's own forward reads (kept current when a parameter is replaced or moved):
        per layer-direction w_ih, w_hh[, b_ih, b_hh][, w_hr]. A getattr per name cost 4 µs."""
        n = len(self._all_weights[k])
        w = self._flat_weights[k * n:(k + 1) * n]
        b = w[2:4] if self.bias else [None, None]
        return [w[0], w[1], *b, w[-1] if getattr(self, "proj_size", 0) else None]

    def forward(self, input, hx=None):
        if hx is not None:
            hx = _hx(self, hx)
        packed = isinstance(input, PackedSequence)
        low = _autocast_dtype(self, input.data if packed else input)
        route = routes.choose("module", self.backend, input, module=self, low=low)
        if route == "direct":  # without gradients, straight to the kernels
            out = _direct_calls.forward(self, input, hx, low)
            if out is not None:
                return out
        elif route == "onnx":  # torch.nn's forward exports as the standard ONNX LSTM/GRU/RNN node
            self.__dict__["last_backend"] = "onnx"
            return super().forward(input, hx)
        sorted_idx = unsorted_idx = lengths = rows = None
        if packed:
            data, batch_sizes, sorted_idx, unsorted_idx = input
            x, lengths, rows = _unpack(data, batch_sizes)  # in sorted order
            batched, check_input = True, data
            if hx is not None:
                hx = self.permute_hidden(hx, sorted_idx)
        else:
            if input.dim() not in (2, 3):
                raise ValueError(f"{type(self).__name__}: expected input to be 2D or 3D, got "
                                 f"{input.dim()}D tensor")
            batched, batch_sizes = input.dim() == 3, None
            check_input = input if batched else input.unsqueeze(0 if self.batch_first else 1)
            x = check_input.transpose(0, 1) if self.batch_first else check_input
            if hx is not None and not batched:
                hx = tuple(h.unsqueeze(1) for h in hx) if isinstance(hx, tuple) else hx.unsqueeze(1)
        hx = self._initial_state(hx, x)
        self.check_forward_args(check_input, hx, batch_sizes)
        with dispatch.bf16_products(low == torch.bfloat16):
            out = self._forward(x, hx, lengths, batched, packed and (rows, batch_sizes),
                                sorted_idx, unsorted_idx)
        return out if low is None else _cast(out, low)

    def _forward(self, x, hx, lengths, batched, packed, sorted_idx, unsorted_idx):
        """packed: False, or the input's (rows, batch_sizes) (see _unpack)."""
        out, h_n = self._layers(x, hx, lengths)
        if self.batch_first and batched and not packed:
            out = out.transpose(0, 1)
        if packed:
            rows, batch_sizes = packed
            data = out.reshape(-1, out.shape[2]).index_select(0, rows)
            out = PackedSequence(data, batch_sizes, sorted_idx, unsorted_idx)
            return out, self.permute_hidden(h_n, unsorted_idx)
        if not batched:
            out = out.squeeze(1)
            h_n = tuple(h.squeeze(1) for h in h_n) if isinstance(h_n, tuple) else h_n.squeeze(1)
        return out, h_n

    def _initial_state(self, hx, x):
        D = 2 if self.bidirectional else 1
        H_out = getattr(self, "proj_size", 0) or self.hidden_size
        h0 = x.new_zeros(self.num_layers * D, x.shape[1], H_out)
        if self.mode == "LSTM":
            c0 = x.new_zeros(self.num_layers * D, x.shape[1], self.hidden_size)
            return (h0, c0) if hx is None else hx
        return h0 if hx is None else hx

    def _layers(self, x, hx, lengths):
        lstm = self.mode == "LSTM"
        h0, c0 = hx if lstm else (hx, None)
        # (through __dict__: nn.Module's setattr is slow)
        self.__dict__["last_backend"] = functional.resolve_backend(x, self.backend)
        x, h_n, c_n = stack_layers(self, x, h0, c0, lengths, lambda k, xin, h, c: self._layer(
            xin, h, c, self._weights(k), lengths))
        return x, ((h_n, c_n) if lstm else h_n)


class RNN(_Recurrent, torch.nn.RNN):
    """torch.nn.RNN on fastrnn's kernels: h_t = f(W_xh x_t + b_xh + W_hh h_{t-1} + b_hh)."""

    def _layer(self, x, h0, c0, w, lengths):
        y, h = functional.rnn(x, h0, *w[:4], nonlinearity=self.nonlinearity, lengths=lengths,
                              backend=self.backend)
        return y, h, None


class LSTM(_Recurrent, torch.nn.LSTM):
    """torch.nn.LSTM on fastrnn's kernels (with proj_size > 0, LSTMP)."""

    def _layer(self, x, h0, c0, w, lengths):
        y, (h, c) = functional.lstm(x, (h0, c0), *w, lengths=lengths, backend=self.backend)
        return y, h, c


class GRU(_Recurrent, torch.nn.GRU):
    """torch.nn.GRU on fastrnn's kernels (torch's form: r multiplies W_hn h + b_hn)."""

    def _layer(self, x, h0, c0, w, lengths):
        y, h = functional.gru(x, h0, *w[:4], lengths=lengths, backend=self.backend)
        return y, h, None


class _Cell:
    """forward for the cells: one step is a sequence of length one."""

    def __init__(self, *args, backend="auto", **kwargs):
        super().__init__(*args, **kwargs)
        self.backend = backend
        self.last_backend = None

    def extra_repr(self):
        return super().extra_repr() + f", backend={self.backend!r}"

    def forward(self, input, hx=None):
        if hx is not None:
            hx = _hx(self, hx)
        route = routes.choose("cell", self.backend, input, module=self, hx=hx)
        if route in ("direct", "step"):  # straight to the kernel
            out = _direct_calls.step(self, input, hx, route == "step")
            if out is not None:
                return out
        elif route == "onnx":  # torch.nn's cell exports as standard ONNX ops
            self.__dict__["last_backend"] = "onnx"
            return super().forward(input, hx)
        if input.dim() not in (1, 2):
            raise ValueError(f"{type(self).__name__}: expected input to be 1D or 2D, got "
                             f"{input.dim()}D instead")
        batched = input.dim() == 2
        x = (input if batched else input.unsqueeze(0)).unsqueeze(0)
        if hx is not None and not batched:
            hx = tuple(h.unsqueeze(0) for h in hx) if isinstance(hx, tuple) else hx.unsqueeze(0)
        self.__dict__["last_backend"] = functional.resolve_backend(x, self.backend)
        w = (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        out = self._step(x, hx, w)
        if not batched:
            out = tuple(h.squeeze(0) for h in out) if isinstance(out, tuple) else out.squeeze(0)
        low = _autocast_dtype(self, x)
        return out if low is None else _cast(out, low)


class RNNCell(_Cell, torch.nn.RNNCell):
    """torch.nn.RNNCell on fastrnn's kernels."""

    def _step(self, x, hx, w):
        return functional.rnn(x, hx, *w, nonlinearity=self.nonlinearity, backend=self.backend)[1]


class LSTMCell(_Cell, torch.nn.LSTMCell):
    """torch.nn.LSTMCell on fastrnn's kernels; returns (h', c')."""

    def _step(self, x, hx, w):
        return functional.lstm(x, hx, *w, backend=self.backend)[1]


class GRUCell(_Cell, torch.nn.GRUCell):
    """torch.nn.GRUCell on fastrnn's kernels."""

    def _step(self, x, hx, w):
        return functional.gru(x, hx, *w, backend=self.backend)[1]


_SWAPS = {torch.nn.RNN: RNN, torch.nn.LSTM: LSTM, torch.nn.GRU: GRU, torch.nn.RNNCell: RNNCell,
          torch.nn.LSTMCell: LSTMCell, torch.nn.GRUCell: GRUCell}


def convert(model, backend="auto", to="fastrnn"):
    """Turn every torch.nn RNN/LSTM/GRU (and cell) inside `model` into its fastrnn twin, in place;
    with to="torch", every fastrnn one back into torch.nn's.

    The modules keep their parameters (the very same tensors, so an optimizer built before still
    holds them), device, dtype, hooks and training mode: the fastrnn classes add no state but
    `backend`, so the conversion is a change of class. Returns `model`.
    """
    _checks.choice("to", to, ("fastrnn", "torch"))
    swaps = _SWAPS if to == "fastrnn" else {v: k for k, v in _SWAPS.items()}
    for m in model.modules():
        cls = swaps.get(type(m))
        if cls is None:
            continue
        m.__class__ = cls
        if to == "fastrnn":
            m.backend, m.last_backend = backend, None
        else:
            m.__dict__.pop("backend", None)
            m.__dict__.pop("last_backend", None)
    return model
