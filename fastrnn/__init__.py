"""fastrnn: fused kernels for recurrent networks (Elman RNN, LSTM, GRU) behind torch.nn's API.

    import fastrnn
    lstm = fastrnn.LSTM(input_size, hidden_size, num_layers=2)   # a torch.nn.LSTM, faster
    fastrnn.convert(model)                                       # swap every torch.nn RNN inside
    fastrnn.backends()                                           # ['numba', 'native', 'eager']
    fastrnn.cpu_variants()                                       # ['avx512', 'avx2', 'base']
"""
from . import functional, reference
from .dispatch import backends, cpu_variant, cpu_variants, set_cpu_variant
from .modules import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell, convert

__version__ = "0.1.0"
__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "convert", "backends",
           "cpu_variant", "cpu_variants", "set_cpu_variant",
           "functional", "reference"]
