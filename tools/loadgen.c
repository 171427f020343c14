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
 *           [-c CONNS] [-s SLICE]
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

#define MAX_CONNS 10000
#define MAX_TARGETS 8
#define MAX_BACKLOG 1000000
#define BUF_SIZE 65536
#define DRAIN_NS 2000000000ull /* after the last send, wait this long for answers */

typedef struct lg_target lg_target_t;

typedef struct {
    lg_target_t *t;
    int fd;
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
    int in_flight;
};

static int g_ep;

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

/* A blocking connect (loopback: immediate), then non-blocking for the run. */
static void conn_open(lg_conn_t *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket");
    if (connect(c->fd, (struct sockaddr *)&c->t->addr, sizeof c->t->addr) < 0)
        die("connect");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(g_ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        die("epoll_ctl");
    c->busy = 0;
    c->have = c->need = 0;
}

static void conn_reopen(lg_conn_t *c)
{
    close(c->fd);
    conn_open(c);
}

/* Send the request; it is small and the connection idle, so it fits at once.
 * may_retry: c sat idle before this request (see "retried" above). */
static int conn_send(lg_conn_t *c, uint64_t sched, int may_retry)
{
    ssize_t n = send(c->fd, c->t->req, c->t->req_len, MSG_NOSIGNAL);
    if (n != (ssize_t)c->t->req_len)
        return -1;
    c->busy = 1;
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

/* Send a request scheduled at sched on an idle connection; 0 if none was free. */
static int send_on_idle(lg_target_t *t, uint64_t sched)
{
    if (t->n_idle == 0)
        return 0;
    lg_conn_t *c = t->idle[--t->n_idle];
    if (conn_send(c, sched, 1) < 0)
        conn_resend(c, sched); /* it broke while idle (the server closed it) */
    t->in_flight++;
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

/* Bytes (or a close) on c: finish its request when the response is complete. */
static void on_readable(lg_conn_t *c, uint64_t measure_from)
{
    lg_target_t *t = c->t;
    ssize_t r = recv(c->fd, c->buf + c->have, BUF_SIZE - c->have, 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
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
        t->in_flight--;
        if (c->sched >= measure_from)
            t->errors++;
        conn_reopen(c);
        conn_free(t, c);
        return;
    }
    if (c->need == 0 || c->have < c->need)
        return; /* more to come */
    uint64_t now = now_ns();
    t->in_flight--;
    c->busy = 0;
    if (c->sched >= measure_from) {
        t->completed++;
        if (t->n_lat < t->cap)
            t->lat[t->n_lat++] = now - c->sched;
        int st = atoi(c->buf + 9);
        if (st < 200 || st > 299)
            t->non2xx++;
    }
    conn_free(t, c);
}

static void usage(void)
{
    fprintf(stderr, "usage: loadgen -p PORT[,PORT...] [-h HOST] [-u PATH] -r RATE -d SECONDS "
                    "[-w WARMUP_SECONDS] [-c CONNS] [-s SLICE_SECONDS]\n");
    exit(2);
}

static void target_init(lg_target_t *t, const char *host, int port, const char *path, int conns,
                        size_t cap)
{
    t->addr.sin_family = AF_INET;
    t->addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &t->addr.sin_addr) != 1)
        usage();
    t->req_len = (size_t)snprintf(t->req, sizeof t->req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n",
                                  path, host, port);
    t->conns = calloc((size_t)conns, sizeof *t->conns);
    t->idle = calloc((size_t)conns, sizeof *t->idle);
    t->backlog = malloc(MAX_BACKLOG * sizeof *t->backlog);
    t->cap = cap;
    t->lat = malloc(cap * sizeof *t->lat);
    if (t->conns == NULL || t->idle == NULL || t->backlog == NULL || t->lat == NULL)
        die("allocating");
    for (int i = 0; i < conns; i++) {
        t->conns[i].t = t;
        conn_open(&t->conns[i]);
        t->idle[t->n_idle++] = &t->conns[i];
    }
}

static void target_print(lg_target_t *t, const char *sep)
{
    qsort(t->lat, t->n_lat, sizeof *t->lat, cmp_u64);
    printf("{\"port\": %d, \"scheduled\": %llu, \"completed\": %llu, \"errors\": %llu, "
           "\"non2xx\": %llu, \"idle_closed\": %llu, \"retried\": %llu, \"max_backlog\": %zu, "
           "\"p50_us\": %.1f, \"p90_us\": %.1f, "
           "\"p99_us\": %.1f, \"p999_us\": %.1f, \"max_us\": %.1f}%s",
           ntohs(t->addr.sin_port), (unsigned long long)t->scheduled,
           (unsigned long long)t->completed, (unsigned long long)t->errors,
           (unsigned long long)t->non2xx, (unsigned long long)t->idle_closed,
           (unsigned long long)t->retried, t->max_backlog,
           pct_us(t->lat, t->n_lat, 50), pct_us(t->lat, t->n_lat, 90), pct_us(t->lat, t->n_lat, 99),
           pct_us(t->lat, t->n_lat, 99.9),
           t->n_lat ? (double)t->lat[t->n_lat - 1] / 1000.0 : -1.0, sep);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *path = "/1k";
    char *ports = NULL;
    int conns = 50;
    double rate = 0, duration = 0, warmup = 1, slice = 1;
    int opt;
    while ((opt = getopt(argc, argv, "h:p:u:r:d:w:c:s:")) != -1) {
        switch (opt) {
        case 'h': host = optarg; break;
        case 'p': ports = optarg; break;
        case 'u': path = optarg; break;
        case 'r': rate = atof(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 'c': conns = atoi(optarg); break;
        case 's': slice = atof(optarg); break;
        default: usage();
        }
    }
    if (ports == NULL || rate <= 0 || duration <= 0 || warmup < 0 || conns < 1 ||
        conns > MAX_CONNS || strlen(path) > 512 || slice < 0.01)
        usage();

    prctl(PR_SET_TIMERSLACK, 1UL); /* wake when asked, not up to 50 us later */
    g_ep = epoll_create1(EPOLL_CLOEXEC);
    if (g_ep < 0)
        die("epoll_create1");
    static lg_target_t targets[MAX_TARGETS];
    int n_targets = 0;
    size_t cap = (size_t)(rate * duration * 1.05) + 1024;
    for (char *p = ports, *end; *p != '\0'; p = end + (*end == ',')) {
        long port = strtol(p, &end, 10);
        if (end == p || port <= 0 || port > 65535 || (*end != ',' && *end != '\0') ||
            n_targets == MAX_TARGETS)
            usage();
        target_init(&targets[n_targets++], host, (int)port, path, conns, cap);
    }

    uint64_t interval = (uint64_t)(1e9 / rate);
    if (interval == 0)
        interval = 1;
    uint64_t slice_ns = (uint64_t)(slice * 1e9);
    uint64_t start = now_ns();
    uint64_t measure_from = start + (uint64_t)(warmup * 1e9);
    uint64_t stop_sched = measure_from + (uint64_t)(duration * 1e9) * (uint64_t)n_targets;
    uint64_t next = start;
    int overloaded = 0;
    struct epoll_event evs[256];

    for (;;) {
        uint64_t now = now_ns();
        /* Dispatch everything the schedule says is due, to the port whose slice it is. */
        while (next <= now && next < stop_sched && !overloaded) {
            lg_target_t *t = &targets[((next - start) / slice_ns) % (uint64_t)n_targets];
            if (next >= measure_from)
                t->scheduled++;
            overloaded = dispatch(t, next) < 0;
            next += interval;
        }
        int pending = 0;
        for (int i = 0; i < n_targets; i++)
            pending += targets[i].in_flight + (int)targets[i].bl_len;
        int done_sending = next >= stop_sched || overloaded;
        if (done_sending && (pending == 0 || now > stop_sched + DRAIN_NS))
            break;

        /* sleep until the next send is due (a nanosecond timeout: at 20k/s sends are
         * 50 us apart, and spinning would take the CPU the origin shares with us) */
        uint64_t wait = done_sending ? 10000000ull : (next > now ? next - now : 0);
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
