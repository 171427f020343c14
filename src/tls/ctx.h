/* TLS contexts built from a configuration: the server side (one SSL_CTX per
 * host and certificate pair, chosen per handshake by SNI and by what the
 * client can verify) and the client side of an https upstream (trust,
 * names, a client certificate, sessions kept for resumption). Everything
 * that can be wrong in a file is found here, at load: the runtime builds
 * these before it commits a generation, and `-t` builds them too.
 *
 * Threads: built on the control loop, then shared read-only by the workers
 * (SSL_CTX is safe to share; the session slots have their own lock). */
#ifndef ATR_TLS_CTX_H
#define ATR_TLS_CTX_H

#include <openssl/ssl.h>
#include <stddef.h>

#include "conf/conf.h"

typedef struct atr_tls_server atr_tls_server_t;
typedef struct atr_tls_client atr_tls_client_t;

/* The server contexts of every host with a tls block. NULL with
 * "FILE:LINE:COL: certificate /x.pem: why" in err when a file is missing,
 * unreadable, not PEM, expired, or the key does not match, or when a
 * `stapling FILE` response does not verify against the certificate and its
 * issuer (the chain file's second certificate) or is not "good". Returns NULL with
 * err empty when no host has TLS. */
atr_tls_server_t *atr_tls_server_new(const atr_conf_t *conf, char *err, size_t errlen);
void atr_tls_server_free(atr_tls_server_t *srv); /* connections keep their SSL_CTX alive */

/* The context a connection starts with (SNI moves it to its host's). */
SSL_CTX *atr_tls_server_ctx(const atr_tls_server_t *srv);

/* The client context of an https upstream (u->protocol->tls), NULL with err. */
atr_tls_client_t *atr_tls_client_new(const atr_conf_upstream_t *u, char *err, size_t errlen);
void atr_tls_client_free(atr_tls_client_t *cl);

SSL_CTX *atr_tls_client_ctx(const atr_tls_client_t *cl);
/* The name to send and verify for server i: tls_server_name, else the
 * host part of the server as written. */
const char *atr_tls_client_name(const atr_tls_client_t *cl, int server);
/* Make a client SSL ask for and verify `name`: SNI and host verification
 * for a name, IP verification (and no SNI, RFC 6066 §3) for an address;
 * nothing for NULL. 0, or -1 when out of memory. */
int atr_tls_client_set_name(SSL *ssl, const char *name);
/* The session to offer server i (a new reference, NULL: none); sessions
 * the server issues land in slot i by themselves (atr_tls_client_watch). */
SSL_SESSION *atr_tls_client_session(atr_tls_client_t *cl, int server);
void atr_tls_client_watch(atr_tls_client_t *cl, SSL *ssl, int server);

/* TLS 1.2 session-ID resumption keeps sessions in the small-object cache
 * (base/socache.h), which lives on the workers' loops, a layer above: that
 * layer (net/tls.c) registers these once, and every server context made
 * afterwards uses them unless `tls_session_cache off`. (TLS 1.3 resumes with
 * tickets only, tls/tickets.h.) */
typedef struct atr_tls_session_hooks {
    int (*new_session)(SSL *ssl, SSL_SESSION *sess);
    SSL_SESSION *(*get_session)(SSL *ssl, const uint8_t *id, int len, int *copy);
    void (*remove_session)(SSL_CTX *ctx, SSL_SESSION *sess);
} atr_tls_session_hooks_t;
void atr_tls_use_session_hooks(const atr_tls_session_hooks_t *hooks);

/* ---- OCSP ---- */

/* Client certificates with `client_ocsp on`: the chain is verified and the
 * leaf's status looked up by a callback the layer with a loop registers
 * (net/tls.c, before contexts are made); the contexts of those hosts use it
 * as their SSL_CTX_set_custom_verify callback, in the verify mode
 * client_verify says. Without one registered, client_ocsp is not checked. */
typedef enum ssl_verify_result_t (*atr_tls_verify_cb)(SSL *ssl, uint8_t *out_alert);
void atr_tls_use_verify_hook(atr_tls_verify_cb cb);

/* The host whose tls block made this server context (a pair's SSL_CTX, as
 * SSL_get_SSL_CTX returns it once SNI chose); NULL for any other. */
const atr_conf_host_t *atr_tls_ctx_host(const SSL_CTX *ctx);

/* Stapling fetched at run time (`stapling on`, not a file). Pairs are
 * numbered 0..atr_tls_server_npairs(srv)-1 across every host (0 for NULL). */
typedef struct atr_tls_staple_pair {
    const atr_conf_host_t *host;
    const char *cert_file; /* the certificate file, for logs */
    X509 *leaf;            /* borrowed from the pair's context: valid while srv is */
    X509 *issuer;          /* the chain file's second certificate when it issued the
                            * leaf, else NULL (nothing to verify a response with) */
} atr_tls_staple_pair_t;
int atr_tls_server_npairs(const atr_tls_server_t *srv);
/* 0 with *out filled when pair i staples with `stapling on`, else -1. */
int atr_tls_server_staple_pair(const atr_tls_server_t *srv, int i, atr_tls_staple_pair_t *out);
/* What pair i staples from now on for clients that ask: a copy of
 * der[0..len), or nothing (der NULL). Any thread, at any time: handshakes
 * in flight on the workers take a copy under the pair's lock (the SSL_CTX's
 * own response is never changed after the context is built: BoringSSL
 * reads it unlocked). The caller verified der. */
void atr_tls_server_set_staple(atr_tls_server_t *srv, int i, const uint8_t *der, size_t len);

/* The SNI host of a handshake in conf: the host its server name selects
 * when that host has TLS, else the default TLS host (atr_conf_default_tls_host). */
const atr_conf_host_t *atr_tls_sni_host(const atr_conf_t *conf, SSL *ssl);

#endif
