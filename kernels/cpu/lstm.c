/* LSTM on the CPU (gates i, f, g, o) and its BPTT. Compiled once per element type and CPU variant. */
#include "internal.h"

/* The description (loop.h): four gate blocks (i, f, g, o) and a second state, the cell c. The
 * forward saves the activated gates over the product, [Sg,B,4H], and every c_t, cs [S,B,H]; the
 * backward carries ∂L/∂c_t in dc [B,H] and writes ∂L/∂A = ∂L/∂G_x [T,B,4H]. With a projection
 * (LSTMP, W_hr [R,H]) the state is h_t = r_t W_hrᵀ [B,R], r_t = o_t ⊙ tanh c_t [B,H], and W_hh is
 * [4H,R] (loop.h); without one, R = H and h_t = r_t. */
#define CELL_GATES 4
#define CELL_BHH_INSIDE 0
typedef struct {
  int64_t B, H, S, Sg;
  real *gates, *cs;  /* [Sg,B,4H], [S,B,H] */
  real *dA, *dc;     /* [T,B,4H], [B,H] */
} cell_t;

static inline real *cell_product(const cell_t *c, int64_t t, real *r_t) {
  return c->gates + (t % c->Sg) * c->B * 4 * c->H;
}

/* The gates' pre-activations ab (recurrent, gate blocks H apart) plus xb (G_x, blocks xs apart)
 * and the old cell: the activated gates over ab, the new cell, h into rb and yb. `bf16`: the
 * products were in bfloat16, and so is the precision the math needs (lstm_fwd_bf16). */
static inline __attribute__((always_inline)) void cell_forward(
    const cell_t *c, int phase, int64_t t, int64_t b, int64_t j0, int64_t j1, int bf16,
    real *ab, const real *xb, int64_t xs, const real *hp, real *rb, real *yb) {
  const int64_t H = c->H, BH = c->B * H;
  const real *cp = c->cs + (t % c->S) * BH + b * H;
  real *cb = c->cs + ((t + 1) % c->S) * BH + b * H;
#if FR_BF16
  if (bf16) {
    #pragma omp simd
    for (int64_t j = j0; j < j1; j++)
      yb[j] = rb[j] = lstm_fwd_bf16(ab[j] + xb[j], ab[H + j] + xb[xs + j],
                                    ab[2 * H + j] + xb[2 * xs + j],
                                    ab[3 * H + j] + xb[3 * xs + j], cp[j], &ab[j], &ab[H + j],
                                    &ab[2 * H + j], &ab[3 * H + j], &cb[j]);
    return;
  }
#endif
  #pragma omp simd
  for (int64_t j = j0; j < j1; j++)
    yb[j] = rb[j] = lstm_fwd(ab[j] + xb[j], ab[H + j] + xb[xs + j],
                             ab[2 * H + j] + xb[2 * xs + j], ab[3 * H + j] + xb[3 * xs + j],
                             cp[j], &ab[j], &ab[H + j], &ab[2 * H + j], &ab[3 * H + j], &cb[j]);
}

static inline void cell_carry(const cell_t *c, int64_t t, int64_t b, int64_t j0, int64_t j1) {
  const int64_t H = c->H, BH = c->B * H;
  memcpy(c->cs + ((t + 1) % c->S) * BH + b * H + j0, c->cs + (t % c->S) * BH + b * H + j0,
         (size_t)(j1 - j0) * sizeof(real));
}

static inline real *cell_dproduct(const cell_t *c, int64_t t) {
  return c->dA + t * c->B * 4 * c->H;
}

/* dh NULL (a projection): dy is all of ∂L/∂r_t. Else ∂L/∂r_t = ∂L/∂h_t = dy + dh, and dh is
 * consumed: the product then adds step t's part. */
static inline __attribute__((always_inline)) void cell_backward(
    const cell_t *c, int phase, int64_t t, int64_t b, int64_t j0, int64_t j1, const real *dyb,
    real *dhb, real *dAb) {
  const int64_t H = c->H, BH = c->B * H, row = t * c->B + b;
  const real *gb = c->gates + row * 4 * H, *cb = c->cs + BH + row * H, *cp = c->cs + row * H;
  real *dcb = c->dc + b * H;
  if (!dhb) {
    #pragma omp simd
    for (int64_t j = j0; j < j1; j++)
      dcb[j] = lstm_bwd(gb[j], gb[H + j], gb[2 * H + j], gb[3 * H + j], cb[j], cp[j], dyb[j],
                        dcb[j], &dAb[j], &dAb[H + j], &dAb[2 * H + j], &dAb[3 * H + j]);
    return;
  }
  #pragma omp simd
  for (int64_t j = j0; j < j1; j++) {
    dcb[j] = lstm_bwd(gb[j], gb[H + j], gb[2 * H + j], gb[3 * H + j], cb[j], cp[j],
                      dyb[j] + dhb[j], dcb[j], &dAb[j], &dAb[H + j], &dAb[2 * H + j],
                      &dAb[3 * H + j]);
    dhb[j] = 0;
  }
}

static inline void cell_ended(const cell_t *c, int64_t t, int64_t b, int64_t j0, int64_t j1) {}

#include "loop.h"

#include "entries_lstm.h"
#include "entries_lstmp.h"

/* The forward from h0 [B,R], c0 [B,H] (either NULL: zeros) into h_n, c_n; G_x from gx, or from
 * x when gx is NULL (x, W_ih, the biases, or W_ih16, W_hh16 in bfloat16). R = H and W_hr, rs
 * NULL without a projection. */
static int run_forward(const char *fn, int64_t T, int64_t B, int64_t I, int64_t H, int64_t R,
                       int64_t S, int64_t Sg, const real *gx, const real *x, const real *W_ih,
                       const real *b_ih, const real *b_hh, const real *h0, const real *c0,
                       const real *W_hh, const real *W_hr, const int64_t *lengths, real *y,
                       real *h_n, real *c_n, real *gates, real *cs, real *hs, real *rs,
                       const uint16_t *W_ih16, const uint16_t *W_hh16) {
  const int64_t BH = B * H;
  const cell_t c = {B, H, S, Sg, gates, cs, NULL, NULL};
  fr_loop f = {T, B, H, R, S, Sg, gx, NULL, NULL, NULL, lengths, y, hs, rs};
  fr_state0(cs, c0, BH, NULL);
  const int e = gx ? fr_forward(fn, &f, &c, h0, W_hh, W_hr, W_hh16, h_n)
                   : fr_forward_x(fn, &f, &c, I, x, W_ih, b_ih, b_hh, h0, W_hh, W_hr, W_ih16,
                                  W_hh16, h_n);
  if (!e) memcpy(c_n, cs + (T % S) * BH, (size_t)BH * sizeof(real));
  return e;
}

static int lstm_forward(const lstm_forward_args *a) {
  return run_forward(a->fn, a->T, a->B, a->I, a->H, a->H, a->S, a->Sg, a->x_in, a->x, a->W_ih,
                     a->b_ih, a->b_hh, a->h0, a->c0, a->W_hh, NULL, a->lengths, a->y, a->h_n,
                     a->c_n, a->gates, a->cs, a->hs, NULL, NULL, NULL);
}

static int lstmp_forward(const lstmp_forward_args *a) {
  return run_forward(a->fn, a->T, a->B, a->I, a->H, a->R, a->S, a->Sg, a->x_in, a->x, a->W_ih,
                     a->b_ih, a->b_hh, a->h0, a->c0, a->W_hh, a->W_hr, a->lengths, a->y, a->h_n,
                     a->c_n, a->gates, a->cs, a->hs, a->rs, NULL, NULL);
}

/* dh0 [B,R] (NULL: not wanted) and dc0 [B,H] from dh_n, dc_n; du [T,B,R] with a projection. */
static int run_backward(const char *fn, int64_t T, int64_t B, int64_t H, int64_t R,
                        const real *dy, const real *dh_n, const real *dc_n, const real *gates,
                        const real *cs, const real *W_hh, const real *W_hr,
                        const int64_t *lengths, real *dA, real *dh0, real *dc0, real *du) {
  const cell_t c = {B, H, T + 1, T, (real *)gates, (real *)cs, dA, dc0};
  fr_bloop f = {T, B, H, R, dy, NULL, NULL, lengths, NULL, du, NULL};
  memcpy(dc0, dc_n, (size_t)(B * H) * sizeof(real));
  return fr_backward(fn, &f, &c, dh_n, W_hh, W_hr, dh0);
}

static int lstm_backward(const lstm_backward_args *a) {
  return run_backward(a->fn, a->T, a->B, a->H, a->H, a->dy, a->dh_n, a->dc_n, a->gates, a->cs,
                      a->W_hh, NULL, a->lengths, a->dA, a->dh0, a->dc0, NULL);
}

static int lstmp_backward(const lstmp_backward_args *a) {
  return run_backward(a->fn, a->T, a->B, a->H, a->R, a->dy, a->dh_n, a->dc_n, a->gates, a->cs,
                      a->W_hh, a->W_hr, a->lengths, a->dA, a->dh0, a->dc0, a->du);
}

#if !FASTRNN_F64
/* Every argument and result in bfloat16 (io16.h): widened, run in float32, rounded back. */
static int lstm_forward16(const lstm_forward16_args *a) {
  const int64_t T = a->T, B = a->B, H = a->H;
  fr_io16 io = {0};
  int e = fr_io16_begin(a->fn, 0, &io, T, B, a->I, H, 4 * H, 1, a->x, a->b_ih, a->b_hh, a->h0,
                        a->c0);
  if (e) return e;
  e = run_forward(a->fn, T, B, a->I, H, H, a->S, a->Sg, NULL, io.x, NULL, io.b_ih, io.b_hh, io.h0,
                  io.c0, NULL, NULL, a->lengths, io.y, io.h_n, io.c_n, a->gates, a->cs, a->hs,
                  NULL, a->W_ih, a->W_hh);
  return fr_io16_end(&io, e, T, B, H, a->y, a->h_n, a->c_n);
}
#endif
