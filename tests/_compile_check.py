"""Run by tests/test_compile.py in a fresh process (nothing loaded or called before): a model
holding fastrnn LSTM, GRU and RNN layers compiles with fullgraph=True — with the one line the
README gives — and gives eager's outputs and gradients, with fastrnn's ops in the graph; plain
torch.compile takes packed input, autocast and bfloat16 modules. Prints OK lines; any failure
raises."""
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import fastrnn

torch._dynamo.config.allow_rnn = True  # the README's line: Dynamo refuses any torch.nn RNN otherwise


class Tagger(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = fastrnn.LSTM(4, 6, num_layers=2, bidirectional=True, batch_first=True)
        self.gru = fastrnn.GRU(12, 5, batch_first=True)
        self.rnn = fastrnn.RNN(5, 3, batch_first=True)

    def forward(self, x):  # x [B,T,4], zero-padded
        y, _ = self.lstm(x)
        y, _ = self.gru(y)
        y, h = self.rnn(y)
        return y, h


ops = set()


def recording(gm, example_inputs):
    ops.update(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
    return gm.forward


def compiled_is_eager(model, x):
    """torch.compile(fullgraph=True) of model gives eager's outputs and gradients on x [B,T,I]."""
    compiled = torch.compile(model, fullgraph=True, backend=recording)
    outs = []
    for m in (compiled, model):
        model.zero_grad()
        xs = x.clone().requires_grad_(True)
        y, h = m(xs)
        (y.square().sum() + h.sum()).backward()
        outs.append([y.detach(), h.detach(), xs.grad] + [p.grad.clone() for p in model.parameters()])
    for a, b in zip(*outs):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), (a - b).abs().max()


torch.manual_seed(0)
model = Tagger()
x = torch.randn(3, 7, 4)
x[1, 5:] = 0  # a padded batch
compiled_is_eager(model, x)
assert {"fastrnn.lstm_forward.default", "fastrnn.gru_forward.default",
        "fastrnn.rnn_forward.default"} <= ops, ops
print("OK fullgraph")

lstm = fastrnn.LSTM(4, 6)
packed = pack_padded_sequence(torch.randn(7, 3, 4), torch.tensor([7, 5, 2]))
y_eager = lstm(packed)[0].data
y_compiled = torch.compile(lstm)(packed)[0].data
assert torch.allclose(y_eager, y_compiled, atol=1e-6)
print("OK packed")

# autocast to bfloat16 and bfloat16 modules compile too: torch.nn's dtypes, bfloat16-level values
for mode, dtype in (("LSTM", torch.float32), ("GRU", torch.float32), ("LSTM", torch.bfloat16)):
    m = getattr(fastrnn, mode)(4, 6).to(dtype)
    x = torch.randn(7, 3, 4, dtype=dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.float32):
        y_eager, y_compiled = m(x)[0], torch.compile(m)(x)[0]
    assert y_eager.dtype == y_compiled.dtype, (y_eager.dtype, y_compiled.dtype)
    assert (y_eager.float() - y_compiled.float()).abs().max() < 3e-2
print("OK low precision")

# LayerNorm cells: torch.compile(fullgraph=True) records their custom ops and gives eager's
# outputs and gradients; torch.export keeps the ops and runs
class LayerNormTagger(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = fastrnn.LayerNormLSTM(4, 6, num_layers=2, bidirectional=True, batch_first=True)
        self.gru = fastrnn.LayerNormGRU(12, 5, batch_first=True)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.gru(y)


ops.clear()
torch.manual_seed(0)
model, x = LayerNormTagger(), torch.randn(3, 7, 4)
compiled_is_eager(model, x)
assert {"fastrnn.ln_lstm_forward.default", "fastrnn.ln_gru_forward.default"} <= ops, ops
exported = torch.export.export(model.eval(), (x,))
assert {"fastrnn.ln_lstm_forward.default", "fastrnn.ln_gru_forward.default"} <= {
    str(n.target) for n in exported.graph.nodes if n.op == "call_function"}
with torch.no_grad():
    assert torch.allclose(exported.module()(x)[0], model(x)[0], atol=1e-6)
print("OK layernorm")
