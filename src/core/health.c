/* Active health checks (`health_check` in an upstream), on the control loop:
 * every interval, one GET of the path to each member of the running
 * generation, in the upstream's protocol (HTTP, HTTPS, FastCGI, SCGI: the
 * protocol's probe ops encode it and read its status; core/health_probe.c
 * carries it); a 2xx or 3xx status within the timeout passes, anything else
 * (refused, reset, timeout, a certificate that does not verify, another
 * status) fails. `fails` failures in a row take the member out of every
 * worker's choice (its shared state's `unhealthy`), `passes` passes in a row
 * bring it back; each change is logged once. A reload, or a change of
 * members, keeps the checks of the members that stay; the state lives with
 * the member's shared state, which reloads carry over by name, so a
 * member's health survives them. */
#include "core/health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "base/log.h"
#include "base/util.h"
#include "core/health_probe.h"
#include "tls/ctx.h"

typedef struct checker checker_t;

struct checker {
    uv_timer_t tick;
    const atr_conf_upstream_t *u;
    struct sockaddr_storage addr; /* the member's */
    char *name;               /* the member's, for the log */
    atr_server_state_t *st;   /* ref held; the member's identity */
    int keep;                 /* still a member (atr_health_apply's sweep) */
    atr_probe_t *probe;       /* in flight, or NULL */
    char *req;                /* the probe's bytes in the upstream's protocol */
    size_t reqlen;
    SSL_CTX *tls;             /* HTTPS: the generation's client context, else NULL */
    const char *tls_name;     /* its SNI and verified name (the generation's) */
    int ok_run, fail_run;
    checker_t *next;
};

static checker_t *checkers;

static void verdict(checker_t *ck, int ok, const char *why)
{
    if (ok) {
        ck->fail_run = 0;
        if (++ck->ok_run >= ck->u->hc_passes && atomic_exchange(&ck->st->unhealthy, 0) == 1) {
            atr_lb_server_back(ck->st, atr_now_ms()); /* slow_start from here */
            ATR_NOTICE("upstream %s: server %s passes its health check again", ck->u->name,
                       ck->name);
        }
        return;
    }
    ck->ok_run = 0;
    if (++ck->fail_run >= ck->u->hc_fails && atomic_exchange(&ck->st->unhealthy, 1) == 0)
        ATR_WARN("upstream %s: server %s fails its health check (%s %s: %s), taken out",
                 ck->u->name, ck->name, "GET", ck->u->hc_path, why);
}

static void on_probe_done(void *arg, int status, const char *why)
{
    checker_t *ck = arg;
    char buf[32];
    ck->probe = NULL;
    if (status >= 200 && status <= 399) {
        verdict(ck, 1, NULL);
        return;
    }
    if (status > 0) {
        snprintf(buf, sizeof buf, "status %d", status);
        why = buf;
    }
    verdict(ck, 0, why);
}

static void on_tick(uv_timer_t *t)
{
    checker_t *ck = t->data;
    if (ck->probe != NULL)
        return; /* the last one is still out: its timeout judges it */
    if (atomic_load(&ck->st->admin) == ATR_LB_ADMIN_DISABLED)
        return; /* maintenance: the operator took it out, checks too */
    atr_probe_spec_t spec = {
        .addr = (const struct sockaddr *)&ck->addr,
        .req = ck->req,
        .reqlen = ck->reqlen,
        .status = ck->u->protocol->probe_status,
        .tls = ck->tls,
        .tls_name = ck->tls_name,
        .timeout_ms = ck->u->hc_timeout,
    };
    ck->probe = atr_probe_start(t->loop, &spec, on_probe_done, ck);
}

static void checker_free(uv_handle_t *h)
{
    checker_t *ck = h->data;
    atr_server_state_unref(ck->st);
    free(ck->name);
    free(ck->req);
    free(ck);
}

static void checker_stop(checker_t *ck)
{
    if (ck->probe) {
        atr_probe_cancel(ck->probe); /* its verdict goes nowhere */
        ck->probe = NULL;
    }
    uv_close((uv_handle_t *)&ck->tick, checker_free);
}

void atr_health_stop(void)
{
    while (checkers) {
        checker_t *ck = checkers;
        checkers = ck->next;
        checker_stop(ck);
    }
}

/* Check member m of upstream gu. */
static void checker_start(uv_loop_t *loop, const atr_gen_upstream_t *gu, const atr_member_t *m,
                          atr_server_state_t *st)
{
    const atr_conf_upstream_t *u = gu->conf;
    /* Host: the name as written (a server added at run time: its address) */
    const char *text = m->line >= 0 ? u->servers[m->line].text : m->name;
    char *req;
    size_t len;
    req = u->protocol->probe_request(u->hc_path, strncmp(text, "unix:", 5) == 0 ? "localhost"
                                                                                : text, &len);
    if (req == NULL) {
        ATR_ERROR("upstream %s: server %s: health check path too long, not checked", u->name,
                  m->name);
        return;
    }
    checker_t *ck = atr_xcalloc(1, sizeof *ck);
    ck->u = u;
    ck->addr = m->addr;
    ck->name = atr_xstrdup(m->name);
    ck->st = st;
    ck->keep = 1;
    ck->req = req;
    ck->reqlen = len;
    if (gu->tls) {
        ck->tls = atr_tls_client_ctx(gu->tls);
        ck->tls_name = atr_tls_client_name(gu->tls, m->line);
    }
    atomic_fetch_add(&st->refs, 1);
    uv_timer_init(loop, &ck->tick);
    ck->tick.data = ck;
    /* the first probe at once, then every interval */
    uv_timer_start(&ck->tick, on_tick, 0, u->hc_interval);
    uv_unref((uv_handle_t *)&ck->tick);
    ck->next = checkers;
    checkers = ck;
}

static checker_t *checker_find(const atr_conf_upstream_t *u, const atr_server_state_t *st)
{
    for (checker_t *ck = checkers; ck; ck = ck->next)
        if (ck->u == u && ck->st == st)
            return ck;
    return NULL;
}

void atr_health_apply(uv_loop_t *loop, const atr_gen_t *g)
{
    for (int i = 0; i < g->conf->nupstreams; i++) {
        const atr_conf_upstream_t *u = &g->conf->upstreams[i];
        int checked = u->hc_path != NULL && u->protocol->probe_request != NULL;
        atr_members_t *ms = atr_gen_members(&g->ups[i]);
        for (int j = 0; j < ms->n; j++) {
            atr_server_state_t *st = ms->servers[j].state;
            checker_t *ck;
            if (!checked)
                atomic_store(&st->unhealthy, 0); /* checks removed */
            else if ((ck = checker_find(u, st)) != NULL)
                ck->keep = 1;
            else if (ms->m[j].addrlen > 0) /* a name never resolved has nothing to check */
                checker_start(loop, &g->ups[i], &ms->m[j], st);
        }
        atr_members_unref(ms);
    }
    /* Members that left (or a generation replaced): their checks stop. */
    for (checker_t **pp = &checkers; *pp;) {
        checker_t *ck = *pp;
        if (ck->keep) {
            ck->keep = 0;
            pp = &ck->next;
        } else {
            *pp = ck->next;
            checker_stop(ck);
        }
    }
}
