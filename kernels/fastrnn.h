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
 * Symbols: fastrnn_<cell>_<pass>_<dtype>[_cuda], cell ∈ rnn_tanh, rnn_relu, lstm, lstmp, gru
 * (and, CPU only, ln_lstm, ln_gru), pass ∈ forward, forward_infer, backward (and, CPU only,
 * forward_x[_infer]),
 * dtype ∈ f32, f64. On CUDA every pointer is device memory and `stream` is the caller's
 * cudaStream_t (NULL: the default stream); lengths values are checked by the caller there. Each
 * returns FASTRNN_OK (0) or an error code, with a message from fastrnn_last_error()
 * (thread-local).
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

/* Elman RNN: h_t = f(G_x[t] + h_{t-1} W_hhᵀ), f = tanh or relu. */
int fastrnn_rnn_tanh_forward_f32(int64_t T, int64_t B, int64_t H,
    const float *gx,          /* [T,B,H] */
    const float *h0,          /* [B,H]   */
    const float *W_hh,        /* [H,H]   */
    const int64_t *lengths,   /* [B]     */
    float *y,                 /* [T,B,H] */
    float *h_n,               /* [B,H]   */
    float *hs);               /* [S,B,H] h_0..h_T */
int fastrnn_rnn_tanh_forward_infer_f32(int64_t T, int64_t B, int64_t H, const float *gx,
    const float *h0, const float *W_hh, const int64_t *lengths, float *y, float *h_n,
    float *hs);               /* [2,B,H] scratch */
int fastrnn_rnn_tanh_backward_f32(int64_t T, int64_t B, int64_t H,
    const float *dy,          /* [T,B,H]   */
    const float *dh_n,        /* [B,H]     */
    const float *hs,          /* [T+1,B,H] from forward */
    const float *W_hh,        /* [H,H]     */
    const int64_t *lengths,   /* [B]       */
    float *dA,                /* [T,B,H]   ∂L/∂(pre-activation) = ∂L/∂G_x */
    float *dh0);              /* [B,H]     */
int fastrnn_rnn_relu_forward_f32(int64_t T, int64_t B, int64_t H, const float *gx,
    const float *h0, const float *W_hh, const int64_t *lengths, float *y, float *h_n, float *hs);
int fastrnn_rnn_relu_forward_infer_f32(int64_t T, int64_t B, int64_t H, const float *gx,
    const float *h0, const float *W_hh, const int64_t *lengths, float *y, float *h_n, float *hs);
int fastrnn_rnn_relu_backward_f32(int64_t T, int64_t B, int64_t H, const float *dy,
    const float *dh_n, const float *hs, const float *W_hh, const int64_t *lengths, float *dA,
    float *dh0);

/* LSTM: a_t = G_x[t] + h_{t-1} W_hhᵀ; c_t = σ(f) c_{t-1} + σ(i) tanh(g); h_t = σ(o) tanh(c_t). */
int fastrnn_lstm_forward_f32(int64_t T, int64_t B, int64_t H,
    const float *gx,          /* [T,B,4H] */
    const float *h0,          /* [B,H]    */
    const float *c0,          /* [B,H]    */
    const float *W_hh,        /* [4H,H]   */
    const int64_t *lengths,   /* [B]      */
    float *y,                 /* [T,B,H]  */
    float *h_n,               /* [B,H]    */
    float *c_n,               /* [B,H]    */
    float *gates,             /* [T,B,4H] activated i, f, g, o (forward_infer: [1,B,4H]) */
    float *cs,                /* [S,B,H]  c_0..c_T */
    float *hs);               /* [S,B,H]  h_0..h_T */
int fastrnn_lstm_forward_infer_f32(int64_t T, int64_t B, int64_t H, const float *gx,
    const float *h0, const float *c0, const float *W_hh, const int64_t *lengths, float *y,
    float *h_n, float *c_n, float *gates, float *cs, float *hs);
int fastrnn_lstm_backward_f32(int64_t T, int64_t B, int64_t H,
    const float *dy,          /* [T,B,H]   */
    const float *dh_n,        /* [B,H]     */
    const float *dc_n,        /* [B,H]     */
    const float *gates,       /* [T,B,4H]  from forward */
    const float *cs,          /* [T+1,B,H] from forward */
    const float *W_hh,        /* [4H,H]    */
    const int64_t *lengths,   /* [B]       */
    float *dA,                /* [T,B,4H]  ∂L/∂a_t = ∂L/∂G_x */
    float *dh0,               /* [B,H]     */
    float *dc0);              /* [B,H]     */
/* The forwards with the input projection inside (the CPU library only): G_x = x W_ihᵀ + b_ih
 * (+ b_hh) is computed a chunk of steps at a time as the loop needs it, never stored over all T.
 * Otherwise as the forwards above. Each bias may be NULL; GRU takes only b_ih here (its b_hh
 * belongs to A). Two biases rather than their sum: a caller keeps no summed copy that could go
 * stale when a bias is written in place. */
int fastrnn_rnn_tanh_forward_x_f32(int64_t T, int64_t B, int64_t I, int64_t H,
    const float *x,           /* [T,B,I] */
    const float *W_ih,        /* [H,I]   */
    const float *b_ih,        /* [H]     */
    const float *b_hh,        /* [H]     */
    const float *h0, const float *W_hh, const int64_t *lengths, float *y, float *h_n, float *hs);
int fastrnn_rnn_tanh_forward_x_infer_f32(int64_t T, int64_t B, int64_t I, int64_t H,
    const float *x, const float *W_ih, const float *b_ih, const float *b_hh, const float *h0,
    const float *W_hh, const int64_t *lengths, float *y, float *h_n, float *hs);
int fastrnn_rnn_relu_forward_x_f32(int64_t T, int64_t B, int64_t I, int64_t H,
    const float *x, const float *W_ih, const float *b_ih, const float *b_hh, const float *h0,
    const float *W_hh, const int64_t *lengths, float *y, float *h_n, float *hs);
int fastrnn_rnn_relu_forward_x_infer_f32(int64_t T, int64_t B, int64_t I, int64_t H,
    const float *x, const float *W_ih, const float *b_ih, const float *b_hh, const float *h0,
    const float *W_hh, const int64_t *lengths, float *y, float *h_n, float *hs);
int fastrnn_lstm_forward_x_f32(int64_t T, int64_t B, int64_t I, int64_t H,
    const float *x,           /* [T,B,I]  */
    const float *W_ih,        /* [4H,I]   */
    const float *b_ih,        /* [4H]     */
    const float *b_hh,        /* [4H]     */
    const float *h0, const float *c0, const float *W_hh, const int64_t *lengths, float *y,
    float *h_n, float *c_n, float *gates, float *cs, float *hs);
int fastrnn_lstm_forward_x_infer_f32(int64_t T, int64_t B, int64_t I, int64_t H,
    const float *x, const float *W_ih, const float *b_ih, const float *b_hh, const float *h0,
    const float *c0, const float *W_hh, const int64_t *lengths, float *y, float *h_n,
    float *c_n, float *gates, float *cs, float *hs);

/* LSTMP, the LSTM with a projection (forward_x: the CPU library only): r_t = σ(o) tanh(c_t) [B,H] and
 * h_t = r_t W_hrᵀ [B,R], which is y_t and what the next step's W_hh [4H,R] multiplies. Otherwise as
 * the LSTM functions above, with h0, h_n, y and hs R wide; rs keeps r_t for dW_hr. The backward
 * returns each step's ∂L/∂h_t in du (zero past a sequence's end): dW_hr = Σ_t du_tᵀ r_t. */
int fastrnn_lstmp_forward_f32(int64_t T, int64_t B, int64_t H, int64_t R,
    const float *gx,          /* [T,B,4H] */
    const float *h0,          /* [B,R]    */
    const float *c0,          /* [B,H]    */
    const float *W_hh,        /* [4H,R]   */
    const float *W_hr,        /* [R,H]    */
    const int64_t *lengths,   /* [B]      */
    float *y,                 /* [T,B,R]  */
    float *h_n,               /* [B,R]    */
    float *c_n,               /* [B,H]    */
    float *gates,             /* [T,B,4H] (forward_infer: [1,B,4H]) */
    float *cs,                /* [S,B,H]  c_0..c_T */
    float *hs,                /* [S,B,R]  h_0..h_T */
    float *rs);               /* [T,B,H]  r_1..r_T (forward_infer: [1,B,H]) */
int fastrnn_lstmp_forward_infer_f32(int64_t T, int64_t B, int64_t H, int64_t R,
    const float *gx, const float *h0, const float *c0, const float *W_hh, const float *W_hr,
    const int64_t *lengths, float *y, float *h_n, float *c_n, float *gates, float *cs,
    float *hs, float *rs);
int fastrnn_lstmp_forward_x_f32(int64_t T, int64_t B, int64_t I, int64_t H, int64_t R,
    const float *x, const float *W_ih, const float *b_ih, const float *b_hh, const float *h0,
    const float *c0, const float *W_hh, const float *W_hr, const int64_t *lengths, float *y,
    float *h_n, float *c_n, float *gates, float *cs, float *hs, float *rs);
int fastrnn_lstmp_forward_x_infer_f32(int64_t T, int64_t B, int64_t I, int64_t H, int64_t R,
    const float *x, const float *W_ih, const float *b_ih, const float *b_hh, const float *h0,
    const float *c0, const float *W_hh, const float *W_hr, const int64_t *lengths, float *y,
    float *h_n, float *c_n, float *gates, float *cs, float *hs, float *rs);
int fastrnn_lstmp_backward_f32(int64_t T, int64_t B, int64_t H, int64_t R,
    const float *dy,          /* [T,B,R]   */
    const float *dh_n,        /* [B,R]     */
    const float *dc_n,        /* [B,H]     */
    const float *gates,       /* [T,B,4H]  from forward */
    const float *cs,          /* [T+1,B,H] from forward */
    const float *W_hh,        /* [4H,R]    */
    const float *W_hr,        /* [R,H]     */
    const int64_t *lengths,   /* [B]       */
    float *dA,                /* [T,B,4H]  ∂L/∂a_t = ∂L/∂G_x */
    float *dh0,               /* [B,R]     */
    float *dc0,               /* [B,H]     */
    float *du);               /* [T,B,R]   ∂L/∂h_t */

/* GRU (torch's form): A = h_{t-1} W_hhᵀ + b_hh; r = σ(G_x,r + A_r); z = σ(G_x,z + A_z);
 * n = tanh(G_x,n + r A_n); h_t = (1-z) n + z h_{t-1}. */
int fastrnn_gru_forward_f32(int64_t T, int64_t B, int64_t H,
    const float *gx,          /* [T,B,3H] */
    const float *h0,          /* [B,H]    */
    const float *W_hh,        /* [3H,H]   */
    const float *b_hh,        /* [3H]     */
    const int64_t *lengths,   /* [B]      */
    float *y,                 /* [T,B,H]  */
    float *h_n,               /* [B,H]    */
    float *gates,             /* [T,B,3H] activated r, z, n (forward_infer: [1,B,3H]) */
    float *a_n,               /* [T,B,H]  A_n (forward_infer: [1,B,H]) */
    float *hs);               /* [S,B,H]  h_0..h_T */
int fastrnn_gru_forward_infer_f32(int64_t T, int64_t B, int64_t H, const float *gx,
    const float *h0, const float *W_hh, const float *b_hh, const int64_t *lengths, float *y,
    float *h_n, float *gates, float *a_n, float *hs);
int fastrnn_gru_backward_f32(int64_t T, int64_t B, int64_t H,
    const float *dy,          /* [T,B,H]   */
    const float *dh_n,        /* [B,H]     */
    const float *gates,       /* [T,B,3H]  from forward */
    const float *a_n,         /* [T,B,H]   from forward */
    const float *hs,          /* [T+1,B,H] from forward */
    const float *W_hh,        /* [3H,H]    */
    const int64_t *lengths,   /* [B]       */
    float *dGx,               /* [T,B,3H]  ∂L/∂G_x */
    float *dA_n,              /* [T,B,H]   ∂L/∂A_n = dGx's n block × r (∂L/∂A's r and z
                                           blocks are dGx's: dW_hh = Σ_t dA_tᵀ h_{t-1}) */
    float *dh0);              /* [B,H]     */
int fastrnn_gru_forward_x_f32(int64_t T, int64_t B, int64_t I, int64_t H,
    const float *x,           /* [T,B,I]  */
    const float *W_ih,        /* [3H,I]   */
    const float *b_ih,        /* [3H]     */
    const float *h0, const float *W_hh, const float *b_hh, const int64_t *lengths, float *y,
    float *h_n, float *gates, float *a_n, float *hs);
int fastrnn_gru_forward_x_infer_f32(int64_t T, int64_t B, int64_t I, int64_t H,
    const float *x, const float *W_ih, const float *b_ih, const float *h0, const float *W_hh,
    const float *b_hh, const int64_t *lengths, float *y, float *h_n, float *gates, float *a_n,
    float *hs);
/* LayerNorm LSTM (CPU only; fastrnn.reference.ln_lstm_forward), LN(v; γ) = γ (v − mean v) /
 * sqrt(var v + 1e-5) over a whole row: a_t = LN(V_t; g_ih) + LN(h_{t-1} W_hhᵀ; g_hh) + b_ih + b_hh,
 * where the caller takes V = x W_ihᵀ over all T·B rows; c_t = σ(f) c_{t-1} + σ(i) tanh(g);
 * h_t = σ(o) tanh(LN(c_t; g_c) + b_c). The backward returns ∂L/∂a (dA: db = Σ dA, dg_ih = Σ dA ⊙
 * nx, dg_hh = Σ dA ⊙ nh), ∂L/∂V (dV: dx = dV W_ih, dW_ih = Σ dVᵀ x), ∂L/∂(h_{t-1} W_hhᵀ) (dAh:
 * dW_hh = Σ_t dAh_tᵀ h_{t-1}) and ∂L/∂u, u = LN(c_t; g_c) + b_c (du: dg_c = Σ du ⊙ nc, db_c =
 * Σ du). Saved rows past a sequence's end are zero. */
int fastrnn_ln_lstm_forward_f32(int64_t T, int64_t B, int64_t H,
    const float *xv,          /* [T,B,4H] V = x W_ihᵀ */
    const float *g_ih,        /* [4H]     */
    const float *b_ih,        /* [4H] or NULL */
    const float *b_hh,        /* [4H] or NULL */
    const float *h0,          /* [B,H]    */
    const float *c0,          /* [B,H]    */
    const float *W_hh,        /* [4H,H]   */
    const float *g_hh,        /* [4H]     */
    const float *g_c,         /* [H]      */
    const float *b_c,         /* [H]      */
    const int64_t *lengths,   /* [B]      */
    float *y,                 /* [T,B,H]  */
    float *h_n,               /* [B,H]    */
    float *c_n,               /* [B,H]    */
    float *gates,             /* [T,B,4H] activated i, f, g, o (forward_infer: [1,B,4H]) */
    float *nx,                /* [T,B,4H] the normalised V_t (forward_infer: [1,B,4H]) */
    float *rx,                /* [T,B]    its 1/σ (forward_infer: [1,B]) */
    float *nh,                /* [T,B,4H] the normalised h_{t-1} W_hhᵀ (forward_infer: [1,B,4H]) */
    float *rh,                /* [T,B]    its 1/σ (forward_infer: [1,B]) */
    float *cs,                /* [S,B,H]  c_0..c_T */
    float *nc,                /* [T,B,H]  the normalised c_t (forward_infer: [1,B,H]) */
    float *rc,                /* [T,B]    its 1/σ (forward_infer: [1,B]) */
    float *hs);               /* [S,B,H]  h_0..h_T */
int fastrnn_ln_lstm_forward_infer_f32(int64_t T, int64_t B, int64_t H, const float *xv,
    const float *g_ih, const float *b_ih, const float *b_hh, const float *h0, const float *c0,
    const float *W_hh, const float *g_hh, const float *g_c, const float *b_c,
    const int64_t *lengths, float *y, float *h_n, float *c_n, float *gates, float *nx,
    float *rx, float *nh, float *rh, float *cs, float *nc, float *rc, float *hs);
int fastrnn_ln_lstm_backward_f32(int64_t T, int64_t B, int64_t H,
    const float *dy,          /* [T,B,H]   */
    const float *dh_n,        /* [B,H]     */
    const float *dc_n,        /* [B,H]     */
    const float *gates, const float *nx, const float *rx, const float *nh, const float *rh,
    const float *cs, const float *nc, const float *rc,   /* from forward */
    const float *W_hh,        /* [4H,H]    */
    const float *g_ih, const float *g_hh, const float *g_c, const float *b_c,
    const int64_t *lengths,   /* [B]       */
    float *dA,                /* [T,B,4H]  ∂L/∂a */
    float *dV,                /* [T,B,4H]  ∂L/∂V */
    float *dAh,               /* [T,B,4H]  ∂L/∂(h_{t-1} W_hhᵀ) */
    float *du,                /* [T,B,H]   ∂L/∂u */
    float *dh0,               /* [B,H]     */
    float *dc0);              /* [B,H]     */
/* LayerNorm GRU (CPU only; fastrnn.reference.ln_gru_forward): x̂ = LN(V_t; g_ih) + b_ih, where the
 * caller takes V = x W_ihᵀ over all T·B rows; ĥ = LN(h_{t-1} W_hhᵀ; g_hh) + b_hh; r, z, n and h_t
 * as the GRU's. The backward returns ∂L/∂x̂ (dX: db_ih = Σ dX, dg_ih = Σ dX ⊙ nx), ∂L/∂ĥ (dHh:
 * db_hh = Σ dHh, dg_hh = Σ dHh ⊙ nh), ∂L/∂V (dV) and ∂L/∂(h_{t-1} W_hhᵀ) (dAh). */
int fastrnn_ln_gru_forward_f32(int64_t T, int64_t B, int64_t H,
    const float *xv,          /* [T,B,3H] V = x W_ihᵀ */
    const float *g_ih,        /* [3H]     */
    const float *b_ih,        /* [3H] or NULL */
    const float *h0,          /* [B,H]    */
    const float *W_hh,        /* [3H,H]   */
    const float *g_hh,        /* [3H]     */
    const float *b_hh,        /* [3H] or NULL */
    const int64_t *lengths,   /* [B]      */
    float *y,                 /* [T,B,H]  */
    float *h_n,               /* [B,H]    */
    float *gates,             /* [T,B,3H] activated r, z, n (forward_infer: [1,B,3H]) */
    float *a_n,               /* [T,B,H]  ĥ_n (forward_infer: [1,B,H]) */
    float *nx,                /* [T,B,3H] the normalised V_t (forward_infer: [1,B,3H]) */
    float *rx,                /* [T,B]    its 1/σ (forward_infer: [1,B]) */
    float *nh,                /* [T,B,3H] the normalised h_{t-1} W_hhᵀ (forward_infer: [1,B,3H]) */
    float *rh,                /* [T,B]    its 1/σ (forward_infer: [1,B]) */
    float *hs);               /* [S,B,H]  h_0..h_T */
int fastrnn_ln_gru_forward_infer_f32(int64_t T, int64_t B, int64_t H, const float *xv,
    const float *g_ih, const float *b_ih, const float *h0, const float *W_hh, const float *g_hh,
    const float *b_hh, const int64_t *lengths, float *y, float *h_n, float *gates, float *a_n,
    float *nx, float *rx, float *nh, float *rh, float *hs);
int fastrnn_ln_gru_backward_f32(int64_t T, int64_t B, int64_t H,
    const float *dy,          /* [T,B,H]   */
    const float *dh_n,        /* [B,H]     */
    const float *gates, const float *a_n, const float *nx, const float *rx, const float *nh,
    const float *rh,          /* from forward */
    const float *hs,          /* [T+1,B,H] from forward */
    const float *W_hh,        /* [3H,H]    */
    const float *g_ih, const float *g_hh,
    const int64_t *lengths,   /* [B]       */
    float *dX,                /* [T,B,3H]  ∂L/∂x̂ */
    float *dHh,               /* [T,B,3H]  ∂L/∂ĥ */
    float *dV,                /* [T,B,3H]  ∂L/∂V */
    float *dAh,               /* [T,B,3H]  ∂L/∂(h_{t-1} W_hhᵀ) */
    float *dh0);              /* [B,H]     */
/* ∂L/∂x = ∂L/∂G_x W_ih for every row at once (CPU only): the input gradient of any cell. */
int fastrnn_input_grad_f32(int64_t T, int64_t B, int64_t I, int64_t G,
    const float *dG,          /* [T,B,G] ∂L/∂G_x */
    const float *W_ih,        /* [G,I]   */
    float *dx);               /* [T,B,I] */
/* The forwards with G_x inside for a bfloat16 module (CPU and f32 only), keeping what backward
 * needs (_bf16) or not (_infer_bf16): every argument and result in bfloat16 (each value the
 * upper 16 bits of a float32; b_ih, b_hh, h0, c0 may be NULL as in the f32 calls), the scratch
 * and saved buffers (gates, cs, a_n, hs) in float32. The results are bitwise those of the f32
 * call on the arguments widened, rounded to nearest even; with bfloat16 products
 * (fastrnn_set_bf16_products, AVX-512-BF16) W_ih and W_hh are packed as they lie. */
int fastrnn_rnn_tanh_forward_x_bf16_f32(int64_t T, int64_t B, int64_t I, int64_t H,
    const uint16_t *x, const uint16_t *W_ih, const uint16_t *b_ih, const uint16_t *b_hh,
    const uint16_t *h0, const uint16_t *W_hh, const int64_t *lengths, uint16_t *y,
    uint16_t *h_n, float *hs);
int fastrnn_rnn_tanh_forward_x_infer_bf16_f32(int64_t T, int64_t B, int64_t I, int64_t H,
    const uint16_t *x, const uint16_t *W_ih, const uint16_t *b_ih, const uint16_t *b_hh,
    const uint16_t *h0, const uint16_t *W_hh, const int64_t *lengths, uint16_t *y,
    uint16_t *h_n, float *hs);
int fastrnn_rnn_relu_forward_x_bf16_f32(int64_t T, int64_t B, int64_t I, int64_t H,
    const uint16_t *x, const uint16_t *W_ih, const uint16_t *b_ih, const uint16_t *b_hh,
    const uint16_t *h0, const uint16_t *W_hh, const int64_t *lengths, uint16_t *y,
    uint16_t *h_n, float *hs);
int fastrnn_rnn_relu_forward_x_infer_bf16_f32(int64_t T, int64_t B, int64_t I, int64_t H,
    const uint16_t *x, const uint16_t *W_ih, const uint16_t *b_ih, const uint16_t *b_hh,
    const uint16_t *h0, const uint16_t *W_hh, const int64_t *lengths, uint16_t *y,
    uint16_t *h_n, float *hs);
int fastrnn_lstm_forward_x_bf16_f32(int64_t T, int64_t B, int64_t I, int64_t H,
    const uint16_t *x, const uint16_t *W_ih, const uint16_t *b_ih, const uint16_t *b_hh,
    const uint16_t *h0, const uint16_t *c0, const uint16_t *W_hh, const int64_t *lengths,
    uint16_t *y, uint16_t *h_n, uint16_t *c_n, float *gates, float *cs, float *hs);
int fastrnn_lstm_forward_x_infer_bf16_f32(int64_t T, int64_t B, int64_t I, int64_t H,
    const uint16_t *x, const uint16_t *W_ih, const uint16_t *b_ih, const uint16_t *b_hh,
    const uint16_t *h0, const uint16_t *c0, const uint16_t *W_hh, const int64_t *lengths,
    uint16_t *y, uint16_t *h_n, uint16_t *c_n, float *gates, float *cs, float *hs);
int fastrnn_gru_forward_x_bf16_f32(int64_t T, int64_t B, int64_t I, int64_t H,
    const uint16_t *x, const uint16_t *W_ih, const uint16_t *b_ih, const uint16_t *h0,
    const uint16_t *W_hh, const uint16_t *b_hh, const int64_t *lengths, uint16_t *y,
    uint16_t *h_n, float *gates, float *a_n, float *hs);
int fastrnn_gru_forward_x_infer_bf16_f32(int64_t T, int64_t B, int64_t I, int64_t H,
    const uint16_t *x, const uint16_t *W_ih, const uint16_t *b_ih, const uint16_t *h0,
    const uint16_t *W_hh, const uint16_t *b_hh, const int64_t *lengths, uint16_t *y,
    uint16_t *h_n, float *gates, float *a_n, float *hs);
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

/* The f64 functions take the same arguments with double for float, and each CUDA function
 * (suffix _cuda) appends the caller's stream, `void *stream`. The loader derives their cffi
 * declarations from the f32 ones above by the same substitution; C callers get them here. */
#define FASTRNN_DECLARE(real, sfx, ...)                                                          \
  int fastrnn_rnn_tanh_forward_##sfx(int64_t, int64_t, int64_t, const real *, const real *,   \
      const real *, const int64_t *, real *, real *, real * __VA_ARGS__);                     \
  int fastrnn_rnn_tanh_forward_infer_##sfx(int64_t, int64_t, int64_t, const real *,           \
      const real *, const real *, const int64_t *, real *, real *, real * __VA_ARGS__);       \
  int fastrnn_rnn_tanh_backward_##sfx(int64_t, int64_t, int64_t, const real *, const real *,  \
      const real *, const real *, const int64_t *, real *, real * __VA_ARGS__);               \
  int fastrnn_rnn_relu_forward_##sfx(int64_t, int64_t, int64_t, const real *, const real *,   \
      const real *, const int64_t *, real *, real *, real * __VA_ARGS__);                     \
  int fastrnn_rnn_relu_forward_infer_##sfx(int64_t, int64_t, int64_t, const real *,           \
      const real *, const real *, const int64_t *, real *, real *, real * __VA_ARGS__);       \
  int fastrnn_rnn_relu_backward_##sfx(int64_t, int64_t, int64_t, const real *, const real *,  \
      const real *, const real *, const int64_t *, real *, real * __VA_ARGS__);               \
  int fastrnn_lstm_forward_##sfx(int64_t, int64_t, int64_t, const real *, const real *,       \
      const real *, const real *, const int64_t *, real *, real *, real *, real *, real *,    \
      real * __VA_ARGS__);                                                                    \
  int fastrnn_lstm_forward_infer_##sfx(int64_t, int64_t, int64_t, const real *, const real *, \
      const real *, const real *, const int64_t *, real *, real *, real *, real *, real *,    \
      real * __VA_ARGS__);                                                                    \
  int fastrnn_lstm_backward_##sfx(int64_t, int64_t, int64_t, const real *, const real *,      \
      const real *, const real *, const real *, const real *, const int64_t *, real *, real *,\
      real * __VA_ARGS__);                                                                    \
  int fastrnn_gru_forward_##sfx(int64_t, int64_t, int64_t, const real *, const real *,        \
      const real *, const real *, const int64_t *, real *, real *, real *, real *,            \
      real * __VA_ARGS__);                                                                    \
  int fastrnn_gru_forward_infer_##sfx(int64_t, int64_t, int64_t, const real *, const real *,  \
      const real *, const real *, const int64_t *, real *, real *, real *, real *,            \
      real * __VA_ARGS__);                                                                    \
  int fastrnn_gru_backward_##sfx(int64_t, int64_t, int64_t, const real *, const real *,       \
      const real *, const real *, const real *, const real *, const int64_t *, real *, real *,\
      real * __VA_ARGS__);
#define FASTRNN_DECLARE_RNN_X(name, real, sfx)                                                 \
  int fastrnn_##name##_forward_x_##sfx(int64_t, int64_t, int64_t, int64_t, const real *,     \
      const real *, const real *, const real *, const real *, const real *, const int64_t *,  \
      real *, real *, real *);                                                                \
  int fastrnn_##name##_forward_x_infer_##sfx(int64_t, int64_t, int64_t, int64_t, const real *,\
      const real *, const real *, const real *, const real *, const real *, const int64_t *,  \
      real *, real *, real *);
#define FASTRNN_DECLARE_LSTMP(real, sfx, ...)                                                  \
  int fastrnn_lstmp_forward_##sfx(int64_t, int64_t, int64_t, int64_t, const real *,           \
      const real *, const real *, const real *, const real *, const int64_t *, real *, real *, \
      real *, real *, real *, real *, real * __VA_ARGS__);                                    \
  int fastrnn_lstmp_forward_infer_##sfx(int64_t, int64_t, int64_t, int64_t, const real *,     \
      const real *, const real *, const real *, const real *, const int64_t *, real *, real *, \
      real *, real *, real *, real *, real * __VA_ARGS__);                                    \
  int fastrnn_lstmp_backward_##sfx(int64_t, int64_t, int64_t, int64_t, const real *,          \
      const real *, const real *, const real *, const real *, const real *, const real *,     \
      const int64_t *, real *, real *, real *, real * __VA_ARGS__);
#define FASTRNN_DECLARE_LSTMP_X(name, real, sfx)                                               \
  int fastrnn_##name##_##sfx(int64_t, int64_t, int64_t, int64_t, int64_t, const real *,       \
      const real *, const real *, const real *, const real *, const real *, const real *,     \
      const real *, const int64_t *, real *, real *, real *, real *, real *, real *, real *);
#define FASTRNN_DECLARE_CPU(real, sfx)                                                         \
  FASTRNN_DECLARE_RNN_X(rnn_tanh, real, sfx) FASTRNN_DECLARE_RNN_X(rnn_relu, real, sfx)       \
  int fastrnn_gru_forward_x_##sfx(int64_t, int64_t, int64_t, int64_t, const real *,           \
      const real *, const real *, const real *, const real *, const real *, const int64_t *,  \
      real *, real *, real *, real *, real *);                                                \
  int fastrnn_gru_forward_x_infer_##sfx(int64_t, int64_t, int64_t, int64_t, const real *,     \
      const real *, const real *, const real *, const real *, const real *, const int64_t *,  \
      real *, real *, real *, real *, real *);                                                \
  int fastrnn_lstm_forward_x_##sfx(int64_t, int64_t, int64_t, int64_t, const real *,          \
      const real *, const real *, const real *, const real *, const real *, const real *,     \
      const int64_t *, real *, real *, real *, real *, real *, real *);                       \
  int fastrnn_lstm_forward_x_infer_##sfx(int64_t, int64_t, int64_t, int64_t, const real *,    \
      const real *, const real *, const real *, const real *, const real *, const real *,     \
      const int64_t *, real *, real *, real *, real *, real *, real *);                                        \
  FASTRNN_DECLARE_LSTMP_X(lstmp_forward_x, real, sfx)                                         \
  FASTRNN_DECLARE_LSTMP_X(lstmp_forward_x_infer, real, sfx)                                   \
  int fastrnn_input_grad_##sfx(int64_t, int64_t, int64_t, int64_t, const real *, const real *, \
      real *);
FASTRNN_DECLARE(double, f64)
FASTRNN_DECLARE_LSTMP(double, f64)
FASTRNN_DECLARE_CPU(double, f64)
FASTRNN_DECLARE(float, f32_cuda, , void *stream)
FASTRNN_DECLARE_LSTMP(float, f32_cuda, , void *stream)
FASTRNN_DECLARE(double, f64_cuda, , void *stream)
FASTRNN_DECLARE_LSTMP(double, f64_cuda, , void *stream)

#ifdef __cplusplus
}
#endif
#endif /* FASTRNN_H */
