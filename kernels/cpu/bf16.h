/* The per-step product with bfloat16 operands and float32 sums, on AVX-512-BF16: each vdpbf16ps
 * does 16 lanes × 2 multiply-adds, twice the work of a float32 FMA of the same width, from half
 * the bytes of weights. Used when the caller asks for it (fastrnn_set_bf16_products: a bfloat16
 * module, or autocast to bfloat16) and the CPU has the instructions; the operands are then what
 * torch.nn's bfloat16 kernels multiply (the weights, x_t and h_{t-1}, in the backward ∂L/∂A_t,
 * rounded to bfloat16), the sums, the cell state and the pointwise math stay float32. Included
 * by tiles.h in the avx512 float32 build only; elsewhere FR_BF16 is 0 and the float32 product
 * runs.
 *
 * Packed layout: panel p of FR_NR columns holds, for each pair of rows k = 2i, 2i+1 of Bm, FR_NR
 * 32-bit words (Bm[2i][n], Bm[2i+1][n]) — the pair a vdpbf16ps lane multiplies by the pair
 * (a[2i], a[2i+1]) broadcast from a row of A; an odd K's last pair is padded with zero. */
#ifndef FASTRNN_CPU_BF16_H
#define FASTRNN_CPU_BF16_H
#include <immintrin.h>

#include "bf16_round.h"

#define FR_BF16_TARGET __attribute__((target("avx512bf16")))

static inline int64_t fr_pairs(int64_t K) { return (K + 1) / 2; }

/* dst [pairs(n)] (32-bit words of two bfloat16) = src [n] rounded, zero-padded to even n. */
FR_BF16_TARGET static inline void fr_round_row(const float *restrict src, int64_t n,
                                               uint32_t *restrict dst) {
  int64_t k = 0;
  for (; k + 16 <= n; k += 16)
    _mm256_storeu_si256((__m256i *)((uint16_t *)dst + k),
                        (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + k)));
  uint16_t *d = (uint16_t *)dst;
  for (; k < n; k++) d[k] = fr_bf16(src[k]);
  if (n & 1) d[n] = 0;
}

/* P [panels(N), pairs(K), FR_NR, 2] (bfloat16): Bm[k][n] = W[n][k] for W [N,K] (rows K apart;
 * float32, or W16 already bfloat16 when not NULL), packed as pack_panels packs the transpose,
 * panels p0 .. p1, in the pair layout above. Sixteen rows of W × 16 pairs at a time: each row's
 * 32 values (rounded) in one register of 16 pairs, the 16 registers transposed (fr_transpose16,
 * tiles.h) into 16 pair-rows of the panel. An LSTM's W [1024, 256], one thread, Zen 4
 * (kernels/lab/run 8 1024 256): 63.6 → 23.2 µs against gathering each pair-row from an L1 copy
 * of the panel's rounded rows (and gathering straight across W's rows had taken 450 µs). */
FR_BF16_TARGET static inline void pack_panels_bf16(int64_t K, int64_t N, const float *restrict W,
                                                   const uint16_t *restrict W16,
                                                   uint16_t *restrict P, int64_t p0, int64_t p1) {
  const int64_t K2 = fr_pairs(K);
  for (int64_t p = p0; p < p1; p++) {
    uint32_t *Pp = (uint32_t *)(P + p * K2 * FR_NR * 2);
    for (int64_t n0 = p * FR_NR; n0 < (p + 1) * FR_NR; n0 += 16)
      for (int64_t i0 = 0; i0 < K2; i0 += 16) {
        const int64_t k0 = 2 * i0, nk = K - k0 < 32 ? K - k0 : 32;
        const __mmask16 lo = (__mmask16)(nk >= 16 ? 0xffff : (1u << nk) - 1);
        const __mmask16 hi = (__mmask16)(nk >= 32 ? 0xffff : nk > 16 ? (1u << (nk - 16)) - 1 : 0);
        __m512i r[16];
        for (int i = 0; i < 16; i++) {
          if (n0 + i >= N) {
            r[i] = _mm512_setzero_si512();
          } else if (W16) {  /* already bfloat16: the pairs as they lie */
            const __mmask32 live = (__mmask32)(nk >= 32 ? 0xffffffffu : (1u << nk) - 1);
            r[i] = _mm512_maskz_loadu_epi16(live, W16 + (n0 + i) * K + k0);
          } else {
            const float *row = W + (n0 + i) * K + k0;
            r[i] = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, row + 16),
                                                _mm512_maskz_loadu_ps(lo, row));
          }
        }
        fr_transpose16(r);
        const int64_t ni = K2 - i0 < 16 ? K2 - i0 : 16;
        for (int64_t i = 0; i < ni; i++)
          _mm512_storeu_si512(Pp + (i0 + i) * FR_NR + (n0 - p * FR_NR), r[i]);
      }
  }
}

/* P [panels(N), pairs(K), FR_NR, 2] (bfloat16): Bm [K,N] = W itself (rows N apart; the backward's
 * layout), panels p0 .. p1: rows 2i and 2i+1 of W interleaved column by column, then rounded. */
FR_BF16_TARGET static inline void pack_rows_bf16(int64_t K, int64_t N, const float *restrict W,
                                                 uint16_t *restrict P, int64_t p0, int64_t p1) {
  const int64_t K2 = fr_pairs(K);
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
  for (int64_t p = p0; p < p1; p++) {
    uint16_t *Pp = P + p * K2 * FR_NR * 2;
    for (int64_t i = 0; i < K2; i++)
      for (int64_t c = 0; c < FR_NR; c += 16) {
        const int64_t n0 = p * FR_NR + c, nv = N - n0 < 16 ? (N - n0 > 0 ? N - n0 : 0) : 16;
        const __mmask16 live = (__mmask16)((1u << nv) - 1);
        const __m512 a = _mm512_maskz_loadu_ps(live, W + 2 * i * N + n0);
        const __m512 b = 2 * i + 1 < K ? _mm512_maskz_loadu_ps(live, W + (2 * i + 1) * N + n0)
                                       : _mm512_setzero_ps();
        uint16_t *d = Pp + (i * FR_NR + c) * 2;
        _mm256_storeu_si256((__m256i *)d,
                            (__m256i)_mm512_cvtneps_pbh(_mm512_permutex2var_ps(a, lo, b)));
        _mm256_storeu_si256((__m256i *)(d + 16),
                            (__m256i)_mm512_cvtneps_pbh(_mm512_permutex2var_ps(a, hi, b)));
      }
  }
}

/* C [mr, np·FR_NR] (+)= A · Bm for mr rows of A in pairs (a [mr, lda2] words) and np panels
 * (ps 16-bit values apart) over K2 pairs; only the first nl columns of the last panel are stored.
 * Without `accumulate` the sums start from bias (every row's; NULL: zero), as tile's do.
 * Constant sizes when inlined, so the accumulators live in registers. */
#define FR_BF16_TILE __attribute__((target("avx512bf16"), always_inline)) static inline
FR_BF16_TILE void tile_bf16(int mr, int np, int nl, int64_t K2, const uint32_t *restrict a,
                            int64_t lda2, const uint16_t *restrict P, int64_t ps,
                            const float *restrict bias, float *restrict C, int64_t ldc,
                            int accumulate) {
  __m512 acc[FR_MR][8], b[8];
  for (int v = 0; v < 2 * np; v++) {  /* (the last panel's columns past nl: not read) */
    const int n = v < 2 * np - 2 ? 16 : v == 2 * np - 2 ? (nl < 16 ? nl : 16) : nl - 16;
    b[v] = bias && !accumulate && n > 0
               ? _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), bias + v * 16)
               : _mm512_setzero_ps();
  }
  for (int r = 0; r < mr; r++)
    for (int v = 0; v < 2 * np; v++)
      acc[r][v] = accumulate && v < 2 * np - 2 ? _mm512_loadu_ps(C + r * ldc + v * 16) : b[v];
  if (accumulate)  /* the last panel's columns past nl may not exist in C */
    for (int r = 0; r < mr; r++) {
      float t[32] = {0};
      memcpy(t, C + r * ldc + (np - 1) * 32, (size_t)nl * sizeof(float));
      acc[r][2 * np - 2] = _mm512_loadu_ps(t);
      acc[r][2 * np - 1] = _mm512_loadu_ps(t + 16);
    }
  for (int64_t i = 0; i < K2; i++) {
    __m512 w[8];
    for (int q = 0; q < np; q++) {
      w[2 * q] = _mm512_loadu_ps((const float *)(P + q * ps + i * 64));
      w[2 * q + 1] = _mm512_loadu_ps((const float *)(P + q * ps + i * 64 + 32));
    }
    for (int r = 0; r < mr; r++) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[r * lda2 + i]);
      for (int v = 0; v < 2 * np; v++)
        acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, (__m512bh)w[v]);
    }
  }
  for (int r = 0; r < mr; r++) {
    for (int v = 0; v < 2 * np - 2; v++) _mm512_storeu_ps(C + r * ldc + v * 16, acc[r][v]);
    float t[32];
    _mm512_storeu_ps(t, acc[r][2 * np - 2]);
    _mm512_storeu_ps(t + 16, acc[r][2 * np - 1]);
    memcpy(C + r * ldc + (np - 1) * 32, t, (size_t)nl * sizeof(float));
  }
}

#define FR_KC 256 /* pairs of A rounded at a time: FR_MR rows of them, 8 kB, on the stack */

/* rows_times with bfloat16 operands: C [M,N] (+)= A [M,K] · Bm [K,N], from bias [N] (see
 * tile_bf16), Bm packed in pairs (P, panels ps 16-bit values apart), A float32 rows lda apart,
 * rounded FR_MR rows × FR_KC pairs at a time; the sums run over k in order whatever the chunks,
 * rows or threads. */
FR_BF16_TARGET static void rows_times_bf16(int64_t M, int64_t N, int64_t K, const float *A,
                                           int64_t lda, const uint16_t *P, int64_t ps,
                                           const float *bias, float *C, int64_t ldc,
                                           int accumulate) {
  _Static_assert(FR_NR == 32, "the pair layout holds 32 columns a panel");
  const int64_t full = N / FR_NR, rest = N - full * FR_NR, K2 = fr_pairs(K);
  uint32_t a[FR_MR * FR_KC];
  for (int64_t m = 0; m < M; m += FR_MR) {
    const int mr = (int)(M - m < FR_MR ? M - m : FR_MR);
    for (int64_t i0 = 0; i0 < K2; i0 += FR_KC) {
      const int64_t n2 = K2 - i0 < FR_KC ? K2 - i0 : FR_KC;
      const int64_t k0 = 2 * i0, nk = K - k0 < 2 * n2 ? K - k0 : 2 * n2;
      for (int r = 0; r < mr; r++) fr_round_row(A + (m + r) * lda + k0, nk, a + r * FR_KC);
      const int acc = accumulate || i0 > 0;
      const uint16_t *Pk = P + i0 * 64;
#define FR_BIAS(q) (bias ? bias + (q) * 32 : NULL)
      float *Cm = C + m * ldc;
      if (mr == FR_MR) {
        for (int64_t q = 0; q < full; q++)
          tile_bf16(FR_MR, 1, 32, n2, a, FR_KC, Pk + q * ps, ps, FR_BIAS(q), Cm + q * 32, ldc,
                    acc);
        if (rest)
          tile_bf16(FR_MR, 1, (int)rest, n2, a, FR_KC, Pk + full * ps, ps, FR_BIAS(full),
                    Cm + full * 32, ldc, acc);
        continue;
      }
      for (int r = 0; r < mr; r++) {  /* a leftover row takes up to four panels a tile */
        const uint32_t *ar = a + r * FR_KC;
        float *Cr = Cm + r * ldc;
        int64_t q = 0;
        for (; q + 4 <= full; q += 4)
          tile_bf16(1, 4, 32, n2, ar, FR_KC, Pk + q * ps, ps, FR_BIAS(q), Cr + q * 32, ldc,
                    acc);
        for (; q + 2 <= full; q += 2)
          tile_bf16(1, 2, 32, n2, ar, FR_KC, Pk + q * ps, ps, FR_BIAS(q), Cr + q * 32, ldc,
                    acc);
        for (; q < full; q++)
          tile_bf16(1, 1, 32, n2, ar, FR_KC, Pk + q * ps, ps, FR_BIAS(q), Cr + q * 32, ldc,
                    acc);
        if (rest)
          tile_bf16(1, 1, (int)rest, n2, ar, FR_KC, Pk + full * ps, ps, FR_BIAS(full),
                    Cr + full * 32, ldc, acc);
      }
#undef FR_BIAS
    }
  }
}

/* Whether this CPU runs the product above (checked once; a CPU does not change). */
static inline int fr_cpu_bf16(void) {
  static int has = -1;
  if (has < 0) {
    __builtin_cpu_init();
    has = __builtin_cpu_supports("avx512bf16") ? 1 : 0;
  }
  return has;
}

#include "amx.h"
#endif
