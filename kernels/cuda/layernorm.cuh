/* Row reductions for the LayerNorm cells on the GPU: one thread block (kThreads threads) per
 * batch row. Sums run in double in one fixed order — each thread strides over the row, then a
 * tree over the block — so a result does not depend on the launch, as the CPU's (internal.h:
 * fr_row_stats, fr_row_moments, fr_ln_backward) does not depend on the thread count. */
#pragma once
#include "launch.cuh"

namespace {

constexpr real kLnEps = (real)1e-5;

/* The sum of v over the block's threads, returned to every thread; `sh` is kThreads doubles of
 * shared memory, free again on return. */
__device__ double block_sum(double v, double *sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
    __syncthreads();
  }
  const double sum = sh[0];
  __syncthreads();
  return sum;
}

/* mean v and 1/sqrt(var v + eps) (biased variance) over a row v [n]. */
__device__ void row_stats(const real *v, int64_t n, double *sh, real *mean, real *rstd) {
  double s = 0, q = 0;
  for (int64_t j = threadIdx.x; j < n; j += kThreads) s += v[j];
  const double mu = block_sum(s, sh) / (double)n;
  for (int64_t j = threadIdx.x; j < n; j += kThreads) q += (v[j] - mu) * (v[j] - mu);
  q = block_sum(q, sh);
  *mean = (real)mu;
  *rstd = (real)(1 / sqrt(q / (double)n + kLnEps));
}

/* mean(d ⊙ g) and mean(d ⊙ g ⊙ v) over a row of n: what LayerNorm's backward subtracts. */
__device__ void row_moments(const real *d, const real *g, const real *v, int64_t n, double *sh,
                            real *m1, real *m2) {
  double s = 0, q = 0;
  for (int64_t j = threadIdx.x; j < n; j += kThreads) {
    const double dg = (double)d[j] * g[j];
    s += dg;
    q += dg * v[j];
  }
  *m1 = (real)(block_sum(s, sh) / (double)n);
  *m2 = (real)(block_sum(q, sh) / (double)n);
}

/* ∂L/∂v of LN(v; g) = g ⊙ nv over a row of n, from d = ∂L/∂LN(v), the saved nv and 1/σ:
 * dv = 1/σ (d g − mean(d g) − nv mean(d g nv)). */
__device__ void ln_backward_row(const real *d, const real *g, const real *nv, real rstd,
                                int64_t n, double *sh, real *dv) {
  real m1, m2;
  row_moments(d, g, nv, n, sh, &m1, &m2);
  for (int64_t j = threadIdx.x; j < n; j += kThreads) dv[j] = rstd * (d[j] * g[j] - m1 - nv[j] * m2);
}

/* The step's product [B,G] in stream-ordered memory the caller frees with cudaFreeAsync; NULL
 * (with the thread's message set) when the memory is not there. */
inline real *product_buffer(const char *fn, int64_t B, int64_t G, cudaStream_t s) {
  real *p = nullptr;
  if (cudaMallocAsync((void **)&p, (size_t)(B * G) * sizeof(real), s) != cudaSuccess) {
    cudaGetLastError();  /* (reported as ENOMEM, not left as a stale error) */
    fr_nomem(fn, "the step's product");
    return nullptr;
  }
  return p;
}

/* Zeros over a row of n. */
__device__ void zero_row(real *v, int64_t n) {
  for (int64_t j = threadIdx.x; j < n; j += kThreads) v[j] = 0;
}

}  // namespace
