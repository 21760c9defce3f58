/* Argument checks and the error message shared by the CPU and CUDA libraries (common.c). */
#ifndef FASTRNN_COMMON_H
#define FASTRNN_COMMON_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

/* The tuned rules' values, indexed by FR_RULE_<name> (rules.def; fastrnn_set_rule changes them). */
enum {
#define FR_RULE(name, value, what, where) FR_RULE_##name,
#include "rules.def"
#undef FR_RULE
};
extern int64_t fr_rules[];
#define fr_rule(name) fr_rules[FR_RULE_##name]

/* Sets the thread's message (printf-style, prefixed with `fn`) and returns FASTRNN_EINVAL. */
int fr_fail(const char *fn, const char *fmt, ...);

/* Sets the message "out of memory for `what`" and returns FASTRNN_ENOMEM. */
int fr_nomem(const char *fn, const char *what);

/* Checks T, B, H >= 1 and T·B·gates·H without overflow; that no pointer in ptrs[0..n) is NULL
 * (`names`: their comma-separated names, for the message); and, when `host_lengths` is set, that
 * every lengths[b] lies in 0..T. Returns FASTRNN_OK or the error of fr_fail. */
int fr_check(const char *fn, int64_t T, int64_t B, int64_t H, int64_t gates,
             const int64_t *lengths, int host_lengths, int n, const void *const *ptrs,
             const char *names);

/* Declares `int e` and sets it to the result of fr_check on the pointer arguments listed, in
 * the name of the calling function (FR_CHECK) or of entry point fn (FR_CHECK_AS, in a helper
 * the entry points share). */
#define FR_CHECK_AS(fn, e, T, B, H, gates, lengths, host_lengths, ...)                          \
  int e;                                                                                      \
  do {                                                                                        \
    const void *fr_ptrs_[] = {__VA_ARGS__};                                                   \
    e = fr_check(fn, T, B, H, gates, lengths, host_lengths,                                   \
                 (int)(sizeof fr_ptrs_ / sizeof fr_ptrs_[0]), fr_ptrs_, #__VA_ARGS__);        \
  } while (0)
#define FR_CHECK(e, ...) FR_CHECK_AS(__func__, e, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
