/* Signed heartbeats: Atrium's extension of Apache's format (docs/heartbeat.md).
 * A signed beat is an ordinary beat with "&ts=<unix ms>" among its fields and
 * "&mac=<64 lowercase hex>" as its last field, the HMAC-SHA256 under the
 * shared key (heartbeat_key FILE) of every byte before "&mac=". Stock Apache
 * monitors read ts and mac as unknown fields and ignore them. Pure code with
 * BoringSSL: the caller brings the clock and the per-sender state. */
#ifndef ATR_HEARTBEAT_MAC_H
#define ATR_HEARTBEAT_MAC_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/heartbeat_proto.h"

/* "&mac=" and 64 hex digits. */
#define ATR_HB_MAC_FIELD_LEN (5 + 64)
/* How far a beat's ts may be from the receiver's clock, by default. */
#define ATR_HB_MAC_WINDOW_MS 30000

/* Appends "&mac=<hex>" to the len bytes in buf (a beat from atr_hb_encode
 * with has_ts set), signed with key[0..keylen). Writes a NUL after it.
 * Returns the new length, or -ENOSPC (buf keeps its first len bytes). */
int atr_hb_mac_append(const uint8_t *key, size_t keylen, char *buf, size_t size, size_t len);

/* Checks a received beat msg[0..n) that atr_hb_parse accepted into *b: the
 * last field must be a mac= of 64 hex digits matching the HMAC of the bytes
 * before it (compared in constant time), and b->ts_ms must be within
 * window_ms of now_ms (unix ms). msg and b are only read during the call.
 * Returns NULL, or a static reason: "no mac", "bad mac", "no ts", "stale ts".
 * The window alone lets a captured beat be replayed inside it: the caller
 * also keeps the last ts accepted from each sender and passes it to
 * atr_hb_mac_fresh. */
const char *atr_hb_mac_check(const uint8_t *key, size_t keylen, const char *msg, size_t n,
                             const atr_hb_beat_t *b, uint64_t now_ms, uint64_t window_ms);

/* The per-sender replay check, after atr_hb_mac_check passed: a beat's ts
 * must be later than the last one accepted from the same source address
 * (*last_ms, 0 for a sender not seen yet). Updates *last_ms and returns NULL,
 * or returns "replayed ts" and leaves it. */
const char *atr_hb_mac_fresh(uint64_t *last_ms, uint64_t ts_ms);

#endif
