/* TLS as one more transport of net/sock.h, for both sides: a client
 * connection accepted on a `listen ... tls` address, and a backend
 * connection of an https upstream. The stream underneath is the sock's TCP
 * handle; BoringSSL reads ciphertext from the worker's read scratch through
 * a BIO of our own (no copy into a memory BIO) and writes its records
 * straight to the socket, try-write first. The owner sees plaintext in its
 * input buffer exactly as on a plain stream, and its writes are encrypted
 * (small gathers become one record).
 *
 * Handshakes: a server sock handshakes as the owner reads (the first
 * plaintext the owner sees is the request); a client sock's
 * atr_sock_connect covers the TCP connect and the handshake, so on_connect
 * comes once the peer is verified, or with UV_EPROTO and atr_tls_why says
 * why. The contexts (certificates, SNI, verification) are tls/ctx.h's. */
#ifndef ATR_NET_TLS_H
#define ATR_NET_TLS_H

#include <openssl/ssl.h>

#include "net/sock.h"

extern const atr_transport_t atr_transport_tls;

/* Server side: s was set up with atr_transport_tls and atr_sock_open; the
 * handshake runs once the owner reads. ctx is referenced by the SSL. 0 or
 * a negative libuv error. */
int atr_tls_accept(atr_sock_t *s, SSL_CTX *ctx);

/* Client side, before atr_sock_connect: send sni (NULL: none), verify the
 * peer as ctx says, offer session (borrowed; NULL: a full handshake). */
int atr_tls_client(atr_sock_t *s, SSL_CTX *ctx, const char *sni, SSL_SESSION *session);

/* The connection's SSL once atr_tls_accept/atr_tls_client ran; NULL on a
 * plain sock. For what the handshake settled: version, cipher, SNI, peer
 * certificate. */
static inline SSL *atr_tls_ssl(const atr_sock_t *s)
{
    return s->tp == &atr_transport_tls && s->tp_state ? *(SSL **)s->tp_state : NULL;
}

/* Keep TLS 1.2 sessions in the worker's session cache (atr_worker_t's
 * session_local): registered with tls/ctx.h before contexts are made. */
void atr_tls_sessions_register(void);

/* Check client certificates with OCSP where a host says `client_ocsp on`
 * (net/tls_ocsp.c): registered with tls/ctx.h before contexts are made.
 * The check runs on the handshake's worker, asynchronously; verified
 * responses are kept in the worker's session cache (session_local) until
 * their nextUpdate. */
void atr_tls_ocsp_register(void);

/* mod_ssl's variables for gateways (SSL_PROTOCOL, SSL_CIPHER,
 * SSL_SESSION_RESUMED, SSL_TLS_SNI, SSL_CLIENT_VERIFY and, with a client
 * certificate, SSL_CLIENT_S_DN, SSL_CLIENT_I_DN, SSL_CLIENT_M_SERIAL) as
 * name, value pairs into kv (room for 2 * ATR_TLS_VARS + 1, NULL after the
 * last), the text in buf. Returns the number of pairs: 0 on a plain sock. */
#define ATR_TLS_VARS 8
int atr_tls_vars(const atr_sock_t *s, const char **kv, char *buf, size_t cap);

/* Why the handshake failed, in words ("certificate verify failed:
 * self-signed certificate"), into buf. */
const char *atr_tls_why(const atr_sock_t *s, char *buf, size_t n);

#endif
