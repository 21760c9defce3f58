/* GRU on the CPU in torch's form (gates r, z, n) and its BPTT. Compiled once per element type
 * and CPU variant.
 * r multiplies the recurrent part A_n only, so b_hh stays inside the loop and ∂L/∂G_x and ∂L/∂A
 * differ in the n block. */
#include "internal.h"

/* The description (loop.h): three gate blocks (r, z, n); b_hh stays inside the step. The
 * forward saves the activated gates over the product, [Sg,B,3H], and A_n = (W_hh h_{t−1})_n +
 * b_hh,n [Sg,B,H]. The backward writes ∂L/∂G_x [T,B,3H] and keeps of ∂L/∂A only its n block,
 * dA_n [T,B,H] (its r and z blocks are ∂L/∂G_x's): one T·B·3H output fewer, whose fresh pages
 * cost more than the step's math. The whole ∂L/∂A_t, which the product reads, goes to a ring of
 * two slots, dAr [2,B,3H]: the product reads slot t while a thread already past it writes step
 * t−1's into the other, and the barrier of step t−1 comes before anyone writes slot t again
 * (split by rows, each thread reads and writes only its own rows of the ring: no barrier). */
#define CELL_GATES 3
#define CELL_BHH_INSIDE 1
typedef struct {
  int64_t B, H, Sg;
  const real *b_hh;  /* [3H] */
  real *gates, *a_n;  /* [Sg,B,3H], [Sg,B,H] */
  const real *hs;     /* [T+1,B,H] every h_t (backward) */
  real *dGx, *dA_n, *dAr;  /* [T,B,3H], [T,B,H], [2,B,3H] */
} cell_t;

static inline real *cell_product(const cell_t *c, int64_t t, real *r_t) {
  return c->gates + (t % c->Sg) * c->B * 3 * c->H;
}

static inline __attribute__((always_inline)) void cell_forward(
    const cell_t *c, int phase, int64_t t, int64_t b, int64_t j0, int64_t j1, int bf16,
    real *ab, const real *xb, int64_t xs, const real *hp, real *rb, real *yb) {
  const int64_t H = c->H;
  const real *b_hh = c->b_hh;
  real *anb = c->a_n + ((t % c->Sg) * c->B + b) * H;
  #pragma omp simd
  for (int64_t j = j0; j < j1; j++) {
    anb[j] = ab[2 * H + j] + b_hh[2 * H + j];
    yb[j] = rb[j] = gru_fwd(xb[j], xb[xs + j], xb[2 * xs + j], ab[j] + b_hh[j],
                            ab[H + j] + b_hh[H + j], anb[j], hp[j], &ab[j], &ab[H + j],
                            &ab[2 * H + j]);
  }
}

static inline void cell_carry(const cell_t *c, int64_t t, int64_t b, int64_t j0, int64_t j1) {}

static inline real *cell_dproduct(const cell_t *c, int64_t t) {
  return c->dAr + (t & 1) * c->B * 3 * c->H;
}

/* ∂L/∂h_{t−1}'s direct term, ∂L/∂h_t·z, is left in dh, where dA·W_hh is then added. */
static inline __attribute__((always_inline)) void cell_backward(
    const cell_t *c, int phase, int64_t t, int64_t b, int64_t j0, int64_t j1, const real *dyb,
    real *dhb, real *dab) {
  const int64_t H = c->H, row = t * c->B + b;
  real *dxb = c->dGx + row * 3 * H, *dnb = c->dA_n + row * H;
  const real *gb = c->gates + row * 3 * H, *anb = c->a_n + row * H, *hp = c->hs + row * H;
  #pragma omp simd
  for (int64_t j = j0; j < j1; j++) {
    dhb[j] = gru_bwd(gb[j], gb[H + j], gb[2 * H + j], anb[j], hp[j], dyb[j] + dhb[j], &dxb[j],
                     &dxb[H + j], &dxb[2 * H + j]);
    dab[j] = dxb[j];
    dab[H + j] = dxb[H + j];
    dab[2 * H + j] = dnb[j] = dxb[2 * H + j] * gb[j];
  }
}

static inline void cell_ended(const cell_t *c, int64_t t, int64_t b, int64_t j0, int64_t j1) {
  const int64_t H = c->H, row = t * c->B + b;
  fr_zero_units(c->dGx + row * 3 * H, 3, H, j0, j1);
  fr_zero_units(c->dA_n + row * H, 1, H, j0, j1);
}

#include "loop.h"

/* S state slots (T+1 or 2) and Sg gate slots (T or 1), as in fastrnn.h; G_x from gx [T,B,3H]. */
static int forward(const char *fn, int64_t T, int64_t B, int64_t H, int64_t S, int64_t Sg,
                   const real *gx, const real *h0, const real *W_hh, const real *b_hh,
                   const int64_t *lengths, real *y, real *h_n, real *gates, real *a_n,
                   real *hs) {
  const cell_t c = {B, H, Sg, b_hh, gates, a_n, NULL, NULL, NULL, NULL};
  fr_loop f = {T, B, H, H, S, Sg, gx, NULL, NULL, NULL, lengths, y, hs, NULL};
  return fr_forward(fn, &f, &c, h0, W_hh, NULL, NULL, h_n);
}

/* forward with G_x computed inside the loop from x, W_ih and b_ih (or W_ih16, W_hh16 in
 * bfloat16). */
static int forward_x(const char *fn, int64_t T, int64_t B, int64_t I, int64_t H, int64_t S,
                     int64_t Sg, const real *x, const real *W_ih, const real *b_ih,
                     const real *h0, const real *W_hh, const real *b_hh, const int64_t *lengths,
                     real *y, real *h_n, real *gates, real *a_n, real *hs,
                     const uint16_t *W_ih16, const uint16_t *W_hh16) {
  const cell_t c = {B, H, Sg, b_hh, gates, a_n, NULL, NULL, NULL, NULL};
  fr_loop f = {T, B, H, H, S, Sg, NULL, NULL, NULL, NULL, lengths, y, hs, NULL};
  return fr_forward_x(fn, &f, &c, I, x, W_ih, b_ih, NULL, h0, W_hh, NULL, W_ih16, W_hh16, h_n);
}

int SFXV(fastrnn_gru_forward)(int64_t T, int64_t B, int64_t H, const real *gx, const real *h0,
                             const real *W_hh, const real *b_hh, const int64_t *lengths, real *y,
                             real *h_n, real *gates, real *a_n, real *hs) {
  FR_CHECK(e, T, B, H, 3, lengths, 1, gx, h0, W_hh, b_hh, lengths, y, h_n, gates, a_n, hs);
  if (!e) e = forward(__func__, T, B, H, T + 1, T, gx, h0, W_hh, b_hh, lengths, y, h_n,
                      gates, a_n, hs);
  return e;
}

int SFXV(fastrnn_gru_forward_infer)(int64_t T, int64_t B, int64_t H, const real *gx,
                                   const real *h0, const real *W_hh, const real *b_hh,
                                   const int64_t *lengths, real *y, real *h_n, real *gates,
                                   real *a_n, real *hs) {
  FR_CHECK(e, T, B, H, 3, lengths, 1, gx, h0, W_hh, b_hh, lengths, y, h_n, gates, a_n, hs);
  if (!e) e = forward(__func__, T, B, H, 2, 1, gx, h0, W_hh, b_hh, lengths, y, h_n, gates,
                      a_n, hs);
  return e;
}

int SFXV(fastrnn_gru_forward_x)(int64_t T, int64_t B, int64_t I, int64_t H, const real *x,
                               const real *W_ih, const real *b_ih, const real *h0,
                               const real *W_hh, const real *b_hh, const int64_t *lengths,
                               real *y, real *h_n, real *gates, real *a_n, real *hs) {
  FR_CHECK(e, T, B, H, 3, lengths, 1, x, W_ih, W_hh, b_hh, lengths, y, h_n, gates, a_n, hs);
  if (!e) e = forward_x(__func__, T, B, I, H, T + 1, T, x, W_ih, b_ih, h0, W_hh, b_hh, lengths,
                        y, h_n, gates, a_n, hs, NULL, NULL);
  return e;
}

int SFXV(fastrnn_gru_forward_x_infer)(int64_t T, int64_t B, int64_t I, int64_t H,
                                     const real *x, const real *W_ih, const real *b_ih,
                                     const real *h0, const real *W_hh, const real *b_hh,
                                     const int64_t *lengths, real *y, real *h_n, real *gates,
                                     real *a_n, real *hs) {
  FR_CHECK(e, T, B, H, 3, lengths, 1, x, W_ih, W_hh, b_hh, lengths, y, h_n, gates, a_n, hs);
  if (!e) e = forward_x(__func__, T, B, I, H, 2, 1, x, W_ih, b_ih, h0, W_hh, b_hh, lengths, y,
                        h_n, gates, a_n, hs, NULL, NULL);
  return e;
}

int SFXV(fastrnn_gru_backward)(int64_t T, int64_t B, int64_t H, const real *dy, const real *dh_n,
                              const real *gates, const real *a_n, const real *hs,
                              const real *W_hh, const int64_t *lengths, real *dGx, real *dA_n,
                              real *dh0) {
  FR_CHECK(e, T, B, H, 3, lengths, 1, dy, dh_n, gates, a_n, hs, W_hh, lengths, dGx, dA_n);
  if (e) return e;
  real *dAr = fr_work_alloc((size_t)(2 * B * 3 * H) * sizeof(real));
  if (!dAr) return fr_nomem(__func__, "dA's ring");
  const cell_t c = {B, H, T, NULL, (real *)gates, (real *)a_n, hs, dGx, dA_n, dAr};
  fr_bloop f = {T, B, H, H, dy, NULL, NULL, lengths, NULL, NULL, NULL};
  e = fr_backward(__func__, &f, &c, dh_n, W_hh, NULL, dh0);
  fr_work_free(dAr);
  return e;
}

#if !FASTRNN_F64
/* forward_x with every argument and result in bfloat16 (io16.h): S state and Sg gate slots. */
static int forward_x16(const char *fn, int64_t T, int64_t B, int64_t I, int64_t H, int64_t S,
                       int64_t Sg, const uint16_t *x, const uint16_t *W_ih,
                       const uint16_t *b_ih, const uint16_t *h0, const uint16_t *W_hh,
                       const uint16_t *b_hh, const int64_t *lengths, uint16_t *y, uint16_t *h_n,
                       real *gates, real *a_n, real *hs) {
  FR_CHECK_AS(fn, e, T, B, H, 3, lengths, 1, x, W_ih, W_hh, b_hh, lengths, y, h_n, gates, a_n,
              hs);
  fr_io16 io = {0};
  e = fr_io16_begin(fn, e, &io, T, B, I, H, 3 * H, 0, x, b_ih, b_hh, h0, NULL);
  if (e) return e;
  e = forward_x(fn, T, B, I, H, S, Sg, io.x, NULL, io.b_ih, io.h0, NULL, io.b_hh, lengths, io.y,
                io.h_n, gates, a_n, hs, W_ih, W_hh);
  return fr_io16_end(&io, e, T, B, H, y, h_n, NULL);
}

/* fastrnn_gru_forward_x(_infer) with every argument and result in bfloat16. */
int SFXV(fastrnn_gru_forward_x_bf16)(int64_t T, int64_t B, int64_t I, int64_t H,
                                    const uint16_t *x, const uint16_t *W_ih, const uint16_t *b_ih,
                                    const uint16_t *h0, const uint16_t *W_hh,
                                    const uint16_t *b_hh, const int64_t *lengths, uint16_t *y,
                                    uint16_t *h_n, real *gates, real *a_n, real *hs) {
  return forward_x16(__func__, T, B, I, H, T + 1, T, x, W_ih, b_ih, h0, W_hh, b_hh, lengths, y,
                     h_n, gates, a_n, hs);
}

int SFXV(fastrnn_gru_forward_x_infer_bf16)(int64_t T, int64_t B, int64_t I, int64_t H,
                                          const uint16_t *x, const uint16_t *W_ih,
                                          const uint16_t *b_ih, const uint16_t *h0,
                                          const uint16_t *W_hh, const uint16_t *b_hh,
                                          const int64_t *lengths, uint16_t *y, uint16_t *h_n,
                                          real *gates, real *a_n, real *hs) {
  return forward_x16(__func__, T, B, I, H, 2, 1, x, W_ih, b_ih, h0, W_hh, b_hh, lengths, y, h_n,
                     gates, a_n, hs);
}
#endif
