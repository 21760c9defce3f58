/* Elman RNN on the CPU: h_t = f(G_x[t] + h_{t-1} W_hhᵀ), f = tanh or relu, and its BPTT.
 * Compiled once per element type and CPU variant (see cell_math.h). */
#include "internal.h"

/* The description (loop.h): one gate block; the product goes straight into h_t, which the
 * pointwise math turns into f(h_t + G_x) in place; the backward reads every h_t and writes
 * dA = ∂L/∂(pre-activation) [T,B,H]. */
#define CELL_GATES 1
#define CELL_BHH_INSIDE 0
typedef struct {
  int relu;
  int64_t B, H;
  const real *hs;  /* [T+1,B,H] every h_t (backward) */
  real *dA;        /* [T,B,H] */
} cell_t;

static inline real *cell_product(const cell_t *c, int64_t t, real *r_t) { return r_t; }

static inline __attribute__((always_inline)) void cell_forward(
    const cell_t *c, int phase, int64_t t, int64_t b, int64_t j0, int64_t j1, int bf16,
    real *ab, const real *xb, int64_t xs, const real *hp, real *rb, real *yb) {
  const int relu = c->relu;
  #pragma omp simd
  for (int64_t j = j0; j < j1; j++) yb[j] = rb[j] = rnn_fwd(ab[j] + xb[j], relu);
}

static inline void cell_carry(const cell_t *c, int64_t t, int64_t b, int64_t j0, int64_t j1) {}

static inline real *cell_dproduct(const cell_t *c, int64_t t) { return c->dA + t * c->B * c->H; }

static inline __attribute__((always_inline)) void cell_backward(
    const cell_t *c, int phase, int64_t t, int64_t b, int64_t j0, int64_t j1, const real *dyb,
    real *dhb, real *dAb) {
  const int relu = c->relu;
  const real *hb = c->hs + ((t + 1) * c->B + b) * c->H;
  #pragma omp simd
  for (int64_t j = j0; j < j1; j++) {
    dAb[j] = rnn_bwd(hb[j], dyb[j] + dhb[j], relu);
    dhb[j] = 0;
  }
}

static inline void cell_ended(const cell_t *c, int64_t t, int64_t b, int64_t j0, int64_t j1) {}

#include "loop.h"

#include "entries_rnn.h"

/* The forwards: G_x from x_in, or computed inside the loop from x, W_ih and the biases when x_in
 * is NULL (W_ih16, W_hh16: the bfloat16 module's weights, read as they lie). */
static int run_forward(const rnn_forward_args *a, const uint16_t *W_ih16,
                       const uint16_t *W_hh16) {
  const cell_t c = {a->relu, a->B, a->H, NULL, NULL};
  fr_loop f = {a->T, a->B, a->H, a->H, a->S, 1, a->x_in, NULL, NULL, NULL, a->lengths, a->y,
               a->hs, NULL};
  return a->x_in ? fr_forward(a->fn, &f, &c, a->h0, a->W_hh, NULL, NULL, a->h_n)
                 : fr_forward_x(a->fn, &f, &c, a->I, a->x, a->W_ih, a->b_ih, a->b_hh, a->h0,
                                a->W_hh, NULL, W_ih16, W_hh16, a->h_n);
}

static int rnn_forward(const rnn_forward_args *a) { return run_forward(a, NULL, NULL); }

static int rnn_backward(const rnn_backward_args *a) {
  const cell_t c = {a->relu, a->B, a->H, a->hs, a->dA};
  fr_bloop f = {a->T, a->B, a->H, a->H, a->dy, NULL, NULL, a->lengths, NULL, NULL, NULL};
  return fr_backward(a->fn, &f, &c, a->dh_n, a->W_hh, NULL, a->dh0);
}

#if !FASTRNN_F64
/* Every argument and result in bfloat16 (io16.h): widened, run in float32, rounded back. */
static int rnn_forward16(const rnn_forward16_args *a) {
  fr_io16 io = {0};
  int e = fr_io16_begin(a->fn, 0, &io, a->T, a->B, a->I, a->H, a->H, 0, a->x, a->b_ih, a->b_hh,
                        a->h0, NULL);
  if (e) return e;
  const rnn_forward_args w = {.fn = a->fn, .T = a->T, .B = a->B, .I = a->I, .H = a->H,
                              .S = a->S, .Sg = a->Sg, .relu = a->relu, .x = io.x,
                              .b_ih = io.b_ih, .b_hh = io.b_hh, .h0 = io.h0,
                              .lengths = a->lengths, .y = io.y, .h_n = io.h_n, .hs = a->hs};
  e = run_forward(&w, a->W_ih, a->W_hh);
  return fr_io16_end(&io, e, a->T, a->B, a->H, a->y, a->h_n, NULL);
}
#endif
