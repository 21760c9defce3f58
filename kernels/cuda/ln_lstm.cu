/* LayerNorm LSTM on the GPU (fastrnn_cells.h; the CPU's is kernels/cpu/ln_lstm.c, whose results
 * these follow): per step the recurrent product, then one block per batch row for both
 * LayerNorms of a_t, the gates, the cell and its LayerNorm; BPTT the same way back. Compiled
 * once per element type (see cell_math.h). */
#include "layernorm.cuh"

namespace {

/* Step t of row b = blockIdx.x. a [B,4H] = h_{t-1} W_hhᵀ; saved rows at slot `row`. */
__global__ void step_fwd(int64_t B, int64_t H, int64_t t, int64_t row0, const real *xv_t,
                         const real *a, const real *g_ih, const real *b_ih, const real *b_hh,
                         const real *g_hh, const real *g_c, const real *b_c,
                         const int64_t *lengths, const real *h_prev, real *h_t,
                         const real *c_prev, real *c_t, real *y_t, real *gates, real *nx,
                         real *rx, real *nh, real *rh, real *nc, real *rc) {
  __shared__ double sh[kThreads];
  const int64_t b = blockIdx.x, G = 4 * H, row = row0 + b, o = b * H;
  real *gb = gates + row * G, *nxb = nx + row * G, *nhb = nh + row * G, *ncb = nc + row * H;
  if (t >= lengths[b]) {  /* past the sequence's end: carry the states, output and save zeros */
    for (int64_t j = threadIdx.x; j < H; j += kThreads) {
      c_t[o + j] = c_prev[o + j], h_t[o + j] = h_prev[o + j];
      y_t[o + j] = ncb[j] = 0;
    }
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
    gb[j] = g_ih[j] * nxb[j] + g_hh[j] * nhb[j] + (b_ih ? b_ih[j] : 0) + (b_hh ? b_hh[j] : 0);
  }
  __syncthreads();  /* (a unit's four gates lie H apart: other threads wrote them) */
  for (int64_t j = threadIdx.x; j < H; j += kThreads) {
    const real i = fr_sigmoid(gb[j]), f = fr_sigmoid(gb[H + j]), g = FR_TANH(gb[2 * H + j]);
    gb[j] = i, gb[H + j] = f, gb[2 * H + j] = g;
    gb[3 * H + j] = fr_sigmoid(gb[3 * H + j]);
    c_t[o + j] = f * c_prev[o + j] + i * g;
  }
  __syncthreads();
  row_stats(c_t + o, H, sh, &mu, &rstd);
  if (threadIdx.x == 0) rc[row] = rstd;
  for (int64_t j = threadIdx.x; j < H; j += kThreads) {
    ncb[j] = (c_t[o + j] - mu) * rstd;
    y_t[o + j] = h_t[o + j] = gb[3 * H + j] * FR_TANH(g_c[j] * ncb[j] + b_c[j]);
  }
}

/* Step t of row b back: dh, dc [B,H] hold ∂L/∂h_t (less dy_t) and ∂L/∂c_t on entry; dh is
 * consumed (the product then writes ∂L/∂h_{t-1} there), dc becomes ∂L/∂c_{t-1}. Writes the
 * step's rows of dA (∂L/∂a), dV (∂L/∂V), dAh (∂L/∂(h_{t-1} W_hhᵀ)) and du (∂L/∂u). */
__global__ void step_bwd(int64_t B, int64_t H, int64_t t, const real *dy_t, const real *gates,
                         const real *nx, const real *rx, const real *nh, const real *rh,
                         const real *cs, const real *nc, const real *rc, const real *g_ih,
                         const real *g_hh, const real *g_c, const real *b_c,
                         const int64_t *lengths, real *dh, real *dc, real *dA, real *dV,
                         real *dAh, real *du) {
  __shared__ double sh[kThreads];
  const int64_t b = blockIdx.x, G = 4 * H, row = t * B + b, o = b * H;
  real *dab = dA + row * G, *dub = du + row * H;
  if (t >= lengths[b]) {  /* ended: ∂L/∂h and ∂L/∂c pass through unchanged */
    zero_row(dab, G);
    zero_row(dV + row * G, G);
    zero_row(dAh + row * G, G);
    zero_row(dub, H);
    return;
  }
  const real *gb = gates + row * G, *ncb = nc + row * H, *cp = cs + row * H;
  for (int64_t j = threadIdx.x; j < H; j += kThreads) {  /* the output gate and ∂L/∂u */
    const real d = dy_t[o + j] + dh[o + j], og = gb[3 * H + j];
    const real u = FR_TANH(g_c[j] * ncb[j] + b_c[j]);
    dab[3 * H + j] = d * u * og * ((real)1 - og);
    dub[j] = d * og * ((real)1 - u * u);
    dh[o + j] = 0;
  }
  __syncthreads();
  real m1, m2;  /* through the cell's LayerNorm to ∂L/∂c_t, then the other gates */
  row_moments(dub, g_c, ncb, H, sh, &m1, &m2);
  for (int64_t j = threadIdx.x; j < H; j += kThreads) {
    const real i = gb[j], f = gb[H + j], g = gb[2 * H + j];
    const real d = dc[o + j] + rc[row] * (dub[j] * g_c[j] - m1 - ncb[j] * m2);
    dab[j] = d * g * i * ((real)1 - i);
    dab[H + j] = d * cp[j] * f * ((real)1 - f);
    dab[2 * H + j] = d * i * ((real)1 - g * g);
    dc[o + j] = d * f;
  }
  __syncthreads();  /* through the LayerNorms of V_t and of the product */
  ln_backward_row(dab, g_ih, nx + row * G, rx[row], G, sh, dV + row * G);
  ln_backward_row(dab, g_hh, nh + row * G, rh[row], G, sh, dAh + row * G);
}

}  // namespace

#include "entries_ln_lstm_cuda.h"

static int ln_lstm_forward(const ln_lstm_forward_args *a) {
  const int64_t T = a->T, B = a->B, H = a->H, S = a->S, Sg = a->Sg, BH = B * H, G = 4 * H;
  cudaStream_t s = (cudaStream_t)a->stream;
  real *p = product_buffer(a->fn, B, G, s);
  if (!p) return FASTRNN_ENOMEM;
  launch_check_lengths(B, T, a->lengths, s);
  copy(a->hs, a->h0, BH, s);
  copy(a->cs, a->c0, BH, s);
  for (int64_t t = 0; t < T; t++) {
    const real *h_prev = a->hs + (t % S) * BH, *c_prev = a->cs + (t % S) * BH;
    launch_rows_times_WT(B, G, H, h_prev, a->W_hh, p, s);
    step_fwd<<<(unsigned)B, kThreads, 0, s>>>(
        B, H, t, (t % Sg) * B, a->x_in + t * B * G, p, a->g_ih, a->b_ih, a->b_hh, a->g_hh,
        a->g_c, a->b_c, a->lengths, h_prev, a->hs + ((t + 1) % S) * BH, c_prev,
        a->cs + ((t + 1) % S) * BH, a->y + t * BH, a->gates, a->nx, a->rx, a->nh, a->rh, a->nc,
        a->rc);
  }
  copy(a->h_n, a->hs + (T % S) * BH, BH, s);
  copy(a->c_n, a->cs + (T % S) * BH, BH, s);
  cudaFreeAsync(p, s);
  return cuda_status(a->fn);
}

static int ln_lstm_backward(const ln_lstm_backward_args *a) {
  const int64_t T = a->T, B = a->B, H = a->H, BH = B * H, G = 4 * H;
  cudaStream_t s = (cudaStream_t)a->stream;
  real *WT = transposed(a->fn, a->W_hh, G, H, s);
  if (!WT) return FASTRNN_ENOMEM;
  launch_check_lengths(B, T, a->lengths, s);
  copy(a->dh0, a->dh_n, BH, s);
  copy(a->dc0, a->dc_n, BH, s);
  for (int64_t t = T - 1; t >= 0; t--) {
    step_bwd<<<(unsigned)B, kThreads, 0, s>>>(
        B, H, t, a->dy + t * BH, a->gates, a->nx, a->rx, a->nh, a->rh, a->cs, a->nc, a->rc,
        a->g_ih, a->g_hh, a->g_c, a->b_c, a->lengths, a->dh0, a->dc0, a->dA, a->dV, a->dAh,
        a->du);
    launch_rows_times_W(B, G, H, t, a->lengths, a->dAh + t * B * G, WT, a->dh0, 0, s);
  }
  cudaFreeAsync(WT, s);
  return cuda_status(a->fn);
}
