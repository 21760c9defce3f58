"""`fastrnn info`: backends available here and why others are not, build flags, CPU features,
threads, library paths, and the tuned rules in force with the CPU and measurement that set each."""
import textwrap

import torch

from .. import dispatch, rules
from ..harness import machine


def add_parser(sub, name):
    sub.add_parser(name, help="what fastrnn can use on this machine",
                   description=__doc__.split(":", 1)[1].strip())


def run(args):
    from .. import _native
    print("backends:")
    for name in dispatch.NAMES:
        why = dispatch.why_not(name)
        print(f"  {name:7s} {'available' if why is None else 'unavailable: ' + why}")
    print("libraries:")
    for kind, fname in _native._NAMES.items():
        path = _native.find(fname + _native._EXT)
        print(f"  {fname + _native._EXT:20s} {path or 'not found'}")
        if path and dispatch.why_not("native" if kind == "cpu" else "cuda") is None:
            lib = dispatch.load("native" if kind == "cpu" else "cuda").library
            print(f"  {'':20s} build: {lib.build_info()}")
            if kind == "cpu":
                print(f"  {'':20s} CPU variants here: {', '.join(lib.variants) or 'one'}; "
                      f"running: {lib.variant or 'the only one'} (FASTRNN_CPU_VARIANT pins it)")
    print(f"  {'fastrnn.h':20s} {_native.find('fastrnn.h') or 'not found'}")
    facts = machine.describe()
    print("machine:")
    for k, v in facts.items():
        print(f"  {k}: {', '.join(v) if isinstance(v, list) else v}")
    import numba
    print("threads:")
    print(f"  torch intra-op: {torch.get_num_threads()}, inter-op: {torch.get_num_interop_threads()}")
    print(f"  numba: {numba.config.NUMBA_NUM_THREADS} (kernels run one thread; BLAS held to 1 inside)")
    try:
        from threadpoolctl import threadpool_info
        for pool in threadpool_info():
            print(f"  {pool['internal_api']} ({pool['prefix']}): {pool['num_threads']} threads")
    except ImportError:
        pass
    print("tuned rules (kernels/rules.def; fastrnn.rules): value in force, what it decides, "
          "where it was set")
    for r in rules.table().values():
        print(f"  {r.name} = {rules.value(r.name)}")
        for label, text in (("decides", r.what), ("set on", r.where)):
            print(textwrap.fill(text, 100, initial_indent=f"    {label}: ",
                                subsequent_indent=" " * (6 + len(label))))
    who = "the kernels' tiles" if dispatch.input_grad_tiles_here() else "torch's BLAS"
    print(f"  on this CPU ({dispatch.cpuinfo('vendor_id') or 'vendor unknown'}) the backward's dx "
          f"runs on {who} from 2^{rules.value('input_grad_tiles_madds_log2')} multiply-adds")
    flags = machine.cpu_flags()
    low = ("none: float32 products" if "avx512_bf16" not in flags
           else f"AMX tiles from {rules.value('amx_min_rows')} rows a call, vdpbf16ps below"
           if "amx_bf16" in flags else "vdpbf16ps (AVX-512-BF16)")
    print(f"  bfloat16 products (bfloat16 modules, autocast) on the avx512 variant: {low}")
