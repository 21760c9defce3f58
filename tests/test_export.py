"""Deployment: fastrnn modules export to ONNX as torch.nn's do — the standard ONNX LSTM / GRU /
RNN nodes (torch.nn's forward runs while torch.onnx exports), both exporters, run by ONNX Runtime
to eager's outputs; torch.export keeps fastrnn's ops and runs; torch.jit.trace works."""
import pytest
import torch

import fastrnn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

MODES = ["LSTM", "GRU", "RNN"]
KW = dict(num_layers=2, bidirectional=True)


def _pair(mode, **kw):
    torch.manual_seed(0)
    nn = getattr(torch.nn, mode)(4, 6, **kw).eval()
    fast = getattr(fastrnn, mode)(4, 6, **kw).eval()
    fast.load_state_dict(nn.state_dict())
    return nn, fast


def _recurrent_nodes(path):
    return sorted(n.op_type for n in onnx.load(str(path)).graph.node
                  if n.op_type in ("LSTM", "GRU", "RNN"))


@pytest.mark.parametrize("dynamo", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_onnx_export_gives_torch_nn_nodes_and_ort_matches_eager(mode, dynamo, tmp_path):
    nn, fast = _pair(mode, **KW)
    x = torch.randn(5, 3, 4)
    paths = {}
    for name, m in (("nn", nn), ("fast", fast)):
        paths[name] = tmp_path / f"{name}.onnx"
        torch.onnx.export(m, (x,), str(paths[name]), dynamo=dynamo, input_names=["x"])
    assert _recurrent_nodes(paths["fast"]) == _recurrent_nodes(paths["nn"])
    if mode != "RNN" or not dynamo:  # torch.nn's RNN goes through torch.export as plain ops
        assert _recurrent_nodes(paths["fast"])
    session = ort.InferenceSession(str(paths["fast"]), providers=["CPUExecutionProvider"])
    x2 = torch.randn(5, 3, 4)  # other values than the export's
    got = session.run(None, {session.get_inputs()[0].name: x2.numpy()})[0]
    with torch.no_grad():
        want = fast(x2)[0].numpy()
    assert abs(got - want).max() <= 1e-5


@pytest.mark.parametrize("mode", ["LSTMCell", "GRUCell", "RNNCell"])
def test_cells_export_as_torch_nn_cells_do(mode, tmp_path):
    torch.manual_seed(0)
    fast = getattr(fastrnn, mode)(4, 6).eval()
    x = torch.randn(3, 4)
    path = tmp_path / "cell.onnx"
    torch.onnx.export(fast, (x,), str(path), dynamo=False, input_names=["x"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        want = fast(x)
    want = want[0] if isinstance(want, tuple) else want
    assert abs(got - want.numpy()).max() <= 1e-5


@pytest.mark.parametrize("mode", MODES)
def test_torch_export_keeps_the_fastrnn_ops_and_runs(mode):
    _, fast = _pair(mode, **KW)
    x = torch.randn(5, 3, 4)
    ep = torch.export.export(fast, (x,))
    ops = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert f"fastrnn.{mode.lower()}_forward.default" in ops
    x2 = torch.randn(5, 3, 4)
    with torch.no_grad():
        assert torch.allclose(ep.module()(x2)[0], fast(x2)[0], atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kw", [dict(), dict(KW, batch_first=True)])
def test_jit_trace_works_as_for_torch_nn(mode, kw):
    _, fast = _pair(mode, **kw)
    traced = torch.jit.trace(fast, (torch.randn(5, 3, 4),))
    x2 = torch.randn(5, 3, 4)
    with torch.no_grad():
        assert torch.allclose(traced(x2)[0], fast(x2)[0], atol=1e-6)
