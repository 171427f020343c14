/* Client certificates checked with OCSP (`client_ocsp on`), on the worker
 * that runs the handshake (net/tls.h, atr_tls_ocsp_register). BoringSSL
 * calls verify() (SSL_CTX_set_custom_verify) once the client's Certificate
 * has arrived:
 *   1. the chain is verified against client_certificate's CAs exactly as
 *      BoringSSL's own verification would (X509_verify_cert);
 *   2. the leaf's status is looked up in the worker's small-object cache
 *      ("ocsp:" + CertID), where verified responses stay until nextUpdate;
 *   3. on a miss, it is asked of the responder in the leaf's AIA
 *      (net/ocsp_fetch.h), the answer verified (tls/ocsp.h) and cached.
 * While 2 or 3 run, verify() answers ssl_verify_retry and the handshake
 * waits (SSL_ERROR_WANT_CERTIFICATE_VERIFY); the answer kicks the sock and
 * BoringSSL calls verify() again, which returns the verdict kept here.
 *
 * Revoked: the handshake fails with certificate_revoked; unknown: with
 * certificate_unknown. No usable answer (responder down, a response that
 * does not verify, no responder named): client_ocsp_fail closed (default)
 * fails with certificate_unknown, open lets the client in. The cache holds
 * the DER and it is verified again on every hit: a memcached shared with
 * other machines is not trusted with a verdict. */
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/socache.h"
#include "base/util.h"
#include "net/ocsp_fetch.h"
#include "net/tls.h"
#include "net/worker.h"
#include "tls/ctx.h"
#include "tls/ocsp.h"

/* A client waits for its handshake: shorter than the control loop's. */
#define CHECK_TIMEOUT_MS 3000

enum { CHECK_RUNNING = 1, CHECK_DONE };

typedef struct check {
    atr_sock_t *s;       /* held while RUNNING */
    X509 *leaf, *issuer; /* references */
    atr_ocsp_certid_t id;
    uint8_t key[5 + 40 + sizeof(((atr_ocsp_certid_t *)0)->serial)];
    size_t klen;
    char *url; /* the responder, parsed into where */
    atr_ocsp_url_t where;
    int state;
    int sync; /* inside verify(): the answer needs no kick */
    enum ssl_verify_result_t result;
    uint8_t alert;
} check_t;

static int check_index = -1;

static void check_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int index, long argl,
                       void *argp)
{
    check_t *c = ptr;
    (void)parent, (void)ad, (void)index, (void)argl, (void)argp;
    if (c == NULL)
        return;
    X509_free(c->leaf);
    X509_free(c->issuer);
    free(c->url);
    free(c);
}

static SSL *ssl_of(atr_sock_t *s)
{
    return atr_tls_ssl(s);
}

static const char *subject(X509 *x, char *buf, size_t n)
{
    X509_NAME_oneline(X509_get_subject_name(x), buf, (int)n);
    return buf;
}

/* The verdict; the handshake goes on (a kick unless verify() is still on
 * the stack). */
static void conclude(check_t *c, enum ssl_verify_result_t r, uint8_t alert)
{
    atr_sock_t *s = c->s;
    c->state = CHECK_DONE;
    c->result = r;
    c->alert = alert;
    c->s = NULL;
    if (!c->sync && !s->closing)
        atr_sock_kick(s);
    atr_sock_release(s);
}

/* No usable answer: client_ocsp_fail decides. */
static void no_answer(check_t *c, const char *why)
{
    char who[256];
    SSL *ssl = ssl_of(c->s);
    const atr_conf_host_t *h = ssl ? atr_tls_ctx_host(SSL_get_SSL_CTX(ssl)) : NULL;
    int open = h && h->tls && h->tls->client_ocsp_fail_open;
    ATR_WARN("client certificate %s: no OCSP answer from %s: %s; %s",
             subject(c->leaf, who, sizeof who), c->url ? c->url : "-", why,
             open ? "allowed (client_ocsp_fail open)" : "refused (client_ocsp_fail closed)");
    conclude(c, open ? ssl_verify_ok : ssl_verify_invalid, SSL_AD_CERTIFICATE_UNKNOWN);
}

/* A verified response: its status decides. */
static void answered(check_t *c, const atr_ocsp_result_t *r, const char *from)
{
    char who[256];
    if (r->status == ATR_OCSP_GOOD) {
        ATR_DEBUG("client certificate %s: OCSP good (%s)", subject(c->leaf, who, sizeof who), from);
        conclude(c, ssl_verify_ok, 0);
        return;
    }
    int revoked = r->status == ATR_OCSP_REVOKED;
    ATR_INFO("client certificate %s: OCSP %s (%s); handshake refused",
             subject(c->leaf, who, sizeof who), revoked ? "revoked" : "unknown", from);
    conclude(c, ssl_verify_invalid,
             revoked ? SSL_AD_CERTIFICATE_REVOKED : SSL_AD_CERTIFICATE_UNKNOWN);
}

static void fetched(void *arg, int status, const uint8_t *body, size_t len, const char *why)
{
    check_t *c = arg;
    char text[200];
    atr_ocsp_result_t r;
    if (c->s->closing) {
        conclude(c, ssl_verify_invalid, SSL_AD_INTERNAL_ERROR);
        return;
    }
    if (status < 0) {
        no_answer(c, why);
        return;
    }
    int64_t now = (int64_t)time(NULL);
    if (atr_ocsp_verify(body, len, c->leaf, c->issuer, now, &r) < 0) {
        snprintf(text, sizeof text, "the response does not verify: %s", r.reason);
        no_answer(c, text);
        return;
    }
    atr_worker_t *w = atr_sock_worker(c->s);
    if (w->session_local && r.next_update > now)
        atr_socache_set(w->session_local, c->key, c->klen, body, len,
                        (uint32_t)ATR_MIN(r.next_update - now, (int64_t)ATR_SOCACHE_TTL_MAX));
    answered(c, &r, c->url);
}

static void ask_responder(check_t *c)
{
    uint8_t *req;
    size_t len;
    if (atr_ocsp_request(&c->id, &req, &len) < 0) {
        no_answer(c, "cannot build the request");
        return;
    }
    atr_ocsp_fetch_t *f =
        atr_ocsp_fetch_start(c->s->io.handle.loop, c->where.host.p, c->where.host.n, c->where.port,
                             c->where.path.p, c->where.path.n, req, len, CHECK_TIMEOUT_MS, fetched,
                             c);
    OPENSSL_free(req);
    if (f == NULL)
        no_answer(c, "cannot start the request");
}

static void cached(void *arg, int status, const uint8_t *val, size_t len)
{
    check_t *c = arg;
    atr_ocsp_result_t r;
    if (c->s->closing) {
        conclude(c, ssl_verify_invalid, SSL_AD_INTERNAL_ERROR);
        return;
    }
    if (status == 1 && atr_ocsp_verify(val, len, c->leaf, c->issuer, (int64_t)time(NULL), &r) == 0)
        answered(c, &r, "cached");
    else
        ask_responder(c); /* a miss, a cache error, or a response gone stale */
}

/* The chain, as BoringSSL would verify it; the verified chain's issuer of
 * the leaf in *issuer (a reference), NULL when the leaf is itself a CA of
 * the store. 0, or an X509_V_ERR_* code. */
static long verify_chain(SSL *ssl, X509 **issuer)
{
    STACK_OF(X509) *chain = SSL_get_peer_full_cert_chain(ssl);
    X509_STORE_CTX *xs = X509_STORE_CTX_new();
    long err = X509_V_ERR_UNSPECIFIED;
    *issuer = NULL;
    if (xs && chain && sk_X509_num(chain) > 0 &&
        X509_STORE_CTX_init(xs, SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl)),
                            sk_X509_value(chain, 0), chain)) {
        X509_STORE_CTX_set_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx(), ssl);
        X509_STORE_CTX_set_default(xs, "ssl_client");
        X509_VERIFY_PARAM_set_depth(X509_STORE_CTX_get0_param(xs), SSL_get_verify_depth(ssl));
        err = X509_verify_cert(xs) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(xs);
        STACK_OF(X509) *path = X509_STORE_CTX_get0_chain(xs);
        if (err == X509_V_OK && sk_X509_num(path) > 1)
            X509_up_ref(*issuer = sk_X509_value(path, 1));
    }
    X509_STORE_CTX_free(xs);
    ERR_clear_error();
    return err;
}

/* A check of the verified leaf: key, responder. NULL with *why set when
 * the leaf cannot be checked. */
static check_t *check_new(SSL *ssl, X509 *issuer, const char **why)
{
    check_t *c = atr_xcalloc(1, sizeof *c);
    c->leaf = SSL_get_peer_certificate(ssl);
    c->issuer = issuer;
    SSL_set_ex_data(ssl, check_index, c); /* freed with the SSL */
    *why = NULL;
    if (issuer == NULL || atr_ocsp_certid(c->leaf, issuer, &c->id) < 0)
        *why = "no issuer to ask about it";
    else if ((c->url = atr_ocsp_responder_url(c->leaf)) == NULL)
        *why = "the certificate names no OCSP responder";
    else
        atr_ocsp_url_parse(c->url, &c->where, why);
    memcpy(c->key, "ocsp:", 5);
    memcpy(c->key + 5, c->id.name_hash, 20);
    memcpy(c->key + 25, c->id.key_hash, 20);
    memcpy(c->key + 45, c->id.serial, c->id.serial_len);
    c->klen = 45 + c->id.serial_len;
    return c;
}

static enum ssl_verify_result_t verify(SSL *ssl, uint8_t *out_alert)
{
    check_t *c = SSL_get_ex_data(ssl, check_index);
    if (c && c->state == CHECK_DONE) {
        *out_alert = c->alert;
        return c->result;
    }
    if (c)
        return ssl_verify_retry; /* still running */
    X509 *issuer;
    long err = verify_chain(ssl, &issuer);
    if (err != X509_V_OK) {
        *out_alert = (uint8_t)SSL_alert_from_verify_result(err);
        OPENSSL_PUT_ERROR(SSL, SSL_R_CERTIFICATE_VERIFY_FAILED);
        ERR_add_error_data(1, X509_verify_cert_error_string(err));
        return ssl_verify_invalid;
    }
    const char *why;
    atr_sock_t *s = BIO_get_data(SSL_get_rbio(ssl));
    c = check_new(ssl, issuer, &why);
    c->s = s;
    c->state = CHECK_RUNNING;
    c->sync = 1;
    atr_sock_hold(s);
    atr_worker_t *w = atr_sock_worker(s);
    if (why)
        no_answer(c, why);
    else if (w->session_local)
        atr_socache_get(w->session_local, c->key, c->klen, cached, c);
    else
        ask_responder(c);
    c->sync = 0;
    if (c->state != CHECK_DONE)
        return ssl_verify_retry;
    *out_alert = c->alert;
    return c->result;
}

void atr_tls_ocsp_register(void)
{
    if (check_index < 0)
        check_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, check_free);
    atr_tls_use_verify_hook(verify);
}
