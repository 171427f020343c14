/* OCSP: the request is byte-identical to openssl's, the responder URL comes
 * from the AIA, http URLs split right and https is refused, and a table of
 * responses made by `openssl ocsp` (tls/fixtures/make.sh) is accepted or
 * rejected for the stated reason. Every truncation of a valid response and
 * every one-byte corruption is survived, and none authenticates anything but
 * the real answer. Runs in tests/unit (meson's workdir). */
#include "tls/ocsp.h"
#include "t.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define FIX "tls/fixtures/"
#define YEAR (365 * 86400LL)

static int64_t made_at; /* when make.sh ran: the fixtures' "now" */

static uint8_t *slurp(const char *name, size_t *len)
{
    char path[256];
    FILE *f;
    uint8_t *buf = NULL;
    long n;

    snprintf(path, sizeof path, FIX "%s", name);
    f = fopen(path, "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
        fprintf(stderr, "cannot read %s (run from tests/unit)\n", path);
        exit(2);
    }
    buf = malloc((size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n)
        exit(2);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static X509 *cert(const char *name)
{
    size_t len;
    uint8_t *pem = slurp(name, &len);
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);

    BIO_free(b);
    free(pem);
    if (x == NULL) {
        fprintf(stderr, "%s: not a PEM certificate\n", name);
        exit(2);
    }
    return x;
}

/* ------------------------------------------------------------ request */

static void test_request(void)
{
    X509 *leaf = cert("leaf.pem"), *ca = cert("ca.pem");
    atr_ocsp_certid_t id;
    uint8_t *req = NULL;
    size_t len = 0, want_len;
    uint8_t *want = slurp("req-leaf.der", &want_len);

    T_CHECK(__LINE__, atr_ocsp_certid(leaf, ca, &id) == 0, "certid");
    /* serial 0x1001 as a DER INTEGER */
    T_CHECK(__LINE__, id.serial_len == 4 && memcmp(id.serial, "\x02\x02\x10\x01", 4) == 0,
            "serial %zu bytes", id.serial_len);
    T_CHECK(__LINE__, atr_ocsp_request(&id, &req, &len) == 0, "request");
    T_CHECK(__LINE__, len == want_len && memcmp(req, want, len) == 0,
            "%zu bytes, openssl wrote %zu", len, want_len);
    OPENSSL_free(req);
    free(want);
    X509_free(leaf);
    X509_free(ca);
}

static void test_responder_url(void)
{
    X509 *leaf = cert("leaf.pem"), *ca = cert("ca.pem");
    char *url = atr_ocsp_responder_url(leaf), *none = atr_ocsp_responder_url(ca);

    T_CHECK(__LINE__, url != NULL && strcmp(url, "http://127.0.0.1:8888/ocsp") == 0, "%s",
            url ? url : "(null)");
    T_CHECK(__LINE__, none == NULL, "the CA has no AIA: %s", none);
    free(url);
    free(none);
    X509_free(leaf);
    X509_free(ca);
}

/* ------------------------------------------------------------ URL */

static const struct ucase {
    int line;
    const char *url;
    const char *host; /* NULL: refused, and why contains path */
    unsigned port;
    const char *path;
} ucases[] = {
    { __LINE__, "http://127.0.0.1:8888/ocsp", "127.0.0.1", 8888, "/ocsp" },
    { __LINE__, "http://ocsp.example.com", "ocsp.example.com", 80, "/" },
    { __LINE__, "HTTP://ocsp.example.com/", "ocsp.example.com", 80, "/" },
    { __LINE__, "http://r.example:81/a/b?c=d#frag", "r.example", 81, "/a/b?c=d" },
    { __LINE__, "http://[::1]:8080/x", "::1", 8080, "/x" },
    { __LINE__, "http://[2001:db8::1]/", "2001:db8::1", 80, "/" },
    { __LINE__, "https://ocsp.example.com/", NULL, 0, "https" },
    { __LINE__, "ftp://ocsp.example.com/", NULL, 0, "http://" },
    { __LINE__, "ocsp.example.com", NULL, 0, "http://" },
    { __LINE__, "http://", NULL, 0, "no host" },
    { __LINE__, "http:///path", NULL, 0, "no host" },
    { __LINE__, "http://:80/", NULL, 0, "no host" },
    { __LINE__, "http://h:0/", NULL, 0, "port" },
    { __LINE__, "http://h:65536/", NULL, 0, "port" },
    { __LINE__, "http://h:/", NULL, 0, "port" },
    { __LINE__, "http://h:8x/", NULL, 0, "port" },
    { __LINE__, "http://user@h/", NULL, 0, "user info" },
    { __LINE__, "http://[::1/", NULL, 0, "IPv6" },
    { __LINE__, "http://[::1]x/", NULL, 0, "IPv6" },
    { __LINE__, "http://h?q", NULL, 0, "no path" },
};

static void test_url(void)
{
    for (size_t i = 0; i < ATR_ARRAY_SIZE(ucases); i++) {
        const struct ucase *c = &ucases[i];
        atr_ocsp_url_t u;
        const char *why = NULL;
        int rc = atr_ocsp_url_parse(c->url, &u, &why);

        if (c->host == NULL) {
            T_CHECK(c->line, rc == -EINVAL && why != NULL && strstr(why, c->path) != NULL,
                    "rc %d, why %s", rc, why ? why : "(null)");
            continue;
        }
        T_CHECK(c->line, rc == 0, "rc %d: %s", rc, why ? why : "");
        if (rc != 0)
            continue;
        T_CHECK(c->line, u.host.n == strlen(c->host) && memcmp(u.host.p, c->host, u.host.n) == 0,
                "host %.*s", (int)u.host.n, u.host.p);
        T_CHECK(c->line, u.port == c->port, "port %u", u.port);
        T_CHECK(c->line, u.path.n == strlen(c->path) && memcmp(u.path.p, c->path, u.path.n) == 0,
                "path %.*s", (int)u.path.n, u.path.p);
    }
}

/* ------------------------------------------------------------ verify */

#define WALL INT64_MIN /* "now" is the real clock, not made_at + offset */

static const struct vcase {
    int line;
    const char *resp, *leaf, *issuer;
    int64_t at; /* seconds after made_at, or WALL */
    int rc;
    enum atr_ocsp_status status;
    const char *reason; /* a substring of the reason when rc != 0 */
} vcases[] = {
    /* signed by the issuer itself */
    { __LINE__, "resp-good.der", "leaf.pem", "ca.pem", 0, 0, ATR_OCSP_GOOD, NULL },
    { __LINE__, "resp-good.der", "leaf.pem", "ca.pem", WALL, 0, ATR_OCSP_GOOD, NULL },
    { __LINE__, "resp-revoked.der", "revoked.pem", "ca.pem", 0, 0, ATR_OCSP_REVOKED, NULL },
    { __LINE__, "resp-unknown.der", "unknown.pem", "ca.pem", 0, 0, ATR_OCSP_UNKNOWN, NULL },
    /* a delegated responder, named by subject or by key hash */
    { __LINE__, "resp-delegated.der", "leaf.pem", "ca.pem", 0, 0, ATR_OCSP_GOOD, NULL },
    { __LINE__, "resp-delegated-keyid.der", "leaf.pem", "ca.pem", 0, 0, ATR_OCSP_GOOD, NULL },
    /* ... but not one that left its certificate out, lacks the EKU, or is unrelated */
    { __LINE__, "resp-delegated-nocerts.der", "leaf.pem", "ca.pem", 0, -EBADMSG, 0,
      "signature does not verify" },
    { __LINE__, "resp-noeku.der", "leaf.pem", "ca.pem", 0, -EBADMSG, 0, "id-kp-OCSPSigning" },
    { __LINE__, "resp-other.der", "leaf.pem", "ca.pem", 0, -EBADMSG, 0, "not issued by" },
    { __LINE__, "resp-delegated.der", "leaf.pem", "ca.pem", 101 * YEAR, -EBADMSG, 0,
      "responder certificate is not valid now" },
    /* a valid issuer's signature, but for the wrong issuer */
    { __LINE__, "resp-good.der", "leaf.pem", "other.pem", 0, -EBADMSG, 0, "not issued by" },
    /* authentic, but about another certificate */
    { __LINE__, "resp-good.der", "revoked.pem", "ca.pem", 0, -EBADMSG, 0,
      "certificate ID does not match" },
    { __LINE__, "resp-revoked.der", "leaf.pem", "ca.pem", 0, -EBADMSG, 0,
      "certificate ID does not match" },
    /* time: nextUpdate is strict, thisUpdate has ATR_OCSP_CLOCK_SKEW of grace */
    { __LINE__, "resp-expired.der", "leaf.pem", "ca.pem", 0, 0, ATR_OCSP_GOOD, NULL },
    { __LINE__, "resp-expired.der", "leaf.pem", "ca.pem", 3600, -ESTALE, 0, "response expired at" },
    { __LINE__, "resp-expired.der", "leaf.pem", "ca.pem", WALL, -ESTALE, 0, "response expired at" },
    { __LINE__, "resp-good.der", "leaf.pem", "ca.pem", 101 * YEAR, -ESTALE, 0, "expired at 2" },
    { __LINE__, "resp-good.der", "leaf.pem", "ca.pem", -200, 0, ATR_OCSP_GOOD, NULL },
    { __LINE__, "resp-good.der", "leaf.pem", "ca.pem", -400, -ESTALE, 0, "not valid before" },
    /* no nextUpdate: valid for ATR_OCSP_DEFAULT_VALIDITY after thisUpdate */
    { __LINE__, "resp-nonext.der", "leaf.pem", "ca.pem", 0, 0, ATR_OCSP_GOOD, NULL },
    { __LINE__, "resp-nonext.der", "leaf.pem", "ca.pem", ATR_OCSP_DEFAULT_VALIDITY + 60, -ESTALE, 0,
      "(no nextUpdate)" },
    /* not a response at all */
    { __LINE__, "req-leaf.der", "leaf.pem", "ca.pem", 0, -EBADMSG, 0, "not an OCSP response" },
    { __LINE__, "ca.pem", "leaf.pem", "ca.pem", 0, -EBADMSG, 0, "not an OCSP response" },
};

static void check_vcase(const struct vcase *c)
{
    size_t len;
    uint8_t *der = slurp(c->resp, &len);
    X509 *leaf = cert(c->leaf), *issuer = cert(c->issuer);
    int64_t now = c->at == WALL ? (int64_t)time(NULL) : made_at + c->at;
    atr_ocsp_result_t r;
    int rc = atr_ocsp_verify(der, len, leaf, issuer, now, &r);

    T_CHECK(c->line, rc == c->rc, "rc %d, want %d: %s", rc, c->rc, r.reason);
    if (rc == 0 && c->rc == 0) {
        T_CHECK(c->line, r.status == c->status, "status %d", r.status);
        T_CHECK(c->line, r.reason[0] == '\0', "reason on success: %s", r.reason);
        T_CHECK(c->line, r.this_update <= made_at && r.this_update > made_at - 60,
                "thisUpdate %lld, made at %lld", (long long)r.this_update, (long long)made_at);
        T_CHECK(c->line, r.next_update > r.this_update, "nextUpdate %lld",
                (long long)r.next_update);
    } else if (c->rc != 0) {
        T_CHECK(c->line, c->reason != NULL && strstr(r.reason, c->reason) != NULL,
                "reason \"%s\", want \"%s\"", r.reason, c->reason);
    }
    free(der);
    X509_free(leaf);
    X509_free(issuer);
}

/* The fields of a good, a revoked and a nextUpdate-less response. */
static void test_fields(void)
{
    static const struct { int line; const char *resp, *leaf; } f[] = {
        { __LINE__, "resp-good.der", "leaf.pem" },
        { __LINE__, "resp-revoked.der", "revoked.pem" },
        { __LINE__, "resp-nonext.der", "leaf.pem" },
    };
    X509 *ca = cert("ca.pem");
    atr_ocsp_result_t r[3];

    for (int i = 0; i < 3; i++) {
        size_t len;
        uint8_t *der = slurp(f[i].resp, &len);
        X509 *leaf = cert(f[i].leaf);
        T_CHECK(f[i].line, atr_ocsp_verify(der, len, leaf, ca, made_at, &r[i]) == 0, "%s",
                r[i].reason);
        free(der);
        X509_free(leaf);
    }
    /* -ndays 36500 */
    T_CHECK(f[0].line, r[0].has_next_update && r[0].next_update - r[0].this_update == 36500 * 86400LL,
            "%lld", (long long)(r[0].next_update - r[0].this_update));
    T_CHECK(f[0].line, r[0].revoked_at == 0 && r[0].revoked_reason == -1, "not revoked");
    /* index.txt: revoked 2024-01-01 00:00:00 UTC, keyCompromise (1) */
    T_CHECK(f[1].line, r[1].revoked_at == 1704067200 && r[1].revoked_reason == 1, "%lld %d",
            (long long)r[1].revoked_at, r[1].revoked_reason);
    T_CHECK(f[2].line, !r[2].has_next_update &&
                           r[2].next_update == r[2].this_update + ATR_OCSP_DEFAULT_VALIDITY,
            "%lld", (long long)(r[2].next_update - r[2].this_update));
    X509_free(ca);
}

/* Every prefix of a valid response is an error with a reason. Every one-byte
 * corruption is survived, and accepted only inside the unsigned certs field
 * when that field is not needed (it holds the issuer itself, whose key we
 * have): [0] { SEQUENCE { Certificate } }, two 4-byte headers at its size. */
static void test_damage(int line, const char *resp, const char *leaf_pem, int issuer_signed,
                        enum atr_ocsp_status status)
{
    size_t len, tail;
    uint8_t *der = slurp(resp, &len);
    X509 *leaf = cert(leaf_pem), *ca = cert("ca.pem");
    atr_ocsp_result_t r;
    int bad = 0;

    tail = issuer_signed ? (size_t)i2d_X509(ca, NULL) + 8 : 0;
    for (size_t n = 0; n < len; n++) {
        /* a copy of exactly n bytes, so ASan sees any read past the end */
        uint8_t *cut = malloc(n ? n : 1);
        memcpy(cut, der, n);
        if (atr_ocsp_verify(cut, n, leaf, ca, made_at, &r) == 0 || r.reason[0] == '\0')
            bad++;
        free(cut);
    }
    T_CHECK(line, bad == 0, "%s: %d truncations accepted or without a reason", resp, bad);
    for (size_t i = 0; i < len; i++) {
        der[i] ^= 0x41;
        if (atr_ocsp_verify(der, len, leaf, ca, made_at, &r) == 0)
            T_CHECK(line, i >= len - tail && r.status == status,
                    "%s: corrupting byte %zu of %zu is accepted (status %d)", resp, i, len,
                    r.status);
        der[i] ^= 0x41;
    }
    free(der);
    X509_free(leaf);
    X509_free(ca);
}

static void test_garbage(void)
{
    static const struct { int line; const char *bytes; size_t n; } g[] = {
        { __LINE__, "", 0 },
        { __LINE__, "\x30", 1 },
        { __LINE__, "\x30\x80\x0a\x01\x00\x00\x00", 7 },   /* BER indefinite length */
        { __LINE__, "\x30\x03\x0a\x01\x00", 5 },           /* successful, no body */
        { __LINE__, "\x30\x03\x0a\x01\x03", 5 },           /* tryLater */
        { __LINE__, "\x30\x84\xff\xff\xff\xff\x0a", 7 },   /* length past the end */
    };
    X509 *leaf = cert("leaf.pem"), *ca = cert("ca.pem");
    atr_ocsp_result_t r;
    uint8_t noise[512];
    uint32_t x = 2463534242u;

    for (size_t i = 0; i < ATR_ARRAY_SIZE(g); i++)
        T_CHECK(g[i].line, atr_ocsp_verify((const uint8_t *)g[i].bytes, g[i].n, leaf, ca, made_at,
                                           &r) == -EBADMSG && r.reason[0], "%s", r.reason);
    atr_ocsp_verify((const uint8_t *)"\x30\x03\x0a\x01\x03", 5, leaf, ca, made_at, &r);
    T_CHECK(__LINE__, strstr(r.reason, "tryLater") != NULL, "%s", r.reason);
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof noise; i++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5; /* xorshift32: repeatable noise */
            noise[i] = (uint8_t)x;
        }
        noise[0] = 0x30; /* a SEQUENCE, so the walk goes past the first byte */
        T_CHECK(__LINE__, atr_ocsp_verify(noise, sizeof noise, leaf, ca, made_at, &r) != 0,
                "round %d accepted", round);
    }
    X509_free(leaf);
    X509_free(ca);
}

int main(void)
{
    size_t len;
    char *at = (char *)slurp("made_at", &len);

    made_at = strtoll(at, NULL, 10);
    free(at);
    test_request();
    test_responder_url();
    test_url();
    for (size_t i = 0; i < ATR_ARRAY_SIZE(vcases); i++)
        check_vcase(&vcases[i]);
    test_fields();
    test_damage(__LINE__, "resp-good.der", "leaf.pem", 1, ATR_OCSP_GOOD);
    test_damage(__LINE__, "resp-delegated.der", "leaf.pem", 0, ATR_OCSP_GOOD);
    test_damage(__LINE__, "resp-revoked.der", "revoked.pem", 1, ATR_OCSP_REVOKED);
    test_garbage();
    T_DONE();
}
