/* What the CPU cell files share: the per-step recurrent product (tiles.h), the threads and the
 * multiversioning. */
#ifndef FASTRNN_CPU_INTERNAL_H
#define FASTRNN_CPU_INTERNAL_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Large work buffers, kept per calling thread between calls (workspace.c): fr_work_alloc returns
 * n bytes (64-byte aligned) or NULL; fr_work_free(NULL) does nothing. */
void *fr_work_alloc(size_t n);
void fr_work_free(void *p);

#include "bf16_round.h"
#include "tiles.h"


/* active [T]: at step t, 1 + the last row still inside its sequence (0 if none). With lengths
 * longest first, as packed sequences come, exactly the rows still running, and the per-step
 * products skip the others (a ragged batch of lengths 20–200 runs about half the rows on
 * average); in any other order a bound, past which rows are ended too. Their results would be
 * ignored anyway: an ended row carries its state. NULL when out of memory. */
static inline int64_t *fr_active_rows(int64_t T, int64_t B, const int64_t *lengths) {
  int64_t *active = calloc((size_t)T, sizeof *active);
  if (!active) return NULL;
  for (int64_t b = 0; b < B; b++) {
    const int64_t L = lengths[b] < T ? lengths[b] : T;
    if (L > 0 && active[L - 1] < b + 1) active[L - 1] = b + 1;
  }
  for (int64_t t = T - 2; t >= 0; t--)
    if (active[t] < active[t + 1]) active[t] = active[t + 1];
  return active;
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

/* How many threads a step of B·G·H multiply-adds is worth: each must get at least
 * 2^team_madds_log2 of them per barrier the step's threads meet (`barriers`: 1, or a LayerNorm
 * cell's passes over whole rows), or the barriers and the threads' wake-up eat what it saves; a
 * single row over T > 1 steps 2^team_row_madds_log2 (rules.def: the reasons and measurements).
 * At most one thread per panel of hidden units. */
static inline int fr_team(int64_t T, int64_t B, int64_t G, int64_t H, int barriers) {
  int64_t P = fastrnn_get_num_threads();
  const int64_t worth = B * G * H / barriers >> (B == 1 && T > 1 ? fr_rule(team_row_madds_log2)
                                                                 : fr_rule(team_madds_log2));
  if (P > worth) P = worth;
  if (P > fr_panels(H)) P = fr_panels(H);
  return P < 1 ? 1 : (int)P;
}

/* Runs `call` (a loop part, which asks fr_thread() and fr_team_size()) on a team of P threads,
 * where P is a variable of that name; with P = 1 outside any parallel region, whose entry costs
 * about a microsecond even when an if clause turns it off — most of a small cell's call. */
#define FR_PARALLEL(call)                                    \
  do {                                                       \
    if (P > 1) {                                             \
      _Pragma("omp parallel num_threads(P)") call;           \
    } else {                                                 \
      call;                                                  \
    }                                                        \
  } while (0)

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

/* W [G,K] (G = gates·H rows; W_hh: K = H, or the projection's size; W_ih: K = I; W_hr: one
 * gate of H = the projection's size, K = the cell's H) as the products read it: in place, or
 * packed (fr_weights_init) —
 * forward: Bm = Wᵀ [K,G], packed gate block by gate block so that each block's panels start
 *   at its unit 0 (a thread's units are whole panels of every block): [gates][panels(H),K,FR_NR];
 * backward: Bm = W [G,K] itself, whose K columns are the outputs: [panels(K),G,FR_NR]. */
typedef struct {
  const real *W;     /* [G,K] as given */
  const uint16_t *W16;  /* or, forward only, W in bfloat16 (fr_weights_bf16): W is NULL then */
  real *widened;     /* W16 widened (and W pointing here) where not packed for bf16 products */
  real *packed;      /* NULL: read W in place */
  int64_t *active;   /* [T] rows each step's product covers (fr_active_rows), or NULL */
  int64_t H, K, gates;
  int backward;
  int bf16;          /* packed in bfloat16 pairs for rows_times_bf16 (bf16.h) */
  int amx;           /* and its products on AMX tiles (rows_times_amx, amx.h) */
  int none0;         /* step 0 has no product: forward, h0 is zeros; backward, ∂L/∂h0 unwanted */
} fr_weights;

/* A thread's share of a loop over the steps: rows [b0, b1) of the batch and units [j0, j1) of
 * every gate block. Split by units (fr_slice: all rows), the threads meet at a barrier every
 * step, before the next product reads all of h_t; split by rows (all units), each thread runs
 * whole rows — independent recurrences — through every step and never waits for another. */
typedef struct {
  int64_t b0, b1, j0, j1;
} fr_part;

/* A cache's size in bytes as the C library reports it (sysconf name), or `otherwise`. */
static inline int64_t fr_cache_bytes(int name, int64_t otherwise) {
  const long v = sysconf(name);
  return v > 0 ? v : otherwise;
}

/* The last-level cache (32 MB where the C library does not say) and a core's L2 (1 MB). */
static inline int64_t fr_l3_bytes(void) {
  static int64_t l3 = -1;
  if (l3 < 0) l3 = fr_cache_bytes(_SC_LEVEL3_CACHE_SIZE, (int64_t)32 << 20);
  return l3;
}
static inline int64_t fr_l2_bytes(void) {
  static int64_t l2 = -1;
  if (l2 < 0) l2 = fr_cache_bytes(_SC_LEVEL2_CACHE_SIZE, (int64_t)1 << 20);
  return l2;
}

/* Whether this is an AMD CPU (its last-level cache feeds each core faster than an Intel
 * Xeon's mesh does: rows_llc_share). */
static inline int fr_cpu_amd(void) {
  static int amd = -1;
  if (amd < 0) {
    __builtin_cpu_init();
    amd = __builtin_cpu_is("amd");
  }
  return amd;
}

/* Whether a team of P splits a call by rows: each thread must get whole tiles of FR_MR rows (of
 * 16 rows, an AMX tile, for AMX products), evenly or at least rows_uneven_tiles (so that a
 * thread's extra tile or the rows left over weigh little), over more than one step (a single
 * step reads W in place, and each thread would read all of it), every row must run all T steps
 * (packed lengths, longest first, would load the first thread most), and W (w: W_hh as the loop
 * reads it) must be small enough for each thread to stream all of it every step where each
 * streamed its own part: on AMD CPUs at most 1/rows_llc_share of the last-level cache, on others
 * a core's L2 (rules.def). Results are bitwise those of the unit split. */
static inline int fr_by_rows(int P, int64_t T, int64_t B, const int64_t *lengths,
                             const fr_weights *w) {
  const int64_t tiles = B / FR_MR;
  const int64_t bytes = w->gates * w->H * w->K * (w->bf16 ? 2 : (int64_t)sizeof(real));
  const int cached = fr_cpu_amd() ? fr_rule(rows_llc_share) * bytes <= fr_l3_bytes()
                                  : bytes <= fr_l2_bytes();
  if (P < 2 || T < 2 || tiles < P || (tiles % P && tiles < fr_rule(rows_uneven_tiles) * P) ||
      (w->amx && B < 16 * P) || !cached)
    return 0;
  for (int64_t b = 0; b < B; b++)
    if (lengths[b] < T) return 0;
  return 1;
}

/* Thread p's part of P: by rows (whole tiles; the last thread also takes the rows left over)
 * or by units (fr_slice), B rows and H units in all. */
static inline fr_part fr_part_of(int p, int P, int rows, int64_t B, int64_t H) {
  fr_part q = {0, B, 0, H};
  if (rows) {
    const int64_t tiles = B / FR_MR;
    q.b0 = tiles * p / P * FR_MR;
    q.b1 = p == P - 1 ? B : tiles * (p + 1) / P * FR_MR;
  } else {
    fr_slice(H, p, P, &q.j0, &q.j1);
  }
  return q;
}

/* Allocates the packed copy of W, where fr_weights_init did not (a forward's W read in place
 * for a step's few rows, packed for the input projection's chunks of many). Returns 0, or
 * FASTRNN_ENOMEM (free w as usual then). */
static inline int fr_weights_packed(fr_weights *w) {
  if (w->packed) return 0;
  const int64_t G = w->gates * w->H;
  w->packed = fr_work_alloc((size_t)(w->backward ? fr_panels(w->K) * G * FR_NR
                                                 : w->gates * fr_panels(w->H) * w->K * FR_NR) *
                            sizeof(real));
  return w->packed ? 0 : FASTRNN_ENOMEM;
}

/* Whether w's bfloat16 products of `rows` rows a call (a step's batch, an input chunk's rows)
 * run on AMX tiles (rule amx_min_rows): decided per call, not per thread's share. */
static inline int fr_amx_rows(const fr_weights *w, int64_t rows) {
  return w->bf16 && rows >= fr_rule(amx_min_rows) && fr_cpu_amx();
}

/* Decides whether W is packed and allocates the packed copy (each thread packs its own panels,
 * fr_weights_pack: in parallel, and into its own core's cache), and, given the lengths (W_hh), the
 * rows each step covers (fr_active_rows). Packing pays in the backward when B ≥ FR_MR rows share
 * each load (in place, the backward product is the same tile with W_hh's rows as its panels, so
 * few rows need no copy), over more than one step (T = 1 backward, Zen 4, 2 threads, in place
 * against packed: LSTM B = 8, H = 256 28 against 41 µs; B = 64, H = 256 184 against 196; RNN B =
 * 32, H = 128 13.6 against 14.5). Forward in place (rows_dot) takes a fold per FR_L outputs, which
 * at small K costs about what packing saves (LSTM B = 1, T = 32, H = 64, avx512: 66 µs a call in
 * place against 62 packed), so the forward packs once T·B reaches FR_MR — but not for one step,
 * where packing is most of the work (Zen 4, 2 threads, LSTM T = 1: B = 8, H = 256 182 µs packed
 * against 72 in place; B = 32, H = 128 106 against 87; even at B = 64), and not at H ≥ 512 with B
 * < FR_MR, where a second copy of W_hh (16 MB for an LSTM with H = 1024) pushes both out of the L3
 * the product streams from (rule inplace_min_H: H ≥ 512) — unless the products are in bfloat16,
 * whose packed pairs take half of float32's bytes and are the only form the bfloat16 tiles read
 * (read in place, a bfloat16 W would be widened and multiplied in float32). Returns 0, or
 * FASTRNN_ENOMEM (nothing to free then). */
static inline int fr_weights_init(fr_weights *w, int gates, int64_t T, int64_t B, int64_t H,
                                  int64_t K, const real *W, const int64_t *lengths,
                                  int backward) {
  w->W = W, w->H = H, w->K = K, w->gates = gates, w->backward = backward;
  w->W16 = NULL, w->widened = NULL, w->packed = NULL, w->active = NULL, w->none0 = 0;
  w->bf16 = FR_BF16 && fastrnn_get_bf16_products() && fr_cpu_bf16();
  w->amx = fr_amx_rows(w, B);
  if (lengths && !(w->active = fr_active_rows(T, B, lengths))) return FASTRNN_ENOMEM;
  if (T == 1 ||
      (backward ? B < FR_MR
                : T * B < FR_MR || (B < FR_MR && H >= fr_rule(inplace_min_H) && !w->bf16)))
    return 0;
  if (!fr_weights_packed(w)) return 0;
  free(w->active);
  return FASTRNN_ENOMEM;
}


/* A forward's W given in bfloat16 (W16 [gates·H, K]) rather than float32, after fr_weights_init
 * (with W NULL): packed for bfloat16 products, it is packed from W16 as it lies (no rounding, half
 * the bytes of a float32 W); otherwise widened once into a work buffer that is then W. Either way
 * the results are those of W16 widened by the caller, bitwise; a bfloat16 module's call saves
 * that widening. Returns 0, or FASTRNN_ENOMEM (free w as usual then). */
static inline int fr_weights_bf16(fr_weights *w, const uint16_t *W16) {
  const int64_t G = w->gates * w->H, K = w->K;
  if (w->bf16 && w->packed) {
    w->W16 = W16;
    return 0;
  }
  real *Wf = w->widened = fr_work_alloc((size_t)(G * K) * sizeof(real));
  if (!Wf) return FASTRNN_ENOMEM;
  for (int64_t i = 0; i < G * K; i++) Wf[i] = fr_f32(W16[i]);
  w->W = Wf;
  return 0;
}

/* Slot 0 of a state buffer [S,B,·] (n = B·· values): s0 copied, or, when s0 is NULL (the CPU
 * library's forward_x: a missing initial state), zeros — and then step 0 of w (if given) has no
 * product to run. */
static inline void fr_state0(real *slot, const real *s0, int64_t n, fr_weights *w) {
  if (s0) {
    memcpy(slot, s0, (size_t)n * sizeof(real));
    return;
  }
  memset(slot, 0, (size_t)n * sizeof(real));
  if (w) w->none0 = 1;
}

/* The backward's running ∂L/∂h_t [B,·] (n values), starting from dh_n: dh0 itself, or, when dh0
 * is NULL (∂L/∂h0 not wanted: the CPU library's backward), a work buffer, and then step 0 of w
 * has no product to run. NULL when out of memory; free with fr_dstate0_free. */
static inline real *fr_dstate0(real *dh0, const real *dh_n, int64_t n, fr_weights *w) {
  real *dh = dh0 ? dh0 : fr_work_alloc((size_t)n * sizeof(real));
  if (!dh) return NULL;
  w->none0 = !dh0;
  memcpy(dh, dh_n, (size_t)n * sizeof(real));
  return dh;
}

static inline void fr_dstate0_free(real *dh, const real *dh0) {
  if (dh != dh0) fr_work_free(dh);
}

/* The team of a backward: as fr_team, but one thread for a single step whose ∂L/∂h0 is not
 * wanted (w->none0) and that has no other product (`more`: LSTMP's W_hr): it multiplies nothing
 * (fr_step_backward skips step 0), and its pointwise math is not worth waking a team (a cell's
 * training step calls it every step). */
static inline int fr_backward_team(const fr_weights *w, int64_t T, int more, int64_t B, int64_t G,
                                   int64_t H, int barriers) {
  return T == 1 && w->none0 && !more ? 1 : fr_team(T, B, G, H, barriers);
}

/* Packs the panels of output units [j0, j1) (a thread's slice, fr_slice; backward: of K): all
 * the thread will read. */
static inline void fr_weights_pack(const fr_weights *w, int64_t j0, int64_t j1) {
  if (!w->packed || j0 >= j1) return;
  const int64_t H = w->H, K = w->K, p0 = j0 / FR_NR, p1 = fr_panels(j1);
  if (w->backward) {
#if FR_BF16
    if (w->bf16) {
      pack_rows_bf16(w->gates * H, K, w->W, (uint16_t *)w->packed, p0, p1);
      return;
    }
#endif
    pack_panels(w->gates * H, K, w->W, K, 1, w->packed, p0, p1);
    return;
  }
  const int64_t block = fr_panels(H) * K * FR_NR;
#if FR_BF16
  if (w->bf16) {
    const int64_t block16 = fr_panels(H) * fr_pairs(K) * FR_NR * 2;
    for (int q = 0; q < w->gates; q++)
      pack_panels_bf16(K, H, w->W16 ? NULL : w->W + q * H * K,
                       w->W16 ? w->W16 + q * H * K : NULL, (uint16_t *)w->packed + q * block16,
                       p0, p1);
    return;
  }
#endif
  for (int q = 0; q < w->gates; q++)
    pack_panels(K, H, w->W + q * H * K, 1, K, w->packed + q * block, p0, p1);
}

/* Packs thread p's share of P (the panels of its units, fr_slice; backward: of K): split by
 * units all it reads, split by rows its share of what every thread reads (then a barrier). */
static inline void fr_weights_pack_part(const fr_weights *w, int p, int P) {
  int64_t j0, j1;
  fr_slice(w->backward ? w->K : w->H, p, P, &j0, &j1);
  fr_weights_pack(w, j0, j1);
}

static inline void fr_weights_free(fr_weights *w) {
  fr_work_free(w->widened);
  fr_work_free(w->packed);
  free(w->active);
}

/* Forward product of a thread's units [j0, j1) of every gate block, for M rows of A [M,K]:
 * gate q's outputs C[m][q·qs + j − j0] = bias[q·H + j] + Σ_k A[m][k] W[q·H + j][k], rows of C
 * ldc apart (bias [G] or NULL: none). j0 is a multiple of FR_NR. */
FR_HOT void fr_forward_product(const fr_weights *w, int64_t M, const real *A, const real *bias,
                               real *C, int64_t ldc, int64_t qs, int64_t j0, int64_t j1) {
  const int64_t H = w->H, K = w->K, block = fr_panels(H) * K * FR_NR;
#define FR_BIAS(q) (bias ? bias + (q) * H + j0 : NULL)
#if FR_BF16
  if (w->bf16 && w->packed) {
    const int64_t ps = fr_pairs(K) * FR_NR * 2, block16 = fr_panels(H) * ps;
    if (w->amx) {  /* every gate in one call: A rounded once */
      rows_times_amx(M, j1 - j0, K, A, K, (const uint16_t *)w->packed + j0 / FR_NR * ps, ps,
                     (int)w->gates, block16, FR_BIAS(0), H, C, ldc, qs, 0);
      return;
    }
    for (int64_t q = 0; q < w->gates; q++)
      rows_times_bf16(M, j1 - j0, K, A, K, (const uint16_t *)w->packed + q * block16 +
                      j0 / FR_NR * ps, ps, FR_BIAS(q), C + q * qs, ldc, 0);
    return;
  }
#endif
  for (int64_t q = 0; q < w->gates; q++) {
    if (w->packed)
      rows_times(M, j1 - j0, K, A, K, w->packed + q * block + j0 / FR_NR * K * FR_NR, K * FR_NR,
                 FR_NR, FR_BIAS(q), C + q * qs, ldc, 0);
    else
      rows_dot(M, j1 - j0, K, A, K, w->W + (q * H + j0) * K, K, FR_BIAS(q), C + q * qs, ldc);
  }
#undef FR_BIAS
}

/* Forward, step t, a thread's rows [b0, b1) and units [j0, j1) of every gate block, for the rows
 * still running: a[b][q·H + j] = Σ_k h[b][k] W_hh[q·H + j][k], h [B,K], a [B,G]. */
FR_HOT void fr_step_forward(const fr_weights *w, int64_t t, const real *h, real *a, int64_t b0,
                            int64_t b1, int64_t j0, int64_t j1) {
  const int64_t G = w->gates * w->H, end = w->active[t] < b1 ? w->active[t] : b1;
  if (t == 0 && w->none0) {  /* h0 = 0: a = 0 */
    for (int64_t b = b0; b < end; b++)
      for (int64_t q = 0; q < w->gates; q++)
        memset(a + b * G + q * w->H + j0, 0, (size_t)(j1 - j0) * sizeof(real));
    return;
  }
  if (end > b0)
    fr_forward_product(w, end - b0, h + b0 * w->K, NULL, a + b0 * G + j0, G, w->H, j0, j1);
}

/* The input projection G_x = x W_ihᵀ + b inside the forward loop, so that it never exists over
 * all T: each thread computes its own units' columns (no barrier) for a chunk of Tc steps at a
 * time into a buffer that stays in L2, and the steps read it there. Over all T, G_x is T·B·G
 * values written to memory and read back, and at T·B·G ≥ 2^23 (32 MB in float32) its freshly
 * mapped pages alone cost a third of the projection's time. */
typedef struct {
  const real *x;     /* [T,B,I] */
  const real *bias;  /* [G] or NULL: b_ih, or (LSTM, RNN) b_ih + b_hh, where G_x's sums start */
  fr_weights w;      /* W_ih [G,I] */
  int64_t Tc;        /* steps per chunk */
  real *buf;         /* [Tc·B, G] in thread slices: thread p's at buf + Tc·B·gates·j0; then the
                        biases' sum [G] when both are given */
} fr_input;

/* Packs W_ih (or W_ih16, in bfloat16: fr_weights_bf16) as fr_weights_init does and allocates the
 * chunk buffer; with lengths [B], each step computes only the rows still running
 * (fr_active_rows). b_ih and b_hh (each [G] or NULL) are summed first, (b_ih + b_hh) as
 * F.linear(x, W_ih, b_ih + b_hh) has them on the traced path. Returns 0 or FASTRNN_ENOMEM
 * (nothing to free then). */
static inline int fr_input_init(fr_input *in, int gates, int64_t T, int64_t B, int64_t H,
                                int64_t I, const real *x, const real *W_ih, const real *b_ih,
                                const real *b_hh, const int64_t *lengths,
                                const uint16_t *W_ih16) {
  const int64_t G = gates * H;
  in->x = x;
  const int64_t rows = fr_rule(chunk_rows);  /* T·B rows a chunk (rules.def) */
  in->Tc = B >= rows ? 1 : (rows + B - 1) / B;
  if (in->Tc > T) in->Tc = T;
  if (fr_weights_init(&in->w, gates, T, B, H, I, W_ih, lengths, 0)) return FASTRNN_ENOMEM;
  /* in place for a step's few rows (inplace_min_H), but a chunk of input_pack_rows rows or more
   * is one product that pays for packing W_ih */
  if (T > 1 && in->Tc * B >= fr_rule(input_pack_rows) && fr_weights_packed(&in->w)) {
    fr_weights_free(&in->w);
    return FASTRNN_ENOMEM;
  }
  in->w.amx = fr_amx_rows(&in->w, in->Tc * B);
  if (W_ih16 && fr_weights_bf16(&in->w, W_ih16)) {
    fr_weights_free(&in->w);
    return FASTRNN_ENOMEM;
  }
  in->buf = fr_work_alloc((size_t)(in->Tc * B * G + (b_ih && b_hh ? G : 0)) * sizeof(real));
  if (!in->buf) {
    fr_weights_free(&in->w);
    return FASTRNN_ENOMEM;
  }
  in->bias = b_ih ? b_ih : b_hh;
  if (b_ih && b_hh) {
    real *sum = in->buf + in->Tc * B * G;
    for (int64_t g = 0; g < G; g++) sum[g] = b_ih[g] + b_hh[g];
    in->bias = sum;
  }
  return 0;
}

static inline void fr_input_free(fr_input *in) {
  fr_weights_free(&in->w);
  fr_work_free(in->buf);
}

/* Thread p's part of P (fr_part_of) at the start of a loop, with its share of W (w, and W_ih's,
 * in->w, unless `in` is NULL) packed — and, split by rows, after a barrier: every thread then
 * reads every panel. */
static inline fr_part fr_begin(int p, int P, int rows, int64_t B, int64_t H, const fr_weights *w,
                               const fr_input *in) {
  const fr_part q = fr_part_of(p, P, rows, B, H);
  fr_weights_pack_part(w, p, P);
  if (in) fr_weights_pack_part(&in->w, p, P);
  if (rows) {
    fr_barrier();
  }
  return q;
}

/* A thread's part of the chunk buffer: [Tc·(b1 − b0), gates, j1 − j0] (one of b0, j0 is 0). */
static inline real *fr_input_slice(const fr_input *in, int64_t B, const fr_part *q) {
  return in->buf + in->Tc * in->w.gates * (q->b0 * in->w.H + B * q->j0);
}

/* The thread's part (rows [b0, b1), units [j0, j1)) of G_x for the steps t0 .. min(t0 + Tc, T)
 * into its slice xc, [steps, b1 − b0, gates, j1 − j0] — for every row, or, given lengths, for
 * each step's rows still running (the others are never read: an ended row carries its state),
 * in one product when all rows are the thread's and all run, else one per step (packed lengths
 * 20–200, B = 32, H = I = 256, T = 200, Zen 4, 2 threads, inference, results bitwise the same:
 * LSTM 30.3 → 26.5 ms, GRU 22.6 → 19.7). The products' sums start from the bias, which a pass
 * over the chunk had added after them (1–2 % of a forward). */
FR_HOT void fr_input_chunk(const fr_input *in, int64_t t0, int64_t T, int64_t B, real *xc,
                           const fr_part *part) {
  const int64_t j0 = part->j0, j1 = part->j1, b0 = part->b0, M = part->b1 - part->b0;
  const int64_t n = j1 - j0, gates = in->w.gates, K = in->w.K;
  const int64_t t1 = t0 + in->Tc < T ? t0 + in->Tc : T;
  const int64_t *active = in->w.active;
  if (M == B && (!active || active[t1 - 1] == B)) {
    fr_forward_product(&in->w, (t1 - t0) * B, in->x + t0 * B * K, in->bias, xc, gates * n, n,
                       j0, j1);
    return;
  }
  for (int64_t t = t0; t < t1; t++) {
    const int64_t end = active && active[t] < part->b1 ? active[t] : part->b1;
    if (end > b0)
      fr_forward_product(&in->w, end - b0, in->x + (t * B + b0) * K, in->bias,
                         xc + (t - t0) * M * gates * n, gates * n, n, j0, j1);
  }
}

/* Backward product for a thread's output units [j0, j1) of K, M rows:
 * C[m][j] (+)= Σ_g A[m][g] W[g][j], A [M,G], C [M,K]. */
FR_HOT void fr_backward_product(const fr_weights *w, int64_t M, const real *A, real *C,
                                int64_t j0, int64_t j1, int accumulate) {
  const int64_t K = w->K, G = w->gates * w->H;
#if FR_BF16
  if (w->bf16 && w->packed) {
    const int64_t ps = fr_pairs(G) * FR_NR * 2;
    if (w->amx)
      rows_times_amx(M, j1 - j0, G, A, G, (const uint16_t *)w->packed + j0 / FR_NR * ps, ps, 1,
                     0, NULL, 0, C + j0, K, 0, accumulate);
    else
      rows_times_bf16(M, j1 - j0, G, A, G, (const uint16_t *)w->packed + j0 / FR_NR * ps, ps,
                      NULL, C + j0, K, accumulate);
    return;
  }
#endif
  if (w->packed)
    rows_times(M, j1 - j0, G, A, G, w->packed + j0 / FR_NR * G * FR_NR, G * FR_NR, FR_NR,
               NULL, C + j0, K, accumulate);
  else
    rows_times(M, j1 - j0, G, A, G, w->W + j0, FR_NR, K, NULL, C + j0, K, accumulate);
}

/* Backward, step t, a thread's rows [b0, b1) and output units [j0, j1) of K, for the rows still
 * running: dh[b][j] += Σ_g dA[b][g] W[g][j], dA [B,G], dh [B,K]. */
FR_HOT void fr_step_backward(const fr_weights *w, int64_t t, const real *dA, real *dh, int64_t b0,
                             int64_t b1, int64_t j0, int64_t j1) {
  const int64_t end = w->active[t] < b1 ? w->active[t] : b1;
  if ((t == 0 && w->none0) || end <= b0) return;  /* (none0: ∂L/∂h0 is not wanted) */
  fr_backward_product(w, end - b0, dA + b0 * w->gates * w->H, dh + b0 * w->K, j0, j1, 1);
}
/* Zeros units [j0, j1) of each of `blocks` blocks H apart in a row (a thread's part of a row of
 * gates: an ended sequence's). */
static inline void fr_zero_units(real *row, int64_t blocks, int64_t H, int64_t j0, int64_t j1) {
  for (int64_t q = 0; q < blocks; q++)
    memset(row + q * H + j0, 0, (size_t)(j1 - j0) * sizeof(real));
}

/* Row reductions for cells whose math needs a whole row of a step (loop.h: CELL_PHASES). */
/* The mean and 1/sqrt(biased variance + eps) of v [n]: two passes in a fixed order, summed in
 * double (a float32 sum's rounding, amplified by 1/σ in the LayerNorm backward, had made the
 * float32 results' error twice the same equations' in torch ops, at a cost of a few ns a row). */
static inline void fr_row_stats(const real *v, int64_t n, real eps, real *mean, real *rstd) {
  double s = 0, q = 0;
  #pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < n; j++) s += v[j];
  const double mu = s / (double)n;
  #pragma omp simd reduction(+ : q)
  for (int64_t j = 0; j < n; j++) q += (v[j] - mu) * (v[j] - mu);
  *mean = (real)mu;
  *rstd = (real)(1 / sqrt(q / (double)n + eps));
}

/* mean(d ⊙ g) and mean(d ⊙ g ⊙ v) over n values: what LayerNorm's backward subtracts (summed in
 * double, as fr_row_stats). */
static inline void fr_row_moments(const real *d, const real *g, const real *v, int64_t n,
                                  real *m1, real *m2) {
  double s = 0, q = 0;
  #pragma omp simd reduction(+ : s, q)
  for (int64_t j = 0; j < n; j++) {
    const double dg = (double)d[j] * g[j];
    s += dg;
    q += dg * v[j];
  }
  *m1 = (real)(s / (double)n);
  *m2 = (real)(q / (double)n);
}

/* ∂L/∂v of LN(v; g) = g ⊙ n over a row of `gates` blocks H apart, from d = ∂L/∂LN(v) and the
 * saved n and 1/σ, for units [j0, j1) of every block: 1/σ (d g − mean(d g) − n mean(d g n)),
 * the means over the whole row d, n [gates·H]. */
static inline void fr_ln_backward(const real *d, const real *g, const real *n, real rstd,
                                  int64_t gates, int64_t H, int64_t j0, int64_t j1, real *dv) {
  real m1, m2;
  fr_row_moments(d, g, n, gates * H, &m1, &m2);
  for (int64_t q = 0; q < gates; q++) {
    #pragma omp simd
    for (int64_t j = q * H + j0; j < q * H + j1; j++)
      dv[j] = rstd * (d[j] * g[j] - m1 - n[j] * m2);
  }
}

#if !FASTRNN_F64
#include "io16.h"
#endif
#endif
