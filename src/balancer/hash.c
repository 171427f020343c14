/* Consistent hashing by key: `balance hash [addr|uri|header=NAME|cookie=NAME]
 * [consistent];` (default addr). Equal keys go to the same server.
 *
 * Maglev (Eisenbud et al., NSDI 2016) rather than a ring with bounded load:
 * a pick is one table lookup, O(1) however many servers, where a ring is a
 * binary search over servers x virtual nodes; the table spreads keys within
 * about 1% of the weights, where a ring needs hundreds of virtual nodes per
 * server for that; and removing one of n servers moves about 1/n of the
 * keys. Bounded load is not needed here: a full server (max_conns) is
 * already skipped for the next candidate below.
 *
 * Each server fills table slots in the order of its own permutation of the
 * table, derived from its name (not its index: removing a server renumbers
 * the others, but must not move their keys), claiming `weight` slots per
 * round, so slot counts follow the weights. The table size is a prime
 * chosen by the total weight from a short list, so it stays the same when a
 * server is added or removed unless the total crosses a step.
 *
 * A key's server may be down, full or already tried (ok[] says which):
 * then the next candidate is the slot of the key rehashed, and so on, the
 * same sequence for the same key. The unusable server's keys spread over
 * the others by weight, and no other key moves. Primaries and backups have
 * a table each: atr_lb_pick offers one class at a time. */
#include "balancer/balancer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#define PROBES 64 /* rehashed candidates before a plain weighted choice */

typedef struct table {
    int32_t *slot; /* server index per slot; NULL when the class is empty */
    uint32_t size;
} table_t;

typedef struct hash {
    atr_lb_t super;
    table_t t[2]; /* [0] primaries, [1] backups */
} hash_t;

/* Table sizes: primes, each about 4x the last. The first that is at least
 * 64 x the total weight (under 1.6% imbalance), else the largest. */
static const uint32_t sizes[] = { 1021, 4093, 16381, 65521, 262139 };

static uint32_t table_size(uint64_t total_weight)
{
    for (size_t i = 0; i < ATR_ARRAY_SIZE(sizes); i++)
        if (sizes[i] >= 64 * total_weight)
            return sizes[i];
    return sizes[ATR_ARRAY_SIZE(sizes) - 1];
}

static uint64_t server_hash(const atr_lb_t *lb, int i, uint64_t salt)
{
    char buf[32];
    const char *name = lb->servers[i].name;
    if (name == NULL) {
        snprintf(buf, sizeof(buf), "#%d", i);
        name = buf;
    }
    return atr_lb_hash(name, strlen(name)) ^ salt;
}

static void build(atr_lb_t *lb, table_t *t, int backup)
{
    uint64_t total = 0, filled = 0;
    uint32_t *offset, *skip, *next;
    int n = lb->nservers;

    for (int i = 0; i < n; i++)
        if ((lb->servers[i].backup != 0) == backup)
            total += (uint64_t)lb->servers[i].weight;
    if (total == 0)
        return;
    t->size = table_size(total);
    t->slot = atr_xcalloc(t->size, sizeof(*t->slot));
    memset(t->slot, 0xff, t->size * sizeof(*t->slot)); /* -1: empty */
    offset = atr_xcalloc((size_t)n, sizeof(*offset));
    skip = atr_xcalloc((size_t)n, sizeof(*skip));
    next = atr_xcalloc((size_t)n, sizeof(*next));
    for (int i = 0; i < n; i++) {
        offset[i] = (uint32_t)(atr_lb_hash(&(uint64_t){ server_hash(lb, i, 0) }, 8) % t->size);
        skip[i] = (uint32_t)(server_hash(lb, i, 0x5bd1e995ULL) % (t->size - 1)) + 1;
    }
    while (filled < t->size) {
        for (int i = 0; i < n && filled < t->size; i++) {
            if ((lb->servers[i].backup != 0) != backup)
                continue;
            for (int w = 0; w < lb->servers[i].weight && filled < t->size; w++) {
                uint32_t c;
                do /* the size is prime: the permutation visits every slot */
                    c = (uint32_t)((offset[i] + (uint64_t)next[i]++ * skip[i]) % t->size);
                while (t->slot[c] >= 0);
                t->slot[c] = i;
                filled++;
            }
        }
    }
    free(offset);
    free(skip);
    free(next);
}

static void init(atr_lb_t *lb)
{
    hash_t *self = (hash_t *)lb;
    build(lb, &self->t[0], 0);
    build(lb, &self->t[1], 1);
}

/* Slow start for a table that cannot change weights per request: a server
 * ramping up takes the share of its keys its effective weight allows, the
 * same keys for every worker (the high bits of the key's hash decide), and
 * the set only grows as the weight does. The others go to the next
 * candidate, as if it were unusable. No division. */
static int admitted(const atr_lb_t *lb, int s, uint64_t h)
{
    uint64_t full = (uint64_t)lb->servers[s].weight * ATR_LB_WSCALE, w;

    if (lb->servers[s].slow_start == 0)
        return 1;
    w = atr__lb_weight(lb, s);
    return w >= full || (((h >> 32) * full) >> 32) < w;
}

static int pick(atr_lb_t *lb, const unsigned char *ok)
{
    hash_t *self = (hash_t *)lb;
    const table_t *t = NULL;
    uint64_t h = lb->key;

    for (int i = 0; i < lb->nservers && t == NULL; i++)
        if (ok[i])
            t = &self->t[lb->servers[i].backup != 0];
    if (t == NULL || t->slot == NULL)
        return -1;
    for (int probe = 0; probe < PROBES; probe++) {
        int s = t->slot[h % t->size];
        if (ok[s] && admitted(lb, s, lb->key))
            return s;
        h = atr_lb_hash(&h, sizeof(h));
    }
    /* every probe missed (few usable servers): a weighted choice by the key */
    return atr__lb_draw(lb, ok, -1, h);
}

/* The same mapping without ok[]: the key's candidates among the
 * primaries, each checked; -1 (the full filter, then the same probes and
 * the weighted choice) when the first PROBES all miss. */
static int pick_fast(atr_lb_t *lb)
{
    const table_t *t = &((hash_t *)lb)->t[0];
    uint64_t h = lb->key;

    if (t->slot == NULL)
        return -1;
    for (int probe = 0; probe < PROBES; probe++) {
        int s = t->slot[h % t->size];
        if (atr__lb_usable(lb, s) && admitted(lb, s, lb->key))
            return s;
        h = atr_lb_hash(&h, sizeof(h));
    }
    return -1;
}

static void dispose(atr_lb_t *lb)
{
    hash_t *self = (hash_t *)lb;
    free(self->t[0].slot);
    free(self->t[1].slot);
}

/* ---- `balance hash KEY [consistent];` ---- */

static const struct {
    const char *word; /* "header=" takes a name after the '=' */
    enum atr_lb_key_kind kind;
} keys[] = {
    { "addr", ATR_LB_KEY_ADDR },
    { "uri", ATR_LB_KEY_URI },
    { "header=", ATR_LB_KEY_HEADER },
    { "cookie=", ATR_LB_KEY_COOKIE },
};

/* A header or cookie name: an HTTP token, less what the config reads as a
 * comment or a quote, so that `-T` prints it back as it was. */
static int valid_name(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!(('a' <= *s && *s <= 'z') || ('A' <= *s && *s <= 'Z') || ('0' <= *s && *s <= '9') ||
              strchr("!$%&*+-.^_`|~", *s) != NULL))
            return 0;
    return 1;
}

static int parse(atr_lb_args_t *args, const char *arg, char *err, size_t errlen)
{
    if (arg == NULL) {
        if (args->key == ATR_LB_KEY_NONE)
            args->key = ATR_LB_KEY_ADDR;
        return 0;
    }
    if (strcmp(arg, "consistent") == 0) /* nginx's spelling; every hash here is */
        return 0;
    for (size_t i = 0; i < ATR_ARRAY_SIZE(keys); i++) {
        size_t wl = strlen(keys[i].word);
        int named = keys[i].word[wl - 1] == '=';
        if (named ? strncmp(arg, keys[i].word, wl) != 0 : strcmp(arg, keys[i].word) != 0)
            continue;
        if (args->key != ATR_LB_KEY_NONE) {
            snprintf(err, errlen, "a second key '%s' (one of addr, uri, header=NAME, cookie=NAME)", arg);
            return -1;
        }
        if (named && (!valid_name(arg + wl) || strlen(arg + wl) >= sizeof(args->name))) {
            snprintf(err, errlen, "invalid name in '%s' (a header or cookie name, under %zu bytes)",
                     arg, sizeof(args->name));
            return -1;
        }
        args->key = keys[i].kind;
        snprintf(args->name, sizeof(args->name), "%s", named ? arg + wl : "");
        return 0;
    }
    snprintf(err, errlen, "unknown hash key '%s' (expected addr, uri, header=NAME, cookie=NAME or "
             "consistent)", arg);
    return -1;
}

static void format(const atr_lb_args_t *args, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (size_t i = 0; i < ATR_ARRAY_SIZE(keys); i++)
        if (keys[i].kind == args->key && args->key != ATR_LB_KEY_ADDR) /* addr: the default */
            snprintf(buf, cap, " %s%s", keys[i].word, args->name);
}

const atr_lb_ops_t atr__lb_hash = {
    .name = "hash",
    .size = sizeof(hash_t),
    .init = init,
    .pick = pick,
    .dispose = dispose,
    .parse = parse,
    .format = format,
    .pick_fast = pick_fast,
};
