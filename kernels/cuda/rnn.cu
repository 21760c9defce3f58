/* Elman RNN on the GPU: per step, the recurrent product then a fused pointwise kernel; BPTT the
 * same way back. Compiled once per element type (see cell_math.h). */
#include "launch.cuh"

namespace {

/* h_t [B,H] holds h_{t-1} W_hhᵀ on entry and h_t on exit. */
__global__ void step_fwd(int64_t B, int64_t H, int64_t t, int relu, const real *gx_t,
                         const int64_t *lengths, const real *h_prev, real *h_t, real *y_t) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= B * H) return;
  if (t >= lengths[i / H]) {
    h_t[i] = h_prev[i];
    y_t[i] = 0;
    return;
  }
  y_t[i] = h_t[i] = rnn_fwd(h_t[i] + gx_t[i], relu);
}

__global__ void step_bwd(int64_t B, int64_t H, int64_t t, int relu, const real *dy_t,
                         const real *h_t, const int64_t *lengths, const real *dh, real *dA_t) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= B * H) return;
  dA_t[i] = t >= lengths[i / H] ? (real)0 : rnn_bwd(h_t[i], dy_t[i] + dh[i], relu);
}

int forward(const char *fn, int64_t T, int64_t B, int64_t H, int relu, int64_t S, const real *gx,
            const real *h0, const real *W_hh, const int64_t *lengths, real *y, real *h_n,
            real *hs, cudaStream_t s) {
  const int64_t BH = B * H;
  launch_check_lengths(B, T, lengths, s);
  copy(hs, h0, BH, s);
  for (int64_t t = 0; t < T; t++) {
    const real *h_prev = hs + (t % S) * BH;
    real *h_t = hs + ((t + 1) % S) * BH;
    launch_rows_times_WT(B, H, H, h_prev, W_hh, h_t, s);
    step_fwd<<<blocks_for(BH), kThreads, 0, s>>>(B, H, t, relu, gx + t * BH, lengths, h_prev, h_t,
                                                 y + t * BH);
  }
  copy(h_n, hs + (T % S) * BH, BH, s);
  return cuda_status(fn);
}

int backward(const char *fn, int64_t T, int64_t B, int64_t H, int relu, const real *dy,
             const real *dh_n, const real *hs, const real *W_hh, const int64_t *lengths,
             real *dA, real *dh0, cudaStream_t s) {
  const int64_t BH = B * H;
  real *WT = transposed(fn, W_hh, H, H, s);
  if (!WT) return FASTRNN_ENOMEM;
  launch_check_lengths(B, T, lengths, s);
  copy(dh0, dh_n, BH, s);
  for (int64_t t = T - 1; t >= 0; t--) {
    step_bwd<<<blocks_for(BH), kThreads, 0, s>>>(B, H, t, relu, dy + t * BH, hs + (t + 1) * BH,
                                                 lengths, dh0, dA + t * BH);
    launch_rows_times_W(B, H, H, t, lengths, dA + t * BH, WT, dh0, 0, s);
  }
  cudaFreeAsync(WT, s);
  return cuda_status(fn);
}

}  // namespace

#include "entries_rnn_cuda.h"

static int rnn_forward(const rnn_forward_args *a) {
  return forward(a->fn, a->T, a->B, a->H, a->relu, a->S, a->x_in, a->h0, a->W_hh, a->lengths,
                 a->y, a->h_n, a->hs, (cudaStream_t)a->stream);
}

static int rnn_backward(const rnn_backward_args *a) {
  return backward(a->fn, a->T, a->B, a->H, a->relu, a->dy, a->dh_n, a->hs, a->W_hh, a->lengths,
                  a->dA, a->dh0, (cudaStream_t)a->stream);
}
