"""Profile a user's own model over sequence lengths: two copies of it, one on torch.nn's recurrent
layers and one on fastrnn's, timed forward and forward + backward at each T with interleaved
medians; the peak memory of a training step; and, in a separate instrumented run, each recurrent
layer's share of the time. The user's model is never modified. See `profile`."""
import copy
import ctypes
import gc
import statistics
import time

import torch
from torch.nn.utils.rnn import PackedSequence

from .. import modules
from .layer_clock import LayerClock, recurrent_layers, tensors
from .memory import status_mib
from .model_report import ModelProfile
from .timing import measure



def default_loss(output):
    """The sum of every floating-point tensor in the model's output (PackedSequence data too)."""
    parts = [t.sum() for t in tensors(output) if t.is_floating_point()]
    if not parts:
        raise ValueError("loss_fn: the model's output holds no floating-point tensor to sum; "
                         "pass loss_fn=")
    return sum(parts)


def _to(obj, device):
    if isinstance(obj, (torch.Tensor, PackedSequence)):
        return obj.to(device)
    if isinstance(obj, tuple):
        return tuple(_to(o, device) for o in obj)
    return obj


def _call(model, inp):
    """model(*inp) for a tuple of arguments, model(inp) for a tensor or a PackedSequence."""
    if isinstance(inp, tuple) and not isinstance(inp, PackedSequence):
        return model(*inp)
    return model(inp)


def _input(make_input, T, batch, device):
    inp = make_input(T, batch)
    if not isinstance(inp, (torch.Tensor, tuple)):
        raise TypeError(f"make_input: expected make_input(T, B) to return a tensor, a tuple or a "
                        f"PackedSequence, got {type(inp).__name__}")
    return inp if device is None else _to(inp, device)


class _Runner:
    """One copy of the model and the two calls the profile times on it."""

    def __init__(self, model, loss_fn):
        self.model, self.loss_fn = model, loss_fn

    def forward(self, inp):
        with torch.no_grad():
            return _call(self.model, inp)

    def step(self, inp):
        """One training step's forward and backward; the gradients are dropped after it."""
        loss = self.loss_fn(_call(self.model, inp))
        if not (isinstance(loss, torch.Tensor) and loss.numel() == 1):
            raise ValueError(f"loss_fn: expected a one-element tensor, got "
                             f"{type(loss).__name__}{list(getattr(loss, 'shape', []))}")
        loss.backward()
        self.model.zero_grad(set_to_none=True)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _trim():
    """Hand freed heap back to the system, so a step's peak shows pages it really touches."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the peak may be a little low
        pass


def peak_memory(fn, device):
    """(peak MiB, MiB added by the step) of one call of fn: on a GPU torch's peak allocation; on
    the CPU the process's peak resident memory with its high-water mark reset just before (Linux;
    None elsewhere)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
        return peak / 2**20, (peak - base) / 2**20
    _trim()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = status_mib("VmRSS")
    except OSError:
        return None, None
    fn()
    peak = status_mib("VmHWM")
    return peak, max(peak - base, 0.0)


def _breakdown(runner, inp, device, train, reps=3):
    """Median seconds per recurrent layer (forward, backward) and for the whole step, from an
    instrumented run of `reps` steps."""
    samples = []
    with LayerClock(runner.model, device) as clock:
        for _ in range(reps):
            clock.reset()
            t0 = clock.now()
            out = _call(runner.model, inp) if train else runner.forward(inp)
            t1 = clock.now()
            if train:
                runner.loss_fn(out).backward()
                runner.model.zero_grad(set_to_none=True)
            t2 = clock.now() if train else t1
            samples.append((dict(clock.forward), clock.backward() if train else {}, t1 - t0,
                            t2 - t1))
    med = statistics.median
    names = list(clock.layers)
    return dict(
        layers={n: {"forward_s": med(s[0].get(n, 0.0) for s in samples),
                    "backward_s": med(s[1].get(n, 0.0) for s in samples)} for n in names},
        forward_s=med(s[2] for s in samples), backward_s=med(s[3] for s in samples))


def profile(model, make_input, seq_lens=(16, 64, 256, 1024), batch=16, train=True, loss_fn=None,
            device=None, rounds=3, memory=True, breakdown=True, backend="auto", progress=None):
    """How the time and memory of `model` grow with sequence length, torch.nn beside fastrnn.

    model: a torch.nn.Module holding torch.nn or fastrnn recurrent layers (it is not modified:
        two copies are profiled). make_input(T, B): returns the model's input for sequence length
        T and batch B: a tensor, a tuple of arguments, or a PackedSequence. loss_fn(output): the
        scalar a training step differentiates (default: the sum of every floating-point tensor
        in the output). device: where the copies and inputs go (default: where the model is).
        train: also time forward + backward and measure its memory. rounds: interleaved rounds
        per median. memory, breakdown: measure peak memory / per-layer shares. progress: called
        with each T's rows.

    Returns a ModelProfile: `.rows` (one dict per T and implementation), `.to_json()`,
    `.markdown()`, `.plot(path)`.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not callable(make_input):
        raise TypeError(f"make_input: expected a callable make_input(T, B), got "
                        f"{type(make_input).__name__}")
    if not recurrent_layers(model):
        raise ValueError("model: holds no RNN, LSTM or GRU layer (nor cell) to compare")
    seq_lens = list(seq_lens)
    if not seq_lens or any(not isinstance(T, int) or T < 1 for T in seq_lens):
        raise ValueError(f"seq_lens: expected positive integers, got {seq_lens}")
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch: expected a positive integer, got {batch!r}")
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)
    loss_fn = loss_fn or default_loss
    copies = {"torch.nn": modules.convert(copy.deepcopy(model), to="torch"),
              "fastrnn": modules.convert(copy.deepcopy(model), backend=backend)}
    runners = {k: _Runner(m.to(device), loss_fn) for k, m in copies.items()}

    rows = []
    for T in seq_lens:
        inp = _input(make_input, T, batch, device)
        calls = {}
        for name, r in runners.items():
            calls[("forward", name)] = lambda r=r: (r.forward(inp), _sync(device))
            if train:
                calls[("train", name)] = lambda r=r: (r.step(inp), _sync(device))
        times = measure(calls, rounds=rounds)
        step_rows = []
        for name, r in runners.items():
            row = dict(T=T, impl=name, forward_s=times[("forward", name)],
                       train_s=times.get(("train", name)))
            if memory:
                row["peak_mib"], row["step_mib"] = peak_memory(
                    (lambda r=r: r.step(inp)) if train else (lambda r=r: r.forward(inp)), device)
            if breakdown:
                row["breakdown"] = _breakdown(r, inp, device, train)
            step_rows.append(row)
        rows += step_rows
        if progress:
            progress(step_rows)
    machine = _machine(device)
    config = dict(model=type(model).__name__, batch=batch, seq_lens=seq_lens, train=train,
                  device=str(device), backend=backend,
                  layers={n: repr(m) for n, m in recurrent_layers(model).items()})
    return ModelProfile(rows, config, machine)


def _machine(device):
    from .machine import describe
    info = describe()
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    info["measured at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return info

