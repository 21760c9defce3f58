/* fastrnn — the C ABI of the recurrent kernels (CPU library libfastrnn_cpu, CUDA libfastrnn_cuda).
 *
 * Only the recurrence is sequential, so these functions do only the per-step loop and its BPTT:
 * the caller computes G_x = x W_xhᵀ + b over all T·B rows with one GEMM beforehand (for RNN and
 * LSTM b = b_xh + b_hh; for GRU b = b_xh and b_hh comes in here), and dW_xh, dW_hh, dx afterwards.
 *
 * Shape legend: T time, B batch, H hidden, G gate rows (RNN: H, LSTM: 4H, GRU: 3H), S state slots
 * (forward: T+1, keeping every state for backward; forward_infer: 2). Every array is a dense
 * row-major (C-contiguous) buffer allocated by the caller; the comment beside each pointer gives
 * its shape. Gate order is torch.nn's: LSTM i, f, g, o; GRU r, z, n. lengths[b] in 0..T is the
 * length of sequence b: past it the state is carried unchanged and the output is zero.
 *
 * Symbols: fastrnn_<cell>_<pass>_<dtype>[_cuda], cell ∈ rnn_tanh, rnn_relu, lstm, lstmp, gru,
 * ln_lstm, ln_gru, pass ∈ forward, forward_infer, backward (and, CPU only,
 * forward_x[_infer], and for bfloat16 modules forward_x[_infer]_bf16), dtype ∈ f32, f64. They
 * are declared in fastrnn_cells.h, which kernels/abi.py writes from the cells' descriptions
 * (fastrnn/cells.py) when the library is built and which is installed beside this file: include
 * that one. On CUDA every pointer is device memory and `stream` is the caller's cudaStream_t
 * (NULL: the default stream); lengths values are checked by the caller there. Each returns
 * FASTRNN_OK (0) or an error code, with a message from fastrnn_last_error() (thread-local).
 *
 * The forwards with the input projection inside (forward_x, the CPU library only) take x, W_ih
 * and the biases instead of G_x: G_x = x W_ihᵀ + b_ih (+ b_hh) is computed a chunk of steps at a
 * time as the loop needs it, never stored over all T. Each bias may be NULL; GRU takes only b_ih
 * there (its b_hh belongs to A). Two biases rather than their sum: a caller keeps no summed copy
 * that could go stale when a bias is written in place.
 *
 * The bfloat16 forwards (_bf16, CPU and f32 only) take and return every argument and result in
 * bfloat16 (each value the upper 16 bits of a float32), the scratch and saved buffers in float32.
 * The results are bitwise those of the f32 call on the arguments widened, rounded to nearest
 * even; with bfloat16 products (fastrnn_set_bf16_products, AVX-512-BF16) W_ih and W_hh are packed
 * as they lie.
 *
 * Missing states (CPU library): in forward_x[_infer] h0 and c0 may be NULL, meaning zeros, and
 * step 0 then multiplies nothing by W_hh; in backward dh0 may be NULL when ∂L/∂h0 is not wanted,
 * and step 0's product by W_hh is skipped.
 *
 * The region between the CDEF markers is read by cffi and must hold declarations only.
 */
#ifndef FASTRNN_H
#define FASTRNN_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

/* FASTRNN_CDEF_BEGIN */
enum { FASTRNN_OK = 0, FASTRNN_EINVAL = 1, FASTRNN_EDEVICE = 2, FASTRNN_ENOMEM = 3 };
const char *fastrnn_last_error(void);
const char *fastrnn_build_info(void);
/* Threads the calling thread's CPU calls may use (default 1; fastrnn's Python layer passes
 * torch's count before each call). Kept per calling thread, so threads calling at once with
 * different counts do not race. Results do not depend on it. The CUDA library ignores it. */
void fastrnn_set_num_threads(int n);
int fastrnn_get_num_threads(void);
/* Whether the calling thread's float32 CPU calls may multiply in bfloat16 (default 0): on a CPU
 * with AVX-512-BF16 the per-step products of the packed path then round their operands — W_ih,
 * W_hh, W_hr, x_t, h_{t-1}, and in the backward ∂L/∂A_t — to bfloat16 and sum in float32, as
 * torch.nn's bfloat16 kernels do, at twice the float32 rate; the cell state, the sums and the
 * outputs stay float32. fastrnn's Python layer sets it for bfloat16 modules and under autocast
 * to bfloat16. Elsewhere (another CPU, float64, products read in place) it changes nothing. */
void fastrnn_set_bf16_products(int on);
int fastrnn_get_bf16_products(void);
/* The CPU variants compiled in that this CPU runs, best first, space-separated ("avx512 avx2 base",
 * "avx2 base", "base"), or "" for a build with one variant. Each kernel function also exists as
 * <name>_<variant> (fastrnn_lstm_forward_f32_avx2); the plain name is the best variant. The
 * variants are declared in FASTRNN_CPU_VARIANTS below. */
const char *fastrnn_cpu_variants(void);
/* The tuned rules (kernels/rules.def, each with what it decides and where it was measured): a
 * rule's value by name, -1 for an unknown name; and, for a measurement, a new value (>= 0) for
 * the whole process — not while calls run. Returns FASTRNN_OK or FASTRNN_EINVAL. */
int64_t fastrnn_get_rule(const char *name);
int fastrnn_set_rule(const char *name, int64_t value);

/* ∂L/∂x = ∂L/∂G_x W_ih for every row at once (CPU only): the input gradient of any cell. */
int fastrnn_input_grad_f32(int64_t T, int64_t B, int64_t I, int64_t G,
    const float *dG,          /* [T,B,G] ∂L/∂G_x */
    const float *W_ih,        /* [G,I]   */
    float *dx);               /* [T,B,I] */
/* C_i = op(A_i) op(B_i), i < n, row-major, in float32 or (f64) float64: C_i [M,N]; op(A) = A
 * [M,K] or, ta, Aᵀ of A [K,M]; op(B) = B [K,N] or, tb, Bᵀ of B [N,K]; lda, ldb, ldc: row
 * strides; sa, sb, sc: from one i to the next. Cut into blocks of `rows` rows of C, each one call
 * of `gemm` (a BLAS's Fortran sgemm_ or dgemm_) on one thread (`local_threads`: the BLAS's
 * mkl_set_num_threads_local_), on up to `threads` threads: the bits do not depend on `threads`
 * (kernels/cpu/gemm_blocks.c). */
int fastrnn_gemm_blocks(int f64, void *gemm, void *local_threads, int ta, int tb, int64_t n,
    int64_t M, int64_t N, int64_t K, const void *A, int64_t lda, int64_t sa, const void *B,
    int64_t ldb, int64_t sb, void *C, int64_t ldc, int64_t sc, int64_t rows, int threads);
/* FASTRNN_CDEF_END */

/* The CPU variants, best first: X(a, name, the CPU level it needs (GCC's __builtin_cpu_supports),
 * its register tile's rows FR_MR (kernels/cpu/tiles.h), its compiler flags). The one declaration
 * read by CMakeLists.txt (each cell file compiled once per row), kernels/cpu/variants.c (the plain
 * names bound to the first row this CPU runs), the Python loader and kernels/lab/run; a row's
 * vector width follows from its flags. The last row must run on every x86-64. */
#define FASTRNN_CPU_VARIANTS(X, a)                                                           \
  X(a, avx512, "x86-64-v4", 8, "-march=x86-64-v4 -mtune=generic -mprefer-vector-width=512") \
  X(a, avx2, "x86-64-v3", 6, "-march=x86-64-v3 -mtune=generic")                              \
  X(a, base, "x86-64", 4, "")

int fastrnn_input_grad_f64(int64_t T, int64_t B, int64_t I, int64_t G, const double *dG,
    const double *W_ih, double *dx);

#ifdef __cplusplus
}
#endif
#endif /* FASTRNN_H */
