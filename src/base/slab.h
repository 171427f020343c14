/* Fixed-size object slabs for long-lived per-connection structs. Slots come
 * from 256 KiB mmap'ed chunks, away from the malloc heap where request-sized
 * buffers come and go, so an idle connection's few hundred bytes never pin a
 * heap page that a burst's buffers could otherwise give back. One slab per
 * worker, used by that worker's thread only.
 *
 * Each chunk counts its slots in use. A chunk whose last slot is freed goes
 * back to the kernel, except for a few kept for the next connections: after
 * a flood of connections has gone, its memory goes too (chunks still holding
 * a live connection stay). */
#ifndef ATR_SLAB_H
#define ATR_SLAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct atr_slab_chunk atr_slab_chunk_t;

typedef struct atr_slab {
    size_t size;                 /* slot size, rounded up to 16 */
    atr_slab_chunk_t *partial;   /* chunks with a free slot; allocations take the first */
    uint32_t nempty;             /* chunks with no slot in use, kept mapped */
    uint32_t nchunks;            /* chunks mapped */
} atr_slab_t;

void atr_slab_init(atr_slab_t *s, size_t size);
void *atr_slab_alloc(atr_slab_t *s);   /* zeroed; aborts when out of memory */
void atr_slab_free(atr_slab_t *s, void *p);

#endif
