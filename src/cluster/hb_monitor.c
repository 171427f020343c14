/* The heartbeat monitor (hb_monitor.h): mod_heartmonitor on a libuv loop.
 *
 * Bounded everywhere a sender has a say: a datagram is read into a buffer
 * one byte larger than ATR_HB_MAX_MSG (a longer one arrives cut, with
 * UV_UDP_PARTIAL, and is refused whole rather than read short as Apache
 * does); the table holds at most max_servers senders, and only a beat that
 * passed every check (its mac too, with heartbeat_key) may add one, so
 * forged beats cannot fill it. A lookup is a scan of the table: a beat a
 * second from each of max_servers senders stays far below a millisecond of
 * the control loop's time per second at the default 1024.
 *
 * Time: a sender whose last beat is older than ATR_HB_FRESH_MS stops
 * counting (the workers check the time of the beat themselves; here it only
 * decides what is logged and counted); it stays in the table, and in the
 * storage file, until ATR_HB_SEEN_TIMEOUT seconds as in mod_heartmonitor. */
#include "cluster/hb_monitor.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "cluster/heartbeat_mac.h"

/* How long a beat counts (mod_lbmethod_heartbeat's 10 s), for logs and the
 * sender gauge; balancer.h has the same number for the workers. */
#define ATR_HB_FRESH_MS 10000
/* The table is swept and the storage file written this often. */
#define TICK_MS 1000
/* At most one line about refused beats this often: a flood of junk must not
 * become a flood of log lines. */
#define REJECT_LOG_MS 10000

atr_hb_stats_t atr_hb_stats;

typedef struct sender {
    struct sockaddr_storage addr; /* source address; port = the beat's port=, 0 = none */
    char ip[ATR_HB_MAX_IP];
    unsigned ready, busy;
    uint64_t seen_ms; /* atr_now_ms() of the last beat */
    uint64_t last_ts; /* signed beats: the last ts taken (replays) */
    int live;         /* counted (and logged) as fresh */
} sender_t;

struct atr_hb_monitor {
    uv_udp_t udp;
    uv_timer_t tick;
    int handles; /* open: freed at 0 */
    uint8_t *key;
    size_t keylen;
    char *storage;
    int storage_failing; /* logged once per change */
    int max;
    void (*publish)(void *, const struct sockaddr_storage *, const atr_hb_beat_t *, uint64_t);
    void *ud;
    sender_t *s;
    int n, cap;
    int full_logged;           /* "too many senders" logged once per change */
    uint64_t reject_log_ms;    /* when a refusal was last logged */
    uint64_t rejects_unlogged; /* refused since then */
    char buf[ATR_HB_MAX_MSG + 64];
};

/* ---- the socket ---- */

static int join_group(int fd, const struct sockaddr *addr)
{
    if (addr->sa_family == AF_INET) {
        struct ip_mreqn mr;
        int off = 0;
        memset(&mr, 0, sizeof mr);
        mr.imr_multiaddr = ((const struct sockaddr_in *)(const void *)addr)->sin_addr;
        if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof mr) < 0)
            return -errno;
        /* Linux delivers every group any socket joined to a socket bound to the
         * port unless told not to; the group's address is bound anyway. */
        (void)setsockopt(fd, IPPROTO_IP, IP_MULTICAST_ALL, &off, sizeof off);
        return 0;
    }
    struct ipv6_mreq mr6;
    memset(&mr6, 0, sizeof mr6);
    mr6.ipv6mr_multiaddr = ((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr;
    return setsockopt(fd, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &mr6, sizeof mr6) < 0 ? -errno : 0;
}

static int is_group(const struct sockaddr *addr)
{
    if (addr->sa_family == AF_INET)
        return IN_MULTICAST(
            ntohl(((const struct sockaddr_in *)(const void *)addr)->sin_addr.s_addr));
    return addr->sa_family == AF_INET6 &&
           IN6_IS_ADDR_MULTICAST(&((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr);
}

int atr_hb_listen_socket(const struct sockaddr *addr)
{
    socklen_t len =
        addr->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    int fd = socket(addr->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), on = 1, rc = 0;
    if (fd < 0)
        return -errno;
    if (is_group(addr) && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0)
        rc = -errno;
    if (rc == 0 && bind(fd, addr, len) < 0)
        rc = -errno;
    if (rc == 0 && is_group(addr))
        rc = join_group(fd, addr);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

/* ---- the table ---- */

static int same_source(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_addr.s_addr == y->sin_addr.s_addr && x->sin_port == y->sin_port;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0 &&
           x->sin6_port == y->sin6_port;
}

static void ip_text(const struct sockaddr_storage *ss, char *out, size_t n)
{
    const void *a = ss->ss_family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)(const void *)ss)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;
    if (inet_ntop(ss->ss_family, a, out, (socklen_t)n) == NULL)
        snprintf(out, n, "?");
}

static unsigned port_of(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET
                     ? ((const struct sockaddr_in *)(const void *)ss)->sin_port
                     : ((const struct sockaddr_in6 *)(const void *)ss)->sin6_port);
}

/* "10.0.0.2" or "10.0.0.2 port 8080", for log lines. */
static const char *who(const sender_t *e, char *out, size_t n)
{
    unsigned port = port_of(&e->addr);
    if (port)
        snprintf(out, n, "%s port %u", e->ip, port);
    else
        snprintf(out, n, "%s", e->ip);
    return out;
}

static sender_t *find(atr_hb_monitor_t *m, const struct sockaddr_storage *key)
{
    for (int i = 0; i < m->n; i++)
        if (same_source(&m->s[i].addr, key))
            return &m->s[i];
    return NULL;
}

/* The slot for a new sender: a free one, or the longest silent one whose
 * data no longer counts; NULL when the table is full of live senders. */
static sender_t *slot(atr_hb_monitor_t *m)
{
    if (m->n < m->max) {
        if (m->n == m->cap) {
            m->cap = m->cap ? m->cap * 2 : 16;
            if (m->cap > m->max)
                m->cap = m->max;
            m->s = atr_xrealloc(m->s, (size_t)m->cap * sizeof *m->s);
        }
        return &m->s[m->n++];
    }
    sender_t *oldest = NULL;
    for (int i = 0; i < m->n; i++)
        if (!m->s[i].live && (oldest == NULL || m->s[i].seen_ms < oldest->seen_ms))
            oldest = &m->s[i];
    return oldest;
}

/* ---- receiving ---- */

static void reject(atr_hb_monitor_t *m, const struct sockaddr_storage *from, const char *why,
                   atomic_uint_fast64_t *counter)
{
    uint64_t now = atr_now_ms();
    char ip[ATR_HB_MAX_IP];
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
    m->rejects_unlogged++;
    if (m->reject_log_ms != 0 && now - m->reject_log_ms < REJECT_LOG_MS)
        return;
    ip_text(from, ip, sizeof ip);
    ATR_WARN("heartbeat: beat from %s dropped: %s (%llu dropped since the last such message)", ip,
             why, (unsigned long long)m->rejects_unlogged);
    m->reject_log_ms = now;
    m->rejects_unlogged = 0;
}

/* The sender's table entry for an accepted beat, created if new; NULL when
 * the table is full (counted). */
static sender_t *entry_for(atr_hb_monitor_t *m, const struct sockaddr_storage *key)
{
    sender_t *e = find(m, key);
    if (e != NULL)
        return e;
    e = slot(m);
    if (e == NULL) {
        char ip[ATR_HB_MAX_IP];
        atomic_fetch_add_explicit(&atr_hb_stats.too_many, 1, memory_order_relaxed);
        ip_text(key, ip, sizeof ip);
        if (!m->full_logged)
            ATR_WARN("heartbeat: %d senders tracked (heartbeat_max_servers): beats from new "
                     "senders such as %s are dropped",
                     m->max, ip);
        m->full_logged = 1;
        return NULL;
    }
    memset(e, 0, sizeof *e);
    e->addr = *key;
    ip_text(key, e->ip, sizeof e->ip);
    return e;
}

/* The checks of a signed beat that need no table entry. */
static int signed_ok(atr_hb_monitor_t *m, const struct sockaddr_storage *from, const char *p,
                     size_t n, const atr_hb_beat_t *b)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t unix_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    const char *why = atr_hb_mac_check(m->key, m->keylen, p, n, b, unix_ms, ATR_HB_MAC_WINDOW_MS);
    if (why == NULL)
        return 1;
    reject(m, from, why, &atr_hb_stats.forged);
    return 0;
}

static void take(atr_hb_monitor_t *m, const struct sockaddr_storage *from, const char *p, size_t n)
{
    atr_hb_beat_t b;
    const char *why = atr_hb_parse(p, n, &b);
    if (why != NULL) {
        reject(m, from, why,
               strcmp(why, "too long") == 0 ? &atr_hb_stats.too_long : &atr_hb_stats.malformed);
        return;
    }
    if (m->key != NULL && !signed_ok(m, from, p, n, &b))
        return;
    struct sockaddr_storage key = *from; /* identity: the source IP, and port= when sent */
    if (key.ss_family == AF_INET)
        ((struct sockaddr_in *)(void *)&key)->sin_port = htons((uint16_t)(b.has_port ? b.port : 0));
    else
        ((struct sockaddr_in6 *)(void *)&key)->sin6_port =
            htons((uint16_t)(b.has_port ? b.port : 0));
    sender_t *e = entry_for(m, &key);
    if (e == NULL)
        return;
    if (m->key != NULL && (why = atr_hb_mac_fresh(&e->last_ts, b.ts_ms)) != NULL) {
        reject(m, from, why, &atr_hb_stats.replayed);
        return;
    }
    e->ready = b.ready;
    e->busy = b.busy;
    e->seen_ms = atr_now_ms();
    atomic_fetch_add_explicit(&atr_hb_stats.accepted, 1, memory_order_relaxed);
    if (!e->live) {
        char w[ATR_HB_MAX_IP + 16];
        e->live = 1;
        atomic_fetch_add_explicit(&atr_hb_stats.senders, 1, memory_order_relaxed);
        ATR_NOTICE("heartbeat: sender %s counts: ready=%u busy=%u", who(e, w, sizeof w), e->ready,
                   e->busy);
    }
    m->publish(m->ud, &e->addr, &b, e->seen_ms);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    atr_hb_monitor_t *m = h->data;
    (void)suggested;
    /* one byte past the largest beat: a longer datagram shows as cut */
    *buf = uv_buf_init(m->buf, ATR_HB_MAX_MSG + 1);
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
                    unsigned flags)
{
    atr_hb_monitor_t *m = h->data;
    struct sockaddr_storage src;
    if (nread < 0) {
        ATR_DEBUG("heartbeat: receive: %s", uv_strerror((int)nread));
        return;
    }
    if (from == NULL || (from->sa_family != AF_INET && from->sa_family != AF_INET6))
        return; /* nothing more to read, or not an IP sender */
    memset(&src, 0, sizeof src);
    memcpy(&src, from,
           from->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    if ((flags & UV_UDP_PARTIAL) || (size_t)nread > ATR_HB_MAX_MSG) {
        reject(m, &src, "too long", &atr_hb_stats.too_long);
        return;
    }
    take(m, &src, buf->base, (size_t)nread);
}

/* ---- the sweep and the storage file ---- */

/* mod_heartmonitor's file, written whole to a temporary file and renamed
 * over the old one, so that a reader sees the old or the new, never half. */
static int write_storage(atr_hb_monitor_t *m, uint64_t now)
{
    /* 128 bytes hold the longest line: a 45-byte address and the largest numbers */
    size_t cap = (size_t)m->n * 128 + 1, len = 0, tmplen = strlen(m->storage) + 16;
    char *text = atr_xmalloc(cap), *tmp = atr_xmalloc(tmplen);
    int rc = 0;
    for (int i = 0; i < m->n; i++) {
        const sender_t *e = &m->s[i];
        unsigned port = port_of(&e->addr);
        atr_hb_entry_t line = { .ready = e->ready,
                                .busy = e->busy,
                                .lastseen = (unsigned)((now - e->seen_ms) / 1000),
                                .port = port ? port : ATR_HB_DEFAULT_PORT };
        memcpy(line.ip, e->ip, sizeof line.ip);
        int k = atr_hb_storage_format(text + len, cap - len, &line);
        if (k > 0)
            len += (size_t)k;
    }
    snprintf(tmp, tmplen, "%s.tmp.XXXXXX", m->storage);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        rc = -errno;
    else if ((len > 0 && atr_write_all(fd, text, len) < 0) || fchmod(fd, 0444) < 0)
        rc = -errno;
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = -errno;
    if (fd >= 0 && rc == 0 && rename(tmp, m->storage) < 0)
        rc = -errno;
    if (fd >= 0 && rc < 0)
        unlink(tmp);
    free(tmp);
    free(text);
    return rc;
}

static void sweep(atr_hb_monitor_t *m, uint64_t now)
{
    int j = 0;
    for (int i = 0; i < m->n; i++) {
        sender_t *e = &m->s[i];
        char w[ATR_HB_MAX_IP + 16];
        if (e->live && now - e->seen_ms > ATR_HB_FRESH_MS) {
            e->live = 0;
            atomic_fetch_sub_explicit(&atr_hb_stats.senders, 1, memory_order_relaxed);
            ATR_WARN("heartbeat: sender %s silent for %ds: its data no longer counts",
                     who(e, w, sizeof w), ATR_HB_FRESH_MS / 1000);
        }
        if (now - e->seen_ms <= ATR_HB_SEEN_TIMEOUT * 1000ull)
            m->s[j++] = *e;
    }
    if (j < m->n && m->full_logged)
        m->full_logged = 0; /* room again: the next refusal is news */
    m->n = j;
}

static void on_tick(uv_timer_t *t)
{
    atr_hb_monitor_t *m = t->data;
    uint64_t now = atr_now_ms();
    sweep(m, now);
    if (m->storage == NULL)
        return;
    int rc = write_storage(m, now);
    if (rc < 0 && !m->storage_failing)
        ATR_ERROR("heartbeat_storage %s: cannot write: %s", m->storage, strerror(-rc));
    else if (rc == 0 && m->storage_failing)
        ATR_NOTICE("heartbeat_storage %s: written again", m->storage);
    m->storage_failing = rc < 0;
}

/* ---- life ---- */

void atr_hb_monitor_set(atr_hb_monitor_t *m, const atr_hb_monitor_opts_t *o)
{
    if (m->key != NULL)
        explicit_bzero(m->key, m->keylen);
    free(m->key);
    free(m->storage);
    m->key = NULL;
    m->keylen = 0;
    if (o->key != NULL) {
        m->key = atr_xmalloc(o->keylen);
        memcpy(m->key, o->key, o->keylen);
        m->keylen = o->keylen;
    }
    m->storage = o->storage ? atr_xstrdup(o->storage) : NULL;
    m->storage_failing = 0;
    m->max = o->max_servers > 0 ? o->max_servers : 1;
    m->publish = o->publish;
    m->ud = o->ud;
    if (m->n > m->max) { /* a smaller cap: keep the most recent */
        while (m->n > m->max) {
            int oldest = 0;
            for (int i = 1; i < m->n; i++)
                if (m->s[i].seen_ms < m->s[oldest].seen_ms)
                    oldest = i;
            if (m->s[oldest].live)
                atomic_fetch_sub_explicit(&atr_hb_stats.senders, 1, memory_order_relaxed);
            m->s[oldest] = m->s[--m->n];
        }
    }
}

void atr_hb_monitor_republish(atr_hb_monitor_t *m)
{
    for (int i = 0; i < m->n; i++) {
        const sender_t *e = &m->s[i];
        unsigned port = port_of(&e->addr);
        atr_hb_beat_t b = {
            .ready = e->ready, .busy = e->busy, .port = port, .has_port = port != 0
        };
        if (e->live)
            m->publish(m->ud, &e->addr, &b, e->seen_ms);
    }
}

static void closed(uv_handle_t *h)
{
    atr_hb_monitor_t *m = h->data;
    if (--m->handles > 0)
        return;
    free(m->s);
    free(m->storage);
    if (m->key != NULL)
        explicit_bzero(m->key, m->keylen);
    free(m->key);
    free(m);
}

atr_hb_monitor_t *atr_hb_monitor_new(uv_loop_t *loop, int fd, const atr_hb_monitor_opts_t *o,
                                     int *rc)
{
    atr_hb_monitor_t *m = atr_xcalloc(1, sizeof *m);
    uv_udp_init(loop, &m->udp);
    uv_timer_init(loop, &m->tick);
    m->udp.data = m->tick.data = m;
    m->handles = 2;
    atr_hb_monitor_set(m, o);
    *rc = uv_udp_open(&m->udp, fd);
    if (*rc == 0)
        *rc = uv_udp_recv_start(&m->udp, on_alloc, on_recv);
    if (*rc < 0) {
        if (uv_fileno((uv_handle_t *)&m->udp, &(uv_os_fd_t){ 0 }) != 0)
            close(fd); /* not taken by the handle */
        atr_hb_monitor_close(m);
        return NULL;
    }
    uv_timer_start(&m->tick, on_tick, TICK_MS, TICK_MS);
    uv_unref((uv_handle_t *)&m->tick);
    uv_unref((uv_handle_t *)&m->udp);
    return m;
}

void atr_hb_monitor_close(atr_hb_monitor_t *m)
{
    if (m == NULL)
        return;
    for (int i = 0; i < m->n; i++)
        if (m->s[i].live)
            atomic_fetch_sub_explicit(&atr_hb_stats.senders, 1, memory_order_relaxed);
    m->n = 0;
    uv_close((uv_handle_t *)&m->udp, closed);
    uv_close((uv_handle_t *)&m->tick, closed);
}
