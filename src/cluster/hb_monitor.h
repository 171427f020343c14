/* The heartbeat monitor and sender on the control loop (docs/heartbeat.md):
 * a UDP socket that receives Apache-format beats (a multicast group it
 * joins, or a unicast address), keeps a bounded table of senders keyed by
 * their source address (and the beat's port= when sent), hands every
 * accepted beat to a callback, and writes mod_heartmonitor's flat storage
 * file; and a sender of our own beats. Uses base/, libuv and the pure
 * format code of this folder only: what a beat means for the servers of a
 * configuration is the caller's business (core/heartbeat.c). */
#ifndef ATR_HB_MONITOR_H
#define ATR_HB_MONITOR_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "cluster/heartbeat_proto.h"

/* Process-wide counters, written by the control loop, read by any worker's
 * status page (relaxed atomics). They carry over reloads. */
typedef struct atr_hb_stats {
    atomic_uint_fast64_t accepted;    /* beats taken */
    atomic_uint_fast64_t malformed;   /* refused by atr_hb_parse (not too long) */
    atomic_uint_fast64_t too_long;    /* more than ATR_HB_MAX_MSG bytes */
    atomic_uint_fast64_t forged;      /* heartbeat_key set: no mac, bad mac, no ts, stale ts */
    atomic_uint_fast64_t replayed;    /* heartbeat_key set: a ts not newer than the last one */
    atomic_uint_fast64_t too_many;    /* a new sender while heartbeat_max_servers are tracked */
    atomic_uint_fast64_t sent;        /* beats of ours sent */
    atomic_uint_fast64_t send_errors; /* beats of ours the socket refused */
    atomic_int senders;               /* senders whose data counts now (fresh) */
} atr_hb_stats_t;
extern atr_hb_stats_t atr_hb_stats;

/* A socket for heartbeat_listen: bound to addr (a multicast group's address
 * itself, so that only that group's datagrams arrive, with SO_REUSEADDR so
 * that other monitors on the host can listen too; the group joined on the
 * interface the routing table picks), or to a unicast address. Returns the
 * descriptor (non-blocking, close-on-exec) or a negative errno. */
int atr_hb_listen_socket(const struct sockaddr *addr);

/* What a monitor does with what it receives; copied by the calls that take it. */
typedef struct atr_hb_monitor_opts {
    const uint8_t *key; /* heartbeat_key: only signed beats count; NULL = any beat */
    size_t keylen;
    const char *storage; /* heartbeat_storage path, NULL = none */
    int max_servers;     /* senders tracked at once (>= 1) */
    /* An accepted beat from `from` (its port: the beat's port=, 0 when it
     * sent none), received at seen_ms (atr_now_ms()). Runs on the loop. */
    void (*publish)(void *ud, const struct sockaddr_storage *from, const atr_hb_beat_t *b,
                    uint64_t seen_ms);
    void *ud;
} atr_hb_monitor_opts_t;

typedef struct atr_hb_monitor atr_hb_monitor_t;

/* Start receiving on fd (from atr_hb_listen_socket; the monitor owns it
 * from now on, even on failure). NULL with a negative errno in *rc. */
atr_hb_monitor_t *atr_hb_monitor_new(uv_loop_t *loop, int fd, const atr_hb_monitor_opts_t *o,
                                     int *rc);

/* New options (a reload): the table of senders stays. */
void atr_hb_monitor_set(atr_hb_monitor_t *m, const atr_hb_monitor_opts_t *o);

/* Hand every sender whose data still counts to the publish callback again,
 * with the time of its last beat (a reload's new servers learn at once). */
void atr_hb_monitor_republish(atr_hb_monitor_t *m);

/* Stop and free (the handles close on the loop). NULL is fine. */
void atr_hb_monitor_close(atr_hb_monitor_t *m);

/* ---- our own beats ---- */

/* The node's load for a beat: 0 with *ready and *busy set, or -1 to skip
 * this beat. Runs on the loop. */
typedef int (*atr_hb_load_fn)(void *ud, unsigned *ready, unsigned *busy);

typedef struct atr_hb_sender atr_hb_sender_t;

/* One beat to `to` every interval_ms, the first at once: "v=1&ready=R&busy=B"
 * as mod_heartbeat sends it, signed ("&ts=..&mac=..") when key is set (key
 * copied). Multicast TTL 1 and loopback on, as Apache. NULL with a negative
 * errno in *rc when no socket could be made. */
atr_hb_sender_t *atr_hb_sender_new(uv_loop_t *loop, const struct sockaddr *to, uint64_t interval_ms,
                                   const uint8_t *key, size_t keylen, atr_hb_load_fn load, void *ud,
                                   int *rc);

/* Send a beat now, outside the interval (the load callback is asked as
 * usual). For a state change that should not wait, such as a drain. */
void atr_hb_sender_beat_now(atr_hb_sender_t *s);

/* Stop and free (the handles close on the loop). NULL is fine. */
void atr_hb_sender_close(atr_hb_sender_t *s);

#endif
