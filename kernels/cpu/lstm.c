/* LSTM on the CPU (gates i, f, g, o) and its BPTT. Compiled once per element type and CPU variant. */
#include "internal.h"

/* Thread p of P runs every step for its units [j0, j1); w is W_hh (fr_weights). S state
 * slots (T+1 or 2) and Sg gate slots (T or 1), as in fastrnn.h. G_x comes from gx [T,B,4H], or,
 * when `in` is set, is computed chunk by chunk from x (fr_input). */
static void forward_part(int p, int P, int64_t T, int64_t B, int64_t H, int64_t S,
                         int64_t Sg, const real *gx, const fr_input *in, const fr_weights *w,
                         const int64_t *lengths, real *y, real *gates, real *cs,
                         real *hs) {
  const int64_t BH = B * H, G = 4 * H;
  int64_t j0, j1;
  fr_slice(H, p, P, &j0, &j1);
  fr_weights_pack(w, j0, j1);
  if (in) fr_weights_pack(&in->w, j0, j1);
  const size_t n = (size_t)(j1 - j0) * sizeof(real);
  /* G_x of row (t, b), gate q, unit j is xb[q·xs + j − j0]: in gx, or in the thread's chunk */
  real *xc = in ? fr_input_slice(in, B, j0) : NULL;
  const int64_t xs = in ? j1 - j0 : H, xrow = in ? 4 * (j1 - j0) : G;
  for (int64_t t = 0; t < T; t++) {
    const real *h_prev = hs + (t % S) * BH, *c_prev = cs + (t % S) * BH;
    real *h_t = hs + ((t + 1) % S) * BH, *c_t = cs + ((t + 1) % S) * BH;
    real *a = gates + (t % Sg) * B * G;
    if (in && t % in->Tc == 0) fr_input_chunk(in, t, T, B, xc, j0, j1);
    const real *xt = in ? xc + (t % in->Tc) * B * xrow : gx + t * B * G + j0;
    fr_step_forward(w, t, h_prev, a, j0, j1);
    for (int64_t b = 0; b < B; b++) {
      real *hb = h_t + b * H, *cb = c_t + b * H, *yb = y + (t * B + b) * H;
      if (t >= lengths[b]) {  /* past this sequence's end: carry the state, output zero */
        memcpy(hb + j0, h_prev + b * H + j0, n);
        memcpy(cb + j0, c_prev + b * H + j0, n);
        memset(yb + j0, 0, n);
        continue;
      }
      real *ab = a + b * G;
      const real *xb = xt + b * xrow - j0, *cp = c_prev + b * H;
      #pragma omp simd
      for (int64_t j = j0; j < j1; j++) {
        yb[j] = hb[j] = lstm_fwd(ab[j] + xb[j], ab[H + j] + xb[xs + j],
                                 ab[2 * H + j] + xb[2 * xs + j], ab[3 * H + j] + xb[3 * xs + j],
                                 cp[j], &ab[j], &ab[H + j], &ab[2 * H + j], &ab[3 * H + j],
                                 &cb[j]);
      }
    }
    fr_barrier();  /* the next step's product reads all of h_t */
  }
}

static int forward(const char *fn, int64_t T, int64_t B, int64_t H, int64_t S, int64_t Sg,
                   const real *gx, const fr_input *in, const real *h0, const real *c0,
                   const real *W_hh, const int64_t *lengths, real *y, real *h_n, real *c_n,
                   real *gates, real *cs, real *hs) {
  const int64_t BH = B * H, G = 4 * H;
  fr_weights w;
  if (fr_weights_init(&w, 4, T, B, H, H, W_hh, lengths, 0))
    return fr_nomem(fn, "W_hh's workspace");
  memcpy(hs, h0, (size_t)BH * sizeof(real));
  memcpy(cs, c0, (size_t)BH * sizeof(real));
  const int P = fr_team(B, G, H);
  FR_PARALLEL(forward_part(fr_thread(), fr_team_size(), T, B, H, S, Sg, gx, in, &w, lengths, y,
                           gates, cs, hs));
  memcpy(h_n, hs + (T % S) * BH, (size_t)BH * sizeof(real));
  memcpy(c_n, cs + (T % S) * BH, (size_t)BH * sizeof(real));
  fr_weights_free(&w);
  return FASTRNN_OK;
}

/* forward with G_x computed inside the loop from x, W_ih and the bias (fr_input). */
static int forward_x(const char *fn, int64_t T, int64_t B, int64_t I, int64_t H, int64_t S,
                     int64_t Sg, const real *x, const real *W_ih, const real *b,
                     const real *h0, const real *c0, const real *W_hh, const int64_t *lengths,
                     real *y, real *h_n, real *c_n, real *gates, real *cs, real *hs) {
  fr_input in;
  if (I < 1) return fr_fail(fn, "expected I >= 1, got I=%lld", (long long)I);
  if (fr_input_init(&in, 4, T, B, H, I, x, W_ih, b)) return fr_nomem(fn, "the packed W_ih");
  const int e = forward(fn, T, B, H, S, Sg, NULL, &in, h0, c0, W_hh, lengths, y, h_n, c_n,
                        gates, cs, hs);
  fr_input_free(&in);
  return e;
}

/* Thread p of P walks back in time for its units [j0, j1); w is W_hh (fr_weights). dh0, dc0 double as
 * the running ∂L/∂h_t, ∂L/∂c_t. A sequence that has ended carries its ∂L/∂h: its rows of dA are
 * zero, so adding dA·W_hh leaves them as they are. */
static void backward_part(int p, int P, int64_t T, int64_t B, int64_t H,
                          const real *dy, const real *gates, const real *cs,
                          const fr_weights *w, const int64_t *lengths, real *dA,
                          real *dh0, real *dc0) {
  const int64_t G = 4 * H;
  int64_t j0, j1;
  fr_slice(H, p, P, &j0, &j1);
  fr_weights_pack(w, j0, j1);
  const size_t n = (size_t)(j1 - j0) * sizeof(real);
  for (int64_t t = T - 1; t >= 0; t--) {
    for (int64_t b = 0; b < B; b++) {
      real *dAb = dA + (t * B + b) * G, *dhb = dh0 + b * H, *dcb = dc0 + b * H;
      if (t >= lengths[b]) {
        for (int64_t q = 0; q < 4; q++) memset(dAb + q * H + j0, 0, n);
        continue;
      }
      const real *gb = gates + (t * B + b) * G, *dyb = dy + (t * B + b) * H;
      const real *cb = cs + ((t + 1) * B + b) * H, *cp = cs + (t * B + b) * H;
      #pragma omp simd
      for (int64_t j = j0; j < j1; j++) {
        dcb[j] = lstm_bwd(gb[j], gb[H + j], gb[2 * H + j], gb[3 * H + j], cb[j], cp[j],
                          dyb[j] + dhb[j], dcb[j], &dAb[j], &dAb[H + j], &dAb[2 * H + j],
                          &dAb[3 * H + j]);
        dhb[j] = 0;
      }
    }
    fr_barrier();  /* the product below reads all of dA[t] */
    fr_step_backward(w, t, dA + t * B * G, dh0, j0, j1);
  }
}

int SFXV(fastrnn_lstm_forward)(int64_t T, int64_t B, int64_t H, const real *gx, const real *h0,
                              const real *c0, const real *W_hh, const int64_t *lengths, real *y,
                              real *h_n, real *c_n, real *gates, real *cs, real *hs) {
  FR_CHECK(e, T, B, H, 4, lengths, 1, gx, h0, c0, W_hh, lengths, y, h_n, c_n, gates, cs, hs);
  if (!e) e = forward(__func__, T, B, H, T + 1, T, gx, NULL, h0, c0, W_hh, lengths, y, h_n, c_n,
                      gates, cs, hs);
  return e;
}

int SFXV(fastrnn_lstm_forward_infer)(int64_t T, int64_t B, int64_t H, const real *gx,
                                    const real *h0, const real *c0, const real *W_hh,
                                    const int64_t *lengths, real *y, real *h_n, real *c_n,
                                    real *gates, real *cs, real *hs) {
  FR_CHECK(e, T, B, H, 4, lengths, 1, gx, h0, c0, W_hh, lengths, y, h_n, c_n, gates, cs, hs);
  if (!e) e = forward(__func__, T, B, H, 2, 1, gx, NULL, h0, c0, W_hh, lengths, y, h_n, c_n,
                      gates, cs, hs);
  return e;
}

int SFXV(fastrnn_lstm_forward_x)(int64_t T, int64_t B, int64_t I, int64_t H, const real *x,
                                const real *W_ih, const real *b, const real *h0, const real *c0,
                                const real *W_hh, const int64_t *lengths, real *y, real *h_n,
                                real *c_n, real *gates, real *cs, real *hs) {
  FR_CHECK(e, T, B, H, 4, lengths, 1, x, W_ih, h0, c0, W_hh, lengths, y, h_n, c_n, gates, cs, hs);
  if (!e) e = forward_x(__func__, T, B, I, H, T + 1, T, x, W_ih, b, h0, c0, W_hh, lengths, y,
                        h_n, c_n, gates, cs, hs);
  return e;
}

int SFXV(fastrnn_lstm_forward_x_infer)(int64_t T, int64_t B, int64_t I, int64_t H,
                                      const real *x, const real *W_ih, const real *b,
                                      const real *h0, const real *c0, const real *W_hh,
                                      const int64_t *lengths, real *y, real *h_n, real *c_n,
                                      real *gates, real *cs, real *hs) {
  FR_CHECK(e, T, B, H, 4, lengths, 1, x, W_ih, h0, c0, W_hh, lengths, y, h_n, c_n, gates, cs, hs);
  if (!e) e = forward_x(__func__, T, B, I, H, 2, 1, x, W_ih, b, h0, c0, W_hh, lengths, y, h_n,
                        c_n, gates, cs, hs);
  return e;
}

int SFXV(fastrnn_lstm_backward)(int64_t T, int64_t B, int64_t H, const real *dy, const real *dh_n,
                               const real *dc_n, const real *gates, const real *cs,
                               const real *W_hh, const int64_t *lengths, real *dA, real *dh0,
                               real *dc0) {
  FR_CHECK(e, T, B, H, 4, lengths, 1, dy, dh_n, dc_n, gates, cs, W_hh, lengths, dA, dh0, dc0);
  if (e) return e;
  fr_weights w;
  if (fr_weights_init(&w, 4, T, B, H, H, W_hh, lengths, 1))
    return fr_nomem("fastrnn_lstm_backward", "W_hh's workspace");
  memcpy(dh0, dh_n, (size_t)(B * H) * sizeof(real));
  memcpy(dc0, dc_n, (size_t)(B * H) * sizeof(real));
  const int P = fr_team(B, 4 * H, H);
  FR_PARALLEL(backward_part(fr_thread(), fr_team_size(), T, B, H, dy, gates, cs, &w, lengths, dA,
                            dh0, dc0));
  fr_weights_free(&w);
  return FASTRNN_OK;
}
