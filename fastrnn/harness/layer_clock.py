"""Where a model's time goes, per recurrent layer: hooks that time each RNN/LSTM/GRU module (and
cell) of a model, forward and backward, for an instrumented run kept apart from the timed one.

Forward: from the layer's forward pre-hook to its forward hook. Backward, per call of the layer:
from the moment the gradient reaches the node that made its output to the moment the gradients
it sends on are complete — for its input (the hook on the node that made the input, or the input
itself when it is a leaf) or, when no input needs one, for its parameters. A layer called many
times (a cell in a loop) adds up its calls. The clock synchronises the GPU at each mark, which is
why it is not used for the timed run.
"""
import time
from collections import defaultdict

import torch
from torch.nn.utils.rnn import PackedSequence

RECURRENT = (torch.nn.RNNBase, torch.nn.RNNCellBase)


def tensors(obj):
    """Every tensor in obj: a tensor, a PackedSequence, or tuples, lists and dicts of them."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, PackedSequence):
        yield obj.data
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            yield from tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from tensors(o)


def recurrent_layers(model):
    """{name: module} of the recurrent layers in `model`, by their names in named_modules()."""
    return {name or type(model).__name__: m for name, m in model.named_modules()
            if isinstance(m, RECURRENT)}


class _Call:
    """One call of a layer during a training step: when its backward started and ended."""

    def __init__(self):
        self.start = self.end = None
        self.at_params = True  # no input needs a gradient: the backward ends at the parameters

    def mark_end(self, t):
        if self.start is not None:
            self.end = t if self.end is None else max(self.end, t)


class LayerClock:
    """Times the recurrent layers of `model` while in a `with` block. Call `reset()` before each
    step; after it, `forward` and `backward()` give {layer name: seconds} for that step."""

    def __init__(self, model, device):
        self.layers = recurrent_layers(model)
        self.cuda = torch.device(device).type == "cuda"
        self._handles = []
        self.reset()

    def reset(self):
        for h in getattr(self, "_leaf_handles", ()):
            h.remove()
        self._leaf_handles = []  # hooks on leaf inputs outlive the graph: removed here
        self.forward = defaultdict(float)
        self._calls = {name: [] for name in self.layers}
        self._t0 = {}

    def backward(self):
        return {name: sum(c.end - c.start for c in calls if c.end is not None)
                for name, calls in self._calls.items()}

    def now(self):
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def __enter__(self):
        for name, m in self.layers.items():
            self._handles += [m.register_forward_pre_hook(self._pre(name)),
                              m.register_forward_hook(self._post(name))]
            for p in m.parameters():
                if p.requires_grad:
                    self._handles.append(p.register_post_accumulate_grad_hook(self._param(name)))
        return self

    def __exit__(self, *exc):
        self.reset()
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _pre(self, name):
        def hook(module, args):
            self._t0[name] = self.now()
        return hook

    def _post(self, name):
        def hook(module, args, output):
            self.forward[name] += self.now() - self._t0.pop(name)
            nodes = {t.grad_fn for t in tensors(output) if t.grad_fn is not None}
            if not nodes:  # no backward will pass through this call
                return
            call = _Call()
            self._calls[name].append(call)
            for node in nodes:
                node.register_prehook(self._start(call))
            for t in tensors(args):
                if t.requires_grad:
                    call.at_params = False
                    if t.grad_fn is not None:
                        t.grad_fn.register_prehook(lambda *_: call.mark_end(self.now()))
                    else:
                        self._leaf_handles.append(t.register_post_accumulate_grad_hook(
                            lambda _: call.mark_end(self.now())))
        return hook

    def _start(self, call):
        def hook(grad_outputs):
            if call.start is None:
                call.start = self.now()
        return hook

    def _param(self, name):
        def hook(_):
            t = self.now()
            for call in self._calls[name]:
                if call.at_params:
                    call.mark_end(t)
        return hook
