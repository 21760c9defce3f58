"""Where torch.nn itself cannot run a case on the CPU at hand.

torch.nn's LSTM goes to oneDNN's fused RNN for float32 input, and under
torch.autocast("cpu", dtype=torch.bfloat16) it asks oneDNN for a bfloat16 LSTM. oneDNN has
bfloat16 kernels only from AVX-512 core on (its developer guide, "Data Types: hardware
limitations"), so on an AVX2 CPU — AMD EPYC up to Zen 3, most laptops — or with
ONEDNN_MAX_CPU_ISA=AVX2, torch.nn raises oneDNN's own error there ("could not create a primitive
descriptor for the LSTM forward propagation primitive"). A bfloat16 LSTM module goes to oneDNN
where the hardware has AVX-512-BF16, whatever ONEDNN_MAX_CPU_ISA says, and may meet the same
refusal under that restriction (not seen here: the Zen 3 this was written on has no AVX-512).
fastrnn runs those cases: the tests then judge it against the float64 reference alone, and
`fastrnn bench` times it alone and says CANNOT_RUN. Only oneDNN's error is taken as "cannot run";
any other error is a failure.
"""
import functools
import os

import torch

from .. import dispatch

CANNOT_RUN = "torch.nn cannot run this here"
_ONEDNN_REFUSED = "could not create a primitive descriptor"
# ONEDNN_MAX_CPU_ISA values below AVX-512 core (oneDNN's dnnl::cpu_isa; DNNL_ is the old prefix)
_BELOW_AVX512_CORE = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2"}


def onednn_refused(error):
    """True for oneDNN's own error that it has no kernel for a case on this CPU, and only that."""
    return isinstance(error, RuntimeError) and _ONEDNN_REFUSED in str(error)


def runs(call):
    """Calls call() once: True if it ran, False if oneDNN refused it; any other error is raised."""
    try:
        call()
    except RuntimeError as e:
        if not onednn_refused(e):
            raise
        return False
    return True


@functools.cache
def lstm_runs(how="autocast"):
    """Whether torch.nn's LSTM runs forward and backward in bfloat16 here: how = "autocast" (a
    float32 layer under autocast to bfloat16) or "bfloat16" (a bfloat16 layer, which torch sends
    to oneDNN by what the hardware has, not by ONEDNN_MAX_CPU_ISA). Probed once a process, on a
    2-step layer of 2 units."""
    low = how == "bfloat16"
    dtype = torch.bfloat16 if low else torch.float32
    lstm = torch.nn.LSTM(2, 2).to(dtype)
    x = torch.randn(2, 1, 2, dtype=dtype, requires_grad=True)

    def call():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=not low):
            lstm(x)[0].float().sum().backward()
    return runs(call)


def onednn_has_bf16_rnn():
    """Whether oneDNN has a bfloat16 RNN on this CPU by its documented rule: AVX-512 core (avx512f,
    bw, dq, vl) and no ONEDNN_MAX_CPU_ISA below it. Where it has, lstm_runs() must be True both ways
    (tested), so a regression in torch.nn or in the probe cannot hide behind the fallback."""
    isa = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL")
    have = set(dispatch.cpuinfo("flags", "Features").split())
    return ({"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= have
            and isa.upper() not in _BELOW_AVX512_CORE)
