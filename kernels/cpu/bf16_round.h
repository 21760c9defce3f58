/* One value between bfloat16 and float32, as torch converts: used by the bfloat16 products
 * (bf16.h) and the bfloat16 entry points (io16.h) alike. */
#ifndef FASTRNN_CPU_BF16_ROUND_H
#define FASTRNN_CPU_BF16_ROUND_H
#include <stdint.h>
#include <string.h>

/* x rounded to the nearest bfloat16, ties to even (a NaN stays a NaN), as torch rounds. */
static inline uint16_t fr_bf16(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

/* A bfloat16 value widened to float32 (exactly). */
static inline float fr_f32(uint16_t v) {
  const uint32_t u = (uint32_t)v << 16;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}
#endif
