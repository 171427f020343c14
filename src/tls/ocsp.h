/* OCSP (RFC 6960) for stapling: build a request, find where to send it,
 * verify the answer. BoringSSL has no OCSP API, so the DER is written with
 * CBB and read with CBS here. Pure functions: no I/O, no libuv, no clock
 * (the caller passes "now"); fetching and stapling live above (net/).
 *
 * Certificates are borrowed for the duration of each call only; nothing here
 * keeps a pointer to a caller's X509 or buffer after returning. */
#ifndef ATR_TLS_OCSP_H
#define ATR_TLS_OCSP_H

#include "base/util.h"

#include <openssl/base.h>
#include <stddef.h>
#include <stdint.h>

/* thisUpdate may lie this far in the future: the responder's clock may be
 * ahead of ours. nextUpdate gets no such grace: a stale staple is worse than
 * none, since the client may reject the handshake over it. */
#define ATR_OCSP_CLOCK_SKEW 300
/* Validity of a response without nextUpdate (RFC 6960 4.2.2.1: "newer
 * information is always available"): treat it as fresh for one hour after
 * thisUpdate, so it is refetched hourly rather than stapled forever. */
#define ATR_OCSP_DEFAULT_VALIDITY 3600

/* The CertID of one certificate, hashed with SHA-1 (what we request, and so
 * what responders answer with). serial holds the DER INTEGER, tag included. */
typedef struct atr_ocsp_certid {
    uint8_t name_hash[20]; /* SHA-1 of the leaf's issuer Name (DER) */
    uint8_t key_hash[20];  /* SHA-1 of the issuer's public key BIT STRING value */
    uint8_t serial[48];    /* RFC 5280 caps serials at 20 octets; 48 leaves room for lax CAs */
    size_t serial_len;
} atr_ocsp_certid_t;

/* The CertID of leaf as issued by issuer. Both are borrowed (not kept, not
 * modified). 0, or -EINVAL when a field cannot be encoded (serial too long). */
int atr_ocsp_certid(X509 *leaf, X509 *issuer, atr_ocsp_certid_t *out);

/* The DER OCSPRequest for one CertID: SHA-1, no nonce, unsigned, byte for
 * byte what `openssl ocsp -no_nonce -reqout` writes (nonces defeat the
 * responders' caches, and staples are shared by every client anyway).
 * On 0, *out is the caller's and must be freed with OPENSSL_free(); -ENOMEM
 * otherwise with *out untouched. */
int atr_ocsp_request(const atr_ocsp_certid_t *id, uint8_t **out, size_t *out_len);

/* The first OCSP responder URL in leaf's Authority Information Access, as a
 * new NUL-terminated string the caller frees with free(); NULL when the
 * certificate names none. leaf is borrowed. The URL is not checked: pass it
 * to atr_ocsp_url_parse. */
char *atr_ocsp_responder_url(X509 *leaf);

/* An http URL split into parts. All three are views into the string given to
 * atr_ocsp_url_parse and live as long as it does. */
typedef struct atr_ocsp_url {
    atr_str_t host; /* name or address; an IPv6 literal without its brackets */
    uint16_t port;  /* 80 when the URL has none */
    atr_str_t path; /* from the first '/' on, query included; "/" when empty */
} atr_ocsp_url_t;

/* Parses "http://host[:port][/path]" (scheme case-insensitive). 0, or
 * -EINVAL with *why set to a static sentence: https (fetching a staple over
 * TLS would need a second TLS client and its trust store, and RFC 6960
 * responders are plain http in practice), user info, a bad port, no host. */
int atr_ocsp_url_parse(const char *url, atr_ocsp_url_t *out, const char **why);

enum atr_ocsp_status { ATR_OCSP_GOOD = 0, ATR_OCSP_REVOKED = 1, ATR_OCSP_UNKNOWN = 2 };

/* What a verified response says. Times are unix seconds (UTC). */
typedef struct atr_ocsp_result {
    enum atr_ocsp_status status;
    int64_t this_update;
    int64_t next_update;  /* as sent, or this_update + ATR_OCSP_DEFAULT_VALIDITY */
    int has_next_update;  /* the response carried nextUpdate */
    int64_t revoked_at;   /* for ATR_OCSP_REVOKED, else 0 */
    int revoked_reason;   /* CRLReason (RFC 5280 5.3.1), -1 when absent */
    char reason[160];     /* why verification failed; "" on success */
} atr_ocsp_result_t;

/* Verifies the DER OCSPResponse der[0..len) for leaf (issued by issuer) at
 * time now. Accepted when: responseStatus is successful, the type is
 * id-pkix-ocsp-basic, the signature over tbsResponseData verifies with the
 * issuer's key or with a certificate from the response's certs field that
 * the issuer signed, that carries id-kp-OCSPSigning and is valid at now (RFC
 * 6960 4.2.2.2), a SingleResponse has leaf's CertID, and
 * thisUpdate - ATR_OCSP_CLOCK_SKEW <= now < nextUpdate.
 *
 * Returns 0 with *out filled (the status may be good, revoked or unknown:
 * only good is worth stapling), -ESTALE when everything but the time checks
 * passed, -EBADMSG for anything else; on error out->reason says what was
 * wrong. der, leaf and issuer are borrowed; any length is safe (every read
 * is bounds-checked), so der may be untrusted bytes from the network. */
int atr_ocsp_verify(const uint8_t *der, size_t len, X509 *leaf, X509 *issuer, int64_t now,
                    atr_ocsp_result_t *out);

#endif
