/* Session ticket keys (tls/tickets.c): the key file's lines (base64 of 80
 * bytes, comments, blank lines, CRLF) and its errors with FILE:LINE:COL;
 * keys made in memory rotating on time and keeping the last three; the
 * callback encrypting under the first key, decrypting under any (renewing
 * under an older one) and refusing an unknown name; a file's keys replacing
 * the ones made in memory, and the way back. */
#include "tls/tickets.h"
#include "t.h"

#include <openssl/base64.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>

static const atr_conf_pos_t pos = { "t.conf", 3, 17 };
static char err[512];

static int load_text(const char *text, atr_tls_ticket_keys_t *keys)
{
    FILE *f = fopen("/tmp/atrium-test-tickets.keys", "w");
    fputs(text, f);
    fclose(f);
    return atr_tls_tickets_load("/tmp/atrium-test-tickets.keys", &pos, keys, err, sizeof err);
}

/* base64 of 80 bytes all equal to b */
static const char *key_line(int b)
{
    static char out[8][160];
    static int next;
    uint8_t raw[ATR_TICKET_KEY_LEN];
    char *o = out[next++ % 8];
    memset(raw, b, sizeof raw);
    EVP_EncodeBlock((uint8_t *)o, raw, sizeof raw);
    return o;
}

static void test_file(void)
{
    atr_tls_ticket_keys_t k;
    char text[2048];
    snprintf(text, sizeof text, "# keys\n%s\n\n%s\r\n", key_line(1), key_line(2));
    T_CHECK(__LINE__, load_text(text, &k) == 0 && k.n == 2, "%s", err);
    T_CHECK(__LINE__, k.key[0][0] == 1 && k.key[1][79] == 2, "order");

    static const struct {
        int line;
        const char *text, *msg;
    } bad[] = {
        { __LINE__, "", "t.conf:3:17: tls_ticket_keys /tmp/atrium-test-tickets.keys: no key "
                        "(expected base64 lines of 80 bytes)" },
        { __LINE__, "# only a comment\n", "no key" },
        { __LINE__, "!!!!\n", "line 1: not base64" },
        { __LINE__, "\naGVsbG8=\n", "line 2: a key is 80 bytes (e.g. openssl rand -base64 80)" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        T_CHECK(bad[i].line, load_text(bad[i].text, &k) < 0, "accepted");
        T_CHECK(bad[i].line, strstr(err, bad[i].msg) != NULL, "%s", err);
        T_CHECK(bad[i].line, strncmp(err, "t.conf:3:17: tls_ticket_keys ", 29) == 0, "%s", err);
    }
    text[0] = '\0';
    for (int i = 0; i < 17; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "%s\n", key_line(i));
    T_CHECK(__LINE__, load_text(text, &k) < 0 && strstr(err, "line 17: more than 16 keys"),
            "%s", err);
    T_CHECK(__LINE__, atr_tls_tickets_load("/nonexistent/k", &pos, &k, err, sizeof err) < 0 &&
                          strstr(err, "No such file") != NULL, "%s", err);
}

/* The callback as BoringSSL calls it: encrypting writes the key name into
 * name (1 or -1); decrypting looks name up (1, 2 renew, 0 unknown, -1). */
static int ticket_cb(uint8_t name[16], int encrypt)
{
    uint8_t iv[EVP_MAX_IV_LENGTH] = { 0 };
    EVP_CIPHER_CTX *e = EVP_CIPHER_CTX_new();
    HMAC_CTX *h = HMAC_CTX_new();
    int rc = atr_tls_ticket_cb(NULL, name, iv, e, h, encrypt);
    EVP_CIPHER_CTX_free(e);
    HMAC_CTX_free(h);
    return rc;
}

static int encrypt(uint8_t name[16])
{
    return ticket_cb(name, 1);
}

static int decrypt(const uint8_t name[16])
{
    uint8_t n[16];
    memcpy(n, name, 16);
    return ticket_cb(n, 0);
}

static void test_rotation(void)
{
    uint8_t n0[16], n1[16], n2[16], n3[16];
    const uint64_t hour = 3600000;
    atr_tls_tickets_use(NULL);
    atr_tls_tickets_rotate(1000, hour);
    T_CHECK(__LINE__, encrypt(n0) == 1 && decrypt(n0) == 1, "the first key");
    atr_tls_tickets_rotate(1000 + hour - 1, hour);
    T_CHECK(__LINE__, encrypt(n1) == 1 && memcmp(n0, n1, 16) == 0, "not yet rotated");
    atr_tls_tickets_rotate(1000 + hour, hour);
    T_CHECK(__LINE__, encrypt(n1) == 1 && memcmp(n0, n1, 16) != 0, "rotated");
    T_CHECK(__LINE__, decrypt(n0) == 2, "an older key decrypts and asks for renewal");
    T_CHECK(__LINE__, decrypt(n1) == 1, "the current key");
    atr_tls_tickets_rotate(1000 + 2 * hour, hour);
    encrypt(n2);
    atr_tls_tickets_rotate(1000 + 3 * hour, hour);
    encrypt(n3);
    T_CHECK(__LINE__, decrypt(n3) == 1 && decrypt(n2) == 2 && decrypt(n1) == 2, "three kept");
    T_CHECK(__LINE__, decrypt(n0) == 0, "the fourth oldest is gone: a full handshake");
    uint8_t unknown[16] = { 0xee };
    T_CHECK(__LINE__, decrypt(unknown) == 0, "unknown name");
}

static void test_file_keys_replace_memory(void)
{
    atr_tls_ticket_keys_t k;
    uint8_t before[16], name[16];
    char text[512];
    atr_tls_tickets_use(NULL);
    atr_tls_tickets_rotate(1, 1000);
    encrypt(before);
    snprintf(text, sizeof text, "%s\n%s\n", key_line(7), key_line(8));
    T_CHECK(__LINE__, load_text(text, &k) == 0, "%s", err);
    atr_tls_tickets_use(&k);
    T_CHECK(__LINE__, encrypt(name) == 1 && name[0] == 7 && name[15] == 7, "the file's first");
    uint8_t second[16];
    memset(second, 8, sizeof second);
    T_CHECK(__LINE__, decrypt(second) == 2, "the file's second decrypts, renews");
    T_CHECK(__LINE__, decrypt(before) == 0, "memory keys are gone");
    atr_tls_tickets_rotate(1000000, 1000);
    T_CHECK(__LINE__, encrypt(name) == 1 && name[0] == 7, "no rotation of a file's keys");
    atr_tls_tickets_use(NULL);
    T_CHECK(__LINE__, encrypt(name) == 1 && name[0] != 7, "back to keys made in memory");
}

int main(void)
{
    test_file();
    test_rotation();
    test_file_keys_replace_memory();
    remove("/tmp/atrium-test-tickets.keys");
    T_DONE();
}
