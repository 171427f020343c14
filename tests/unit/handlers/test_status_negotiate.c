/* Which form of the status page a request gets (handlers/status_negotiate.h):
 * what Prometheus, browsers and curl really send, q values, ties, and the
 * explicit ?format= that overrides Accept. Table-driven. */
#include "handlers/status_negotiate.h"
#include "t.h"

#define PROM ATR_STATUS_PROMETHEUS
#define HTML ATR_STATUS_HTML
#define JSON ATR_STATUS_JSON
#define BAD ATR_STATUS_BAD_FORMAT

struct ncase {
    int line;
    const char *target;
    const char *accept;
    enum atr_status_format want;
    int by_accept;
};

/* Prometheus 2.x's scrape Accept, word for word. */
#define PROMETHEUS_ACCEPT                                                                    \
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;" \
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
#define CHROMIUM_ACCEPT                                                                      \
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"           \
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
#define FIREFOX_ACCEPT "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

static const struct ncase cases[] = {
    /* who asks */
    { __LINE__, "/s", PROMETHEUS_ACCEPT, PROM, 1 },
    { __LINE__, "/s", "application/openmetrics-text; version=0.0.1,text/plain;version=0.0.4;"
                      "q=0.5,*/*;q=0.1", PROM, 1 },
    { __LINE__, "/s", CHROMIUM_ACCEPT, HTML, 1 },
    { __LINE__, "/s", FIREFOX_ACCEPT, HTML, 1 },
    { __LINE__, "/s", "*/*", PROM, 1 },                     /* curl */
    { __LINE__, "/s", "", PROM, 1 },                        /* no Accept */
    { __LINE__, "/s", "text/*", PROM, 1 },                  /* wildcards choose nothing */
    { __LINE__, "/s", "application/json", JSON, 1 },
    { __LINE__, "/s", "application/json, text/html;q=0.9", JSON, 1 },
    /* ties and q */
    { __LINE__, "/s", "text/html, text/plain", HTML, 1 },   /* a tie: the first named */
    { __LINE__, "/s", "text/plain, text/html", PROM, 1 },
    { __LINE__, "/s", "text/plain;q=0.5, text/html", HTML, 1 },
    { __LINE__, "/s", "text/html;q=0.4, text/plain;q=0.5", PROM, 1 },
    { __LINE__, "/s", "text/html;q=0, */*", PROM, 1 },      /* refused */
    { __LINE__, "/s", "text/html;q=0.001", HTML, 1 },
    { __LINE__, "/s", "text/html;level=1;q=0.9, text/plain;q=0.8", HTML, 1 },
    { __LINE__, "/s", "text/html;Q=0.2, text/plain;q=0.3", PROM, 1 },
    { __LINE__, "/s", "text/html;q=0.3, text/plain;q=0.25", HTML, 1 },
    { __LINE__, "/s", "text/html;q=2, text/plain;q=0.9", HTML, 1 },  /* malformed q: as none */
    { __LINE__, "/s", "text/html;q=, text/plain;q=0.9", HTML, 1 },
    { __LINE__, "/s", "text/plain;q=0.9x, text/html;q=0.9", PROM, 1 },
    /* spelling */
    { __LINE__, "/s", "  TEXT/HTML ;q=0.9 ,text/plain;q=0.1", HTML, 1 },
    { __LINE__, "/s", "text/htmlx", PROM, 1 },
    { __LINE__, "/s", ",,text/html,", HTML, 1 },
    { __LINE__, "/s", "application/xhtml+xml", HTML, 1 },
    /* ?format= overrides Accept, whatever it says */
    { __LINE__, "/s?format=html", "*/*", HTML, 0 },
    { __LINE__, "/s?format=json", CHROMIUM_ACCEPT, JSON, 0 },
    { __LINE__, "/s?format=prometheus", CHROMIUM_ACCEPT, PROM, 0 },
    { __LINE__, "/s?a=1&format=JSON&b", "", JSON, 0 },
    { __LINE__, "/s?format=json&format=html", "", JSON, 0 }, /* the first one */
    { __LINE__, "/s?format=xml", "", BAD, 0 },
    { __LINE__, "/s?format=", "", BAD, 0 },
    { __LINE__, "/s?informat=json", CHROMIUM_ACCEPT, HTML, 1 }, /* not the parameter */
    { __LINE__, "/s?", PROMETHEUS_ACCEPT, PROM, 1 },
};

int main(void)
{
    for (size_t i = 0; i < ATR_ARRAY_SIZE(cases); i++) {
        const struct ncase *c = &cases[i];
        int by = -1;
        enum atr_status_format f =
            atr_status_negotiate((atr_str_t){ c->target, strlen(c->target) },
                                 (atr_str_t){ c->accept, strlen(c->accept) }, &by);
        T_CHECK(c->line, f == c->want, "got %d, want %d", (int)f, (int)c->want);
        T_CHECK(c->line, by == c->by_accept, "by_accept %d", by);
    }
    T_CHECK(__LINE__, strcmp(atr_status_format_name(HTML), "html") == 0, "name");
    T_CHECK(__LINE__, strcmp(atr_status_format_name(BAD), "") == 0, "name");
    T_DONE();
}
