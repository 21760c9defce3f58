/* LSTM on the GPU (gates i, f, g, o): per step, the recurrent product then a fused pointwise
 * kernel; BPTT the same way back. Compiled once per element type (see cell_math.h). */
#include "launch.cuh"

namespace {

/* a [B,4H] holds h_{t-1} W_hhᵀ on entry and the activated gates on exit. */
__global__ void step_fwd(int64_t B, int64_t H, int64_t t, const real *gx_t,
                         const int64_t *lengths, const real *h_prev, const real *c_prev, real *a,
                         real *h_t, real *c_t, real *y_t) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= B * H) return;
  const int64_t b = i / H, j = i % H;
  if (t >= lengths[b]) {
    h_t[i] = h_prev[i];
    c_t[i] = c_prev[i];
    y_t[i] = 0;
    return;
  }
  real *ab = a + b * 4 * H;
  const real *xb = gx_t + b * 4 * H;
  y_t[i] = h_t[i] = lstm_fwd(ab[j] + xb[j], ab[H + j] + xb[H + j], ab[2 * H + j] + xb[2 * H + j],
                             ab[3 * H + j] + xb[3 * H + j], c_prev[i], &ab[j], &ab[H + j],
                             &ab[2 * H + j], &ab[3 * H + j], &c_t[i]);
}

/* dh, dc [B,H]: ∂L/∂h_t, ∂L/∂c_t on entry; dc becomes ∂L/∂c_{t-1}, dh is replaced afterwards. */
__global__ void step_bwd(int64_t B, int64_t H, int64_t t, const real *dy_t, const real *gates_t,
                         const real *c_t, const real *c_prev, const int64_t *lengths,
                         const real *dh, real *dc, real *dA_t) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= B * H) return;
  const int64_t b = i / H, j = i % H;
  real *d = dA_t + b * 4 * H;
  if (t >= lengths[b]) {
    d[j] = d[H + j] = d[2 * H + j] = d[3 * H + j] = 0;
    return;
  }
  const real *g = gates_t + b * 4 * H;
  dc[i] = lstm_bwd(g[j], g[H + j], g[2 * H + j], g[3 * H + j], c_t[i], c_prev[i], dy_t[i] + dh[i],
                   dc[i], &d[j], &d[H + j], &d[2 * H + j], &d[3 * H + j]);
}

int forward(const char *fn, int64_t T, int64_t B, int64_t H, int64_t S, int64_t Sg,
            const real *gx, const real *h0, const real *c0, const real *W_hh,
            const int64_t *lengths, real *y, real *h_n, real *c_n, real *gates, real *cs,
            real *hs, cudaStream_t s) {
  const int64_t BH = B * H, G = 4 * H;
  launch_check_lengths(B, T, lengths, s);
  copy(hs, h0, BH, s);
  copy(cs, c0, BH, s);
  for (int64_t t = 0; t < T; t++) {
    const real *h_prev = hs + (t % S) * BH, *c_prev = cs + (t % S) * BH;
    real *a = gates + (t % Sg) * B * G;
    launch_rows_times_WT(B, G, H, h_prev, W_hh, a, s);
    step_fwd<<<blocks_for(BH), kThreads, 0, s>>>(B, H, t, gx + t * B * G, lengths, h_prev, c_prev,
                                                 a, hs + ((t + 1) % S) * BH,
                                                 cs + ((t + 1) % S) * BH, y + t * BH);
  }
  copy(h_n, hs + (T % S) * BH, BH, s);
  copy(c_n, cs + (T % S) * BH, BH, s);
  return cuda_status(fn);
}

int backward(const char *fn, int64_t T, int64_t B, int64_t H, const real *dy, const real *dh_n,
             const real *dc_n, const real *gates, const real *cs, const real *W_hh,
             const int64_t *lengths, real *dA, real *dh0, real *dc0, cudaStream_t s) {
  const int64_t BH = B * H, G = 4 * H;
  real *WT = transposed(fn, W_hh, G, H, s);
  if (!WT) return FASTRNN_ENOMEM;
  launch_check_lengths(B, T, lengths, s);
  copy(dh0, dh_n, BH, s);
  copy(dc0, dc_n, BH, s);
  for (int64_t t = T - 1; t >= 0; t--) {
    step_bwd<<<blocks_for(BH), kThreads, 0, s>>>(B, H, t, dy + t * BH, gates + t * B * G,
                                                 cs + (t + 1) * BH, cs + t * BH, lengths, dh0,
                                                 dc0, dA + t * B * G);
    launch_rows_times_W(B, G, H, t, lengths, dA + t * B * G, WT, dh0, 0, s);
  }
  cudaFreeAsync(WT, s);
  return cuda_status(fn);
}

}  // namespace

int SFX_CUDA(fastrnn_lstm_forward)(int64_t T, int64_t B, int64_t H, const real *gx,
                                   const real *h0, const real *c0, const real *W_hh,
                                   const int64_t *lengths, real *y, real *h_n, real *c_n,
                                   real *gates, real *cs, real *hs, void *stream) {
  FR_CHECK(e, T, B, H, 4, lengths, 0, gx, h0, c0, W_hh, lengths, y, h_n, c_n, gates, cs, hs);
  return e ? e : forward(__func__, T, B, H, T + 1, T, gx, h0, c0, W_hh, lengths, y, h_n, c_n,
                         gates, cs, hs, (cudaStream_t)stream);
}

int SFX_CUDA(fastrnn_lstm_forward_infer)(int64_t T, int64_t B, int64_t H, const real *gx,
                                         const real *h0, const real *c0, const real *W_hh,
                                         const int64_t *lengths, real *y, real *h_n, real *c_n,
                                         real *gates, real *cs, real *hs, void *stream) {
  FR_CHECK(e, T, B, H, 4, lengths, 0, gx, h0, c0, W_hh, lengths, y, h_n, c_n, gates, cs, hs);
  return e ? e : forward(__func__, T, B, H, 2, 1, gx, h0, c0, W_hh, lengths, y, h_n, c_n, gates,
                         cs, hs, (cudaStream_t)stream);
}

int SFX_CUDA(fastrnn_lstm_backward)(int64_t T, int64_t B, int64_t H, const real *dy,
                                    const real *dh_n, const real *dc_n, const real *gates,
                                    const real *cs, const real *W_hh, const int64_t *lengths,
                                    real *dA, real *dh0, real *dc0, void *stream) {
  FR_CHECK(e, T, B, H, 4, lengths, 0, dy, dh_n, dc_n, gates, cs, W_hh, lengths, dA, dh0, dc0);
  return e ? e : backward(__func__, T, B, H, dy, dh_n, dc_n, gates, cs, W_hh, lengths, dA, dh0,
                          dc0, (cudaStream_t)stream);
}
