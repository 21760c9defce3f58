"""The `native` backend: the C library libfastrnn_cpu (kernels/cpu) on CPU tensors."""
from . import Library, kernel_functions

library = Library("cpu")
(rnn_forward, rnn_backward, lstm_forward, lstm_backward,
 gru_forward, gru_backward) = kernel_functions(library)
