/* The thread-local error message and the argument checks of every entry point. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "fastrnn.h"

static _Thread_local char last_error[512];
static _Thread_local int num_threads = 1; /* per calling thread, as torch's own count */

void fastrnn_set_num_threads(int n) { num_threads = n < 1 ? 1 : n; }
int fastrnn_get_num_threads(void) { return num_threads; }

static _Thread_local int bf16_products = 0;
void fastrnn_set_bf16_products(int on) { bf16_products = on != 0; }
int fastrnn_get_bf16_products(void) { return bf16_products; }

const char *fastrnn_last_error(void) { return last_error; }

/* The tuned rules' values (rules.def), read by the loops as fr_rule(name). */
int64_t fr_rules[] = {
#define FR_RULE(name, value, what, where) value,
#include "rules.def"
#undef FR_RULE
};
static const char *const rule_names[] = {
#define FR_RULE(name, value, what, where) #name,
#include "rules.def"
#undef FR_RULE
};
enum { RULES = sizeof rule_names / sizeof rule_names[0] };

static int rule_index(const char *name) {
  for (int i = 0; i < RULES; i++)
    if (strcmp(rule_names[i], name) == 0) return i;
  return -1;
}

int64_t fastrnn_get_rule(const char *name) {
  const int i = rule_index(name);
  return i < 0 ? -1 : fr_rules[i];
}

int fastrnn_set_rule(const char *name, int64_t value) {
  const int i = rule_index(name);
  if (i < 0) return fr_fail("fastrnn_set_rule", "no rule named '%s' (kernels/rules.def)", name);
  if (value < 0)
    return fr_fail("fastrnn_set_rule", "%s: expected a value >= 0, got %lld", name,
                   (long long)value);
  fr_rules[i] = value;
  return FASTRNN_OK;
}

const char *fastrnn_build_info(void) {
  return "compiler " __VERSION__
#ifdef FASTRNN_MULTIVERSION_ON
         "; x86-64 variants:"
#define FR_NAME(a, name, level, mr, flags) " " #name " (" level ")"
         FASTRNN_CPU_VARIANTS(FR_NAME, )
#undef FR_NAME
#else
         "; one variant"
#endif
#ifdef _OPENMP
         "; CPU loops on OpenMP threads"
#else
         "; CPU loops on one thread (no OpenMP)"
#endif
      ;
}

int fr_fail(const char *fn, const char *fmt, ...) {
  int k = snprintf(last_error, sizeof last_error, "%s: ", fn);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error + k, sizeof last_error - (size_t)k, fmt, ap);
  va_end(ap);
  return FASTRNN_EINVAL;
}

int fr_nomem(const char *fn, const char *what) {
  fr_fail(fn, "out of memory for %s", what);
  return FASTRNN_ENOMEM;
}

int fr_check(const char *fn, int64_t T, int64_t B, int64_t H, int64_t gates,
             const int64_t *lengths, int host_lengths, int n, const void *const *ptrs,
             const char *names) {
  if (T < 1 || B < 1 || H < 1)
    return fr_fail(fn, "expected T, B, H >= 1, got T=%lld B=%lld H=%lld", (long long)T,
                   (long long)B, (long long)H);
  if (T > (INT64_C(1) << 40) / B / gates / H)
    return fr_fail(fn, "T*B*%lld*H = %lld*%lld*%lld*%lld is too large", (long long)gates,
                   (long long)T, (long long)B, (long long)gates, (long long)H);
  for (int i = 0; i < n; i++) {
    if (ptrs[i] == NULL) {  /* name i is the i-th comma-separated word of `names` */
      const char *s = names;
      for (int k = 0; k < i; k++) s = strchr(s, ',') + 1;
      while (*s == ' ') s++;
      int len = (int)(strchr(s, ',') ? strchr(s, ',') - s : (long)strlen(s));
      return fr_fail(fn, "argument '%.*s' is NULL", len, s);
    }
  }
  if (host_lengths)
    for (int64_t b = 0; b < B; b++)
      if (lengths[b] < 0 || lengths[b] > T)
        return fr_fail(fn, "lengths[%lld] = %lld, expected a value in 0..%lld", (long long)b,
                       (long long)lengths[b], (long long)T);
  last_error[0] = '\0';
  return FASTRNN_OK;
}
