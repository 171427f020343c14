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
 * unreadable, not PEM, expired, or the key does not match. Returns NULL with
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

/* The SNI host of a handshake in conf: the host its server name selects
 * when that host has TLS, else the default TLS host (atr_conf_default_tls_host). */
const atr_conf_host_t *atr_tls_sni_host(const atr_conf_t *conf, SSL *ssl);

#endif
