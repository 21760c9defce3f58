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

static int forward(const char *fn, int64_t T, int64_t B, int64_t H, int relu, int64_t S,
                   const real *gx, const real *h0, const real *W_hh, const int64_t *lengths,
                   real *y, real *h_n, real *hs) {
  const cell_t c = {relu, B, H, NULL, NULL};
  fr_loop f = {T, B, H, H, S, 1, gx, NULL, NULL, NULL, lengths, y, hs, NULL};
  return fr_forward(fn, &f, &c, h0, W_hh, NULL, NULL, h_n);
}

/* forward with G_x computed inside the loop from x, W_ih and the biases (or W_ih16, W_hh16 in
 * bfloat16). */
static int forward_x(const char *fn, int64_t T, int64_t B, int64_t I, int64_t H, int relu,
                     int64_t S, const real *x, const real *W_ih, const real *b_ih,
                     const real *b_hh, const real *h0, const real *W_hh, const int64_t *lengths,
                     real *y, real *h_n, real *hs, const uint16_t *W_ih16,
                     const uint16_t *W_hh16) {
  const cell_t c = {relu, B, H, NULL, NULL};
  fr_loop f = {T, B, H, H, S, 1, NULL, NULL, NULL, NULL, lengths, y, hs, NULL};
  return fr_forward_x(fn, &f, &c, I, x, W_ih, b_ih, b_hh, h0, W_hh, NULL, W_ih16, W_hh16, h_n);
}

static int backward(int64_t T, int64_t B, int64_t H, int relu, const real *dy, const real *dh_n,
                    const real *hs, const real *W_hh, const int64_t *lengths, real *dA,
                    real *dh0) {
  const char *fn = relu ? "fastrnn_rnn_relu_backward" : "fastrnn_rnn_tanh_backward";
  const cell_t c = {relu, B, H, hs, dA};
  fr_bloop f = {T, B, H, H, dy, NULL, NULL, lengths, NULL, NULL, NULL};
  return fr_backward(fn, &f, &c, dh_n, W_hh, NULL, dh0);
}

#define RNN_ENTRIES(name, relu)                                                                 \
  int SFXV(fastrnn_##name##_forward)(int64_t T, int64_t B, int64_t H, const real *gx,           \
                                    const real *h0, const real *W_hh, const int64_t *lengths,  \
                                    real *y, real *h_n, real *hs) {                            \
    FR_CHECK(e, T, B, H, 1, lengths, 1, gx, h0, W_hh, lengths, y, h_n, hs); \
    if (!e)                                                                                    \
      e = forward(__func__, T, B, H, relu, T + 1, gx, h0, W_hh, lengths, y, h_n, hs);          \
    return e;                                                                                  \
  }                                                                                            \
  int SFXV(fastrnn_##name##_forward_infer)(int64_t T, int64_t B, int64_t H, const real *gx,     \
                          const real *h0, const real *W_hh,                   \
                          const int64_t *lengths, real *y, real *h_n, real *hs) { \
    FR_CHECK(e, T, B, H, 1, lengths, 1, gx, h0, W_hh, lengths, y, h_n, hs); \
    if (!e)                                                                                    \
      e = forward(__func__, T, B, H, relu, 2, gx, h0, W_hh, lengths, y, h_n, hs);              \
    return e;                                                                                  \
  }                                                                                            \
  int SFXV(fastrnn_##name##_backward)(int64_t T, int64_t B, int64_t H, const real *dy,          \
                                     const real *dh_n, const real *hs, const real *W_hh,       \
                                     const int64_t *lengths, real *dA, real *dh0) {            \
    FR_CHECK(e, T, B, H, 1, lengths, 1, dy, dh_n, hs, W_hh, lengths, dA);       \
    if (!e) e = backward(T, B, H, relu, dy, dh_n, hs, W_hh, lengths, dA, dh0);                 \
    return e;                                                                                  \
  }                                                                                            \
  int SFXV(fastrnn_##name##_forward_x)(int64_t T, int64_t B, int64_t I, int64_t H,              \
                                      const real *x, const real *W_ih, const real *b_ih,       \
                                      const real *b_hh, const real *h0, const real *W_hh,      \
                                      const int64_t *lengths, real *y, real *h_n, real *hs) {  \
    FR_CHECK(e, T, B, H, 1, lengths, 1, x, W_ih, W_hh, lengths, y, h_n, hs);                   \
    if (!e) e = forward_x(__func__, T, B, I, H, relu, T + 1, x, W_ih, b_ih, b_hh, h0, W_hh,    \
                          lengths, y, h_n, hs, NULL, NULL);                                    \
    return e;                                                                                  \
  }                                                                                            \
  int SFXV(fastrnn_##name##_forward_x_infer)(int64_t T, int64_t B, int64_t I, int64_t H,        \
                                            const real *x, const real *W_ih, const real *b_ih, \
                                            const real *b_hh, const real *h0,                  \
                                            const real *W_hh, const int64_t *lengths, real *y, \
                                            real *h_n, real *hs) {                             \
    FR_CHECK(e, T, B, H, 1, lengths, 1, x, W_ih, W_hh, lengths, y, h_n, hs);                   \
    if (!e) e = forward_x(__func__, T, B, I, H, relu, 2, x, W_ih, b_ih, b_hh, h0, W_hh,        \
                          lengths, y, h_n, hs, NULL, NULL);                                    \
    return e;                                                                                  \
  }                                                                                            \
  RNN_BF16(name, relu)

#if !FASTRNN_F64
/* forward_x with every argument and result in bfloat16 (io16.h): S state slots. */
static int forward_x16(const char *fn, int64_t T, int64_t B, int64_t I, int64_t H, int relu,
                       int64_t S, const uint16_t *x, const uint16_t *W_ih, const uint16_t *b_ih,
                       const uint16_t *b_hh, const uint16_t *h0, const uint16_t *W_hh,
                       const int64_t *lengths, uint16_t *y, uint16_t *h_n, real *hs) {
  FR_CHECK_AS(fn, e, T, B, H, 1, lengths, 1, x, W_ih, W_hh, lengths, y, h_n, hs);
  fr_io16 io = {0};
  e = fr_io16_begin(fn, e, &io, T, B, I, H, H, 0, x, b_ih, b_hh, h0, NULL);
  if (e) return e;
  e = forward_x(fn, T, B, I, H, relu, S, io.x, NULL, io.b_ih, io.b_hh, io.h0, NULL, lengths, io.y,
                io.h_n, hs, W_ih, W_hh);
  return fr_io16_end(&io, e, T, B, H, y, h_n, NULL);
}

/* fastrnn_<name>_forward_x(_infer) with every argument and result in bfloat16. */
#define RNN_BF16(name, relu)                                                                    \
  int SFXV(fastrnn_##name##_forward_x_bf16)(int64_t T, int64_t B, int64_t I, int64_t H,         \
                                           const uint16_t *x, const uint16_t *W_ih,            \
                                           const uint16_t *b_ih, const uint16_t *b_hh,         \
                                           const uint16_t *h0, const uint16_t *W_hh,           \
                                           const int64_t *lengths, uint16_t *y, uint16_t *h_n, \
                                           real *hs) {                                         \
    return forward_x16(__func__, T, B, I, H, relu, T + 1, x, W_ih, b_ih, b_hh, h0, W_hh,       \
                       lengths, y, h_n, hs);                                                   \
  }                                                                                            \
  int SFXV(fastrnn_##name##_forward_x_infer_bf16)(int64_t T, int64_t B, int64_t I, int64_t H,   \
                                                 const uint16_t *x, const uint16_t *W_ih,      \
                                                 const uint16_t *b_ih, const uint16_t *b_hh,   \
                                                 const uint16_t *h0, const uint16_t *W_hh,     \
                                                 const int64_t *lengths, uint16_t *y,          \
                                                 uint16_t *h_n, real *hs) {                    \
    return forward_x16(__func__, T, B, I, H, relu, 2, x, W_ih, b_ih, b_hh, h0, W_hh, lengths,  \
                       y, h_n, hs);                                                            \
  }
#else
#define RNN_BF16(name, relu)
#endif

RNN_ENTRIES(rnn_tanh, 0)
RNN_ENTRIES(rnn_relu, 1)
