/* The C ABI's plain names (fastrnn_lstm_forward_f32, ...) and the list of CPU variants.
 *
 * Each cell file is compiled once per variant (CMakeLists.txt): avx512 (x86-64-v4), avx2
 * (x86-64-v3) and base, under the names fastrnn_<cell>_<pass>_<dtype>_<variant>. When the library
 * loads, each plain name is bound to the best variant this CPU runs (a GNU indirect function), so a
 * C caller gets it with no choice to make; fastrnn's Python layer binds the suffixed names itself,
 * which lets a user or a test force any variant the CPU can run. */
#include "../fastrnn.h"

#if FASTRNN_MULTIVERSION_ON
static int has_v4(void) {
  __builtin_cpu_init();  /* resolvers run before constructors: set the CPU model up first */
  return __builtin_cpu_supports("x86-64-v4");
}
static int has_v3(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("x86-64-v3");
}

#define FR_BIND(name)                                                                     \
  __typeof__(name) name##_avx512, name##_avx2, name##_base;                               \
  static __typeof__(name) *name##_resolve(void) {                                         \
    return has_v4() ? name##_avx512 : has_v3() ? name##_avx2 : name##_base;               \
  }                                                                                       \
  __typeof__(name) name __attribute__((ifunc(#name "_resolve")));
#define FR_BIND_DTYPE(sfx)                                                                \
  FR_BIND(fastrnn_rnn_tanh_forward_##sfx) FR_BIND(fastrnn_rnn_tanh_forward_infer_##sfx)   \
  FR_BIND(fastrnn_rnn_tanh_backward_##sfx) FR_BIND(fastrnn_rnn_relu_forward_##sfx)        \
  FR_BIND(fastrnn_rnn_relu_forward_infer_##sfx) FR_BIND(fastrnn_rnn_relu_backward_##sfx)  \
  FR_BIND(fastrnn_lstm_forward_##sfx) FR_BIND(fastrnn_lstm_forward_infer_##sfx)           \
  FR_BIND(fastrnn_lstm_backward_##sfx) FR_BIND(fastrnn_gru_forward_##sfx)                 \
  FR_BIND(fastrnn_gru_forward_infer_##sfx) FR_BIND(fastrnn_gru_backward_##sfx)          \
  FR_BIND(fastrnn_lstm_forward_x_##sfx) FR_BIND(fastrnn_lstm_forward_x_infer_##sfx)      \
  FR_BIND(fastrnn_gru_forward_x_##sfx) FR_BIND(fastrnn_gru_forward_x_infer_##sfx)        \
  FR_BIND(fastrnn_rnn_tanh_forward_x_##sfx) FR_BIND(fastrnn_rnn_tanh_forward_x_infer_##sfx) \
  FR_BIND(fastrnn_rnn_relu_forward_x_##sfx) FR_BIND(fastrnn_rnn_relu_forward_x_infer_##sfx) \
  FR_BIND(fastrnn_lstmp_forward_##sfx) FR_BIND(fastrnn_lstmp_forward_infer_##sfx)         \
  FR_BIND(fastrnn_lstmp_forward_x_##sfx) FR_BIND(fastrnn_lstmp_forward_x_infer_##sfx)     \
  FR_BIND(fastrnn_lstmp_backward_##sfx) FR_BIND(fastrnn_input_grad_##sfx)
FR_BIND_DTYPE(f32)
FR_BIND_DTYPE(f64)
FR_BIND(fastrnn_rnn_tanh_forward_x_bf16_f32) FR_BIND(fastrnn_rnn_tanh_forward_x_infer_bf16_f32)
FR_BIND(fastrnn_rnn_relu_forward_x_bf16_f32) FR_BIND(fastrnn_rnn_relu_forward_x_infer_bf16_f32)
FR_BIND(fastrnn_lstm_forward_x_bf16_f32) FR_BIND(fastrnn_lstm_forward_x_infer_bf16_f32)
FR_BIND(fastrnn_gru_forward_x_bf16_f32) FR_BIND(fastrnn_gru_forward_x_infer_bf16_f32)

const char *fastrnn_cpu_variants(void) {
  return has_v4() ? "avx512 avx2 base" : has_v3() ? "avx2 base" : "base";
}
#else
const char *fastrnn_cpu_variants(void) { return ""; }
#endif
