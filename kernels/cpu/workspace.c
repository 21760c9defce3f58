/* The CPU kernels' large work buffers (packed weights, G_x chunks, rings), kept per calling thread
 * from one call to the next.
 *
 * Each call packs its weights again (so a weight changed in any way between calls is always
 * seen), but into memory an earlier call used. A fresh buffer this size comes from mmap, or from a
 * heap that free() just trimmed, and the kernel pays a page fault for every 4 kB it first writes:
 * for an LSTM step at B = 32, H = 256 (2.4 MB of packed W_ih and W_hh) 590 faults, 1.35 ms of a
 * call that otherwise takes 0.25. Up to FR_KEEP_BLOCKS blocks and FR_KEEP_BYTES in all are kept
 * per thread, freed when the thread exits. */
#include <pthread.h>
#include <stdlib.h>

#include "internal.h"

#define FR_KEEP_BLOCKS 8
#define FR_KEEP_BYTES ((size_t)256 << 20)
#define FR_HEADER 64 /* a block's capacity sits in front of it; 64 keeps the data cache-aligned */

typedef struct {
  void *block[FR_KEEP_BLOCKS]; /* what malloc returned; capacity at its start */
  size_t bytes;                /* kept in all */
} kept_blocks;

static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static size_t capacity(void *block) { return *(size_t *)block; }

static void release(void *p) {
  kept_blocks *k = p;
  for (int i = 0; i < FR_KEEP_BLOCKS; i++) free(k->block[i]);
  free(k);
}

static void make_key(void) { pthread_key_create(&key, release); }

static kept_blocks *kept(void) {
  pthread_once(&key_once, make_key);
  kept_blocks *k = pthread_getspecific(key);
  if (!k && (k = calloc(1, sizeof *k)) && pthread_setspecific(key, k)) {
    free(k);
    k = NULL;
  }
  return k;
}

void *fr_work_alloc(size_t n) {
  kept_blocks *k = kept();
  int best = -1;
  for (int i = 0; k && i < FR_KEEP_BLOCKS; i++)  /* the smallest kept block that holds n */
    if (k->block[i] && capacity(k->block[i]) >= n &&
        (best < 0 || capacity(k->block[i]) < capacity(k->block[best])))
      best = i;
  if (best >= 0) {
    void *block = k->block[best];
    k->block[best] = NULL;
    k->bytes -= capacity(block);
    return (char *)block + FR_HEADER;
  }
  void *block = aligned_alloc(FR_HEADER, (n + 2 * FR_HEADER - 1) / FR_HEADER * FR_HEADER);
  if (!block) return NULL;
  *(size_t *)block = n;
  return (char *)block + FR_HEADER;
}

void fr_work_free(void *p) {
  if (!p) return;
  void *block = (char *)p - FR_HEADER;
  kept_blocks *k = kept();
  if (k && k->bytes + capacity(block) <= FR_KEEP_BYTES)
    for (int i = 0; i < FR_KEEP_BLOCKS; i++)
      if (!k->block[i]) {
        k->block[i] = block;
        k->bytes += capacity(block);
        return;
      }
  free(block);
}
