/* LSTM on the CPU (gates i, f, g, o) and its BPTT. Compiled once per element type. */
#include "internal.h"

/* S state slots (T+1 or 2) and Sg gate slots (T or 1), as in fastrnn.h. */
FR_MULTIVERSION static int forward(int64_t T, int64_t B, int64_t H, int64_t S, int64_t Sg,
                                    const real *gx, const real *h0, const real *c0,
                                    const real *W_hh, const int64_t *lengths, real *y, real *h_n,
                                    real *c_n, real *gates, real *cs, real *hs) {
  const int64_t BH = B * H, G = 4 * H;
  real *WT = transposed(G, H, W_hh);
  if (!WT) return fr_nomem("fastrnn_lstm_forward", "W_hh transposed", (size_t)(G * H) * sizeof(real));
  memcpy(hs, h0, (size_t)BH * sizeof(real));
  memcpy(cs, c0, (size_t)BH * sizeof(real));
  for (int64_t t = 0; t < T; t++) {
    const real *h_prev = hs + (t % S) * BH, *c_prev = cs + (t % S) * BH;
    real *h_t = hs + ((t + 1) % S) * BH, *c_t = cs + ((t + 1) % S) * BH;
    real *a = gates + (t % Sg) * B * G;
    rows_times(B, G, H, h_prev, WT, a, 0);
    for (int64_t b = 0; b < B; b++) {
      real *hb = h_t + b * H, *cb = c_t + b * H, *yb = y + (t * B + b) * H;
      if (t >= lengths[b]) {
        memcpy(hb, h_prev + b * H, (size_t)H * sizeof(real));
        memcpy(cb, c_prev + b * H, (size_t)H * sizeof(real));
        memset(yb, 0, (size_t)H * sizeof(real));
        continue;
      }
      real *ab = a + b * G;
      const real *xb = gx + (t * B + b) * G, *cp = c_prev + b * H;
      #pragma omp simd
      for (int64_t j = 0; j < H; j++) {
        yb[j] = hb[j] = lstm_fwd(ab[j] + xb[j], ab[H + j] + xb[H + j], ab[2 * H + j] + xb[2 * H + j],
                                 ab[3 * H + j] + xb[3 * H + j], cp[j], &ab[j], &ab[H + j],
                                 &ab[2 * H + j], &ab[3 * H + j], &cb[j]);
      }
    }
  }
  memcpy(h_n, hs + (T % S) * BH, (size_t)BH * sizeof(real));
  memcpy(c_n, cs + (T % S) * BH, (size_t)BH * sizeof(real));
  free(WT);
  return FASTRNN_OK;
}

/* dh0, dc0 double as the running ∂L/∂h_t, ∂L/∂c_t while walking back in time. A sequence that has
 * ended carries its ∂L/∂h: its rows of dA are zero, so adding dA·W_hh leaves them as they are. */
FR_MULTIVERSION static void backward(int64_t T, int64_t B, int64_t H, const real *dy,
                                     const real *dh_n, const real *dc_n, const real *gates,
                                     const real *cs, const real *W_hh, const int64_t *lengths,
                                     real *dA, real *dh0, real *dc0) {
  const int64_t BH = B * H, G = 4 * H;
  memcpy(dh0, dh_n, (size_t)BH * sizeof(real));
  memcpy(dc0, dc_n, (size_t)BH * sizeof(real));
  for (int64_t t = T - 1; t >= 0; t--) {
    for (int64_t b = 0; b < B; b++) {
      real *dAb = dA + (t * B + b) * G, *dhb = dh0 + b * H, *dcb = dc0 + b * H;
      if (t >= lengths[b]) {
        memset(dAb, 0, (size_t)G * sizeof(real));
        continue;
      }
      const real *gb = gates + (t * B + b) * G, *dyb = dy + (t * B + b) * H;
      const real *cb = cs + ((t + 1) * B + b) * H, *cp = cs + (t * B + b) * H;
      #pragma omp simd
      for (int64_t j = 0; j < H; j++) {
        dcb[j] = lstm_bwd(gb[j], gb[H + j], gb[2 * H + j], gb[3 * H + j], cb[j], cp[j],
                          dyb[j] + dhb[j], dcb[j], &dAb[j], &dAb[H + j], &dAb[2 * H + j],
                          &dAb[3 * H + j]);
        dhb[j] = 0;
      }
    }
    rows_times(B, H, G, dA + t * B * G, W_hh, dh0, 1);
  }
}

int SFX(fastrnn_lstm_forward)(int64_t T, int64_t B, int64_t H, const real *gx, const real *h0,
                              const real *c0, const real *W_hh, const int64_t *lengths, real *y,
                              real *h_n, real *c_n, real *gates, real *cs, real *hs) {
  FR_CHECK(e, T, B, H, 4, lengths, 1, gx, h0, c0, W_hh, lengths, y, h_n, c_n, gates, cs, hs);
  if (!e) e = forward(T, B, H, T + 1, T, gx, h0, c0, W_hh, lengths, y, h_n, c_n, gates, cs, hs);
  return e;
}

int SFX(fastrnn_lstm_forward_infer)(int64_t T, int64_t B, int64_t H, const real *gx,
                                    const real *h0, const real *c0, const real *W_hh,
                                    const int64_t *lengths, real *y, real *h_n, real *c_n,
                                    real *gates, real *cs, real *hs) {
  FR_CHECK(e, T, B, H, 4, lengths, 1, gx, h0, c0, W_hh, lengths, y, h_n, c_n, gates, cs, hs);
  if (!e) e = forward(T, B, H, 2, 1, gx, h0, c0, W_hh, lengths, y, h_n, c_n, gates, cs, hs);
  return e;
}

int SFX(fastrnn_lstm_backward)(int64_t T, int64_t B, int64_t H, const real *dy, const real *dh_n,
                               const real *dc_n, const real *gates, const real *cs,
                               const real *W_hh, const int64_t *lengths, real *dA, real *dh0,
                               real *dc0) {
  FR_CHECK(e, T, B, H, 4, lengths, 1, dy, dh_n, dc_n, gates, cs, W_hh, lengths, dA, dh0, dc0);
  if (!e) backward(T, B, H, dy, dh_n, dc_n, gates, cs, W_hh, lengths, dA, dh0, dc0);
  return e;
}
