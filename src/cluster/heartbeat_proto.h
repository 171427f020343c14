/* Apache httpd's heartbeat wire format (mod_heartbeat, mod_heartmonitor;
 * specs-digest §1) and its flat storage file, plus Atrium's signed-beat
 * fields. Pure code over bytes: no sockets, no clock, no allocation. The
 * HMAC of a signed beat is in heartbeat_mac.h (it needs BoringSSL). See
 * docs/heartbeat.md for what is compatible with Apache and what is not. */
#ifndef ATR_HEARTBEAT_PROTO_H
#define ATR_HEARTBEAT_PROTO_H

#include <stddef.h>
#include <stdint.h>

/* mod_heartmonitor's MAX_MSG_LEN: the largest datagram or POST body read. */
#define ATR_HB_MAX_MSG 1000
/* heartbeat.h's MAXIPSIZE: an address in the storage, with its NUL. */
#define ATR_HB_MAX_IP 46
/* The port mod_heartmonitor records when a beat carries none. */
#define ATR_HB_DEFAULT_PORT 80
/* mod_heartmonitor's SEEN_TIMEOUT, in seconds: older servers leave the
 * storage, and a storage line without lastseen= counts as this old. */
#define ATR_HB_SEEN_TIMEOUT 30
/* The largest ready= or busy= accepted: Apache keeps them in an int. */
#define ATR_HB_MAX_COUNT 2147483647u

/* One beat as parsed or to be encoded. */
typedef struct atr_hb_beat {
    unsigned ready;
    unsigned busy;
    unsigned port;  /* 0 when has_port is 0 */
    int has_port;   /* a port= field was present */
    int has_ts;     /* a well-formed ts= field was present (signed beats) */
    uint64_t ts_ms; /* its value: unix time in milliseconds */
} atr_hb_beat_t;

/* Parses a beat (a datagram's bytes or a POST body, p[0..n)) the way
 * mod_heartmonitor does: '&'-separated fields, empty ones skipped, split at
 * the first '='; a key without '=' has the value "1"; key and value
 * %-decoded as ap_unescape_url does ('+' stays, a bad escape stays literal,
 * a decoded NUL ends the string); keys compared without case; a repeated key
 * keeps its last value; other keys ignored; the bytes after a NUL ignored.
 * v, ready and busy must be present (the value of v is not checked, as in
 * Apache); numbers are read as atoi reads them (leading blanks, a sign,
 * digits, the rest ignored: "" and "x" are 0). Refused beyond Apache, as
 * unsafe: more than ATR_HB_MAX_MSG bytes (Apache truncates, which can cut
 * a number short), a negative ready/busy/port, ready/busy above
 * ATR_HB_MAX_COUNT, a port above 65535. p is only read during the call.
 * Returns NULL with *out filled, or a static reason for the malformed-beat
 * count ("missing ready", "busy out of range", ...) with *out undefined. */
const char *atr_hb_parse(const char *p, size_t n, atr_hb_beat_t *out);

/* Encodes b as mod_heartbeat does, "v=1&ready=R&busy=B" with no NUL or
 * newline, then "&port=P" when b->has_port and "&ts=T" when b->has_ts.
 * Writes a NUL after the bytes. Returns the length without the NUL, or
 * -ENOSPC when buf is too small (nothing usable is left in buf then). */
int atr_hb_encode(char *buf, size_t size, const atr_hb_beat_t *b);

/* One line of the flat storage file (HeartbeatMaxServers 0). */
typedef struct atr_hb_entry {
    char ip[ATR_HB_MAX_IP]; /* the beat's source address, as text */
    unsigned ready;
    unsigned busy;
    unsigned lastseen;      /* seconds since the last beat */
    unsigned port;
} atr_hb_entry_t;

/* Writes e as mod_heartmonitor writes a storage line,
 * "<ip> &ready=R&busy=B&lastseen=S&port=P\n", NUL after the newline.
 * Returns the length without the NUL, or -ENOSPC (buf too small) or -EINVAL
 * (ip empty, or with a space, '&' or newline, which would break the line). */
int atr_hb_storage_format(char *buf, size_t size, const atr_hb_entry_t *e);

/* Reads one storage line line[0..n) (a trailing "\n" is allowed) as
 * mod_lbmethod_heartbeat and mod_heartmonitor read it: a line starting with
 * '#' or without a space is skipped; the ip is what comes before the first
 * space; the rest are fields parsed as in atr_hb_parse; absent ones are
 * ready 0, busy 0, lastseen ATR_HB_SEEN_TIMEOUT, port ATR_HB_DEFAULT_PORT.
 * Returns 1 with *out filled, 0 for a line to skip, -EINVAL for an ip of
 * ATR_HB_MAX_IP bytes or more, a line over 4095 bytes (Apache's line
 * buffer) or a number out of range. line is only read during the call. */
int atr_hb_storage_parse(const char *line, size_t n, atr_hb_entry_t *out);

#endif
