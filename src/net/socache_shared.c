/* The "shared" small-object cache (net/socache.h): one hash table in this
 * process for every worker thread, behind one mutex.
 *
 * Each entry is one allocation (links, then key and value bytes) and counts
 * its whole size against the byte budget. Entries are kept on one list from
 * the most to the least recently used (a get moves its entry to the front);
 * a set that does not fit evicts from the back. Expired entries go when a
 * get meets them, or by age through the back of the list.
 *
 * The lock is held only for the table work: entries are allocated before it
 * is taken and freed after it is dropped, a found value is copied out under
 * it, and the callback runs after it is dropped (so a callback may call the
 * cache again). Keys may come from clients (a TLS session ID is the client's
 * choice), so buckets are chosen by SipHash with a random key: no one can
 * aim a flood of keys at one chain. */
#include "net/socache.h"

#include <openssl/rand.h>
#include <openssl/siphash.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "base/util.h"

#define SHARED_MIN_BYTES (64u * 1024)
#define BYTES_PER_BUCKET 512 /* about one TLS session per bucket at a full budget */

typedef struct entry {
    struct entry *hnext;         /* the bucket's chain; also the free list after unlocking */
    struct entry *newer, *older; /* the recency list */
    uint64_t hash;
    uint64_t expires;            /* on the cache's clock (ms); 0: never */
    uint32_t klen, vlen;
    uint8_t data[];              /* key, then value */
} entry_t;

typedef struct shared {
    atr_socache_t base;
    uv_mutex_t lock;
    entry_t **buckets;
    size_t mask;
    entry_t *newest, *oldest;
    size_t used, budget;         /* bytes: sum of entry sizes, and the most allowed */
    uint64_t seed[2];
    uint64_t (*now)(void *arg);
    void *now_arg;
} shared_t;

static uint64_t clock_ms(void *arg)
{
    (void)arg;
    return atr_now_ms();
}

static size_t entry_size(size_t klen, size_t vlen)
{
    return sizeof(entry_t) + klen + vlen;
}

/* ---- the table (lock held) ---- */

static entry_t **bucket_of(shared_t *c, uint64_t hash)
{
    return &c->buckets[hash & c->mask];
}

static entry_t *find(shared_t *c, uint64_t hash, const uint8_t *key, size_t klen)
{
    for (entry_t *e = *bucket_of(c, hash); e; e = e->hnext)
        if (e->hash == hash && e->klen == klen && memcmp(e->data, key, klen) == 0)
            return e;
    return NULL;
}

static void list_unlink(shared_t *c, entry_t *e)
{
    *(e->newer ? &e->newer->older : &c->newest) = e->older;
    *(e->older ? &e->older->newer : &c->oldest) = e->newer;
}

static void list_push(shared_t *c, entry_t *e)
{
    e->newer = NULL;
    e->older = c->newest;
    *(c->newest ? &c->newest->newer : &c->oldest) = e;
    c->newest = e;
}

/* Take e out of the table onto *gone (freed after unlocking). */
static void remove_entry(shared_t *c, entry_t *e, entry_t **gone)
{
    entry_t **pp = bucket_of(c, e->hash);
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    list_unlink(c, e);
    c->used -= entry_size(e->klen, e->vlen);
    e->hnext = *gone;
    *gone = e;
}

static void insert_entry(shared_t *c, entry_t *e)
{
    entry_t **b = bucket_of(c, e->hash);
    e->hnext = *b;
    *b = e;
    list_push(c, e);
    c->used += entry_size(e->klen, e->vlen);
}

static void free_list(entry_t *e)
{
    while (e) {
        entry_t *next = e->hnext;
        free(e);
        e = next;
    }
}

/* ---- the ops ---- */

static int key_ok(size_t klen)
{
    return klen > 0 && klen <= ATR_SOCACHE_KEY_MAX;
}

static void sh_get(atr_socache_local_t *l, const uint8_t *key, size_t klen, atr_socache_get_cb cb,
                   void *arg)
{
    shared_t *c = (shared_t *)l->cache;
    if (!key_ok(klen)) {
        cb(arg, UV_EINVAL, NULL, 0);
        return;
    }
    uint8_t val[ATR_SOCACHE_VAL_MAX]; /* the copy the callback sees, made under the lock */
    size_t vlen = 0;
    int found = 0;
    entry_t *gone = NULL;
    uint64_t hash = SIPHASH_24(c->seed, key, klen), now = c->now(c->now_arg);
    uv_mutex_lock(&c->lock);
    entry_t *e = find(c, hash, key, klen);
    if (e && e->expires && e->expires <= now) {
        remove_entry(c, e, &gone);
    } else if (e) {
        found = 1;
        vlen = e->vlen;
        memcpy(val, e->data + e->klen, vlen);
        list_unlink(c, e);
        list_push(c, e);
    }
    uv_mutex_unlock(&c->lock);
    free_list(gone);
    cb(arg, found, found ? val : NULL, vlen);
}

static int sh_set(atr_socache_local_t *l, const uint8_t *key, size_t klen, const uint8_t *val,
                  size_t vlen, uint32_t ttl_s)
{
    shared_t *c = (shared_t *)l->cache;
    if (!key_ok(klen))
        return UV_EINVAL;
    if (vlen > ATR_SOCACHE_VAL_MAX)
        return UV_E2BIG;
    size_t size = entry_size(klen, vlen);
    entry_t *e = atr_xmalloc(size);
    e->hash = SIPHASH_24(c->seed, key, klen);
    e->klen = (uint32_t)klen;
    e->vlen = (uint32_t)vlen;
    e->expires = ttl_s ? c->now(c->now_arg) + 1000ull * ATR_MIN(ttl_s, ATR_SOCACHE_TTL_MAX) : 0;
    memcpy(e->data, key, klen);
    if (vlen)
        memcpy(e->data + klen, val, vlen);
    entry_t *gone = NULL;
    uv_mutex_lock(&c->lock);
    entry_t *old = find(c, e->hash, key, klen);
    if (old)
        remove_entry(c, old, &gone);
    while (c->used + size > c->budget)
        remove_entry(c, c->oldest, &gone); /* size <= budget: the list ends first */
    insert_entry(c, e);
    uv_mutex_unlock(&c->lock);
    free_list(gone);
    return 0;
}

static int sh_del(atr_socache_local_t *l, const uint8_t *key, size_t klen)
{
    shared_t *c = (shared_t *)l->cache;
    if (!key_ok(klen))
        return UV_EINVAL;
    uint64_t hash = SIPHASH_24(c->seed, key, klen);
    entry_t *gone = NULL;
    uv_mutex_lock(&c->lock);
    entry_t *e = find(c, hash, key, klen);
    if (e)
        remove_entry(c, e, &gone);
    uv_mutex_unlock(&c->lock);
    free_list(gone);
    return 0;
}

/* A local holds nothing of its own: it only names the cache. */
static atr_socache_local_t *sh_attach(atr_socache_t *c, struct uv_loop_s *loop)
{
    (void)loop;
    atr_socache_local_t *l = atr_xmalloc(sizeof *l);
    l->cache = c;
    return l;
}

static void sh_detach(atr_socache_local_t *l)
{
    free(l);
}

static void sh_free(atr_socache_t *base)
{
    shared_t *c = (shared_t *)base;
    entry_t *e = c->newest;
    while (e) {
        entry_t *next = e->older;
        free(e);
        e = next;
    }
    uv_mutex_destroy(&c->lock);
    free(c->buckets);
    free(c);
}

static const atr_socache_ops_t shared_ops = {
    .name = "shared",
    .attach = sh_attach,
    .detach = sh_detach,
    .get = sh_get,
    .set = sh_set,
    .del = sh_del,
    .free = sh_free,
};

atr_socache_t *atr_socache_shared_new(size_t bytes)
{
    shared_t *c = atr_xcalloc(1, sizeof *c);
    c->base.ops = &shared_ops;
    c->budget = ATR_MAX(bytes, (size_t)SHARED_MIN_BYTES);
    size_t n = 64;
    while (n < c->budget / BYTES_PER_BUCKET && n < (1u << 24))
        n *= 2;
    c->buckets = atr_xcalloc(n, sizeof *c->buckets);
    c->mask = n - 1;
    RAND_bytes((uint8_t *)c->seed, sizeof c->seed);
    c->now = clock_ms;
    if (uv_mutex_init(&c->lock) != 0)
        abort();
    return &c->base;
}

void atr__socache_shared_clock(atr_socache_t *base, uint64_t (*now)(void *arg), void *arg)
{
    shared_t *c = (shared_t *)base;
    c->now = now;
    c->now_arg = arg;
}
