"""fastrnn: fused kernels for recurrent networks (Elman RNN, LSTM, GRU) behind torch.nn's API.

    import fastrnn
    lstm = fastrnn.LSTM(input_size, hidden_size, num_layers=2)   # a torch.nn.LSTM, faster
    fastrnn.convert(model)                                       # swap every torch.nn RNN inside
    fastrnn.backends()                                           # ['numba', 'native', 'eager']
    fastrnn.cpu_variants()                                       # ['avx512', 'avx2', 'base']
    fastrnn.profile(model, make_input)                           # your model, torch.nn beside fastrnn
    step = fastrnn.cell(gates=4, states=("h", "c"))(fn)          # your own cell, compiled
    layer = fastrnn.Recurrent(step, input_size, hidden_size)
"""
from . import functional, reference
from .dispatch import backends, cpu_variant, cpu_variants, set_cpu_variant
from .layernorm import LayerNormGRU, LayerNormLSTM
from .modules import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell, convert
from .user.declare import cell
from .user.layer import Recurrent


def profile(model, make_input, seq_lens=(16, 64, 256, 1024), batch=16, train=True, loss_fn=None,
            device=None, **kw):
    """How the time and memory of your model grow with sequence length, torch.nn beside fastrnn
    (see fastrnn.harness.model.profile for every option). Returns a ModelProfile."""
    from .harness.model import profile as run
    return run(model, make_input, seq_lens, batch, train, loss_fn, device, **kw)

__version__ = "0.1.0"
__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "LayerNormLSTM", "LayerNormGRU",
           "cell", "Recurrent", "convert", "backends",
           "cpu_variant", "cpu_variants", "set_cpu_variant", "profile",
           "functional", "reference"]
