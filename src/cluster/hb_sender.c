/* Our own beats (hb_monitor.h): mod_heartbeat on a libuv loop. One socket
 * for the life of the sender (Apache makes one per beat), one datagram per
 * interval, never queued: a beat the socket cannot take now is counted and
 * dropped, since the next one a second later says more than a late one. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "cluster/hb_monitor.h"
#include "cluster/heartbeat_mac.h"

struct atr_hb_sender {
    uv_udp_t udp;
    uv_timer_t tick;
    int handles;
    struct sockaddr_storage to;
    uint8_t *key;
    size_t keylen;
    atr_hb_load_fn load;
    void *ud;
    int failing; /* the last send failed (logged once per change) */
};

static uint64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sent(atr_hb_sender_t *s, int rc)
{
    char to[64];
    if (rc >= 0) {
        atomic_fetch_add_explicit(&atr_hb_stats.sent, 1, memory_order_relaxed);
        if (s->failing)
            ATR_NOTICE("heartbeat_send %s: sending again",
                       atr_sockaddr_text(&s->to, to, sizeof to));
        s->failing = 0;
        return;
    }
    atomic_fetch_add_explicit(&atr_hb_stats.send_errors, 1, memory_order_relaxed);
    if (!s->failing)
        ATR_WARN("heartbeat_send %s: %s", atr_sockaddr_text(&s->to, to, sizeof to),
                 uv_strerror(rc));
    s->failing = 1;
}

static void on_tick(uv_timer_t *t)
{
    atr_hb_sender_t *s = t->data;
    char msg[ATR_HB_MAX_MSG];
    atr_hb_beat_t b;
    memset(&b, 0, sizeof b);
    if (s->load(s->ud, &b.ready, &b.busy) < 0)
        return;
    b.has_ts = s->key != NULL;
    b.ts_ms = unix_ms();
    int n = atr_hb_encode(msg, sizeof msg, &b);
    if (n > 0 && s->key != NULL)
        n = atr_hb_mac_append(s->key, s->keylen, msg, sizeof msg, (size_t)n);
    if (n <= 0)
        return; /* cannot happen with these sizes */
    uv_buf_t buf = uv_buf_init(msg, (unsigned)n);
    sent(s, uv_udp_try_send(&s->udp, &buf, 1, (const struct sockaddr *)&s->to));
}

static void closed(uv_handle_t *h)
{
    atr_hb_sender_t *s = h->data;
    if (--s->handles > 0)
        return;
    if (s->key != NULL)
        explicit_bzero(s->key, s->keylen);
    free(s->key);
    free(s);
}

atr_hb_sender_t *atr_hb_sender_new(uv_loop_t *loop, const struct sockaddr *to, uint64_t interval_ms,
                                   const uint8_t *key, size_t keylen, atr_hb_load_fn load, void *ud,
                                   int *rc)
{
    atr_hb_sender_t *s = atr_xcalloc(1, sizeof *s);
    memcpy(&s->to, to,
           to->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    s->load = load;
    s->ud = ud;
    if (key != NULL) {
        s->key = atr_xmalloc(keylen);
        memcpy(s->key, key, keylen);
        s->keylen = keylen;
    }
    uv_udp_init_ex(loop, &s->udp, to->sa_family);
    uv_timer_init(loop, &s->tick);
    s->udp.data = s->tick.data = s;
    s->handles = 2;
    /* TTL 1: beats stay on the local network, as Apache's (the kernel's
     * default); loopback on, so a monitor on this host hears them too. */
    *rc = uv_udp_set_multicast_ttl(&s->udp, 1);
    if (*rc == 0)
        *rc = uv_udp_set_multicast_loop(&s->udp, 1);
    if (*rc < 0) {
        atr_hb_sender_close(s);
        return NULL;
    }
    uv_timer_start(&s->tick, on_tick, 0, interval_ms);
    uv_unref((uv_handle_t *)&s->tick);
    uv_unref((uv_handle_t *)&s->udp);
    return s;
}

void atr_hb_sender_beat_now(atr_hb_sender_t *s)
{
    on_tick(&s->tick);
}

void atr_hb_sender_close(atr_hb_sender_t *s)
{
    if (s == NULL)
        return;
    uv_close((uv_handle_t *)&s->udp, closed);
    uv_close((uv_handle_t *)&s->tick, closed);
}
