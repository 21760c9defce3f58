"""The `cuda` backend: the CUDA library libfastrnn_cuda (kernels/cuda) on CUDA tensors, launched
on torch's current stream of the tensor's device."""
import torch

from . import Library, kernel_functions

if not torch.cuda.is_available():
    raise ImportError("no CUDA device is visible to torch")
library = Library("cuda")


def _stream(t):
    return torch.cuda.current_stream(t.device).cuda_stream


def _device(t):
    return torch.cuda.device(t.device)


(rnn_forward, rnn_backward, lstm_forward, lstm_backward, gru_forward, gru_backward,
 lstmp_forward, lstmp_backward) = kernel_functions(library, _stream, _device)
