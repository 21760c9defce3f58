/* GRU on the CPU in torch's form (gates r, z, n) and its BPTT. Compiled once per element type
 * and CPU variant.
 * r multiplies the recurrent part A_n only, so b_hh stays inside the loop and ∂L/∂G_x and ∂L/∂A
 * differ in the n block. */
#include "internal.h"

/* Thread p of P runs every step for its part (fr_part: its units [j0, j1) of every row, or all
 * units of its rows [b0, b1)); w is W_hh (fr_weights). S state slots (T+1 or 2) and Sg gate
 * slots (T or 1), as in fastrnn.h. G_x comes from gx [T,B,3H], or, when `in` is set, is
 * computed chunk by chunk from x (fr_input). */
static void forward_part(int p, int P, int rows, int64_t T, int64_t B, int64_t H, int64_t S,
                         int64_t Sg, const real *gx, const fr_input *in, const fr_weights *w,
                         const real *b_hh, const int64_t *lengths, real *y,
                         real *gates, real *a_n, real *hs) {
  const int64_t BH = B * H, G = 3 * H;
  const fr_part q = fr_begin(p, P, rows, B, H, w, in);
  const int64_t j0 = q.j0, j1 = q.j1, M = q.b1 - q.b0;
  const size_t n = (size_t)(j1 - j0) * sizeof(real);
  /* G_x of row (t, b), gate q, unit j is xb[q·xs + j − j0]: in gx, or in the thread's chunk */
  real *xc = in ? fr_input_slice(in, B, &q) : NULL;
  const int64_t xs = in ? j1 - j0 : H, xrow = in ? 3 * (j1 - j0) : G;
  for (int64_t t = 0; t < T; t++) {
    const real *h_prev = hs + (t % S) * BH;
    real *h_t = hs + ((t + 1) % S) * BH;
    real *a = gates + (t % Sg) * B * G, *an = a_n + (t % Sg) * BH;
    if (in && t % in->Tc == 0) fr_input_chunk(in, t, T, B, xc, &q);
    const real *xt = in ? xc + (t % in->Tc) * M * xrow : gx + (t * B + q.b0) * G + j0;
    fr_step_forward(w, t, h_prev, a, q.b0, q.b1, j0, j1);
    for (int64_t b = q.b0; b < q.b1; b++) {
      real *hb = h_t + b * H, *yb = y + (t * B + b) * H;
      if (t >= lengths[b]) {  /* past this sequence's end: carry the state, output zero */
        memcpy(hb + j0, h_prev + b * H + j0, n);
        memset(yb + j0, 0, n);
        continue;
      }
      real *ab = a + b * G, *anb = an + b * H;
      const real *xb = xt + (b - q.b0) * xrow - j0, *hp = h_prev + b * H;
      #pragma omp simd
      for (int64_t j = j0; j < j1; j++) {
        anb[j] = ab[2 * H + j] + b_hh[2 * H + j];
        yb[j] = hb[j] = gru_fwd(xb[j], xb[xs + j], xb[2 * xs + j], ab[j] + b_hh[j],
                                ab[H + j] + b_hh[H + j], anb[j], hp[j], &ab[j], &ab[H + j],
                                &ab[2 * H + j]);
      }
    }
    if (!rows) {
      fr_barrier();  /* the next step's product reads all of h_t */
    }
  }
}

static int forward(const char *fn, int64_t T, int64_t B, int64_t H, int64_t S, int64_t Sg,
                   const real *gx, const fr_input *in, const real *h0, const real *W_hh,
                   const real *b_hh, const int64_t *lengths, real *y, real *h_n, real *gates,
                   real *a_n, real *hs, const uint16_t *W_hh16) {
  const int64_t BH = B * H, G = 3 * H;
  fr_weights w;
  if (fr_weights_init(&w, 3, T, B, H, H, W_hh, lengths, 0))
    return fr_nomem(fn, "W_hh's workspace");
  if (W_hh16 && fr_weights_bf16(&w, W_hh16)) {
    fr_weights_free(&w);
    return fr_nomem(fn, "W_hh's workspace");
  }
  fr_state0(hs, h0, BH, &w);
  const int P = fr_team(T, B, G, H), rows = fr_by_rows(P, T, B, lengths, &w);
  FR_PARALLEL(forward_part(fr_thread(), fr_team_size(), rows, T, B, H, S, Sg, gx, in, &w, b_hh,
                           lengths, y, gates, a_n, hs));
  memcpy(h_n, hs + (T % S) * BH, (size_t)BH * sizeof(real));
  fr_weights_free(&w);
  return FASTRNN_OK;
}

/* forward with G_x computed inside the loop from x, W_ih and b_ih (fr_input). */
static int forward_x(const char *fn, int64_t T, int64_t B, int64_t I, int64_t H, int64_t S,
                     int64_t Sg, const real *x, const real *W_ih, const real *b_ih,
                     const real *h0, const real *W_hh, const real *b_hh, const int64_t *lengths,
                     real *y, real *h_n, real *gates, real *a_n, real *hs,
                     const uint16_t *W_ih16, const uint16_t *W_hh16) {
  fr_input in;
  if (I < 1) return fr_fail(fn, "expected I >= 1, got I=%lld", (long long)I);
  if (fr_input_init(&in, 3, T, B, H, I, x, W_ih, b_ih, NULL, lengths, W_ih16))
    return fr_nomem(fn, "W_ih's workspace");
  const int e = forward(fn, T, B, H, S, Sg, NULL, &in, h0, W_hh, b_hh, lengths, y, h_n, gates,
                        a_n, hs, W_hh16);
  fr_input_free(&in);
  return e;
}

/* Thread p of P walks back in time for its part (fr_part: units [j0, j1) of every row, or all
 * units of rows [b0, b1)); w is W_hh (fr_weights). dh0 doubles as the running ∂L/∂h_t; it
 * already holds the direct term ∂L/∂h_t·z when dA·W_hh is added (zero rows of dA, of ended
 * sequences, add nothing). dA_t = ∂L/∂A at step t goes to a ring of two
 * slots, dAr [2,B,3H]: the product reads slot t while a thread already past it writes step t−1's
 * into the other, and the barrier of step t−1 comes before anyone writes slot t again (split by
 * rows, each thread reads and writes only its own rows of the ring: no barrier). Only its n
 * block, dA_n, is kept (its r and z blocks are dGx's): one T·B·3H output fewer, whose fresh pages
 * cost more than the step's math. */
static void backward_part(int p, int P, int rows, int64_t T, int64_t B, int64_t H,
                          const real *dy, const real *gates, const real *a_n,
                          const real *hs, const fr_weights *w,
                          const int64_t *lengths, real *dGx, real *dA_n, real *dAr,
                          real *dh0) {
  const int64_t G = 3 * H;
  const fr_part part = fr_begin(p, P, rows, B, H, w, NULL);
  const int64_t j0 = part.j0, j1 = part.j1;
  const size_t n = (size_t)(j1 - j0) * sizeof(real);
  for (int64_t t = T - 1; t >= 0; t--) {
    for (int64_t b = part.b0; b < part.b1; b++) {
      real *dxb = dGx + (t * B + b) * G, *dab = dAr + ((t & 1) * B + b) * G;
      real *dnb = dA_n + (t * B + b) * H, *dhb = dh0 + b * H;
      if (t >= lengths[b]) {
        for (int64_t q = 0; q < 3; q++) {
          memset(dxb + q * H + j0, 0, n);
          memset(dab + q * H + j0, 0, n);
        }
        memset(dnb + j0, 0, n);
        continue;
      }
      const real *gb = gates + (t * B + b) * G, *dyb = dy + (t * B + b) * H;
      const real *anb = a_n + (t * B + b) * H, *hp = hs + (t * B + b) * H;
      #pragma omp simd
      for (int64_t j = j0; j < j1; j++) {
        dhb[j] = gru_bwd(gb[j], gb[H + j], gb[2 * H + j], anb[j], hp[j], dyb[j] + dhb[j],
                         &dxb[j], &dxb[H + j], &dxb[2 * H + j]);
        dab[j] = dxb[j];
        dab[H + j] = dxb[H + j];
        dab[2 * H + j] = dnb[j] = dxb[2 * H + j] * gb[j];
      }
    }
    if (!rows) {
      fr_barrier();  /* the product below reads all of dA_t */
    }
    fr_step_backward(w, t, dAr + (t & 1) * B * G, dh0, part.b0, part.b1, j0, j1);
  }
}

int SFXV(fastrnn_gru_forward)(int64_t T, int64_t B, int64_t H, const real *gx, const real *h0,
                             const real *W_hh, const real *b_hh, const int64_t *lengths, real *y,
                             real *h_n, real *gates, real *a_n, real *hs) {
  FR_CHECK(e, T, B, H, 3, lengths, 1, gx, h0, W_hh, b_hh, lengths, y, h_n, gates, a_n, hs);
  if (!e) e = forward(__func__, T, B, H, T + 1, T, gx, NULL, h0, W_hh, b_hh, lengths, y, h_n,
                      gates, a_n, hs, NULL);
  return e;
}

int SFXV(fastrnn_gru_forward_infer)(int64_t T, int64_t B, int64_t H, const real *gx,
                                   const real *h0, const real *W_hh, const real *b_hh,
                                   const int64_t *lengths, real *y, real *h_n, real *gates,
                                   real *a_n, real *hs) {
  FR_CHECK(e, T, B, H, 3, lengths, 1, gx, h0, W_hh, b_hh, lengths, y, h_n, gates, a_n, hs);
  if (!e) e = forward(__func__, T, B, H, 2, 1, gx, NULL, h0, W_hh, b_hh, lengths, y, h_n, gates,
                      a_n, hs, NULL);
  return e;
}

int SFXV(fastrnn_gru_forward_x)(int64_t T, int64_t B, int64_t I, int64_t H, const real *x,
                               const real *W_ih, const real *b_ih, const real *h0,
                               const real *W_hh, const real *b_hh, const int64_t *lengths,
                               real *y, real *h_n, real *gates, real *a_n, real *hs) {
  FR_CHECK(e, T, B, H, 3, lengths, 1, x, W_ih, W_hh, b_hh, lengths, y, h_n, gates, a_n, hs);
  if (!e) e = forward_x(__func__, T, B, I, H, T + 1, T, x, W_ih, b_ih, h0, W_hh, b_hh, lengths,
                        y, h_n, gates, a_n, hs, NULL, NULL);
  return e;
}

int SFXV(fastrnn_gru_forward_x_infer)(int64_t T, int64_t B, int64_t I, int64_t H,
                                     const real *x, const real *W_ih, const real *b_ih,
                                     const real *h0, const real *W_hh, const real *b_hh,
                                     const int64_t *lengths, real *y, real *h_n, real *gates,
                                     real *a_n, real *hs) {
  FR_CHECK(e, T, B, H, 3, lengths, 1, x, W_ih, W_hh, b_hh, lengths, y, h_n, gates, a_n, hs);
  if (!e) e = forward_x(__func__, T, B, I, H, 2, 1, x, W_ih, b_ih, h0, W_hh, b_hh, lengths, y,
                        h_n, gates, a_n, hs, NULL, NULL);
  return e;
}

int SFXV(fastrnn_gru_backward)(int64_t T, int64_t B, int64_t H, const real *dy, const real *dh_n,
                              const real *gates, const real *a_n, const real *hs,
                              const real *W_hh, const int64_t *lengths, real *dGx, real *dA_n,
                              real *dh0) {
  FR_CHECK(e, T, B, H, 3, lengths, 1, dy, dh_n, gates, a_n, hs, W_hh, lengths, dGx, dA_n);
  if (e) return e;
  fr_weights w;
  if (fr_weights_init(&w, 3, T, B, H, H, W_hh, lengths, 1))
    return fr_nomem("fastrnn_gru_backward", "W_hh's workspace");
  real *dAr = fr_work_alloc((size_t)(2 * B * 3 * H) * sizeof(real));
  if (!dAr) {
    fr_weights_free(&w);
    return fr_nomem("fastrnn_gru_backward", "dA's ring");
  }
  real *dh = fr_dstate0(dh0, dh_n, B * H, &w);
  if (!dh) {
    fr_weights_free(&w);
    fr_work_free(dAr);
    return fr_nomem("fastrnn_gru_backward", "∂L/∂h_t");
  }
  const int P = fr_backward_team(&w, T, 0, B, 3 * H, H), rows = fr_by_rows(P, T, B, lengths, &w);
  FR_PARALLEL(backward_part(fr_thread(), fr_team_size(), rows, T, B, H, dy, gates, a_n, hs, &w,
                            lengths, dGx, dA_n, dAr, dh));
  fr_weights_free(&w);
  fr_work_free(dAr);
  fr_dstate0_free(dh, dh0);
  return FASTRNN_OK;
}

#if !FASTRNN_F64
/* forward_x with every argument and result in bfloat16 (io16.h): S state and Sg gate slots. */
static int forward_x16(const char *fn, int64_t T, int64_t B, int64_t I, int64_t H, int64_t S,
                       int64_t Sg, const uint16_t *x, const uint16_t *W_ih,
                       const uint16_t *b_ih, const uint16_t *h0, const uint16_t *W_hh,
                       const uint16_t *b_hh, const int64_t *lengths, uint16_t *y, uint16_t *h_n,
                       real *gates, real *a_n, real *hs) {
  FR_CHECK_AS(fn, e, T, B, H, 3, lengths, 1, x, W_ih, W_hh, b_hh, lengths, y, h_n, gates, a_n,
              hs);
  fr_io16 io;
  e = fr_io16_begin(fn, e, &io, T, B, I, H, 3 * H, 0, x, b_ih, b_hh, h0, NULL);
  if (e) return e;
  e = forward_x(fn, T, B, I, H, S, Sg, io.x, NULL, io.b_ih, io.h0, NULL, io.b_hh, lengths, io.y,
                io.h_n, gates, a_n, hs, W_ih, W_hh);
  return fr_io16_end(&io, e, T, B, H, y, h_n, NULL);
}

/* fastrnn_gru_forward_x(_infer) with every argument and result in bfloat16. */
int SFXV(fastrnn_gru_forward_x_bf16)(int64_t T, int64_t B, int64_t I, int64_t H,
                                    const uint16_t *x, const uint16_t *W_ih, const uint16_t *b_ih,
                                    const uint16_t *h0, const uint16_t *W_hh,
                                    const uint16_t *b_hh, const int64_t *lengths, uint16_t *y,
                                    uint16_t *h_n, real *gates, real *a_n, real *hs) {
  return forward_x16(__func__, T, B, I, H, T + 1, T, x, W_ih, b_ih, h0, W_hh, b_hh, lengths, y,
                     h_n, gates, a_n, hs);
}

int SFXV(fastrnn_gru_forward_x_infer_bf16)(int64_t T, int64_t B, int64_t I, int64_t H,
                                          const uint16_t *x, const uint16_t *W_ih,
                                          const uint16_t *b_ih, const uint16_t *h0,
                                          const uint16_t *W_hh, const uint16_t *b_hh,
                                          const int64_t *lengths, uint16_t *y, uint16_t *h_n,
                                          real *gates, real *a_n, real *hs) {
  return forward_x16(__func__, T, B, I, H, 2, 1, x, W_ih, b_ih, h0, W_hh, b_hh, lengths, y, h_n,
                     gates, a_n, hs);
}
#endif
