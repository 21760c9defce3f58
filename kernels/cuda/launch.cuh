/* What the CUDA cell files share: the per-step recurrent products, the lengths check, launch
 * sizes and the status check. One thread block size everywhere; int64 indices because T·B·4H
 * can pass 2^31. */
#pragma once
#include <cstdio>
#include <cuda_runtime.h>

#include "../cell_math.h"
#include "../common.h"
#include "fastrnn_cells.h"  /* (generated: kernels/abi.py) */

namespace {

constexpr int kThreads = 256;
constexpr int kRows = 4;  /* batch rows that share each weight a warp loads */

inline unsigned blocks_for(int64_t n) { return (unsigned)((n + kThreads - 1) / kThreads); }

/* out [B,N] (+)= in [B,K] · Mᵀ, M [N,K] row-major. One warp per output column n and kRows batch
 * rows: lanes stride over K (coalesced loads of M's row n and of the input rows) and each weight
 * loaded serves kRows rows. Warps of one block take neighbouring n for the same rows, so the
 * input rows stay in L1. With `lengths` (BPTT), rows whose sequence ended before step t keep
 * their value: there ∂L/∂h passes through unchanged. */
__global__ void rows_times_MT(int64_t B, int64_t N, int64_t K, const real *__restrict__ in,
                              const real *__restrict__ M, real *__restrict__ out,
                              const int64_t *__restrict__ lengths, int64_t t, int accumulate) {
  const int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= (B + kRows - 1) / kRows * N) return;  /* uniform across the warp */
  const int64_t n = warp % N, b0 = warp / N * kRows;
  const int rows = (int)(B - b0 < kRows ? B - b0 : kRows);
  const real *m = M + n * K, *x = in + b0 * K;
  real acc[kRows] = {};
  for (int64_t k = lane; k < K; k += 32) {
    const real w = m[k];
#pragma unroll
    for (int r = 0; r < kRows; r++)
      if (r < rows) acc[r] += x[r * K + k] * w;
  }
#pragma unroll
  for (int r = 0; r < kRows; r++)
    for (int off = 16; off > 0; off >>= 1) acc[r] += __shfl_down_sync(0xffffffffu, acc[r], off);
  if (lane != 0) return;
  for (int r = 0; r < rows; r++) {
    const int64_t b = b0 + r;
    if (lengths && t >= lengths[b]) continue;
    real *o = out + b * N + n;
    *o = accumulate ? *o + acc[r] : acc[r];
  }
}

inline unsigned warps_blocks(int64_t B, int64_t N) {
  return blocks_for((B + kRows - 1) / kRows * N * 32);
}

/* a [B,G] = h [B,K] · W_hhᵀ, W_hh [G,K]: the forward recurrent product. */
inline void launch_rows_times_WT(int64_t B, int64_t G, int64_t K, const real *h, const real *W,
                                 real *a, cudaStream_t s) {
  rows_times_MT<<<warps_blocks(B, G), kThreads, 0, s>>>(B, G, K, h, W, a, nullptr, 0, 0);
}

/* dh [B,K] (+)= dA [B,G] · W_hh for the rows still inside their sequence at step t, given
 * WT = W_hhᵀ [K,G] (made once per call by `transposed`): the same warp-per-output product as the
 * forward, over the whole GPU. */
inline void launch_rows_times_W(int64_t B, int64_t G, int64_t K, int64_t t,
                                const int64_t *lengths, const real *dA, const real *WT, real *dh,
                                int accumulate, cudaStream_t s) {
  rows_times_MT<<<warps_blocks(B, K), kThreads, 0, s>>>(B, K, G, dA, WT, dh, lengths, t,
                                                        accumulate);
}

/* AT [C,R] = A [R,C]ᵀ through 32×32 shared-memory tiles (coalesced reads and writes). */
__global__ void transpose(int64_t R, int64_t C, const real *__restrict__ A, real *__restrict__ AT) {
  __shared__ real tile[32][33];  /* 33: no shared-memory bank conflicts on the column reads */
  int64_t r = (int64_t)blockIdx.y * 32 + threadIdx.y, c = (int64_t)blockIdx.x * 32 + threadIdx.x;
  for (int j = 0; j < 32; j += 8)
    if (r + j < R && c < C) tile[threadIdx.y + j][threadIdx.x] = A[(r + j) * C + c];
  __syncthreads();
  r = (int64_t)blockIdx.x * 32 + threadIdx.y;
  c = (int64_t)blockIdx.y * 32 + threadIdx.x;
  for (int j = 0; j < 32; j += 8)
    if (r + j < C && c < R) AT[(r + j) * R + c] = tile[threadIdx.x][threadIdx.y + j];
}

/* W [G,K]ᵀ in stream-ordered memory the caller frees with cudaFreeAsync; NULL (with the
 * thread's message set) when the memory is not there. */
inline real *transposed(const char *fn, const real *W, int64_t G, int64_t K, cudaStream_t s) {
  real *WT = nullptr;
  if (cudaMallocAsync((void **)&WT, (size_t)(G * K) * sizeof(real), s) != cudaSuccess) {
    cudaGetLastError();  /* clear it: the failure is reported as ENOMEM, not as a stale error */
    fr_nomem(fn, "W_hh transposed");
    return nullptr;
  }
  transpose<<<dim3((unsigned)((K + 31) / 32), (unsigned)((G + 31) / 32)), dim3(32, 8), 0, s>>>(
      G, K, W, WT);
  return WT;
}

/* lengths [B] in device memory, each in 0..T. Read on the host it would cost a synchronisation
 * per call; here a bad value stops the stream with a message instead (as a device-side assert
 * does in torch: the error surfaces at the next synchronisation). */
__global__ void check_lengths(int64_t B, int64_t T, const int64_t *__restrict__ lengths) {
  const int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (b < B && (lengths[b] < 0 || lengths[b] > T)) {
    printf("fastrnn: lengths[%lld] = %lld, expected a value in 0..%lld\n", (long long)b,
           (long long)lengths[b], (long long)T);
    __trap();
  }
}

inline void launch_check_lengths(int64_t B, int64_t T, const int64_t *lengths, cudaStream_t s) {
  check_lengths<<<blocks_for(B), kThreads, 0, s>>>(B, T, lengths);
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
