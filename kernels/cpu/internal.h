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

/* The product's helpers are inlined into each loop, so their sizes become constants there. */
#define FR_HOT static inline __attribute__((always_inline))

/* Register tiles of the per-step product: FR_MR rows × FR_NR columns, two AVX2 vectors per row
 * (16 floats, 8 doubles), so 8 independent accumulators hide the FMA latency and each load of
 * the weights serves FR_MR rows. */
#define FR_MR 4
#define FR_NR (64 / (int)sizeof(real))

/* The weights are packed once per call into panels of FR_NR columns, each panel K rows of FR_NR
 * contiguous values (zero past the last column): a tile then streams through contiguous memory.
 * Read in place, a row of W_hh is 1–4 kB apart from the next, and those power-of-two strides
 * land every row of a panel in the same few cache sets, so the panel kept falling out of L1/L2. */
static inline int64_t fr_panels(int64_t N) { return (N + FR_NR - 1) / FR_NR; }

/* The panels of a packed [panels,K,FR_NR] matrix from column j0 (a multiple of FR_NR) on. */
static inline const real *fr_panel(const real *P, int64_t K, int64_t j0) {
  return P + j0 / FR_NR * K * FR_NR;
}

/* P [panels(N),K,FR_NR]: Bm[k][n] = src[k·sk + n·sn] packed, for Bm [K,N] given by strides. */
static inline void pack_panels(int64_t K, int64_t N, const real *restrict src, int64_t sk,
                               int64_t sn, real *restrict P) {
  for (int64_t p = 0; p < fr_panels(N); p++)
    for (int64_t k = 0; k < K; k++)
      for (int64_t jj = 0; jj < FR_NR; jj++) {
        const int64_t n = p * FR_NR + jj;
        P[(p * K + k) * FR_NR + jj] = n < N ? src[k * sk + n * sn] : 0;
      }
}

/* C [mr, np·FR_NR + nl] (+)= A [mr,K] · (np full panels of P, then nl columns of the next), rows
 * of A and C lda and ldc apart. Inlined with constant sizes the accumulators live in registers;
 * the edge tiles take the same code with variable sizes. */
FR_HOT void tile(int mr, int np, int nl, int64_t K, const real *restrict A, int64_t lda,
                 const real *restrict P, real *restrict C, int64_t ldc, int accumulate) {
  const int nr = np * FR_NR + nl;
  real acc[FR_MR][4 * FR_NR];
  for (int r = 0; r < mr; r++)
    for (int j = 0; j < nr; j++) acc[r][j] = accumulate ? C[r * ldc + j] : 0;
  for (int64_t k = 0; k < K; k++) {
    for (int r = 0; r < mr; r++) {
      const real a = A[r * lda + k];
      for (int q = 0; q < np; q++) {
        const real *w = P + (q * K + k) * FR_NR;
#pragma omp simd
        for (int j = 0; j < FR_NR; j++) acc[r][q * FR_NR + j] += a * w[j];
      }
      const real *w = P + (np * K + k) * FR_NR;
#pragma omp simd
      for (int j = 0; j < nl; j++) acc[r][np * FR_NR + j] += a * w[j];
    }
  }
  for (int r = 0; r < mr; r++)
    for (int j = 0; j < nr; j++) C[r * ldc + j] = acc[r][j];
}

/* C [M,N] (+)= A [M,K] · Bm [K,N], Bm packed in P (pack_panels), rows of A and C lda and ldc
 * apart: one step's recurrent product, or a thread's panels of it. Each element is a sum over k in
 * order, however the tiles fall, so the result does not depend on the number of threads. A row
 * left over from the FR_MR-row tiles (always, when M = 1) takes four panels per tile instead of
 * one, so it too has 8 accumulators. */
FR_HOT void rows_times(int64_t M, int64_t N, int64_t K, const real *restrict A, int64_t lda,
                       const real *restrict P, real *restrict C, int64_t ldc, int accumulate) {
  const int64_t full = N / FR_NR, rest = N - full * FR_NR, panel = K * FR_NR;
  int64_t m = 0;
  for (; m + FR_MR <= M; m += FR_MR) {
    const real *Am = A + m * lda;
    real *Cm = C + m * ldc;
    for (int64_t q = 0; q < full; q++)
      tile(FR_MR, 1, 0, K, Am, lda, P + q * panel, Cm + q * FR_NR, ldc, accumulate);
    if (rest)
      tile(FR_MR, 0, (int)rest, K, Am, lda, P + full * panel, Cm + full * FR_NR, ldc, accumulate);
  }
  for (; m < M; m++) {
    const real *Am = A + m * lda;
    real *Cm = C + m * ldc;
    int64_t q = 0;
    for (; q + 4 <= full; q += 4)
      tile(1, 4, 0, K, Am, lda, P + q * panel, Cm + q * FR_NR, ldc, accumulate);
    for (; q < full; q++) tile(1, 1, 0, K, Am, lda, P + q * panel, Cm + q * FR_NR, ldc, accumulate);
    if (rest)
      tile(1, 0, (int)rest, K, Am, lda, P + full * panel, Cm + full * FR_NR, ldc, accumulate);
  }
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

/* The packed W_hh a direction needs, NULL when out of memory (the caller frees it):
 * forward: Bm = W_hhᵀ [H,G], packed gate block by gate block so that each block's panels start
 *   at its unit 0 (a thread's units are whole panels of every block): [gates][panels(H),H,FR_NR];
 * backward: Bm = W_hh [G,H] itself: [panels(H),G,FR_NR]. */
static inline real *packed_W_hh(int gates, int64_t H, const real *W_hh, int transpose) {
  const int64_t G = gates * H, block = fr_panels(H) * H * FR_NR;
  real *P = malloc((size_t)(transpose ? gates * block : fr_panels(H) * G * FR_NR) * sizeof(real));
  if (P && transpose)
    for (int q = 0; q < gates; q++) pack_panels(H, H, W_hh + q * H * H, 1, H, P + q * block);
  else if (P)
    pack_panels(G, H, W_hh, H, 1, P);
  return P;
}
#endif
