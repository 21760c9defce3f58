/* A cell declared in Python (fastrnn.cell) on the one loop (loop.h). fastrnn/user/codegen.py
 * writes a file that defines, before including this one:
 *   CELL_GATES    gate blocks of H units in G_x and in the recurrent product (G = CELL_GATES·H)
 *   CELL_STATES   states of H units; the first is the output h_t, which W_hh multiplies
 *   CELL_VECTORS  rows of H units in the declared per-unit vectors, stacked
 *   CELL_SCRATCH  blocks of H units of a row a pass leaves to the next (a row reduction's
 *                 operands: every thread then sums the whole row itself, in one order)
 *   CELL_PHASES, CELL_BPHASES  the forward's and the backward's passes (loop.h)
 *   CELL_SAVED    values of H units a training forward keeps per row and step, sv, for the
 *                 backward to read rather than recompute (1 where there are none)
 *   CELL_KEEPS_PRODUCTS  1 when the backward reads the products: a training forward then keeps
 *                 every step's (gh [T,B,G]), else one (gh [1,B,G])
 *   CELL_RECURRENT  0 for a cell without W_hh (its recurrence only through its states, as
 *                 minGRU's or IndRNN's): then each row runs alone through time, with no
 *                 product, and only the fastrnn_user_scan_* entry points exist
 *   user_forward(phase, j0, j1, H, gx, xs, gh, b_hh, hp, cp, cn, ss, v, scr, sv, r, y)
 *                 pass `phase` over units [j0, j1) of one row: G_x gx (blocks xs apart), the
 *                 product gh (blocks H apart, without b_hh [G]), h_{t−1} hp, the other states'
 *                 old values cp and new ones cn (states ss apart), the vectors v [V,H], the
 *                 row's scratch scr [CELL_SCRATCH,H]; the last pass writes h_t into r and y
 *   user_backward(phase, j0, j1, H, gx, gh, b_hh, hp, cp, ss, v, scr, sv, dy, dh, dc, ds,
 *                 dgx, dgh, dv)   (dv in double)
 *                 the same row's backward, from its saved inputs: ∂L/∂h_t = dy + dh, ∂L/∂(other
 *                 states) in dc (states ds apart); writes ∂L/∂G_x dgx and ∂L/∂(product) dgh
 *                 [G], leaves in dh and dc the gradients of the old states that do not go
 *                 through W_hh, and adds the vectors' gradient into dv [V,H]
 * and the math is inlined into the loop as a built-in cell's is. Both are generated from the
 * user's step function and its derivative as torch's autograd computes it.
 *
 * Entry points (this file is compiled once per element type, into a library of its own):
 *   fastrnn_user_forward(T, B, H, S, gx, h0, W_hh, b_hh, v, lengths, y, h_n, hs, cs, gh, scr,
 *                        sv)
 *   fastrnn_user_forward_x(T, B, I, H, x, W_ih, b_ih, h0, W_hh, b_hh, v, lengths, y, h_n, hs,
 *                          cs, gh, scr)   (inference: G_x computed inside the loop, a chunk ahead)
 *   fastrnn_user_backward(T, B, H, dy, dh_n, dc, gx, gh, b_hh, hs, cs, v, W_hh, lengths, dgx,
 *                         dgh, dh0, dv, scr, sv)
 * with S state slots (T+1 keep every step's states for the backward, 2 only the last two). */
#include "internal.h"

#define CELL_BHH_INSIDE 1 /* the step gets W_hh h_{t−1} + b_hh apart from G_x */
#ifndef CELL_RECURRENT
#define CELL_RECURRENT 1
#endif
typedef struct {
  int64_t B, H, S, Sg;
  const real *b_hh;  /* [G] */
  const real *v;     /* [V,H] */
  real *cs;          /* [CELL_STATES−1,S,B,H] the other states, slot t holding step t−1's */
  real *gh;          /* [Sg,B,G] the products (Sg = T when training, else 1) */
  const real *gx;    /* [T,B,G] (backward) */
  const real *hs;    /* [T+1,B,H] every h_t (backward) */
  real *dgx, *dgh;   /* [T,B,G] */
  real *dc;          /* [CELL_STATES−1,B,H] the running ∂L/∂(other states) */
  double *dv;        /* [B,V,H] each row's share of the vectors' gradient, summed over the
                        steps in double (a long float32 sum lost digits the loop keeps) */
  real *scr;         /* [B,CELL_SCRATCH,H] */
  real *sv;          /* [T,B,CELL_SAVED,H] the forward's values the backward reads, or NULL */
} cell_t;

static inline real *cell_product(const cell_t *c, int64_t t, real *r_t) {
  return c->gh + (t % c->Sg) * c->B * CELL_GATES * c->H;
}

static inline __attribute__((always_inline)) void cell_forward(
    const cell_t *c, int phase, int64_t t, int64_t b, int64_t j0, int64_t j1, int bf16,
    real *ab, const real *xb, int64_t xs, const real *hp, real *rb, real *yb) {
  const int64_t H = c->H, BH = c->B * H;
  const real *cp = c->cs + (t % c->S) * BH + b * H;
  real *cn = c->cs + ((t + 1) % c->S) * BH + b * H;
  user_forward(phase, j0, j1, H, xb, xs, ab, c->b_hh, hp, cp, cn, c->S * BH, c->v,
               c->scr + b * CELL_SCRATCH * H,
               c->sv ? c->sv + (t * c->B + b) * CELL_SAVED * H : NULL, rb, yb);
}

static inline void cell_carry(const cell_t *c, int64_t t, int64_t b, int64_t j0, int64_t j1) {
  const int64_t H = c->H, BH = c->B * H;
  for (int k = 0; k < CELL_STATES - 1; k++) {
    const real *cp = c->cs + (k * c->S + t % c->S) * BH + b * H;
    real *cn = c->cs + (k * c->S + (t + 1) % c->S) * BH + b * H;
    memcpy(cn + j0, cp + j0, (size_t)(j1 - j0) * sizeof(real));
  }
}

static inline real *cell_dproduct(const cell_t *c, int64_t t) {
  return c->dgh + t * c->B * CELL_GATES * c->H;
}

static inline __attribute__((always_inline)) void cell_backward(
    const cell_t *c, int phase, int64_t t, int64_t b, int64_t j0, int64_t j1, const real *dyb,
    real *dhb, real *dab) {
  const int64_t H = c->H, BH = c->B * H, G = CELL_GATES * H, row = t * c->B + b;
  user_backward(phase, j0, j1, H, c->gx + row * G,
                CELL_KEEPS_PRODUCTS ? c->gh + row * G : NULL, c->b_hh,
                c->hs + row * H, c->cs + row * H, c->S * BH, c->v,
                c->scr + b * CELL_SCRATCH * H, c->sv + row * CELL_SAVED * H, dyb, dhb,
                c->dc + b * H, BH, c->dgx + row * G, dab, c->dv + b * CELL_VECTORS * H);
}

static inline void cell_ended(const cell_t *c, int64_t t, int64_t b, int64_t j0, int64_t j1) {
  fr_zero_units(c->dgx + (t * c->B + b) * CELL_GATES * c->H, CELL_GATES, c->H, j0, j1);
}

#include "loop.h"

/* gx [T,B,G], h0 [B,H], W_hh [G,H], b_hh [G], v [V,H], lengths [B] -> y [T,B,H], h_n [B,H],
 * hs [S,B,H], cs [CELL_STATES−1,S,B,H] (slot 0 holding the other states' initial values; slot
 * T % S their final ones), gh [T or 1,B,G], scr [B,CELL_SCRATCH,H]. */
int SFX(fastrnn_user_forward)(int64_t T, int64_t B, int64_t H, int64_t S, const real *gx,
                              const real *h0, const real *W_hh, const real *b_hh, const real *v,
                              const int64_t *lengths, real *y, real *h_n, real *hs, real *cs,
                              real *gh, real *scr, real *sv) {
  FR_CHECK(e, T, B, H, CELL_GATES, lengths, 1, gx, h0, W_hh, b_hh, lengths, y, h_n, hs, gh);
  if (e) return e;
  const cell_t c = {B, H, S, S == 2 || !CELL_KEEPS_PRODUCTS ? 1 : T, b_hh, v, cs, gh,
                    NULL, NULL, NULL, NULL, NULL, NULL, scr, S == 2 ? NULL : sv};
  fr_loop f = {T, B, H, H, S, 1, gx, NULL, NULL, NULL, lengths, y, hs, NULL};
  return fr_forward(__func__, &f, &c, h0, W_hh, NULL, NULL, h_n);
}

/* The forward of inference (2 state slots) from x [T,B,I], W_ih [G,I] and b_ih [G] (or NULL):
 * G_x computed inside the loop a chunk ahead, in cache (fr_input), as the built-in cells'. */
int SFX(fastrnn_user_forward_x)(int64_t T, int64_t B, int64_t I, int64_t H, const real *x,
                                const real *W_ih, const real *b_ih, const real *h0,
                                const real *W_hh, const real *b_hh, const real *v,
                                const int64_t *lengths, real *y, real *h_n, real *hs, real *cs,
                                real *gh, real *scr, real *sv) {
  FR_CHECK(e, T, B, H, CELL_GATES, lengths, 1, x, W_ih, h0, W_hh, b_hh, lengths, y, h_n, hs, gh);
  if (e) return e;
  const cell_t c = {B, H, 2, 1, b_hh, v, cs, gh, NULL, NULL, NULL, NULL, NULL, NULL, scr, NULL};
  fr_loop f = {T, B, H, H, 2, 1, NULL, NULL, NULL, NULL, lengths, y, hs, NULL};
  return fr_forward_x(__func__, &f, &c, I, x, W_ih, b_ih, NULL, h0, W_hh, NULL, NULL, NULL,
                      h_n);
}

#if !CELL_RECURRENT
/* A cell without W_hh: rows are independent over the whole sequence, so each thread takes its
 * rows through every step (no barrier), step by step (the steps' rows lie together in memory),
 * each step's passes in turn over all H units. The same
 * arguments as fastrnn_user_forward and _backward without W_hh, b_hh, gh and dgh. */
static void fr_user_carry(int64_t S, int64_t BH, const real *hp, real *hn, const real *cp,
                          real *cn, int64_t H) {
  memcpy(hn, hp, (size_t)H * sizeof(real));
  for (int k = 0; k < CELL_STATES - 1; k++)
    memcpy(cn + k * S * BH, cp + k * S * BH, (size_t)H * sizeof(real));
}

/* The calling thread's rows [b0, b1) of B, in a team of fr_team_size(). */
static void fr_user_rows(int64_t B, int64_t *b0, int64_t *b1) {
  const int p = fr_thread(), P = fr_team_size();
  *b0 = B * p / P;
  *b1 = B * (p + 1) / P;
}

int SFX(fastrnn_user_scan_forward)(int64_t T, int64_t B, int64_t H, int64_t S, const real *gx,
                                   const real *h0, const real *v, const int64_t *lengths,
                                   real *y, real *h_n, real *hs, real *cs, real *scr,
                                   real *sv) {
  FR_CHECK(e, T, B, H, CELL_GATES, lengths, 1, gx, h0, lengths, y, h_n, hs);
  if (e) return e;
  const int64_t G = CELL_GATES * H, BH = B * H;
  memcpy(hs, h0, (size_t)BH * sizeof(real));
  const int P = (int)(B < fastrnn_get_num_threads() ? B : fastrnn_get_num_threads());
  #pragma omp parallel num_threads(P) if (P > 1)
  {
    int64_t b0, b1;  /* this thread's rows, through every step: no barrier */
    fr_user_rows(B, &b0, &b1);
    for (int64_t t = 0; t < T; t++) {
      for (int64_t b = b0; b < b1; b++) {
        const real *hp = hs + ((t % S) * B + b) * H, *cp = cs + ((t % S) * B + b) * H;
        real *hn = hs + (((t + 1) % S) * B + b) * H, *cn = cs + (((t + 1) % S) * B + b) * H;
        real *yb = y + (t * B + b) * H;
        if (t >= lengths[b]) {
          fr_user_carry(S, BH, hp, hn, cp, cn, H);
          memset(yb, 0, (size_t)H * sizeof(real));
          continue;
        }
        for (int phase = 0; phase < CELL_PHASES; phase++)
          user_forward(phase, 0, H, H, gx + (t * B + b) * G, H, NULL, NULL, hp, cp, cn, S * BH,
                       v, scr + b * CELL_SCRATCH * H,
                       S == 2 ? NULL : sv + (t * B + b) * CELL_SAVED * H, hn, yb);
      }
    }
  }
  memcpy(h_n, hs + (T % S) * BH, (size_t)BH * sizeof(real));
  return FASTRNN_OK;
}

int SFX(fastrnn_user_scan_backward)(int64_t T, int64_t B, int64_t H, const real *dy,
                                    const real *dh_n, real *dc, const real *gx, const real *hs,
                                    const real *cs, const real *v, const int64_t *lengths,
                                    real *dgx, real *dh0, double *dv, real *scr,
                                    const real *sv) {
  FR_CHECK(e, T, B, H, CELL_GATES, lengths, 1, dy, dh_n, gx, hs, lengths, dgx, dh0);
  if (e) return e;
  const int64_t G = CELL_GATES * H, BH = B * H;
  memcpy(dh0, dh_n, (size_t)BH * sizeof(real));  /* the running ∂L/∂h_t, finally ∂L/∂h0 */
  const int P = (int)(B < fastrnn_get_num_threads() ? B : fastrnn_get_num_threads());
  #pragma omp parallel num_threads(P) if (P > 1)
  {
    int64_t b0, b1;
    fr_user_rows(B, &b0, &b1);
    for (int64_t t = T - 1; t >= 0; t--) {
      for (int64_t b = b0; b < b1; b++) {
        const int64_t row = t * B + b;
        if (t >= lengths[b]) {  /* ended: its state was carried, so are the gradients */
          memset(dgx + row * G, 0, (size_t)G * sizeof(real));
          continue;
        }
        for (int phase = 0; phase < CELL_BPHASES; phase++)
          user_backward(phase, 0, H, H, gx + row * G, NULL, NULL, hs + row * H, cs + row * H,
                        (T + 1) * BH, v, scr + b * CELL_SCRATCH * H,
                        sv + row * CELL_SAVED * H, dy + row * H,
                        dh0 + b * H, dc + b * H, BH, dgx + row * G, NULL,
                        dv + b * CELL_VECTORS * H);
      }
    }
  }
  return FASTRNN_OK;
}
#endif

/* The BPTT of a forward with S = T+1: dy [T,B,H], dh_n [B,H], dc [CELL_STATES−1,B,H] (in: the
 * final states' gradients; out: the initial ones') -> dgx, dgh [T,B,G], dh0 [B,H], dv [B,V,H]
 * (added to); scr [B,CELL_SCRATCH,H]. */
int SFX(fastrnn_user_backward)(int64_t T, int64_t B, int64_t H, const real *dy,
                               const real *dh_n, real *dc, const real *gx, const real *gh,
                               const real *b_hh, const real *hs, const real *cs, const real *v,
                               const real *W_hh, const int64_t *lengths, real *dgx, real *dgh,
                               real *dh0, double *dv, real *scr, const real *sv) {
  FR_CHECK(e, T, B, H, CELL_GATES, lengths, 1, dy, dh_n, gx, gh, b_hh, hs, W_hh, lengths, dgx,
           dgh, dh0);
  if (e) return e;
  const cell_t c = {B, H, T + 1, CELL_KEEPS_PRODUCTS ? T : 1, b_hh, v, (real *)cs, (real *)gh,
                    gx, hs, dgx, dgh, dc, dv,
                    scr, (real *)sv};
  fr_bloop f = {T, B, H, H, dy, NULL, NULL, lengths, NULL, NULL, NULL};
  return fr_backward(__func__, &f, &c, dh_n, W_hh, NULL, dh0);
}
