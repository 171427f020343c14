/* Server selection. A balancing method is a `static const atr_lb_ops_t` plus a
 * per-worker state struct that embeds atr_lb_t as its first member (h2o's
 * balancer.h is the model). Methods are listed in an explicit registry array
 * in balancer.c. Balancers never see a socket: they pick an index.
 *
 * Threads: one atr_lb_t per (worker, upstream), used only by that worker's
 * loop. The per-server counters they read (atr_server_state_t) are shared by
 * every worker and are atomics on their own cache line.
 *
 * docs/balancer.md describes the contract and how to add a method. */
#ifndef ATR_BALANCER_H
#define ATR_BALANCER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/registry.h"

/* Runtime state of one server, shared by all workers and carried over reloads
 * by (upstream name, server text). Owned by the control loop's registry,
 * refcounted so an old generation can still point at it. */
typedef struct atr_server_state {
    _Alignas(64) atomic_int active;     /* requests in flight on this server, all workers */
    atomic_uint_fast64_t down_until;    /* atr_now_ms() until which it is skipped; 0 = up */
    atomic_int refs;
    atomic_uint_fast64_t requests;      /* total requests sent (stats) */
    atomic_uint_fast64_t failures;      /* connect failures (stats) */
    atomic_uint_fast64_t errors;        /* 502/504 answered because of this server (stats) */
    atomic_uint_fast64_t responses[5];  /* response heads received, by class 1xx..5xx (stats) */
    atomic_int logged_down;             /* 1 while "server down" has been logged (log once per change) */
    atomic_int unhealthy;               /* 1 while its health check fails (core/health.c) */
    /* The last heartbeat from the server's address (core/heartbeat.c writes
     * them on the control loop, balance heartbeat reads them; each is read
     * on its own, so a pick may see a ready of one beat and a seen of the
     * next: harmless, both are at most a beat old). */
    atomic_int hb_ready;                /* idle capacity the server announced */
    atomic_int hb_busy;                 /* requests it announced in progress */
    atomic_uint_fast64_t hb_seen_ms;    /* atr_now_ms() of that beat; 0 = never */
    atomic_uint_fast64_t hb_port_ms;    /* the last beat naming this server's port (port=);
                                         * control loop only: while fresh, beats from the
                                         * address without port= leave the server alone */
    /* Passive outlier detection (balancer/outlier.c), counted across workers. */
    atomic_int outlier_fails;           /* failures in a row; any good response resets it */
    atomic_int outlier_run;             /* ejections in a row: the next lasts interval << run */
    atomic_uint_fast64_t ejected_until; /* atr_now_ms() until which it is ejected; kept after
                                         * (0 = never ejected) */
    atomic_uint_fast64_t ejections;     /* ejections so far (stats) */
    atomic_int logged_ejected;          /* 1 from an ejection until "back" is logged */
    /* When the server last came back into service (down, ejected, unhealthy, or added
     * by a reload or DNS), for slow_start: atr_lb_server_back. 0 = never left. */
    atomic_uint_fast64_t back_at;
    /* What the operator set at run time (core/control.c): ATR_LB_ADMIN_*.
     * Anything but READY takes the server out of every pick at once. */
    atomic_int admin;
    /* 1 while the placeholder of a `resolve` name waits for the name's first
     * answer (a reload added it): requests wait in the queue, as for a full
     * server, instead of failing at once (core/members.c). */
    atomic_int pending;
} atr_server_state_t;

/* A server's state as the operator set it (`atrium ctl drain|disable|enable`). */
enum atr_lb_admin {
    ATR_LB_ADMIN_READY = 0,      /* takes requests as the balancer decides */
    ATR_LB_ADMIN_DRAIN,          /* no new requests; those in flight finish; still health-checked */
    ATR_LB_ADMIN_DISABLED,       /* no new requests and no health checks (maintenance) */
};

/* How long a server's heartbeat counts (mod_lbmethod_heartbeat's
 * LBM_HEARTBEAT_MAX_LASTSEEN): older data is ignored by balance heartbeat. */
#define ATR_LB_HB_FRESH_MS 10000

/* Bumped by whoever stores a beat into a server's state (core/heartbeat.c):
 * balance heartbeat's table of weights is built again after a change, not
 * only when it has aged. */
extern atomic_uint atr_lb_hb_epoch;

/* 1 when st holds a beat at most ATR_LB_HB_FRESH_MS old at now_ms (a beat
 * stamped after now_ms, by a loop whose clock is ahead, is fresh). */
static inline int atr_lb_hb_fresh(atr_server_state_t *st, uint64_t now_ms)
{
    uint64_t seen = atomic_load_explicit(&st->hb_seen_ms, memory_order_relaxed);
    return seen != 0 && (seen >= now_ms || now_ms - seen <= ATR_LB_HB_FRESH_MS);
}

/* What a balancer sees of one server: immutable for the life of the atr_lb_t. */
typedef struct atr_lb_server {
    int weight;                  /* >= 1 */
    int max_conns;               /* 0 = unlimited */
    int backup;
    uint32_t slow_start;         /* ms over which a server that comes back ramps up; 0 = none */
    atr_server_state_t *state;   /* shared; read with atomics */
    const char *name;            /* the server as written (its `server` text), borrowed like the
                                  * array; NULL = use the index. Key-hashing methods place a server
                                  * by its name, so that removing another server, a reload or
                                  * another worker does not move its keys. */
} atr_lb_server_t;

typedef struct atr_lb atr_lb_t;

/* What a request's key is made of, for methods that hash one (`balance hash KEY;`). */
enum atr_lb_key_kind {
    ATR_LB_KEY_NONE = 0,  /* the method takes no key (every other method) */
    ATR_LB_KEY_ADDR,      /* the client address */
    ATR_LB_KEY_URI,       /* the request target as received */
    ATR_LB_KEY_HEADER,    /* the value of the header `name` */
    ATR_LB_KEY_COOKIE,    /* the value of the cookie `name` */
};

/* The arguments of `balance NAME ARG...;`, parsed by the method's ops->parse.
 * Plain data (no pointers): the config keeps a copy per upstream. */
typedef struct atr_lb_args {
    enum atr_lb_key_kind key;
    char name[64];               /* header or cookie name for HEADER and COOKIE, else "" */
} atr_lb_args_t;

/* A request's key inputs as plain strings, for atr_lb_key. Every field is
 * borrowed for the call only; a NULL pointer means absent. */
typedef struct atr_lb_key_in {
    const char *addr;            /* client address as text, without the port */
    size_t addr_len;
    const char *uri;             /* request target as received (path and query) */
    size_t uri_len;
    const char *header;          /* value of the header args->name (HEADER keys) */
    size_t header_len;
    const char *cookie;          /* value of the Cookie header (COOKIE keys); several Cookie
                                  * fields (HTTP/2) joined with "; " or the first one */
    size_t cookie_len;
} atr_lb_key_in_t;

typedef struct atr_lb_ops {
    const char *name;            /* as written in `balance NAME;`; first: a registry entry */
    size_t size;                 /* sizeof the method's state struct (embeds atr_lb_t first) */
    /* Set up method state after the base fields are filled. */
    void (*init)(atr_lb_t *lb);
    /* Pick a server index among those with ok[i] != 0, or -1 when none.
     * ok[] already excludes servers that are down, full (max_conns) or
     * already tried for this request, and holds at least one set entry. */
    int (*pick)(atr_lb_t *lb, const unsigned char *ok);
    /* Free what init allocated beyond `size` (NULL when nothing). Called by
     * atr_lb_free just before the state itself is freed. */
    void (*dispose)(atr_lb_t *lb);
    /* Optional: take one argument of `balance NAME ARG...;` into *args
     * (zeroed before the first), then once with arg NULL to settle the
     * defaults. 0, or -1 with a message in err (no position: the config
     * adds it). NULL: the method takes no argument. A method whose parse
     * sets args->key hashes atr_lb_pick_key's key. */
    int (*parse)(atr_lb_args_t *args, const char *arg, char *err, size_t errlen);
    /* Optional: args as `-T` writes them after the name, each with a leading
     * space, nothing for the defaults; NUL-terminated in buf[0..cap). */
    void (*format)(const atr_lb_args_t *args, char *buf, size_t cap);
    /* Optional: a response from `server` took rtt_us (request sent to
     * response head), seen at now_ms. Runs on the worker's loop, like pick. */
    void (*observe)(atr_lb_t *lb, int server, uint64_t now_ms, uint64_t rtt_us);
    /* Optional: `to` replaces `from` (the same method, a new set of servers
     * after a DNS change): carry over what keeps the sequence going, so a
     * new set does not restart every worker at its first server. */
    void (*carry)(atr_lb_t *to, const atr_lb_t *from);
    /* Optional, the common path: a usable primary (atr__lb_usable) chosen in
     * O(1) or O(log n) from the method's own structure, trying a few
     * candidates; or -1 when those were unusable, and atr_lb_pick falls
     * back to filtering every server into ok[] for `pick`. It must choose
     * as `pick` would over the usable primaries (the same distribution, the
     * same key mapping). NULL: always the O(n) path. */
    int (*pick_fast)(atr_lb_t *lb);
} atr_lb_ops_t;

struct atr_lb {
    const atr_lb_ops_t *ops;
    atr_lb_server_t *servers;    /* borrowed from the caller, nservers entries */
    int nservers;
    uint64_t rng;                /* per-worker PRNG state (xorshift64*) for random methods */
    unsigned char *ok;           /* nservers bytes of scratch for atr_lb_pick, owned by the lb */
    /* The primaries by configured weight, for O(1) weighted draws
     * (atr__lb_draw_fast): prim[k] a server index; Vose's alias table, position
     * k kept when 32 random bits fall under prob[k], else server alias[k]. All
     * weights equal: prob and alias are NULL. */
    int *prim;
    uint32_t *prob;
    int *alias;
    int nprim;
    /* The request being placed, valid during ops->pick only. */
    uint64_t now_ms;             /* as given to atr_lb_pick */
    uint64_t key;                /* atr_lb_pick_key's key; 0 from atr_lb_pick */
    const unsigned char *tried;  /* atr_lb_pick's tried[], NULL = none */
};

/* Every method, in the order `-T` and error messages show them; entries are
 * atr_lb_ops_t. The first is the default `balance`. The config looks names up
 * here and lists them in its messages, so a method's name is spelled only in
 * its own file. */
extern const atr_registry_t atr_lb_registry;

/* Registry lookup by name; NULL when unknown. */
const atr_lb_ops_t *atr_lb_find(const char *name);

/* The i-th registered method, NULL past the end. */
const atr_lb_ops_t *atr_lb_ops_at(size_t i);

/* Create a balancer over servers[0..n) (array borrowed, must outlive it).
 * seed seeds the PRNG (use a per-worker value). Free with atr_lb_free. */
atr_lb_t *atr_lb_new(const atr_lb_ops_t *ops, atr_lb_server_t *servers, int n, uint64_t seed);
void atr_lb_free(atr_lb_t *lb);

/* Pick a server for a request at time now_ms. tried[] (n entries, may be
 * NULL) marks servers already tried for this request. Skips servers that are
 * down (down_until > now_ms) or at max_conns; backups are used only when no
 * non-backup server is usable. Returns an index, or -1 when none is usable,
 * with *all_full = 1 when the only obstacle was max_conns (the caller queues
 * then rather than answering 503 at once).
 *
 * Precisely: a primary that is only full (not down, not tried) holds the
 * request among the primaries: the answer is -1 with *all_full = 1 rather
 * than a backup, because a full server frees up soon while a backup is a
 * standby for failures, not overflow (HAProxy's rule). Backups are tried when
 * every primary is down or already tried. *all_full is 1 whenever -1 is
 * returned and at least one candidate was skipped only for max_conns; it is
 * 0 on success. all_full may be NULL. The caller increments state->active
 * once it commits to the returned server. */
int atr_lb_pick(atr_lb_t *lb, uint64_t now_ms, const unsigned char *tried, int *all_full);

/* atr_lb_pick for a request whose key hash is `key` (atr_lb_key). Methods
 * that hash (ops->parse sets a key kind) map equal keys to the same server;
 * the others ignore it, so the caller may use this call for every method. */
int atr_lb_pick_key(atr_lb_t *lb, uint64_t now_ms, const unsigned char *tried, int *all_full,
                    uint64_t key);

/* Report that a response from `server` (an index atr_lb_pick returned)
 * took rtt_us, from the request's first byte sent to the response head,
 * at now_ms. A no-op for methods without ops->observe; call it on the
 * worker that owns lb. */
void atr_lb_observe(atr_lb_t *lb, int server, uint64_t now_ms, uint64_t rtt_us);

/* `to` takes over from `from` for the same upstream (a new set of members):
 * the method carries its position over (ops->carry); a no-op otherwise. */
void atr_lb_carry(atr_lb_t *to, const atr_lb_t *from);

/* ---- slow start ---- */

/* Effective weights are in 1/ATR_LB_WSCALE of a configured weight, so that a
 * server ramping up from a small share still has an integer weight. */
#define ATR_LB_WSCALE 256

/* Mark st as back in service at now_ms (after being down, ejected, unhealthy,
 * or new): a server with slow_start ramps up from there. Any thread. */
void atr_lb_server_back(atr_server_state_t *st, uint64_t now_ms);

/* The ramp itself, for atr_lb_weight_at: only while a server ramps. */
uint32_t atr__lb_ramp(const atr_lb_server_t *s, uint64_t back, uint64_t now_ms);

/* The weight the methods see for s at now_ms, in ATR_LB_WSCALE units: the
 * configured weight, or during slow_start after the server came back, a
 * share growing linearly from 1/32 to all of it. The common case (no
 * slow_start, or its ramp over) is a compare or two, no division. */
static inline uint32_t atr_lb_weight_at(const atr_lb_server_t *s, uint64_t now_ms)
{
    if (s->slow_start != 0) {
        uint64_t back = atomic_load_explicit(&s->state->back_at, memory_order_relaxed);
        if (back != 0 && now_ms < back + s->slow_start)
            return atr__lb_ramp(s, back, now_ms);
    }
    return (uint32_t)s->weight * ATR_LB_WSCALE;
}

/* For methods: server i's effective weight for the request being placed. */
static inline uint32_t atr__lb_weight(const atr_lb_t *lb, int i)
{
    return atr_lb_weight_at(&lb->servers[i], lb->now_ms);
}

/* ---- passive outlier detection (src/balancer/outlier.c) ---- */

/* `outlier consecutive=N interval=D max_interval=D max_ejected=P%;` of an
 * upstream. Plain data; consecutive 0 = off. */
typedef struct atr_lb_outlier {
    int consecutive;             /* failures in a row that eject a server */
    int max_ejected;             /* per cent of the pool that may be ejected at once */
    uint64_t interval;           /* ms of the first ejection; doubles with each in a row */
    uint64_t max_interval;       /* ms, the cap of the doubling */
    int all_5xx;                 /* errors=5xx: every 5xx response counts; errors=gateway (the
                                  * default): only 502, 503 and 504 (with refused, reset and
                                  * timed-out exchanges, which always count) */
} atr_lb_outlier_t;

/* What a result changed, for the caller to log once. */
enum atr_lb_outlier_event {
    ATR_LB_OUTLIER_NONE = 0,
    ATR_LB_OUTLIER_EJECTED,      /* servers[i] is ejected now, for *interval ms */
    ATR_LB_OUTLIER_BACK,         /* servers[i] answered well after its ejection ended */
};

/* Report how servers[i] of a pool of n (the upstream's servers, borrowed for
 * the call) did at now_ms: failed = a 5xx head, a timeout, a reset or a
 * refused connect; 0 = a response head below 500. `consecutive` failures in
 * a row (all workers) eject it for interval << (ejections in a row), capped
 * at max_interval, unless that would eject more than max_ejected per cent of
 * the pool (never all of it). Results seen while it is ejected do not count.
 * Any thread; lock-free (atomics in the shared states). *interval (may be
 * NULL) receives the ejection's length with ATR_LB_OUTLIER_EJECTED. */
enum atr_lb_outlier_event atr_lb_outlier_result(const atr_lb_outlier_t *o,
                                                const atr_lb_server_t *servers, int n, int i,
                                                int failed, uint64_t now_ms, uint64_t *interval);

/* ---- keys (src/balancer/key.c) ---- */

/* Parse `balance NAME ARG...;`'s arguments for ops into *args (zeroed
 * first). 0, or -1 with err naming the refused argument and *bad its index;
 * a method without ops->parse refuses any argument. */
int atr_lb_parse_args(const atr_lb_ops_t *ops, atr_lb_args_t *args, const char *const *argv,
                      int argc, int *bad, char *err, size_t errlen);

/* `balance NAME ARG...` as `-T` prints it, without the trailing ';'. */
void atr_lb_format(const atr_lb_ops_t *ops, const atr_lb_args_t *args, char *buf, size_t cap);

/* The hash of a request's key, for atr_lb_pick_key: the input args->key
 * names, taken from in. A HEADER or COOKIE key that the request lacks falls
 * back to the client address, so such requests still stick per client.
 * Stable across workers, reloads and restarts (no random seed). */
uint64_t atr_lb_key(const atr_lb_args_t *args, const atr_lb_key_in_t *in);

/* The hash atr_lb_key applies to bytes (64-bit FNV-1a, then a finalizer). */
uint64_t atr_lb_hash(const void *data, size_t len);

/* The value of cookie `name` in a Cookie header value ("a=1; b=2"), as a
 * view into it: 0 with *val, *vlen set, or -1 when absent. */
int atr_lb_cookie(const char *cookie, size_t len, const char *name, const char **val, size_t *vlen);

/* Next PRNG value (xorshift64*), for methods. */
uint64_t atr_lb_random(atr_lb_t *lb);

/* For methods in src/balancer only. Compares the load per unit of weight of
 * servers a and b: <0 when a is lighter, 0 when equal, >0 when heavier.
 * Cross-multiplies (active_a * weight_b vs active_b * weight_a), no division.
 * `active` is a relaxed atomic load each call: other workers move it. */
int atr__lb_load_cmp(const atr_lb_t *lb, int a, int b);

/* 1 while the server's shared state keeps it out of service: marked down
 * after a failure, failing its health check, or drained or disabled by the
 * operator. Every choice skips it, and the queue does not wait for it. */
static inline int atr_lb_out_of_service(const atr_server_state_t *st, uint64_t now_ms)
{
    return atomic_load_explicit(&st->down_until, memory_order_relaxed) > now_ms ||
           atomic_load_explicit(&st->unhealthy, memory_order_relaxed) ||
           atomic_load_explicit(&st->admin, memory_order_relaxed) != ATR_LB_ADMIN_READY;
}

/* For methods in src/balancer only, during pick_fast: server i is a primary
 * that the request may use now (not tried, down, unhealthy, ejected, drained
 * or disabled, or at max_conns): what atr_lb_pick's filter lets through, for one server. */
static inline int atr__lb_usable(const atr_lb_t *lb, int i)
{
    const atr_lb_server_t *s = &lb->servers[i];
    const atr_server_state_t *st = s->state;
    if (s->backup || (lb->tried != NULL && lb->tried[i]))
        return 0;
    if (atr_lb_out_of_service(st, lb->now_ms) ||
        atomic_load_explicit(&st->pending, memory_order_relaxed) ||
        atomic_load_explicit(&st->ejected_until, memory_order_relaxed) > lb->now_ms)
        return 0;
    return s->max_conns == 0 ||
           atomic_load_explicit(&st->active, memory_order_relaxed) < s->max_conns;
}

/* For methods in src/balancer only. A usable primary other than `skip` (-1:
 * none) drawn with probability proportional to its effective weight, in
 * O(1) (an alias table), or -1 after a few draws that found none (the
 * caller falls back to the O(n) way). A ramping server (slow_start) is
 * drawn by its configured weight and kept with the share it has now, which
 * makes the draw follow the effective weights without summing them. */
int atr__lb_draw_fast(atr_lb_t *lb, int skip);

/* For methods in src/balancer only: Vose's alias table over w[0..n) (each
 * >= 0, their sum > 0): a position k drawn uniformly is kept when 32 random
 * bits fall under prob[k], else it becomes alias[k] (a position too). */
void atr__lb_alias(const double *w, int n, uint32_t *prob, int *alias);

/* For methods in src/balancer only: the pick_fast of a power-of-two-choices
 * method. Two distinct usable primaries a and b drawn by effective weight
 * (atr__lb_draw_fast; b the O(n) way when draws keep missing), and b when
 * prefer(lb, b, a) is non-zero, else a; -1 when a cannot be drawn. */
int atr__lb_two_choices_fast(atr_lb_t *lb, int (*prefer)(atr_lb_t *lb, int b, int a));

/* For methods in src/balancer only: 1 to keep server i, a candidate chosen
 * by its configured weight, given 32 random bits r: always without
 * slow_start, else with the share of its weight it has now. */
int atr__lb_keep_ramping(atr_lb_t *lb, int i, uint32_t r);

/* For methods in src/balancer only. A server with ok[i] set, other than
 * `skip` (-1: none), chosen by weight with r (any 64-bit value: random, or a
 * key's hash for a deterministic choice); -1 when there is none. */
int atr__lb_draw(const atr_lb_t *lb, const unsigned char *ok, int skip, uint64_t r);

#endif
