"""The `fastrnn` command: reports are written, and bad input is one line and a non-zero exit."""
import json
import subprocess
import sys

import pytest
import torch

from fastrnn.harness import baseline
from fastrnn.cli import main


def test_bench_writes_a_report(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["bench", "--cells", "lstm,gru", "--batch", "2", "--hidden", "8", "--seq-len", "4",
                 "--rounds", "1", "--out", str(out)]) == 0
    report = (out / "REPORT.md").read_text()
    assert "| lstm | 4 | 2 | 8 | 8 |" in report and "speed-up" in report and "GFLOP/s" in report
    assert "threads for every candidate" in report and "Load average" in report
    results = json.loads((out / "results.json").read_text())
    assert len(results["results"]) == 4  # 2 cells × 2 passes
    for r in results["results"]:
        assert r["seconds"]["torch.nn"] > 0 and r["seconds"]["gemm floor"] > 0
    assert (out / "speedup_lstm.png").stat().st_size > 1000
    assert (out / "time_per_step.png").stat().st_size > 1000
    # each point read against the machine's sgemm peak, and what ran named
    assert results["meta"]["sgemm peak GFLOP/s"] > 0
    assert "sgemm peak" in report and "auto % peak" in report and "auto ran" in report
    import fastrnn
    if "native" in fastrnn.backends():
        variant = fastrnn.dispatch.cpu_variant()
        for r in results["results"]:
            assert r["ran"]["auto"] == "native" + (f" {variant}" if variant else "")
            assert r["ran"]["torch.nn"] == "torch.nn"


def test_bench_training_step_updates_the_weights_in_place():
    """The timed training step ends with an optimizer step: the weights change in place (the
    same tensors), so nothing kept from them across calls can look better than in training."""
    from fastrnn.harness.points import Inputs, Point, module_call
    inp = Inputs(Point("lstm", 2, 3, 4, 5, pass_="train"))
    call = module_call(inp, "auto")
    m = call.module
    w = m.weight_hh_l0
    before, version = w.detach().clone(), w._version
    call()
    assert m.weight_hh_l0 is w and w._version > version and not torch.equal(w, before)


def test_bench_memory_column(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["bench", "--cells", "gru", "--batch", "2", "--hidden", "8", "--seq-len", "4",
                 "--passes", "train", "--rounds", "1", "--memory", "--out", str(out)]) == 0
    (row,) = json.loads((out / "results.json").read_text())["results"]
    assert set(row["peak_mib"]) >= {"torch.nn", "numba"}
    assert "torch.nn peak MiB" in (out / "REPORT.md").read_text()


def test_bench_inference_engine_baselines(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    engines = ["onnxruntime"] + (["openvino"] if _has("openvino") else [])
    out = tmp_path / "rep"
    assert main(["bench", "--cells", "lstm,gru,rnn_tanh", "--batch", "2", "--hidden", "8",
                 "--seq-len", "4", "--rounds", "1", "--baselines", ",".join(["torch", *engines]),
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())["results"]
    for r in results:  # the engines run at the forward (inference) points only
        assert all((e in r["seconds"]) == (r["point"]["pass_"] == "forward") for e in engines)
    report = (out / "REPORT.md").read_text()
    assert f"auto against {engines[0]}" in report and "against the best of torch.nn" in report


def test_bench_dropin_suite_quick(tmp_path, capsys):
    out = tmp_path / "dropin"
    assert main(["bench", "--suite", "dropin", "--quick", "--rounds", "1", "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    kinds = {r["point"].split(" ")[0] for r in rows}
    assert {"LSTMCell", "2-layer", "LSTM", "bfloat16", "autocast(bfloat16)"} <= kinds
    assert all(r["fastrnn_s"] > 0 for r in rows)
    # torch.nn runs every point but where oneDNN has no bfloat16 LSTM (its LSTM points then)
    refused = [r["point"] for r in rows if r["torch_s"] is None]
    assert all(r["torch_s"] > 0 and r["ratio"] > 0 for r in rows if r["torch_s"] is not None)
    assert refused == [r["point"] for r in rows if
                       r["point"].startswith("autocast(bfloat16) LSTM ")
                       and not baseline.lstm_runs("autocast")
                       or r["point"].startswith("bfloat16 LSTM ")
                       and not baseline.lstm_runs("bfloat16")]
    md = (out / "DROPIN.md").read_text()
    assert "| point | pass | torch.nn ms | fastrnn ms | ratio |" in md
    assert md.count(baseline.CANNOT_RUN) == len(refused)
    assert (baseline.CANNOT_RUN in capsys.readouterr().err) == bool(refused)


def _has(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def test_profile_writes_table_breakdown_and_plot(tmp_path, capsys):
    out = tmp_path / "prof"
    assert main(["profile", "--cell", "gru", "--batch", "2", "--hidden", "16", "--seq-lens", "8,32",
                 "--rounds", "1", "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["T"] for r in rows] == [8, 32]
    for r in rows:
        for b in r["breakdown"]:
            assert set(r["breakdown"][b]) == {"input projection", "recurrent loop",
                                              "backward loop", "weight-gradient GEMMs"}
        assert r["peak_mib"]["torch.nn"] >= 0
    assert "recurrent loop ms" in (out / "PROFILE.md").read_text()
    assert (out / "profile.png").stat().st_size > 1000


def test_info_lists_backends(capsys):
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert "numba" in text and "available" in text and "vector extensions" in text


@pytest.mark.parametrize("argv,message", [
    (["bench", "--cells", "lsmt"], "unknown cell 'lsmt'"),
    (["bench", "--batch", "-4"], "expected positive integers, got -4"),
    (["bench", "--hidden", ","], "got an empty list"),
    (["bench", "--out", "/proc/no/such"], "cannot write to output folder"),
    (["bench", "--backends", "tpu"], "unknown backend 'tpu'"),
    (["profile", "--seq-lens", "0,8"], "expected positive integers, got 0"),
    (["profile", "--cell", "lstm,gru"], "--cell takes one cell"),
    (["train-sentiment", "--data", "x", "--clip", "-1"], "expected a positive number, got -1"),
    (["train-charlm", "--data", "x", "--lr", "nan"], "expected a positive number, got nan"),
    (["generate", "--checkpoint", "x", "--temperature", "hot"], "expected a positive number"),
    (["bench", "--baselines", "tensorrt"], "--baselines: unknown engine 'tensorrt'"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_is_one_line_and_nonzero(argv, message):
    run = subprocess.run([sys.executable, "-m", "fastrnn.cli", *argv], capture_output=True,
                         text=True)
    assert run.returncode != 0
    assert message in run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_bench_rules_suite_quick(tmp_path, capsys):
    """`fastrnn bench --suite rules`: each tuned rule A/B'd against its alternatives."""
    out = tmp_path / "rules"
    assert main(["bench", "--suite", "rules", "--quick", "--rounds", "1", "--rules",
                 "chunk_rows,input_grad_tiles", "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["rule"] for r in rows] == ["chunk_rows", "input_grad_tiles"]
    assert set(rows[0]["ratio"]) == {"64", "1024"} and all(x > 0 for x in rows[0]["ratio"].values())
    assert "| chunk_rows |" in (out / "RULES.md").read_text()
    assert main(["bench", "--suite", "rules", "--quick", "--rules", "chunk_row"]) == 1
    assert "no A/B case for chunk_row" in capsys.readouterr().err
