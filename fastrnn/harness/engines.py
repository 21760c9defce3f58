"""The inference engines a user could deploy instead, as benchmark baselines: torch.nn's module
exported to ONNX (the standard LSTM / GRU / RNN nodes, the same weights) and run by ONNX Runtime
or OpenVINO on the CPU, with torch's thread count. Forward (inference) points only.

ONNX Runtime runs with intra-op spinning off: its worker threads would otherwise spin between
calls and take the cores from the candidates timed after it. OpenVINO runs with
INFERENCE_PRECISION_HINT=f32 (on CPUs with AVX-512-BF16 or AMX it would otherwise compute in
bfloat16) and PERFORMANCE_HINT=LATENCY.
"""
import os
import tempfile

import torch

ENGINES = ("onnxruntime", "openvino")


def why_not(name):
    """None when engine `name` can run here, else why not (its package is missing)."""
    module = {"onnxruntime": "onnxruntime", "openvino": "openvino"}.get(name)
    if module is None:
        return f"unknown engine {name!r}; choose from {', '.join(ENGINES)}"
    try:
        __import__(module)
        import onnx  # noqa: F401  (torch.onnx.export needs it)
    except ImportError as e:
        return f"{e.name} is not installed (pip install {e.name})"
    return None


def _export(module, args, names, folder):
    path = os.path.join(folder, "model.onnx")
    torch.onnx.export(module, args, path, input_names=names, dynamo=False)
    return path


def calls(inp, names):
    """{engine: callable} running the point's forward on each engine in `names`."""
    if not names:
        return {}
    p = inp.p
    module = inp.module().eval()
    lstm = p.cell == "lstm"
    args = (inp.x.detach(), (inp.h0, inp.c0) if lstm else inp.h0)
    feeds = {"x": inp.x.detach().numpy(), "h0": inp.h0.numpy()}
    if lstm:
        feeds["c0"] = inp.c0.numpy()
    threads, out = torch.get_num_threads(), {}
    with tempfile.TemporaryDirectory(prefix="fastrnn-engines-") as folder, torch.no_grad():
        path = _export(module, args, list(feeds), folder)
        for name in names:  # each loads the file now: the folder can go afterwards
            out[name] = _engine(name, path, feeds, threads)
    return out


def _engine(name, path, feeds, threads):
    """A callable running the ONNX file at `path` on engine `name` with these inputs."""
    if name == "onnxruntime":
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        return lambda: session.run(None, feeds)
    if name == "openvino":
        import openvino as ov
        compiled = ov.Core().compile_model(path, "CPU", {
            "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY"})
        request = compiled.create_infer_request()
        return lambda: request.infer(feeds)
    raise ValueError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}")
