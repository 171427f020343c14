/* HMAC-SHA256 over a beat's bytes (heartbeat_mac.h, docs/heartbeat.md). */
#include "cluster/heartbeat_mac.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <string.h>

static const char hexdig[] = "0123456789abcdef";

static void mac_of(const uint8_t *key, size_t keylen, const char *msg, size_t n,
                   uint8_t out[32])
{
    unsigned int outlen = 32;

    HMAC(EVP_sha256(), key, keylen, (const uint8_t *)msg, n, out, &outlen);
}

int atr_hb_mac_append(const uint8_t *key, size_t keylen, char *buf, size_t size, size_t len)
{
    uint8_t mac[32];
    char *p;

    if (len >= size || size - len < ATR_HB_MAC_FIELD_LEN + 1)
        return -ENOSPC;
    mac_of(key, keylen, buf, len, mac);
    p = buf + len;
    memcpy(p, "&mac=", 5);
    p += 5;
    for (int i = 0; i < 32; i++) {
        *p++ = hexdig[mac[i] >> 4];
        *p++ = hexdig[mac[i] & 15];
    }
    *p = '\0';
    return (int)(len + ATR_HB_MAC_FIELD_LEN);
}

static int unhex(char c)
{
    const char *d = c ? strchr(hexdig, c) : NULL;

    return d ? (int)(d - hexdig) : -1;
}

const char *atr_hb_mac_check(const uint8_t *key, size_t keylen, const char *msg, size_t n,
                             const atr_hb_beat_t *b, uint64_t now_ms, uint64_t window_ms)
{
    uint8_t want[32], got[32];
    const char *hex;
    size_t signed_len;

    if (n < ATR_HB_MAC_FIELD_LEN || memcmp(msg + n - ATR_HB_MAC_FIELD_LEN, "&mac=", 5) != 0)
        return "no mac";
    signed_len = n - ATR_HB_MAC_FIELD_LEN;
    hex = msg + signed_len + 5;
    for (int i = 0; i < 32; i++) {
        int hi = unhex(hex[2 * i]), lo = unhex(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return "bad mac";
        got[i] = (uint8_t)(hi << 4 | lo);
    }
    mac_of(key, keylen, msg, signed_len, want);
    if (CRYPTO_memcmp(want, got, sizeof want) != 0)
        return "bad mac";
    /* ts is read only now: a forged beat learns nothing about the clock */
    if (!b->has_ts)
        return "no ts";
    if ((b->ts_ms > now_ms ? b->ts_ms - now_ms : now_ms - b->ts_ms) > window_ms)
        return "stale ts";
    return NULL;
}

const char *atr_hb_mac_fresh(uint64_t *last_ms, uint64_t ts_ms)
{
    if (ts_ms <= *last_ms)
        return "replayed ts";
    *last_ms = ts_ms;
    return NULL;
}
