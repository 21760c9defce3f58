/* Elman RNN on the CPU: h_t = f(G_x[t] + h_{t-1} W_hhᵀ), f = tanh or relu, and its BPTT.
 * Compiled once per element type (see cell_math.h). */
#include "internal.h"

/* S state slots: T+1 keep every h_t for backward, 2 keep only the last two (inference). */
FR_MULTIVERSION static int forward(int64_t T, int64_t B, int64_t H, int relu, int64_t S,
                                    const real *gx, const real *h0, const real *W_hh,
                                    const int64_t *lengths, real *y, real *h_n, real *hs) {
  const int64_t BH = B * H;
  real *WT = transposed(H, H, W_hh);
  if (!WT) return fr_nomem(relu ? "fastrnn_rnn_relu_forward" : "fastrnn_rnn_tanh_forward",
                          "W_hh transposed", (size_t)(H * H) * sizeof(real));
  memcpy(hs, h0, (size_t)BH * sizeof(real));
  for (int64_t t = 0; t < T; t++) {
    const real *h_prev = hs + (t % S) * BH;
    real *h_t = hs + ((t + 1) % S) * BH;
    rows_times(B, H, H, h_prev, WT, h_t, 0);
    for (int64_t b = 0; b < B; b++) {
      real *hb = h_t + b * H, *yb = y + (t * B + b) * H;
      if (t >= lengths[b]) {  /* past this sequence's end: carry the state, output zero */
        memcpy(hb, h_prev + b * H, (size_t)H * sizeof(real));
        memset(yb, 0, (size_t)H * sizeof(real));
        continue;
      }
      const real *gxb = gx + (t * B + b) * H;
      #pragma omp simd
      for (int64_t j = 0; j < H; j++) yb[j] = hb[j] = rnn_fwd(hb[j] + gxb[j], relu);
    }
  }
  memcpy(h_n, hs + (T % S) * BH, (size_t)BH * sizeof(real));
  free(WT);
  return FASTRNN_OK;
}

/* dh0 doubles as the running ∂L/∂h_t while walking back in time. A sequence that has ended
 * carries its ∂L/∂h: its rows of dA are zero, so adding dA·W_hh leaves them as they are. */
FR_MULTIVERSION static void backward(int64_t T, int64_t B, int64_t H, int relu, const real *dy,
                                     const real *dh_n, const real *hs, const real *W_hh,
                                     const int64_t *lengths, real *dA, real *dh0) {
  memcpy(dh0, dh_n, (size_t)(B * H) * sizeof(real));
  for (int64_t t = T - 1; t >= 0; t--) {
    for (int64_t b = 0; b < B; b++) {
      real *dAb = dA + (t * B + b) * H, *dhb = dh0 + b * H;
      if (t >= lengths[b]) {
        memset(dAb, 0, (size_t)H * sizeof(real));
        continue;
      }
      const real *dyb = dy + (t * B + b) * H, *hb = hs + ((t + 1) * B + b) * H;
      #pragma omp simd
      for (int64_t j = 0; j < H; j++) {
        dAb[j] = rnn_bwd(hb[j], dyb[j] + dhb[j], relu);
        dhb[j] = 0;
      }
    }
    rows_times(B, H, H, dA + t * B * H, W_hh, dh0, 1);
  }
}

#define RNN_ENTRIES(name, relu)                                                                 \
  int SFX(fastrnn_##name##_forward)(int64_t T, int64_t B, int64_t H, const real *gx,           \
                                    const real *h0, const real *W_hh, const int64_t *lengths,  \
                                    real *y, real *h_n, real *hs) {                            \
    FR_CHECK(e, T, B, H, 1, lengths, 1, gx, h0, W_hh, lengths, y, h_n, hs); \
    if (!e) e = forward(T, B, H, relu, T + 1, gx, h0, W_hh, lengths, y, h_n, hs);              \
    return e;                                                                                  \
  }                                                                                            \
  int SFX(fastrnn_##name##_forward_infer)(int64_t T, int64_t B, int64_t H, const real *gx,     \
                                          const real *h0, const real *W_hh,                   \
                                          const int64_t *lengths, real *y, real *h_n, real *hs) { \
    FR_CHECK(e, T, B, H, 1, lengths, 1, gx, h0, W_hh, lengths, y, h_n, hs); \
    if (!e) e = forward(T, B, H, relu, 2, gx, h0, W_hh, lengths, y, h_n, hs);                  \
    return e;                                                                                  \
  }                                                                                            \
  int SFX(fastrnn_##name##_backward)(int64_t T, int64_t B, int64_t H, const real *dy,          \
                                     const real *dh_n, const real *hs, const real *W_hh,       \
                                     const int64_t *lengths, real *dA, real *dh0) {            \
    FR_CHECK(e, T, B, H, 1, lengths, 1, dy, dh_n, hs, W_hh, lengths, dA, dh0); \
    if (!e) backward(T, B, H, relu, dy, dh_n, hs, W_hh, lengths, dA, dh0);                     \
    return e;                                                                                  \
  }

RNN_ENTRIES(rnn_tanh, 0)
RNN_ENTRIES(rnn_relu, 1)
