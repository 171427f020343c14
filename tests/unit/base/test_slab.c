/* The connection slab: slots never overlap, hold what was written to them,
 * come back zeroed, and a chunk whose slots are all free is unmapped (beyond
 * the two kept). Under AddressSanitizer the slab is plain calloc/free and
 * maps no chunks; the slot checks still run. */
#include "base/slab.h"
#include "t.h"

#include <stdint.h>
#include <stdlib.h>

#define N 5000
#define SIZE 600

static unsigned char *slot[N];

static void fill(int i)
{
    memset(slot[i], (unsigned char)(i * 7 + 1), SIZE);
}

static int intact(int i)
{
    for (int k = 0; k < SIZE; k++)
        if (slot[i][k] != (unsigned char)(i * 7 + 1))
            return 0;
    return 1;
}

static int zeroed(const unsigned char *p)
{
    for (int k = 0; k < SIZE; k++)
        if (p[k])
            return 0;
    return 1;
}

int main(void)
{
    atr_slab_t s;
    atr_slab_init(&s, SIZE - 3); /* rounded up to 16: 608 */
    T_CHECK(__LINE__, s.size == 608, "size %zu", s.size);
    for (int i = 0; i < N; i++) {
        slot[i] = atr_slab_alloc(&s);
        T_CHECK(__LINE__, ((uintptr_t)slot[i] & 15) == 0, "slot %d misaligned", i);
        T_CHECK(__LINE__, zeroed(slot[i]), "slot %d not zeroed", i);
        fill(i);
    }
    int bad = 0;
    for (int i = 0; i < N; i++)
        bad += !intact(i);
    T_CHECK(__LINE__, bad == 0, "%d slots overwritten by others", bad);
    uint32_t peak = s.nchunks;

    /* free every other slot: every chunk keeps live slots */
    for (int i = 0; i < N; i += 2) {
        atr_slab_free(&s, slot[i]);
        slot[i] = NULL;
    }
    T_CHECK(__LINE__, s.nchunks == peak, "a chunk with live slots was unmapped");
    bad = 0;
    for (int i = 1; i < N; i += 2)
        bad += !intact(i);
    T_CHECK(__LINE__, bad == 0, "%d live slots damaged by frees", bad);

    /* reuse the holes: no new chunk needed */
    for (int i = 0; i < N; i += 2) {
        slot[i] = atr_slab_alloc(&s);
        T_CHECK(__LINE__, zeroed(slot[i]), "reused slot %d not zeroed", i);
        fill(i);
    }
    T_CHECK(__LINE__, s.nchunks == peak, "%u chunks after refilling holes, %u before",
            s.nchunks, peak);
    bad = 0;
    for (int i = 0; i < N; i++)
        bad += !intact(i);
    T_CHECK(__LINE__, bad == 0, "%d slots overwritten after reuse", bad);

    /* free everything in a shuffled order: at most two empty chunks stay */
    srand(1);
    for (int i = N - 1; i > 0; i--) {
        int j = rand() % (i + 1);
        unsigned char *t = slot[i];
        slot[i] = slot[j];
        slot[j] = t;
    }
    for (int i = 0; i < N; i++)
        atr_slab_free(&s, slot[i]);
    T_CHECK(__LINE__, s.nchunks <= 2, "%u chunks mapped after all slots were freed", s.nchunks);
    T_CHECK(__LINE__, s.nempty == s.nchunks, "nempty %u, nchunks %u", s.nempty, s.nchunks);

    /* and the kept chunks serve again */
    for (int i = 0; i < N; i++) {
        slot[i] = atr_slab_alloc(&s);
        fill(i);
    }
    bad = 0;
    for (int i = 0; i < N; i++)
        bad += !intact(i);
    T_CHECK(__LINE__, bad == 0, "%d slots overwritten in the second round", bad);
    T_CHECK(__LINE__, s.nchunks == peak, "%u chunks in the second round, %u in the first",
            s.nchunks, peak);
    T_DONE();
}
