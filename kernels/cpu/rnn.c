/* Elman RNN on the CPU: h_t = f(G_x[t] + h_{t-1} W_hhᵀ), f = tanh or relu, and its BPTT.
 * Compiled once per element type and CPU variant (see cell_math.h). */
#include "internal.h"

/* Thread p of P runs every step for its part (fr_part: its units [j0, j1) of every row, or all
 * units of its rows [b0, b1)); w is W_hh (fr_weights). S state slots: T+1 keep every h_t for
 * backward, 2 keep only the last two (inference). G_x comes from gx [T,B,H], or, when `in` is
 * set, is computed chunk by chunk from x (fr_input). */
static void forward_part(int p, int P, int rows, int64_t T, int64_t B, int64_t H, int relu,
                         int64_t S, const real *gx, const fr_input *in, const fr_weights *w,
                         const int64_t *lengths, real *y, real *hs) {
  const int64_t BH = B * H;
  const fr_part q = fr_begin(p, P, rows, B, H, w, in);
  const int64_t j0 = q.j0, j1 = q.j1, M = q.b1 - q.b0;
  const size_t n = (size_t)(j1 - j0) * sizeof(real);
  real *xc = in ? fr_input_slice(in, B, &q) : NULL;  /* G_x of (t, b, j): xb[j − j0] */
  const int64_t xrow = in ? j1 - j0 : H;
  for (int64_t t = 0; t < T; t++) {
    const real *h_prev = hs + (t % S) * BH;
    real *h_t = hs + ((t + 1) % S) * BH;
    if (in && t % in->Tc == 0) fr_input_chunk(in, t, T, B, xc, &q);
    const real *xt = in ? xc + (t % in->Tc) * M * xrow : gx + (t * B + q.b0) * H + j0;
    fr_step_forward(w, t, h_prev, h_t, q.b0, q.b1, j0, j1);
    for (int64_t b = q.b0; b < q.b1; b++) {
      real *hb = h_t + b * H, *yb = y + (t * B + b) * H;
      if (t >= lengths[b]) {  /* past this sequence's end: carry the state, output zero */
        memcpy(hb + j0, h_prev + b * H + j0, n);
        memset(yb + j0, 0, n);
        continue;
      }
      const real *xb = xt + (b - q.b0) * xrow - j0;
      #pragma omp simd
      for (int64_t j = j0; j < j1; j++) yb[j] = hb[j] = rnn_fwd(hb[j] + xb[j], relu);
    }
    if (!rows) {
      fr_barrier();  /* the next step's product reads all of h_t */
    }
  }
}

static int forward(const char *fn, int64_t T, int64_t B, int64_t H, int relu, int64_t S,
                   const real *gx, const fr_input *in, const real *h0, const real *W_hh,
                   const int64_t *lengths, real *y, real *h_n, real *hs,
                   const uint16_t *W_hh16) {
  const int64_t BH = B * H;
  fr_weights w;
  if (fr_weights_init(&w, 1, T, B, H, H, W_hh, lengths, 0))
    return fr_nomem(fn, "W_hh's workspace");
  if (W_hh16 && fr_weights_bf16(&w, W_hh16)) {
    fr_weights_free(&w);
    return fr_nomem(fn, "W_hh's workspace");
  }
  fr_state0(hs, h0, BH, &w);
  const int P = fr_team(T, B, H, H), rows = fr_by_rows(P, T, B, lengths, &w);
  FR_PARALLEL(forward_part(fr_thread(), fr_team_size(), rows, T, B, H, relu, S, gx, in, &w,
                           lengths, y, hs));
  memcpy(h_n, hs + (T % S) * BH, (size_t)BH * sizeof(real));
  fr_weights_free(&w);
  return FASTRNN_OK;
}

/* forward with G_x computed inside the loop from x, W_ih and the biases (fr_input). */
static int forward_x(const char *fn, int64_t T, int64_t B, int64_t I, int64_t H, int relu,
                     int64_t S, const real *x, const real *W_ih, const real *b_ih,
                     const real *b_hh, const real *h0, const real *W_hh, const int64_t *lengths,
                     real *y, real *h_n, real *hs, const uint16_t *W_ih16,
                     const uint16_t *W_hh16) {
  fr_input in;
  if (I < 1) return fr_fail(fn, "expected I >= 1, got I=%lld", (long long)I);
  if (fr_input_init(&in, 1, T, B, H, I, x, W_ih, b_ih, b_hh, lengths, W_ih16))
    return fr_nomem(fn, "W_ih's workspace");
  const int e = forward(fn, T, B, H, relu, S, NULL, &in, h0, W_hh, lengths, y, h_n, hs, W_hh16);
  fr_input_free(&in);
  return e;
}

/* Thread p of P walks back in time for its part (fr_part: units [j0, j1) of every row, or all
 * units of rows [b0, b1)); w is W_hh (fr_weights). dh0 doubles as the running ∂L/∂h_t. A
 * sequence that has ended carries its ∂L/∂h: its rows of dA are zero, so adding dA·W_hh leaves
 * them as they are. */
static void backward_part(int p, int P, int rows, int64_t T, int64_t B, int64_t H, int relu,
                          const real *dy, const real *hs, const fr_weights *w,
                          const int64_t *lengths, real *dA, real *dh0) {
  const fr_part q = fr_begin(p, P, rows, B, H, w, NULL);
  const int64_t j0 = q.j0, j1 = q.j1;
  for (int64_t t = T - 1; t >= 0; t--) {
    for (int64_t b = q.b0; b < q.b1; b++) {
      real *dAb = dA + (t * B + b) * H, *dhb = dh0 + b * H;
      if (t >= lengths[b]) {
        memset(dAb + j0, 0, (size_t)(j1 - j0) * sizeof(real));
        continue;
      }
      const real *dyb = dy + (t * B + b) * H, *hb = hs + ((t + 1) * B + b) * H;
      #pragma omp simd
      for (int64_t j = j0; j < j1; j++) {
        dAb[j] = rnn_bwd(hb[j], dyb[j] + dhb[j], relu);
        dhb[j] = 0;
      }
    }
    if (!rows) {
      fr_barrier();  /* the product below reads all of dA[t] */
    }
    fr_step_backward(w, t, dA + t * B * H, dh0, q.b0, q.b1, j0, j1);
  }
}

static int backward(int64_t T, int64_t B, int64_t H, int relu, const real *dy, const real *dh_n,
                    const real *hs, const real *W_hh, const int64_t *lengths, real *dA,
                    real *dh0) {
  fr_weights w;
  const char *fn = relu ? "fastrnn_rnn_relu_backward" : "fastrnn_rnn_tanh_backward";
  if (fr_weights_init(&w, 1, T, B, H, H, W_hh, lengths, 1))
    return fr_nomem(fn, "W_hh's workspace");
  real *dh = fr_dstate0(dh0, dh_n, B * H, &w);
  if (!dh) {
    fr_weights_free(&w);
    return fr_nomem(fn, "∂L/∂h_t");
  }
  const int P = fr_backward_team(&w, T, 0, B, H, H), rows = fr_by_rows(P, T, B, lengths, &w);
  FR_PARALLEL(backward_part(fr_thread(), fr_team_size(), rows, T, B, H, relu, dy, hs, &w,
                            lengths, dA, dh));
  fr_weights_free(&w);
  fr_dstate0_free(dh, dh0);
  return FASTRNN_OK;
}

#define RNN_ENTRIES(name, relu)                                                                 \
  int SFXV(fastrnn_##name##_forward)(int64_t T, int64_t B, int64_t H, const real *gx,           \
                                    const real *h0, const real *W_hh, const int64_t *lengths,  \
                                    real *y, real *h_n, real *hs) {                            \
    FR_CHECK(e, T, B, H, 1, lengths, 1, gx, h0, W_hh, lengths, y, h_n, hs); \
    if (!e) e = forward(__func__, T, B, H, relu, T + 1, gx, NULL, h0, W_hh, lengths, y, h_n,   \
                        hs, NULL);                                                             \
    return e;                                                                                  \
  }                                                                                            \
  int SFXV(fastrnn_##name##_forward_infer)(int64_t T, int64_t B, int64_t H, const real *gx,     \
                          const real *h0, const real *W_hh,                   \
                          const int64_t *lengths, real *y, real *h_n, real *hs) { \
    FR_CHECK(e, T, B, H, 1, lengths, 1, gx, h0, W_hh, lengths, y, h_n, hs); \
    if (!e) e = forward(__func__, T, B, H, relu, 2, gx, NULL, h0, W_hh, lengths, y, h_n, hs,   \
                        NULL);                                                                 \
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
  fr_io16 io;
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
