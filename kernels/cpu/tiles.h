/* The per-step product's register tiles, per CPU variant: the packed panels and their tile
 * (rows_times), the in-place dot form (rows_dot), and on AVX-512-BF16 the bfloat16 tile
 * (bf16.h). Included by internal.h, after the element type and variant are set. */
#ifndef FASTRNN_CPU_TILES_H
#define FASTRNN_CPU_TILES_H

/* The product's helpers are inlined into each loop, so their sizes become constants there. */
#define FR_HOT static inline __attribute__((always_inline))

/* Register tiles of the per-step product, per variant: FR_MR rows × FR_NR columns, FR_NR two
 * vectors wide, so FR_MR·2 accumulators hide the FMA latency and each load of the weights serves
 * FR_MR rows. avx512: 8 × 2 zmm (16 of its 32 registers); avx2: 6 × 2 ymm (12 of 16, the classic
 * 6×16 sgemm tile); base: 4 × 2 xmm. FR_VEC is the vector width in bytes. */
#if defined(__AVX512F__)
#define FR_VEC 64
#elif defined(__AVX2__)
#define FR_VEC 32
#else
#define FR_VEC 16
#endif
#ifndef FR_MR  /* a variant's rows come from its row of FASTRNN_CPU_VARIANTS (fastrnn.h) */
#define FR_MR (FR_VEC == 64 ? 8 : FR_VEC == 32 ? 6 : 4)
#endif
#define FR_NR (2 * FR_VEC / (int)sizeof(real))

/* The bfloat16 product (bf16.h) exists in the avx512 float32 build. */
#if defined(__AVX512F__) && !FASTRNN_F64 && defined(__GNUC__)
#define FR_BF16 1
#else
#define FR_BF16 0
#endif

/* The weights are packed once per call into panels of FR_NR columns, each panel K rows of FR_NR
 * contiguous values (zero past the last column): a tile then streams through contiguous memory.
 * Read in place, a row of W_hh is 1–4 kB apart from the next, and those power-of-two strides
 * land every row of a panel in the same few cache sets, so the panel kept falling out of L1/L2.
 * When few rows share the weights, the product reads W_hh in place instead (fr_weights_init). */
static inline int64_t fr_panels(int64_t N) { return (N + FR_NR - 1) / FR_NR; }

/* Register transposes for packing (pack_panels, pack_panels_bf16), where the vectors are 32-bit. */
#if !FASTRNN_F64 && (defined(__AVX512F__) || defined(__AVX2__))
#include <immintrin.h>
#define FR_TRANSPOSE 1
#if defined(__AVX512F__)
#define FR_TV 16 /* a block of FR_TV rows × FR_TV values is transposed in registers */
typedef __m512 fr_tvec;

/* r[0..15] (16 rows of 16 32-bit words) transposed: r[j] becomes word j of every row. Four
 * rounds of 16 shuffles: pairs of rows within 128-bit lanes (unpack 32, then 64 bits), then
 * 128-bit lanes across row groups (shuffle_i32x4, twice). */
static inline void fr_transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int g = 0; g < 4; g++) {  /* r[4g + m]: lane L holds word 4L + m of rows 4g .. 4g + 3 */
    r[4 * g] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
    r[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
    r[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
    r[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
  }
  for (int m = 0; m < 4; m++) {  /* lanes (0, 2) and (1, 3) of row groups 0, 1 and of 2, 3 */
    t[m] = _mm512_shuffle_i32x4(r[m], r[4 + m], 0x88);
    t[4 + m] = _mm512_shuffle_i32x4(r[m], r[4 + m], 0xdd);
    t[8 + m] = _mm512_shuffle_i32x4(r[8 + m], r[12 + m], 0x88);
    t[12 + m] = _mm512_shuffle_i32x4(r[8 + m], r[12 + m], 0xdd);
  }
  for (int m = 0; m < 4; m++) {  /* word 4L + m: lane L of each row group */
    r[m] = _mm512_shuffle_i32x4(t[m], t[8 + m], 0x88);
    r[8 + m] = _mm512_shuffle_i32x4(t[m], t[8 + m], 0xdd);
    r[4 + m] = _mm512_shuffle_i32x4(t[4 + m], t[12 + m], 0x88);
    r[12 + m] = _mm512_shuffle_i32x4(t[4 + m], t[12 + m], 0xdd);
  }
}

static inline void fr_transpose(fr_tvec r[16]) {
  __m512i q[16];
  for (int i = 0; i < 16; i++) q[i] = _mm512_castps_si512(r[i]);
  fr_transpose16(q);
  for (int i = 0; i < 16; i++) r[i] = _mm512_castsi512_ps(q[i]);
}

/* The first n (1 .. 16) values at p, zeros after them. */
static inline fr_tvec fr_tload(const float *p, int n) {
  return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p);
}
#define fr_tzero _mm512_setzero_ps
#define fr_tstore _mm512_storeu_ps
#else
#define FR_TV 8
typedef __m256 fr_tvec;

/* r[0..7] (8 rows of 8 floats) transposed: r[j] becomes value j of every row. */
static inline void fr_transpose(fr_tvec r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int g = 0; g < 2; g++) {  /* u[4g + m]: lane L holds value 4L + m of rows 4g .. 4g + 3 */
    u[4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xee);
    u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xee);
  }
  for (int m = 0; m < 4; m++) {
    r[m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x20);
    r[4 + m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x31);
  }
}

static inline fr_tvec fr_tload(const float *p, int n) {
  const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32(n),
                                          _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  return _mm256_maskload_ps(p, live);
}
#define fr_tzero _mm256_setzero_ps
#define fr_tstore _mm256_storeu_ps
#endif
#else
#define FR_TRANSPOSE 0
#endif


/* P [panels(N),K,FR_NR]: Bm[k][n] = src[k·sk + n·sn] packed, for Bm [K,N] given by strides;
 * panels p0 .. p1 of them.
 * The source is read along its unit stride: with sn = 1 a row of a panel at a time; else (the
 * transpose, sk = 1) each of the panel's FR_NR source rows in turn, FR_PACK_K values of it into
 * an L1 buffer (one stream at a time, which the prefetchers follow), then the buffer transposed.
 * Read across its rows instead, the transpose walked FR_NR streams 4 kB apart at H = 1024, more
 * than L1 has ways for, and packing a 16 MB W_hh cost more than 8 steps of the product; read 64
 * values of each row in turn, packing an LSTM's W_hh at H = 256 out of cache took 340–445 µs
 * (avx512, three runs), against 225–307 this way (and from L2, 61–69 with the padded stride
 * below, where the old loop took about 105). On AVX2 and AVX-512 (float32) the transpose is done
 * in registers instead, FR_TV rows × FR_TV values at a time (fr_transpose): W [1024, 256], one
 * thread, Zen 4 (kernels/lab/run 8 1024 256), 62 → 33 µs (avx512), 48 → 36 (avx2); a call of
 * LSTM T = 32, B = 1, H = 256, 2 threads, 0.36 → 0.33 ms, bitwise the same. */
#define FR_PACK_K 128
#define FR_PACK_LD (FR_PACK_K + 16) /* the buffer's row stride: a power of two (512 B) cost twice
                                      the time (avx512, H = 256: 105–164 µs a W_hh, 61–69 padded) */
static inline void pack_panels(int64_t K, int64_t N, const real *restrict src, int64_t sk,
                               int64_t sn, real *restrict P, int64_t p0, int64_t p1) {
  for (int64_t p = p0; p < p1; p++) {
    real *Pp = P + p * K * FR_NR;
    if (sn == 1) {
      for (int64_t k = 0; k < K; k++)
        for (int64_t jj = 0; jj < FR_NR; jj++) {
          const int64_t n = p * FR_NR + jj;
          Pp[k * FR_NR + jj] = n < N ? src[k * sk + n] : 0;
        }
      continue;
    }
#if FR_TRANSPOSE
    if (sk == 1) {  /* blocks of FR_TV rows × FR_TV values, transposed in registers */
      for (int64_t n0 = p * FR_NR; n0 < (p + 1) * FR_NR; n0 += FR_TV)
        for (int64_t k0 = 0; k0 < K; k0 += FR_TV) {
          const int nk = K - k0 < FR_TV ? (int)(K - k0) : FR_TV;
          fr_tvec r[FR_TV];
          for (int i = 0; i < FR_TV; i++)
            r[i] = n0 + i < N ? fr_tload(src + (n0 + i) * sn + k0, nk) : fr_tzero();
          fr_transpose(r);
          for (int i = 0; i < nk; i++) fr_tstore(Pp + (k0 + i) * FR_NR + (n0 - p * FR_NR), r[i]);
        }
      continue;
    }
#endif
    real buf[FR_NR * FR_PACK_LD];  /* the panel's rows, FR_PACK_K values each, in L1 */
    for (int64_t k0 = 0; k0 < K; k0 += FR_PACK_K) {
      const int64_t nk = K - k0 < FR_PACK_K ? K - k0 : FR_PACK_K;
      for (int64_t jj = 0; jj < FR_NR; jj++) {
        const int64_t n = p * FR_NR + jj;
        if (n < N)
          for (int64_t k = 0; k < nk; k++) buf[jj * FR_PACK_LD + k] = src[(k0 + k) * sk + n * sn];
        else
          memset(buf + jj * FR_PACK_LD, 0, (size_t)nk * sizeof(real));
      }
      for (int64_t k = 0; k < nk; k++)
        for (int64_t jj = 0; jj < FR_NR; jj++) Pp[(k0 + k) * FR_NR + jj] = buf[jj * FR_PACK_LD + k];
    }
  }
}

/* C [mr, np·FR_NR + nl] (+)= A [mr,K] · Bm, Bm's column block q row k at P + q·ps + k·ldp (packed:
 * ps = K·FR_NR, ldp = FR_NR; in place: ps = FR_NR, ldp = the row stride), rows of A and C lda
 * and ldc apart. Without `accumulate` the sums start from bias [np·FR_NR + nl] (every row's; NULL:
 * zero). Inlined with constant sizes the accumulators live in registers; the edge tiles take the
 * same code with variable sizes. */
FR_HOT void tile(int mr, int np, int nl, int64_t K, const real *restrict A, int64_t lda,
                 const real *restrict P, int64_t ps, int64_t ldp, const real *restrict bias,
                 real *restrict C, int64_t ldc, int accumulate) {
  const int nr = np * FR_NR + nl;
  real acc[FR_MR][4 * FR_NR];
  for (int r = 0; r < mr; r++)
    for (int j = 0; j < nr; j++) acc[r][j] = accumulate ? C[r * ldc + j] : bias ? bias[j] : 0;
  for (int64_t k = 0; k < K; k++) {
    for (int r = 0; r < mr; r++) {
      const real a = A[r * lda + k];
      for (int q = 0; q < np; q++) {
        const real *w = P + q * ps + k * ldp;
#pragma omp simd
        for (int j = 0; j < FR_NR; j++) acc[r][q * FR_NR + j] += a * w[j];
      }
      const real *w = P + np * ps + k * ldp;
#pragma omp simd
      for (int j = 0; j < nl; j++) acc[r][np * FR_NR + j] += a * w[j];
    }
  }
  for (int r = 0; r < mr; r++)
    for (int j = 0; j < nr; j++) C[r * ldc + j] = acc[r][j];
}

/* rows_times with r = M mod FR_MR rows left over from the FR_MR-row tiles, each group of nb column
 * blocks: the whole tiles down all the rows, then one tile of the r rows over the nb blocks while
 * they are still in L1/L2 — each weight load serving all r rows, 2·r·nb accumulators for the FMA
 * latency. Inlined with constant r and nb. */
FR_HOT void panels_times(int r, int nb, int64_t M, int64_t N, int64_t K, const real *restrict A,
                         int64_t lda, const real *restrict P, int64_t ps, int64_t ldp,
                         const real *restrict bias, real *restrict C, int64_t ldc,
                         int accumulate) {
  const int64_t full = N / FR_NR, rest = N - full * FR_NR, Mt = M - r;
  const real *Ar = A + Mt * lda;
  real *Cr = C + Mt * ldc;
#define FR_BIAS(q) (bias ? bias + (q) * FR_NR : NULL)
  for (int64_t q0 = 0; q0 < full; q0 += nb) {  /* panels outside: each streams in once a call */
    const int64_t q1 = q0 + nb < full ? q0 + nb : full;
    for (int64_t q = q0; q < q1; q++)
      for (int64_t m = 0; m < Mt; m += FR_MR)
        tile(FR_MR, 1, 0, K, A + m * lda, lda, P + q * ps, ps, ldp, FR_BIAS(q),
             C + m * ldc + q * FR_NR, ldc, accumulate);
    if (r && q1 - q0 == nb)
      tile(r, nb, 0, K, Ar, lda, P + q0 * ps, ps, ldp, FR_BIAS(q0), Cr + q0 * FR_NR, ldc,
           accumulate);
    else if (r) {  /* the last blocks: pairs where nb is 4 (a single row), then one by one */
      int64_t q = q0;
      for (; nb > 2 && q + 2 <= q1; q += 2)
        tile(r, 2, 0, K, Ar, lda, P + q * ps, ps, ldp, FR_BIAS(q), Cr + q * FR_NR, ldc,
             accumulate);
      for (; q < q1; q++)
        tile(r, 1, 0, K, Ar, lda, P + q * ps, ps, ldp, FR_BIAS(q), Cr + q * FR_NR, ldc,
             accumulate);
    }
  }
  if (rest) {
    for (int64_t m = 0; m < Mt; m += FR_MR)
      tile(FR_MR, 0, (int)rest, K, A + m * lda, lda, P + full * ps, ps, ldp, FR_BIAS(full),
           C + m * ldc + full * FR_NR, ldc, accumulate);
    if (r)
      tile(r, 0, (int)rest, K, Ar, lda, P + full * ps, ps, ldp, FR_BIAS(full), Cr + full * FR_NR,
           ldc, accumulate);
  }
#undef FR_BIAS
}

/* C [M,N] (+)= A [M,K] · Bm [K,N], Bm's column block q (FR_NR columns) row k at P + q·ps + k·ldp
 * (see tile), rows of A and C lda and ldc apart, from bias [N] (see tile): one step's recurrent
 * product, or a thread's columns of it. Each element is a sum over k in order, however the tiles
 * fall, so the result does not depend on the number of threads or the tiling. The tiles of one
 * column block run down all the rows before the next block: a block (K·FR_NR values, 128 kB at
 * K = 1024) stays in L2 for every row tile where, row tile by row tile, the whole of a large W
 * streamed from L3 once per tile (LSTM T = 32, B = 64, H = 1024, Zen 4, 2 threads: inference
 * 198 → 184 ms, training step 663 → 632; smaller W unchanged). The rows left over (M mod FR_MR:
 * on avx2, 4 of B = 64) take a tile of their own per group of blocks while the blocks are in
 * cache (panels_times); one row at a time, after all the blocks, they had cost as much as 16 rows
 * in whole tiles, streaming W a second time (kernels/lab, Zen 3, avx2, N = 4096, K = 1024, one
 * thread: M = 60 6.0–6.8 ms, M = 64 7.4–9.6). A single row takes four blocks a tile. One copy
 * per file, not inlined: its cases inlined at every call doubled the loops' code (forward_part
 * 72 → 139 kB) and cost LSTM T = 256, B = 1, H = 1024 inference 56 → 80 ms on Zen 3. */
_Static_assert(FR_MR >= 2 && FR_MR <= 8, "rows_times: tiles of 2 to 8 rows");
static __attribute__((noinline)) void rows_times(int64_t M, int64_t N, int64_t K,
                                                 const real *restrict A, int64_t lda,
                                                 const real *restrict P, int64_t ps, int64_t ldp,
                                                 const real *restrict bias, real *restrict C,
                                                 int64_t ldc, int accumulate) {
#define FR_PANELS(r, nb) \
  panels_times(r, nb, M, N, K, A, lda, P, ps, ldp, bias, C, ldc, accumulate)
  switch (M % FR_MR) {  /* (constant r and nb: each case its own registers) */
    case 0: FR_PANELS(0, 1); break;
    case 1: FR_PANELS(1, 4); break;
#if FR_MR > 2
    case 2: FR_PANELS(2, 2); break;
#endif
#if FR_MR > 3
    case 3: FR_PANELS(3, 2); break;
#endif
#if FR_MR > 4
    case 4: FR_PANELS(4, 1); break;
#endif
#if FR_MR > 5
    case 5: FR_PANELS(5, 1); break;
#endif
#if FR_MR > 6
    case 6: FR_PANELS(6, 1); break;
#endif
#if FR_MR > 7
    case 7: FR_PANELS(7, 1); break;
#endif
    default: __builtin_unreachable();
  }
#undef FR_PANELS
}

/* The dot form below works on whole vectors: FR_L lanes of FR_VEC bytes (GNU vector types, so
 * each variant's build gets its own width), with fixed shuffles for the horizontal sums. */
#if FASTRNN_F64
#define FR_L (FR_VEC / 8)
#else
#define FR_L (FR_VEC / 4)
#endif
typedef real fr_v __attribute__((vector_size(FR_VEC)));

static inline fr_v fr_load(const real *p) {
  fr_v v;
  memcpy(&v, p, sizeof v);
  return v;
}

/* fold(x, y, d): for every block of 2d lanes, its first d lanes get x's pairs (lane + lane d
 * further), the next d lanes y's. Applied with d = FR_L/2, …, 1 to FR_L vectors (one output's
 * partial sums each), pairwise, it leaves one vector of FR_L sums — slot s's in lane bitrev(s)
 * — in FR_L − 1 folds of two shuffles and an add, against a shuffle-and-add chain per output
 * when each is summed on its own. */
#define FR_LO(i, d) \
  ((i) % (2 * (d)) < (d) ? (i) / (2 * (d)) * 2 * (d) + (i) % (2 * (d)) \
                         : FR_L + (i) / (2 * (d)) * 2 * (d) + (i) % (2 * (d)) - (d))
#define FR_HI(i, d) (FR_LO(i, d) + (d))
#if FR_L == 16
#define FR_LANES(f, d) f(0, d), f(1, d), f(2, d), f(3, d), f(4, d), f(5, d), f(6, d), f(7, d), \
  f(8, d), f(9, d), f(10, d), f(11, d), f(12, d), f(13, d), f(14, d), f(15, d)
#elif FR_L == 8
#define FR_LANES(f, d) f(0, d), f(1, d), f(2, d), f(3, d), f(4, d), f(5, d), f(6, d), f(7, d)
#elif FR_L == 4
#define FR_LANES(f, d) f(0, d), f(1, d), f(2, d), f(3, d)
#else
#define FR_LANES(f, d) f(0, d), f(1, d)
#endif
#ifdef __clang__
#define FR_SHUFFLE(x, y, f, d) __builtin_shufflevector(x, y, FR_LANES(f, d))
#else
#if FASTRNN_F64
typedef int64_t fr_vi __attribute__((vector_size(FR_VEC)));
#else
typedef int32_t fr_vi __attribute__((vector_size(FR_VEC)));
#endif
#define FR_SHUFFLE(x, y, f, d) __builtin_shuffle(x, y, (fr_vi){FR_LANES(f, d)})
#endif
#define FR_FOLD(x, y, d) (FR_SHUFFLE(x, y, FR_LO, d) + FR_SHUFFLE(x, y, FR_HI, d))

static inline int fr_bitrev(int r) {
  int s = 0;
  for (int b = 1; b < FR_L; b <<= 1) s = (s << 1) | ((r & b) ? 1 : 0);
  return s;
}

/* The block of rows_dot: C[m][r] = A[m] · W[r] (+ bias[r], if not NULL, once the sum is made)
 * for nm rows of A [.,K] (lda apart) and nr rows of W (ldw apart), nm·nr ≤ FR_L, results ldc
 * apart. Each output's partial sums run over FR_L lanes in k order (K's tail zero-padded), then
 * fold (FR_FOLD); an output takes the same steps whatever block it is in, so results do not
 * depend on how rows are grouped, nor on the number of threads. Per k step: nm + nr loads for
 * nm·nr FMAs. */
FR_HOT void dot_block(int nm, int nr, int64_t K, const real *restrict A, int64_t lda,
                      const real *restrict W, int64_t ldw, const real *restrict bias,
                      real *restrict C, int64_t ldc) {
  fr_v acc[FR_L];
  for (int s = 0; s < FR_L; s++) acc[s] = (fr_v){0};
  int64_t k = 0;
  for (; k + FR_L <= K; k += FR_L) {
    fr_v wv[FR_L];
    for (int r = 0; r < nr; r++) wv[r] = fr_load(W + r * ldw + k);
    for (int m = 0; m < nm; m++) {
      const fr_v av = fr_load(A + m * lda + k);
      for (int r = 0; r < nr; r++) acc[fr_bitrev(m * nr + r)] += av * wv[r];
    }
  }
  if (k < K) {
    real t[FR_L] = {0};
    fr_v wv[FR_L];
    for (int r = 0; r < nr; r++) {
      memcpy(t, W + r * ldw + k, (size_t)(K - k) * sizeof(real));
      wv[r] = fr_load(t);
    }
    for (int m = 0; m < nm; m++) {
      memcpy(t, A + m * lda + k, (size_t)(K - k) * sizeof(real));
      const fr_v av = fr_load(t);
      for (int r = 0; r < nr; r++) acc[fr_bitrev(m * nr + r)] += av * wv[r];
    }
  }
  /* n vectors to n/2 with d = n/2, until one is left */
#if FR_L >= 16
  for (int s = 0; s < 8; s++) acc[s] = FR_FOLD(acc[2 * s], acc[2 * s + 1], 8);
#endif
#if FR_L >= 8
  for (int s = 0; s < 4; s++) acc[s] = FR_FOLD(acc[2 * s], acc[2 * s + 1], 4);
#endif
#if FR_L >= 4
  for (int s = 0; s < 2; s++) acc[s] = FR_FOLD(acc[2 * s], acc[2 * s + 1], 2);
#endif
  acc[0] = FR_FOLD(acc[0], acc[1], 1);
  if (nm == 1 && nr == FR_L) {
    if (bias) acc[0] += fr_load(bias);
    memcpy(C, &acc[0], sizeof acc[0]);
    return;
  }
  for (int m = 0; m < nm; m++)
    for (int r = 0; r < nr; r++) C[m * ldc + r] = acc[0][m * nr + r] + (bias ? bias[r] : 0);
}

/* Rows of A per block when there are several (FR_MB × FR_L / FR_MB outputs a block): for L = 16,
 * 4 × 4 — 8 loads per 16 FMAs, where one row against 16 of W takes 17. */
#define FR_MB (FR_L >= 16 ? 4 : FR_L >= 4 ? 2 : 1)

/* C [M,N] = A [M,K] · W [N,K]ᵀ (+ bias [N], see dot_block) with W read in place (rows ldw
 * apart): the forward product when W is not packed (fr_weights_init). One row of A takes FR_L rows of W a block; several take
 * FR_MB rows of A against FR_L / FR_MB of W, so each W load serves FR_MB rows. */
FR_HOT void rows_dot(int64_t M, int64_t N, int64_t K, const real *restrict A, int64_t lda,
                     const real *restrict W, int64_t ldw, const real *restrict bias,
                     real *restrict C, int64_t ldc) {
#define FR_BIAS(n) (bias ? bias + (n) : NULL)
  /* (whole blocks call dot_block with constant sizes, so that its loops unroll into registers) */
  if (M == 1) {
    int64_t n = 0;
    /* long rows: FR_L/2 at a time, fewer streams from memory for the prefetchers to follow
     * (B = 1, T = 32, H = 1024, Zen 4, 4 interleaved runs each: LSTM 8.0-8.3 -> 7.1-8.2 ms,
     * GRU 5.8-6.3 -> 4.9-5.8, faster in every pair) */
    if (K >= 512)
      for (; n + FR_L / 2 <= N; n += FR_L / 2)
        dot_block(1, FR_L / 2, K, A, lda, W + n * ldw, ldw, FR_BIAS(n), C + n, ldc);
    for (; n + FR_L <= N; n += FR_L)
      dot_block(1, FR_L, K, A, lda, W + n * ldw, ldw, FR_BIAS(n), C + n, ldc);
    if (n < N) dot_block(1, (int)(N - n), K, A, lda, W + n * ldw, ldw, FR_BIAS(n), C + n, ldc);
    return;
  }
  const int nb = FR_L / FR_MB;
  for (int64_t n = 0; n < N; n += nb) {
    const int nr = (int)(N - n < nb ? N - n : nb);
    int64_t m = 0;
    if (nr == nb)
      for (; m + FR_MB <= M; m += FR_MB)
        dot_block(FR_MB, nb, K, A + m * lda, lda, W + n * ldw, ldw, FR_BIAS(n), C + m * ldc + n,
                  ldc);
    for (; m < M; m += FR_MB) {
      const int nm = (int)(M - m < FR_MB ? M - m : FR_MB);
      dot_block(nm, nr, K, A + m * lda, lda, W + n * ldw, ldw, FR_BIAS(n), C + m * ldc + n,
                ldc);
    }
  }
#undef FR_BIAS
}

#if FR_BF16
#include "bf16.h"
#else
static inline int fr_cpu_bf16(void) { return 0; }
static inline int fr_cpu_amx(void) { return 0; }
#endif
#endif
