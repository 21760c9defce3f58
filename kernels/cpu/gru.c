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

#include "entries_gru.h"

/* The forwards: G_x from x_in, or computed inside the loop from x, W_ih and b_ih when x_in is
 * NULL (W_ih16, W_hh16: the bfloat16 module's weights, read as they lie). */
static int run_forward(const gru_forward_args *a, const uint16_t *W_ih16,
                       const uint16_t *W_hh16) {
  const cell_t c = {a->B, a->H, a->Sg, a->b_hh, a->gates, a->a_n, NULL, NULL, NULL, NULL};
  fr_loop f = {a->T, a->B, a->H, a->H, a->S, a->Sg, a->x_in, NULL, NULL, NULL, a->lengths, a->y,
               a->hs, NULL};
  return a->x_in ? fr_forward(a->fn, &f, &c, a->h0, a->W_hh, NULL, NULL, a->h_n)
                 : fr_forward_x(a->fn, &f, &c, a->I, a->x, a->W_ih, a->b_ih, NULL, a->h0,
                                a->W_hh, NULL, W_ih16, W_hh16, a->h_n);
}

static int gru_forward(const gru_forward_args *a) { return run_forward(a, NULL, NULL); }

static int gru_backward(const gru_backward_args *a) {
  const int64_t B = a->B, H = a->H;
  real *dAr = fr_work_alloc((size_t)(2 * B * 3 * H) * sizeof(real));
  if (!dAr) return fr_nomem(a->fn, "dA's ring");
  const cell_t c = {B, H, a->T, NULL, (real *)a->gates, (real *)a->a_n, a->hs, a->dGx, a->dA_n,
                    dAr};
  fr_bloop f = {a->T, B, H, H, a->dy, NULL, NULL, a->lengths, NULL, NULL, NULL};
  const int e = fr_backward(a->fn, &f, &c, a->dh_n, a->W_hh, NULL, a->dh0);
  fr_work_free(dAr);
  return e;
}

#if !FASTRNN_F64
/* Every argument and result in bfloat16 (io16.h): widened, run in float32, rounded back. */
static int gru_forward16(const gru_forward16_args *a) {
  fr_io16 io = {0};
  int e = fr_io16_begin(a->fn, 0, &io, a->T, a->B, a->I, a->H, 3 * a->H, 0, a->x, a->b_ih,
                        a->b_hh, a->h0, NULL);
  if (e) return e;
  const gru_forward_args w = {.fn = a->fn, .T = a->T, .B = a->B, .I = a->I, .H = a->H,
                              .S = a->S, .Sg = a->Sg, .x = io.x, .b_ih = io.b_ih, .h0 = io.h0,
                              .b_hh = io.b_hh, .lengths = a->lengths, .y = io.y, .h_n = io.h_n,
                              .gates = a->gates, .a_n = a->a_n, .hs = a->hs};
  e = run_forward(&w, a->W_ih, a->W_hh);
  return fr_io16_end(&io, e, a->T, a->B, a->H, a->y, a->h_n, NULL);
}
#endif
