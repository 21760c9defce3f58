"""How a call runs — its route — chosen in one place, `choose`, from the call's situation.

A module's (or cell's) forward asks first, before its plumbing: it takes a whole-call route or
hands each layer and direction to fastrnn.functional (fastrnn.layernorm for its cells), which
asks for that layer's route.

    module and cell routes
      onnx      torch.nn's own forward, which the ONNX exporter records as standard nodes
      direct    no gradients: one foreign call per layer and direction, the outputs allocated in
                their final shapes, no other torch op (fastrnn._direct_calls)
      step      a cell's step with gradients: one autograd node, one foreign call each way
                (fastrnn._step_grad)
      layers    the module's plumbing, then a layer route for each layer and direction
    layer routes
      eager     per-step torch ops (fastrnn._eager): backend 'eager', or an empty batch
      widened   bfloat16 on the float32 kernels with torch casts around them, then a float32
                layer route (fastrnn.functional._via_float32)
      traced    F.linear and the cell's custom op, as torch.compile, torch.export and jit.trace
                record them (fastrnn.autograd.CellOps.op)
      no_grad   the kernel's forward_x, nothing kept for a backward (CellOps.forward_x)
      autograd  the forward_x kernel and its BPTT as one autograd node (_LayerAutograd)

tests/test_routes.py walks the situations and checks the route each takes by what ran: the
native library's foreign calls and the op dispatches.
"""
import torch
from torch.nn.utils.rnn import PackedSequence

from . import dispatch
from ._native_calls import loaded

ROUTES = ("onnx", "direct", "step", "layers", "eager", "widened", "traced", "no_grad",
          "autograd")  # (above)
DIRECT_DTYPES = dispatch._KERNEL_DTYPES  # the kernels' dtypes (float32, float64)
WIDE = dispatch._WIDENED  # bfloat16: run on the float32 kernels


def traced():
    """True while torch.compile/export or torch.jit.trace records the call. ONNX export records
    through one of the two (TorchScript tracing for dynamo=False, torch.export for dynamo=True),
    so torch.onnx.is_in_onnx_export(), ten times as slow to ask, adds nothing."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def exporting():
    """Whether torch.onnx is exporting. It exports by tracing or through torch.export, so the
    cheap questions come first (torch.onnx.is_in_onnx_export costs a microsecond a call)."""
    return traced() and torch.onnx.is_in_onnx_export()


def needs_grad(*tensors):
    """Whether a call computes gradients: the kernels keep what backward needs. Under
    torch.jit.trace requires_grad alone decides: the trace is checked by running it again, and
    its graph must not depend on the grad mode of either run."""
    need = any(t is not None and t.requires_grad for t in tensors)
    return need and (torch.is_grad_enabled() or torch.jit.is_tracing())


def _native_here(backend, x, dtypes, autocast):
    """Whether the native kernels can take a call on x straight: backend auto or native, CPU, x
    of one of `dtypes`, autocast off unless `autocast`, the library usable."""
    return not (backend not in ("auto", "native") or not x.is_cpu or x.dtype not in dtypes
                or (torch.is_autocast_enabled("cpu") and not autocast)
                or (not loaded() and dispatch.why_not("native") is not None))


def choose(where, backend, x, grad=False, module=None, hx=None, low=None, projected=False):
    """The route (above) of a call on x.

    where 'module': a multi-layer module's forward (`module`) on x as given, a tensor or a
    PackedSequence; `low`, the dtype torch.nn returns under autocast (modules._autocast_dtype).
    where 'cell': a cell's forward (`module`) on x with hx (None, a tensor or a tuple).
    where 'layer': one layer and direction on x [T,B,I] on kernel backend `backend` (resolved:
    fastrnn.dispatch.resolve); `grad`: whether it computes gradients (needs_grad of everything
    they may flow to); `projected`: an LSTM with a projection.
    The direct and step routes also need tensors of the shapes and layouts their kernels read;
    where they are not, the call takes the layers route (fastrnn._direct_calls says so).
    """
    if where == "layer":
        if backend == "eager" or x.shape[1] == 0:  # (the kernels need B >= 1)
            return "eager"
        if x.dtype in WIDE and (backend != "native" or not x.is_cpu or projected or traced()):
            return "widened"
        # (else the native _bf16 kernels take it as it is: x, weights, states and results in
        # bfloat16, the work in float32 inside the call; the torch casts around a float32 call
        # cost more than their work after a kernel — LSTM T = 100, B = 16, H = 256, Zen 4:
        # widening x 150–200 µs there, 20–45 alone)
        if traced():
            return "traced"
        return "autograd" if grad else "no_grad"
    # recorded (exporting() asked once, for the calls that are not: a µs matters at B = 1;
    # is_compiling before the C-level tracing flag: Dynamo answers the first, not the second)
    if torch.compiler.is_compiling() or torch._C._is_tracing():
        return "onnx" if torch.onnx.is_in_onnx_export() else "layers"
    if where == "cell":
        if (x.dim() != 2 or not x.is_contiguous()
                or not _native_here(backend, x, DIRECT_DTYPES, False)):
            return "layers"
        states = hx if isinstance(hx, tuple) else (hx,)
        if torch.is_grad_enabled() and (x.requires_grad or any(
                t is not None and t.requires_grad
                for t in (*module._parameters.values(), *states))):
            return "step"
        return "direct"
    if (isinstance(x, PackedSequence) or torch.is_grad_enabled() or x.dim() not in (2, 3)
            or getattr(module, "proj_size", 0) or (module.dropout and module.training)):
        return "layers"
    wide = x.dtype in WIDE
    # x time-major must be contiguous: batch-first input only where B or T is 1
    if not x.is_contiguous() or (module.batch_first and x.dim() == 3 and min(x.shape[:2]) > 1):
        return "layers"
    ok = _native_here(backend, x, WIDE if wide else DIRECT_DTYPES,
                      autocast=not wide and low == torch.bfloat16)
    return "direct" if ok else "layers"
