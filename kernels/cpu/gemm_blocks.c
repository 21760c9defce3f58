/* Products of the framework's BLAS whose bits must not depend on the thread count: the weight
 * gradients (Σ over T·B rows of ∂L/∂A_tᵀ h_{t−1} and ∂L/∂G_xᵀ x_t) and the LayerNorm cells'
 * input projection.
 *
 * A threaded BLAS call splits its work by the number of threads, and where it splits the sum (or
 * picks a kernel by the size of its share) the result changes in its last bits: MKL's sgemm in
 * torch 2.13 does, on an Intel Xeon for aᵀb over 2048 rows, and held to AVX2 for most shapes.
 * Here the product is cut into blocks of rows fixed by the caller from the shapes alone, and each
 * block is one call of the BLAS on one thread (its thread-local count set to 1), the blocks shared
 * among our threads — so each element comes from the same call whatever the number of threads.
 * The BLAS routine comes from the caller (fastrnn._native.cpu: the sgemm_/dgemm_ that torch
 * links), so the products keep the BLAS's speed. Not compiled per variant: it only cuts up. */
#include <stdint.h>

#include "common.h"
#include "fastrnn.h"

typedef void (*fr_sgemm)(const char *, const char *, const int *, const int *, const int *,
                         const float *, const float *, const int *, const float *, const int *,
                         const float *, float *, const int *);
typedef void (*fr_dgemm)(const char *, const char *, const int *, const int *, const int *,
                         const double *, const double *, const int *, const double *, const int *,
                         const double *, double *, const int *);
typedef int (*fr_local_threads)(const int *);  /* Fortran's: by reference */

/* Work item (i, block): rows [block·rows, …) of C_i. Row-major C is column-major
 * Cᵀ = op(B)ᵀ op(A)ᵀ: the Fortran call takes B first. */
#define FR_GEMM_ITEMS(real, gemm_t)                                                             \
  do {                                                                                        \
    const real one = 1, zero = 0;                                                             \
    const real *A_ = A, *B_ = B;                                                              \
    real *C_ = C;                                                                             \
    _Pragma("omp for schedule(static)") for (int64_t item = 0; item < items; item++) {        \
      const int64_t i = item / blocks, m0 = item % blocks * rows;                             \
      const int m_ = (int)(M - m0 < rows ? M - m0 : rows);                                    \
      ((gemm_t)gemm)(tb ? "T" : "N", ta ? "T" : "N", &n_, &m_, &k_, &one, B_ + i * sb, &ldb_,  \
                     A_ + i * sa + (ta ? m0 : m0 * lda), &lda_, &zero, C_ + i * sc + m0 * ldc, \
                     &ldc_);                                                                  \
    }                                                                                         \
  } while (0)

int fastrnn_gemm_blocks(int f64, void *gemm, void *local_threads, int ta, int tb, int64_t n,
                        int64_t M, int64_t N, int64_t K, const void *A, int64_t lda, int64_t sa,
                        const void *B, int64_t ldb, int64_t sb, void *C, int64_t ldc, int64_t sc,
                        int64_t rows, int threads) {
  if (!gemm || !local_threads || !A || !B || !C)
    return fr_fail(__func__, "expected the BLAS's gemm, its thread-local count and three arrays");
  if (n < 1 || M < 1 || N < 1 || K < 1 || rows < 1 || M > INT32_MAX || N > INT32_MAX ||
      K > INT32_MAX || lda > INT32_MAX || ldb > INT32_MAX || ldc > INT32_MAX)
    return fr_fail(__func__, "expected sizes and strides in 1 .. 2^31 - 1, got n=%lld M=%lld "
                   "N=%lld K=%lld rows=%lld", (long long)n, (long long)M, (long long)N,
                   (long long)K, (long long)rows);
  const int64_t blocks = (M + rows - 1) / rows, items = n * blocks;
  const int P = threads < items ? threads : (int)items;
  const int n_ = (int)N, k_ = (int)K, lda_ = (int)lda, ldb_ = (int)ldb, ldc_ = (int)ldc;
#pragma omp parallel num_threads(P) if (P > 1)
  {
    const int one_thread = 1, before = ((fr_local_threads)local_threads)(&one_thread);
    if (f64)
      FR_GEMM_ITEMS(double, fr_dgemm);
    else
      FR_GEMM_ITEMS(float, fr_sgemm);
    ((fr_local_threads)local_threads)(&before);
  }
  return FASTRNN_OK;
}
