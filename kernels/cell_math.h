/* Each cell's pointwise math, forward and backward, shared by the C and CUDA kernels.
 *
 * A translation unit is compiled once per element type: FASTRNN_F64 selects double, else float,
 * and SFX(name) appends the ABI suffix (_f32, _f64; SFX_CUDA: _f32_cuda, _f64_cuda).
 * Everything here is an inline function usable
 * on host and device, so the CPU tests exercise exactly the arithmetic the GPU runs.
 * float64 uses the exact libm exp/tanh (gradcheck needs them).
 */
#ifndef FASTRNN_CELL_MATH_H
#define FASTRNN_CELL_MATH_H
#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define FR_INLINE static __host__ __device__ __forceinline__
#else  /* always: a multiversioned CPU loop must not call a baseline copy (cpu/internal.h) */
#define FR_INLINE static inline __attribute__((always_inline))
#endif

#define FR_CAT_(a, b) a##b
#define FR_CAT(a, b) FR_CAT_(a, b)
#if FASTRNN_F64
typedef double real;
#define FR_EXP exp
#define FR_TANH tanh
#define FR_SQRT sqrt
#define SFX(name) FR_CAT(name, _f64)
#elif defined(__CUDACC__)
typedef float real;
#define FR_EXP expf
#define FR_TANH tanhf
#define FR_SQRT sqrtf
#define SFX(name) FR_CAT(name, _f32)
#else
typedef float real;
#define FR_EXP fr_expf
#define FR_TANH fr_tanhf
#define FR_SQRT sqrtf
#define SFX(name) FR_CAT(name, _f32)

/* float32 e^a and tanh(a) on the CPU in plain arithmetic, so that the compiler vectorises the
 * gate loops (libm's expf and tanhf are calls, one element at a time, and dominated the step).
 * e^a: a = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in two so n·ln2_hi is exact), e^r by its
 * Taylor polynomial to r^7 (truncation < 7e-9 relative), 2^n written into the exponent bits.
 * Inputs are clamped to [-87, 88], where e^a stays a normal float: the gates saturate long
 * before. Accuracy is a few float32 ulps, checked against float64 by the tests. */
static inline float fr_expf(float a) {
  a = a < -87.0f ? -87.0f : (a > 88.0f ? 88.0f : a);
  const float shifter = 12582912.0f;              /* 1.5·2^23: adding it rounds to an integer */
  float n = (a * 1.44269504f + shifter) - shifter; /* round(a / ln2) */
  float r = (a - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.66666667e-1f + r * (4.16666667e-2f +
            r * (8.33333333e-3f + r * (1.38888889e-3f + r * 1.98412698e-4f))))));
  union { int32_t i; float f; } scale = {((int32_t)n + 127) << 23};
  return p * scale.f;
}

/* tanh(a): for |a| < 0.4 its odd Taylor series to a^15 (truncation < 3e-10 relative), above
 * it 1 - 2/(e^{2|a|} + 1) with a's sign; both are computed and one is selected, branch-free. */
static inline float fr_tanhf(float a) {
  float x = a < 0 ? -a : a, x2 = a * a;
  float small = a * (1.0f + x2 * (-3.33333333e-1f + x2 * (1.33333333e-1f + x2 * (
                -5.39682540e-2f + x2 * (2.18694885e-2f + x2 * (-8.86323552e-3f + x2 * (
                3.59212803e-3f + x2 * -1.45583438e-3f)))))));
  float large = 1.0f - 2.0f / (fr_expf(2.0f * x) + 1.0f);
  large = a < 0 ? -large : large;
  return x < 0.4f ? small : large;
}

/* e^a and tanh(a) for products in bfloat16 (the CPU's bf16 path), whose operands keep 8 bits of
 * mantissa: e^r's Taylor polynomial to r^4 (relative error < 4.3e-5), and tanh without its
 * small-argument series (absolute error ~1e-7 near 0). An LSTM's five a unit took ~7 % of its
 * bfloat16 forward (T = 100, B = 16, H = 256, Zen 4: a build with them free 4.99 → 4.66 ms);
 * these 5.93 → 5.76. */
static inline float fr_expf_bf16(float a) {
  a = a < -87.0f ? -87.0f : (a > 88.0f ? 88.0f : a);
  const float shifter = 12582912.0f;
  float n = (a * 1.44269504f + shifter) - shifter;
  float r = (a - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.66666667e-1f + r * 4.16666667e-2f)));
  union { int32_t i; float f; } scale = {((int32_t)n + 127) << 23};
  return p * scale.f;
}

static inline float fr_tanhf_bf16(float a) {
  float x = a < 0 ? -a : a;
  float t = 1.0f - 2.0f / (fr_expf_bf16(2.0f * x) + 1.0f);
  return a < 0 ? -t : t;
}
#endif
#define SFX_CUDA(name) FR_CAT(SFX(name), _cuda)

FR_INLINE real fr_sigmoid(real a) { return (real)1 / ((real)1 + FR_EXP(-a)); }

/* Elman RNN. a: pre-activation; h: its output; dh: ∂L/∂h. Returns h, or ∂L/∂a. */
FR_INLINE real rnn_fwd(real a, int relu) { return relu ? (a > 0 ? a : (real)0) : FR_TANH(a); }
FR_INLINE real rnn_bwd(real h, real dh, int relu) {
  return relu ? (h > 0 ? dh : (real)0) : dh * ((real)1 - h * h);
}

/* LSTM, one element j of one row: a_* pre-activations (G_x + recurrent), c_prev the old cell.
 * Writes the activated gates into *i, *f, *g, *o and the new cell into *c; returns h. */
FR_INLINE real lstm_fwd(real ai, real af, real ag, real ao, real c_prev,
                        real *i, real *f, real *g, real *o, real *c) {
  *i = fr_sigmoid(ai);
  *f = fr_sigmoid(af);
  *g = FR_TANH(ag);
  *o = fr_sigmoid(ao);
  *c = *f * c_prev + *i * *g;
  return *o * FR_TANH(*c);
}

#if !FASTRNN_F64 && !defined(__CUDACC__)
/* lstm_fwd with products in bfloat16: the same, on fr_expf_bf16 and fr_tanhf_bf16. */
FR_INLINE float lstm_fwd_bf16(float ai, float af, float ag, float ao, float c_prev,
                              float *i, float *f, float *g, float *o, float *c) {
  *i = 1.0f / (1.0f + fr_expf_bf16(-ai));
  *f = 1.0f / (1.0f + fr_expf_bf16(-af));
  *g = fr_tanhf_bf16(ag);
  *o = 1.0f / (1.0f + fr_expf_bf16(-ao));
  *c = *f * c_prev + *i * *g;
  return *o * fr_tanhf_bf16(*c);
}
#endif

/* LSTM backward for one element: dh, dc are ∂L/∂h_t, ∂L/∂c_t arriving from later steps.
 * Writes ∂L/∂a for each gate; returns ∂L/∂c_{t-1}. */
FR_INLINE real lstm_bwd(real i, real f, real g, real o, real c, real c_prev, real dh, real dc,
                        real *dai, real *daf, real *dag, real *dao) {
  real tc = FR_TANH(c);
  dc += dh * o * ((real)1 - tc * tc);
  *dai = dc * g * i * ((real)1 - i);
  *daf = dc * c_prev * f * ((real)1 - f);
  *dag = dc * i * ((real)1 - g * g);
  *dao = dh * tc * o * ((real)1 - o);
  return dc * f;
}

/* GRU, one element: x* = G_x parts, a* = recurrent parts A (b_hh included). Returns h_t. */
FR_INLINE real gru_fwd(real xr, real xz, real xn, real ar, real az, real an, real h_prev,
                       real *r, real *z, real *n) {
  *r = fr_sigmoid(xr + ar);
  *z = fr_sigmoid(xz + az);
  *n = FR_TANH(xn + *r * an);
  return ((real)1 - *z) * *n + *z * h_prev;
}

/* GRU backward for one element. Writes ∂L/∂G_x (dxr, dxz, dxn); ∂L/∂A equals them but for the
 * n block, which is dxn·r. Returns the direct part of ∂L/∂h_{t-1} (dh·z). */
FR_INLINE real gru_bwd(real r, real z, real n, real an, real h_prev, real dh,
                       real *dxr, real *dxz, real *dxn) {
  *dxn = dh * ((real)1 - z) * ((real)1 - n * n);
  *dxz = dh * (h_prev - n) * z * ((real)1 - z);
  *dxr = *dxn * an * r * ((real)1 - r);
  return dh * z;
}
#endif
