/* TLS contexts from a configuration (tls/ctx.h). */
#include "tls/ctx.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/bytestring.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/util.h"
#include "tls/ocsp.h"
#include "tls/tickets.h"

/* TLS 1.2 suites: forward secret AEADs only, server order. (TLS 1.3's are
 * fixed by BoringSSL: AES-GCM and ChaCha20-Poly1305.) */
#define CIPHERS                                                                                    \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* A staple fetched at run time (`stapling on`): set by the control loop
 * while workers read it, so it lives here behind a lock and each handshake
 * that asks for it gets a copy (SSL_set_ocsp_response). Replacing the
 * SSL_CTX's own response instead would race with every SSL_new and
 * SSL_set_SSL_CTX on the workers, which take it unlocked. */
typedef struct staple {
    pthread_mutex_t lock;
    uint8_t *der; /* NULL: nothing to staple */
    size_t len;
} staple_t;

typedef struct pair {
    SSL_CTX *ctx;
    int ecdsa; /* the key is an EC key */
    staple_t *staple;
    atr_tls_verify_cb verify; /* client_ocsp: the custom verification, else NULL */
} pair_t;

typedef struct tls_host {
    const atr_conf_host_t *conf;
    pair_t *pairs;
    int npairs;
} tls_host_t;

struct atr_tls_server {
    const atr_conf_t *conf;
    tls_host_t *hosts;
    int nhosts;
    tls_host_t *def;         /* no SNI, or a name no TLS host has */
    pair_t **all;            /* every pair of every host, in order (atr_tls_server_staple_pair) */
    int nall;
};

static int srv_index = -1;
static pthread_once_t index_once = PTHREAD_ONCE_INIT;
static int client_index = -1, server_no_index = -1; /* a client SSL's session slot */
static int host_index = -1; /* a pair's SSL_CTX: its atr_conf_host_t */

static void make_indexes(void)
{
    srv_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    host_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    client_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    server_no_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* "FILE:LINE:COL: " + what. Always -1. */
static int fail(char *err, size_t errlen, const atr_conf_pos_t *pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, const atr_conf_pos_t *pos, const char *fmt, ...)
{
    int n = snprintf(err, errlen, "%s:%d:%d: ", pos->file, pos->line, pos->col);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < errlen)
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
    ERR_clear_error();
    return -1;
}

/* Why BoringSSL refused a file: the file system's reason first. */
static const char *why_file(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return strerror(errno);
    fclose(f);
    uint32_t e = ERR_peek_last_error();
    snprintf(buf, n, "%s", e ? ERR_reason_error_string(e) : "not in PEM format");
    return buf;
}

/* ---- server contexts ---- */

static int select_alpn(SSL *ssl, const uint8_t **out, uint8_t *outlen, const uint8_t *in,
                       unsigned inlen, void *arg)
{
    /* Room for h2 later: the server's list, in order of preference. */
    static const uint8_t ours[] = { 8, 'h', 't', 't', 'p', '/', '1', '.', '1' };
    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto((uint8_t **)out, outlen, ours, sizeof ours, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL; /* no protocol we speak */
    return SSL_TLSEXT_ERR_OK;
}

/* Can the client verify an ECDSA signature? TLS 1.3 clients say so in
 * signature_algorithms; a TLS 1.2-only client must also offer an
 * ECDHE-ECDSA suite. */
static int client_takes_ecdsa(const SSL_CLIENT_HELLO *ch)
{
    const uint8_t *p;
    size_t n;
    int sigalg = 0, tls13 = 0, suite = 0;
    CBS cbs, list;
    if (SSL_early_callback_ctx_extension_get(ch, TLSEXT_TYPE_signature_algorithms, &p, &n)) {
        uint16_t alg;
        CBS_init(&cbs, p, n);
        if (CBS_get_u16_length_prefixed(&cbs, &list))
            while (CBS_get_u16(&list, &alg))
                sigalg |= (alg & 0xff) == 0x03; /* ecdsa_secp*_sha* */
    }
    if (SSL_early_callback_ctx_extension_get(ch, TLSEXT_TYPE_supported_versions, &p, &n)) {
        uint16_t v;
        CBS_init(&cbs, p, n);
        if (CBS_get_u8_length_prefixed(&cbs, &list))
            while (CBS_get_u16(&list, &v))
                tls13 |= v == TLS1_3_VERSION;
    }
    CBS_init(&cbs, ch->cipher_suites, ch->cipher_suites_len);
    uint16_t cs;
    while (CBS_get_u16(&cbs, &cs))
        suite |= cs == 0xc02b || cs == 0xc02c || cs == 0xcca9; /* ECDHE-ECDSA AEADs */
    return sigalg && (tls13 || suite);
}

static tls_host_t *host_for_name(atr_tls_server_t *srv, const char *name)
{
    const atr_conf_host_t *h = name ? atr_conf_match_host(srv->conf, name, strlen(name)) : NULL;
    for (int i = 0; h && i < srv->nhosts; i++)
        if (srv->hosts[i].conf == h)
            return &srv->hosts[i];
    return srv->def;
}

/* The current staple, copied into this handshake (the client asked). */
static void staple_apply(staple_t *st, SSL *ssl)
{
    pthread_mutex_lock(&st->lock);
    if (st->der)
        SSL_set_ocsp_response(ssl, st->der, st->len);
    pthread_mutex_unlock(&st->lock);
}

/* Before the rest of the ClientHello is processed: the host by SNI, then
 * its certificate by what the client can verify. */
static enum ssl_select_cert_result_t select_cert(const SSL_CLIENT_HELLO *ch)
{
    SSL *ssl = ch->ssl;
    atr_tls_server_t *srv = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), srv_index);
    tls_host_t *h = host_for_name(srv, SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
    int ecdsa = client_takes_ecdsa(ch);
    pair_t *pick = &h->pairs[0];
    for (int i = 0; i < h->npairs; i++)
        if (h->pairs[i].ecdsa == ecdsa) {
            pick = &h->pairs[i];
            break;
        }
    if (pick->ctx != SSL_get_SSL_CTX(ssl)) {
        SSL_set_SSL_CTX(ssl, pick->ctx);
        /* SSL_set_SSL_CTX moves the certificate, not how the peer is verified */
        SSL_set_custom_verify(ssl, SSL_CTX_get_verify_mode(pick->ctx), pick->verify);
        SSL_set_verify_depth(ssl, SSL_CTX_get_verify_depth(pick->ctx));
    }
    const uint8_t *p;
    size_t n;
    if (pick->staple && SSL_early_callback_ctx_extension_get(ch, TLSEXT_TYPE_status_request, &p, &n))
        staple_apply(pick->staple, ssl);
    return ssl_select_cert_success;
}

static const atr_tls_session_hooks_t *session_hooks;
static atr_tls_verify_cb verify_hook;

void atr_tls_use_verify_hook(atr_tls_verify_cb cb)
{
    verify_hook = cb;
}

void atr_tls_use_session_hooks(const atr_tls_session_hooks_t *hooks)
{
    session_hooks = hooks;
}

static void session_cache(SSL_CTX *ctx, const atr_conf_t *conf)
{
    if (conf->tls_session_cache == ATR_SESSION_CACHE_OFF) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    } else if (session_hooks) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
        SSL_CTX_sess_set_new_cb(ctx, session_hooks->new_session);
        SSL_CTX_sess_set_get_cb(ctx, session_hooks->get_session);
        SSL_CTX_sess_set_remove_cb(ctx, session_hooks->remove_session);
    }
}

/* What every server context shares: versions, suites, ALPN, tickets. */
static SSL_CTX *server_ctx_new(atr_tls_server_t *srv)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_strict_cipher_list(ctx, CIPHERS);
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_early_data_enabled(ctx, 0);
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    SSL_CTX_set_select_certificate_cb(ctx, select_cert);
    SSL_CTX_set_ex_data(ctx, srv_index, srv);
    SSL_CTX_set_session_id_context(ctx, (const uint8_t *)"atrium", 6);
    SSL_CTX_set_tlsext_ticket_key_cb(ctx, atr_tls_ticket_cb);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* One TLS 1.3 ticket per handshake, not BoringSSL's two: a client resumes
     * one connection with it, and each ticket costs a session copy, a key
     * derivation and an encryption on every full handshake. */
    SSL_CTX_set_num_tickets(ctx, 1);
    session_cache(ctx, srv->conf);
    return ctx;
}

static int load_pair(SSL_CTX *ctx, const atr_conf_cert_t *c, int *ecdsa, char *err,
                     size_t errlen)
{
    char buf[160];
    if (SSL_CTX_use_certificate_chain_file(ctx, c->cert) != 1)
        return fail(err, errlen, &c->cert_pos, "certificate %s: %s", c->cert,
                    why_file(c->cert, buf, sizeof buf));
    X509 *leaf = SSL_CTX_get0_certificate(ctx);
    if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0)
        return fail(err, errlen, &c->cert_pos, "certificate %s: expired", c->cert);
    if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0)
        return fail(err, errlen, &c->cert_pos, "certificate %s: not valid yet", c->cert);
    /* Read the key ourselves: BoringSSL's own loader checks it against the
     * certificate and says only KEY_TYPE_MISMATCH. */
    BIO *b = BIO_new_file(c->key, "r");
    EVP_PKEY *key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (key == NULL)
        return fail(err, errlen, &c->key_pos, "key %s: %s", c->key,
                    why_file(c->key, buf, sizeof buf));
    int ok = SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
    EVP_PKEY_free(key);
    if (!ok)
        return fail(err, errlen, &c->key_pos, "key %s does not match certificate %s", c->key,
                    c->cert);
    EVP_PKEY *pk = X509_get_pubkey(leaf);
    *ecdsa = pk && EVP_PKEY_id(pk) == EVP_PKEY_EC;
    EVP_PKEY_free(pk);
    return 0;
}

static int load_client_ca(pair_t *p, const atr_conf_tls_t *t, char *err, size_t errlen)
{
    SSL_CTX *ctx = p->ctx;
    char buf[160];
    if (t->client_verify == ATR_CLIENT_VERIFY_OFF)
        return 0;
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(t->client_ca);
    if (names == NULL || SSL_CTX_load_verify_locations(ctx, t->client_ca, NULL) != 1) {
        sk_X509_NAME_pop_free(names, X509_NAME_free);
        return fail(err, errlen, &t->client_ca_pos, "client_certificate %s: %s", t->client_ca,
                    why_file(t->client_ca, buf, sizeof buf));
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    int mode = SSL_VERIFY_PEER;
    if (t->client_verify == ATR_CLIENT_VERIFY_REQUIRED)
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    if (t->client_ocsp && verify_hook) {
        p->verify = verify_hook; /* the chain as below, then the leaf's status */
        SSL_CTX_set_custom_verify(ctx, mode, verify_hook);
    } else {
        SSL_CTX_set_verify(ctx, mode, NULL);
    }
    SSL_CTX_set_verify_depth(ctx, 5);
    return 0;
}

/* The certificate after the leaf in the chain file, when it issued the leaf. */
static X509 *pair_issuer(SSL_CTX *ctx)
{
    STACK_OF(X509) *chain = NULL;
    X509 *leaf = SSL_CTX_get0_certificate(ctx);
    if (!SSL_CTX_get0_chain_certs(ctx, &chain) || sk_X509_num(chain) == 0)
        return NULL;
    X509 *issuer = sk_X509_value(chain, 0);
    return X509_check_issued(issuer, leaf) == X509_V_OK ? issuer : NULL;
}

static int load_staple(SSL_CTX *ctx, const atr_conf_tls_t *t, char *err, size_t errlen)
{
    if (t->stapling_file == NULL)
        return 0;
    char *der;
    size_t n;
    int rc = atr_read_file(t->stapling_file, 64 * 1024, &der, &n);
    if (rc < 0)
        return fail(err, errlen, &t->stapling_pos, "stapling %s: %s", t->stapling_file,
                    strerror(-rc));
    /* A response that would not verify, or says anything but good, is
     * worse than none: a client may refuse the handshake over it. */
    X509 *issuer = pair_issuer(ctx);
    atr_ocsp_result_t res;
    rc = issuer ? atr_ocsp_verify((const uint8_t *)der, n, SSL_CTX_get0_certificate(ctx), issuer,
                                  (int64_t)time(NULL), &res)
                : -EINVAL;
    if (rc == 0 && res.status == ATR_OCSP_GOOD)
        SSL_CTX_set_ocsp_response(ctx, (const uint8_t *)der, n);
    free(der);
    if (issuer == NULL)
        return fail(err, errlen, &t->stapling_pos, "stapling %s: the certificate file has no "
                    "issuer certificate after the leaf to verify it with", t->stapling_file);
    if (rc < 0)
        return fail(err, errlen, &t->stapling_pos, "stapling %s: %s", t->stapling_file,
                    res.reason);
    if (res.status != ATR_OCSP_GOOD)
        return fail(err, errlen, &t->stapling_pos, "stapling %s: the certificate's status is "
                    "%s, not good", t->stapling_file,
                    res.status == ATR_OCSP_REVOKED ? "revoked" : "unknown");
    return 0;
}

static int build_host(atr_tls_server_t *srv, tls_host_t *th, const atr_conf_host_t *h, char *err,
                      size_t errlen)
{
    const atr_conf_tls_t *t = h->tls;
    th->conf = h;
    th->pairs = atr_xcalloc((size_t)t->ncerts, sizeof *th->pairs);
    for (int i = 0; i < t->ncerts; i++) {
        pair_t *p = &th->pairs[th->npairs];
        if ((p->ctx = server_ctx_new(srv)) == NULL)
            return fail(err, errlen, &t->pos, "cannot create a TLS context");
        th->npairs++;
        SSL_CTX_set_ex_data(p->ctx, host_index, (void *)h);
        srv->all = atr_xrealloc(srv->all, (size_t)(srv->nall + 1) * sizeof *srv->all);
        srv->all[srv->nall++] = p;
        if (load_pair(p->ctx, &t->certs[i], &p->ecdsa, err, errlen) < 0 ||
            load_client_ca(p, t, err, errlen) < 0 || load_staple(p->ctx, t, err, errlen) < 0)
            return -1;
        if (t->stapling && t->stapling_file == NULL) {
            p->staple = atr_xcalloc(1, sizeof *p->staple);
            pthread_mutex_init(&p->staple->lock, NULL);
        }
    }
    return 0;
}

atr_tls_server_t *atr_tls_server_new(const atr_conf_t *conf, char *err, size_t errlen)
{
    pthread_once(&index_once, make_indexes);
    err[0] = '\0';
    const atr_conf_host_t *def = atr_conf_default_tls_host(conf);
    if (def == NULL)
        return NULL;
    atr_tls_server_t *srv = atr_xcalloc(1, sizeof *srv);
    srv->conf = conf;
    srv->hosts = atr_xcalloc((size_t)conf->nhosts, sizeof *srv->hosts);
    for (int i = 0; i < conf->nhosts; i++) {
        const atr_conf_host_t *h = &conf->hosts[i];
        if (h->tls == NULL)
            continue;
        tls_host_t *th = &srv->hosts[srv->nhosts++];
        if (build_host(srv, th, h, err, errlen) < 0) {
            atr_tls_server_free(srv);
            return NULL;
        }
        if (h == def)
            srv->def = th;
    }
    return srv;
}

void atr_tls_server_free(atr_tls_server_t *srv)
{
    if (srv == NULL)
        return;
    for (int i = 0; i < srv->nhosts; i++) {
        for (int j = 0; j < srv->hosts[i].npairs; j++) {
            pair_t *p = &srv->hosts[i].pairs[j];
            SSL_CTX_free(p->ctx);
            if (p->staple) {
                pthread_mutex_destroy(&p->staple->lock);
                free(p->staple->der);
                free(p->staple);
            }
        }
        free(srv->hosts[i].pairs);
    }
    free(srv->all);
    free(srv->hosts);
    free(srv);
}

SSL_CTX *atr_tls_server_ctx(const atr_tls_server_t *srv)
{
    return srv->def->pairs[0].ctx;
}

int atr_tls_server_npairs(const atr_tls_server_t *srv)
{
    return srv ? srv->nall : 0;
}

int atr_tls_server_staple_pair(const atr_tls_server_t *srv, int i, atr_tls_staple_pair_t *out)
{
    pair_t *p = srv->all[i];
    if (p->staple == NULL)
        return -1;
    out->host = SSL_CTX_get_ex_data(p->ctx, host_index);
    out->leaf = SSL_CTX_get0_certificate(p->ctx);
    out->issuer = pair_issuer(p->ctx);
    out->cert_file = NULL;
    for (int h = 0; h < srv->nhosts; h++)
        for (int k = 0; k < srv->hosts[h].npairs; k++)
            if (&srv->hosts[h].pairs[k] == p)
                out->cert_file = srv->hosts[h].conf->tls->certs[k].cert;
    return 0;
}

void atr_tls_server_set_staple(atr_tls_server_t *srv, int i, const uint8_t *der, size_t len)
{
    staple_t *st = srv->all[i]->staple;
    uint8_t *copy = der ? atr_xmalloc(len) : NULL;
    if (st == NULL) {
        free(copy);
        return;
    }
    if (copy)
        memcpy(copy, der, len);
    pthread_mutex_lock(&st->lock);
    uint8_t *old = st->der;
    st->der = copy;
    st->len = copy ? len : 0;
    pthread_mutex_unlock(&st->lock);
    free(old);
}

const atr_conf_host_t *atr_tls_ctx_host(const SSL_CTX *ctx)
{
    return host_index < 0 ? NULL : SSL_CTX_get_ex_data(ctx, host_index);
}

const atr_conf_host_t *atr_tls_sni_host(const atr_conf_t *conf, SSL *ssl)
{
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    const atr_conf_host_t *h = name ? atr_conf_match_host(conf, name, strlen(name)) : NULL;
    return h && h->tls ? h : atr_conf_default_tls_host(conf);
}

/* ---- client contexts (https upstreams) ---- */

struct atr_tls_client {
    SSL_CTX *ctx;
    char **names;             /* per server: what SNI and verification use */
    SSL_SESSION **sessions;   /* per server: the latest session it issued */
    int nservers;
    pthread_mutex_t lock;     /* sessions[] (any worker) */
};

/* A session the server issued goes to its slot: (client, server index + 1). */
static int new_session(SSL *ssl, SSL_SESSION *sess)
{
    atr_tls_client_t *cl = SSL_get_ex_data(ssl, client_index);
    intptr_t i = (intptr_t)SSL_get_ex_data(ssl, server_no_index) - 1;
    if (cl == NULL || i < 0 || i >= cl->nservers)
        return 0;
    pthread_mutex_lock(&cl->lock);
    SSL_SESSION *old = cl->sessions[i];
    cl->sessions[i] = sess;
    pthread_mutex_unlock(&cl->lock);
    SSL_SESSION_free(old);
    return 1; /* the reference is ours */
}

int atr_tls_client_set_name(SSL *ssl, const char *name)
{
    struct in6_addr a;
    if (name == NULL)
        return 0;
    if (inet_pton(AF_INET, name, &a) == 1 || inet_pton(AF_INET6, name, &a) == 1)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1 ? 0 : -1;
    return SSL_set_tlsext_host_name(ssl, name) == 1 && SSL_set1_host(ssl, name) == 1 ? 0 : -1;
}

/* The host part of "host:port" / "[v6]:port" as written. */
static char *server_host(const char *text)
{
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        return atr_xstrndup(text + 1, end ? (size_t)(end - text - 1) : strlen(text + 1));
    }
    const char *colon = strrchr(text, ':');
    return atr_xstrndup(text, colon ? (size_t)(colon - text) : strlen(text));
}

static int client_files(SSL_CTX *ctx, const atr_conf_upstream_t *u, char *err, size_t errlen)
{
    char buf[160];
    if (u->tls_trust ? SSL_CTX_load_verify_locations(ctx, u->tls_trust, NULL) != 1
                     : SSL_CTX_set_default_verify_paths(ctx) != 1) {
        if (u->tls_trust)
            return fail(err, errlen, &u->tls_trust_pos, "tls_trust %s: %s", u->tls_trust,
                        why_file(u->tls_trust, buf, sizeof buf));
        return fail(err, errlen, &u->pos, "upstream '%s': cannot load the system's trust store",
                    u->name);
    }
    if ((u->tls_client_cert == NULL) != (u->tls_client_key == NULL))
        return fail(err, errlen, &u->pos, "upstream '%s': tls_client_certificate and "
                    "tls_client_key go together", u->name);
    if (u->tls_client_cert == NULL)
        return 0;
    atr_conf_cert_t pair = { u->tls_client_cert, u->tls_client_key, u->tls_client_cert_pos,
                             u->tls_client_key_pos };
    int ecdsa;
    return load_pair(ctx, &pair, &ecdsa, err, errlen);
}

atr_tls_client_t *atr_tls_client_new(const atr_conf_upstream_t *u, char *err, size_t errlen)
{
    pthread_once(&index_once, make_indexes);
    atr_tls_client_t *cl = atr_xcalloc(1, sizeof *cl);
    pthread_mutex_init(&cl->lock, NULL);
    cl->nservers = u->nservers;
    cl->names = atr_xcalloc((size_t)u->nservers, sizeof *cl->names);
    cl->sessions = atr_xcalloc((size_t)u->nservers, sizeof *cl->sessions);
    for (int i = 0; i < u->nservers; i++)
        cl->names[i] = u->tls_server_name ? atr_xstrdup(u->tls_server_name)
                                          : server_host(u->servers[i].text);
    SSL_CTX *ctx = cl->ctx = SSL_CTX_new(TLS_method());
    if (ctx == NULL) {
        atr_tls_client_free(cl);
        fail(err, errlen, &u->pos, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_verify(ctx, u->tls_verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_sess_set_new_cb(ctx, new_session);
    static const uint8_t alpn[] = { 8, 'h', 't', 't', 'p', '/', '1', '.', '1' };
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn);
    if (client_files(ctx, u, err, errlen) < 0) {
        atr_tls_client_free(cl);
        return NULL;
    }
    return cl;
}

void atr_tls_client_free(atr_tls_client_t *cl)
{
    if (cl == NULL)
        return;
    for (int i = 0; i < cl->nservers; i++) {
        free(cl->names[i]);
        SSL_SESSION_free(cl->sessions[i]);
    }
    free(cl->names);
    free(cl->sessions);
    SSL_CTX_free(cl->ctx);
    pthread_mutex_destroy(&cl->lock);
    free(cl);
}

SSL_CTX *atr_tls_client_ctx(const atr_tls_client_t *cl)
{
    return cl->ctx;
}

const char *atr_tls_client_name(const atr_tls_client_t *cl, int server)
{
    return cl->names[server];
}

SSL_SESSION *atr_tls_client_session(atr_tls_client_t *cl, int server)
{
    pthread_mutex_lock(&cl->lock);
    SSL_SESSION *s = cl->sessions[server];
    if (s)
        SSL_SESSION_up_ref(s);
    pthread_mutex_unlock(&cl->lock);
    return s;
}

void atr_tls_client_watch(atr_tls_client_t *cl, SSL *ssl, int server)
{
    SSL_set_ex_data(ssl, client_index, cl);
    SSL_set_ex_data(ssl, server_no_index, (void *)(intptr_t)(server + 1));
}
