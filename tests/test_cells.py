"""The cell descriptions (fastrnn.cells) against what they describe: the C declarations the build
wrote from them (fastrnn_cells.h, kernels/abi.py) beside fastrnn.h's, the custom ops' schemas and fake implementations, and every kernel backend's
results for every cell (native and numba run the same equations: equal to float64 roundoff)."""
import re

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from fastrnn import autograd, cells, dispatch, layernorm
from fastrnn._native import find

OPS = {"rnn": autograd.rnn, "lstm": autograd.lstm, "lstmp": autograd.lstmp, "gru": autograd.gru,
       "ln_lstm": layernorm._ln_lstm, "ln_gru": layernorm._ln_gru}
KERNELS = [b for b in ("native", "numba") if dispatch.why_not(b) is None]


def test_every_cell_has_its_ops():
    assert set(OPS) == set(cells.CELLS)
    for name, ops in OPS.items():
        assert ops.cell is cells.CELLS[name]


def _declarations():
    """{function name: [argument names]} of the installed headers' CPU declarations."""
    text = "".join(open(find(h), encoding="utf-8").read() for h in ("fastrnn.h", "fastrnn_cells.h"))
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    out = {}
    for name, args in re.findall(r"int (fastrnn_\w+_f32)\(([^;]*)\);", text):
        names = [a.split("*")[-1].split()[-1] for a in args.split(",")]
        out[name] = names
    return out


@pytest.mark.parametrize("name", sorted(cells.CELLS))
def test_the_header_declares_each_kernel_as_its_cell_describes(name):
    """The C declarations against the descriptions, from which the cffi declarations are made
    too: every kernel a cell has, its arguments' names in their order."""
    cell, declared = cells.CELLS[name], _declarations()
    for stem in set(cell.stems or (cell.name,)):
        for kind in cell.kinds():
            fn = f"fastrnn_{stem}_{kind}_f32"
            assert fn in declared, fn
            sizes, arrays = cell.kernel_args(kind)
            want = [a.lower() for a in (*sizes, *arrays)]
            assert [a.lower() for a in declared[fn]] == want, fn


def test_every_cell_kernel_of_the_header_is_described():
    described = {f"fastrnn_{stem}_{kind}_f32" for c in cells.CELLS.values()
                 for stem in (c.stems or (c.name,)) for kind in c.kinds()}
    assert set(_declarations()) - described == {"fastrnn_input_grad_f32"}


def _dims(cell, T=3, B=2, H=5):
    R = 4 if cell.projected else H
    return dict(T=T, B=B, G=cell.gates * H, H=H, R=R, S=T + 1, Sg=T)


def _forward_args(cell, dims, g):
    def r(name):
        shape = cells.size(cells.SHAPES[name.rstrip("?")], **dims)
        return torch.randn(shape, generator=g, dtype=torch.float64)
    lengths = torch.tensor([dims["T"], dims["T"] - 1][:dims["B"]], dtype=torch.int64)
    tensors = [r("x_in"), *(r(a) for a in cell.forward_args()[:-1]), lengths]
    return tensors, (False,) if cell.flag else ()


@pytest.mark.parametrize("name", sorted(cells.CELLS))
def test_ops_give_what_the_description_says_on_every_backend(name):
    """Forward and backward ops on every kernel backend: the described shapes, the fake
    implementation's shapes, and the same values everywhere."""
    cell, ops = cells.CELLS[name], OPS[name]
    dims, g = _dims(cell), torch.Generator().manual_seed(0)
    tensors, flags = _forward_args(cell, dims, g)
    results = {}
    for backend in KERNELS:
        out = ops.op(*tensors, *flags, True, backend)
        assert [tuple(t.shape) for t in out] == [cells.size(s, **dims) for _, s in cell.outputs()]
        saved = dict(zip([n for n, _ in cell.outputs()], out))
        params = dict(zip([a.rstrip("?") for a in cell.forward_args()], tensors[1:]))
        gen = torch.Generator().manual_seed(1)
        grads_in = [torch.randn(cells.size(cells.SHAPES[a], **dims), generator=gen,
                                dtype=torch.float64)
                    for a in ("dy", *(f"d{s}_n" for s in cell.states))]
        k = ops.backward_op(*grads_in, *(saved[r] for r in cell.reads),
                            *(params[p] for p in cell.bparams), params["lengths"], *flags,
                            backend)
        assert [tuple(t.shape) for t in k] == [cells.size(s, **dims) for _, s in cell.grads]
        results[backend] = [*out[:1 + len(cell.states)], *k]  # (saved rows past an end:
        # not written)
    with FakeTensorMode() as mode:
        fake = ops.op(*(mode.from_tensor(t) for t in tensors), *flags, True, KERNELS[0])
    assert [tuple(t.shape) for t in fake] == [cells.size(s, **dims) for _, s in cell.outputs()]
    for a, b in zip(results[KERNELS[0]], results[KERNELS[-1]]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
