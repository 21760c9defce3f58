/* Kernel lab: the per-step product's candidates side by side, each validated against a float64
 * product and timed on one thread — the packed tile (rows_times), the in-place dot form
 * (rows_dot) and, on AVX-512-BF16, the bfloat16 tile, plus packing W itself. Built per variant by
 * kernels/lab/run, outside the library; it includes the very headers the kernels use.
 *
 *   usage: tiles M N K [repeats]   (M rows of A, N outputs, K the reduction; W is [N,K]) */
#include <math.h>
#include <stdio.h>
#include <time.h>

#include "../cpu/internal.h"

/* The library's few external symbols, for a stand-alone build. */
int fastrnn_get_num_threads(void) { return 1; }
static int bf16_on;
int fastrnn_get_bf16_products(void) { return bf16_on; }
void *fr_work_alloc(size_t n) { return aligned_alloc(64, (n + 63) / 64 * 64); }
void fr_work_free(void *p) { free(p); }
int64_t fr_rules[] = {
#define FR_RULE(name, value, what, where) value,
#include "../rules.def"
#undef FR_RULE
};

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

/* max |C - A Wᵀ| / max |A Wᵀ| over the M×N outputs, the reference in float64 */
static double error(int64_t M, int64_t N, int64_t K, const real *A, const real *W, const real *C) {
  double worst = 0, scale = 0;
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      double s = 0;
      for (int64_t k = 0; k < K; k++) s += (double)A[m * K + k] * W[n * K + k];
      worst = fmax(worst, fabs(C[m * N + n] - s));
      scale = fmax(scale, fabs(s));
    }
  return worst / (scale > 0 ? scale : 1);
}

/* one candidate: `packed` packs W (or reads it in place), `bf16` rounds the products' operands */
static void run(const char *name, int packed, int bf16, int64_t M, int64_t N, int64_t K,
                const real *A, const real *W, real *C, int repeats, double tolerance) {
  fr_weights w;
  bf16_on = bf16;
  /* T = 2 and B = M pack from FR_MR rows on (fr_weights_init's rule); T = 1 reads in place */
  if (fr_weights_init(&w, 1, packed ? 2 : 1, packed ? (M < FR_MR ? FR_MR : M) : M, N, K, W,
                      NULL, 0)) {
    printf("%-22s out of memory\n", name);
    return;
  }
  double t0 = now();
  for (int r = 0; r < repeats; r++) fr_weights_pack(&w, 0, N);
  const double pack = (now() - t0) / repeats;
  fr_forward_product(&w, M, A, NULL, C, N, N, 0, N);
  const double err = error(M, N, K, A, W, C);
  t0 = now();
  for (int r = 0; r < repeats; r++) fr_forward_product(&w, M, A, NULL, C, N, N, 0, N);
  const double dt = (now() - t0) / repeats;
  printf("%-22s %9.1f us  %6.1f GMAC/s  pack %8.1f us  rel. error %.1e%s\n", name, dt * 1e6,
         M * N * K / dt * 1e-9, w.packed ? pack * 1e6 : 0.0, err,
         err <= tolerance ? "" : "  <-- FAILS");
  fr_weights_free(&w);
  if (err > tolerance) exit(1);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s M N K [repeats]\n", argv[0]);
    return 2;
  }
  const int64_t M = atoll(argv[1]), N = atoll(argv[2]), K = atoll(argv[3]);
  const int repeats = argc > 4 ? atoi(argv[4]) : 200;
  real *A = malloc(sizeof(real) * M * K), *W = malloc(sizeof(real) * N * K);
  real *C = malloc(sizeof(real) * M * N);
  for (int64_t i = 0; i < M * K; i++) A[i] = (real)((i * 7919 % 2003) / 1001.5 - 1);
  for (int64_t i = 0; i < N * K; i++) W[i] = (real)((i * 104729 % 4001) / 2000.5 - 1);
  printf("variant %s, M=%lld N=%lld K=%lld, one thread\n", FR_CAT(FR_STR_, FR_VARIANT),
         (long long)M, (long long)N, (long long)K);
  const double eps = sizeof(real) == 4 ? 1e-5 : 1e-13;
  run("packed tile", 1, 0, M, N, K, A, W, C, repeats, eps * sqrt((double)K));
  run("in place (dot form)", 0, 0, M, N, K, A, W, C, repeats, eps * sqrt((double)K));
  if (FR_BF16 && fr_cpu_bf16())  /* bfloat16 operands: about 2^-8 relative each */
    run("bfloat16 packed tile", 1, 1, M, N, K, A, W, C, repeats, 1e-2);
  free(A), free(W), free(C);
  return 0;
}
