/* Worker threads: one libuv loop each, its own SO_REUSEPORT listener per
 * address, its own client connections and backend pools. A connection never
 * changes loop. Workers never block and never lock on the request path: the
 * only lock guards the mailbox the control loop drops new generations into. */
#ifndef ATR_WORKER_H
#define ATR_WORKER_H

#include <sys/socket.h>
#include <uv.h>

#include "base/metrics.h"
#include "base/slab.h"
#include "net/gen.h"

typedef struct atr_conn atr_conn_t;

/* A listening socket handed from the control loop: the worker owns fd once it
 * has taken the message. */
typedef struct atr_listen_fd {
    char *key;  /* listen text, e.g. "127.0.0.1:8080" */
    int fd;     /* -1: keep the one the worker already has */
} atr_listen_fd_t;

typedef struct atr_listener {
    uv_poll_t poll;           /* readable: connections wait (we accept them ourselves) */
    uv_timer_t pause;         /* out of descriptors with none to shed: poll again later */
    int handles;              /* open uv handles (poll, pause); freed at 0 */
    int fd;
    int reserve_fd;           /* held open, given up to shed connections on EMFILE */
    struct sockaddr_storage local; /* the bound address; its family is 0 for a wildcard */
    char *key;
    struct atr_worker *w;
    struct atr_listener *next;
    uint64_t last_error_log;  /* loop time of the last accept error logged */
} atr_listener_t;

/* Worker-local state for one generation. Modules keep theirs in a slot
 * (net/hooks.h: the proxy core's balancers, pools and queues). Each request
 * holds a reference; the last one frees it (the modules' wgen free hooks
 * close what they hold, such as idle pooled connections). */
#define ATR_WGEN_SLOTS 4
typedef struct atr_wgen {
    int refs;
    struct atr_worker *w;
    atr_gen_t *gen;
    void *slots[ATR_WGEN_SLOTS];  /* a module's state, by the index atr_wgen_slot_new gave it */
    uint64_t retire_at;    /* replaced by a reload: its requests are cut at this time (0: current) */
} atr_wgen_t;

/* Per-worker free lists for the large objects every request needs (parsers,
 * parsed heads, I/O buffers): taking them from here instead of malloc keeps
 * them off the request path, and idle connections still hold none. Flushed
 * when a new generation arrives (limits and buffer sizes may change). */
enum atr_cache_kind { ATR_CACHE_REQ_PARSER = 0, ATR_CACHE_RESP_PARSER, ATR_CACHE_MSG,
                      ATR_CACHE_BUF, ATR_CACHE_REQ, ATR_CACHE_WRITE, ATR_CACHE_PROXY,
                      ATR_CACHE_HEAD, ATR_CACHE_NKINDS };
#define ATR_CACHE_MAX 64

typedef struct atr_cache {
    void *items[ATR_CACHE_MAX];
    int n;
} atr_cache_t;

typedef struct atr_worker {
    int id;
    uv_thread_t thread;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t drain_timer;
    uv_timer_t idle_timer;         /* gives cached memory back after a quiet half second */
    uint64_t requests;             /* requests started, for the idle check */
    uint64_t requests_at_tick;

    /* mailbox, guarded by lock */
    uv_mutex_t lock;
    atr_gen_t *next_gen;
    atr_listen_fd_t *next_listen;
    int next_nlisten;
    int stop_requested;
    int members_changed;       /* atr_worker_members_changed since the last wake */

    /* loop-owned */
    atr_wgen_t *wgen;          /* current */
    atr_listener_t *listeners;
    atr_conn_t *conns;         /* every client connection (doubly linked) */
    int nconns;
    int accept_paused;         /* at the generation's max_conns: listeners not polled */
    int stopping;
    uint64_t seed;
    atr_cache_t caches[ATR_CACHE_NKINDS];
    atr_slab_t conn_slab;          /* client connection structs */
    uv_idle_t kick_idle;           /* runs the kicks (net/sock.h atr_sock_kick) */
    atr_gen_cache_t *session_cache;            /* the TLS session cache attached (ref held) */
    struct atr_socache_local *session_local;   /* this loop's side of it */
    struct atr_sock **kicks;
    int nkicks, kicks_cap;
    atr_metrics_t metrics;         /* written by this loop only; read by any worker's status page */
    char name[8];              /* "w1" for log lines */
} atr_worker_t;

/* Process-wide facts the status page reads on any worker: the worker set
 * (fixed from start to exit) and reload counts, written by the control loop. */
typedef struct atr_process {
    atr_worker_t **workers;
    int nworkers;
    uint64_t start_unix_ms;
    atomic_uint_fast64_t reloads_ok, reloads_failed;
    atomic_uint_fast64_t dns_failures;   /* lookups of `resolve` names that failed */
    atomic_int dns_failing;              /* names whose last lookup failed */
    atomic_int workers_ready;            /* workers listening with their first generation */
} atr_process_t;
extern atr_process_t atr_process;

/* Control loop side. */
atr_worker_t *atr_worker_new(int id);
int atr_worker_start(atr_worker_t *w);
/* Post a generation (ref taken here) and the listener set (fds moved to the
 * worker) to the mailbox; the worker applies it on its own loop. */
void atr_worker_post(atr_worker_t *w, atr_gen_t *gen, atr_listen_fd_t *ls, int nls);
void atr_worker_stop(atr_worker_t *w);   /* graceful: drain, then exit the thread */
/* An upstream of the current generation has new members (atr_gen_set_members):
 * the worker runs the members hooks on its loop. */
void atr_worker_members_changed(atr_worker_t *w);
void atr_worker_join_free(atr_worker_t *w);

/* Loop side. */
/* Take a cached object of this kind, NULL when none. */
static inline void *atr_cache_get(atr_worker_t *w, enum atr_cache_kind k)
{
    atr_cache_t *c = &w->caches[k];
    return c->n ? c->items[--c->n] : NULL;
}
/* Give one back (freed when the cache is full). Parsers must be reset. */
void atr_cache_put(atr_worker_t *w, enum atr_cache_kind k, void *p);
void atr_cache_flush(atr_worker_t *w);
/* I/O buffers of the current generation's buffer_size come from the cache;
 * other sizes (a grown head buffer) are plain malloc/free. */
char *atr_cache_buf_get(atr_worker_t *w, uint32_t *cap);
void atr_cache_buf_put(atr_worker_t *w, char *buf, uint32_t cap);

/* Buffers for encoded heads: every proxied request writes two. A head that
 * outgrows ATR_HEAD_CAP is realloc'ed as usual. Any malloc'ed head may be put
 * back (or NULL: nothing); only those of about ATR_HEAD_CAP are kept. */
#define ATR_HEAD_CAP 1024
char *atr_cache_head_get(atr_worker_t *w);
void atr_cache_head_put(atr_worker_t *w, char *head);

void atr_wgen_ref(atr_wgen_t *wg);
void atr_wgen_unref(atr_wgen_t *wg);
/* A connection went away; once stopping and none left, the worker exits. */
void atr_worker_conn_gone(atr_worker_t *w);

/* Socks were kicked (atr_sock_kick): run them on the loop's next turn. */
void atr_worker_want_kicks(atr_worker_t *w);

/* At max_connections: stop taking connections (they wait in the listen
 * backlog) until one closes. */
void atr_worker_pause_accept(atr_worker_t *w);

#endif
