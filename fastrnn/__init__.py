"""fastrnn: fused kernels for recurrent networks (Elman RNN, LSTM, GRU) behind torch.nn's API."""
from . import functional, reference
from .dispatch import backends

__version__ = "0.1.0"
__all__ = ["backends", "functional", "reference"]
