/* Session ticket keys, process-wide: every server context encrypts and
 * decrypts tickets with them (atr_tls_ticket_cb), so a ticket one worker
 * issued resumes on any other, across reloads, and on any node that reads
 * the same key file. A key is 80 bytes, nginx's layout: name (16), HMAC-SHA256
 * key (32), AES-256-CBC key (32). The first key encrypts new tickets; every
 * key decrypts, and a ticket under an older key is renewed.
 *
 * Two sources: `tls_ticket_keys FILE` (base64 lines of 80 bytes; rotation is
 * rewriting the file and a reload), or keys made in memory and rotated every
 * tls_ticket_rotate (the last three kept), which survive reloads.
 *
 * Threads: the key set is swapped by the control loop and read by workers
 * under one lock, held only to copy the key a handshake needs. */
#ifndef ATR_TLS_TICKETS_H
#define ATR_TLS_TICKETS_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"

#define ATR_TICKET_KEY_LEN 80
#define ATR_TICKET_MAX_KEYS 16

typedef struct atr_tls_ticket_keys {
    uint8_t key[ATR_TICKET_MAX_KEYS][ATR_TICKET_KEY_LEN];
    int n;
} atr_tls_ticket_keys_t;

/* Read FILE: 0, or -1 with "FILE:LINE:COL: tls_ticket_keys FILE: why". */
int atr_tls_tickets_load(const char *path, const atr_conf_pos_t *pos, atr_tls_ticket_keys_t *out,
                         char *err, size_t errlen);

/* Use these keys from now on (copied); NULL: keys made in memory. */
void atr_tls_tickets_use(const atr_tls_ticket_keys_t *keys);

/* Keys made in memory: a new key encrypts once the current one is
 * interval_ms old (or none exists). A no-op while a file's keys are used. */
void atr_tls_tickets_rotate(uint64_t now_ms, uint64_t interval_ms);

/* SSL_CTX_set_tlsext_ticket_key_cb's callback. */
int atr_tls_ticket_cb(SSL *ssl, uint8_t *name, uint8_t *iv, EVP_CIPHER_CTX *ectx,
                      HMAC_CTX *hctx, int encrypt);

#endif
