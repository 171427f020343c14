/* OCSP requests and response verification with CBB/CBS (see ocsp.h). The
 * response is walked once into views (struct walk); the checks then run on
 * the views, authenticity first, so nothing unsigned is believed. */
#include "tls/ocsp.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include <openssl/bytestring.h>
#include <openssl/digest.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/obj.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* 1.3.14.3.2.26 (SHA-1) and 1.3.6.1.5.5.7.48.1.1 (id-pkix-ocsp-basic) */
static const uint8_t oid_sha1[] = { 0x2b, 0x0e, 0x03, 0x02, 0x1a };
static const uint8_t oid_basic[] = { 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01 };

static const uint8_t null_der[] = { 0x05, 0x00 };

#define CTX(n) (CBS_ASN1_CONTEXT_SPECIFIC | (n))
#define CTX_CONS(n) (CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | (n))

/* ------------------------------------------------------------ request */

int atr_ocsp_certid(X509 *leaf, X509 *issuer, atr_ocsp_certid_t *out)
{
    uint8_t *name = NULL, *ser = NULL;
    int nlen = i2d_X509_NAME(X509_get_issuer_name(leaf), &name);
    int slen = i2d_ASN1_INTEGER(X509_get0_serialNumber(leaf), &ser);
    const ASN1_BIT_STRING *key = X509_get0_pubkey_bitstr(issuer);
    int rc = -EINVAL;

    if (nlen > 0 && slen > 0 && (size_t)slen <= sizeof out->serial && key != NULL) {
        SHA1(name, (size_t)nlen, out->name_hash);
        /* the key's bit string value without the unused-bits byte (RFC 6960 4.1.1) */
        SHA1(ASN1_STRING_get0_data(key), (size_t)ASN1_STRING_length(key), out->key_hash);
        memcpy(out->serial, ser, (size_t)slen);
        out->serial_len = (size_t)slen;
        rc = 0;
    }
    OPENSSL_free(name);
    OPENSSL_free(ser);
    return rc;
}

/* CertID ::= SEQ { AlgorithmIdentifier { sha1, NULL }, OCTET STRING
 * issuerNameHash, OCTET STRING issuerKeyHash, INTEGER serialNumber } */
static int add_certid(CBB *parent, const atr_ocsp_certid_t *id)
{
    CBB cid, alg, oid, null;

    return CBB_add_asn1(parent, &cid, CBS_ASN1_SEQUENCE) &&
           CBB_add_asn1(&cid, &alg, CBS_ASN1_SEQUENCE) &&
           CBB_add_asn1(&alg, &oid, CBS_ASN1_OBJECT) &&
           CBB_add_bytes(&oid, oid_sha1, sizeof oid_sha1) &&
           CBB_add_asn1(&alg, &null, CBS_ASN1_NULL) &&
           CBB_add_asn1_octet_string(&cid, id->name_hash, sizeof id->name_hash) &&
           CBB_add_asn1_octet_string(&cid, id->key_hash, sizeof id->key_hash) &&
           CBB_add_bytes(&cid, id->serial, id->serial_len) && CBB_flush(parent);
}

int atr_ocsp_request(const atr_ocsp_certid_t *id, uint8_t **out, size_t *out_len)
{
    /* OCSPRequest ::= SEQ { tbsRequest SEQ { requestList SEQ OF Request SEQ { CertID } } } */
    CBB cbb, req, tbs, list, one;

    if (!CBB_init(&cbb, 128))
        return -ENOMEM;
    if (!CBB_add_asn1(&cbb, &req, CBS_ASN1_SEQUENCE) ||
        !CBB_add_asn1(&req, &tbs, CBS_ASN1_SEQUENCE) ||
        !CBB_add_asn1(&tbs, &list, CBS_ASN1_SEQUENCE) ||
        !CBB_add_asn1(&list, &one, CBS_ASN1_SEQUENCE) || !add_certid(&one, id) ||
        !CBB_finish(&cbb, out, out_len)) {
        CBB_cleanup(&cbb);
        return -ENOMEM;
    }
    return 0;
}

/* ------------------------------------------------------------ URL */

char *atr_ocsp_responder_url(X509 *leaf)
{
    STACK_OF(OPENSSL_STRING) *urls = X509_get1_ocsp(leaf);
    char *url = NULL;

    if (urls != NULL && sk_OPENSSL_STRING_num(urls) > 0)
        url = atr_xstrdup(sk_OPENSSL_STRING_value(urls, 0));
    X509_email_free(urls);
    return url;
}

static int parse_port(const char *p, size_t n, uint16_t *out)
{
    unsigned v = 0;

    if (n == 0 || n > 5)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v == 0 || v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

/* Splits "host[:port]" (or "[v6][:port]") into out->host and out->port. */
static const char *parse_authority(const char *a, size_t n, atr_ocsp_url_t *out)
{
    const char *colon = NULL;

    if (memchr(a, '@', n) != NULL)
        return "user info in an OCSP URL is not supported";
    if (n > 0 && a[0] == '[') {
        const char *end = memchr(a, ']', n);
        if (end == NULL)
            return "unterminated IPv6 address in the OCSP URL";
        out->host = (atr_str_t){ a + 1, (size_t)(end - a - 1) };
        if (end + 1 < a + n && end[1] != ':')
            return "garbage after the IPv6 address in the OCSP URL";
        colon = end + 1 < a + n ? end + 1 : NULL;
    } else {
        colon = memchr(a, ':', n);
        out->host = (atr_str_t){ a, colon != NULL ? (size_t)(colon - a) : n };
    }
    if (out->host.n == 0)
        return "no host in the OCSP URL";
    out->port = 80;
    if (colon != NULL && parse_port(colon + 1, (size_t)(a + n - colon - 1), &out->port) != 0)
        return "bad port in the OCSP URL";
    return NULL;
}

int atr_ocsp_url_parse(const char *url, atr_ocsp_url_t *out, const char **why)
{
    const char *auth, *slash;

    if (strncasecmp(url, "https://", 8) == 0) {
        *why = "https OCSP responders are not supported (use an http URL)";
        return -EINVAL;
    }
    if (strncasecmp(url, "http://", 7) != 0) {
        *why = "an OCSP URL must start with http://";
        return -EINVAL;
    }
    auth = url + 7;
    slash = auth + strcspn(auth, "/?#");
    *why = parse_authority(auth, (size_t)(slash - auth), out);
    if (*why != NULL)
        return -EINVAL;
    if (*slash == '/')
        out->path = (atr_str_t){ slash, strcspn(slash, "#") };
    else if (*slash == '\0')
        out->path = ATR_STR("/");
    else {
        *why = "the OCSP URL has a query or fragment but no path";
        return -EINVAL;
    }
    return 0;
}

/* ------------------------------------------------------------ times */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil): timegm() reads the TZ environment in some libcs. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3u : 9u)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const uint8_t *p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* GeneralizedTime as RFC 5280 4.1.2.5.2 allows it: YYYYMMDDHHMMSSZ exactly. */
static int parse_gentime(const CBS *t, int64_t *out)
{
    const uint8_t *p = CBS_data(t);
    int y, mo, d, h, mi, s;

    if (CBS_len(t) != 15 || p[14] != 'Z')
        return -1;
    y = digits(p, 4), mo = digits(p + 4, 2), d = digits(p + 6, 2);
    h = digits(p + 8, 2), mi = digits(p + 10, 2), s = digits(p + 12, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
        s < 0 || s > 60)
        return -1;
    *out = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + s;
    return 0;
}

static int get_gentime(CBS *cbs, int64_t *out)
{
    CBS t;
    return CBS_get_asn1(cbs, &t, CBS_ASN1_GENERALIZEDTIME) && parse_gentime(&t, out) == 0;
}

/* ------------------------------------------------------------ walk */

/* Views into the response; nothing here is trusted until verify_signature. */
struct walk {
    CBS tbs;       /* tbsResponseData, whole DER element (what was signed) */
    CBS responses; /* contents of SEQUENCE OF SingleResponse */
    CBS sig_alg;   /* contents of the AlgorithmIdentifier */
    CBS sig;       /* signature bytes, unused-bits byte removed */
    CBS certs;     /* contents of SEQUENCE OF Certificate; empty when absent */
};

static void fail(atr_ocsp_result_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
}

static const char *status_name(uint8_t s)
{
    static const char *const names[] = { "successful", "malformedRequest", "internalError",
                                         "tryLater", "(4)", "sigRequired", "unauthorized" };
    return s < ATR_ARRAY_SIZE(names) ? names[s] : "an unknown status";
}

/* OCSPResponse ::= SEQ { ENUMERATED responseStatus, [0] EXPLICIT SEQ {
 *   OID responseType, OCTET STRING response } OPTIONAL } -> *basic */
static int walk_outer(const uint8_t *der, size_t len, CBS *basic, atr_ocsp_result_t *r)
{
    CBS in, resp, status, bytes, wrap, type;

    CBS_init(&in, der, len);
    if (!CBS_get_asn1(&in, &resp, CBS_ASN1_SEQUENCE) || CBS_len(&in) != 0 ||
        !CBS_get_asn1(&resp, &status, CBS_ASN1_ENUMERATED) || CBS_len(&status) != 1) {
        fail(r, "not an OCSP response");
        return -1;
    }
    if (CBS_data(&status)[0] != 0) {
        fail(r, "responder answered %s", status_name(CBS_data(&status)[0]));
        return -1;
    }
    if (!CBS_get_asn1(&resp, &bytes, CTX_CONS(0)) || CBS_len(&resp) != 0 ||
        !CBS_get_asn1(&bytes, &wrap, CBS_ASN1_SEQUENCE) || CBS_len(&bytes) != 0 ||
        !CBS_get_asn1(&wrap, &type, CBS_ASN1_OBJECT) ||
        !CBS_get_asn1(&wrap, basic, CBS_ASN1_OCTETSTRING) || CBS_len(&wrap) != 0) {
        fail(r, "malformed OCSP response body");
        return -1;
    }
    if (!CBS_mem_equal(&type, oid_basic, sizeof oid_basic)) {
        fail(r, "response type is not id-pkix-ocsp-basic");
        return -1;
    }
    return 0;
}

/* ResponseData ::= SEQ { [0] EXPLICIT version OPT, ResponderID, producedAt,
 *   SEQ OF SingleResponse, [1] EXPLICIT Extensions OPT } */
static int walk_tbs(CBS tbs_elem, CBS *responses)
{
    CBS tbs, rid;
    unsigned tag;
    uint64_t version;
    int64_t produced;

    if (!CBS_get_asn1(&tbs_elem, &tbs, CBS_ASN1_SEQUENCE) ||
        !CBS_get_optional_asn1_uint64(&tbs, &version, CTX_CONS(0), 0) || version != 0)
        return -1;
    if (!CBS_get_any_asn1(&tbs, &rid, &tag) || (tag != CTX_CONS(1) && tag != CTX_CONS(2)))
        return -1;
    if (!get_gentime(&tbs, &produced) || !CBS_get_asn1(&tbs, responses, CBS_ASN1_SEQUENCE) ||
        !CBS_get_optional_asn1(&tbs, NULL, NULL, CTX_CONS(1)) || CBS_len(&tbs) != 0)
        return -1;
    return 0;
}

/* BasicOCSPResponse ::= SEQ { ResponseData, AlgorithmIdentifier, BIT STRING
 *   signature, [0] EXPLICIT SEQ OF Certificate OPTIONAL } */
static int walk_basic(CBS basic, struct walk *w, atr_ocsp_result_t *r)
{
    CBS seq, certs_wrap;
    int has_certs;
    uint8_t unused;

    if (!CBS_get_asn1(&basic, &seq, CBS_ASN1_SEQUENCE) || CBS_len(&basic) != 0 ||
        !CBS_get_asn1_element(&seq, &w->tbs, CBS_ASN1_SEQUENCE) ||
        walk_tbs(w->tbs, &w->responses) != 0 ||
        !CBS_get_asn1(&seq, &w->sig_alg, CBS_ASN1_SEQUENCE) ||
        !CBS_get_asn1(&seq, &w->sig, CBS_ASN1_BITSTRING) || !CBS_get_u8(&w->sig, &unused) ||
        unused != 0 ||
        !CBS_get_optional_asn1(&seq, &certs_wrap, &has_certs, CTX_CONS(0)) || CBS_len(&seq) != 0) {
        fail(r, "malformed BasicOCSPResponse");
        return -1;
    }
    CBS_init(&w->certs, NULL, 0);
    if (has_certs && (!CBS_get_asn1(&certs_wrap, &w->certs, CBS_ASN1_SEQUENCE) ||
                      CBS_len(&certs_wrap) != 0)) {
        fail(r, "malformed certs in the BasicOCSPResponse");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ signature */

/* 1 when sig verifies over tbs with key under the algorithm sig_alg names.
 * Only algorithms whose identifier fixes the digest: RSA PKCS#1 v1.5, ECDSA
 * and Ed25519 (RSA-PSS parameters would need parsing; no responder we know
 * of signs with it). */
static int sig_ok(const struct walk *w, EVP_PKEY *key)
{
    CBS alg = w->sig_alg, oid;
    int md_nid, pk_nid, ok = 0;
    const EVP_MD *md = NULL;
    EVP_MD_CTX *ctx;

    if (key == NULL || !CBS_get_asn1(&alg, &oid, CBS_ASN1_OBJECT) ||
        !OBJ_find_sigid_algs(OBJ_cbs2nid(&oid), &md_nid, &pk_nid) || EVP_PKEY_id(key) != pk_nid)
        return 0;
    /* parameters: NULL or absent for RSA, absent otherwise (RFC 4055, 5758, 8410) */
    if (CBS_len(&alg) != 0 && (pk_nid != EVP_PKEY_RSA || !CBS_mem_equal(&alg, null_der, 2)))
        return 0;
    if (md_nid != NID_undef && (md = EVP_get_digestbynid(md_nid)) == NULL)
        return 0;
    if (md == NULL && pk_nid != EVP_PKEY_ED25519)
        return 0;
    ctx = EVP_MD_CTX_new();
    if (ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, md, NULL, key))
        ok = EVP_DigestVerify(ctx, CBS_data(&w->sig), CBS_len(&w->sig), CBS_data(&w->tbs),
                              CBS_len(&w->tbs)) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

static int cert_sig_ok(const struct walk *w, X509 *cert)
{
    EVP_PKEY *key = X509_get_pubkey(cert);
    int ok = sig_ok(w, key);
    EVP_PKEY_free(key);
    return ok;
}

/* Why cert, whose key made the signature, may not answer for issuer's
 * certificates (RFC 6960 4.2.2.2); NULL when it may. */
static const char *delegate_problem(X509 *cert, X509 *issuer, int64_t now)
{
    EVP_PKEY *ikey;
    time_t t = (time_t)now;
    int signed_by_issuer;

    if (X509_check_issued(issuer, cert) != X509_V_OK)
        return "the responder certificate was not issued by the certificate's issuer";
    ikey = X509_get_pubkey(issuer);
    signed_by_issuer = ikey != NULL && X509_verify(cert, ikey) == 1;
    EVP_PKEY_free(ikey);
    if (!signed_by_issuer)
        return "the responder certificate's signature does not verify with the issuer's key";
    if (!(X509_get_extension_flags(cert) & EXFLAG_XKUSAGE) ||
        !(X509_get_extended_key_usage(cert) & XKU_OCSP_SIGN))
        return "the responder certificate lacks extended key usage id-kp-OCSPSigning";
    /* X509_cmp_time: -1 earlier or equal, 1 later, 0 unparsable (refused) */
    if (X509_cmp_time(X509_get0_notBefore(cert), &t) >= 0 ||
        X509_cmp_time(X509_get0_notAfter(cert), &t) <= 0)
        return "the responder certificate is not valid now";
    return NULL;
}

/* The issuer signed the response itself, or a delegated responder from the
 * certs field did. Every certificate is parsed whole; garbage is an error. */
static int verify_signature(const struct walk *w, X509 *issuer, int64_t now, atr_ocsp_result_t *r)
{
    CBS certs = w->certs, one;
    const char *problem = NULL;

    if (cert_sig_ok(w, issuer))
        return 0;
    while (CBS_len(&certs) > 0) {
        const uint8_t *p;
        X509 *cert;

        if (!CBS_get_asn1_element(&certs, &one, CBS_ASN1_SEQUENCE)) {
            fail(r, "malformed certificate in the response");
            return -1;
        }
        p = CBS_data(&one);
        cert = d2i_X509(NULL, &p, (long)CBS_len(&one));
        if (cert == NULL || p != CBS_data(&one) + CBS_len(&one)) {
            X509_free(cert);
            fail(r, "malformed certificate in the response");
            return -1;
        }
        if (cert_sig_ok(w, cert))
            problem = delegate_problem(cert, issuer, now);
        else if (problem == NULL)
            problem = "signature does not verify with the issuer's key or a certificate in the response";
        X509_free(cert);
        if (problem == NULL)
            return 0;
    }
    fail(r, "%s", problem != NULL ? problem : "signature does not verify with the issuer's key");
    return -1;
}

/* ------------------------------------------------------------ single response */

/* 1 when the CertID element cid (contents) names id: SHA-1 and the same
 * hashes and serial. Parameters of the algorithm are NULL or absent. */
static int certid_matches(CBS cid, const atr_ocsp_certid_t *id)
{
    CBS alg, oid, name, key, serial;

    if (!CBS_get_asn1(&cid, &alg, CBS_ASN1_SEQUENCE) ||
        !CBS_get_asn1(&alg, &oid, CBS_ASN1_OBJECT) ||
        !CBS_get_asn1(&cid, &name, CBS_ASN1_OCTETSTRING) ||
        !CBS_get_asn1(&cid, &key, CBS_ASN1_OCTETSTRING) ||
        !CBS_get_asn1_element(&cid, &serial, CBS_ASN1_INTEGER) || CBS_len(&cid) != 0)
        return 0;
    return CBS_mem_equal(&oid, oid_sha1, sizeof oid_sha1) &&
           CBS_mem_equal(&name, id->name_hash, sizeof id->name_hash) &&
           CBS_mem_equal(&key, id->key_hash, sizeof id->key_hash) &&
           CBS_mem_equal(&serial, id->serial, id->serial_len);
}

/* certStatus ::= CHOICE { good [0] IMPLICIT NULL, revoked [1] IMPLICIT
 * SEQ { GeneralizedTime, [0] EXPLICIT CRLReason OPT }, unknown [2] IMPLICIT NULL } */
static int read_status(CBS *single, atr_ocsp_result_t *r)
{
    CBS st, why;
    unsigned tag;
    int has_why;
    uint8_t code;

    if (!CBS_get_any_asn1(single, &st, &tag))
        return -1;
    if (tag == CTX(0) || tag == CTX(2)) {
        r->status = tag == CTX(0) ? ATR_OCSP_GOOD : ATR_OCSP_UNKNOWN;
        return CBS_len(&st) == 0 ? 0 : -1;
    }
    if (tag != CTX_CONS(1) || !get_gentime(&st, &r->revoked_at) ||
        !CBS_get_optional_asn1(&st, &why, &has_why, CTX_CONS(0)) || CBS_len(&st) != 0)
        return -1;
    if (has_why) {
        CBS e;
        if (!CBS_get_asn1(&why, &e, CBS_ASN1_ENUMERATED) || !CBS_get_u8(&e, &code) ||
            CBS_len(&e) != 0 || CBS_len(&why) != 0 || code > 127)
            return -1;
        r->revoked_reason = code;
    }
    r->status = ATR_OCSP_REVOKED;
    return 0;
}

/* SingleResponse ::= SEQ { CertID, CertStatus, GeneralizedTime thisUpdate,
 *   [0] EXPLICIT GeneralizedTime nextUpdate OPT, [1] EXPLICIT Extensions OPT }
 * Fills r from the one whose CertID is id. */
static int find_single(CBS responses, const atr_ocsp_certid_t *id, atr_ocsp_result_t *r)
{
    CBS single, cid, next;

    while (CBS_len(&responses) > 0) {
        if (!CBS_get_asn1(&responses, &single, CBS_ASN1_SEQUENCE) ||
            !CBS_get_asn1(&single, &cid, CBS_ASN1_SEQUENCE))
            goto malformed;
        if (!certid_matches(cid, id))
            continue;
        if (read_status(&single, r) != 0 || !get_gentime(&single, &r->this_update) ||
            !CBS_get_optional_asn1(&single, &next, &r->has_next_update, CTX_CONS(0)) ||
            (r->has_next_update && (!get_gentime(&next, &r->next_update) || CBS_len(&next))) ||
            !CBS_get_optional_asn1(&single, NULL, NULL, CTX_CONS(1)) || CBS_len(&single) != 0)
            goto malformed;
        if (!r->has_next_update)
            r->next_update = r->this_update + ATR_OCSP_DEFAULT_VALIDITY;
        return 0;
    }
    fail(r, "certificate ID does not match (the response is about another certificate)");
    return -1;
malformed:
    fail(r, "malformed SingleResponse");
    return -1;
}

/* ------------------------------------------------------------ verify */

static void format_time(int64_t t, char *buf, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, n, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(buf, n, "%lld", (long long)t);
}

static int check_times(atr_ocsp_result_t *r, int64_t now)
{
    char when[40];

    if (r->next_update <= r->this_update && r->has_next_update) {
        format_time(r->next_update, when, sizeof when);
        fail(r, "response expired at %s (nextUpdate is not after thisUpdate)", when);
        return -ESTALE;
    }
    if (now < r->this_update - ATR_OCSP_CLOCK_SKEW) {
        format_time(r->this_update, when, sizeof when);
        fail(r, "response is not valid before %s", when);
        return -ESTALE;
    }
    if (now >= r->next_update) {
        format_time(r->next_update, when, sizeof when);
        fail(r, "response expired at %s%s", when, r->has_next_update ? "" : " (no nextUpdate)");
        return -ESTALE;
    }
    return 0;
}

int atr_ocsp_verify(const uint8_t *der, size_t len, X509 *leaf, X509 *issuer, int64_t now,
                    atr_ocsp_result_t *out)
{
    atr_ocsp_certid_t id;
    struct walk w;
    CBS basic;

    memset(out, 0, sizeof *out);
    out->revoked_reason = -1;
    if (atr_ocsp_certid(leaf, issuer, &id) != 0) {
        fail(out, "cannot compute the certificate ID");
        return -EBADMSG;
    }
    if (walk_outer(der, len, &basic, out) != 0 || walk_basic(basic, &w, out) != 0 ||
        verify_signature(&w, issuer, now, out) != 0 || find_single(w.responses, &id, out) != 0)
        return -EBADMSG;
    return check_times(out, now);
}
