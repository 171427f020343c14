#include "base/slab.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define CHUNK ((size_t)256 * 1024) /* also the alignment: a slot finds its chunk by masking */
#define KEEP_EMPTY 2               /* empty chunks kept mapped for the next connections */

/* At the start of every chunk; the slots follow. */
struct atr_slab_chunk {
    atr_slab_chunk_t *next, *prev; /* in the slab's partial list, while in it */
    void *free;                    /* this chunk's free slots, linked through their first word */
    uint32_t used;
};

#define FIRST_SLOT ((sizeof(atr_slab_chunk_t) + 15) & ~(size_t)15)

void atr_slab_init(atr_slab_t *s, size_t size)
{
    s->size = (size + 15) & ~(size_t)15;
    s->partial = NULL;
    s->nempty = s->nchunks = 0;
}

static void unlink_partial(atr_slab_t *s, atr_slab_chunk_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        s->partial = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

static void push_partial(atr_slab_t *s, atr_slab_chunk_t *c)
{
    c->prev = NULL;
    c->next = s->partial;
    if (s->partial)
        s->partial->prev = c;
    s->partial = c;
}

/* A CHUNK-aligned mapping: map twice the size and unmap the ends. */
static atr_slab_chunk_t *map_chunk(atr_slab_t *s)
{
    char *m = mmap(NULL, 2 * CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        fprintf(stderr, "atrium: out of memory (slab of %zu-byte objects)\n", s->size);
        abort();
    }
    char *start = (char *)(((uintptr_t)m + CHUNK - 1) & ~(uintptr_t)(CHUNK - 1));
    if (start > m)
        munmap(m, (size_t)(start - m));
    if (start + CHUNK < m + 2 * CHUNK)
        munmap(start + CHUNK, (size_t)(m + 2 * CHUNK - (start + CHUNK)));
    atr_slab_chunk_t *c = (atr_slab_chunk_t *)(void *)start;
    c->free = NULL;
    c->used = 0;
    /* linked lowest address first */
    for (size_t i = (CHUNK - FIRST_SLOT) / s->size; i > 0; i--) {
        char *slot = start + FIRST_SLOT + (i - 1) * s->size;
        *(void **)(void *)slot = c->free;
        c->free = slot;
    }
    s->nchunks++;
    s->nempty++;
    push_partial(s, c);
    return c;
}

/* Under AddressSanitizer (ATR_ASAN) every object is a malloc of its own, so
 * use after free of a connection is still caught. */
void *atr_slab_alloc(atr_slab_t *s)
{
#ifdef ATR_ASAN
    void *q = calloc(1, s->size);
    if (q == NULL)
        abort();
    return q;
#endif
    atr_slab_chunk_t *c = s->partial ? s->partial : map_chunk(s);
    void *p = c->free;
    c->free = *(void **)p;
    if (c->used++ == 0)
        s->nempty--;
    if (c->free == NULL)
        unlink_partial(s, c);
    memset(p, 0, s->size);
    return p;
}

void atr_slab_free(atr_slab_t *s, void *p)
{
#ifdef ATR_ASAN
    (void)s;
    free(p);
    return;
#endif
    atr_slab_chunk_t *c = (atr_slab_chunk_t *)(uintptr_t)((uintptr_t)p & ~(uintptr_t)(CHUNK - 1));
    if (c->free == NULL)
        push_partial(s, c);
    *(void **)p = c->free;
    c->free = p;
    if (--c->used > 0)
        return;
    if (s->nempty < KEEP_EMPTY) {
        s->nempty++;
        return;
    }
    unlink_partial(s, c);
    s->nchunks--;
    munmap(c, CHUNK);
}
