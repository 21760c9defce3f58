/* The bfloat16 product on AMX tiles (Intel Xeon from Sapphire Rapids on): one tdpbf16ps does
 * 16 × 16 sums of 32 products each — 8192 multiply-adds, against vdpbf16ps's 32 — so a step's
 * product of B ≥ amx_min_rows rows (kernels/rules.def) runs here rather than in tile_bf16. The
 * operands are the same bfloat16 pairs: a panel of bf16.h's layout is two B tiles side by side
 * (16 columns each, pair-rows 128 bytes apart). Which product a call takes depends on the call
 * (its rows B), never on a thread's share of the rows, so results stay bitwise the same for any
 * thread count. Included by bf16.h. */
#ifndef FASTRNN_CPU_AMX_H
#define FASTRNN_CPU_AMX_H
#include <cpuid.h>
#include <sys/syscall.h>

#define FR_AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512bf16")))

/* Whether this CPU has AMX bfloat16 tiles and Linux lets this process use them: the permission
 * (arch_prctl ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA) is asked once per process and
 * library; asking again is harmless. */
static inline int fr_cpu_amx(void) {
  static int has = -1;
  if (has < 0) {
    unsigned a, b, c, d;
    const int cpu = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d >> 22 & 1) && (d >> 24 & 1);
    has = cpu && syscall(SYS_arch_prctl, 0x1023, 18) == 0;
  }
  return has;
}

/* Every tile 16 rows × 64 bytes: C 16 × 16 float32, A 16 rows × 16 pairs, B 16 pairs × 16
 * columns. tmm0..3 the sums of two row tiles × two column tiles, tmm4, 5 rows of A, tmm6, 7 a
 * panel's two column tiles. */
typedef struct {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} __attribute__((aligned(64))) fr_tile_config;

/* C tile `tile` ← rows r0.., columns c0.. of C [M,N] (ldc apart): C itself (accumulate), else
 * the bias in every row (a load with stride 0) or zeros; an edge tile through e [16·16] (zeros
 * past the edge), whose stores the load then waits for. */
#define FR_AMX_IN(tile, r0, c0)                                                              \
  do {                                                                                       \
    const int rows = mr - (r0) < 16 ? mr - (r0) : 16;                                        \
    const int cols = N - (c0) >= 16 ? 16 : N > (c0) ? (int)(N - (c0)) : 0;                    \
    if (!acc && !b) {                                                                        \
      _tile_zero(tile);                                                                      \
    } else if (!acc && cols == 16) {                                                         \
      _tile_loadd(tile, b + (c0), 0);                                                        \
    } else if (rows == 16 && cols == 16) {                                                   \
      _tile_loadd(tile, Cm + (r0) * ldc + (c0), ldc * 4);                                    \
    } else {                                                                                 \
      memset(e, 0, sizeof e);                                                                \
      for (int r = 0; r < (acc ? rows : 16); r++)                                            \
        memcpy(e + 16 * r, acc ? Cm + ((r0) + r) * ldc + (c0) : b + (c0),                   \
               (size_t)cols * sizeof(float));                                                \
      _tile_loadd(tile, e, 64);                                                              \
    }                                                                                        \
  } while (0)

/* C tile `tile` → rows r0.., columns c0.. of C (past the edge: dropped). */
#define FR_AMX_OUT(tile, r0, c0)                                                             \
  do {                                                                                       \
    const int rows = mr - (r0) < 16 ? mr - (r0) : 16;                                        \
    const int cols = N - (c0) >= 16 ? 16 : N > (c0) ? (int)(N - (c0)) : 0;                    \
    if (rows == 16 && cols == 16) {                                                          \
      _tile_stored(tile, Cm + (r0) * ldc + (c0), ldc * 4);                                   \
    } else {                                                                                 \
      _tile_stored(tile, e, 64);                                                             \
      for (int r = 0; r < rows; r++)                                                         \
        memcpy(Cm + ((r0) + r) * ldc + (c0), e + 16 * r, (size_t)cols * sizeof(float));      \
    }                                                                                        \
  } while (0)

#define FR_AMX_ROWS 64 /* rows of A rounded at a time: 64 × FR_KC pairs, 64 kB, on the stack */

/* rows_times_bf16 on tiles, for `gates` products of the same A at once: gate q's C + q·cq
 * [M,N] (+)= A [M,K] · Bm_q [K,N], from bias + q·bq [N] (NULL: zero) unless `accumulate`, Bm_q
 * packed in pairs (P + q·pq, panels ps 16-bit values apart), A float32 rows lda apart, rounded
 * once for every gate, FR_AMX_ROWS rows × FR_KC pairs at a time, into a zero-padded buffer;
 * each panel's chunk of pairs then serves all those rows, 32 at a time, from L1. The whole
 * 16-pair blocks of K run on tiles, the last K2 mod 16 pairs (K mod 32 ≠ 0) in rows_times_bf16
 * after them; the sums run over k in order whatever the rows or threads. */
FR_AMX_TARGET static void rows_times_amx(int64_t M, int64_t N, int64_t K, const float *A,
                                         int64_t lda, const uint16_t *P, int64_t ps, int gates,
                                         int64_t pq, const float *bias, int64_t bq, float *C,
                                         int64_t ldc, int64_t cq, int accumulate) {
  const int64_t K2 = fr_pairs(K), K2t = K2 / 16 * 16;
  if (K2t > 0) {
    fr_tile_config cfg = {.palette = 1};
    for (int t = 0; t < 8; t++) cfg.rows[t] = 16, cfg.colsb[t] = 64;
    _tile_loadconfig(&cfg);
    uint32_t ab[FR_AMX_ROWS * FR_KC] __attribute__((aligned(64)));
    float e[16 * 16] __attribute__((aligned(64)));
    for (int64_t m0 = 0; m0 < M; m0 += FR_AMX_ROWS) {
      const int rows = (int)(M - m0 < FR_AMX_ROWS ? M - m0 : FR_AMX_ROWS);
      for (int64_t i0 = 0; i0 < K2t; i0 += FR_KC) {
        const int64_t n2 = K2t - i0 < FR_KC ? K2t - i0 : FR_KC;
        for (int r = 0; r < (rows + 15) / 16 * 16; r++)
          if (r < rows)
            fr_round_row(A + (m0 + r) * lda + 2 * i0, K - 2 * i0 < 2 * n2 ? K - 2 * i0 : 2 * n2,
                         ab + r * FR_KC);
          else
            memset(ab + r * FR_KC, 0, (size_t)n2 * 4);
        const int acc = accumulate || i0 > 0;
        const int64_t np = (N + 31) / 32;  /* panels a gate */
        for (int64_t qc = 0; qc < gates * np; qc++) {
          const int64_t q = qc / np, c = qc % np * 32;
          const uint16_t *Pk = P + q * pq + c / 32 * ps + i0 * 64;
          const float *b = bias ? bias + q * bq : NULL;
          for (int m = 0; m < rows; m += 32) {
            const int mr = rows - m < 32 ? rows - m : 32, two = mr > 16;
            const uint32_t *a = ab + m * FR_KC;
            float *Cm = C + q * cq + (m0 + m) * ldc;
            FR_AMX_IN(0, 0, c);
            FR_AMX_IN(1, 0, c + 16);
            if (two) {
              FR_AMX_IN(2, 16, c);
              FR_AMX_IN(3, 16, c + 16);
            }
            for (int64_t i = 0; i < n2; i += 16) {
              _tile_loadd(4, a + i, FR_KC * 4);
              _tile_loadd(6, Pk + i * 64, 128);
              _tile_loadd(7, Pk + i * 64 + 32, 128);
              _tile_dpbf16ps(0, 4, 6);
              _tile_dpbf16ps(1, 4, 7);
              if (two) {
                _tile_loadd(5, a + 16 * FR_KC + i, FR_KC * 4);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
              }
            }
            FR_AMX_OUT(0, 0, c);
            FR_AMX_OUT(1, 0, c + 16);
            if (two) {
              FR_AMX_OUT(2, 16, c);
              FR_AMX_OUT(3, 16, c + 16);
            }
          }
        }
      }
    }
    _tile_release();
  }
  if (K2t < K2)
    for (int q = 0; q < gates; q++)
      rows_times_bf16(M, N, K - 2 * K2t, A + 2 * K2t, lda, P + q * pq + K2t * 64, ps,
                      bias ? bias + q * bq : NULL, C + q * cq, ldc, accumulate || K2t > 0);
}
#undef FR_AMX_IN
#undef FR_AMX_OUT
#endif
