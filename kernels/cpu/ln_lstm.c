/* LayerNorm LSTM on the CPU (fastrnn.reference.ln_lstm_forward) and its BPTT: a_t =
 * LN(V_t; γ_ih) + LN(W_hh h_{t-1}; γ_hh) + b_ih + b_hh, with V = x W_ihᵀ taken over all T by the
 * caller (one GEMM); c_t = σ(f) c_{t-1} + σ(i) tanh(g); h_t = σ(o) tanh(LN(c_t; γ_c) + β_c).
 * LN(v; γ) = γ (v − mean v) / sqrt(var v + 1e-5) over each whole row. Compiled once per element
 * type and CPU variant. */
#include "internal.h"

/* The description (loop.h): four gate blocks, two forward passes (the product's row statistics
 * and the gates; the cell's row statistics and h) and three backward ones (the output gate and
 * ∂L/∂u; the cell's LayerNorm backward and the other gates; the product's LayerNorm backward).
 * The product W_hh h_{t-1} goes to a step's buffer a [B,4H] (read whole by every thread in the
 * first pass, so never overwritten in place); the forward saves the activated gates, the
 * normalised V_t, product and cell (n_x, n_h, n_c) with their 1/σ, and every c_t. The input's
 * LayerNorm runs here rather than as torch ops over all T·B rows: those passes and their fresh
 * buffers had cost more than the recurrence (T = 100, B = 16, H = 128, Zen 3: 6.3 against
 * 2.9 ms). */
#define CELL_GATES 4
#define CELL_BHH_INSIDE 0
#define CELL_PHASES 2
#define CELL_WHOLE_PRODUCT 1
#define CELL_BPHASES 3
#define LN_EPS ((real)1e-5)
typedef struct {
  int64_t B, H, S, Sg;
  const real *g_ih, *g_hh, *g_c, *b_c;  /* [4H], [4H], [H], [H] */
  const real *b_ih, *b_hh;              /* [4H] or NULL */
  real *a;                              /* [B,4H] the step's W_hh h_{t-1} */
  real *gates, *nx, *rx, *nh, *rh;      /* [Sg,B,4H], [Sg,B,4H], [Sg,B], [Sg,B,4H], [Sg,B] */
  real *cs, *nc, *rc;                   /* [S,B,H], [Sg,B,H], [Sg,B] */
  real *dA, *dV, *dAh, *du, *dc;        /* [T,B,4H] ×3, [T,B,H], [B,H] (backward) */
} cell_t;

static inline real *cell_product(const cell_t *c, int64_t t, real *r_t) { return c->a; }

static inline __attribute__((always_inline)) void cell_forward(
    const cell_t *c, int phase, int64_t t, int64_t b, int64_t j0, int64_t j1, int bf16,
    real *ab, const real *xb, int64_t xs, const real *hp, real *rb, real *yb) {
  const int64_t H = c->H, G = 4 * H, s = t % c->Sg, row = s * c->B + b;
  real *gb = c->gates + row * G, *cb = c->cs + (((t + 1) % c->S) * c->B + b) * H;
  real mu, rstd;
  if (phase == 0) {  /* the LayerNorms of V_t (xb: its whole row) and the product, the gates, c_t */
    real mx, rsx;
    fr_row_stats(xb, G, LN_EPS, &mx, &rsx);
    fr_row_stats(ab, G, LN_EPS, &mu, &rstd);
    if (j0 == 0) c->rx[row] = rsx, c->rh[row] = rstd;
    real *nxb = c->nx + row * G, *nb = c->nh + row * G;
    const real *gi = c->g_ih, *gh = c->g_hh, *cp = c->cs + ((t % c->S) * c->B + b) * H;
    const real *bi = c->b_ih, *bh = c->b_hh;
    /* the pre-activations into the gates' row (the product's row is still being read whole) */
    for (int64_t q = 0; q < 4; q++) {
      #pragma omp simd
      for (int64_t j = q * H + j0; j < q * H + j1; j++) {
        nxb[j] = (xb[j] - mx) * rsx;
        nb[j] = (ab[j] - mu) * rstd;
        gb[j] = gi[j] * nxb[j] + gh[j] * nb[j] + (bi ? bi[j] : 0) + (bh ? bh[j] : 0);
      }
    }
    #pragma omp simd
    for (int64_t j = j0; j < j1; j++) {
      const real i = fr_sigmoid(gb[j]), f = fr_sigmoid(gb[H + j]), gg = FR_TANH(gb[2 * H + j]);
      gb[j] = i, gb[H + j] = f, gb[2 * H + j] = gg;
      gb[3 * H + j] = fr_sigmoid(gb[3 * H + j]);
      cb[j] = f * cp[j] + i * gg;
    }
    return;
  }
  /* the cell's LayerNorm and h_t = σ(o) tanh(LN(c_t) + β_c) */
  fr_row_stats(cb, H, LN_EPS, &mu, &rstd);
  if (j0 == 0) c->rc[row] = rstd;
  real *nb = c->nc + row * H;
  const real *g = c->g_c, *beta = c->b_c;
  #pragma omp simd
  for (int64_t j = j0; j < j1; j++) {
    nb[j] = (cb[j] - mu) * rstd;
    yb[j] = rb[j] = gb[3 * H + j] * FR_TANH(g[j] * nb[j] + beta[j]);
  }
}

/* An ended row carries c and saves zeros (the sums over rows of the gains' gradients read them). */
static inline void cell_carry(const cell_t *c, int64_t t, int64_t b, int64_t j0, int64_t j1) {
  const int64_t H = c->H, BH = c->B * H, row = (t % c->Sg) * c->B + b;
  memcpy(c->cs + ((t + 1) % c->S) * BH + b * H + j0, c->cs + (t % c->S) * BH + b * H + j0,
         (size_t)(j1 - j0) * sizeof(real));
  fr_zero_units(c->nx + row * 4 * H, 4, H, j0, j1);
  fr_zero_units(c->nh + row * 4 * H, 4, H, j0, j1);
  fr_zero_units(c->nc + row * H, 1, H, j0, j1);
}

static inline real *cell_dproduct(const cell_t *c, int64_t t) {
  return c->dAh + t * c->B * 4 * c->H;
}

/* Pass 0: ∂L/∂h_t = dy + dh (dh consumed) gives the output gate's ∂L/∂a and ∂L/∂u, u = LN(c_t)
 * + β_c; pass 1: through the cell's LayerNorm to ∂L/∂c_t and the other gates; pass 2: through
 * the two LayerNorms of a_t, to ∂L/∂V_t (dV) and ∂L/∂(W_hh h_{t-1}) (dA, what the product
 * multiplies). */
static inline __attribute__((always_inline)) void cell_backward(
    const cell_t *c, int phase, int64_t t, int64_t b, int64_t j0, int64_t j1, const real *dyb,
    real *dhb, real *dAb) {
  const int64_t H = c->H, G = 4 * H, row = t * c->B + b;
  const real *gb = c->gates + row * G;
  real *dab = c->dA + row * G, *dub = c->du + row * H;
  const real *ncb = c->nc + row * H;
  if (phase == 0) {
    const real *g = c->g_c, *beta = c->b_c;
    #pragma omp simd
    for (int64_t j = j0; j < j1; j++) {
      const real dh = dyb[j] + dhb[j], o = gb[3 * H + j];
      const real u = FR_TANH(g[j] * ncb[j] + beta[j]);
      dab[3 * H + j] = dh * u * o * ((real)1 - o);
      dub[j] = dh * o * ((real)1 - u * u);
      dhb[j] = 0;
    }
    return;
  }
  if (phase == 1) {
    real m1, m2;
    fr_row_moments(dub, c->g_c, ncb, H, &m1, &m2);
    const real rstd = c->rc[row], *g = c->g_c;
    const real *cp = c->cs + row * H;
    real *dcb = c->dc + b * H;
    #pragma omp simd
    for (int64_t j = j0; j < j1; j++) {
      const real i = gb[j], f = gb[H + j], gg = gb[2 * H + j];
      const real dc = dcb[j] + rstd * (dub[j] * g[j] - m1 - ncb[j] * m2);
      dab[j] = dc * gg * i * ((real)1 - i);
      dab[H + j] = dc * cp[j] * f * ((real)1 - f);
      dab[2 * H + j] = dc * i * ((real)1 - gg * gg);
      dcb[j] = dc * f;
    }
    return;
  }
  fr_ln_backward(dab, c->g_ih, c->nx + row * G, c->rx[row], 4, H, j0, j1, c->dV + row * G);
  fr_ln_backward(dab, c->g_hh, c->nh + row * G, c->rh[row], 4, H, j0, j1, dAb);
}

static inline void cell_ended(const cell_t *c, int64_t t, int64_t b, int64_t j0, int64_t j1) {
  const int64_t H = c->H, row = t * c->B + b;
  fr_zero_units(c->dA + row * 4 * H, 4, H, j0, j1);
  fr_zero_units(c->dV + row * 4 * H, 4, H, j0, j1);
  fr_zero_units(c->du + row * H, 1, H, j0, j1);
}

#include "loop.h"

#include "entries_ln_lstm.h"

static int ln_lstm_forward(const ln_lstm_forward_args *a) {
  const int64_t B = a->B, H = a->H, BH = B * H, S = a->S, Sg = a->Sg;
  real *p = fr_work_alloc((size_t)(B * 4 * H) * sizeof(real));
  if (!p) return fr_nomem(a->fn, "the step's product");
  const cell_t c = {B, H, S, Sg, a->g_ih, a->g_hh, a->g_c, a->b_c, a->b_ih, a->b_hh, p, a->gates,
                    a->nx, a->rx, a->nh, a->rh, a->cs, a->nc, a->rc, NULL, NULL, NULL, NULL, NULL};
  fr_loop f = {a->T, B, H, H, S, Sg, a->x_in, NULL, NULL, NULL, a->lengths, a->y, a->hs, NULL};
  fr_state0(a->cs, a->c0, BH, NULL);
  const int e = fr_forward(a->fn, &f, &c, a->h0, a->W_hh, NULL, NULL, a->h_n);
  if (!e) memcpy(a->c_n, a->cs + (a->T % S) * BH, (size_t)BH * sizeof(real));
  fr_work_free(p);
  return e;
}

static int ln_lstm_backward(const ln_lstm_backward_args *a) {
  const int64_t T = a->T, B = a->B, H = a->H;
  const cell_t c = {B, H, T + 1, T, a->g_ih, a->g_hh, a->g_c, a->b_c, NULL, NULL, NULL,
                    (real *)a->gates, (real *)a->nx, (real *)a->rx, (real *)a->nh, (real *)a->rh,
                    (real *)a->cs, (real *)a->nc, (real *)a->rc, a->dA, a->dV, a->dAh, a->du,
                    a->dc0};
  fr_bloop f = {T, B, H, H, a->dy, NULL, NULL, a->lengths, NULL, NULL, NULL};
  memcpy(a->dc0, a->dc_n, (size_t)(B * H) * sizeof(real));
  return fr_backward(a->fn, &f, &c, a->dh_n, a->W_hh, NULL, a->dh0);
}
