/* The memcached text protocol, as the "memcached" small-object cache
 * (socache_memcached.c) speaks it: the wire form of binary keys, the
 * get/set/delete commands, the reply to a get, and the consistent hash that
 * puts each key on one server. Pure: bytes in, bytes out, no loop. */
#ifndef ATR_MEMCACHED_PROTO_H
#define ATR_MEMCACHED_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "http/headers.h"

/* memcached's own limit on a key (no spaces, no control characters). */
#define ATR_MC_WKEY_MAX 250

/* The wire key for a binary key of 1..ATR_SOCACHE_KEY_MAX bytes into out
 * (not NUL-terminated); returns its length. Lower-case hex when that fits
 * (up to 125 bytes), else "h" and the hex of the key's SHA-256 (65
 * characters; the 'h' keeps the two forms apart). */
size_t atr_mc_key(char out[ATR_MC_WKEY_MAX], const uint8_t *key, size_t klen);

/* Commands appended to b: "get K\r\n"; "set K 0 TTL N noreply\r\nDATA\r\n";
 * "delete K noreply\r\n". Only a get has a reply. wk is a wire key. */
void atr_mc_encode_get(atr_buf_t *b, const char *wk, size_t wn);
void atr_mc_encode_set(atr_buf_t *b, const char *wk, size_t wn, const uint8_t *val, size_t vlen,
                       uint32_t ttl_s);
void atr_mc_encode_delete(atr_buf_t *b, const char *wk, size_t wn);

/* The reply to one get at p[0, n). */
enum { ATR_MC_BAD = -1, /* not a get's reply, or a value over max: the stream is lost */
       ATR_MC_MISS = 0, /* "END\r\n" */
       ATR_MC_HIT = 1,  /* "VALUE K FLAGS N [CAS]\r\nDATA\r\nEND\r\n" */
       ATR_MC_MORE = 2  /* incomplete so far */ };
/* HIT and MISS set *used to the reply's length; HIT sets *val (a view into
 * p) and *vlen. A value longer than max is BAD (so is a line longer than a
 * VALUE line can be): the reader never buffers more than max plus a line. */
int atr_mc_parse_get(const char *p, size_t n, size_t max, size_t *used, const char **val,
                     size_t *vlen);

/* The consistent hash ("ketama-lite"): each server is ATR_MC_POINTS points
 * on a 64-bit ring at SipHash-2-4 (a fixed key) of "NAME#i"; a key belongs
 * to the first point at or after the SipHash of its bytes (wrapping). The
 * ring depends only on the names, so processes listing the same servers in
 * any order agree, and adding or removing one server moves only the keys
 * of its share of the ring. */
#define ATR_MC_POINTS 160
typedef struct atr_mc_point {
    uint64_t hash;
    int server;
} atr_mc_point_t;
typedef struct atr_mc_ring {
    atr_mc_point_t *points; /* sorted by hash; owned */
    size_t n;
} atr_mc_ring_t;

/* names[i] ("127.0.0.1:11211") is server i; copied nowhere (used here only). */
void atr_mc_ring_init(atr_mc_ring_t *r, const char *const *names, int n);
int atr_mc_ring_pick(const atr_mc_ring_t *r, const uint8_t *key, size_t klen);
void atr_mc_ring_free(atr_mc_ring_t *r);

#endif
