/* LayerNorm GRU on the CPU (fastrnn.reference.ln_gru_forward) and its BPTT: x̂ = G_x[t] =
 * LN(W_ih x_t; γ_ih) + b_ih, taken over all T by the caller; ĥ = LN(W_hh h_{t-1}; γ_hh) + b_hh;
 * r = σ(x̂_r + ĥ_r), z = σ(x̂_z + ĥ_z), n = tanh(x̂_n + r ĥ_n), h_t = (1 − z) n + z h_{t-1}.
 * Compiled once per element type and CPU variant. */
#include "internal.h"

/* The description (loop.h): three gate blocks, one forward pass after the product (which reads
 * its whole row: the product goes to a step's buffer a [B,3H], never overwritten in place) and two
 * backward ones (the GRU's math to ∂L/∂x̂ and ∂L/∂ĥ; the product's LayerNorm backward). The
 * forward saves the activated gates, ĥ_n, and the normalised product with its 1/σ. */
#define CELL_GATES 3
#define CELL_BHH_INSIDE 1
#define CELL_PHASES 1
#define CELL_WHOLE_PRODUCT 1
#define CELL_BPHASES 2
#define LN_EPS ((real)1e-5)
typedef struct {
  int64_t B, H, Sg;
  const real *g_hh, *b_hh;  /* [3H], [3H] */
  real *a;                  /* [B,3H] the step's W_hh h_{t-1} */
  real *gates, *a_n;        /* [Sg,B,3H] activated r, z, n; [Sg,B,H] ĥ_n */
  real *nh, *rh;            /* [Sg,B,3H], [Sg,B] */
  const real *hs;           /* [T+1,B,H] (backward) */
  real *dGx, *dHh, *dAh;    /* [T,B,3H] ∂L/∂x̂, ∂L/∂ĥ, ∂L/∂(W_hh h_{t-1}) (backward) */
} cell_t;

static inline real *cell_product(const cell_t *c, int64_t t, real *r_t) { return c->a; }

static inline __attribute__((always_inline)) void cell_forward(
    const cell_t *c, int phase, int64_t t, int64_t b, int64_t j0, int64_t j1, int bf16,
    real *ab, const real *xb, int64_t xs, const real *hp, real *rb, real *yb) {
  const int64_t H = c->H, G = 3 * H, row = (t % c->Sg) * c->B + b;
  real mu, rstd;
  fr_row_stats(ab, G, LN_EPS, &mu, &rstd);
  if (j0 == 0) c->rh[row] = rstd;
  real *gb = c->gates + row * G, *nb = c->nh + row * G, *anb = c->a_n + row * H;
  const real *g = c->g_hh, *bh = c->b_hh;
  #pragma omp simd
  for (int64_t j = j0; j < j1; j++) {
    const real nr = (ab[j] - mu) * rstd, nz = (ab[H + j] - mu) * rstd;
    const real nn = (ab[2 * H + j] - mu) * rstd;
    nb[j] = nr, nb[H + j] = nz, nb[2 * H + j] = nn;
    anb[j] = g[2 * H + j] * nn + bh[2 * H + j];
    yb[j] = rb[j] = gru_fwd(xb[j], xb[xs + j], xb[2 * xs + j], g[j] * nr + bh[j],
                            g[H + j] * nz + bh[H + j], anb[j], hp[j], &gb[j], &gb[H + j],
                            &gb[2 * H + j]);
  }
}

/* An ended row saves zeros (the sums over rows of the gain's gradient read them). */
static inline void cell_carry(const cell_t *c, int64_t t, int64_t b, int64_t j0, int64_t j1) {
  const int64_t H = c->H, row = (t % c->Sg) * c->B + b;
  for (int64_t q = 0; q < 3; q++)
    memset(c->nh + row * 3 * H + q * H + j0, 0, (size_t)(j1 - j0) * sizeof(real));
}

static inline real *cell_dproduct(const cell_t *c, int64_t t) {
  return c->dAh + t * c->B * 3 * c->H;
}

/* Pass 0: the GRU's math to ∂L/∂x̂ and ∂L/∂ĥ, leaving ∂L/∂h_t·z in dh; pass 1: through the
 * product's LayerNorm. */
static inline __attribute__((always_inline)) void cell_backward(
    const cell_t *c, int phase, int64_t t, int64_t b, int64_t j0, int64_t j1, const real *dyb,
    real *dhb, real *dAb) {
  const int64_t H = c->H, G = 3 * H, row = t * c->B + b;
  const real *gb = c->gates + row * G;
  real *dxb = c->dGx + row * G, *dhh = c->dHh + row * G;
  if (phase == 0) {
    const real *anb = c->a_n + row * H, *hp = c->hs + row * H;
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
  const real *nb = c->nh + row * G, *g = c->g_hh;
  real m1, m2;
  fr_row_moments(dhh, g, nb, G, &m1, &m2);
  const real rstd = c->rh[row];
  for (int64_t q = 0; q < 3; q++) {
    #pragma omp simd
    for (int64_t j = q * H + j0; j < q * H + j1; j++)
      dAb[j] = rstd * (dhh[j] * g[j] - m1 - nb[j] * m2);
  }
}

static inline void cell_ended(const cell_t *c, int64_t t, int64_t b, int64_t j0, int64_t j1) {
  const int64_t H = c->H, row = t * c->B + b;
  const size_t n = (size_t)(j1 - j0) * sizeof(real);
  for (int64_t q = 0; q < 3; q++) {
    memset(c->dGx + row * 3 * H + q * H + j0, 0, n);
    memset(c->dHh + row * 3 * H + q * H + j0, 0, n);
  }
}

#include "loop.h"

#define LN_GRU_FORWARD(pass, S, Sg)                                                            \
  int SFXV(fastrnn_ln_gru_##pass)(int64_t T, int64_t B, int64_t H, const real *gx,             \
                                 const real *h0, const real *W_hh, const real *g_hh,           \
                                 const real *b_hh, const int64_t *lengths, real *y, real *h_n, \
                                 real *gates, real *a_n, real *nh, real *rh, real *hs) {       \
    FR_CHECK(e, T, B, H, 3, lengths, 1, gx, h0, W_hh, g_hh, b_hh, lengths, y, h_n, gates, a_n, \
             nh, rh, hs);                                                                      \
    if (e) return e;                                                                           \
    real *a = fr_work_alloc((size_t)(B * 3 * H) * sizeof(real));                               \
    if (!a) return fr_nomem(__func__, "the step's product");                                   \
    const cell_t c = {B, H, Sg, g_hh, b_hh, a, gates, a_n, nh, rh, NULL, NULL, NULL, NULL};    \
    fr_loop f = {T, B, H, H, S, Sg, gx, NULL, NULL, NULL, lengths, y, hs, NULL};               \
    e = fr_forward(__func__, &f, &c, h0, W_hh, NULL, NULL, h_n);                               \
    fr_work_free(a);                                                                           \
    return e;                                                                                  \
  }
LN_GRU_FORWARD(forward, T + 1, T)
LN_GRU_FORWARD(forward_infer, 2, 1)

int SFXV(fastrnn_ln_gru_backward)(int64_t T, int64_t B, int64_t H, const real *dy,
                                 const real *dh_n, const real *gates, const real *a_n,
                                 const real *nh, const real *rh, const real *hs,
                                 const real *W_hh, const real *g_hh, const int64_t *lengths,
                                 real *dGx, real *dHh, real *dAh, real *dh0) {
  FR_CHECK(e, T, B, H, 3, lengths, 1, dy, dh_n, gates, a_n, nh, rh, hs, W_hh, g_hh, lengths, dGx,
           dHh, dAh);
  if (e) return e;
  const cell_t c = {B, H, T, g_hh, NULL, NULL, (real *)gates, (real *)a_n, (real *)nh,
                    (real *)rh, hs, dGx, dHh, dAh};
  fr_bloop f = {T, B, H, H, dy, NULL, NULL, lengths, NULL, NULL, NULL};
  return fr_backward(__func__, &f, &c, dh_n, W_hh, NULL, dh0);
}
