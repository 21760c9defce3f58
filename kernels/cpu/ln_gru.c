/* LayerNorm GRU on the CPU (fastrnn.reference.ln_gru_forward) and its BPTT: x̂ = LN(V_t; γ_ih) +
 * b_ih, with V = x W_ihᵀ taken over all T by the caller (one GEMM); ĥ = LN(W_hh h_{t-1}; γ_hh) +
 * b_hh;
 * r = σ(x̂_r + ĥ_r), z = σ(x̂_z + ĥ_z), n = tanh(x̂_n + r ĥ_n), h_t = (1 − z) n + z h_{t-1}.
 * Compiled once per element type and CPU variant. */
#include "internal.h"

/* The description (loop.h): three gate blocks, one forward pass after the product (which reads
 * its whole row: the product goes to a step's buffer a [B,3H], never overwritten in place) and two
 * backward ones (the GRU's math to ∂L/∂x̂ and ∂L/∂ĥ; the two LayerNorms' backward). The forward
 * saves the activated gates, ĥ_n, and the normalised V_t and product with their 1/σ (as the
 * LayerNorm LSTM, the input's LayerNorm runs here: see ln_lstm.c). */
#define CELL_GATES 3
#define CELL_BHH_INSIDE 1
#define CELL_PHASES 1
#define CELL_WHOLE_PRODUCT 1
#define CELL_BPHASES 2
#define LN_EPS ((real)1e-5)
typedef struct {
  int64_t B, H, Sg;
  const real *g_ih, *b_ih, *g_hh, *b_hh;  /* [3H] each; b_ih, b_hh may be NULL */
  real *a;                                /* [B,3H] the step's W_hh h_{t-1} */
  real *gates, *a_n;                      /* [Sg,B,3H] activated r, z, n; [Sg,B,H] ĥ_n */
  real *nx, *rx, *nh, *rh;                /* [Sg,B,3H], [Sg,B], [Sg,B,3H], [Sg,B] */
  const real *hs;                         /* [T+1,B,H] (backward) */
  real *dX, *dHh, *dV, *dAh;  /* [T,B,3H] ∂L/∂x̂, ∂L/∂ĥ, ∂L/∂V, ∂L/∂(W_hh h_{t-1}) (backward) */
} cell_t;

static inline real *cell_product(const cell_t *c, int64_t t, real *r_t) { return c->a; }

static inline __attribute__((always_inline)) void cell_forward(
    const cell_t *c, int phase, int64_t t, int64_t b, int64_t j0, int64_t j1, int bf16,
    real *ab, const real *xb, int64_t xs, const real *hp, real *rb, real *yb) {
  const int64_t H = c->H, G = 3 * H, row = (t % c->Sg) * c->B + b;
  real mx, rsx, mu, rstd;  /* V_t's (xb: its whole row) and the product's statistics */
  fr_row_stats(xb, G, LN_EPS, &mx, &rsx);
  fr_row_stats(ab, G, LN_EPS, &mu, &rstd);
  if (j0 == 0) c->rx[row] = rsx, c->rh[row] = rstd;
  real *gb = c->gates + row * G, *nxb = c->nx + row * G, *nb = c->nh + row * G;
  real *anb = c->a_n + row * H;
  const real *gi = c->g_ih, *gh = c->g_hh, *bi = c->b_ih, *bh = c->b_hh;
  /* (nothing is written into the product's row: every thread reads it whole) */
  for (int64_t q = 0; q < 3; q++) {
    #pragma omp simd
    for (int64_t j = q * H + j0; j < q * H + j1; j++) {
      nxb[j] = (xb[j] - mx) * rsx;
      nb[j] = (ab[j] - mu) * rstd;
    }
  }
  #pragma omp simd
  for (int64_t j = j0; j < j1; j++) {
    const real xr = gi[j] * nxb[j] + (bi ? bi[j] : 0);
    const real xz = gi[H + j] * nxb[H + j] + (bi ? bi[H + j] : 0);
    const real xn = gi[2 * H + j] * nxb[2 * H + j] + (bi ? bi[2 * H + j] : 0);
    const real hr = gh[j] * nb[j] + (bh ? bh[j] : 0);
    const real hz = gh[H + j] * nb[H + j] + (bh ? bh[H + j] : 0);
    anb[j] = gh[2 * H + j] * nb[2 * H + j] + (bh ? bh[2 * H + j] : 0);
    yb[j] = rb[j] = gru_fwd(xr, xz, xn, hr, hz, anb[j], hp[j], &gb[j], &gb[H + j],
                            &gb[2 * H + j]);
  }
}

/* An ended row saves zeros (the sums over rows of the gains' gradients read them). */
static inline void cell_carry(const cell_t *c, int64_t t, int64_t b, int64_t j0, int64_t j1) {
  const int64_t H = c->H, row = (t % c->Sg) * c->B + b;
  fr_zero_units(c->nx + row * 3 * H, 3, H, j0, j1);
  fr_zero_units(c->nh + row * 3 * H, 3, H, j0, j1);
}

static inline real *cell_dproduct(const cell_t *c, int64_t t) {
  return c->dAh + t * c->B * 3 * c->H;
}

/* Pass 0: the GRU's math to ∂L/∂x̂ and ∂L/∂ĥ, leaving ∂L/∂h_t·z in dh; pass 1: through the two
 * LayerNorms, to ∂L/∂V_t and ∂L/∂(W_hh h_{t-1}) (dA, what the product multiplies). */
static inline __attribute__((always_inline)) void cell_backward(
    const cell_t *c, int phase, int64_t t, int64_t b, int64_t j0, int64_t j1, const real *dyb,
    real *dhb, real *dAb) {
  const int64_t H = c->H, G = 3 * H, row = t * c->B + b;
  real *dxb = c->dX + row * G, *dhh = c->dHh + row * G;
  if (phase == 0) {
    const real *gb = c->gates + row * G, *anb = c->a_n + row * H, *hp = c->hs + row * H;
    #pragma omp simd
    for (int64_t j = j0; j < j1; j++) {
      dhb[j] = gru_bwd(gb[j], gb[H + j], gb[2 * H + j], anb[j], hp[j], dyb[j] + dhb[j],
                       &dxb[j], &dxb[H + j], &dxb[2 * H + j]);
      dhh[j] = dxb[j];
      dhh[H + j] = dxb[H + j];
      dhh[2 * H + j] = dxb[2 * H + j] * gb[j];
    }
    return;
  }
  fr_ln_backward(dxb, c->g_ih, c->nx + row * G, c->rx[row], 3, H, j0, j1, c->dV + row * G);
  fr_ln_backward(dhh, c->g_hh, c->nh + row * G, c->rh[row], 3, H, j0, j1, dAb);
}

static inline void cell_ended(const cell_t *c, int64_t t, int64_t b, int64_t j0, int64_t j1) {
  const int64_t H = c->H, row = t * c->B + b;
  fr_zero_units(c->dX + row * 3 * H, 3, H, j0, j1);
  fr_zero_units(c->dHh + row * 3 * H, 3, H, j0, j1);
  fr_zero_units(c->dV + row * 3 * H, 3, H, j0, j1);
}

#include "loop.h"

#include "entries_ln_gru.h"

static int ln_gru_forward(const ln_gru_forward_args *a) {
  const int64_t B = a->B, H = a->H;
  real *p = fr_work_alloc((size_t)(B * 3 * H) * sizeof(real));
  if (!p) return fr_nomem(a->fn, "the step's product");
  const cell_t c = {B, H, a->Sg, a->g_ih, a->b_ih, a->g_hh, a->b_hh, p, a->gates, a->a_n, a->nx,
                    a->rx, a->nh, a->rh, NULL, NULL, NULL, NULL, NULL};
  fr_loop f = {a->T, B, H, H, a->S, a->Sg, a->x_in, NULL, NULL, NULL, a->lengths, a->y, a->hs,
               NULL};
  const int e = fr_forward(a->fn, &f, &c, a->h0, a->W_hh, NULL, NULL, a->h_n);
  fr_work_free(p);
  return e;
}

static int ln_gru_backward(const ln_gru_backward_args *a) {
  const int64_t T = a->T, B = a->B, H = a->H;
  const cell_t c = {B, H, T, a->g_ih, NULL, a->g_hh, NULL, NULL, (real *)a->gates,
                    (real *)a->a_n, (real *)a->nx, (real *)a->rx, (real *)a->nh, (real *)a->rh,
                    a->hs, a->dX, a->dHh, a->dV, a->dAh};
  fr_bloop f = {T, B, H, H, a->dy, NULL, NULL, a->lengths, NULL, NULL, NULL};
  return fr_backward(a->fn, &f, &c, a->dh_n, a->W_hh, NULL, a->dh0);
}
