"""Argument checks with errors that name the argument, the expected and the actual value."""
import functools

import torch


def tensor(name, t, shape, like=None):
    """`t` must be a tensor of `shape` (a tuple; None = any size), with `like`'s dtype and device.
    (Called several times per layer call: the common case is a few comparisons.)"""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.shape != shape and (t.dim() != len(shape) or any(
            s is not None and s != a for s, a in zip(shape, t.shape))):
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"{name}: expected shape {want}, got {list(t.shape)}")
    if like is not None and t.dtype != like.dtype:
        raise TypeError(f"{name}: expected dtype {like.dtype} (the input's), got {t.dtype}")
    if like is not None and t.device != like.device:
        raise ValueError(f"{name}: expected device {like.device} (the input's), got {t.device}")
    return t


def lengths(values, T, B, device):
    """Sequence lengths as an int64 tensor [B] on `device`, each in 0..T. Values given on the
    CPU (a list, or a tensor as pack_padded_sequence wants them) are checked there, before the
    copy; values already on a GPU are checked there without a host synchronisation (a bad one
    fails at the next synchronisation, as torch's device-side asserts do). Inside
    torch.compile they are not checked: reading them would break the graph."""
    n = torch.as_tensor(values)
    if n.dtype != torch.int64:
        n = n.to(torch.int64)
    if n.shape != (B,):
        raise ValueError(f"lengths: expected shape [{B}] (one per sequence), got {list(n.shape)}")
    if B and not torch.compiler.is_compiling():
        if n.device.type == "cpu":
            lo, hi = torch.aminmax(n)
            if lo < 0 or hi > T:
                raise ValueError(f"lengths: expected values in 0..{T} (the sequence length), "
                                 f"got min {int(lo)}, max {int(hi)}")
        else:
            torch._assert_async(((n >= 0) & (n <= T)).all())
    return n.to(device, non_blocking=True).contiguous()


def choice(name, value, options):
    if value not in options:
        raise ValueError(f"{name}: expected one of {options}, got {value!r}")
    return value


def full_lengths(T, B, device):
    """Every sequence runs all T steps: [T]*B as an int64 tensor on `device`. Outside a traced
    graph the tensor is reused from call to call (the kernels only read it)."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return torch.full((B,), T, dtype=torch.int64, device=device)
    return full_lengths_kept(T, B, device)


@functools.lru_cache(maxsize=64)
def full_lengths_kept(T, B, device):
    """full_lengths outside a traced graph: one tensor per (T, B, device), reused."""
    with torch.inference_mode(False):  # a tensor made under inference_mode could not be saved
        return torch.full((B,), T, dtype=torch.int64, device=device)  # for a later backward
