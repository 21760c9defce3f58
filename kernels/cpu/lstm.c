/* LSTM on the CPU (gates i, f, g, o) and its BPTT. Compiled once per element type and CPU variant. */
#include "internal.h"

/* With a projection (LSTMP, W_hr [R,H]) the state is h_t = r_t W_hrᵀ [B,R], r_t = o_t ⊙ tanh c_t
 * [B,H], and W_hh is [4H,R]; without one, R = H and h_t = r_t. A step then has a second product,
 * over all of r_t, so a second barrier: each thread computes its projection units [k0, k1) (a
 * slice of R as [j0, j1) is of H). */

/* h_t = r_t W_hrᵀ, step t, a thread's units [k0, k1) of R; y_t = h_t, or, past a sequence's
 * end, h_t = h_{t-1} and y_t = 0. r_t [B,H], h_prev, h_t, y_t [B,R]. */
static void project(const fr_weights *wr, int64_t t, int64_t B, int64_t R, const int64_t *lengths,
                    const real *r_t, const real *h_prev, real *h_t, real *y_t, int64_t k0,
                    int64_t k1) {
  const size_t n = (size_t)(k1 - k0) * sizeof(real);
  fr_step_forward(wr, t, r_t, h_t, 0, B, k0, k1);
  for (int64_t b = 0; b < B; b++) {
    const int64_t o = b * R + k0;
    if (t >= lengths[b]) {
      memcpy(h_t + o, h_prev + o, n);
      memset(y_t + o, 0, n);
    } else {
      memcpy(y_t + o, h_t + o, n);
    }
  }
}

/* The pointwise math of units [j0, j1) of one row at one step: the gates' pre-activations ab
 * (recurrent, gate blocks H apart) plus xb (G_x, blocks xs apart), the old cell cp; writes the
 * activated gates over ab, the new cell into cb, h into rb and yb. `bf16`: the products were in
 * bfloat16, and so is the precision the math needs (lstm_fwd_bf16). */
static inline __attribute__((always_inline)) void cell_math(
    int bf16, int64_t H, int64_t xs, int64_t j0, int64_t j1, real *ab, const real *xb,
    const real *cp, real *cb, real *rb, real *yb) {
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
  (void)bf16;
  #pragma omp simd
  for (int64_t j = j0; j < j1; j++)
    yb[j] = rb[j] = lstm_fwd(ab[j] + xb[j], ab[H + j] + xb[xs + j],
                             ab[2 * H + j] + xb[2 * xs + j], ab[3 * H + j] + xb[3 * xs + j],
                             cp[j], &ab[j], &ab[H + j], &ab[2 * H + j], &ab[3 * H + j], &cb[j]);
}

/* Thread p of P runs every step for its part (fr_part: its units [j0, j1) of every row, or all
 * units of its rows [b0, b1)) and, with a projection (split by units only), its units [k0, k1)
 * of R; w is W_hh, wr W_hr or NULL (fr_weights). S state slots (T+1 or 2) and Sg gate slots (T
 * or 1), as in fastrnn.h. G_x comes from gx [T,B,4H], or, when `in` is set, is computed chunk
 * by chunk from x (fr_input). */
static void forward_part(int p, int P, int rows, int64_t T, int64_t B, int64_t H, int64_t R,
                         int64_t S, int64_t Sg, const real *gx, const fr_input *in,
                         const fr_weights *w, const fr_weights *wr, const int64_t *lengths,
                         real *y, real *gates, real *cs, real *hs, real *rs) {
  const int64_t BH = B * H, BR = B * R, G = 4 * H;
  const fr_part q = fr_begin(p, P, rows, B, H, w, in);
  const int64_t j0 = q.j0, j1 = q.j1, M = q.b1 - q.b0;
  int64_t k0, k1;
  fr_slice(R, p, P, &k0, &k1);
  if (wr) fr_weights_pack(wr, k0, k1);
  const size_t n = (size_t)(j1 - j0) * sizeof(real);
  /* G_x of row (t, b), gate q, unit j is xb[q·xs + j − j0]: in gx, or in the thread's chunk */
  real *xc = in ? fr_input_slice(in, B, &q) : NULL;
  const int64_t xs = in ? j1 - j0 : H, xrow = in ? 4 * (j1 - j0) : G;
  for (int64_t t = 0; t < T; t++) {
    const real *h_prev = hs + (t % S) * BR, *c_prev = cs + (t % S) * BH;
    real *h_t = hs + ((t + 1) % S) * BR, *c_t = cs + ((t + 1) % S) * BH;
    real *r_t = wr ? rs + (t % Sg) * BH : h_t;  /* o_t ⊙ tanh c_t */
    real *a = gates + (t % Sg) * B * G;
    if (in && t % in->Tc == 0) fr_input_chunk(in, t, T, B, xc, &q);
    const real *xt = in ? xc + (t % in->Tc) * M * xrow : gx + (t * B + q.b0) * G + j0;
    fr_step_forward(w, t, h_prev, a, q.b0, q.b1, j0, j1);
    for (int64_t b = q.b0; b < q.b1; b++) {
      /* without a projection r_t is h_t and y_t too; with one, y_t comes from project() */
      real *rb = r_t + b * H, *cb = c_t + b * H, *yb = wr ? rb : y + (t * B + b) * H;
      if (t >= lengths[b]) {  /* past this sequence's end: carry the state, output zero */
        if (!wr) memcpy(rb + j0, h_prev + b * H + j0, n);
        memcpy(cb + j0, c_prev + b * H + j0, n);
        memset(yb + j0, 0, n);  /* with a projection: r_t = 0, so dW_hr gets nothing there */
        continue;
      }
      const real *xb = xt + (b - q.b0) * xrow - j0;
      if (w->bf16)  /* (two calls: each inlined with its own constant) */
        cell_math(1, H, xs, j0, j1, a + b * G, xb, c_prev + b * H, cb, rb, yb);
      else
        cell_math(0, H, xs, j0, j1, a + b * G, xb, c_prev + b * H, cb, rb, yb);
    }
    if (!rows) {
      fr_barrier();  /* the next product (step t+1's, or the projection's) reads all */
    }
    if (wr) {
      project(wr, t, B, R, lengths, r_t, h_prev, h_t, y + t * BR, k0, k1);
      fr_barrier();
    }
  }
}

static int forward(const char *fn, int64_t T, int64_t B, int64_t H, int64_t R, int64_t S,
                   int64_t Sg, const real *gx, const fr_input *in, const real *h0,
                   const real *c0, const real *W_hh, const real *W_hr, const int64_t *lengths,
                   real *y, real *h_n, real *c_n, real *gates, real *cs, real *hs, real *rs,
                   const uint16_t *W_hh16) {
  const int64_t BH = B * H, BR = B * R, G = 4 * H;
  fr_weights w, wr;
  if (fr_weights_init(&w, 4, T, B, H, R, W_hh, lengths, 0))
    return fr_nomem(fn, "W_hh's workspace");
  if (W_hh16 && fr_weights_bf16(&w, W_hh16)) {
    fr_weights_free(&w);
    return fr_nomem(fn, "W_hh's workspace");
  }
  if (W_hr && fr_weights_init(&wr, 1, T, B, R, H, W_hr, lengths, 0)) {
    fr_weights_free(&w);
    return fr_nomem(fn, "W_hr's workspace");
  }
  fr_state0(hs, h0, BR, &w);
  fr_state0(cs, c0, BH, NULL);
  /* a step's multiply-adds: B·4H·R for the gates, B·R·H more for a projection */
  const int P = fr_team(T, B, W_hr ? 5 * R : G, H);
  const int rows = !W_hr && fr_by_rows(P, T, B, lengths, &w);  /* (a projection: by units) */
  const fr_weights *pr = W_hr ? &wr : NULL;
  FR_PARALLEL(forward_part(fr_thread(), fr_team_size(), rows, T, B, H, R, S, Sg, gx, in, &w, pr,
                           lengths, y, gates, cs, hs, rs));
  memcpy(h_n, hs + (T % S) * BR, (size_t)BR * sizeof(real));
  memcpy(c_n, cs + (T % S) * BH, (size_t)BH * sizeof(real));
  fr_weights_free(&w);
  if (W_hr) fr_weights_free(&wr);
  return FASTRNN_OK;
}

/* forward with G_x computed inside the loop from x, W_ih and the biases (fr_input). */
static int forward_x(const char *fn, int64_t T, int64_t B, int64_t I, int64_t H, int64_t R,
                     int64_t S, int64_t Sg, const real *x, const real *W_ih, const real *b_ih,
                     const real *b_hh, const real *h0, const real *c0, const real *W_hh,
                     const real *W_hr, const int64_t *lengths, real *y, real *h_n, real *c_n,
                     real *gates, real *cs, real *hs, real *rs, const uint16_t *W_ih16,
                     const uint16_t *W_hh16) {
  fr_input in;
  if (I < 1) return fr_fail(fn, "expected I >= 1, got I=%lld", (long long)I);
  if (fr_input_init(&in, 4, T, B, H, I, x, W_ih, b_ih, b_hh, lengths, W_ih16))
    return fr_nomem(fn, "W_ih's workspace");
  const int e = forward(fn, T, B, H, R, S, Sg, NULL, &in, h0, c0, W_hh, W_hr, lengths, y, h_n,
                        c_n, gates, cs, hs, rs, W_hh16);
  fr_input_free(&in);
  return e;
}

/* Thread p of P walks back in time for its part (fr_part: units [j0, j1) of H for every row and
 * [k0, k1) of R, or, without a projection, all units of rows [b0, b1)); w is W_hh, wr
 * W_hr or NULL (fr_weights). dh0 [B,R], dc0 [B,H] double as the running ∂L/∂h_t, ∂L/∂c_t. A
 * sequence that has ended carries its ∂L/∂h: its rows of dA are zero, so adding dA·W_hh leaves
 * them as they are. With a projection, ∂L/∂r_t = ∂L/∂h_t W_hr goes through dr [B,H], and each
 * step's ∂L/∂h_t is kept in du [T,B,R] (zero past a sequence's end) for dW_hr. */
static void backward_part(int p, int P, int rows, int64_t T, int64_t B, int64_t H, int64_t R,
                          const real *dy, const real *gates, const real *cs,
                          const fr_weights *w, const fr_weights *wr, const int64_t *lengths,
                          real *dA, real *dh0, real *dc0, real *du, real *dr) {
  const int64_t G = 4 * H;
  const fr_part part = fr_begin(p, P, rows, B, H, w, NULL);  /* (a projection: by units) */
  const int64_t j0 = part.j0, j1 = part.j1, b0 = part.b0, b1 = part.b1;
  int64_t k0 = 0, k1 = R;
  if (!rows) fr_slice(R, p, P, &k0, &k1);
  if (wr) fr_weights_pack(wr, j0, j1);
  const size_t n = (size_t)(j1 - j0) * sizeof(real), nk = (size_t)(k1 - k0) * sizeof(real);
  for (int64_t t = T - 1; t >= 0; t--) {
    if (wr) {  /* ∂L/∂h_t = dy_t + what step t+1 sent back; then ∂L/∂r_t = ∂L/∂h_t W_hr */
      for (int64_t b = 0; b < B; b++) {
        real *dhb = dh0 + b * R, *ub = du + (t * B + b) * R;
        const real *dyb = dy + (t * B + b) * R;
        if (t >= lengths[b]) {
          memset(ub + k0, 0, nk);
          continue;
        }
        for (int64_t k = k0; k < k1; k++) ub[k] = dhb[k] += dyb[k];
      }
      fr_barrier();  /* the product below reads all of ∂L/∂h_t */
      for (int64_t b = 0; b < wr->active[t]; b++) memset(dr + b * H + j0, 0, n);
      fr_step_backward(wr, t, dh0, dr, 0, B, j0, j1);
    }
    for (int64_t b = b0; b < b1; b++) {
      real *dAb = dA + (t * B + b) * G, *dhb = dh0 + b * H, *dcb = dc0 + b * H;
      if (t >= lengths[b]) {
        for (int64_t q = 0; q < 4; q++) memset(dAb + q * H + j0, 0, n);
        continue;
      }
      const real *gb = gates + (t * B + b) * G, *dyb = dy + (t * B + b) * H;
      const real *cb = cs + ((t + 1) * B + b) * H, *cp = cs + (t * B + b) * H;
      if (!wr) {  /* ∂L/∂r_t = ∂L/∂h_t, the thread's own units: no product, no barrier */
        #pragma omp simd
        for (int64_t j = j0; j < j1; j++) dhb[j] += dyb[j];
      }
      const real *drb = wr ? dr + b * H : dhb;
      #pragma omp simd
      for (int64_t j = j0; j < j1; j++)
        dcb[j] = lstm_bwd(gb[j], gb[H + j], gb[2 * H + j], gb[3 * H + j], cb[j], cp[j], drb[j],
                          dcb[j], &dAb[j], &dAb[H + j], &dAb[2 * H + j], &dAb[3 * H + j]);
      if (!wr) memset(dhb + j0, 0, n);  /* consumed: the product below adds step t's part */
    }
    if (!rows) {
      fr_barrier();  /* the product below reads all of dA[t] (and ∂L/∂h_t has been read) */
    }
    if (wr)
      for (int64_t b = 0; b < B; b++)
        if (t < lengths[b]) memset(dh0 + b * R + k0, 0, nk);
    fr_step_backward(w, t, dA + t * B * G, dh0, b0, b1, k0, k1);
  }
}

static int backward(const char *fn, int64_t T, int64_t B, int64_t H, int64_t R, const real *dy,
                    const real *dh_n, const real *dc_n, const real *gates, const real *cs,
                    const real *W_hh, const real *W_hr, const int64_t *lengths, real *dA,
                    real *dh0, real *dc0, real *du) {
  fr_weights w, wr;
  real *dr = NULL;
  if (fr_weights_init(&w, 4, T, B, H, R, W_hh, lengths, 1))
    return fr_nomem(fn, "W_hh's workspace");
  if (W_hr && fr_weights_init(&wr, 1, T, B, R, H, W_hr, lengths, 1)) {
    fr_weights_free(&w);
    return fr_nomem(fn, "W_hr's workspace");
  }
  if (W_hr && !(dr = fr_work_alloc((size_t)(B * H) * sizeof(real)))) {
    fr_weights_free(&wr);
    fr_weights_free(&w);
    return fr_nomem(fn, "∂L/∂r_t");
  }
  real *dh = fr_dstate0(dh0, dh_n, B * R, &w);
  if (!dh) {
    fr_weights_free(&w);
    if (W_hr) fr_weights_free(&wr);
    fr_work_free(dr);
    return fr_nomem(fn, "∂L/∂h_t");
  }
  memcpy(dc0, dc_n, (size_t)(B * H) * sizeof(real));
  const int P = fr_backward_team(&w, T, W_hr != NULL, B, W_hr ? 5 * R : 4 * H, H);
  const int rows = !W_hr && fr_by_rows(P, T, B, lengths, &w);
  const fr_weights *pr = W_hr ? &wr : NULL;
  FR_PARALLEL(backward_part(fr_thread(), fr_team_size(), rows, T, B, H, R, dy, gates, cs, &w, pr,
                            lengths, dA, dh, dc0, du, dr));
  fr_weights_free(&w);
  if (W_hr) fr_weights_free(&wr);
  fr_work_free(dr);
  fr_dstate0_free(dh, dh0);
  return FASTRNN_OK;
}

int SFXV(fastrnn_lstm_forward)(int64_t T, int64_t B, int64_t H, const real *gx, const real *h0,
                              const real *c0, const real *W_hh, const int64_t *lengths, real *y,
                              real *h_n, real *c_n, real *gates, real *cs, real *hs) {
  FR_CHECK(e, T, B, H, 4, lengths, 1, gx, h0, c0, W_hh, lengths, y, h_n, c_n, gates, cs, hs);
  if (!e) e = forward(__func__, T, B, H, H, T + 1, T, gx, NULL, h0, c0, W_hh, NULL, lengths, y,
                      h_n, c_n, gates, cs, hs, NULL, NULL);
  return e;
}

int SFXV(fastrnn_lstm_forward_infer)(int64_t T, int64_t B, int64_t H, const real *gx,
                                    const real *h0, const real *c0, const real *W_hh,
                                    const int64_t *lengths, real *y, real *h_n, real *c_n,
                                    real *gates, real *cs, real *hs) {
  FR_CHECK(e, T, B, H, 4, lengths, 1, gx, h0, c0, W_hh, lengths, y, h_n, c_n, gates, cs, hs);
  if (!e) e = forward(__func__, T, B, H, H, 2, 1, gx, NULL, h0, c0, W_hh, NULL, lengths, y, h_n,
                      c_n, gates, cs, hs, NULL, NULL);
  return e;
}

int SFXV(fastrnn_lstm_forward_x)(int64_t T, int64_t B, int64_t I, int64_t H, const real *x,
                                const real *W_ih, const real *b_ih, const real *b_hh,
                                const real *h0, const real *c0, const real *W_hh,
                                const int64_t *lengths, real *y, real *h_n, real *c_n,
                                real *gates, real *cs, real *hs) {
  FR_CHECK(e, T, B, H, 4, lengths, 1, x, W_ih, W_hh, lengths, y, h_n, c_n, gates, cs, hs);
  if (!e) e = forward_x(__func__, T, B, I, H, H, T + 1, T, x, W_ih, b_ih, b_hh, h0, c0, W_hh,
                        NULL, lengths, y, h_n, c_n, gates, cs, hs, NULL, NULL, NULL);
  return e;
}

int SFXV(fastrnn_lstm_forward_x_infer)(int64_t T, int64_t B, int64_t I, int64_t H,
                                      const real *x, const real *W_ih, const real *b_ih,
                                      const real *b_hh, const real *h0, const real *c0,
                                      const real *W_hh, const int64_t *lengths, real *y,
                                      real *h_n, real *c_n, real *gates, real *cs, real *hs) {
  FR_CHECK(e, T, B, H, 4, lengths, 1, x, W_ih, W_hh, lengths, y, h_n, c_n, gates, cs, hs);
  if (!e) e = forward_x(__func__, T, B, I, H, H, 2, 1, x, W_ih, b_ih, b_hh, h0, c0, W_hh, NULL,
                        lengths, y, h_n, c_n, gates, cs, hs, NULL, NULL, NULL);
  return e;
}

int SFXV(fastrnn_lstm_backward)(int64_t T, int64_t B, int64_t H, const real *dy, const real *dh_n,
                               const real *dc_n, const real *gates, const real *cs,
                               const real *W_hh, const int64_t *lengths, real *dA, real *dh0,
                               real *dc0) {
  FR_CHECK(e, T, B, H, 4, lengths, 1, dy, dh_n, dc_n, gates, cs, W_hh, lengths, dA, dc0);
  if (!e) e = backward(__func__, T, B, H, H, dy, dh_n, dc_n, gates, cs, W_hh, NULL, lengths, dA,
                       dh0, dc0, NULL);
  return e;
}

/* LSTMP: the same with a projection W_hr [R,H]. */
static int check_R(const char *fn, int e, int64_t R) {
  return e ? e : R < 1 ? fr_fail(fn, "expected R >= 1, got R=%lld", (long long)R) : 0;
}

int SFXV(fastrnn_lstmp_forward)(int64_t T, int64_t B, int64_t H, int64_t R, const real *gx,
                               const real *h0, const real *c0, const real *W_hh,
                               const real *W_hr, const int64_t *lengths, real *y, real *h_n,
                               real *c_n, real *gates, real *cs, real *hs, real *rs) {
  FR_CHECK(e, T, B, H, 4, lengths, 1, gx, h0, c0, W_hh, W_hr, lengths, y, h_n, c_n, gates, cs,
           hs, rs);
  e = check_R(__func__, e, R);
  if (!e) e = forward(__func__, T, B, H, R, T + 1, T, gx, NULL, h0, c0, W_hh, W_hr, lengths, y,
                      h_n, c_n, gates, cs, hs, rs, NULL);
  return e;
}

int SFXV(fastrnn_lstmp_forward_infer)(int64_t T, int64_t B, int64_t H, int64_t R,
                                     const real *gx, const real *h0, const real *c0,
                                     const real *W_hh, const real *W_hr, const int64_t *lengths,
                                     real *y, real *h_n, real *c_n, real *gates, real *cs,
                                     real *hs, real *rs) {
  FR_CHECK(e, T, B, H, 4, lengths, 1, gx, h0, c0, W_hh, W_hr, lengths, y, h_n, c_n, gates, cs,
           hs, rs);
  e = check_R(__func__, e, R);
  if (!e) e = forward(__func__, T, B, H, R, 2, 1, gx, NULL, h0, c0, W_hh, W_hr, lengths, y, h_n,
                      c_n, gates, cs, hs, rs, NULL);
  return e;
}

int SFXV(fastrnn_lstmp_forward_x)(int64_t T, int64_t B, int64_t I, int64_t H, int64_t R,
                                 const real *x, const real *W_ih, const real *b_ih,
                                 const real *b_hh, const real *h0, const real *c0,
                                 const real *W_hh, const real *W_hr, const int64_t *lengths,
                                 real *y, real *h_n, real *c_n, real *gates, real *cs, real *hs,
                                 real *rs) {
  FR_CHECK(e, T, B, H, 4, lengths, 1, x, W_ih, W_hh, W_hr, lengths, y, h_n, c_n, gates, cs, hs,
           rs);
  e = check_R(__func__, e, R);
  if (!e) e = forward_x(__func__, T, B, I, H, R, T + 1, T, x, W_ih, b_ih, b_hh, h0, c0, W_hh,
                        W_hr, lengths, y, h_n, c_n, gates, cs, hs, rs, NULL, NULL);
  return e;
}

int SFXV(fastrnn_lstmp_forward_x_infer)(int64_t T, int64_t B, int64_t I, int64_t H, int64_t R,
                                       const real *x, const real *W_ih, const real *b_ih,
                                       const real *b_hh, const real *h0, const real *c0,
                                       const real *W_hh, const real *W_hr,
                                       const int64_t *lengths, real *y, real *h_n, real *c_n,
                                       real *gates, real *cs, real *hs, real *rs) {
  FR_CHECK(e, T, B, H, 4, lengths, 1, x, W_ih, W_hh, W_hr, lengths, y, h_n, c_n, gates, cs, hs,
           rs);
  e = check_R(__func__, e, R);
  if (!e) e = forward_x(__func__, T, B, I, H, R, 2, 1, x, W_ih, b_ih, b_hh, h0, c0, W_hh, W_hr,
                        lengths, y, h_n, c_n, gates, cs, hs, rs, NULL, NULL);
  return e;
}

int SFXV(fastrnn_lstmp_backward)(int64_t T, int64_t B, int64_t H, int64_t R, const real *dy,
                                const real *dh_n, const real *dc_n, const real *gates,
                                const real *cs, const real *W_hh, const real *W_hr,
                                const int64_t *lengths, real *dA, real *dh0, real *dc0,
                                real *du) {
  FR_CHECK(e, T, B, H, 4, lengths, 1, dy, dh_n, dc_n, gates, cs, W_hh, W_hr, lengths, dA, dc0,
           du);
  e = check_R(__func__, e, R);
  if (!e) e = backward(__func__, T, B, H, R, dy, dh_n, dc_n, gates, cs, W_hh, W_hr, lengths, dA,
                       dh0, dc0, du);
  return e;
}

#if !FASTRNN_F64
/* forward_x with every argument and result in bfloat16 (io16.h): S state and Sg gate slots. */
static int forward_x16(const char *fn, int64_t T, int64_t B, int64_t I, int64_t H, int64_t S,
                       int64_t Sg, const uint16_t *x, const uint16_t *W_ih,
                       const uint16_t *b_ih, const uint16_t *b_hh, const uint16_t *h0,
                       const uint16_t *c0, const uint16_t *W_hh, const int64_t *lengths,
                       uint16_t *y, uint16_t *h_n, uint16_t *c_n, real *gates, real *cs,
                       real *hs) {
  FR_CHECK_AS(fn, e, T, B, H, 4, lengths, 1, x, W_ih, W_hh, lengths, y, h_n, c_n, gates, cs,
              hs);
  fr_io16 io;
  e = fr_io16_begin(fn, e, &io, T, B, I, H, 4 * H, 1, x, b_ih, b_hh, h0, c0);
  if (e) return e;
  e = forward_x(fn, T, B, I, H, H, S, Sg, io.x, NULL, io.b_ih, io.b_hh, io.h0, io.c0, NULL, NULL,
                lengths, io.y, io.h_n, io.c_n, gates, cs, hs, NULL, W_ih, W_hh);
  return fr_io16_end(&io, e, T, B, H, y, h_n, c_n);
}

/* fastrnn_lstm_forward_x(_infer) with every argument and result in bfloat16. */
int SFXV(fastrnn_lstm_forward_x_bf16)(int64_t T, int64_t B, int64_t I, int64_t H,
                                     const uint16_t *x, const uint16_t *W_ih,
                                     const uint16_t *b_ih, const uint16_t *b_hh,
                                     const uint16_t *h0, const uint16_t *c0,
                                     const uint16_t *W_hh, const int64_t *lengths, uint16_t *y,
                                     uint16_t *h_n, uint16_t *c_n, real *gates, real *cs,
                                     real *hs) {
  return forward_x16(__func__, T, B, I, H, T + 1, T, x, W_ih, b_ih, b_hh, h0, c0, W_hh, lengths,
                     y, h_n, c_n, gates, cs, hs);
}

int SFXV(fastrnn_lstm_forward_x_infer_bf16)(int64_t T, int64_t B, int64_t I, int64_t H,
                                           const uint16_t *x, const uint16_t *W_ih,
                                           const uint16_t *b_ih, const uint16_t *b_hh,
                                           const uint16_t *h0, const uint16_t *c0,
                                           const uint16_t *W_hh, const int64_t *lengths,
                                           uint16_t *y, uint16_t *h_n, uint16_t *c_n,
                                           real *gates, real *cs, real *hs) {
  return forward_x16(__func__, T, B, I, H, 2, 1, x, W_ih, b_ih, b_hh, h0, c0, W_hh, lengths, y,
                     h_n, c_n, gates, cs, hs);
}
#endif
