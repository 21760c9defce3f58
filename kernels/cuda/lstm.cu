/* LSTM on the GPU (gates i, f, g, o): per step, the recurrent product then a fused pointwise
 * kernel; BPTT the same way back. Compiled once per element type (see cell_math.h). */
#include "launch.cuh"

namespace {

/* a [B,4H] holds h_{t-1} W_hhᵀ on entry and the activated gates on exit. h_t, y_t [B,H] get
 * r_t = σ(o) tanh(c_t); with a projection (h_prev NULL) that is r_t, zero past a sequence's end
 * (project_fwd then makes h_t and y_t). */
__global__ void step_fwd(int64_t B, int64_t H, int64_t t, const real *gx_t,
                         const int64_t *lengths, const real *h_prev, const real *c_prev, real *a,
                         real *h_t, real *c_t, real *y_t) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= B * H) return;
  const int64_t b = i / H, j = i % H;
  if (t >= lengths[b]) {
    h_t[i] = h_prev ? h_prev[i] : 0;
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

/* LSTMP, after h_t = r_t W_hrᵀ [B,R]: y_t = h_t, or past a sequence's end h_t = h_{t-1}, y_t = 0. */
__global__ void project_fwd(int64_t B, int64_t R, int64_t t, const int64_t *lengths,
                            const real *h_prev, real *h_t, real *y_t) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= B * R) return;
  if (t >= lengths[i / R]) {
    h_t[i] = h_prev[i];
    y_t[i] = 0;
  } else {
    y_t[i] = h_t[i];
  }
}

/* LSTMP backward, step t: dh [B,R] += dy_t where the sequence runs; du_t = that ∂L/∂h_t (zero
 * past the end), which dW_hr = Σ_t du_tᵀ r_t needs. */
__global__ void project_bwd(int64_t B, int64_t R, int64_t t, const int64_t *lengths,
                            const real *dy_t, real *dh, real *du_t) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= B * R) return;
  if (t >= lengths[i / R]) {
    du_t[i] = 0;
  } else {
    du_t[i] = dh[i] += dy_t[i];
  }
}

/* dh, dc [B,H]: ∂L/∂h_t, ∂L/∂c_t on entry; dc becomes ∂L/∂c_{t-1}, dh is replaced afterwards.
 * With a projection dy_t is ∂L/∂r_t whole and dh is NULL. */
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
  dc[i] = lstm_bwd(g[j], g[H + j], g[2 * H + j], g[3 * H + j], c_t[i], c_prev[i],
                   dh ? dy_t[i] + dh[i] : dy_t[i],
                   dc[i], &d[j], &d[H + j], &d[2 * H + j], &d[3 * H + j]);
}

/* With a projection W_hr [R,H] (LSTMP): r_t [B,H] in rs, h_t = r_t W_hrᵀ [B,R], W_hh [4H,R];
 * without one W_hr is NULL and R = H. */
int forward(const char *fn, int64_t T, int64_t B, int64_t H, int64_t R, int64_t S, int64_t Sg,
            const real *gx, const real *h0, const real *c0, const real *W_hh, const real *W_hr,
            const int64_t *lengths, real *y, real *h_n, real *c_n, real *gates, real *cs,
            real *hs, real *rs, cudaStream_t s) {
  const int64_t BH = B * H, BR = B * R, G = 4 * H;
  launch_check_lengths(B, T, lengths, s);
  copy(hs, h0, BR, s);
  copy(cs, c0, BH, s);
  for (int64_t t = 0; t < T; t++) {
    const real *h_prev = hs + (t % S) * BR, *c_prev = cs + (t % S) * BH;
    real *a = gates + (t % Sg) * B * G, *h_t = hs + ((t + 1) % S) * BR;
    real *r_t = W_hr ? rs + (t % Sg) * BH : h_t;
    launch_rows_times_WT(B, G, R, h_prev, W_hh, a, s);
    step_fwd<<<blocks_for(BH), kThreads, 0, s>>>(B, H, t, gx + t * B * G, lengths,
                                                 W_hr ? nullptr : h_prev, c_prev, a, r_t,
                                                 cs + ((t + 1) % S) * BH,
                                                 W_hr ? r_t : y + t * BH);
    if (W_hr) {
      launch_rows_times_WT(B, R, H, r_t, W_hr, h_t, s);
      project_fwd<<<blocks_for(BR), kThreads, 0, s>>>(B, R, t, lengths, h_prev, h_t, y + t * BR);
    }
  }
  copy(h_n, hs + (T % S) * BR, BR, s);
  copy(c_n, cs + (T % S) * BH, BH, s);
  return cuda_status(fn);
}

int backward(const char *fn, int64_t T, int64_t B, int64_t H, int64_t R, const real *dy,
             const real *dh_n, const real *dc_n, const real *gates, const real *cs,
             const real *W_hh, const real *W_hr, const int64_t *lengths, real *dA, real *dh0,
             real *dc0, real *du, cudaStream_t s) {
  const int64_t BH = B * H, BR = B * R, G = 4 * H;
  real *WT = transposed(fn, W_hh, G, R, s), *WrT = nullptr, *dr = nullptr;
  if (!WT) return FASTRNN_ENOMEM;
  if (W_hr) {  /* W_hrᵀ [H,R], and ∂L/∂r_t [B,H] */
    WrT = transposed(fn, W_hr, R, H, s);
    if (!WrT || cudaMallocAsync((void **)&dr, (size_t)BH * sizeof(real), s) != cudaSuccess) {
      cudaGetLastError();
      if (WrT) cudaFreeAsync(WrT, s);
      cudaFreeAsync(WT, s);
      return fr_nomem(fn, "W_hr's workspace");
    }
  }
  launch_check_lengths(B, T, lengths, s);
  copy(dh0, dh_n, BR, s);
  copy(dc0, dc_n, BH, s);
  for (int64_t t = T - 1; t >= 0; t--) {
    const real *dr_t = dy + t * BH, *dh = dh0;
    if (W_hr) {  /* ∂L/∂r_t = (dy_t + ∂L/∂h_t from step t+1) W_hr */
      project_bwd<<<blocks_for(BR), kThreads, 0, s>>>(B, R, t, lengths, dy + t * BR, dh0,
                                                      du + t * BR);
      launch_rows_times_WT(B, H, R, dh0, WrT, dr, s);
      dr_t = dr, dh = nullptr;
    }
    step_bwd<<<blocks_for(BH), kThreads, 0, s>>>(B, H, t, dr_t, gates + t * B * G,
                                                 cs + (t + 1) * BH, cs + t * BH, lengths, dh,
                                                 dc0, dA + t * B * G);
    launch_rows_times_W(B, G, R, t, lengths, dA + t * B * G, WT, dh0, 0, s);
  }
  cudaFreeAsync(WT, s);
  if (W_hr) {
    cudaFreeAsync(WrT, s);
    cudaFreeAsync(dr, s);
  }
  return cuda_status(fn);
}

}  // namespace

#include "entries_lstm_cuda.h"
#include "entries_lstmp_cuda.h"

static int lstm_forward(const lstm_forward_args *a) {
  return forward(a->fn, a->T, a->B, a->H, a->H, a->S, a->Sg, a->x_in, a->h0, a->c0, a->W_hh,
                 nullptr, a->lengths, a->y, a->h_n, a->c_n, a->gates, a->cs, a->hs, nullptr,
                 (cudaStream_t)a->stream);
}

static int lstm_backward(const lstm_backward_args *a) {
  return backward(a->fn, a->T, a->B, a->H, a->H, a->dy, a->dh_n, a->dc_n, a->gates, a->cs,
                  a->W_hh, nullptr, a->lengths, a->dA, a->dh0, a->dc0, nullptr,
                  (cudaStream_t)a->stream);
}

/* LSTMP: the same with a projection W_hr [R,H] (fastrnn_cells.h). */
static int lstmp_forward(const lstmp_forward_args *a) {
  return forward(a->fn, a->T, a->B, a->H, a->R, a->S, a->Sg, a->x_in, a->h0, a->c0, a->W_hh,
                 a->W_hr, a->lengths, a->y, a->h_n, a->c_n, a->gates, a->cs, a->hs, a->rs,
                 (cudaStream_t)a->stream);
}

static int lstmp_backward(const lstmp_backward_args *a) {
  return backward(a->fn, a->T, a->B, a->H, a->R, a->dy, a->dh_n, a->dc_n, a->gates, a->cs,
                  a->W_hh, a->W_hr, a->lengths, a->dA, a->dh0, a->dc0, a->du,
                  (cudaStream_t)a->stream);
}
