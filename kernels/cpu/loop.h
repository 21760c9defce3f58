/* The one loop every cell runs: the steps in order, each the recurrent product (tiles.h) and then
 * the cell's pointwise math, the input projection a chunk ahead (fr_input), the threads' split
 * (by units, meeting at a barrier every step, or by rows), ragged lengths, an optional projection
 * h_t = r_t W_hrᵀ (LSTMP), and their BPTT. A cell file describes its cell and then includes this
 * file, which it instantiates — as each file is instantiated per element type and CPU variant —
 * with the cell's math inlined (a call through a pointer per row block would cost the small
 * cells their speed).
 *
 * The description, defined before the #include:
 *   CELL_GATES       gate blocks of H units: the recurrent product's width G = CELL_GATES·H
 *   CELL_BHH_INSIDE  1 when b_hh stays inside the step (GRU: r multiplies A_n only), 0 when G_x's
 *                    sums include it (fr_input)
 *   cell_t           the cell's own arrays: what its math saves for the backward and reads back
 *   cell_product(c, t, r_t)          [B,G]: where step t's product W_hh h_{t-1} goes (r_t: the
 *                                    step's output rows, for a cell whose product is its state)
 *   cell_forward(c, phase, t, b, j0, j1, bf16, ab, xb, xs, hp, rb, yb)
 *                    row b of step t, units [j0, j1): ab its product (gate blocks H apart),
 *                    xb G_x (blocks xs apart), hp h_{t-1}; writes r_t (rb) and y_t (yb, the same
 *                    row without a projection). bf16: the products ran in bfloat16.
 *   cell_carry(c, t, b, j0, j1)      row b has ended: carry the cell's other states
 *   cell_dproduct(c, t)              [B,G]: ∂L/∂A_t, which the backward product multiplies
 *   cell_backward(c, phase, t, b, j0, j1, dy, dh, dA)
 *                    row b of step t: dy ∂L/∂r_t from outside, dh the running ∂L/∂h_t (or NULL
 *                    with a projection: dy then holds all of ∂L/∂r_t); writes dA (row b of
 *                    cell_dproduct) and leaves in dh the part of ∂L/∂h_{t−1} that does not go
 *                    through W_hh (zero for most cells)
 *   cell_ended(c, t, b, j0, j1)      row b has ended: zero what the cell writes but dA
 * and, for a cell whose math needs whole rows of a step's values (LayerNorm's mean and variance):
 *   CELL_PHASES, CELL_BPHASES  the forward's and the backward's passes over a step's rows (1
 *                    unless defined): cell_forward and cell_backward take the pass as their
 *                    second argument; split by units, the threads meet at a barrier before every
 *                    forward pass after the first and every backward pass after the first, so a
 *                    pass may read whole rows of what the one before it wrote (fr_row_stats,
 *                    fr_row_moments in internal.h)
 *   CELL_WHOLE_PRODUCT  1: the first forward pass reads whole rows of the product (a barrier
 *                    before it too)
 *                    Every thread sums a row in the same fixed order: the results stay bitwise the
 *                    same for any thread count. */
#ifndef FASTRNN_CPU_LOOP_H
#define FASTRNN_CPU_LOOP_H
#ifndef CELL_PHASES
#define CELL_PHASES 1
#endif
#ifndef CELL_BPHASES
#define CELL_BPHASES 1
#endif
#ifndef CELL_WHOLE_PRODUCT
#define CELL_WHOLE_PRODUCT 0
#endif
/* The barriers a forward step meets split by units (the backward's: CELL_BPHASES), which the
 * thread count weighs (fr_team): LayerNorm LSTM T = 100, B = 1, H = 128 inference, Intel Xeon,
 * 0.52 ms on one thread against 0.59 on two. */
#define FR_FORWARD_BARRIERS (CELL_PHASES + CELL_WHOLE_PRODUCT)

/* A forward's arguments: T steps of B rows, H units, R = the state's size (H, or a projection's);
 * S state slots (T+1 keep every h_t for backward, 2 only the last two), Sg gate slots (T or 1).
 * G_x comes from gx [T,B,G] or, when `in` is set, is computed chunk by chunk from x. */
typedef struct {
  int64_t T, B, H, R, S, Sg;
  const real *gx;
  const fr_input *in;
  const fr_weights *w, *wr;  /* W_hh [G,R]; W_hr [R,H] or NULL */
  const int64_t *lengths;    /* [B] */
  real *y;                   /* [T,B,R] */
  real *hs;                  /* [S,B,R] */
  real *rs;                  /* [Sg,B,H]: r_t, with a projection */
} fr_loop;

/* h_t = r_t W_hrᵀ, step t, a thread's units [k0, k1) of R; y_t = h_t, or, past a sequence's
 * end, h_t = h_{t-1} and y_t = 0. r_t [B,H], h_prev, h_t, y_t [B,R]. */
static void fr_project(const fr_weights *wr, int64_t t, int64_t B, int64_t R,
                       const int64_t *lengths, const real *r_t, const real *h_prev, real *h_t,
                       real *y_t, int64_t k0, int64_t k1) {
  const size_t n = (size_t)(k1 - k0) * sizeof(real);
  fr_step_forward(wr, t, r_t, h_t, 0, B, k0, k1);
  for (int64_t b = 0; b < B; b++) {
    const int64_t o = b * R + k0;
    if (t >= lengths[b]) {
      memcpy(h_t + o, h_prev + o, n);
      memset(y_t + o, 0, n);
    } else {
      memcpy(y_t + o, h_t + o, n);
    }
  }
}

/* Thread p of P runs every step for its part (fr_part: its units [j0, j1) of every row, or all
 * units of its rows [b0, b1)) and, with a projection (split by units only), its units [k0, k1)
 * of R. */
static void fr_forward_part(int p, int P, int rows, const fr_loop *f, const cell_t *c) {
  const int64_t T = f->T, B = f->B, H = f->H, R = f->R, S = f->S, G = CELL_GATES * H;
  const int64_t BH = B * H, BR = B * R;
  const fr_input *in = f->in;
  const fr_weights *w = f->w, *wr = f->wr;
  const fr_part q = fr_begin(p, P, rows, B, H, w, in);
  const int64_t j0 = q.j0, j1 = q.j1, M = q.b1 - q.b0;
  int64_t k0, k1;
  fr_slice(R, p, P, &k0, &k1);
  if (wr) fr_weights_pack(wr, k0, k1);
  const size_t n = (size_t)(j1 - j0) * sizeof(real);
  /* G_x of row (t, b), gate q, unit j is xb[q·xs + j − j0]: in gx, or in the thread's chunk */
  real *xc = in ? fr_input_slice(in, B, &q) : NULL;
  const int64_t xs = in ? j1 - j0 : H, xrow = in ? CELL_GATES * (j1 - j0) : G;
  for (int64_t t = 0; t < T; t++) {
    const real *h_prev = f->hs + (t % S) * BR;
    real *h_t = f->hs + ((t + 1) % S) * BR;
    real *r_t = wr ? f->rs + (t % f->Sg) * BH : h_t;
    real *a = cell_product(c, t, r_t);
    if (in && t % in->Tc == 0) fr_input_chunk(in, t, T, B, xc, &q);
    const real *xt = in ? xc + (t % in->Tc) * M * xrow : f->gx + (t * B + q.b0) * G + j0;
    fr_step_forward(w, t, h_prev, a, q.b0, q.b1, j0, j1);
    for (int phase = 0; phase < CELL_PHASES; phase++) {
      if ((phase || CELL_WHOLE_PRODUCT) && !rows) {
        fr_barrier();  /* the pass reads whole rows */
      }
      for (int64_t b = q.b0; b < q.b1; b++) {
        /* with a projection y_t comes from fr_project */
        real *rb = r_t + b * H, *yb = wr ? rb : f->y + (t * B + b) * H;
        if (t >= f->lengths[b]) {  /* past this sequence's end: carry the state, output zero */
          if (phase) continue;
          if (!wr) memcpy(rb + j0, h_prev + b * H + j0, n);
          cell_carry(c, t, b, j0, j1);
          memset(yb + j0, 0, n);  /* with a projection: r_t = 0, so dW_hr gets nothing there */
          continue;
        }
        const real *xb = xt + (b - q.b0) * xrow - j0, *hp = h_prev + b * H;
#if FR_BF16
        if (w->bf16) {  /* (a call of its own: inlined with its own constant) */
          cell_forward(c, phase, t, b, j0, j1, 1, a + b * G, xb, xs, hp, rb, yb);
          continue;
        }
#endif
        cell_forward(c, phase, t, b, j0, j1, 0, a + b * G, xb, xs, hp, rb, yb);
      }
    }
    if (!rows) {
      fr_barrier();  /* the next product (step t+1's, or the projection's) reads all */
    }
    if (wr) {
      fr_project(wr, t, B, R, f->lengths, r_t, h_prev, h_t, f->y + t * BR, k0, k1);
      fr_barrier();
    }
  }
}

/* Runs the forward f (f->w, f->wr set here from W_hh [G,R] and W_hr [R,H] or NULL; W_hh16: W_hh in
 * bfloat16 instead) from h0 [B,R] (NULL: zeros) and writes h_n [B,R]. The cell's other states
 * are the caller's, before and after. */
static int fr_forward(const char *fn, fr_loop *f, const cell_t *c, const real *h0,
                      const real *W_hh, const real *W_hr, const uint16_t *W_hh16, real *h_n) {
  const int64_t T = f->T, B = f->B, H = f->H, R = f->R, G = CELL_GATES * H;
  fr_weights w, wr;
  if (fr_weights_init(&w, CELL_GATES, T, B, H, R, W_hh, f->lengths, 0))
    return fr_nomem(fn, "W_hh's workspace");
  if (W_hh16 && fr_weights_bf16(&w, W_hh16)) {
    fr_weights_free(&w);
    return fr_nomem(fn, "W_hh's workspace");
  }
  if (W_hr && fr_weights_init(&wr, 1, T, B, R, H, W_hr, f->lengths, 0)) {
    fr_weights_free(&w);
    return fr_nomem(fn, "W_hr's workspace");
  }
  f->w = &w, f->wr = W_hr ? &wr : NULL;
  fr_state0(f->hs, h0, B * R, &w);
  /* a step's multiply-adds: B·G·R for the gates, B·R·H more for a projection */
  const int P = fr_team(T, B, W_hr ? (CELL_GATES + 1) * R : G, H, FR_FORWARD_BARRIERS);
  const int rows = !W_hr && fr_by_rows(P, T, B, f->lengths, &w);  /* (a projection: by units) */
  FR_PARALLEL(fr_forward_part(fr_thread(), fr_team_size(), rows, f, c));
  memcpy(h_n, f->hs + (T % f->S) * B * R, (size_t)(B * R) * sizeof(real));
  fr_weights_free(&w);
  if (W_hr) fr_weights_free(&wr);
  return FASTRNN_OK;
}

/* fr_forward with G_x computed inside the loop from x [T,B,I], W_ih [G,I] (or W_ih16, in
 * bfloat16) and the biases [G] (b_hh only where CELL_BHH_INSIDE is 0; each may be NULL). Unused
 * by the LayerNorm cells, which take V = x W_ihᵀ whole (each step normalises its rows). */
__attribute__((unused)) static int fr_forward_x(
    const char *fn, fr_loop *f, const cell_t *c, int64_t I, const real *x, const real *W_ih,
    const real *b_ih, const real *b_hh, const real *h0, const real *W_hh, const real *W_hr,
    const uint16_t *W_ih16, const uint16_t *W_hh16, real *h_n) {
  fr_input in;
  if (I < 1) return fr_fail(fn, "expected I >= 1, got I=%lld", (long long)I);
  if (fr_input_init(&in, CELL_GATES, f->T, f->B, f->H, I, x, W_ih, b_ih,
                    CELL_BHH_INSIDE ? NULL : b_hh, f->lengths, W_ih16))
    return fr_nomem(fn, "W_ih's workspace");
  f->gx = NULL, f->in = &in;
  const int e = fr_forward(fn, f, c, h0, W_hh, W_hr, W_hh16, h_n);
  fr_input_free(&in);
  return e;
}

/* A backward's arguments: dy [T,B,R], the running ∂L/∂h_t dh [B,R] (starting from dh_n); with a
 * projection each step's ∂L/∂h_t is kept in du [T,B,R] (zero past a sequence's end) for dW_hr,
 * and ∂L/∂r_t = ∂L/∂h_t W_hr goes through dr [B,H]. */
typedef struct {
  int64_t T, B, H, R;
  const real *dy;
  const fr_weights *w, *wr;
  const int64_t *lengths;
  real *dh, *du, *dr;
} fr_bloop;

/* Thread p of P walks back in time for its part (fr_part: units [j0, j1) of H for every row and
 * [k0, k1) of R, or, without a projection, all units of rows [b0, b1)). A sequence that has
 * ended carries its ∂L/∂h: its rows of dA are zero, so adding dA·W_hh leaves them as they are. */
static void fr_backward_part(int p, int P, int rows, const fr_bloop *f, const cell_t *c) {
  const int64_t T = f->T, B = f->B, H = f->H, R = f->R, G = CELL_GATES * H;
  const fr_weights *w = f->w, *wr = f->wr;
  real *dh0 = f->dh;
  const fr_part part = fr_begin(p, P, rows, B, H, w, NULL);  /* (a projection: by units) */
  const int64_t j0 = part.j0, j1 = part.j1, b0 = part.b0, b1 = part.b1;
  int64_t k0 = 0, k1 = R;
  if (!rows) fr_slice(R, p, P, &k0, &k1);
  if (wr) fr_weights_pack(wr, j0, j1);
  const size_t n = (size_t)(j1 - j0) * sizeof(real), nk = (size_t)(k1 - k0) * sizeof(real);
  for (int64_t t = T - 1; t >= 0; t--) {
    if (wr) {  /* ∂L/∂h_t = dy_t + what step t+1 sent back; then ∂L/∂r_t = ∂L/∂h_t W_hr */
      for (int64_t b = 0; b < B; b++) {
        real *dhb = dh0 + b * R, *ub = f->du + (t * B + b) * R;
        const real *dyb = f->dy + (t * B + b) * R;
        if (t >= f->lengths[b]) {
          memset(ub + k0, 0, nk);
          continue;
        }
        for (int64_t k = k0; k < k1; k++) ub[k] = dhb[k] += dyb[k];
      }
      fr_barrier();  /* the product below reads all of ∂L/∂h_t */
      for (int64_t b = 0; b < wr->active[t]; b++) memset(f->dr + b * H + j0, 0, n);
      fr_step_backward(wr, t, dh0, f->dr, 0, B, j0, j1);
    }
    real *dA = cell_dproduct(c, t);
    for (int phase = 0; phase < CELL_BPHASES; phase++) {
      if (phase && !rows) {
        fr_barrier();  /* the pass reads whole rows */
      }
      for (int64_t b = b0; b < b1; b++) {
        real *dAb = dA + b * G;
        if (t >= f->lengths[b]) {
          if (phase) continue;
          fr_zero_units(dAb, CELL_GATES, H, j0, j1);
          cell_ended(c, t, b, j0, j1);
          continue;
        }
        if (wr)
          cell_backward(c, phase, t, b, j0, j1, f->dr + b * H, NULL, dAb);
        else
          cell_backward(c, phase, t, b, j0, j1, f->dy + (t * B + b) * H, dh0 + b * H, dAb);
      }
    }
    if (!rows) {
      fr_barrier();  /* the product below reads all of dA_t (and ∂L/∂h_t has been read) */
    }
    if (wr)
      for (int64_t b = 0; b < B; b++)
        if (t < f->lengths[b]) memset(dh0 + b * R + k0, 0, nk);
    fr_step_backward(w, t, dA, dh0, b0, b1, k0, k1);
  }
}

/* Runs the backward f (f->w, f->wr, f->dh, f->dr set here) with W_hh [G,R] and W_hr [R,H] or
 * NULL, from dh_n [B,R] into dh0 [B,R] (NULL: not wanted). The cell's other states' gradients
 * are the caller's, before and after. */
static int fr_backward(const char *fn, fr_bloop *f, const cell_t *c, const real *dh_n,
                       const real *W_hh, const real *W_hr, real *dh0) {
  const int64_t T = f->T, B = f->B, H = f->H, R = f->R;
  fr_weights w, wr;
  real *dr = NULL;
  if (fr_weights_init(&w, CELL_GATES, T, B, H, R, W_hh, f->lengths, 1))
    return fr_nomem(fn, "W_hh's workspace");
  if (W_hr && fr_weights_init(&wr, 1, T, B, R, H, W_hr, f->lengths, 1)) {
    fr_weights_free(&w);
    return fr_nomem(fn, "W_hr's workspace");
  }
  if (W_hr && !(dr = fr_work_alloc((size_t)(B * H) * sizeof(real)))) {
    fr_weights_free(&wr);
    fr_weights_free(&w);
    return fr_nomem(fn, "∂L/∂r_t");
  }
  real *dh = fr_dstate0(dh0, dh_n, B * R, &w);
  if (!dh) {
    fr_weights_free(&w);
    if (W_hr) fr_weights_free(&wr);
    fr_work_free(dr);
    return fr_nomem(fn, "∂L/∂h_t");
  }
  f->w = &w, f->wr = W_hr ? &wr : NULL, f->dh = dh, f->dr = dr;
  const int P = fr_backward_team(&w, T, W_hr != NULL, B,
                                 W_hr ? (CELL_GATES + 1) * R : CELL_GATES * H, H, CELL_BPHASES);
  const int rows = !W_hr && fr_by_rows(P, T, B, f->lengths, &w);
  FR_PARALLEL(fr_backward_part(fr_thread(), fr_team_size(), rows, f, c));
  fr_weights_free(&w);
  if (W_hr) fr_weights_free(&wr);
  fr_work_free(dr);
  fr_dstate0_free(dh, dh0);
  return FASTRNN_OK;
}
#endif
