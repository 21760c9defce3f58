/* LayerNorm GRU on the GPU (fastrnn_cells.h; the CPU's is kernels/cpu/ln_gru.c, whose results
 * these follow): per step the recurrent product, then one block per batch row for both
 * LayerNorms and the GRU's gates; BPTT the same way back. Compiled once per element type. */
#include "layernorm.cuh"

namespace {

/* Step t of row b = blockIdx.x. a [B,3H] = h_{t-1} W_hhᵀ; saved rows at slot `row`. */
__global__ void step_fwd(int64_t B, int64_t H, int64_t t, int64_t row0, const real *xv_t,
                         const real *a, const real *g_ih, const real *b_ih, const real *g_hh,
                         const real *b_hh, const int64_t *lengths, const real *h_prev,
                         real *h_t, real *y_t, real *gates, real *a_n, real *nx, real *rx,
                         real *nh, real *rh) {
  __shared__ double sh[kThreads];
  const int64_t b = blockIdx.x, G = 3 * H, row = row0 + b, o = b * H;
  real *gb = gates + row * G, *nxb = nx + row * G, *nhb = nh + row * G;
  if (t >= lengths[b]) {  /* past the sequence's end: carry h, output and save zeros */
    for (int64_t j = threadIdx.x; j < H; j += kThreads) h_t[o + j] = h_prev[o + j], y_t[o + j] = 0;
    zero_row(nxb, G);
    zero_row(nhb, G);
    return;
  }
  const real *xb = xv_t + b * G, *ab = a + b * G;
  real mx, rsx, mu, rstd;
  row_stats(xb, G, sh, &mx, &rsx);
  row_stats(ab, G, sh, &mu, &rstd);
  if (threadIdx.x == 0) rx[row] = rsx, rh[row] = rstd;
  for (int64_t j = threadIdx.x; j < G; j += kThreads) {
    nxb[j] = (xb[j] - mx) * rsx;
    nhb[j] = (ab[j] - mu) * rstd;
  }
  __syncthreads();  /* (a unit's three gates lie H apart: other threads wrote them) */
  for (int64_t j = threadIdx.x; j < H; j += kThreads) {
    const real xr = g_ih[j] * nxb[j] + (b_ih ? b_ih[j] : 0);
    const real xz = g_ih[H + j] * nxb[H + j] + (b_ih ? b_ih[H + j] : 0);
    const real xn = g_ih[2 * H + j] * nxb[2 * H + j] + (b_ih ? b_ih[2 * H + j] : 0);
    const real hr = g_hh[j] * nhb[j] + (b_hh ? b_hh[j] : 0);
    const real hz = g_hh[H + j] * nhb[H + j] + (b_hh ? b_hh[H + j] : 0);
    const real an = g_hh[2 * H + j] * nhb[2 * H + j] + (b_hh ? b_hh[2 * H + j] : 0);
    a_n[row * H + j] = an;
    y_t[o + j] = h_t[o + j] = gru_fwd(xr, xz, xn, hr, hz, an, h_prev[o + j], &gb[j],
                                      &gb[H + j], &gb[2 * H + j]);
  }
}

/* Step t of row b back: dh [B,H] holds ∂L/∂h_t (less dy_t) on entry and the direct part of
 * ∂L/∂h_{t-1} (dh·z) on exit, to which the product adds dAh_t W_hh. Writes the step's rows of
 * dX (∂L/∂x̂), dHh (∂L/∂ĥ), dV (∂L/∂V) and dAh (∂L/∂(h_{t-1} W_hhᵀ)). */
__global__ void step_bwd(int64_t B, int64_t H, int64_t t, const real *dy_t, const real *gates,
                         const real *a_n, const real *nx, const real *rx, const real *nh,
                         const real *rh, const real *hs, const real *g_ih, const real *g_hh,
                         const int64_t *lengths, real *dh, real *dX, real *dHh, real *dV,
                         real *dAh) {
  __shared__ double sh[kThreads];
  const int64_t b = blockIdx.x, G = 3 * H, row = t * B + b, o = b * H;
  real *dxb = dX + row * G, *dhh = dHh + row * G;
  if (t >= lengths[b]) {  /* ended: ∂L/∂h passes through unchanged */
    zero_row(dxb, G);
    zero_row(dhh, G);
    zero_row(dV + row * G, G);
    zero_row(dAh + row * G, G);
    return;
  }
  const real *gb = gates + row * G, *anb = a_n + row * H, *hp = hs + row * H;
  for (int64_t j = threadIdx.x; j < H; j += kThreads) {  /* the GRU's math */
    dh[o + j] = gru_bwd(gb[j], gb[H + j], gb[2 * H + j], anb[j], hp[j], dy_t[o + j] + dh[o + j],
                        &dxb[j], &dxb[H + j], &dxb[2 * H + j]);
    dhh[j] = dxb[j];
    dhh[H + j] = dxb[H + j];
    dhh[2 * H + j] = dxb[2 * H + j] * gb[j];
  }
  __syncthreads();  /* through the two LayerNorms */
  ln_backward_row(dxb, g_ih, nx + row * G, rx[row], G, sh, dV + row * G);
  ln_backward_row(dhh, g_hh, nh + row * G, rh[row], G, sh, dAh + row * G);
}

}  // namespace

#include "entries_ln_gru_cuda.h"

static int ln_gru_forward(const ln_gru_forward_args *a) {
  const int64_t T = a->T, B = a->B, H = a->H, S = a->S, Sg = a->Sg, BH = B * H, G = 3 * H;
  cudaStream_t s = (cudaStream_t)a->stream;
  real *p = product_buffer(a->fn, B, G, s);
  if (!p) return FASTRNN_ENOMEM;
  launch_check_lengths(B, T, a->lengths, s);
  copy(a->hs, a->h0, BH, s);
  for (int64_t t = 0; t < T; t++) {
    const real *h_prev = a->hs + (t % S) * BH;
    launch_rows_times_WT(B, G, H, h_prev, a->W_hh, p, s);
    step_fwd<<<(unsigned)B, kThreads, 0, s>>>(
        B, H, t, (t % Sg) * B, a->x_in + t * B * G, p, a->g_ih, a->b_ih, a->g_hh, a->b_hh,
        a->lengths, h_prev, a->hs + ((t + 1) % S) * BH, a->y + t * BH, a->gates, a->a_n, a->nx,
        a->rx, a->nh, a->rh);
  }
  copy(a->h_n, a->hs + (T % S) * BH, BH, s);
  cudaFreeAsync(p, s);
  return cuda_status(a->fn);
}

static int ln_gru_backward(const ln_gru_backward_args *a) {
  const int64_t T = a->T, B = a->B, H = a->H, BH = B * H, G = 3 * H;
  cudaStream_t s = (cudaStream_t)a->stream;
  real *WT = transposed(a->fn, a->W_hh, G, H, s);
  if (!WT) return FASTRNN_ENOMEM;
  launch_check_lengths(B, T, a->lengths, s);
  copy(a->dh0, a->dh_n, BH, s);
  for (int64_t t = T - 1; t >= 0; t--) {
    step_bwd<<<(unsigned)B, kThreads, 0, s>>>(
        B, H, t, a->dy + t * BH, a->gates, a->a_n, a->nx, a->rx, a->nh, a->rh, a->hs, a->g_ih,
        a->g_hh, a->lengths, a->dh0, a->dX, a->dHh, a->dV, a->dAh);
    launch_rows_times_W(B, G, H, t, a->lengths, a->dAh + t * B * G, WT, a->dh0, 1, s);
  }
  cudaFreeAsync(WT, s);
  return cuda_status(a->fn);
}
