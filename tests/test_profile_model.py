"""fastrnn.profile on a user's model and `fastrnn profile --model`: the rows, the per-layer
breakdown, what the report concludes (growth, memory budget), the files, and the errors."""
import json
import subprocess
import sys
import textwrap

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import fastrnn
from fastrnn.harness.model_report import ModelProfile, parse_size, slope
from fastrnn.cli import main


class Tagger(torch.nn.Module):
    """Embedding -> 2-layer bidirectional LSTM -> GRU -> Linear: several recurrent layers."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(30, 8)
        self.lstm = torch.nn.LSTM(8, 12, num_layers=2, bidirectional=True)
        self.gru = torch.nn.GRU(24, 10)
        self.head = torch.nn.Linear(10, 5)

    def forward(self, tokens):
        y, _ = self.lstm(self.emb(tokens))
        y, _ = self.gru(y)
        return self.head(y)


def tokens(T, B):
    return torch.randint(0, 30, (T, B), generator=torch.Generator().manual_seed(T))


FAST = dict(seq_lens=(4, 12), batch=3, rounds=1)


def test_profile_rows_breakdown_and_model_untouched():
    torch.manual_seed(0)
    model = Tagger()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    prof = fastrnn.profile(model, tokens, **FAST)
    assert isinstance(prof, ModelProfile)
    assert [(r["T"], r["impl"]) for r in prof.rows] == [
        (4, "torch.nn"), (4, "fastrnn"), (12, "torch.nn"), (12, "fastrnn")]
    for r in prof.rows:
        assert r["forward_s"] > 0 and r["train_s"] > 0
        assert r["peak_mib"] > 0 and r["step_mib"] >= 0
        bd = r["breakdown"]
        assert set(bd["layers"]) == {"lstm", "gru"}
        for v in bd["layers"].values():
            assert 0 < v["forward_s"] <= bd["forward_s"]
            assert 0 < v["backward_s"] <= bd["backward_s"]
    # The user's model is what it was: torch.nn layers, same weights, no gradients.
    assert type(model.lstm) is torch.nn.LSTM and type(model.gru) is torch.nn.GRU
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_profile_of_a_model_holding_fastrnn_layers_compares_with_torch():
    model = fastrnn.convert(Tagger())
    prof = fastrnn.profile(model, tokens, memory=False, breakdown=False, **FAST)
    assert len(prof.rows) == 4 and "peak_mib" not in prof.rows[0]
    assert type(model.lstm) is fastrnn.LSTM  # still the user's fastrnn model


def test_profile_packed_tuple_input_custom_loss_and_forward_only():
    lstm = torch.nn.LSTM(3, 6)

    def packed(T, B):
        lengths = torch.linspace(T, 1, B).long()
        return pack_padded_sequence(torch.randn(T, B, 3), lengths)

    prof = fastrnn.profile(lstm, packed, breakdown=True, **FAST)
    assert all(r["train_s"] > 0 for r in prof.rows)
    assert set(prof.rows[0]["breakdown"]["layers"]) == {"LSTM"}  # the model is the layer

    seen = []
    prof = fastrnn.profile(lstm, lambda T, B: (torch.randn(T, B, 3), None),
                           loss_fn=lambda out: seen.append(1) or out[0].pow(2).mean(), **FAST)
    assert seen and all(r["train_s"] > 0 for r in prof.rows)

    prof = fastrnn.profile(lstm, lambda T, B: torch.randn(T, B, 3), train=False, **FAST)
    assert all(r["train_s"] is None and r["forward_s"] > 0 for r in prof.rows)
    assert prof.rows[0]["breakdown"]["backward_s"] == 0


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(model="lstm"), TypeError, "model: expected a torch.nn.Module"),
    (dict(model=torch.nn.Linear(3, 3)), ValueError, "holds no RNN, LSTM or GRU"),
    (dict(make_input=5), TypeError, "make_input: expected a callable"),
    (dict(make_input=lambda T, B: [1, 2]), TypeError, "make_input: expected make_input"),
    (dict(seq_lens=(4, 0)), ValueError, "seq_lens: expected positive integers"),
    (dict(batch=0), ValueError, "batch: expected a positive integer"),
    (dict(loss_fn=lambda out: out[0]), ValueError, "loss_fn: expected a one-element tensor"),
])
def test_profile_bad_arguments(kwargs, error, message):
    args = dict(model=torch.nn.LSTM(3, 6), make_input=lambda T, B: torch.randn(T, B, 3),
                seq_lens=(4,), batch=2, rounds=1)
    with pytest.raises(error, match=message):
        fastrnn.profile(**(args | kwargs))


def _rows(peaks, times):
    return [dict(T=T, impl=impl, forward_s=t, train_s=2 * t, peak_mib=peak, step_mib=peak - 100)
            for T, peak, t in zip((16, 64, 256), peaks, times) for impl in ("torch.nn", "fastrnn")]


def test_growth_and_memory_budget_from_the_measurements():
    assert slope([16, 64, 256], [1, 4, 16]) == pytest.approx(1.0)
    assert slope([16, 64, 256], [1, 16, 256]) == pytest.approx(2.0)
    assert slope([16], [1]) is None and slope([16, 64], [1, 0]) is None
    # peak = 100 + T MiB: 256 fits 400 MiB, and the line says about 300.
    prof = ModelProfile(_rows([116, 164, 356], [1e-3, 4e-3, 16e-3]),
                        dict(model="M", seq_lens=[16, 64, 256]), {})
    assert prof.growth()["fastrnn"]["train_s"] == pytest.approx(1.0)
    assert prof.fits(400) == {"torch.nn": (256, 300), "fastrnn": (256, 300)}
    assert prof.fits(150)["fastrnn"] == (16, 50)  # nothing measured beyond the sweep is claimed
    assert prof.fits(50)["fastrnn"] == (None, None)
    assert json.loads(prof.to_json(400))["fits"]["fastrnn"] == dict(largest_measured_T=256,
                                                                     estimated_T=300)


@pytest.mark.parametrize("text, mib", [("4GiB", 4096), ("512MiB", 512), ("1.5G", 1536),
                                       ("800M", 800)])
def test_parse_size(text, mib):
    assert parse_size(text) == mib


def test_report_files_and_markdown(tmp_path):
    prof = fastrnn.profile(Tagger(), tokens, **FAST)
    md = prof.markdown(budget_mib=4096, plot_name="p.png")
    for part in ("## Time and memory", "## Where the time goes", "| `lstm` |",
                 "rest of the model", "## Growth with sequence length", "(estimate)", "![profile]"):
        assert part in md
    prof.plot(tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


FACTORY = """
import torch

def good():
    return torch.nn.GRU(3, 5), lambda T, B: torch.randn(T, B, 3)

def boom():
    raise RuntimeError("no weights here")

def wrong():
    return torch.nn.GRU(3, 5)

not_callable = 3
"""


def test_cli_profile_model_writes_the_report(tmp_path):
    f = tmp_path / "models.py"
    f.write_text(FACTORY)
    out = tmp_path / "out"
    assert main(["profile", "--model", f"{f}:good", "--seq-lens", "4,8", "--batch", "2",
                 "--rounds", "1", "--memory-budget", "8GiB", "--out", str(out)]) == 0
    md = (out / "PROFILE.md").read_text()
    assert "## Memory budget 8192 MiB" in md and "| 8 |" in md
    assert json.loads((out / "results.json").read_text())["rows"][0]["impl"] == "torch.nn"
    assert (out / "profile.png").stat().st_size > 0


@pytest.mark.parametrize("spec, message", [
    ("{dir}/none.py:good", "no file"),
    ("{dir}/models.py", "expected FILE.py:FACTORY"),
    ("{dir}/models.py:missing", "has no function 'missing'"),
    ("{dir}/models.py:not_callable", "has no function 'not_callable'"),
    ("{dir}/models.py:boom", "boom() raised RuntimeError: no weights here"),
    ("{dir}/models.py:wrong", "expected wrong() to return (model, make_input)"),
])
def test_cli_profile_model_errors_are_one_line(tmp_path, spec, message):
    (tmp_path / "models.py").write_text(FACTORY)
    run = subprocess.run([sys.executable, "-m", "fastrnn.cli", "profile", "--model",
                          spec.format(dir=tmp_path), "--seq-lens", "4", "--out",
                          str(tmp_path / "o")], capture_output=True, text=True)
    assert run.returncode == 1
    assert message in run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_cli_profile_model_a_bad_make_input_is_one_line(tmp_path):
    (tmp_path / "m.py").write_text(textwrap.dedent("""
        import torch
        def f():
            return torch.nn.GRU(3, 5), lambda T, B: "text"
    """))
    run = subprocess.run([sys.executable, "-m", "fastrnn.cli", "profile", "--model",
                          f"{tmp_path}/m.py:f", "--seq-lens", "4", "--out", str(tmp_path / "o")],
                         capture_output=True, text=True)
    assert run.returncode == 1 and "make_input: expected make_input(T, B) to return" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
