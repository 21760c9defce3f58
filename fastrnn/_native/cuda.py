"""The `cuda` backend: the CUDA library libfastrnn_cuda (kernels/cuda) on CUDA tensors, launched
on torch's current stream of the tensor's device."""
import torch

from . import Library, kernel_call

if not torch.cuda.is_available():
    raise ImportError("no CUDA device is visible to torch")
library = Library("cuda")


def _stream(t):
    return torch.cuda.current_stream(t.device).cuda_stream


def _device(t):
    return torch.cuda.device(t.device)


call = kernel_call(library, _stream, _device)
FUSED = False
