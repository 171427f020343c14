#include "slab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define CHUNK (256 * 1024)

/* Under AddressSanitizer every object is a malloc of its own, so use after
 * free of a connection is still caught. */
#if defined(__SANITIZE_ADDRESS__)
#define SLAB_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_MALLOC 1
#endif
#endif

void atr_slab_init(atr_slab_t *s, size_t size)
{
    s->size = (size + 15) & ~(size_t)15;
    s->free = NULL;
}

static void grow(atr_slab_t *s)
{
    char *chunk = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (chunk == MAP_FAILED) {
        fprintf(stderr, "atrium: out of memory (slab of %zu-byte objects)\n", s->size);
        abort();
    }
    for (size_t off = 0; off + s->size <= CHUNK; off += s->size) {
        *(void **)(chunk + off) = s->free;
        s->free = chunk + off;
    }
}

void *atr_slab_alloc(atr_slab_t *s)
{
#ifdef SLAB_MALLOC
    void *q = calloc(1, s->size);
    if (q == NULL)
        abort();
    return q;
#endif
    if (s->free == NULL)
        grow(s);
    void *p = s->free;
    s->free = *(void **)p;
    memset(p, 0, s->size);
    return p;
}

void atr_slab_free(atr_slab_t *s, void *p)
{
#ifdef SLAB_MALLOC
    (void)s;
    free(p);
    return;
#endif
    *(void **)p = s->free;
    s->free = p;
}
