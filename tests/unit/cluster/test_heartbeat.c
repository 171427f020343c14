/* Heartbeats (cluster/heartbeat_proto.c, cluster/heartbeat_mac.c): beats as
 * mod_heartmonitor reads them (escapes, bare keys, case, repeats, atoi's
 * leniency) and every refusal with its reason; the encoder's bytes against
 * mod_heartbeat's format; storage lines as mod_heartmonitor writes them and
 * as mod_lbmethod_heartbeat reads them; signed beats good, tampered, unsigned,
 * stale and replayed, with one HMAC pinned to a value computed elsewhere. */
#include "cluster/heartbeat_mac.h"
#include "cluster/heartbeat_proto.h"
#include "t.h"

#include <errno.h>

#include "base/util.h"

#define S(lit) lit, sizeof(lit) - 1

struct pcase {
    int line;
    const char *in;
    size_t n;
    const char *why; /* NULL: accepted with the values below */
    unsigned ready, busy;
    int has_port;
    unsigned port;
};

static const struct pcase pcases[] = {
    /* mod_heartbeat's own beats (specs-digest §1.1) */
    { __LINE__, S("v=1&ready=75&busy=0"), NULL, 75, 0, 0, 0 },
    { __LINE__, S("v=1&ready=75&busy=3"), NULL, 75, 3, 0, 0 },
    /* other fields are carried and ignored; port= is optional */
    { __LINE__, S("v=1&ready=5&busy=2&load=0.5&x"), NULL, 5, 2, 0, 0 },
    { __LINE__, S("v=1&ready=5&busy=2&port=8080"), NULL, 5, 2, 1, 8080 },
    { __LINE__, S("port=0&busy=2&ready=5&v=1"), NULL, 5, 2, 1, 0 },
    /* ap_unescape_url on keys and values; '+' is not a space */
    { __LINE__, S("%76=1&re%61dy=%31%32&busy=%2B3"), NULL, 12, 3, 0, 0 },
    { __LINE__, S("v=1&ready=1+2&busy=0"), NULL, 1, 0, 0, 0 },
    /* a bad escape stays literal; a decoded NUL ends the string */
    { __LINE__, S("v=1&ready=%zz&busy=7%"), NULL, 0, 7, 0, 0 },
    { __LINE__, S("v=1&ready=4%005&busy=1"), NULL, 4, 1, 0, 0 },
    { __LINE__, S("v=1&ready%00x=9&busy=1"), NULL, 9, 1, 0, 0 },
    /* apr_table: keys without case, the last repeat wins */
    { __LINE__, S("V=1&READY=6&Busy=2"), NULL, 6, 2, 0, 0 },
    { __LINE__, S("v=1&ready=1&ready=9&busy=0"), NULL, 9, 0, 0, 0 },
    { __LINE__, S("v=1&ready=-1&ready=2&busy=0&busy=99999999999&busy=1"), NULL, 2, 1, 0, 0 },
    /* qs_to_table: a bare key is "1"; empty fields are skipped */
    { __LINE__, S("v&ready&busy"), NULL, 1, 1, 0, 0 },
    { __LINE__, S("&&v=1&&ready=2&busy=3&"), NULL, 2, 3, 0, 0 },
    /* atoi: empty and junk are 0, blanks and a sign before, junk after */
    { __LINE__, S("v=&ready=&busy="), NULL, 0, 0, 0, 0 },
    { __LINE__, S("v=1&ready=%20%0912abc&busy=x"), NULL, 12, 0, 0, 0 },
    { __LINE__, S("v=1&ready=-0&busy=+4"), NULL, 0, 4, 0, 0 },
    /* the value of v is not checked (hm_processmsg) */
    { __LINE__, S("v=2&ready=1&busy=1"), NULL, 1, 1, 0, 0 },
    { __LINE__, S("v=banana&ready=1&busy=1"), NULL, 1, 1, 0, 0 },
    /* the bytes after a NUL are not read */
    { __LINE__, S("v=1&ready=1&busy=1\0&port=99"), NULL, 1, 1, 0, 0 },
    { __LINE__, S("v=1\0&ready=1&busy=1"), "missing ready", 0, 0, 0, 0 },
    /* limits: an int for counts, 16 bits for a port */
    { __LINE__, S("v=1&ready=2147483647&busy=2147483647"), NULL, 2147483647u, 2147483647u, 0, 0 },
    { __LINE__, S("v=1&ready=2147483648&busy=0"), "ready out of range", 0, 0, 0, 0 },
    { __LINE__, S("v=1&ready=0&busy=99999999999999999999999"), "busy out of range", 0, 0, 0, 0 },
    { __LINE__, S("v=1&ready=0&busy=0&port=65535"), NULL, 0, 0, 1, 65535 },
    { __LINE__, S("v=1&ready=0&busy=0&port=65536"), "port out of range", 0, 0, 0, 0 },
    { __LINE__, S("v=1&ready=0&busy=0&port=-1"), "port negative", 0, 0, 0, 0 },
    { __LINE__, S("v=1&ready=-5&busy=0"), "ready negative", 0, 0, 0, 0 },
    { __LINE__, S("v=1&ready=1&busy=-99999999999"), "busy negative", 0, 0, 0, 0 },
    /* v, ready and busy are required */
    { __LINE__, S(""), "missing v", 0, 0, 0, 0 },
    { __LINE__, S("ready=1&busy=1"), "missing v", 0, 0, 0, 0 },
    { __LINE__, S("vv=1&ready=1&busy=1"), "missing v", 0, 0, 0, 0 },
    { __LINE__, S("v=1&busy=1"), "missing ready", 0, 0, 0, 0 },
    { __LINE__, S("v=1&ready=1"), "missing busy", 0, 0, 0, 0 },
    { __LINE__, S("v=1;ready=1;busy=1"), "missing ready", 0, 0, 0, 0 },
};

static void run_parse(const struct pcase *c)
{
    atr_hb_beat_t b;
    const char *why = atr_hb_parse(c->in, c->n, &b);

    if (c->why) {
        T_CHECK(c->line, why && !strcmp(why, c->why), "got %s", why ? why : "accepted");
        return;
    }
    T_CHECK(c->line, why == NULL, "refused: %s", why);
    if (why)
        return;
    T_CHECK(c->line, b.ready == c->ready && b.busy == c->busy, "ready %u busy %u", b.ready,
            b.busy);
    T_CHECK(c->line, b.has_port == c->has_port && b.port == c->port, "port %d %u", b.has_port,
            b.port);
}

/* MAX_MSG_LEN: 1000 bytes are read, 1001 refused (Apache would truncate). */
static void test_sizes(void)
{
    char buf[ATR_HB_MAX_MSG + 2];
    atr_hb_beat_t b;
    const char *why;
    size_t head;

    head = (size_t)snprintf(buf, sizeof buf, "v=1&ready=3&busy=4&pad=");
    memset(buf + head, 'x', sizeof buf - head);
    why = atr_hb_parse(buf, ATR_HB_MAX_MSG, &b);
    T_CHECK(__LINE__, why == NULL && b.ready == 3 && b.busy == 4, "%s", why);
    why = atr_hb_parse(buf, ATR_HB_MAX_MSG + 1, &b);
    T_CHECK(__LINE__, why && !strcmp(why, "too long"), "%s", why);
}

/* ts=: strict digits, else simply absent (Apache ignores the field). */
static void test_ts(void)
{
    atr_hb_beat_t b;

    T_CHECK(__LINE__, !atr_hb_parse(S("v=1&ready=1&busy=1&ts=1700000000123"), &b) && b.has_ts &&
                          b.ts_ms == 1700000000123ull, "ts");
    T_CHECK(__LINE__, !atr_hb_parse(S("v=1&ready=1&busy=1&ts=12a"), &b) && !b.has_ts, "junk");
    T_CHECK(__LINE__, !atr_hb_parse(S("v=1&ready=1&busy=1&ts=99999999999999999999"), &b) &&
                          !b.has_ts, "20 digits");
    T_CHECK(__LINE__, !atr_hb_parse(S("v=1&ready=1&busy=1&ts="), &b) && !b.has_ts, "empty");
}

struct ecase {
    int line;
    atr_hb_beat_t b;
    const char *want;
};

static const struct ecase ecases[] = {
    { __LINE__, { .ready = 75, .busy = 0 }, "v=1&ready=75&busy=0" },
    { __LINE__, { .ready = 0, .busy = 3 }, "v=1&ready=0&busy=3" },
    { __LINE__, { .ready = 1, .busy = 2, .has_port = 1, .port = 8080 },
      "v=1&ready=1&busy=2&port=8080" },
    { __LINE__, { .ready = 1, .busy = 2, .has_ts = 1, .ts_ms = 1700000000000ull },
      "v=1&ready=1&busy=2&ts=1700000000000" },
    { __LINE__, { .ready = 4294967295u, .busy = 4294967295u },
      "v=1&ready=4294967295&busy=4294967295" },
};

/* The bytes, no NUL or newline in the length; a buffer one byte short. */
static void run_encode(const struct ecase *c)
{
    char buf[128];
    size_t want = strlen(c->want);
    int n = atr_hb_encode(buf, sizeof buf, &c->b);

    T_CHECK(c->line, n == (int)want && !memcmp(buf, c->want, want) && buf[n] == '\0', "%.*s",
            n > 0 ? n : 0, buf);
    T_CHECK(c->line, atr_hb_encode(buf, want, &c->b) == -ENOSPC, "short buffer");
    T_CHECK(c->line, atr_hb_encode(buf, want + 1, &c->b) == (int)want, "exact buffer");
}

/* Whatever we send, a monitor that parses as Apache does reads back. */
static void test_encode_round_trip(void)
{
    atr_hb_beat_t in = { .ready = 17, .busy = 9, .has_port = 1, .port = 81 }, out;
    char buf[64];
    int n = atr_hb_encode(buf, sizeof buf, &in);

    T_CHECK(__LINE__, n > 0 && !atr_hb_parse(buf, (size_t)n, &out) && out.ready == 17 &&
                          out.busy == 9 && out.has_port && out.port == 81, "round trip");
}

struct fcase {
    int line;
    atr_hb_entry_t e;
    int rc;
    const char *want;
};

static const struct fcase fcases[] = {
    { __LINE__, { "10.0.0.1", 75, 0, 3, 80 }, 45,
      "10.0.0.1 &ready=75&busy=0&lastseen=3&port=80\n" },
    { __LINE__, { "2001:db8::17", 1, 2, 0, 8080 }, 50,
      "2001:db8::17 &ready=1&busy=2&lastseen=0&port=8080\n" },
    { __LINE__, { "", 1, 2, 0, 80 }, -EINVAL, NULL },
    { __LINE__, { "10.0.0.1 x", 1, 2, 0, 80 }, -EINVAL, NULL },
    { __LINE__, { "a&b", 1, 2, 0, 80 }, -EINVAL, NULL },
    { __LINE__, { "#10.0.0.1", 1, 2, 0, 80 }, -EINVAL, NULL },
    { __LINE__, { "a\nb", 1, 2, 0, 80 }, -EINVAL, NULL },
};

/* hm_file_update_stats's line, and reading it back gives the entry. */
static void run_format(const struct fcase *c)
{
    char buf[128];
    atr_hb_entry_t back;
    int n = atr_hb_storage_format(buf, sizeof buf, &c->e);

    T_CHECK(c->line, n == c->rc, "rc %d", n);
    if (!c->want || n != c->rc)
        return;
    T_CHECK(c->line, !strcmp(buf, c->want), "%s", buf);
    T_CHECK(c->line, atr_hb_storage_format(buf, (size_t)n, &c->e) == -ENOSPC, "short");
    T_CHECK(c->line, atr_hb_storage_parse(buf, (size_t)n, &back) == 1 &&
                         !strcmp(back.ip, c->e.ip) && back.ready == c->e.ready &&
                         back.busy == c->e.busy && back.lastseen == c->e.lastseen &&
                         back.port == c->e.port, "round trip");
}

struct lcase {
    int line;
    const char *in;
    int rc;
    atr_hb_entry_t want;
};

static const struct lcase lcases[] = {
    { __LINE__, "10.0.0.1 &ready=75&busy=0&lastseen=3&port=80\n", 1,
      { "10.0.0.1", 75, 0, 3, 80 } },
    /* no newline at the end of the file's last line */
    { __LINE__, "10.0.0.1 &ready=5&busy=1&lastseen=2&port=81", 1, { "10.0.0.1", 5, 1, 2, 81 } },
    /* absent fields: ready/busy 0, lastseen SEEN_TIMEOUT, port 80 */
    { __LINE__, "10.0.0.2 &ready=3\n", 1, { "10.0.0.2", 3, 0, 30, 80 } },
    /* lines the readers skip */
    { __LINE__, "# written by hand\n", 0, { "", 0, 0, 0, 0 } },
    { __LINE__, "nospace\n", 0, { "", 0, 0, 0, 0 } },
    { __LINE__, "\n", 0, { "", 0, 0, 0, 0 } },
    /* refused: an address longer than MAXIPSIZE, a number out of range */
    { __LINE__, "0123456789012345678901234567890123456789012345 &ready=1\n", -EINVAL, { "", 0, 0, 0, 0 } },
    { __LINE__, " &ready=1\n", -EINVAL, { "", 0, 0, 0, 0 } },
    { __LINE__, "10.0.0.3 &ready=1&lastseen=4294967296\n", -EINVAL, { "", 0, 0, 0, 0 } },
    { __LINE__, "10.0.0.3 &ready=1&port=70000\n", -EINVAL, { "", 0, 0, 0, 0 } },
};

static void run_line(const struct lcase *c)
{
    atr_hb_entry_t e;
    int rc = atr_hb_storage_parse(c->in, strlen(c->in), &e);

    T_CHECK(c->line, rc == c->rc, "rc %d", rc);
    if (rc != 1 || c->rc != 1)
        return;
    T_CHECK(c->line, !strcmp(e.ip, c->want.ip) && e.ready == c->want.ready &&
                         e.busy == c->want.busy && e.lastseen == c->want.lastseen &&
                         e.port == c->want.port, "%s %u %u %u %u", e.ip, e.ready, e.busy,
            e.lastseen, e.port);
}

static const uint8_t key[] = "secret";
#define KEYLEN (sizeof key - 1)
#define NOW 1700000000000ull

/* A beat signed at ts, into buf; its length. */
static size_t signed_beat(char *buf, size_t size, uint64_t ts)
{
    atr_hb_beat_t b = { .ready = 75, .busy = 3, .has_ts = 1, .ts_ms = ts };
    int n = atr_hb_encode(buf, size, &b);

    n = atr_hb_mac_append(key, KEYLEN, buf, size, (size_t)n);
    return n > 0 ? (size_t)n : 0;
}

static const char *check(const char *msg, size_t n, const uint8_t *k, size_t kn)
{
    atr_hb_beat_t b;
    const char *why = atr_hb_parse(msg, n, &b);

    return why ? why : atr_hb_mac_check(k, kn, msg, n, &b, NOW, ATR_HB_MAC_WINDOW_MS);
}

static void test_mac(void)
{
    char buf[256], tmp[256];
    size_t n = signed_beat(buf, sizeof buf, NOW);
    atr_hb_beat_t b;
    uint64_t last = 0;
    const char *why;

    /* HMAC-SHA256("secret", the bytes before &mac=), from Python's hmac */
    T_CHECK(__LINE__, !strcmp(buf, "v=1&ready=75&busy=3&ts=1700000000000&mac="
                                   "f44e53da441b624274c20e46698e0b65b67e5189af89c50ed3a52cd14b7765ef"),
            "%s", buf);
    T_CHECK(__LINE__, (why = check(buf, n, key, KEYLEN)) == NULL, "%s", why);
    /* a stock monitor's reading: the extension's fields change nothing */
    T_CHECK(__LINE__, !atr_hb_parse(buf, n, &b) && b.ready == 75 && b.busy == 3 && !b.has_port,
            "parse");
    /* one byte changed, a wrong key, the mac's case, no mac, a mac cut short */
    memcpy(tmp, buf, n);
    tmp[11] = '6';
    T_CHECK(__LINE__, (why = check(tmp, n, key, KEYLEN)) && !strcmp(why, "bad mac"), "%s", why);
    T_CHECK(__LINE__, (why = check(buf, n, (const uint8_t *)"secreT", 6)) &&
                          !strcmp(why, "bad mac"), "%s", why);
    memcpy(tmp, buf, n);
    tmp[n - 1] = 'F';
    T_CHECK(__LINE__, (why = check(tmp, n, key, KEYLEN)) && !strcmp(why, "bad mac"), "%s", why);
    T_CHECK(__LINE__, (why = check(S("v=1&ready=75&busy=3&ts=1700000000000"), key, KEYLEN)) &&
                          !strcmp(why, "no mac"), "%s", why);
    T_CHECK(__LINE__, (why = check(buf, n - 1, key, KEYLEN)) && !strcmp(why, "no mac"), "%s",
            why);
    /* signed but without ts: refused */
    {
        atr_hb_beat_t nots = { .ready = 1, .busy = 1 };
        int m = atr_hb_encode(tmp, sizeof tmp, &nots);
        m = atr_hb_mac_append(key, KEYLEN, tmp, sizeof tmp, (size_t)m);
        T_CHECK(__LINE__, (why = check(tmp, (size_t)m, key, KEYLEN)) && !strcmp(why, "no ts"),
                "%s", why);
    }
    /* the window: 30 s either way is in, one ms more is out */
    n = signed_beat(tmp, sizeof tmp, NOW + ATR_HB_MAC_WINDOW_MS);
    T_CHECK(__LINE__, (why = check(tmp, n, key, KEYLEN)) == NULL, "%s", why);
    n = signed_beat(tmp, sizeof tmp, NOW - ATR_HB_MAC_WINDOW_MS - 1);
    T_CHECK(__LINE__, (why = check(tmp, n, key, KEYLEN)) && !strcmp(why, "stale ts"), "%s", why);
    n = signed_beat(tmp, sizeof tmp, NOW + ATR_HB_MAC_WINDOW_MS + 1);
    T_CHECK(__LINE__, (why = check(tmp, n, key, KEYLEN)) && !strcmp(why, "stale ts"), "%s", why);
    /* the same beat twice, then an older one: replays; a newer one passes */
    T_CHECK(__LINE__, atr_hb_mac_fresh(&last, NOW) == NULL && last == NOW, "first");
    T_CHECK(__LINE__, (why = atr_hb_mac_fresh(&last, NOW)) && !strcmp(why, "replayed ts"), "same");
    T_CHECK(__LINE__, atr_hb_mac_fresh(&last, NOW - 1) && last == NOW, "older");
    T_CHECK(__LINE__, atr_hb_mac_fresh(&last, NOW + 100) == NULL && last == NOW + 100, "newer");
    /* no room for the mac */
    n = strlen("v=1&ready=1&busy=1");
    memcpy(tmp, "v=1&ready=1&busy=1", n + 1);
    T_CHECK(__LINE__, atr_hb_mac_append(key, KEYLEN, tmp, n + ATR_HB_MAC_FIELD_LEN, n) ==
                          -ENOSPC, "short");
    T_CHECK(__LINE__, atr_hb_mac_append(key, KEYLEN, tmp, n + ATR_HB_MAC_FIELD_LEN + 1, n) ==
                          (int)(n + ATR_HB_MAC_FIELD_LEN), "exact");
}

int main(void)
{
    for (size_t i = 0; i < ATR_ARRAY_SIZE(pcases); i++)
        run_parse(&pcases[i]);
    test_sizes();
    test_ts();
    for (size_t i = 0; i < ATR_ARRAY_SIZE(ecases); i++)
        run_encode(&ecases[i]);
    test_encode_round_trip();
    for (size_t i = 0; i < ATR_ARRAY_SIZE(fcases); i++)
        run_format(&fcases[i]);
    for (size_t i = 0; i < ATR_ARRAY_SIZE(lcases); i++)
        run_line(&lcases[i]);
    test_mac();
    T_DONE();
}
