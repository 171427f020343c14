/* Active health checks (`health_check` in an upstream), on the control loop:
 * every interval, one HTTP/1.0 GET of the path to each server of the
 * running generation; a 2xx or 3xx status line within the timeout passes,
 * anything else (refused, reset, timeout, another status) fails. `fails`
 * failures in a row take the server out of every worker's choice (its shared
 * state's `unhealthy`), `passes` passes in a row bring it back; each change
 * is logged once. A reload stops the checkers and starts the new
 * generation's; the state lives with the server's shared state, which
 * reloads carry over by name, so a server's health survives them. */
#include "core/health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "base/log.h"
#include "base/util.h"

typedef struct checker checker_t;

/* One probe: connect, send, read the status line. */
typedef struct probe {
    union {
        uv_handle_t h;
        uv_stream_t s;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } io;
    uv_connect_t creq;
    uv_write_t wreq;
    uv_timer_t timer;
    checker_t *ck;       /* NULL once the checker is gone */
    int handles;         /* open: freed at 0 */
    int done;
    char buf[128];
    size_t n;
} probe_t;

struct checker {
    uv_timer_t tick;
    const atr_conf_upstream_t *u;
    struct sockaddr_storage addr; /* the member's */
    char *name;               /* the member's, for the log */
    atr_server_state_t *st;   /* ref held; the member's identity */
    int keep;                 /* still a member (atr_health_apply's sweep) */
    probe_t *probe;           /* in flight, or NULL */
    char *req;
    size_t reqlen;
    int ok_run, fail_run;
    checker_t *next;
};

static checker_t *checkers;

static void probe_closed(uv_handle_t *h)
{
    probe_t *p = h->data;
    if (--p->handles == 0)
        free(p);
}

static void verdict(checker_t *ck, int ok, const char *why)
{
    if (ok) {
        ck->fail_run = 0;
        if (++ck->ok_run >= ck->u->hc_passes && atomic_exchange(&ck->st->unhealthy, 0) == 1)
            ATR_NOTICE("upstream %s: server %s passes its health check again", ck->u->name,
                       ck->name);
        return;
    }
    ck->ok_run = 0;
    if (++ck->fail_run >= ck->u->hc_fails && atomic_exchange(&ck->st->unhealthy, 1) == 0)
        ATR_WARN("upstream %s: server %s fails its health check (%s %s: %s), taken out",
                 ck->u->name, ck->name, "GET", ck->u->hc_path, why);
}

/* The probe's end: once, whatever ended it. */
static void finish(probe_t *p, int ok, const char *why)
{
    if (p->done)
        return;
    p->done = 1;
    if (p->ck) {
        p->ck->probe = NULL;
        verdict(p->ck, ok, why);
    }
    uv_close(&p->io.h, probe_closed);
    uv_close((uv_handle_t *)&p->timer, probe_closed);
}

static void on_probe_timeout(uv_timer_t *t)
{
    finish(t->data, 0, "timed out");
}

static void probe_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    probe_t *p = h->data;
    (void)suggested;
    *buf = uv_buf_init(p->buf + p->n, (unsigned)(sizeof p->buf - 1 - p->n));
}

/* "HTTP/1.x NNN ..." once the first line is in. */
static void probe_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    probe_t *p = s->data;
    (void)buf;
    if (nread < 0) {
        finish(p, 0, nread == UV_EOF ? "closed without a status line" : uv_strerror((int)nread));
        return;
    }
    p->n += (size_t)nread;
    p->buf[p->n] = '\0';
    if (strchr(p->buf, '\n') == NULL && p->n < sizeof p->buf - 1)
        return;
    int status = 0;
    if (strncmp(p->buf, "HTTP/1.", 7) != 0 || sscanf(p->buf + 8, " %3d", &status) != 1)
        finish(p, 0, "not an HTTP response");
    else if (status < 200 || status > 399)
        finish(p, 0, status >= 500 ? "status 5xx" : "status 4xx or 1xx");
    else
        finish(p, 1, NULL);
}

static void probe_written(uv_write_t *w, int status)
{
    probe_t *p = w->data;
    if (status < 0)
        finish(p, 0, uv_strerror(status));
}

static void probe_connected(uv_connect_t *c, int status)
{
    probe_t *p = c->data;
    if (p->done)
        return;
    if (status < 0 || p->ck == NULL) {
        finish(p, 0, status < 0 ? uv_strerror(status) : "stopped");
        return;
    }
    uv_buf_t b = uv_buf_init(p->ck->req, (unsigned)p->ck->reqlen);
    p->wreq.data = p;
    if (uv_write(&p->wreq, &p->io.s, &b, 1, probe_written) < 0 ||
        uv_read_start(&p->io.s, probe_alloc, probe_read) < 0)
        finish(p, 0, "cannot send");
}

static void probe_start(checker_t *ck)
{
    uv_loop_t *loop = ck->tick.loop;
    probe_t *p = atr_xcalloc(1, sizeof *p);
    const struct sockaddr *addr = (const struct sockaddr *)&ck->addr;
    p->ck = ck;
    p->handles = 2;
    p->io.h.data = p;
    p->timer.data = p;
    p->creq.data = p;
    uv_timer_init(loop, &p->timer);
    uv_timer_start(&p->timer, on_probe_timeout, ck->u->hc_timeout, 0);
    ck->probe = p;
    if (addr->sa_family == AF_UNIX) {
        uv_pipe_init(loop, &p->io.pipe, 0);
        uv_pipe_connect(&p->creq, &p->io.pipe, ((const struct sockaddr_un *)addr)->sun_path,
                        probe_connected);
        return;
    }
    uv_tcp_init(loop, &p->io.tcp);
    int rc = uv_tcp_connect(&p->creq, &p->io.tcp, addr, probe_connected);
    if (rc < 0)
        finish(p, 0, uv_strerror(rc));
}

static void on_tick(uv_timer_t *t)
{
    checker_t *ck = t->data;
    if (ck->probe == NULL)
        probe_start(ck);
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
        probe_t *p = ck->probe;
        p->ck = NULL; /* its verdict goes nowhere */
        ck->probe = NULL;
        finish(p, 0, "stopped");
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

/* Check member m of u (its `server` line: sv). */
static void checker_start(uv_loop_t *loop, const atr_conf_upstream_t *u, const atr_member_t *m,
                          atr_server_state_t *st)
{
    const char *text = u->servers[m->line].text; /* Host: the name as written */
    checker_t *ck = atr_xcalloc(1, sizeof *ck);
    ck->u = u;
    ck->addr = m->addr;
    ck->name = atr_xstrdup(m->name);
    ck->st = st;
    ck->keep = 1;
    atomic_fetch_add(&st->refs, 1);
    size_t n = strlen(u->hc_path) + strlen(text) + 128;
    ck->req = atr_xmalloc(n);
    ck->reqlen = (size_t)snprintf(ck->req, n, "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: atrium "
                                  "health check\r\nConnection: close\r\n\r\n", u->hc_path,
                                  strncmp(text, "unix:", 5) == 0 ? "localhost" : text);
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
        atr_members_t *ms = atr_gen_members(&g->ups[i]);
        for (int j = 0; j < ms->n; j++) {
            atr_server_state_t *st = ms->servers[j].state;
            checker_t *ck;
            if (!u->hc_path)
                atomic_store(&st->unhealthy, 0); /* checks removed */
            else if ((ck = checker_find(u, st)) != NULL)
                ck->keep = 1;
            else if (ms->m[j].addrlen > 0) /* a name never resolved has nothing to check */
                checker_start(loop, u, &ms->m[j], st);
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
