/* The proxy core's private parts, shared by proxy.c (dispatch, pools,
 * connections, the request side) and proxy_response.c (the response side
 * and upgrade tunnels). Nothing outside src/backends/proxy*.c uses this. */
#ifndef ATR_PROXY_PRIV_H
#define ATR_PROXY_PRIV_H

#include "backends/backend.h"
#include "net/conn.h"
#include "net/sock.h"
#include "backends/proxy.h"

typedef struct atr_bconn atr_bconn_t;
typedef struct atr_pool atr_pool_t;
typedef struct atr_queue atr_queue_t;

/* What a worker chooses from for one upstream: a set of members with its
 * balancer and idle connections. When the members change (DNS), the worker
 * makes a new view and moves the idle connections of the members that stay;
 * requests placed from the old view finish on it (it lives while they do). */
typedef struct atr_px_view {
    int refs;              /* the generation's while current, + each exchange and connection on it */
    atr_members_t *ms;     /* reference held */
    atr_lb_t *lb;
    atr_pool_t *pools;     /* ms->n: idle connections per member */
} atr_px_view_t;

/* The proxy core's state per worker generation (its slot in atr_wgen_t). */
typedef struct atr_px_wgen {
    atr_px_view_t **views; /* per upstream: the current view */
    atr_queue_t **queues;  /* per upstream: requests waiting for max_conns */
} atr_px_wgen_t;

extern int atr__px_slot;
static inline atr_px_wgen_t *atr__pxw(const atr_wgen_t *wg)
{
    return wg->slots[atr__px_slot];
}

/* The current view of upstream ups in wg. */
static inline atr_px_view_t *atr__px_view(const atr_wgen_t *wg, int ups)
{
    return atr__pxw(wg)->views[ups];
}

/* The proxy exchange a request's handler state holds (NULL once detached). */
static inline atr_proxy_t *atr__px_of(const atr_req_t *r)
{
    return r->handler_data;
}

struct atr_pool {                 /* one per server, per worker generation */
    atr_bconn_t *idle;
    int nidle;
};

struct atr_queue {                /* per upstream, per worker generation */
    atr_proxy_t *head, *tail;
    int n;
    atr_wgen_t *wg;
    int ups;
    atr_queue_t *wnext, *wprev;   /* the worker's list of queues with requests waiting */
};

struct atr_bconn {
    atr_sock_t s;                 /* first: the transport (input buffer, timer with kind BT_*,
                                   * references); s.out is a script's stdin for CGI */
    atr_wgen_t *wg;               /* owner of the pool; may be gone once closing */
    const atr_backend_ops_t *ops; /* the protocol */
    int ups, server;              /* server: a member of view */
    atr_px_view_t *view;          /* reference held */
    atr_proxy_t *px;              /* NULL while idle in the pool */
    atr_bconn_t *next;            /* pool list */
    void *child;                  /* a spawned backend's process (ops->spawn), NULL otherwise */
    int nreqs;
    unsigned connected : 1;
};

enum { BT_NONE = 0, BT_CONNECT, BT_READ, BT_SEND, BT_IDLE };

enum px_phase {
    PX_SPOOLING = 1, /* reading a chunked body to a file first (proxy_spool.c) */
    PX_QUEUED,
    PX_CONNECTING,
    PX_SENDING,
    PX_STREAMING,
    PX_TUNNEL,
    PX_DONE
};

typedef struct atr_spool atr_spool_t;

struct atr_proxy {
    atr_req_t *r;
    atr_wgen_t *wg;
    int ups;
    const atr_conf_upstream_t *u;
    const atr_backend_ops_t *ops;
    enum px_phase phase;
    atr_px_view_t *view;          /* the members it is placed among (reference held) */
    int server;                   /* chosen member of view, -1 none */
    unsigned char *tried;         /* per member of view: 1 once tried; tried_inline or the heap */
    size_t ntried;
    int attempts;
    atr_bconn_t *bc;
    char *head;                   /* encoded request head, kept for retries */
    size_t head_len;
    enum atr_http_body req_framing;
    int idempotent;
    int req_body_done;            /* whole request body written to the backend */
    int req_bytes_sent;           /* any body byte went out: no retry */
    int write_failed;             /* a write to the backend failed: a body may be lost */
    int req_writing;              /* a backend write is pending */
    int resp_writing;             /* a client write is pending */
    atr_http_parser_t *rparser;
    atr_http_msg_t *rmsg;
    atr_body_t rbody;
    int resp_head_done;
    int resp_done;
    int reusable;
    int fail_status;              /* 502 (refused) or 504 (timed out) once a try failed */
    uint64_t lb_key;              /* the request's balancing key (balance hash), 0 = none */
    int stale_retried;            /* a pooled connection died unanswered: one fresh try on the
                                   * same server was made (not counted in attempts) */
    uint64_t t_start;
    uint64_t t_sent_ms;           /* the loop's clock when the request went out (histogram) */
    char *client_head;            /* response head waiting to go out with the first body bytes */
    size_t client_head_len;
    uv_timer_t *qtimer;
    atr_proxy_t *qnext;
    int dec_done;                 /* the backend's response stream ended (decoder) */
    int slot_moved;               /* the server slot is held by a CGI child until it exits */
    atr_spool_t *spool;           /* a spooled request body, NULL when it streams */
    _Alignas(16) unsigned char dec[256]; /* the protocol decoder's state */
    char scratch[ATR_FRAME_MAX_VIEWS][ATR_FRAME_SCRATCH];
    /* Most upstreams are small: no allocation per request for tried[] (a
     * calloc per request cost 5% of a proxied request's instructions:
     * glibc's calloc bypasses the thread cache). Past the memset that
     * recycles a proxy; cleared per use. */
    unsigned char tried_inline[64];
};

/* proxy.c */
void atr__px_dispatch(atr_proxy_t *px);            /* pick a server and a connection (again) */
void atr__px_use_server(atr_proxy_t *px);          /* a connection to the server px holds a slot on */
void atr__px_fail(atr_proxy_t *px, int status, const char *why); /* answer status or cut the response */
/* The server px tried failed this request before answering: drop the
 * connection and go to the next server while tries remain, else answer
 * status. down: the server cannot be reached (refused, timed out) and is
 * skipped for fail_timeout; a server that took the connection and closed it
 * unanswered is left to the next connect to judge. */
void atr__px_server_failed(atr_proxy_t *px, int status, const char *why, int down);
void atr__px_end(atr_proxy_t *px);               /* detach from the request and free */
void atr__server_release(atr_proxy_t *px);       /* give the server slot back, wake the queue */
void atr__server_count_response(atr_proxy_t *px, int status); /* the server's stats */
void atr__arm_read_timer(atr_proxy_t *px);       /* the request is out: time the response */
void atr__queue_kick(atr_wgen_t *wg, int ups);   /* a slot is free: start the next waiter */
/* Events of px's backend connection (proxy_conn.c calls these). */
void atr__px_on_connect(atr_proxy_t *px, int status);
void atr__px_on_written(atr_proxy_t *px, int status);
void atr__px_on_timeout(atr_proxy_t *px, int kind);  /* BT_CONNECT, BT_READ or BT_SEND */

/* proxy_conn.c: backend connections */
atr_bconn_t *atr__bc_take_idle(atr_proxy_t *px, int s); /* a pooled one to server s, or NULL */
atr_bconn_t *atr__bc_connect(atr_proxy_t *px, int s);   /* connecting (BT_CONNECT timed), or NULL */
atr_bconn_t *atr__bc_spawn(atr_proxy_t *px, int s);     /* a process (ops->spawn), or NULL */
int atr__bc_write(atr_proxy_t *px, uv_buf_t *bufs, unsigned n); /* 0, 1 pending (BT_SEND), <0 */
void atr__bc_close(atr_bconn_t *bc);
void atr__bc_park(atr_bconn_t *bc);              /* back to the pool, or close */
void atr__pool_close_idle(atr_px_view_t *v, int s);  /* member s's idle ones, this worker */

/* proxy_view.c: views */
atr_px_view_t *atr__px_view_new(atr_wgen_t *wg, int ups, atr_members_t *ms); /* takes ms's ref */
void atr__px_view_unref(atr_px_view_t *v);
void atr__px_views_init(atr_wgen_t *wg);
void atr__px_views_free(atr_wgen_t *wg);
void atr__px_members_changed(atr_wgen_t *wg);    /* the atr_hook_members hook */
/* Where a connection of member s of view `from` belongs in view `to`: its
 * index there, or -1 when it is no member any more. */
int atr__px_view_find(const atr_px_view_t *to, const atr_px_view_t *from, int s);

/* The head is final (m valid during the call): encode it, consume it, go. */
void atr__px_begin(atr_proxy_t *px, const atr_http_msg_t *m);

/* proxy_spool.c */
void atr__px_spool_start(atr_proxy_t *px);       /* copy the head, consume it, spool the body */
void atr__px_spool_pump(atr_proxy_t *px);        /* more body arrived */
int atr__px_spool_next(atr_proxy_t *px, atr_str_t *v); /* the next piece: ATR_AGAIN/DONE/ERROR */
void atr__px_spool_free(atr_proxy_t *px);

/* proxy_response.c */
/* New raw bytes at bc->buf + bc->len: decode them in place (FastCGI). 0
 * when the exchange failed and was answered already. */
int atr__px_decode(atr_proxy_t *px, size_t nread);
int atr__px_ended(const atr_proxy_t *px);       /* the response stream is over */
void atr__px_on_backend_data(atr_proxy_t *px, ssize_t nread); /* nread < 0: end of stream */
void atr__px_pump_response(atr_proxy_t *px);
void atr__tunnel_pump_up(atr_proxy_t *px);       /* client -> backend bytes of a tunnel */
void atr__tunnel_written(atr_proxy_t *px, int status); /* a queued tunnel write finished */

#endif
