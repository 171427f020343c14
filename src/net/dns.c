/* A c-ares channel on a libuv loop (specs-digest §6; Node's cares_wrap.cc
 * drives c-ares the same way). c-ares says which sockets it wants watched
 * through its socket-state callback; a uv_poll per socket hands readiness
 * back with ares_process_fd, and one timer follows ares_timeout. */
#include "net/dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

const char atr_dns_cancelled[] = "cancelled";

typedef struct dns_poll {
    uv_poll_t poll;
    ares_socket_t fd;
    atr_dns_t *d;
    struct dns_poll *next;
} dns_poll_t;

struct atr_dns {
    uv_loop_t *loop;
    ares_channel chan;
    uv_timer_t timer;
    dns_poll_t *polls;
    int handles;       /* open uv handles: the struct is freed at 0 once freeing */
    int freeing;
};

typedef struct query {
    atr_dns_t *d;
    atr_dns_cb cb;
    void *arg;
    int port, max;
} query_t;

static void handle_closed(uv_handle_t *h)
{
    atr_dns_t *d = h->data;
    if (h->type == UV_POLL)
        free(h); /* the dns_poll_t: poll is its first member */
    if (--d->handles == 0 && d->freeing)
        free(d);
}

/* Re-arm the timer after any call into c-ares. */
static void rearm(atr_dns_t *d);

static void on_timer(uv_timer_t *t)
{
    atr_dns_t *d = t->data;
    ares_process_fd(d->chan, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    rearm(d);
}

static void rearm(atr_dns_t *d)
{
    if (d->freeing)
        return;
    struct timeval tv, *tvp = ares_timeout(d->chan, NULL, &tv);
    if (tvp == NULL) {
        uv_timer_stop(&d->timer);
        return;
    }
    uint64_t ms = (uint64_t)tvp->tv_sec * 1000 + (uint64_t)tvp->tv_usec / 1000;
    uv_timer_start(&d->timer, on_timer, ms ? ms : 1, 0);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    dns_poll_t *dp = (dns_poll_t *)p;
    atr_dns_t *d = dp->d;
    ares_socket_t fd = dp->fd; /* dp may be closed during the call */
    if (status < 0) /* as Node does: let c-ares find the error on the socket */
        ares_process_fd(d->chan, fd, fd);
    else
        ares_process_fd(d->chan, (events & UV_READABLE) ? fd : ARES_SOCKET_BAD,
                        (events & UV_WRITABLE) ? fd : ARES_SOCKET_BAD);
    rearm(d);
}

static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    atr_dns_t *d = data;
    dns_poll_t **pp = &d->polls;
    while (*pp && (*pp)->fd != fd)
        pp = &(*pp)->next;
    dns_poll_t *dp = *pp;
    if (!readable && !writable) { /* c-ares closes fd right after this */
        if (dp) {
            *pp = dp->next;
            uv_poll_stop(&dp->poll);
            uv_close((uv_handle_t *)&dp->poll, handle_closed);
        }
        return;
    }
    if (dp == NULL) {
        dp = atr_xcalloc(1, sizeof *dp);
        dp->fd = fd;
        dp->d = d;
        if (uv_poll_init_socket(d->loop, &dp->poll, fd) < 0) {
            free(dp); /* the query times out through the timer */
            return;
        }
        dp->poll.data = d;
        d->handles++;
        dp->next = d->polls;
        d->polls = dp;
    }
    uv_poll_start(&dp->poll, UV_READABLE | (writable ? UV_WRITABLE : 0), on_poll);
}

atr_dns_t *atr_dns_new(uv_loop_t *loop, const struct sockaddr_storage *servers, int n,
                       unsigned timeout_ms, char *err, size_t errlen)
{
    static int lib_ready;
    if (!lib_ready && ares_library_init(ARES_LIB_INIT_ALL) == ARES_SUCCESS)
        lib_ready = 1;
    atr_dns_t *d = atr_xcalloc(1, sizeof *d);
    d->loop = loop;
    struct ares_options o;
    memset(&o, 0, sizeof o);
    o.sock_state_cb = on_sock_state;
    o.sock_state_cb_data = d;
    o.timeout = (int)timeout_ms;
    o.tries = 2;
    o.lookups = (char *)"b"; /* DNS only: /etc/hosts is no pool */
    /* EDNS with 1232-byte answers (the DNS flag day's size): without it a
     * pool of more than about 30 addresses does not fit in 512 bytes and
     * every lookup falls back to TCP. */
    o.flags = ARES_FLAG_EDNS;
    o.ednspsz = 1232;
    int rc = ares_init_options(&d->chan, &o, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS |
                                                 ARES_OPT_TRIES | ARES_OPT_LOOKUPS |
                                                 ARES_OPT_FLAGS | ARES_OPT_EDNSPSZ);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
        free(d);
        return NULL;
    }
    if (n > 0) {
        struct ares_addr_port_node *list = atr_xcalloc((size_t)n, sizeof *list);
        for (int i = 0; i < n; i++) {
            if (servers[i].ss_family == AF_INET6) {
                const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&servers[i];
                list[i].family = AF_INET6;
                memcpy(&list[i].addr.addr6, &a->sin6_addr, sizeof a->sin6_addr);
                list[i].udp_port = list[i].tcp_port = ntohs(a->sin6_port);
            } else {
                const struct sockaddr_in *a = (const struct sockaddr_in *)&servers[i];
                list[i].family = AF_INET;
                memcpy(&list[i].addr.addr4, &a->sin_addr, sizeof a->sin_addr);
                list[i].udp_port = list[i].tcp_port = ntohs(a->sin_port);
            }
            list[i].next = i + 1 < n ? &list[i + 1] : NULL;
        }
        rc = ares_set_servers_ports(d->chan, list);
        free(list);
        if (rc != ARES_SUCCESS) {
            snprintf(err, errlen, "c-ares: resolver: %s", ares_strerror(rc));
            ares_destroy(d->chan);
            free(d);
            return NULL;
        }
    }
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    uv_unref((uv_handle_t *)&d->timer); /* a pending query does not keep a stopping loop */
    d->handles = 1;
    return d;
}

static int addr_cmp(const void *a, const void *b)
{
    const struct sockaddr_storage *x = a, *y = b;
    if (x->ss_family != y->ss_family)
        return x->ss_family < y->ss_family ? -1 : 1;
    if (x->ss_family == AF_INET)
        return memcmp(&((const struct sockaddr_in *)x)->sin_addr,
                      &((const struct sockaddr_in *)y)->sin_addr, 4);
    return memcmp(&((const struct sockaddr_in6 *)x)->sin6_addr,
                  &((const struct sockaddr_in6 *)y)->sin6_addr, 16);
}

/* The answer's addresses with the port, sorted (an answer in another order
 * is the same set), without repeats, at most max. Returns how many. */
static int collect(const struct ares_addrinfo *res, int port, int max,
                   struct sockaddr_storage *out, uint32_t *ttl)
{
    int n = 0, cap = 0;
    *ttl = UINT32_MAX;
    for (const struct ares_addrinfo_node *a = res->nodes; a; a = a->ai_next) {
        if (a->ai_family != AF_INET && a->ai_family != AF_INET6)
            continue;
        if (a->ai_ttl >= 0 && (uint32_t)a->ai_ttl < *ttl)
            *ttl = (uint32_t)a->ai_ttl;
        if (cap++ >= 4 * max) /* bounded work for a huge answer */
            break;
        memset(&out[n], 0, sizeof out[n]);
        memcpy(&out[n], a->ai_addr, a->ai_addrlen);
        if (a->ai_family == AF_INET)
            ((struct sockaddr_in *)&out[n])->sin_port = htons((uint16_t)port);
        else
            ((struct sockaddr_in6 *)&out[n])->sin6_port = htons((uint16_t)port);
        n++;
    }
    for (const struct ares_addrinfo_cname *c = res->cnames; c; c = c->next)
        if (c->ttl >= 0 && (uint32_t)c->ttl < *ttl)
            *ttl = (uint32_t)c->ttl; /* the records live no longer than the alias to them */
    qsort(out, (size_t)n, sizeof *out, addr_cmp);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (k == 0 || addr_cmp(&out[k - 1], &out[i]) != 0)
            out[k++] = out[i];
    return k < max ? k : max;
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    query_t *q = arg;
    (void)timeouts;
    if (status == ARES_EDESTRUCTION || q->d->freeing) {
        ares_freeaddrinfo(res);
        q->cb(q->arg, atr_dns_cancelled, NULL, 0, 0);
        free(q);
        return;
    }
    struct sockaddr_storage *addrs = NULL;
    int n = 0;
    uint32_t ttl = 0;
    if (status == ARES_SUCCESS && res != NULL) {
        int count = 0;
        for (const struct ares_addrinfo_node *a = res->nodes; a; a = a->ai_next)
            count++;
        addrs = atr_xcalloc((size_t)(count ? count : 1), sizeof *addrs);
        n = collect(res, q->port, q->max, addrs, &ttl);
    }
    ares_freeaddrinfo(res);
    if (n > 0)
        q->cb(q->arg, NULL, addrs, n, ttl);
    else
        q->cb(q->arg, status == ARES_SUCCESS ? "no address in the answer" : ares_strerror(status),
              NULL, 0, 0);
    free(addrs);
    free(q);
}

void atr_dns_query(atr_dns_t *d, const char *host, int port, int max, atr_dns_cb cb, void *arg)
{
    query_t *q = atr_xmalloc(sizeof *q);
    *q = (query_t){ d, cb, arg, port, max };
    struct ares_addrinfo_hints h;
    memset(&h, 0, sizeof h);
    h.ai_flags = ARES_AI_NOSORT; /* sorting would connect() a UDP socket to every address */
    h.ai_family = AF_UNSPEC;
    ares_getaddrinfo(d->chan, host, NULL, &h, on_addrinfo, q);
    rearm(d);
}

void atr_dns_free(atr_dns_t *d)
{
    if (d == NULL)
        return;
    d->freeing = 1;
    ares_destroy(d->chan); /* queries end with ARES_EDESTRUCTION; sockets close (on_sock_state) */
    uv_timer_stop(&d->timer);
    uv_close((uv_handle_t *)&d->timer, handle_closed);
}
