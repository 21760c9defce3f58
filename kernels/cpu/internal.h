/* What the CPU cell files share: the per-step recurrent product, the threads and the
 * multiversioning. */
#ifndef FASTRNN_CPU_INTERNAL_H
#define FASTRNN_CPU_INTERNAL_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../cell_math.h"
#include "../common.h"
#include "../fastrnn.h"

/* One build runs well on every x86-64: each cell file is compiled once per variant (avx512,
 * avx2, base; see variants.c), and SFXV names a public function after its element type and
 * variant: fastrnn_lstm_forward_f32_avx512. Builds with one variant keep the plain names. */
#if FASTRNN_MULTIVERSION_ON
#define SFXV(name) FR_CAT(SFX(name), FR_CAT(_, FR_VARIANT))
#else
#define SFXV(name) SFX(name)
#endif

/* Large work buffers, kept per calling thread between calls (workspace.c): fr_work_alloc returns
 * n bytes (64-byte aligned) or NULL; fr_work_free(NULL) does nothing. */
void *fr_work_alloc(size_t n);
void fr_work_free(void *p);

/* The product's helpers are inlined into each loop, so their sizes become constants there. */
#define FR_HOT static inline __attribute__((always_inline))

/* Register tiles of the per-step product, per variant: FR_MR rows × FR_NR columns, FR_NR two
 * vectors wide, so FR_MR·2 accumulators hide the FMA latency and each load of the weights serves
 * FR_MR rows. avx512: 8 × 2 zmm (16 of its 32 registers); avx2: 6 × 2 ymm (12 of 16, the classic
 * 6×16 sgemm tile); base: 4 × 2 xmm. FR_VEC is the vector width in bytes. */
#if defined(__AVX512F__)
#define FR_VEC 64
#define FR_MR 8
#elif defined(__AVX2__)
#define FR_VEC 32
#define FR_MR 6
#else
#define FR_VEC 16
#define FR_MR 4
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

/* P [panels(N),K,FR_NR]: Bm[k][n] = src[k·sk + n·sn] packed, for Bm [K,N] given by strides;
 * panels p0 .. p1 of them.
 * The source is read along its unit stride: with sn = 1 a row of a panel at a time; else (the
 * transpose, sk = 1) each of the panel's FR_NR source rows in turn, FR_PACK_K values of it into
 * an L1 buffer (one stream at a time, which the prefetchers follow), then the buffer transposed.
 * Read across its rows instead, the transpose walked FR_NR streams 4 kB apart at H = 1024, more
 * than L1 has ways for, and packing a 16 MB W_hh cost more than 8 steps of the product; read 64
 * values of each row in turn, packing an LSTM's W_hh at H = 256 out of cache took 340–445 µs
 * (avx512, three runs), against 225–307 now; from L2 both take 110–140. */
#define FR_PACK_K 128
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
    real buf[FR_NR * FR_PACK_K];  /* the panel's rows, FR_PACK_K values each, in L1 */
    for (int64_t k0 = 0; k0 < K; k0 += FR_PACK_K) {
      const int64_t nk = K - k0 < FR_PACK_K ? K - k0 : FR_PACK_K;
      for (int64_t jj = 0; jj < FR_NR; jj++) {
        const int64_t n = p * FR_NR + jj;
        if (n < N)
          for (int64_t k = 0; k < nk; k++) buf[jj * FR_PACK_K + k] = src[(k0 + k) * sk + n * sn];
        else
          memset(buf + jj * FR_PACK_K, 0, (size_t)nk * sizeof(real));
      }
      for (int64_t k = 0; k < nk; k++)
        for (int64_t jj = 0; jj < FR_NR; jj++) Pp[(k0 + k) * FR_NR + jj] = buf[jj * FR_PACK_K + k];
    }
  }
}

/* C [mr, np·FR_NR + nl] (+)= A [mr,K] · Bm, Bm's column block q row k at P + q·ps + k·ldp (packed:
 * ps = K·FR_NR, ldp = FR_NR; in place: ps = FR_NR, ldp = the row stride), rows of A and C lda
 * and ldc apart. Inlined with constant sizes the accumulators live in registers; the edge tiles
 * take the same code with variable sizes. */
FR_HOT void tile(int mr, int np, int nl, int64_t K, const real *restrict A, int64_t lda,
                 const real *restrict P, int64_t ps, int64_t ldp, real *restrict C, int64_t ldc,
                 int accumulate) {
  const int nr = np * FR_NR + nl;
  real acc[FR_MR][4 * FR_NR];
  for (int r = 0; r < mr; r++)
    for (int j = 0; j < nr; j++) acc[r][j] = accumulate ? C[r * ldc + j] : 0;
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

/* C [M,N] (+)= A [M,K] · Bm [K,N], Bm's column block q (FR_NR columns) row k at P + q·ps + k·ldp
 * (see tile), rows of A and C lda and ldc apart: one step's recurrent product, or a thread's
 * columns of it. Each element is a sum over k in order, however the tiles fall, so the result
 * does not depend on the number of threads. A row left over from the FR_MR-row tiles (always,
 * when M < FR_MR) takes up to four column blocks per tile instead of one, for 8 accumulators too. */
FR_HOT void rows_times(int64_t M, int64_t N, int64_t K, const real *restrict A, int64_t lda,
                       const real *restrict P, int64_t ps, int64_t ldp, real *restrict C,
                       int64_t ldc, int accumulate) {
  const int64_t full = N / FR_NR, rest = N - full * FR_NR;
  int64_t m = 0;
  for (; m + FR_MR <= M; m += FR_MR) {
    const real *Am = A + m * lda;
    real *Cm = C + m * ldc;
    for (int64_t q = 0; q < full; q++)
      tile(FR_MR, 1, 0, K, Am, lda, P + q * ps, ps, ldp, Cm + q * FR_NR, ldc, accumulate);
    if (rest)
      tile(FR_MR, 0, (int)rest, K, Am, lda, P + full * ps, ps, ldp, Cm + full * FR_NR, ldc,
           accumulate);
  }
  for (; m < M; m++) {
    const real *Am = A + m * lda;
    real *Cm = C + m * ldc;
    int64_t q = 0;
    for (; q + 4 <= full; q += 4)
      tile(1, 4, 0, K, Am, lda, P + q * ps, ps, ldp, Cm + q * FR_NR, ldc, accumulate);
    for (; q + 2 <= full; q += 2)  /* e.g. H = 64 on avx512: two blocks, 4 accumulators, not 2 */
      tile(1, 2, 0, K, Am, lda, P + q * ps, ps, ldp, Cm + q * FR_NR, ldc, accumulate);
    for (; q < full; q++)
      tile(1, 1, 0, K, Am, lda, P + q * ps, ps, ldp, Cm + q * FR_NR, ldc, accumulate);
    if (rest)
      tile(1, 0, (int)rest, K, Am, lda, P + full * ps, ps, ldp, Cm + full * FR_NR, ldc,
           accumulate);
  }
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

/* The block of rows_dot: C[m][r] = A[m] · W[r] for nm rows of A [.,K] (lda apart) and nr rows
 * of W (ldw apart), nm·nr ≤ FR_L, results ldc apart. Each output's partial sums run over FR_L
 * lanes in k order (K's tail zero-padded), then fold (FR_FOLD); an output takes the same steps
 * whatever block it is in, so results do not depend on how rows are grouped, nor on the number
 * of threads. Per k step: nm + nr loads for nm·nr FMAs. */
FR_HOT void dot_block(int nm, int nr, int64_t K, const real *restrict A, int64_t lda,
                      const real *restrict W, int64_t ldw, real *restrict C, int64_t ldc) {
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
    memcpy(C, &acc[0], sizeof acc[0]);
    return;
  }
  for (int m = 0; m < nm; m++)
    for (int r = 0; r < nr; r++) C[m * ldc + r] = acc[0][m * nr + r];
}

/* Rows of A per block when there are several (FR_MB × FR_L / FR_MB outputs a block): for L = 16,
 * 4 × 4 — 8 loads per 16 FMAs, where one row against 16 of W takes 17. */
#define FR_MB (FR_L >= 16 ? 4 : FR_L >= 4 ? 2 : 1)

/* C [M,N] = A [M,K] · W [N,K]ᵀ with W read in place (rows ldw apart): the forward product when
 * W is not packed (fr_weights_init). One row of A takes FR_L rows of W a block; several take
 * FR_MB rows of A against FR_L / FR_MB of W, so each W load serves FR_MB rows. */
FR_HOT void rows_dot(int64_t M, int64_t N, int64_t K, const real *restrict A, int64_t lda,
                     const real *restrict W, int64_t ldw, real *restrict C, int64_t ldc) {
  /* (whole blocks call dot_block with constant sizes, so that its loops unroll into registers) */
  if (M == 1) {
    int64_t n = 0;
    /* long rows: FR_L/2 at a time, fewer streams from memory for the prefetchers to follow
     * (B = 1, T = 32, H = 1024, Zen 4, 4 interleaved runs each: LSTM 8.0-8.3 -> 7.1-8.2 ms,
     * GRU 5.8-6.3 -> 4.9-5.8, faster in every pair) */
    if (K >= 512)
      for (; n + FR_L / 2 <= N; n += FR_L / 2)
        dot_block(1, FR_L / 2, K, A, lda, W + n * ldw, ldw, C + n, ldc);
    for (; n + FR_L <= N; n += FR_L) dot_block(1, FR_L, K, A, lda, W + n * ldw, ldw, C + n, ldc);
    if (n < N) dot_block(1, (int)(N - n), K, A, lda, W + n * ldw, ldw, C + n, ldc);
    return;
  }
  const int nb = FR_L / FR_MB;
  for (int64_t n = 0; n < N; n += nb) {
    const int nr = (int)(N - n < nb ? N - n : nb);
    int64_t m = 0;
    if (nr == nb)
      for (; m + FR_MB <= M; m += FR_MB)
        dot_block(FR_MB, nb, K, A + m * lda, lda, W + n * ldw, ldw, C + m * ldc + n, ldc);
    for (; m < M; m += FR_MB) {
      const int nm = (int)(M - m < FR_MB ? M - m : FR_MB);
      dot_block(nm, nr, K, A + m * lda, lda, W + n * ldw, ldw, C + m * ldc + n, ldc);
    }
  }
}

#if FR_BF16
#include "bf16.h"
#else
static inline int fr_cpu_bf16(void) { return 0; }
#endif

/* active [T]: at step t, 1 + the last row still inside its sequence (0 if none). With lengths
 * longest first, as packed sequences come, exactly the rows still running, and the per-step
 * products skip the others (a ragged batch of lengths 20–200 runs about half the rows on
 * average); in any other order a bound, past which rows are ended too. Their results would be
 * ignored anyway: an ended row carries its state. NULL when out of memory. */
static inline int64_t *fr_active_rows(int64_t T, int64_t B, const int64_t *lengths) {
  int64_t *active = calloc((size_t)T, sizeof *active);
  if (!active) return NULL;
  for (int64_t b = 0; b < B; b++) {
    const int64_t L = lengths[b] < T ? lengths[b] : T;
    if (L > 0 && active[L - 1] < b + 1) active[L - 1] = b + 1;
  }
  for (int64_t t = T - 2; t >= 0; t--)
    if (active[t] < active[t + 1]) active[t] = active[t + 1];
  return active;
}

/* Threads split the hidden units: thread p of P owns units [j0, j1) of every gate block, runs the
 * product's columns for them and their pointwise math, then waits for the others (fr_barrier)
 * before the next step reads the whole h_t. One barrier per step; each output is computed by one
 * thread in a fixed order, so results are bitwise the same for any P. Slices are whole panels. */
static inline void fr_slice(int64_t H, int p, int P, int64_t *j0, int64_t *j1) {
  *j0 = fr_panels(H) * p / P * FR_NR;
  *j1 = fr_panels(H) * (p + 1) / P * FR_NR;
  if (*j0 > H) *j0 = H;
  if (*j1 > H) *j1 = H;
}

/* How many threads a step of B·G·H multiply-adds is worth: each must get at least 2^16 of them
 * (~2.5 µs on one AVX2 core), or the barrier and the threads' wake-up eat what it saves; so two
 * threads from 2^17 on, sixteen from 2^20. At most one per panel of hidden units. */
static inline int fr_team(int64_t B, int64_t G, int64_t H) {
  int64_t P = fastrnn_get_num_threads();
  const int64_t worth = B * G * H >> 16;
  if (P > worth) P = worth;
  if (P > fr_panels(H)) P = fr_panels(H);
  return P < 1 ? 1 : (int)P;
}

/* Runs `call` (a loop part, which asks fr_thread() and fr_team_size()) on a team of P threads,
 * where P is a variable of that name; with P = 1 outside any parallel region, whose entry costs
 * about a microsecond even when an if clause turns it off — most of a small cell's call. */
#define FR_PARALLEL(call)                                    \
  do {                                                       \
    if (P > 1) {                                             \
      _Pragma("omp parallel num_threads(P)") call;           \
    } else {                                                 \
      call;                                                  \
    }                                                        \
  } while (0)

#ifdef _OPENMP
#include <omp.h>
#define fr_barrier() _Pragma("omp barrier")
static inline int fr_thread(void) { return omp_get_thread_num(); }
static inline int fr_team_size(void) { return omp_get_num_threads(); }
#else
#define fr_barrier() ((void)0)
static inline int fr_thread(void) { return 0; }
static inline int fr_team_size(void) { return 1; }
#endif

/* W [G,K] (G = gates·H rows; W_hh: K = H, or the projection's size; W_ih: K = I; W_hr: one
 * gate of H = the projection's size, K = the cell's H) as the products read it: in place, or
 * packed (fr_weights_init) —
 * forward: Bm = Wᵀ [K,G], packed gate block by gate block so that each block's panels start
 *   at its unit 0 (a thread's units are whole panels of every block): [gates][panels(H),K,FR_NR];
 * backward: Bm = W [G,K] itself, whose K columns are the outputs: [panels(K),G,FR_NR]. */
typedef struct {
  const real *W;     /* [G,K] as given */
  real *packed;      /* NULL: read W in place */
  int64_t *active;   /* [T] rows each step's product covers (fr_active_rows), or NULL */
  int64_t H, K, gates;
  int backward;
  int bf16;          /* packed in bfloat16 pairs for rows_times_bf16 (bf16.h) */
} fr_weights;

/* Decides whether W is packed and allocates the packed copy (each thread packs its own panels,
 * fr_weights_pack: in parallel, and into its own core's cache), and, given the lengths (W_hh),
 * the rows each step covers (fr_active_rows). Packing pays in the backward when B ≥ FR_MR rows
 * share each load (in place, the backward product is the same tile with W_hh's rows as its
 * panels, so few rows need no copy), over more than one step (T = 1 backward, Zen 4, 2 threads,
 * in place against packed: LSTM B = 8, H = 256 28 against 41 µs; B = 64, H = 256 184 against
 * 196; RNN B = 32, H = 128 13.6 against 14.5). Forward in place (rows_dot) takes a fold per FR_L outputs,
 * which at small K costs about what packing saves (LSTM B = 1, T = 32, H = 64, avx512: 66 µs a
 * call in place against 62 packed), so the forward packs once T·B reaches FR_MR — but not for one
 * step, where packing is most of the work (Zen 4, 2 threads, LSTM T = 1: B = 8, H = 256 182 µs
 * packed against 72 in place; B = 32, H = 128 106 against 87; even at B = 64), and not at
 * H ≥ 512 with B < FR_MR, where a second copy of W_hh (16 MB for an LSTM with H = 1024) pushes
 * both out of the L3 the product streams from (B = 1, T = 8: 1.06 ms a step packed).
 * Returns 0, or FASTRNN_ENOMEM (nothing to free then). */
static inline int fr_weights_init(fr_weights *w, int gates, int64_t T, int64_t B, int64_t H,
                                  int64_t K, const real *W, const int64_t *lengths,
                                  int backward) {
  const int64_t G = gates * H, block = fr_panels(H) * K * FR_NR;
  w->W = W, w->H = H, w->K = K, w->gates = gates, w->backward = backward;
  w->packed = NULL, w->active = NULL;
  w->bf16 = FR_BF16 && fastrnn_get_bf16_products() && fr_cpu_bf16();
  if (lengths && !(w->active = fr_active_rows(T, B, lengths))) return FASTRNN_ENOMEM;
  if (T == 1 || (backward ? B < FR_MR : T * B < FR_MR || (B < FR_MR && H >= 512))) return 0;
  w->packed = fr_work_alloc((size_t)(backward ? fr_panels(K) * G * FR_NR : gates * block) *
                            sizeof(real));
  if (w->packed) return 0;
  free(w->active);
  return FASTRNN_ENOMEM;
}

/* Packs the panels of output units [j0, j1) (a thread's slice, fr_slice; backward: of K): all
 * the thread will read. */
static inline void fr_weights_pack(const fr_weights *w, int64_t j0, int64_t j1) {
  if (!w->packed || j0 >= j1) return;
  const int64_t H = w->H, K = w->K, p0 = j0 / FR_NR, p1 = fr_panels(j1);
  if (w->backward) {
#if FR_BF16
    if (w->bf16) {
      pack_rows_bf16(w->gates * H, K, w->W, (uint16_t *)w->packed, p0, p1);
      return;
    }
#endif
    pack_panels(w->gates * H, K, w->W, K, 1, w->packed, p0, p1);
    return;
  }
  const int64_t block = fr_panels(H) * K * FR_NR;
#if FR_BF16
  if (w->bf16) {
    const int64_t block16 = fr_panels(H) * fr_pairs(K) * FR_NR * 2;
    for (int q = 0; q < w->gates; q++)
      pack_panels_bf16(K, H, w->W + q * H * K, (uint16_t *)w->packed + q * block16, p0, p1);
    return;
  }
#endif
  for (int q = 0; q < w->gates; q++)
    pack_panels(K, H, w->W + q * H * K, 1, K, w->packed + q * block, p0, p1);
}

static inline void fr_weights_free(fr_weights *w) {
  fr_work_free(w->packed);
  free(w->active);
}

/* Forward product of a thread's units [j0, j1) of every gate block, for M rows of A [M,K]:
 * gate q's outputs C[m][q·qs + j − j0] = Σ_k A[m][k] W[q·H + j][k], rows of C ldc apart.
 * j0 is a multiple of FR_NR. */
FR_HOT void fr_forward_product(const fr_weights *w, int64_t M, const real *A, real *C,
                               int64_t ldc, int64_t qs, int64_t j0, int64_t j1) {
  const int64_t H = w->H, K = w->K, block = fr_panels(H) * K * FR_NR;
#if FR_BF16
  if (w->bf16 && w->packed) {
    const int64_t ps = fr_pairs(K) * FR_NR * 2, block16 = fr_panels(H) * ps;
    for (int64_t q = 0; q < w->gates; q++)
      rows_times_bf16(M, j1 - j0, K, A, K, (const uint16_t *)w->packed + q * block16 +
                      j0 / FR_NR * ps, ps, C + q * qs, ldc, 0);
    return;
  }
#endif
  for (int64_t q = 0; q < w->gates; q++) {
    if (w->packed)
      rows_times(M, j1 - j0, K, A, K, w->packed + q * block + j0 / FR_NR * K * FR_NR, K * FR_NR,
                 FR_NR, C + q * qs, ldc, 0);
    else
      rows_dot(M, j1 - j0, K, A, K, w->W + (q * H + j0) * K, K, C + q * qs, ldc);
  }
}

/* Forward, step t, a thread's units [j0, j1) of every gate block, for the rows still running:
 * a[b][q·H + j] = Σ_k h[b][k] W_hh[q·H + j][k], h [B,H], a [B,G]. */
FR_HOT void fr_step_forward(const fr_weights *w, int64_t t, const real *h, real *a, int64_t j0,
                            int64_t j1) {
  fr_forward_product(w, w->active[t], h, a + j0, w->gates * w->H, w->H, j0, j1);
}

/* The input projection G_x = x W_ihᵀ + b inside the forward loop, so that it never exists over
 * all T: each thread computes its own units' columns (no barrier) for a chunk of Tc steps at a
 * time into a buffer that stays in L2, and the steps read it there. Over all T, G_x is T·B·G
 * values written to memory and read back, and at T·B·G ≥ 2^23 (32 MB in float32) its freshly
 * mapped pages alone cost a third of the projection's time. */
typedef struct {
  const real *x;     /* [T,B,I] */
  const real *bias[2];  /* [G] each, or NULL: b_ih and (LSTM, RNN) b_hh; G_x gets their sum */
  fr_weights w;      /* W_ih [G,I] */
  int64_t Tc;        /* steps per chunk */
  real *buf;         /* [Tc·B, G] in thread slices: thread p's at buf + Tc·B·gates·j0 */
} fr_input;

#define FR_CHUNK_ROWS 64 /* T·B rows per chunk: a tile's rows times several, the buffer in L2 */

/* Packs W_ih as fr_weights_init does and allocates the chunk buffer; with lengths [B], each step
 * computes only the rows still running (fr_active_rows). Returns 0 or FASTRNN_ENOMEM (nothing to
 * free then). */
static inline int fr_input_init(fr_input *in, int gates, int64_t T, int64_t B, int64_t H,
                                int64_t I, const real *x, const real *W_ih, const real *b_ih,
                                const real *b_hh, const int64_t *lengths) {
  in->x = x, in->bias[0] = b_ih, in->bias[1] = b_hh;
  in->Tc = B >= FR_CHUNK_ROWS ? 1 : (FR_CHUNK_ROWS + B - 1) / B;
  if (in->Tc > T) in->Tc = T;
  if (fr_weights_init(&in->w, gates, T, B, H, I, W_ih, lengths, 0)) return FASTRNN_ENOMEM;
  in->buf = fr_work_alloc((size_t)(in->Tc * B * gates * H) * sizeof(real));
  if (!in->buf) {
    fr_weights_free(&in->w);
    return FASTRNN_ENOMEM;
  }
  return 0;
}

static inline void fr_input_free(fr_input *in) {
  fr_weights_free(&in->w);
  fr_work_free(in->buf);
}

/* A thread's slice of the chunk buffer: [Tc·B, gates, j1 − j0]. */
static inline real *fr_input_slice(const fr_input *in, int64_t B, int64_t j0) {
  return in->buf + in->Tc * B * in->w.gates * j0;
}

/* The thread's units [j0, j1) of G_x for the steps t0 .. min(t0 + Tc, T) into its slice xc —
 * for every row, or, given lengths, for each step's rows still running (the others are never
 * read: an ended row carries its state), in one product when all are, else one per step
 * (packed lengths 20–200, B = 32, H = I = 256, T = 200, Zen 4, 2 threads, inference, results
 * bitwise the same: LSTM 30.3 → 26.5 ms, GRU 22.6 → 19.7). */
FR_HOT void fr_input_chunk(const fr_input *in, int64_t t0, int64_t T, int64_t B, real *xc,
                           int64_t j0, int64_t j1) {
  const int64_t n = j1 - j0, gates = in->w.gates, H = in->w.H, K = in->w.K;
  const int64_t t1 = t0 + in->Tc < T ? t0 + in->Tc : T;
  const int64_t *active = in->w.active;
  if (!active || active[t1 - 1] == B) {
    fr_forward_product(&in->w, (t1 - t0) * B, in->x + t0 * B * K, xc, gates * n, n, j0, j1);
  } else {
    for (int64_t t = t0; t < t1; t++)
      if (active[t])
        fr_forward_product(&in->w, active[t], in->x + t * B * K, xc + (t - t0) * B * gates * n,
                           gates * n, n, j0, j1);
  }
  const real *b1 = in->bias[0], *b2 = in->bias[1];
  if (!b1 && !b2) return;
  for (int64_t m = 0; m < (t1 - t0) * B; m++) {
    if (active && m % B >= active[t0 + m / B]) continue;
    for (int64_t q = 0; q < gates; q++) {
      real *c = xc + (m * gates + q) * n;
      const int64_t o = q * H + j0;
      /* (b_ih + b_hh) first, as F.linear(x, W_ih, b_ih + b_hh) rounds on the traced path */
      if (b1 && b2) {
#pragma omp simd
        for (int64_t j = 0; j < n; j++) c[j] += b1[o + j] + b2[o + j];
      } else {
        const real *b = b1 ? b1 + o : b2 + o;
#pragma omp simd
        for (int64_t j = 0; j < n; j++) c[j] += b[j];
      }
    }
  }
}

/* Backward product for a thread's output units [j0, j1) of K, M rows:
 * C[m][j] (+)= Σ_g A[m][g] W[g][j], A [M,G], C [M,K]. */
FR_HOT void fr_backward_product(const fr_weights *w, int64_t M, const real *A, real *C,
                                int64_t j0, int64_t j1, int accumulate) {
  const int64_t K = w->K, G = w->gates * w->H;
#if FR_BF16
  if (w->bf16 && w->packed) {
    const int64_t ps = fr_pairs(G) * FR_NR * 2;
    rows_times_bf16(M, j1 - j0, G, A, G, (const uint16_t *)w->packed + j0 / FR_NR * ps, ps,
                    C + j0, K, accumulate);
    return;
  }
#endif
  if (w->packed)
    rows_times(M, j1 - j0, G, A, G, w->packed + j0 / FR_NR * G * FR_NR, G * FR_NR, FR_NR,
               C + j0, K, accumulate);
  else
    rows_times(M, j1 - j0, G, A, G, w->W + j0, FR_NR, K, C + j0, K, accumulate);
}

/* Backward, step t, a thread's output units [j0, j1) of K, for the rows still running:
 * dh[b][j] += Σ_g dA[b][g] W[g][j], dA [B,G], dh [B,K]. */
FR_HOT void fr_step_backward(const fr_weights *w, int64_t t, const real *dA, real *dh, int64_t j0,
                             int64_t j1) {
  fr_backward_product(w, w->active[t], dA, dh, j0, j1, 1);
}
#endif
