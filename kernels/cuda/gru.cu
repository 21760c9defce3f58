/* GRU on the GPU in torch's form (gates r, z, n): per step, the recurrent product then a fused
 * pointwise kernel; BPTT the same way back. Compiled once per element type (see cell_math.h). */
#include "launch.cuh"

namespace {

/* a [B,3H] holds h_{t-1} W_hhᵀ on entry and the activated gates on exit. */
__global__ void step_fwd(int64_t B, int64_t H, int64_t t, const real *gx_t, const real *b_hh,
                         const int64_t *lengths, const real *h_prev, real *a, real *an,
                         real *h_t, real *y_t) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= B * H) return;
  const int64_t b = i / H, j = i % H;
  if (t >= lengths[b]) {
    h_t[i] = h_prev[i];
    y_t[i] = 0;
    return;
  }
  real *ab = a + b * 3 * H;
  const real *xb = gx_t + b * 3 * H;
  an[i] = ab[2 * H + j] + b_hh[2 * H + j];
  y_t[i] = h_t[i] = gru_fwd(xb[j], xb[H + j], xb[2 * H + j], ab[j] + b_hh[j],
                            ab[H + j] + b_hh[H + j], an[i], h_prev[i], &ab[j], &ab[H + j],
                            &ab[2 * H + j]);
}

/* dh [B,H]: ∂L/∂h_t on entry, the direct part of ∂L/∂h_{t-1} (dh·z) on exit. dA_t [B,3H] is
 * step t's ∂L/∂A for the product (scratch); its n block is also kept in dAn_t [B,H]. */
__global__ void step_bwd(int64_t B, int64_t H, int64_t t, const real *dy_t, const real *gates_t,
                         const real *an_t, const real *h_prev, const int64_t *lengths, real *dh,
                         real *dGx_t, real *dA_t, real *dAn_t) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= B * H) return;
  const int64_t b = i / H, j = i % H;
  real *dx = dGx_t + b * 3 * H, *da = dA_t + b * 3 * H;
  if (t >= lengths[b]) {
    dx[j] = dx[H + j] = dx[2 * H + j] = da[j] = da[H + j] = da[2 * H + j] = dAn_t[i] = 0;
    return;
  }
  const real *g = gates_t + b * 3 * H;
  dh[i] = gru_bwd(g[j], g[H + j], g[2 * H + j], an_t[i], h_prev[i], dy_t[i] + dh[i], &dx[j],
                  &dx[H + j], &dx[2 * H + j]);
  da[j] = dx[j];
  da[H + j] = dx[H + j];
  da[2 * H + j] = dAn_t[i] = dx[2 * H + j] * g[j];
}

int forward(const char *fn, int64_t T, int64_t B, int64_t H, int64_t S, int64_t Sg,
            const real *gx, const real *h0, const real *W_hh, const real *b_hh,
            const int64_t *lengths, real *y, real *h_n, real *gates, real *a_n, real *hs,
            cudaStream_t s) {
  const int64_t BH = B * H, G = 3 * H;
  launch_check_lengths(B, T, lengths, s);
  copy(hs, h0, BH, s);
  for (int64_t t = 0; t < T; t++) {
    const real *h_prev = hs + (t % S) * BH;
    real *a = gates + (t % Sg) * B * G;
    launch_rows_times_WT(B, G, H, h_prev, W_hh, a, s);
    step_fwd<<<blocks_for(BH), kThreads, 0, s>>>(B, H, t, gx + t * B * G, b_hh, lengths, h_prev,
                                                 a, a_n + (t % Sg) * BH, hs + ((t + 1) % S) * BH,
                                                 y + t * BH);
  }
  copy(h_n, hs + (T % S) * BH, BH, s);
  return cuda_status(fn);
}

int backward(const char *fn, int64_t T, int64_t B, int64_t H, const real *dy, const real *dh_n,
             const real *gates, const real *a_n, const real *hs, const real *W_hh,
             const int64_t *lengths, real *dGx, real *dA_n, real *dh0, cudaStream_t s) {
  const int64_t BH = B * H, G = 3 * H;
  real *WT = transposed(fn, W_hh, G, H, s), *dA = nullptr;  /* dA: one step's, [B,3H] */
  if (!WT) return FASTRNN_ENOMEM;
  if (cudaMallocAsync((void **)&dA, (size_t)(B * G) * sizeof(real), s) != cudaSuccess) {
    cudaGetLastError();
    cudaFreeAsync(WT, s);
    return fr_nomem(fn, "dA");
  }
  launch_check_lengths(B, T, lengths, s);
  copy(dh0, dh_n, BH, s);
  for (int64_t t = T - 1; t >= 0; t--) {  /* (one stream: step t−1 writes dA after t read it) */
    step_bwd<<<blocks_for(BH), kThreads, 0, s>>>(B, H, t, dy + t * BH, gates + t * B * G,
                                                 a_n + t * BH, hs + t * BH, lengths, dh0,
                                                 dGx + t * B * G, dA, dA_n + t * BH);
    launch_rows_times_W(B, G, H, t, lengths, dA, WT, dh0, 1, s);
  }
  cudaFreeAsync(WT, s);
  cudaFreeAsync(dA, s);
  return cuda_status(fn);
}

}  // namespace

#include "entries_gru_cuda.h"

static int gru_forward(const gru_forward_args *a) {
  return forward(a->fn, a->T, a->B, a->H, a->S, a->Sg, a->x_in, a->h0, a->W_hh, a->b_hh,
                 a->lengths, a->y, a->h_n, a->gates, a->a_n, a->hs, (cudaStream_t)a->stream);
}

static int gru_backward(const gru_backward_args *a) {
  return backward(a->fn, a->T, a->B, a->H, a->dy, a->dh_n, a->gates, a->a_n, a->hs, a->W_hh,
                  a->lengths, a->dGx, a->dA_n, a->dh0, (cudaStream_t)a->stream);
}
