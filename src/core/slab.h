/* Fixed-size object slabs for long-lived per-connection structs. Slots come
 * from 256 KiB mmap'ed chunks, away from the malloc heap where request-sized
 * buffers come and go, so an idle connection's few hundred bytes never pin a
 * heap page that a burst's buffers could otherwise give back. One slab per
 * worker, used by that worker's thread only. Chunks are kept for reuse
 * (bounded by the peak number of connections). */
#ifndef ATR_SLAB_H
#define ATR_SLAB_H

#include <stddef.h>

typedef struct atr_slab {
    size_t size;     /* slot size, rounded up to 16 */
    void *free;      /* free slots, linked through their first word */
} atr_slab_t;

void atr_slab_init(atr_slab_t *s, size_t size);
void *atr_slab_alloc(atr_slab_t *s);   /* zeroed; aborts when out of memory */
void atr_slab_free(atr_slab_t *s, void *p);

#endif
