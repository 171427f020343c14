/* Session ticket keys (tls/tickets.h). */
#include "tls/tickets.h"

#include <errno.h>
#include <openssl/base64.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#define MEMORY_KEYS 3

static struct {
    pthread_mutex_t lock;
    atr_tls_ticket_keys_t keys;
    int from_file;
    uint64_t made_at; /* ms, the newest key made in memory */
} ring = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int line_error(char *err, size_t errlen, const atr_conf_pos_t *pos, const char *path,
                      int line, const char *why)
{
    snprintf(err, errlen, "%s:%d:%d: tls_ticket_keys %s: line %d: %s", pos->file, pos->line,
             pos->col, path, line, why);
    return -1;
}

int atr_tls_tickets_load(const char *path, const atr_conf_pos_t *pos, atr_tls_ticket_keys_t *out,
                         char *err, size_t errlen)
{
    char *text;
    size_t len;
    int rc = atr_read_file(path, 64 * 1024, &text, &len);
    if (rc < 0) {
        snprintf(err, errlen, "%s:%d:%d: tls_ticket_keys %s: %s", pos->file, pos->line, pos->col,
                 path, strerror(-rc));
        return -1;
    }
    memset(out, 0, sizeof *out);
    int line = 0;
    for (char *p = text, *nl; *p != '\0'; p = nl) {
        nl = strchr(p, '\n');
        nl = nl ? nl + 1 : p + strlen(p);
        line++;
        size_t n = (size_t)(nl - p);
        while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == ' '))
            n--;
        if (n == 0 || p[0] == '#')
            continue;
        uint8_t raw[128];
        size_t got;
        if (out->n == ATR_TICKET_MAX_KEYS)
            rc = line_error(err, errlen, pos, path, line, "more than 16 keys");
        else if (!EVP_DecodeBase64(raw, &got, sizeof raw, (const uint8_t *)p, n))
            rc = line_error(err, errlen, pos, path, line, "not base64");
        else if (got != ATR_TICKET_KEY_LEN)
            rc = line_error(err, errlen, pos, path, line, "a key is 80 bytes "
                            "(e.g. openssl rand -base64 80)");
        if (rc < 0)
            break;
        memcpy(out->key[out->n++], raw, ATR_TICKET_KEY_LEN);
    }
    free(text);
    if (rc == 0 && out->n == 0) {
        snprintf(err, errlen, "%s:%d:%d: tls_ticket_keys %s: no key (expected base64 lines of "
                 "80 bytes)", pos->file, pos->line, pos->col, path);
        rc = -1;
    }
    return rc;
}

void atr_tls_tickets_use(const atr_tls_ticket_keys_t *keys)
{
    pthread_mutex_lock(&ring.lock);
    if (keys) {
        ring.keys = *keys;
        ring.from_file = 1;
    } else if (ring.from_file) {
        ring.keys.n = 0; /* back to keys of our own: made at the next rotation */
        ring.from_file = 0;
        ring.made_at = 0;
    }
    pthread_mutex_unlock(&ring.lock);
}

static void make_key_locked(uint64_t now_ms)
{
    int keep = ATR_MIN(ring.keys.n, MEMORY_KEYS - 1);
    memmove(ring.keys.key[1], ring.keys.key[0], (size_t)keep * ATR_TICKET_KEY_LEN);
    RAND_bytes(ring.keys.key[0], ATR_TICKET_KEY_LEN);
    ring.keys.n = keep + 1;
    ring.made_at = now_ms;
}

void atr_tls_tickets_rotate(uint64_t now_ms, uint64_t interval_ms)
{
    pthread_mutex_lock(&ring.lock);
    if (!ring.from_file && (ring.keys.n == 0 || now_ms - ring.made_at >= interval_ms))
        make_key_locked(now_ms);
    pthread_mutex_unlock(&ring.lock);
}

/* The key named name (or, for encryption, the first); 0 when none. */
static int find_key(const uint8_t *name, uint8_t out[ATR_TICKET_KEY_LEN], int *index)
{
    int found = 0;
    pthread_mutex_lock(&ring.lock);
    if (ring.keys.n == 0 && !ring.from_file)
        make_key_locked(atr_now_ms());
    for (int i = 0; i < ring.keys.n; i++) {
        if (name == NULL || memcmp(ring.keys.key[i], name, 16) == 0) {
            memcpy(out, ring.keys.key[i], ATR_TICKET_KEY_LEN);
            *index = i;
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&ring.lock);
    return found;
}

int atr_tls_ticket_cb(SSL *ssl, uint8_t *name, uint8_t *iv, EVP_CIPHER_CTX *ectx,
                      HMAC_CTX *hctx, int encrypt)
{
    uint8_t key[ATR_TICKET_KEY_LEN];
    int index = 0, rc;
    (void)ssl;
    if (encrypt) {
        if (!find_key(NULL, key, &index) || RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1)
            return -1;
        memcpy(name, key, 16);
        rc = EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, key + 48, iv) == 1 &&
             HMAC_Init_ex(hctx, key + 16, 32, EVP_sha256(), NULL) == 1;
        OPENSSL_cleanse(key, sizeof key);
        return rc ? 1 : -1;
    }
    if (!find_key(name, key, &index))
        return 0; /* not ours (any more): a full handshake */
    rc = EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, key + 48, iv) == 1 &&
         HMAC_Init_ex(hctx, key + 16, 32, EVP_sha256(), NULL) == 1;
    OPENSSL_cleanse(key, sizeof key);
    if (!rc)
        return -1;
    return index == 0 ? 1 : 2; /* an older key: issue a ticket under the current one */
}
