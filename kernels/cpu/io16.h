/* A bfloat16 module's no-grad call (<cell>_forward_x_infer_bf16 in fastrnn.h): every argument
 * and result in bfloat16, the work in float32. x, the biases and the initial states are widened
 * once into one work block, the cell's forward_x runs on them (W_ih and W_hh as they are:
 * fr_weights_bf16), and y, h_n (c_n) are rounded from its float32 results — here, where as torch
 * ops around the call these conversions took ~6 % of a bfloat16 LSTM's T = 100, B = 16,
 * H = 256 call (Zen 4: widening x 150–200 µs within the call, 20–45 alone; rounding y ~110).
 * Included by internal.h in the float32 builds. */
#ifndef FASTRNN_CPU_IO16_H
#define FASTRNN_CPU_IO16_H

/* dst [n] = src [n] widened (to16 = 0) or rounded (to16 = 1): thread p of P's share. */
static void fr_convert_part(int p, int P, const void *src, void *dst, int64_t n, int to16) {
  const int64_t i0 = n * p / P, i1 = n * (p + 1) / P;
  if (to16) {
    const real *s = src;
    uint16_t *d = dst;
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) d[i] = fr_bf16(s[i]);
  } else {
    const uint16_t *s = src;
    real *d = dst;
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) d[i] = fr_f32(s[i]);
  }
}

/* The same over all n, on the library's threads where each gets 2^16 values or more. */
static void fr_convert(const void *src, void *dst, int64_t n, int to16) {
  int64_t P = n >> 16;
  if (P > fastrnn_get_num_threads()) P = fastrnn_get_num_threads();
  if (P < 1) P = 1;
  FR_PARALLEL(fr_convert_part(fr_thread(), fr_team_size(), src, dst, n, to16));
}

typedef struct {
  real *x, *b_ih, *b_hh, *h0, *c0;  /* [T,B,I], [G], [G], [B,H], [B,H] widened, or NULL */
  real *y, *h_n, *c_n;              /* [T,B,H], [B,H], [B,H]: the float32 results */
  real *block;
} fr_io16;

/* For entry point fn, after its argument checks returned e: unless e, checks I, allocates and
 * fills io for T steps of B rows, I inputs, H units, G gate rows (each pointer may be NULL but
 * x; c0 and c_n only for an LSTM, `cells`). Returns the error (io then holds nothing) or 0. */
static inline int fr_io16_begin(const char *fn, int e, fr_io16 *io, int64_t T, int64_t B,
                                int64_t I, int64_t H, int64_t G, int cells, const uint16_t *x,
                                const uint16_t *b_ih, const uint16_t *b_hh, const uint16_t *h0,
                                const uint16_t *c0) {
  if (e) return e;
  if (I < 1) return fr_fail(fn, "expected I >= 1, got I=%lld", (long long)I);
  const int64_t BH = B * H;
  const int64_t n = T * B * I + T * BH + (2 + 2 * cells) * BH + 2 * G;
  real *p = io->block = fr_work_alloc((size_t)n * sizeof(real));
  if (!p) return fr_nomem(fn, "the float32 copies");
  io->x = p, p += T * B * I;
  io->y = p, p += T * BH;
  io->h_n = p, p += BH;
  io->c_n = cells ? p : NULL, p += cells ? BH : 0;
  io->h0 = h0 ? p : NULL, p += BH;
  io->c0 = c0 ? p : NULL, p += cells ? BH : 0;
  io->b_ih = b_ih ? p : NULL, p += G;
  io->b_hh = b_hh ? p : NULL;
  fr_convert(x, io->x, T * B * I, 0);
  if (h0) fr_convert(h0, io->h0, BH, 0);
  if (c0) fr_convert(c0, io->c0, BH, 0);
  if (b_ih) fr_convert(b_ih, io->b_ih, G, 0);
  if (b_hh) fr_convert(b_hh, io->b_hh, G, 0);
  return 0;
}

/* After the float32 call returned e: its results rounded into y, h_n (c_n), if it succeeded;
 * io freed either way. Returns e. */
static inline int fr_io16_end(fr_io16 *io, int e, int64_t T, int64_t B, int64_t H, uint16_t *y,
                              uint16_t *h_n, uint16_t *c_n) {
  if (!e) {
    fr_convert(io->y, y, T * B * H, 1);
    fr_convert(io->h_n, h_n, B * H, 1);
    if (c_n) fr_convert(io->c_n, c_n, B * H, 1);
  }
  fr_work_free(io->block);
  return e;
}
#endif
