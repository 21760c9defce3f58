/* The C ABI's plain names (fastrnn_lstm_forward_f32, ...) and the list of CPU variants.
 *
 * Each cell file is compiled once per variant of FASTRNN_CPU_VARIANTS (fastrnn.h; CMakeLists.txt),
 * under the names fastrnn_<cell>_<pass>_<dtype>_<variant>. When the library loads, each plain
 * name is bound to the best variant this CPU runs (a GNU indirect function), so a
 * C caller gets it with no choice to make; fastrnn's Python layer binds the suffixed names itself,
 * which lets a user or a test force any variant the CPU can run. */
#include <stddef.h>
#include <string.h>

#include "fastrnn_cells.h"  /* (the build's: kernels/abi.py) */

#if FASTRNN_MULTIVERSION_ON
/* Whether this CPU runs a variant of CPU level `level` (a string literal). Resolvers run before
 * constructors: the CPU model is set up first. */
#define FR_RUNS(level) (__builtin_cpu_init(), __builtin_cpu_supports(level))

/* name_<variant> for every row of FASTRNN_CPU_VARIANTS, and name bound to the first row this CPU
 * runs (the last row runs everywhere). */
#define FR_DECLARE(name, v, level, mr, flags) __typeof__(name) name##_##v;
#define FR_TRY(name, v, level, mr, flags) if (FR_RUNS(level)) return name##_##v;
#define FR_BIND(name)                                                                     \
  FASTRNN_CPU_VARIANTS(FR_DECLARE, name)                                                  \
  static __typeof__(name) *name##_resolve(void) {                                         \
    FASTRNN_CPU_VARIANTS(FR_TRY, name)                                                    \
    return NULL;                                                                          \
  }                                                                                       \
  __typeof__(name) name __attribute__((ifunc(#name "_resolve")));
#define FR_BIND_F32(name) FR_BIND(name##_f32)
#define FR_BIND_F64(name) FR_BIND(name##_f64)
FASTRNN_CELL_KERNELS(FR_BIND_F32)
FASTRNN_CELL_KERNELS(FR_BIND_F64)
FASTRNN_CELL_KERNELS_BF16(FR_BIND_F32)
FR_BIND(fastrnn_input_grad_f32) FR_BIND(fastrnn_input_grad_f64)

const char *fastrnn_cpu_variants(void) {
  static char list[256];  /* the rows this CPU runs, in the table's order */
  if (!list[0]) {
#define FR_LIST(a, v, level, mr, flags) \
  if (FR_RUNS(level)) strcat(strcat(list, list[0] ? " " : ""), #v);
    FASTRNN_CPU_VARIANTS(FR_LIST, )
#undef FR_LIST
  }
  return list;
}
#else
const char *fastrnn_cpu_variants(void) { return ""; }
#endif
