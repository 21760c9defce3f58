/* What the CPU cell files share: the per-step recurrent products and the multiversioning. */
#ifndef FASTRNN_CPU_INTERNAL_H
#define FASTRNN_CPU_INTERNAL_H
#include <stdint.h>
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


/* out [nb,G] = h [nb,K] · Wᵀ, W [G,K]: the recurrent product of a block of rows. Four rows share
 * each load of a row of W, and each dot product is a vectorised reduction. */
static inline void rows_times_WT(int64_t nb, int64_t G, int64_t K, const real *restrict h,
                                 const real *restrict W, real *restrict out) {
  int64_t b = 0;
  for (; b + 4 <= nb; b += 4) {
    const real *h0 = h + b * K, *h1 = h0 + K, *h2 = h1 + K, *h3 = h2 + K;
    for (int64_t g = 0; g < G; g++) {
      const real *w = W + g * K;
      real a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
      for (int64_t k = 0; k < K; k++) {
        a0 += h0[k] * w[k];
        a1 += h1[k] * w[k];
        a2 += h2[k] * w[k];
        a3 += h3[k] * w[k];
      }
      out[b * G + g] = a0;
      out[(b + 1) * G + g] = a1;
      out[(b + 2) * G + g] = a2;
      out[(b + 3) * G + g] = a3;
    }
  }
  for (; b < nb; b++) {
    for (int64_t g = 0; g < G; g++) {
      const real *w = W + g * K, *hb = h + b * K;
      real a = 0;
#pragma omp simd reduction(+ : a)
      for (int64_t k = 0; k < K; k++) a += hb[k] * w[k];
      out[b * G + g] = a;
    }
  }
}

/* out [K] (+)= d [G] · W, W [G,K]: ∂L/∂h_{t-1} of one row from its ∂L/∂A. */
static inline void row_times_W(int64_t G, int64_t K, const real *restrict d,
                               const real *restrict W, real *restrict out, int accumulate) {
  if (!accumulate) memset(out, 0, (size_t)K * sizeof(real));
  for (int64_t g = 0; g < G; g++) {
    const real s = d[g], *w = W + g * K;
    if (s == 0) continue;
#pragma omp simd
    for (int64_t k = 0; k < K; k++) out[k] += s * w[k];
  }
}
#endif
