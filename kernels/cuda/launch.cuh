/* What the CUDA cell files share: the per-step recurrent products, launch sizes and the status
 * check. One thread block size everywhere; int64 indices because T·B·4H can pass 2^31. */
#pragma once
#include <cuda_runtime.h>

#include "../cell_math.h"
#include "../common.h"
#include "../fastrnn.h"

namespace {

constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t n) { return (unsigned)((n + kThreads - 1) / kThreads); }

/* a [B,G] = h [B,K] · Wᵀ, W [G,K]: one warp per output, lanes stride over K (coalesced). */
__global__ void rows_times_WT(int64_t B, int64_t G, int64_t K, const real *__restrict__ h,
                              const real *__restrict__ W, real *__restrict__ a) {
  const int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= B * G) return;  /* uniform across the warp */
  const int64_t b = warp / G, g = warp % G;
  real acc = 0;
  for (int64_t k = lane; k < K; k += 32) acc += h[b * K + k] * W[g * K + k];
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
  if (lane == 0) a[warp] = acc;
}

inline void launch_rows_times_WT(int64_t B, int64_t G, int64_t K, const real *h, const real *W,
                                 real *a, cudaStream_t s) {
  rows_times_WT<<<blocks_for(B * G * 32), kThreads, 0, s>>>(B, G, K, h, W, a);
}

/* dh [B,K] (+)= dA [B,G] · W for the rows still inside their sequence at step t: one thread per
 * output, consecutive threads read consecutive columns of W. */
__global__ void rows_times_W(int64_t B, int64_t G, int64_t K, int64_t t,
                             const int64_t *__restrict__ lengths, const real *__restrict__ dA,
                             const real *__restrict__ W, real *__restrict__ dh, int accumulate) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= B * K) return;
  const int64_t b = i / K, k = i % K;
  if (t >= lengths[b]) return;
  real acc = 0;
  for (int64_t g = 0; g < G; g++) acc += dA[b * G + g] * W[g * K + k];
  dh[i] = accumulate ? dh[i] + acc : acc;
}

inline void launch_rows_times_W(int64_t B, int64_t G, int64_t K, int64_t t,
                                const int64_t *lengths, const real *dA, const real *W, real *dh,
                                int accumulate, cudaStream_t s) {
  rows_times_W<<<blocks_for(B * K), kThreads, 0, s>>>(B, G, K, t, lengths, dA, W, dh, accumulate);
}

inline void copy(real *dst, const real *src, int64_t n, cudaStream_t s) {
  cudaMemcpyAsync(dst, src, (size_t)n * sizeof(real), cudaMemcpyDeviceToDevice, s);
}

/* FASTRNN_OK, or FASTRNN_EDEVICE with the CUDA error as the thread's message. */
inline int cuda_status(const char *fn) {
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) return FASTRNN_OK;
  fr_fail(fn, "CUDA error: %s", cudaGetErrorString(e));
  return FASTRNN_EDEVICE;
}

}  // namespace

