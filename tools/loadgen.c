/* tools/loadgen: an open-loop HTTP/1.1 load generator for tools/bench.
 *
 * wrk keeps N connections busy (closed loop): a slower server simply gets fewer
 * requests, so its latency percentiles are measured at a different load than a
 * faster server's. To compare latency "at the same load", loadgen sends requests
 * at a fixed rate on a schedule that does not wait for the server, over C
 * keep-alive connections (one request in flight on each), and measures every
 * request's latency from the moment the schedule said it should be sent. A
 * request that had to wait for a free connection has that wait in its latency,
 * as a real client would see it (no "coordinated omission").
 *
 *   loadgen -p PORT[,PORT...] [-h 127.0.0.1] [-u /1k] -r RATE -d SECONDS [-w WARMUP]
 *           [-c CONNS] [-s SLICE] [-n] [-t] [-V 1.2|1.3]
 *
 * -r 0 runs closed loop instead (as wrk does): each of the CONNS connections sends its
 * next request as soon as the previous one is answered, so the server's speed sets the
 * rate; the latency is then counted from each send.
 *
 * -n opens a new connection for every request (sent with "Connection: close"): the
 * connection is made when the request is due, the response is read, loadgen waits for
 * the server to close and then resets its side (SO_LINGER 0: no TIME_WAIT on either side,
 * so tens of thousands of connections a second do not run out of ports). CONNS is then
 * the number of such connections at once. Without -n the CONNS connections are opened at
 * the start and kept alive.
 *
 * -t speaks TLS (the system OpenSSL; built only when meson finds it): TLS 1.3 (-V 1.2:
 * TLS 1.2), X25519 only (TLS 1.2 also lists P-256 after it, as a TLS 1.2 server may only
 * use an ECDSA certificate on a curve the client lists), AES-128-GCM only (so every server, whatever its own preference,
 * runs the same cipher), ALPN http/1.1, SNI "localhost", no certificate chain check (the
 * server's CertificateVerify signature is still checked, as TLS requires). Every
 * connection is a new SSL object that is never given a session, so it offers neither a
 * session ID nor a ticket nor a PSK: every handshake is full. "handshakes" counts them,
 * "resumed" counts those the library reports as resumed (SSL_session_reused(); always 0
 * unless something is wrong), "tickets" the session tickets the server sent (counted,
 * then dropped).
 *
 * With several ports, the schedule's time is cut into slices of SLICE seconds (default 1)
 * that go to the ports in turn, each port with its own CONNS connections: servers
 * compared this way see the same rate and, on a host whose speed drifts (a VM with
 * steal time), the same drift, where back-to-back runs would each see their own.
 *
 * Prints one JSON object on stdout, with one entry per port in "targets". Responses must
 * carry Content-Length; a response without it, a connection closed by the server, or a
 * status other than 2xx counts as an error (the connection is reopened). One exception,
 * as in browsers: a server may close an idle keep-alive connection just as a request
 * goes out on it, so a request whose connection, taken idle, closes before any byte of
 * the answer is sent once more on a new connection ("retried"; its latency keeps its
 * first schedule). Everything is bounded: CONNS <= 10000 per port, 8 ports, the backlog
 * of scheduled requests waiting for a connection <= 1,000,000 (beyond that the server is
 * hopelessly behind and the run ends with "overloaded": true). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifdef LG_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#endif

#define MAX_CONNS 10000
#define MAX_TARGETS 8
#define MAX_BACKLOG 1000000
#define BUF_SIZE 65536
#define DRAIN_NS 2000000000ull /* after the last send, wait this long for answers */

typedef struct lg_target lg_target_t;

enum { ST_IDLE, ST_HANDSHAKE, ST_BUSY, ST_CLOSING };

typedef struct {
    lg_target_t *t;
    int fd;              /* -1: a -n slot between connections */
#ifdef LG_TLS
    SSL *ssl;            /* with -t */
#endif
    int state;           /* -n: connecting (TLS handshake), busy, waiting for the close */
    int busy;            /* a request is in flight */
    int may_retry;       /* the request went out on a connection that sat idle */
    uint64_t sched;      /* its scheduled send time */
    size_t have;         /* bytes of the response read so far */
    size_t need;         /* head + Content-Length, once the head is complete */
    char buf[BUF_SIZE];
} lg_conn_t;

/* One server under test: its connections, its waiting requests, its results. */
struct lg_target {
    struct sockaddr_in addr;
    char req[1024];
    size_t req_len;
    lg_conn_t *conns;
    lg_conn_t **idle; /* stack of connections with nothing in flight */
    size_t n_idle;
    uint64_t *backlog; /* scheduled times waiting for a free connection (a ring) */
    size_t bl_head, bl_len, max_backlog;
    uint64_t *lat;     /* latencies of measured requests, ns */
    size_t n_lat, cap;
    uint64_t scheduled, completed, errors, non2xx;
    uint64_t idle_closed; /* connections the server closed (or wrote to) while idle */
    uint64_t retried;     /* requests sent again after an idle-taken connection closed */
    uint64_t answered;    /* responses, warm-up included (CPU per request over a whole run) */
    uint64_t handshakes, resumed, tickets; /* -t */
    char tls_info[160];   /* -t: version, cipher, group, peer key of the last handshake */
    int in_flight;
};

static int g_ep;
static int g_newconn; /* -n */
#ifdef LG_TLS
static SSL_CTX *g_tls; /* -t */
#endif

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
    exit(2);
}

#ifdef LG_TLS
static void die_tls(const char *what)
{
    unsigned long e = ERR_get_error();
    if (e != 0) {
        char msg[256];
        ERR_error_string_n(e, msg, sizeof msg);
        fprintf(stderr, "loadgen: %s: %s\n", what, msg);
        exit(2);
    }
    die(what);
}
#endif

/* Read what is there into c->buf: the byte count, 0 when the server closed, -1 when the
 * connection broke, LG_AGAIN when nothing (or only TLS handshake messages) came. */
#define LG_AGAIN (-2)
static ssize_t conn_recv(lg_conn_t *c)
{
#ifdef LG_TLS
    if (c->ssl != NULL) {
        if (c->have == BUF_SIZE)
            return -1;
        ERR_clear_error();
        int r = SSL_read(c->ssl, c->buf + c->have, (int)(BUF_SIZE - c->have));
        if (r > 0)
            return r;
        switch (SSL_get_error(c->ssl, r)) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE: return LG_AGAIN;
        case SSL_ERROR_ZERO_RETURN: return 0; /* close_notify, or EOF (IGNORE_UNEXPECTED_EOF) */
        case SSL_ERROR_SYSCALL: return r == 0 ? 0 : -1; /* BoringSSL: EOF without close_notify */
        default: return -1;
        }
    }
#endif
    ssize_t r = recv(c->fd, c->buf + c->have, BUF_SIZE - c->have, 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return LG_AGAIN;
    return r;
}

#ifdef LG_TLS
static void tls_note(lg_conn_t *c)
{
    lg_target_t *t = c->t;
    t->handshakes++;
    t->resumed += SSL_session_reused(c->ssl) ? 1 : 0;
    if (t->tls_info[0] != '\0')
        return;
#ifdef OPENSSL_IS_BORINGSSL
    const char *group = SSL_get_curve_name(SSL_get_curve_id(c->ssl));
    const char *sig = SSL_get_signature_algorithm_name(SSL_get_peer_signature_algorithm(c->ssl), 0);
#else
    int nid = SSL_get_negotiated_group(c->ssl);
    const char *group = nid > 0 ? OBJ_nid2sn(nid) : NULL;
    nid = 0;
    SSL_get_peer_signature_type_nid(c->ssl, &nid);
    const char *sig = nid > 0 ? OBJ_nid2sn(nid) : NULL;
#endif
    snprintf(t->tls_info, sizeof t->tls_info, "%s %s %s %s", SSL_get_version(c->ssl),
             SSL_get_cipher_name(c->ssl), group ? group : "?", sig ? sig : "?");
}

/* A new SSL object on c->fd, never given a session: a full handshake. */
static void tls_new(lg_conn_t *c)
{
    c->ssl = SSL_new(g_tls);
    if (c->ssl == NULL || !SSL_set_fd(c->ssl, c->fd) ||
        !SSL_set_tlsext_host_name(c->ssl, "localhost"))
        die_tls("SSL_new");
    SSL_set_app_data(c->ssl, c);
}

/* The server sent a session ticket: count it; we keep no session (return 0). */
static int on_ticket(SSL *ssl, SSL_SESSION *sess)
{
    (void)sess;
    lg_conn_t *c = SSL_get_app_data(ssl);
    c->t->tickets++;
    return 0;
}
#endif

static int conn_is_tls(const lg_conn_t *c)
{
#ifdef LG_TLS
    return c->ssl != NULL;
#else
    (void)c;
    return 0;
#endif
}

/* Close c's socket; with rst, reset it (SO_LINGER 0) so that no TIME_WAIT stays. */
static void conn_close(lg_conn_t *c, int rst)
{
#ifdef LG_TLS
    if (c->ssl != NULL) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
#endif
    if (rst) {
        struct linger lin = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
    }
    close(c->fd);
    c->fd = -1;
}

/* A blocking connect (loopback: immediate), then non-blocking for the run. A kept-alive
 * TLS connection does its handshake here, blocking; a -n one in the event loop. */
static void conn_open(lg_conn_t *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket");
    if (connect(c->fd, (struct sockaddr *)&c->t->addr, sizeof c->t->addr) < 0)
        die("connect");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
#ifdef LG_TLS
    if (g_tls != NULL && !g_newconn) {
        tls_new(c);
        if (SSL_connect(c->ssl) != 1)
            die_tls("TLS handshake");
        tls_note(c);
    }
#endif
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(g_ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        die("epoll_ctl");
    c->busy = 0;
    c->state = ST_IDLE;
    c->have = c->need = 0;
}

static void conn_reopen(lg_conn_t *c)
{
    conn_close(c, 0);
    conn_open(c);
}

/* Write the request; it is small and the connection idle, so it fits at once. */
static int conn_write_req(lg_conn_t *c)
{
#ifdef LG_TLS
    if (c->ssl != NULL) {
        ERR_clear_error();
        return SSL_write(c->ssl, c->t->req, (int)c->t->req_len) == (int)c->t->req_len ? 0 : -1;
    }
#endif
    ssize_t n = send(c->fd, c->t->req, c->t->req_len, MSG_NOSIGNAL);
    return n == (ssize_t)c->t->req_len ? 0 : -1;
}

/* Send the request. may_retry: c sat idle before this request (see "retried" above). */
static int conn_send(lg_conn_t *c, uint64_t sched, int may_retry)
{
    if (conn_write_req(c) < 0)
        return -1;
    c->busy = 1;
    c->state = ST_BUSY;
    c->may_retry = may_retry;
    c->sched = sched;
    c->have = c->need = 0;
    return 0;
}

/* Send on a new connection in place of c's broken one. */
static void conn_resend(lg_conn_t *c, uint64_t sched)
{
    conn_reopen(c);
    /* opened for this request: its failure is the server's answer, not a race */
    if (conn_send(c, sched, 0) < 0)
        die("send on a new connection");
}

/* -n: the TLS handshake went on (or started): send the request once it is done.
 * 0 while it goes on or once the request is out, -1 when it failed. */
static int newconn_handshake(lg_conn_t *c)
{
#ifdef LG_TLS
    ERR_clear_error();
    int r = SSL_connect(c->ssl);
    if (r != 1) {
        int e = SSL_get_error(c->ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            return -1;
        if (e == SSL_ERROR_WANT_WRITE) { /* never on loopback with a small hello; be safe */
            struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
            epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &ev);
        }
        return 0;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &ev);
    tls_note(c);
#endif
    return conn_send(c, c->sched, 0);
}

/* -n: a new connection for the request scheduled at sched (the TLS handshake, if any,
 * goes on in the event loop). -1 when it failed at once. */
static int newconn_start(lg_conn_t *c, uint64_t sched)
{
    conn_open(c);
    c->sched = sched;
    c->busy = 1;
#ifdef LG_TLS
    if (g_tls != NULL) {
        tls_new(c);
        c->state = ST_HANDSHAKE;
        return newconn_handshake(c);
    }
#endif
    return conn_send(c, sched, 0);
}

/* Parse the head in c->buf once it is complete: sets c->need, returns the status,
 * 0 while the head is incomplete, -1 when it is unusable. */
static int parse_head(lg_conn_t *c)
{
    char *end = memmem(c->buf, c->have, "\r\n\r\n", 4);
    if (end == NULL)
        return c->have == BUF_SIZE ? -1 : 0;
    *end = '\0';
    if (c->have < 12 || strncmp(c->buf, "HTTP/1.", 7) != 0)
        return -1;
    int status = atoi(c->buf + 9);
    long length = -1;
    for (char *line = strstr(c->buf, "\r\n"); line != NULL; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "content-length:", 15) == 0)
            length = strtol(line + 17, NULL, 10);
    }
    if (length < 0)
        return -1;
    c->need = (size_t)(end + 4 - c->buf) + (size_t)length;
    return status;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_us(const uint64_t *v, size_t n, double p)
{
    if (n == 0)
        return -1;
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return (double)v[i] / 1000.0;
}

static void conn_free(lg_target_t *t, lg_conn_t *c);
static uint64_t g_measure_from;

/* c's request (scheduled at sched) failed: count it, then give c a new connection
 * (-n: let the slot go without one) and free it for the next request. */
static void request_failed(lg_conn_t *c, uint64_t sched)
{
    lg_target_t *t = c->t;
    t->in_flight--;
    if (sched >= g_measure_from)
        t->errors++;
    if (g_newconn)
        conn_close(c, 1);
    else
        conn_reopen(c);
    c->busy = 0;
    conn_free(t, c);
}

/* Send a request scheduled at sched on an idle connection; 0 if none was free. */
static int send_on_idle(lg_target_t *t, uint64_t sched)
{
    if (t->n_idle == 0)
        return 0;
    lg_conn_t *c = t->idle[--t->n_idle];
    t->in_flight++;
    if (g_newconn) {
        if (newconn_start(c, sched) < 0)
            request_failed(c, sched);
        return 1;
    }
    if (conn_send(c, sched, 1) < 0)
        conn_resend(c, sched); /* it broke while idle (the server closed it) */
    return 1;
}

/* A request is due: send it, or queue it until a connection is free. Returns -1
 * when the backlog is full (the server is hopelessly behind). */
static int dispatch(lg_target_t *t, uint64_t sched)
{
    if (t->bl_len == 0 && send_on_idle(t, sched))
        return 0;
    if (t->bl_len == MAX_BACKLOG)
        return -1;
    t->backlog[(t->bl_head + t->bl_len++) % MAX_BACKLOG] = sched;
    if (t->bl_len > t->max_backlog)
        t->max_backlog = t->bl_len;
    return 0;
}

/* A connection came free: the oldest waiting request takes it. */
static void conn_free(lg_target_t *t, lg_conn_t *c)
{
    t->idle[t->n_idle++] = c;
    while (t->bl_len > 0 && send_on_idle(t, t->backlog[t->bl_head])) {
        t->bl_head = (t->bl_head + 1) % MAX_BACKLOG;
        t->bl_len--;
    }
}

/* A response is complete: count it. */
static void request_done(lg_conn_t *c, uint64_t measure_from)
{
    lg_target_t *t = c->t;
    uint64_t now = now_ns();
    t->answered++;
    if (c->sched >= measure_from) {
        t->completed++;
        if (t->n_lat == t->cap) {
            t->cap *= 2;
            t->lat = realloc(t->lat, t->cap * sizeof *t->lat);
            if (t->lat == NULL)
                die("allocating");
        }
        t->lat[t->n_lat++] = now - c->sched;
        int st = atoi(c->buf + 9);
        if (st < 200 || st > 299)
            t->non2xx++;
    }
}

/* -n: the response is in; wait for the server to close, then reset our side. */
static void on_closing(lg_conn_t *c)
{
    ssize_t r;
    do {
        c->have = 0;
        r = conn_recv(c);
    } while (r > 0 && conn_is_tls(c));
    if (r == LG_AGAIN)
        return;
    c->t->in_flight--;
    c->busy = 0;
    conn_close(c, 1);
    conn_free(c->t, c);
}

/* Bytes (or a close) on c: finish its request when the response is complete. */
static void on_readable(lg_conn_t *c, uint64_t measure_from)
{
    lg_target_t *t = c->t;
    if (c->state == ST_HANDSHAKE) {
        if (newconn_handshake(c) < 0)
            request_failed(c, c->sched);
        return;
    }
    if (c->state == ST_CLOSING) {
        on_closing(c);
        return;
    }
    for (;;) {
        ssize_t r = conn_recv(c);
        if (r == LG_AGAIN)
            return;
        if (!c->busy) {
            /* closed or written to with nothing in flight: still on the idle stack, so
             * just give it a new socket (pushing it again would overrun the stack) */
            t->idle_closed++;
            conn_reopen(c);
            return;
        }
        int status = 0;
        if (r > 0) {
            c->have += (size_t)r;
            if (c->need == 0)
                status = parse_head(c);
        }
        if (r <= 0 && c->have == 0 && c->may_retry) {
            /* the keep-alive race: the server closed the connection as the request went out */
            t->retried++;
            conn_resend(c, c->sched);
            return;
        }
        if (r <= 0 || status < 0 || (c->need && c->have > c->need)) {
            /* closed, broken, or bytes nobody asked for: the request failed */
            request_failed(c, c->sched);
            return;
        }
        if (c->need == 0 || c->have < c->need) {
            if (conn_is_tls(c))
                continue; /* TLS: the library may hold more; read until it says again */
            return;       /* more to come */
        }
        request_done(c, measure_from);
        if (g_newconn) {
            c->state = ST_CLOSING;
            on_closing(c);
            return;
        }
        t->in_flight--;
        c->busy = 0;
        c->state = ST_IDLE;
        conn_free(t, c);
        return;
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: loadgen -p PORT[,PORT...] [-h HOST] [-u PATH] -r RATE|0 -d SECONDS "
                    "[-w WARMUP_SECONDS] [-c CONNS] [-s SLICE_SECONDS] [-n] [-t] [-V 1.2|1.3]\n");
    exit(2);
}

static void target_init(lg_target_t *t, const char *host, int port, const char *path, int conns,
                        size_t cap)
{
    t->addr.sin_family = AF_INET;
    t->addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &t->addr.sin_addr) != 1)
        usage();
    t->req_len = (size_t)snprintf(t->req, sizeof t->req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n%s\r\n",
                                  path, host, port, g_newconn ? "Connection: close\r\n" : "");
    t->conns = calloc((size_t)conns, sizeof *t->conns);
    t->idle = calloc((size_t)conns, sizeof *t->idle);
    t->backlog = malloc(MAX_BACKLOG * sizeof *t->backlog);
    t->cap = cap;
    t->lat = malloc(cap * sizeof *t->lat);
    if (t->conns == NULL || t->idle == NULL || t->backlog == NULL || t->lat == NULL)
        die("allocating");
    for (int i = 0; i < conns; i++) {
        t->conns[i].t = t;
        t->conns[i].fd = -1;
        if (!g_newconn)
            conn_open(&t->conns[i]);
        t->idle[t->n_idle++] = &t->conns[i];
    }
}

static void target_print(lg_target_t *t, const char *sep)
{
    qsort(t->lat, t->n_lat, sizeof *t->lat, cmp_u64);
    printf("{\"port\": %d, \"scheduled\": %llu, \"completed\": %llu, \"errors\": %llu, "
           "\"non2xx\": %llu, \"idle_closed\": %llu, \"retried\": %llu, \"max_backlog\": %zu, "
           "\"answered\": %llu, \"handshakes\": %llu, \"resumed\": %llu, \"tickets\": %llu, "
           "\"tls\": \"%s\", \"p50_us\": %.1f, \"p90_us\": %.1f, "
           "\"p99_us\": %.1f, \"p999_us\": %.1f, \"max_us\": %.1f}%s",
           ntohs(t->addr.sin_port), (unsigned long long)t->scheduled,
           (unsigned long long)t->completed, (unsigned long long)t->errors,
           (unsigned long long)t->non2xx, (unsigned long long)t->idle_closed,
           (unsigned long long)t->retried, t->max_backlog, (unsigned long long)t->answered,
           (unsigned long long)t->handshakes, (unsigned long long)t->resumed,
           (unsigned long long)t->tickets, t->tls_info,
           pct_us(t->lat, t->n_lat, 50), pct_us(t->lat, t->n_lat, 90), pct_us(t->lat, t->n_lat, 99),
           pct_us(t->lat, t->n_lat, 99.9),
           t->n_lat ? (double)t->lat[t->n_lat - 1] / 1000.0 : -1.0, sep);
}

#if defined(LG_TLS) && defined(OPENSSL_IS_BORINGSSL)
/* No chain check (loopback, self-signed); TLS itself still checks the server's
 * signature over the handshake with the certificate's key. */
static enum ssl_verify_result_t accept_any(SSL *ssl, uint8_t *alert)
{
    (void)ssl;
    (void)alert;
    return ssl_verify_ok;
}
#endif

/* -t: one client context for every connection (see the top of the file). */
static void tls_setup(const char *version)
{
#ifdef LG_TLS
    int v = strcmp(version, "1.2") == 0 ? TLS1_2_VERSION
            : strcmp(version, "1.3") == 0 ? TLS1_3_VERSION : 0;
    if (v == 0)
        usage();
    static const unsigned char alpn[] = "\x08http/1.1";
    /* TLS 1.2 also needs the certificate's curve among the groups (RFC 8422) */
    const char *groups = v == TLS1_3_VERSION ? "X25519" : "X25519:P-256";
#ifdef OPENSSL_IS_BORINGSSL
    /* no X509 objects: the peer's certificate stays bytes, as in Chrome */
    g_tls = SSL_CTX_new(TLS_with_buffers_method());
    if (g_tls == NULL || !SSL_CTX_set1_curves_list(g_tls, groups) ||
        !SSL_CTX_set_strict_cipher_list(g_tls, "ECDHE-ECDSA-AES128-GCM-SHA256:"
                                               "ECDHE-RSA-AES128-GCM-SHA256"))
        die_tls("TLS setup");
    /* TLS 1.3 suites are not configurable here; BoringSSL offers AES-128-GCM first with
     * AES hardware, and the bench makes the servers choose it (it checks "tls") */
    SSL_CTX_set_custom_verify(g_tls, SSL_VERIFY_PEER, accept_any);
#else
    g_tls = SSL_CTX_new(TLS_client_method());
    if (g_tls == NULL || !SSL_CTX_set1_groups_list(g_tls, groups) ||
        !SSL_CTX_set_ciphersuites(g_tls, "TLS_AES_128_GCM_SHA256") ||
        !SSL_CTX_set_cipher_list(g_tls, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"))
        die_tls("TLS setup");
    SSL_CTX_set_verify(g_tls, SSL_VERIFY_NONE, NULL);
    /* a server that closes without close_notify is not an error here */
    SSL_CTX_set_options(g_tls, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    if (!SSL_CTX_set_min_proto_version(g_tls, (uint16_t)v) ||
        !SSL_CTX_set_max_proto_version(g_tls, (uint16_t)v) ||
        SSL_CTX_set_alpn_protos(g_tls, alpn, sizeof alpn - 1) != 0)
        die_tls("TLS setup");
    /* the ticket callback needs client caching on; no session is ever stored or offered */
    SSL_CTX_set_session_cache_mode(g_tls, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(g_tls, on_ticket);
#else
    (void)version;
    fprintf(stderr, "loadgen: built without OpenSSL: -t is not available\n");
    exit(2);
#endif
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *path = "/1k";
    char *ports = NULL;
    int conns = 50, tls = 0;
    const char *tls_version = "1.3";
    double rate = -1, duration = 0, warmup = 1, slice = 1;
    int opt;
    while ((opt = getopt(argc, argv, "h:p:u:r:d:w:c:s:ntV:")) != -1) {
        switch (opt) {
        case 'h': host = optarg; break;
        case 'p': ports = optarg; break;
        case 'u': path = optarg; break;
        case 'r': rate = atof(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 'c': conns = atoi(optarg); break;
        case 's': slice = atof(optarg); break;
        case 'n': g_newconn = 1; break;
        case 't': tls = 1; break;
        case 'V': tls_version = optarg; break;
        default: usage();
        }
    }
    if (ports == NULL || rate < 0 || duration <= 0 || warmup < 0 || conns < 1 ||
        conns > MAX_CONNS || strlen(path) > 512 || slice < 0.01)
        usage();

    if (tls)
        tls_setup(tls_version);
    int closed_loop = rate == 0;

    prctl(PR_SET_TIMERSLACK, 1UL); /* wake when asked, not up to 50 us later */
    g_ep = epoll_create1(EPOLL_CLOEXEC);
    if (g_ep < 0)
        die("epoll_create1");
    static lg_target_t targets[MAX_TARGETS];
    int n_targets = 0;
    size_t cap = closed_loop ? 65536 : (size_t)(rate * duration * 1.05) + 1024;
    for (char *p = ports, *end; *p != '\0'; p = end + (*end == ',')) {
        long port = strtol(p, &end, 10);
        if (end == p || port <= 0 || port > 65535 || (*end != ',' && *end != '\0') ||
            n_targets == MAX_TARGETS)
            usage();
        target_init(&targets[n_targets++], host, (int)port, path, conns, cap);
    }

    uint64_t interval = closed_loop ? 0 : (uint64_t)(1e9 / rate);
    if (interval == 0)
        interval = 1;
    uint64_t slice_ns = (uint64_t)(slice * 1e9);
    uint64_t start = now_ns();
    uint64_t measure_from = start + (uint64_t)(warmup * 1e9);
    g_measure_from = measure_from;
    uint64_t stop_sched = measure_from + (uint64_t)(duration * 1e9) * (uint64_t)n_targets;
    uint64_t next = start;
    int overloaded = 0;
    struct epoll_event evs[256];

    for (;;) {
        uint64_t now = now_ns();
        if (closed_loop && now < stop_sched) {
            /* Every free connection of the port whose slice it is sends at once. */
            lg_target_t *t = &targets[((now - start) / slice_ns) % (uint64_t)n_targets];
            while (t->n_idle > 0) {
                if (now >= measure_from)
                    t->scheduled++;
                send_on_idle(t, now);
            }
            next = now;
        }
        /* Dispatch everything the schedule says is due, to the port whose slice it is. */
        while (!closed_loop && next <= now && next < stop_sched && !overloaded) {
            lg_target_t *t = &targets[((next - start) / slice_ns) % (uint64_t)n_targets];
            if (next >= measure_from)
                t->scheduled++;
            overloaded = dispatch(t, next) < 0;
            next += interval;
        }
        int pending = 0;
        for (int i = 0; i < n_targets; i++)
            pending += targets[i].in_flight + (int)targets[i].bl_len;
        int done_sending = (closed_loop ? now : next) >= stop_sched || overloaded;
        if (done_sending && (pending == 0 || now > stop_sched + DRAIN_NS))
            break;

        /* sleep until the next send is due (a nanosecond timeout: at 20k/s sends are
         * 50 us apart, and spinning would take the CPU the origin shares with us) */
        uint64_t wait = done_sending ? 10000000ull : (next > now ? next - now : 0);
        if (closed_loop && !done_sending) /* until the next slice starts, or the end */
            wait = slice_ns - (now - start) % slice_ns;
        struct timespec to = {.tv_sec = (time_t)(wait / 1000000000ull),
                              .tv_nsec = (long)(wait % 1000000000ull)};
        int n = epoll_pwait2(g_ep, evs, 256, &to, NULL);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++)
            on_readable(evs[i].data.ptr, measure_from);
    }

    printf("{\"rate\": %.0f, \"duration_s\": %.3f, \"slice_s\": %.3f, \"connections\": %d, "
           "\"overloaded\": %s, \"targets\": [",
           rate, duration, slice, conns, overloaded ? "true" : "false");
    for (int i = 0; i < n_targets; i++) {
        lg_target_t *t = &targets[i];
        /* requests never answered within the drain time count as errors */
        t->errors += (uint64_t)t->in_flight + t->bl_len;
        target_print(t, i + 1 < n_targets ? ", " : "");
    }
    printf("]}\n");
    return 0;
}
