/* The small-object cache without a server: the "shared" provider (set, get,
 * miss, delete, the size bounds, expiry on an injected clock, eviction of the
 * least recently used under the byte budget, four threads at once with every
 * value checked against its key) and memcached's wire format (key encoding,
 * exact command bytes, the reply parser on whole, split and broken replies,
 * the consistent hash). The memcached provider against real servers is
 * test_socache_memcached.c. */
#include "base/util.h"
#include "net/memcached_proto.h"
#include "net/socache.h"
#include "t.h"

#include <stdlib.h>
#include <uv.h>

/* ---- a get's answer, kept ---- */

typedef struct answer {
    int calls, status;
    uint8_t val[ATR_SOCACHE_VAL_MAX];
    size_t len;
} answer_t;

static void on_get(void *arg, int status, const uint8_t *val, size_t len)
{
    answer_t *a = arg;
    a->calls++;
    a->status = status;
    a->len = len;
    if (status == 1)
        memcpy(a->val, val, len);
}

static answer_t *get(atr_socache_local_t *l, const char *key)
{
    static answer_t a;
    memset(&a, 0, sizeof a);
    atr_socache_get(l, (const uint8_t *)key, strlen(key), on_get, &a);
    return &a; /* the shared provider answers before get returns */
}

static int set(atr_socache_local_t *l, const char *key, const char *val, uint32_t ttl)
{
    return atr_socache_set(l, (const uint8_t *)key, strlen(key), (const uint8_t *)val, strlen(val),
                           ttl);
}

static uint64_t fake_now = 1000000;
static uint64_t fake_clock(void *arg)
{
    (void)arg;
    return fake_now;
}

/* ---- shared ---- */

static void test_shared_basic(void)
{
    atr_socache_t *c = atr_socache_shared_new(1 << 20);
    atr_socache_local_t *l = atr_socache_attach(c, NULL);
    T_CHECK(__LINE__, strcmp(c->ops->name, "shared") == 0 && l->cache == c, "ops");
    answer_t *a = get(l, "nothing");
    T_CHECK(__LINE__, a->calls == 1 && a->status == 0, "miss: %d calls, status %d", a->calls,
            a->status);
    T_CHECK(__LINE__, set(l, "k1", "value one", 60) == 0, "set");
    a = get(l, "k1");
    T_CHECK(__LINE__, a->calls == 1 && a->status == 1 && a->len == 9 &&
                          memcmp(a->val, "value one", 9) == 0, "hit: %d %zu", a->status, a->len);
    T_CHECK(__LINE__, set(l, "k1", "two", 60) == 0, "overwrite");
    a = get(l, "k1");
    T_CHECK(__LINE__, a->status == 1 && a->len == 3 && memcmp(a->val, "two", 3) == 0, "new value");
    T_CHECK(__LINE__, atr_socache_del(l, (const uint8_t *)"k1", 2) == 0, "del");
    T_CHECK(__LINE__, get(l, "k1")->status == 0, "gone after del");
    T_CHECK(__LINE__, atr_socache_del(l, (const uint8_t *)"k1", 2) == 0, "del of nothing");

    /* Bounds: a key of 1..250 bytes, a value up to 16 KiB. */
    static uint8_t big[ATR_SOCACHE_VAL_MAX + 1], key[ATR_SOCACHE_KEY_MAX + 1];
    memset(big, 'v', sizeof big);
    memset(key, 'k', sizeof key);
    T_CHECK(__LINE__, atr_socache_set(l, key, 3, big, sizeof big, 0) == UV_E2BIG, "too large");
    T_CHECK(__LINE__, get(l, "kkk")->status == 0, "a refused value is not stored");
    T_CHECK(__LINE__, atr_socache_set(l, key, 3, big, sizeof big - 1, 0) == 0, "largest value");
    a = get(l, "kkk");
    T_CHECK(__LINE__, a->status == 1 && a->len == ATR_SOCACHE_VAL_MAX, "largest back: %zu", a->len);
    T_CHECK(__LINE__, atr_socache_set(l, key, sizeof key, big, 1, 0) == UV_EINVAL, "key too long");
    T_CHECK(__LINE__, atr_socache_set(l, key, sizeof key - 1, big, 1, 0) == 0, "longest key");
    T_CHECK(__LINE__, atr_socache_set(l, key, 0, big, 1, 0) == UV_EINVAL, "empty key");
    answer_t b = { 0 };
    atr_socache_get(l, key, sizeof key, on_get, &b);
    T_CHECK(__LINE__, b.calls == 1 && b.status == UV_EINVAL, "get of a key too long: %d", b.status);
    atr_socache_detach(l);
    atr_socache_free(c);
}

static void test_shared_expiry(void)
{
    atr_socache_t *c = atr_socache_shared_new(1 << 20);
    atr__socache_shared_clock(c, fake_clock, NULL);
    atr_socache_local_t *l = atr_socache_attach(c, NULL);
    set(l, "short", "x", 1);
    set(l, "long", "y", 3600);
    set(l, "forever", "z", 0);
    set(l, "huge", "w", 0xffffffffu); /* cut to 30 days */
    fake_now += 999;
    T_CHECK(__LINE__, get(l, "short")->status == 1, "alive before its second");
    fake_now += 1;
    T_CHECK(__LINE__, get(l, "short")->status == 0, "expired at its second");
    T_CHECK(__LINE__, get(l, "long")->status == 1, "an hour: alive");
    fake_now += 3600 * 1000;
    T_CHECK(__LINE__, get(l, "long")->status == 0, "an hour later: expired");
    T_CHECK(__LINE__, get(l, "huge")->status == 1, "30 days: alive");
    fake_now += 31ull * 24 * 3600 * 1000;
    T_CHECK(__LINE__, get(l, "huge")->status == 0, "cut to 30 days");
    T_CHECK(__LINE__, get(l, "forever")->status == 1, "ttl 0 never expires");
    atr_socache_detach(l);
    atr_socache_free(c);
}

/* 64 KiB (the least budget): 1 KiB values, so about 60 fit; the oldest go
 * first, and one read recently stays. */
static void test_shared_eviction(void)
{
    atr_socache_t *c = atr_socache_shared_new(1000); /* raised to 64 KiB */
    atr_socache_local_t *l = atr_socache_attach(c, NULL);
    char val[1025], key[16];
    memset(val, 'e', 1024);
    val[1024] = '\0';
    int n = 200, kept = 0, first_kept = -1;
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "e%d", i);
        T_CHECK(__LINE__, set(l, key, val, 0) == 0, "set %d", i);
        if (i >= 1)
            T_CHECK(__LINE__, get(l, "e0")->status == 1, "e0, read after every set, stays (%d)", i);
    }
    for (int i = 1; i < n; i++) {
        snprintf(key, sizeof key, "e%d", i);
        if (get(l, key)->status == 1) {
            kept++;
            if (first_kept < 0)
                first_kept = i;
        } else {
            T_CHECK(__LINE__, first_kept < 0, "e%d gone after e%d kept: not oldest first", i,
                    first_kept);
        }
    }
    T_CHECK(__LINE__, kept >= 40 && kept <= 63, "%d of 1 KiB kept in 64 KiB", kept);
    T_CHECK(__LINE__, first_kept == n - kept, "the newest kept (from e%d, %d kept)", first_kept,
            kept);
    atr_socache_detach(l);
    atr_socache_free(c);
}

/* ---- shared, from four threads ---- */

#define HAMMER_KEYS 300
#define HAMMER_OPS 40000

typedef struct hammer {
    atr_socache_t *c;
    unsigned seed;
    int hits, bad;
    uv_thread_t t;
} hammer_t;

/* A value names its key and carries a pattern from a seed: a value that
 * does not match its key, or a torn one, is corruption. */
static size_t make_value(uint8_t *v, int key, unsigned seed)
{
    size_t len = 8 + (seed % 2000);
    memcpy(v, &key, 4);
    memcpy(v + 4, &seed, 4);
    for (size_t i = 8; i < len; i++)
        v[i] = (uint8_t)(seed * 31 + i);
    return len;
}

typedef struct check {
    int key, *hits, *bad;
} check_t;

static void on_hammer_get(void *arg, int status, const uint8_t *val, size_t len)
{
    check_t *ck = arg;
    if (status != 1)
        return;
    (*ck->hits)++;
    int key;
    unsigned seed;
    uint8_t want[2048];
    memcpy(&key, val, 4);
    memcpy(&seed, val + 4, 4);
    if (key != ck->key || make_value(want, key, seed) != len || memcmp(want, val, len) != 0)
        (*ck->bad)++;
}

static void hammer_main(void *arg)
{
    hammer_t *h = arg;
    atr_socache_local_t *l = atr_socache_attach(h->c, NULL);
    uint8_t v[2048];
    for (int i = 0; i < HAMMER_OPS; i++) {
        unsigned r = (unsigned)rand_r(&h->seed);
        int key = (int)(r / 10 % HAMMER_KEYS), op = (int)(r % 10); /* independent */
        char k[16];
        size_t kn = (size_t)snprintf(k, sizeof k, "h%d", key);
        check_t ck = { key, &h->hits, &h->bad };
        if (op < 6)
            atr_socache_get(l, (uint8_t *)k, kn, on_hammer_get, &ck);
        else if (op < 9)
            atr_socache_set(l, (uint8_t *)k, kn, v, make_value(v, key, r), 1 + r / 3000 % 3);
        else
            atr_socache_del(l, (uint8_t *)k, kn);
    }
    atr_socache_detach(l);
}

static void test_shared_threads(void)
{
    atr_socache_t *c = atr_socache_shared_new(256 * 1024); /* smaller than the key set: evictions */
    hammer_t h[4];
    uint64_t t0 = atr_now_ms();
    for (int i = 0; i < 4; i++) {
        h[i] = (hammer_t){ .c = c, .seed = 7u + (unsigned)i };
        uv_thread_create(&h[i].t, hammer_main, &h[i]);
    }
    int hits = 0, bad = 0;
    for (int i = 0; i < 4; i++) {
        uv_thread_join(&h[i].t);
        hits += h[i].hits;
        bad += h[i].bad;
    }
    T_CHECK(__LINE__, bad == 0, "%d corrupt values", bad);
    T_CHECK(__LINE__, hits > 1000, "only %d hits", hits);
    printf("shared: 4 threads x %d ops, %d hits, %llu ms\n", HAMMER_OPS, hits,
           (unsigned long long)(atr_now_ms() - t0));
    atr_socache_free(c);
}

/* ---- memcached's wire format ---- */

static void test_mc_key_and_commands(void)
{
    char wk[ATR_MC_WKEY_MAX];
    size_t n = atr_mc_key(wk, (const uint8_t *)"\x00\xff k", 4);
    T_CHECK(__LINE__, n == 8 && memcmp(wk, "00ff206b", 8) == 0, "hex: %.*s", (int)n, wk);
    uint8_t key[ATR_SOCACHE_KEY_MAX];
    memset(key, 7, sizeof key);
    T_CHECK(__LINE__, atr_mc_key(wk, key, 125) == 250, "125 bytes: hex, 250 characters");
    n = atr_mc_key(wk, key, 126);
    T_CHECK(__LINE__, n == 65 && wk[0] == 'h', "126 bytes: h + SHA-256 (%zu)", n);
    for (size_t i = 1; i < n; i++)
        T_CHECK(__LINE__, strchr("0123456789abcdef", wk[i]) != NULL, "hex at %zu", i);

    atr_buf_t b = { 0 };
    atr_mc_encode_get(&b, "abcd", 4);
    atr_mc_encode_set(&b, "abcd", 4, (const uint8_t *)"v\r\n", 3, 300);
    atr_mc_encode_set(&b, "ef", 2, (const uint8_t *)"", 0, 0xffffffffu);
    atr_mc_encode_delete(&b, "abcd", 4);
    static const char want[] = "get abcd\r\n"
                               "set abcd 0 300 3 noreply\r\nv\r\n\r\n"
                               "set ef 0 2592000 0 noreply\r\n\r\n"
                               "delete abcd noreply\r\n";
    T_CHECK(__LINE__, b.n == sizeof want - 1 && memcmp(b.p, want, b.n) == 0, "commands: %.*s",
            (int)b.n, b.p);
    free(b.p);
}

static const struct {
    int line;
    const char *in;
    int result;
    size_t used;
    const char *val;
} replies[] = {
    { __LINE__, "END\r\n", ATR_MC_MISS, 5, NULL },
    { __LINE__, "END\r\nVALUE", ATR_MC_MISS, 5, NULL }, /* the next reply stays */
    { __LINE__, "VALUE ab 0 3\r\nxyz\r\nEND\r\n", ATR_MC_HIT, 24, "xyz" },
    { __LINE__, "VALUE ab 4294967295 3 77\r\nx\r\n\r\nEND\r\n", ATR_MC_HIT, 36, "x\r\n" },
    { __LINE__, "VALUE ab 0 0\r\n\r\nEND\r\n", ATR_MC_HIT, 21, "" },
    { __LINE__, "", ATR_MC_MORE, 0, NULL },
    { __LINE__, "EN", ATR_MC_MORE, 0, NULL },
    { __LINE__, "END\r", ATR_MC_MORE, 0, NULL },
    { __LINE__, "VALUE ab 0 3\r\nxy", ATR_MC_MORE, 0, NULL },
    { __LINE__, "VALUE ab 0 3\r\nxyz\r\nEN", ATR_MC_MORE, 0, NULL },
    { __LINE__, "ERROR\r\n", ATR_MC_BAD, 0, NULL },
    { __LINE__, "SERVER_ERROR out of memory\r\n", ATR_MC_BAD, 0, NULL },
    { __LINE__, "END\rX", ATR_MC_BAD, 0, NULL },
    { __LINE__, "VALUE ab 0 3\r\nxyzw\r\nEND\r\n", ATR_MC_BAD, 0, NULL }, /* wrong length */
    { __LINE__, "VALUE ab 0 3\r\nxyz\r\nVALUE", ATR_MC_BAD, 0, NULL },    /* multi-get: not ours */
    { __LINE__, "VALUE ab 0 16385\r\n", ATR_MC_BAD, 0, NULL },           /* over the max */
    { __LINE__, "VALUE ab 0 99999999999999999999\r\n", ATR_MC_BAD, 0, NULL },
    { __LINE__, "VALUE ab x 3\r\nxyz\r\nEND\r\n", ATR_MC_BAD, 0, NULL },
    { __LINE__, "VALUE  0 3\r\nxyz\r\nEND\r\n", ATR_MC_BAD, 0, NULL },
    { __LINE__, "VALUE ab 0 3 \r\nxyz\r\nEND\r\n", ATR_MC_BAD, 0, NULL },
};

static void test_mc_parse(void)
{
    for (size_t i = 0; i < ATR_ARRAY_SIZE(replies); i++) {
        size_t used = 0, vlen = 0;
        const char *val = NULL;
        int r = atr_mc_parse_get(replies[i].in, strlen(replies[i].in), ATR_SOCACHE_VAL_MAX, &used,
                                 &val, &vlen);
        T_CHECK(replies[i].line, r == replies[i].result, "result %d", r);
        if (r == ATR_MC_HIT || r == ATR_MC_MISS)
            T_CHECK(replies[i].line, used == replies[i].used, "used %zu", used);
        if (r == ATR_MC_HIT)
            T_CHECK(replies[i].line, vlen == strlen(replies[i].val) &&
                                         memcmp(val, replies[i].val, vlen) == 0, "value");
    }
    /* A line that never ends is refused once it is longer than a VALUE line can be. */
    char junk[400];
    memset(junk, 'x', sizeof junk);
    size_t used, vlen;
    const char *val;
    T_CHECK(__LINE__, atr_mc_parse_get(junk, 100, 1000, &used, &val, &vlen) == ATR_MC_MORE, "short");
    T_CHECK(__LINE__, atr_mc_parse_get(junk, 400, 1000, &used, &val, &vlen) == ATR_MC_BAD, "long");
}

static void test_mc_ring(void)
{
    const char *ab[] = { "10.0.0.1:11211", "10.0.0.2:11211" }, *ba[] = { ab[1], ab[0] };
    const char *abc[] = { ab[0], ab[1], "10.0.0.3:11211" };
    atr_mc_ring_t r1, r2, r3;
    atr_mc_ring_init(&r1, ab, 2);
    atr_mc_ring_init(&r2, ba, 2);
    atr_mc_ring_init(&r3, abc, 3);
    int count[2] = { 0 }, same = 1, moved_wrong = 0, moved = 0, n = 10000;
    for (int i = 0; i < n; i++) {
        uint8_t key[8];
        memcpy(key, &i, sizeof i);
        memcpy(key + 4, "sess", 4);
        int s1 = atr_mc_ring_pick(&r1, key, sizeof key), s2 = atr_mc_ring_pick(&r2, key, sizeof key);
        int s3 = atr_mc_ring_pick(&r3, key, sizeof key);
        count[s1]++;
        same &= strcmp(ab[s1], ba[s2]) == 0;
        if (s3 != s1) {
            moved++;
            moved_wrong += s3 != 2; /* only to the new server */
        }
    }
    T_CHECK(__LINE__, same, "the order of the servers changes nothing");
    T_CHECK(__LINE__, count[0] > n * 4 / 10 && count[1] > n * 4 / 10, "spread %d/%d", count[0],
            count[1]);
    T_CHECK(__LINE__, moved_wrong == 0 && moved > n / 5 && moved < n / 2,
            "a third server takes its share only (%d moved, %d elsewhere)", moved, moved_wrong);
    printf("ring: 2 servers %d/%d of %d keys; a third takes %d\n", count[0], count[1], n, moved);
    atr_mc_ring_free(&r1);
    atr_mc_ring_free(&r2);
    atr_mc_ring_free(&r3);
}

int main(void)
{
    test_shared_basic();
    test_shared_expiry();
    test_shared_eviction();
    test_shared_threads();
    test_mc_key_and_commands();
    test_mc_parse();
    test_mc_ring();
    T_DONE();
}
