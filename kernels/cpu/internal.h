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

/* One build runs well on every x86-64: GCC compiles each hot loop for AVX-512, AVX2+FMA and the
 * baseline, and picks one at load time (ifunc). No -march=native. */
#if defined(FASTRNN_MULTIVERSION_ON)
#define FR_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FR_MULTIVERSION
#endif

/* Whatever a multiversioned loop calls must be inlined into it, or it runs as the baseline build:
 * GCC otherwise keeps a large helper out of line, compiled once for the default target. */
#define FR_HOT static inline __attribute__((always_inline))


/* Register tiles of the per-step product: FR_MR rows × FR_NR columns, two AVX2 vectors per row
 * (16 floats, 8 doubles), so 8 independent accumulators hide the FMA latency and each load of a
 * row of Bm serves FR_MR rows of A. */
#define FR_MR 4
#define FR_NR (64 / (int)sizeof(real))

/* C [mr,nr] (+)= A [mr,K] · Bm [K,nr], rows lda, ldb, ldc apart. Inlined with constant mr, nr the
 * accumulators live in registers; the edge tiles take the same code with variable sizes. */
FR_HOT void tile(int mr, int nr, int64_t K, const real *restrict A, int64_t lda,
                 const real *restrict Bm, int64_t ldb, real *restrict C, int64_t ldc,
                 int accumulate) {
  real acc[FR_MR][4 * FR_NR];
  for (int r = 0; r < mr; r++)
    for (int j = 0; j < nr; j++) acc[r][j] = accumulate ? C[r * ldc + j] : 0;
  for (int64_t k = 0; k < K; k++) {
    const real *w = Bm + k * ldb;
    for (int r = 0; r < mr; r++) {
      const real a = A[r * lda + k];
#pragma omp simd
      for (int j = 0; j < nr; j++) acc[r][j] += a * w[j];
    }
  }
  for (int r = 0; r < mr; r++)
    for (int j = 0; j < nr; j++) C[r * ldc + j] = acc[r][j];
}

/* C [M,N] (+)= A [M,K] · Bm [K,N], rows lda, ldb, ldc apart: one step's recurrent product, or a
 * thread's column slice of it. Each element is a sum over k in order, however the tiles fall, so
 * the result does not depend on the number of threads. A row left over from the FR_MR-row tiles
 * (always, when M = 1) takes four vectors per tile instead of two, so it too has 8 accumulators. */
FR_HOT void rows_times(int64_t M, int64_t N, int64_t K, const real *restrict A, int64_t lda,
                       const real *restrict Bm, int64_t ldb, real *restrict C, int64_t ldc,
                       int accumulate) {
  int64_t m = 0;
  for (; m + FR_MR <= M; m += FR_MR) {
    const real *Am = A + m * lda;
    real *Cm = C + m * ldc;
    int64_t n = 0;
    for (; n + FR_NR <= N; n += FR_NR) tile(FR_MR, FR_NR, K, Am, lda, Bm + n, ldb, Cm + n, ldc, accumulate);
    if (n < N) tile(FR_MR, (int)(N - n), K, Am, lda, Bm + n, ldb, Cm + n, ldc, accumulate);
  }
  for (; m < M; m++) {
    const real *Am = A + m * lda;
    real *Cm = C + m * ldc;
    int64_t n = 0;
    for (; n + 4 * FR_NR <= N; n += 4 * FR_NR)
      tile(1, 4 * FR_NR, K, Am, lda, Bm + n, ldb, Cm + n, ldc, accumulate);
    for (; n + FR_NR <= N; n += FR_NR) tile(1, FR_NR, K, Am, lda, Bm + n, ldb, Cm + n, ldc, accumulate);
    if (n < N) tile(1, (int)(N - n), K, Am, lda, Bm + n, ldb, Cm + n, ldc, accumulate);
  }
}

/* Threads split the hidden units: thread p of P owns units [j0, j1) of every gate block, runs the
 * product's columns for them and their pointwise math, then waits for the others (fr_barrier)
 * before the next step reads the whole h_t. One barrier per step; each output is computed by one
 * thread in a fixed order, so results are bitwise the same for any P. Slices are whole tiles. */
static inline void fr_slice(int64_t H, int p, int P, int64_t *j0, int64_t *j1) {
  const int64_t tiles = (H + FR_NR - 1) / FR_NR;
  *j0 = tiles * p / P * FR_NR;
  *j1 = tiles * (p + 1) / P * FR_NR;
  if (*j0 > H) *j0 = H;
  if (*j1 > H) *j1 = H;
}

/* How many threads a step of B·G·H multiply-adds is worth: below about 2^17 of them (a few µs) a
 * barrier per step costs more than the second thread saves. */
static inline int fr_team(int64_t B, int64_t G, int64_t H) {
  const int64_t tiles = (H + FR_NR - 1) / FR_NR;
  int P = fastrnn_get_num_threads();
  if (B * G * H < ((int64_t)1 << 17)) P = 1;
  return P < tiles ? P : (int)tiles;
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

/* WT [K,G] = Wᵀ, W [G,K]: the forward product wants W_hh's columns contiguous. NULL when out of
 * memory; the caller frees it. */
static inline real *transposed(int64_t G, int64_t K, const real *restrict W) {
  real *WT = malloc((size_t)(G * K) * sizeof(real));
  if (WT)
    for (int64_t g = 0; g < G; g++)
      for (int64_t k = 0; k < K; k++) WT[k * G + g] = W[g * K + k];
  return WT;
}
#endif
