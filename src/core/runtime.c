/* The control loop (main thread): signals, configuration generations and
 * reload, listener sockets, the shared per-server state registry. Workers
 * receive everything through atr_worker_post. */
#include "core/runtime.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "backends/cgi.h"
#include "net/listener.h"
#include "core/supervisor.h"
#include "core/control.h"
#include "core/overrides.h"
#include "core/stapling.h"
#include "core/health.h"
#include "core/members.h"
#include "core/resolve.h"
#include "core/heartbeat.h"
#include "core/tls_setup.h"
#include "core/wait.h"
#include "net/worker.h"

typedef struct listen_key {
    char *key;
} listen_key_t;

static struct {
    uv_loop_t *loop;
    char *conf_path;
    atr_gen_t *gen;
    uint64_t next_id;
    listen_key_t *keys;
    int nkeys;
    uv_signal_t sig_hup, sig_term, sig_int, sig_usr1;
    uv_timer_t ticket_timer;   /* rotates the ticket keys made in memory */
    int stopping;
    char last_error[1024];     /* the last failed reload's message ("" = none) */
    uint64_t last_error_ms;    /* ... and when (wall clock) */
} rt;

/* ---- what the runtime API asks of the control loop (core/control.h) ---- */

static int reload(char *err, size_t errlen);
static void reopen_logs(void);
static void members_changed(const char *force);

static const atr_gen_t *running_gen(void)
{
    return rt.gen;
}

static int control_reload(char *err, size_t errlen)
{
    if (rt.stopping)
        return snprintf(err, errlen, "stopping"), -1;
    return reload(err, errlen);
}

/* Keep the run-time changes in the running config's control_state (if any). */
static int save_changes(const char **path)
{
    const char *p = rt.gen ? rt.gen->conf->control_state : NULL;
    *path = p;
    if (p == NULL)
        return 0;
    int rc = atr_overrides_save(p);
    if (rc < 0)
        ATR_ERROR("control_state %s: %s; the run-time changes are not kept for a restart", p,
                  strerror(-rc));
    return rc;
}

static const char *last_error(uint64_t *unix_ms)
{
    *unix_ms = rt.last_error_ms;
    return rt.last_error[0] ? rt.last_error : NULL;
}

static const atr_control_ops_t control_ops = {
    .gen = running_gen,
    .reload = control_reload,
    .reopen = reopen_logs,
    .members_changed = members_changed,
    .save = save_changes,
    .last_error = last_error,
};

/* ---- generations ---- */

/* A `cgi DIR;` route runs through the proxy core like any backend: an
 * internal upstream whose one "server" is the directory, whose max_conns is
 * cgi_max_procs (counted across workers and reloads by name) and whose
 * "connections" are script processes. */
static void cgi_upstreams(atr_gen_t *g)
{
    const atr_conf_t *c = g->conf;
    for (int i = 0; i < c->nhosts; i++)
        for (int j = 0; j < c->hosts[i].nroutes; j++)
            g->ncgi += c->hosts[i].routes[j].kind == ATR_ROUTE_CGI;
    g->cgi_ups = atr_xcalloc((size_t)g->ncgi, sizeof *g->cgi_ups);
    g->cgi_routes = atr_xcalloc((size_t)g->ncgi, sizeof *g->cgi_routes);
    int k = 0;
    for (int i = 0; i < c->nhosts; i++) {
        for (int j = 0; j < c->hosts[i].nroutes; j++) {
            const atr_conf_route_t *rt = &c->hosts[i].routes[j];
            if (rt->kind != ATR_ROUTE_CGI)
                continue;
            atr_conf_upstream_t *u = &g->cgi_ups[k];
            size_t n = strlen(rt->cgi_dir) + 5;
            u->name = atr_xmalloc(n);
            snprintf(u->name, n, "cgi:%s", rt->cgi_dir);
            u->protocol = &atr_backend_cgi;
            u->balance = atr_lb_ops_at(0);
            u->servers = atr_xcalloc(1, sizeof *u->servers);
            u->servers[0].text = rt->cgi_dir;
            u->servers[0].weight = 1;
            u->servers[0].max_conns = c->cgi_max_procs;
            u->servers[0].pos = rt->pos;
            u->nservers = 1;
            u->connect_timeout = c->cgi_timeout;
            u->read_timeout = c->cgi_timeout;
            u->send_timeout = c->cgi_timeout;
            u->queue = c->cgi_queue;
            u->queue_timeout = c->cgi_timeout;
            u->retries = 0;
            u->fail_timeout = 0; /* a script that cannot start is no reason to stop the others */
            u->pos = rt->pos;
            g->cgi_routes[k++] = rt;
        }
    }
}

static void gen_upstream(atr_gen_upstream_t *gu, const atr_conf_upstream_t *u)
{
    gu->conf = u;
    gu->lb_ops = u->balance;
    gu->members_ = atr_members_build(u);
}

/* A `resolve` name's addresses changed, or the operator changed servers
 * (core/control.c): the upstreams of the running generation whose members
 * differ now get the new set (and the upstream named `force`, NULL: none,
 * even when they do not), and the workers and the health checks follow. */
static void members_changed(const char *force)
{
    atr_gen_t *g = rt.gen;
    int any = 0;
    for (int i = 0; g && i < g->conf->nupstreams; i++) {
        atr_members_t *ms = atr_members_build(&g->conf->upstreams[i]);
        atr_members_t *cur = atr_gen_members(&g->ups[i]);
        if (!(force && strcmp(force, g->conf->upstreams[i].name) == 0) &&
            atr_members_same(ms, cur)) {
            atr_members_unref(ms);
        } else {
            atr_gen_set_members(&g->ups[i], ms);
            any = 1;
        }
        atr_members_unref(cur);
    }
    if (!any)
        return;
    for (int w = 0; w < atr_process.nworkers; w++)
        atr_worker_members_changed(atr_process.workers[w]);
    atr_health_apply(rt.loop, g);
    atr_states_prune();
}

static void on_names_changed(void)
{
    members_changed(NULL);
}

/* The error log file can be opened (and is, created if missing), or -1 with
 * FILE:LINE:COL: a start or reload refuses it like any other error. */
static int check_error_log(const atr_conf_t *conf, char *err, size_t errlen)
{
    if (conf->error_log == NULL || !atr_log_target_is_file(conf->error_log))
        return 0;
    int fd = atr__log_open_file(conf->error_log);
    if (fd < 0) {
        const atr_conf_pos_t *p = &conf->error_log_pos;
        snprintf(err, errlen, "%s:%d:%d: error_log %s: %s", p->file ? p->file : conf->path,
                 p->line, p->col, conf->error_log, strerror(-fd));
        return -1;
    }
    close(fd);
    return 0;
}

/* The generation's access log (NULL when off), or -1 with FILE:LINE:COL. */
static int open_access_log(const atr_conf_t *conf, atr_access_log_t **out, char *err,
                           size_t errlen)
{
    *out = NULL;
    if (conf->access_log == NULL || conf->access_format == ATR_ACCESS_OFF ||
        strcmp(conf->access_log, "off") == 0)
        return 0;
    *out = atr_access_log_open(conf->access_log, conf->access_format);
    if (*out == NULL) {
        const atr_conf_pos_t *p = &conf->access_log_pos;
        snprintf(err, errlen, "%s:%d:%d: access_log %s: %s", p->file ? p->file : conf->path,
                 p->line, p->col, conf->access_log, strerror(errno));
        return -1;
    }
    return 0;
}

/* Client connections per worker: max_connections, or by default what the
 * descriptor limit leaves once every worker's clients may have a backend
 * connection each (plus room for listeners, logs and pools). */
static int conn_cap(const atr_conf_t *conf)
{
    if (conf->max_connections > 0)
        return conf->max_connections;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return 0; /* no limit to derive one from */
    long workers = atr_process.nworkers > 0 ? atr_process.nworkers : 1;
    long n = ((long)rl.rlim_cur - 64) / (2L * workers);
    return n < 16 ? 16 : n > 10000000 ? 10000000 : (int)n;
}

static atr_gen_t *gen_build(atr_conf_t *conf, char *err, size_t errlen)
{
    atr_gen_t *g = atr_xcalloc(1, sizeof *g);
    atomic_store(&g->refs, 1);
    g->id = ++rt.next_id;
    g->conf = conf;
    if (open_access_log(conf, &g->access_log, err, errlen) < 0) {
        g->conf = NULL;
        free(g);
        return NULL;
    }
    cgi_upstreams(g);
    g->nups = conf->nupstreams + g->ncgi;
    g->ups = atr_xcalloc((size_t)g->nups, sizeof *g->ups);
    for (int i = 0; i < conf->nupstreams; i++)
        gen_upstream(&g->ups[i], &conf->upstreams[i]);
    for (int k = 0; k < g->ncgi; k++)
        gen_upstream(&g->ups[conf->nupstreams + k], &g->cgi_ups[k]);
    g->max_conns = conn_cap(conf);
    g->req_limits.max_request_line = conf->max_request_line;
    g->req_limits.max_head = conf->max_header_size;
    g->req_limits.max_headers = conf->max_headers;
    g->resp_limits.max_request_line = conf->max_header_size;
    g->resp_limits.max_head = conf->max_header_size;
    g->resp_limits.max_headers = ATR_HTTP_MAX_HEADERS_HARD;
    g->default_host = conf->nhosts ? &conf->hosts[0] : NULL;
    g->only_default_host = 1;
    for (int i = 0; i < conf->nhosts; i++)
        for (int j = 0; j < conf->hosts[i].nnames; j++) {
            if (strcmp(conf->hosts[i].names[j], "*") == 0)
                g->default_host = &conf->hosts[i];
            else
                g->only_default_host = 0;
        }
    return g;
}

/* ---- listeners ---- */

static int have_key(const char *key)
{
    for (int i = 0; i < rt.nkeys; i++)
        if (strcmp(rt.keys[i].key, key) == 0)
            return 1;
    return 0;
}

static void free_sets(atr_listen_fd_t **sets, int nlistens)
{
    for (int w = 0; w < atr_process.nworkers; w++) {
        for (int k = 0; k < nlistens; k++) {
            if (sets[w][k].fd >= 0)
                close(sets[w][k].fd);
            free(sets[w][k].key);
        }
        free(sets[w]);
    }
    free(sets);
}

static void listen_error(const atr_conf_listen_t *l, int fd, char *err, size_t errlen)
{
    if (fd == -EADDRINUSE)
        snprintf(err, errlen, "%s:%d:%d: cannot listen on %s: another process listens there "
                 "(a second Atrium would split its traffic)", l->pos.file, l->pos.line, l->pos.col,
                 l->text);
    else
        snprintf(err, errlen, "%s:%d:%d: cannot listen on %s: %s", l->pos.file, l->pos.line,
                 l->pos.col, l->text, strerror(-fd));
}

/* For each worker, the listener set of conf: fds for new addresses (bound
 * here, now), -1 for addresses it already listens on. On failure nothing is
 * kept and err says which listen failed. */
static atr_listen_fd_t **listen_sets(const atr_conf_t *conf, char *err, size_t errlen)
{
    int n = conf->nlistens, nw = atr_process.nworkers;
    atr_listen_fd_t **sets = atr_xcalloc((size_t)nw, sizeof *sets);
    for (int w = 0; w < nw; w++) {
        sets[w] = atr_xcalloc((size_t)n, sizeof **sets);
        for (int i = 0; i < n; i++)
            sets[w][i].fd = -1; /* not 0: a failure frees what was not reached yet */
    }
    for (int i = 0; i < n; i++) {
        const atr_conf_listen_t *l = &conf->listens[i];
        char key[80];
        atr_sockaddr_text(&l->addr, key, sizeof key);
        int fresh = !have_key(key);
        int probe = fresh ? atr_listener_probe((const struct sockaddr *)&l->addr, l->addrlen) : 0;
        if (probe == -EADDRINUSE) { /* before SO_REUSEPORT would let us in beside it */
            listen_error(l, probe, err, errlen);
            free_sets(sets, n);
            return NULL;
        }
        for (int w = 0; w < nw; w++) {
            sets[w][i].key = atr_xstrdup(key);
            if (!fresh)
                continue;
            int fd = atr_listener_socket((const struct sockaddr *)&l->addr, l->addrlen, l->tls);
            if (fd < 0) {
                listen_error(l, fd, err, errlen);
                free_sets(sets, n);
                return NULL;
            }
            sets[w][i].fd = fd;
        }
    }
    return sets;
}

static void remember_keys(const atr_conf_t *conf)
{
    for (int i = 0; i < rt.nkeys; i++)
        free(rt.keys[i].key);
    free(rt.keys);
    rt.keys = atr_xcalloc((size_t)conf->nlistens, sizeof *rt.keys);
    rt.nkeys = conf->nlistens;
    for (int i = 0; i < conf->nlistens; i++) {
        char key[80];
        atr_sockaddr_text(&conf->listens[i].addr, key, sizeof key);
        rt.keys[i].key = atr_xstrdup(key);
    }
}

/* ---- applying a configuration ---- */

/* A file (a unix socket: doing "listen on", a file: "write") can be made at
 * path: its directory is writable; or -1 with "FILE:LINE:COL: what: cannot
 * DOING SHOWN: reason" in err. */
static int dir_check(const char *path, const char *shown, const atr_conf_pos_t *pos,
                     const char *what, const char *doing, char *err, size_t errlen)
{
    char dir[sizeof ((struct sockaddr_un *)0)->sun_path];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    if (access(dir, W_OK | X_OK) == 0)
        return 0;
    snprintf(err, errlen, "%s:%d:%d: %s: cannot %s %s: %s", pos->file, pos->line, pos->col,
             what, doing, shown, strerror(errno));
    return -1;
}

int atr_runtime_check(const atr_conf_t *conf, char *err, size_t errlen)
{
    for (int i = 0; i < conf->nlistens; i++) {
        const atr_conf_listen_t *l = &conf->listens[i];
        if (atr_listener_probe((const struct sockaddr *)&l->addr, l->addrlen) == -EADDRINUSE)
            /* A warning: -t often checks the config of the very process that
             * listens there, before reloading it. */
            fprintf(stderr, "%s:%d:%d: warning: another process listens on %s: a start would fail "
                    "(a reload of that process would not)\n", l->pos.file, l->pos.line, l->pos.col,
                    l->text);
        int fd = atr_listener_socket((const struct sockaddr *)&l->addr, l->addrlen, l->tls);
        if (fd < 0) {
            listen_error(l, fd, err, errlen);
            return -1;
        }
        close(fd);
    }
    if (check_error_log(conf, err, errlen) < 0 || atr_tls_check(conf, err, errlen) < 0 ||
        atr_heartbeat_check(conf, err, errlen) < 0)
        return -1;
    atr_resolve_check(conf, stderr); /* a name that does not resolve is a warning, not an error */
    /* What a start opens that binding alone does not show: the access log, and
     * the directory of a spawned set's unix socket (not bound here: that
     * would disturb a running instance's socket). */
    atr_access_log_t *al;
    if (open_access_log(conf, &al, err, errlen) < 0)
        return -1;
    if (al)
        atr_access_log_unref(al);
    for (int i = 0; i < conf->nupstreams; i++) {
        const atr_conf_upstream_t *u = &conf->upstreams[i];
        if (u->spawn_argv != NULL && u->servers[0].addr.ss_family == AF_UNIX &&
            dir_check(((const struct sockaddr_un *)&u->servers[0].addr)->sun_path,
                      u->servers[0].text, &u->spawn_pos, "spawn", "listen on", err, errlen) < 0)
            return -1;
    }
    if (conf->control != NULL &&
        dir_check(conf->control, conf->control, &conf->control_pos, "control", "listen on", err,
                  errlen) < 0)
        return -1;
    if (conf->control_state != NULL &&
        dir_check(conf->control_state, conf->control_state, &conf->control_state_pos, "control_state",
                  "write", err, errlen) < 0)
        return -1;
    return 0;
}

/* Build, bind and hand out a generation. Takes conf. 0 or -1 with err.
 * Everything that can fail comes before anything that changes what runs:
 * listeners are bound and the generation built first, then the application
 * processes are started (on sockets of their own, ready before the first
 * request can reach them), then it is all committed. */
static int apply(atr_conf_t *conf, char *err, size_t errlen)
{
    const atr_conf_t *running = rt.gen ? rt.gen->conf : NULL;
    /* At start a control socket that cannot be opened stops the start (the
     * operator asked for it); a reload keeps the one it has (below). */
    if (check_error_log(conf, err, errlen) < 0 ||
        (running == NULL && atr_control_apply(rt.loop, conf, &control_ops, err, errlen) < 0)) {
        atr_conf_free(conf);
        return -1;
    }
    atr_listen_fd_t **sets = listen_sets(conf, err, errlen);
    if (sets == NULL) {
        atr_conf_free(conf);
        return -1;
    }
    /* The operator's changes the new file overrules are left out of its
     * members; dropped only if it comes into force. */
    atr_overrides_begin(conf);
    atr_gen_t *g = gen_build(conf, err, errlen);
    if (g == NULL) {
        atr_overrides_abort();
        free_sets(sets, conf->nlistens);
        atr_conf_free(conf);
        return -1;
    }
    atr_tls_ticket_keys_t keys;
    if (atr_tls_gen_build(g, &keys, err, errlen) < 0) {
        atr_overrides_abort();
        free_sets(sets, conf->nlistens);
        atr_gen_unref(g); /* owns conf */
        return -1;
    }
    if (atr_heartbeat_prepare(conf, err, errlen) < 0) {
        atr_overrides_abort();
        free_sets(sets, conf->nlistens);
        atr_gen_unref(g); /* owns conf */
        return -1;
    }
    if (atr_spawn_apply(rt.loop, conf, err, errlen) < 0) {
        atr_heartbeat_abort();
        atr_overrides_abort();
        atr_spawn_prune(running); /* the sets this configuration started */
        free_sets(sets, conf->nlistens);
        atr_gen_unref(g);        /* owns conf */
        return -1;
    }
    atr_spawn_commit();
    atr_overrides_commit();
    if (running != NULL && atr_control_apply(rt.loop, conf, &control_ops, err, errlen) < 0) {
        ATR_ERROR("%s; the control socket stays as it was", err);
        err[0] = '\0';
    }
    /* The generation's members come from the answers known now; names new
     * to this config are asked for now and fill in as they answer. */
    atr_resolve_apply(rt.loop, conf, on_names_changed);
    if (atr_log_open(conf->error_log, conf->error_level) < 0)
        ATR_ERROR("error_log %s: cannot open, keeping the current one", conf->error_log);
    atr_tls_gen_session_cache(g);
    atr_tls_gen_commit(g, &keys, uv_now(rt.loop));
    atr_stapling_use(rt.loop, g); /* staples still valid are set before workers see g */
    for (int w = 0; w < atr_process.nworkers; w++)
        atr_worker_post(atr_process.workers[w], g, sets[w], conf->nlistens);
    free(sets);
    remember_keys(conf);
    atr_health_apply(rt.loop, g); /* before the generation before is let go: checks point into it */
    atr_heartbeat_apply(rt.loop, g); /* likewise: beats are published into g's servers */
    if (rt.gen)
        atr_gen_unref(rt.gen);
    rt.gen = g;
    atr_spawn_prune(g->conf);
    atr_states_prune();
    return 0;
}

/* Read the config file again and put it in force: 0, or -1 with the reason
 * in err (the running generation keeps serving). */
static int reload(char *err, size_t errlen)
{
    atr_conf_t *conf = atr_conf_load(rt.conf_path, err, errlen);
    if (conf == NULL || apply(conf, err, errlen) < 0) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        atomic_fetch_add(&atr_process.reloads_failed, 1);
        ATR_ERROR("reload failed, keeping generation %llu: %s",
                  (unsigned long long)rt.gen->id, err);
        snprintf(rt.last_error, sizeof rt.last_error, "%s", err);
        rt.last_error_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
        return -1;
    }
    if (rt.gen->conf->workers != 0 && rt.gen->conf->workers != atr_process.nworkers)
        ATR_NOTICE("reload: 'workers' changes take effect at the next start");
    atomic_fetch_add(&atr_process.reloads_ok, 1);
    ATR_NOTICE("reload: generation %llu active", (unsigned long long)rt.gen->id);
    const char *path;
    save_changes(&path); /* what the new file overruled is gone from it too */
    return 0;
}

static void stop_all(void)
{
    if (rt.stopping)
        return;
    rt.stopping = 1;
    ATR_NOTICE("stopping: draining connections");
    atr_heartbeat_drain(); /* balancers hear ready=0 before the listeners close */
    atr_control_stop();
    atr_stapling_stop();
    atr_resolve_stop();
    for (int w = 0; w < atr_process.nworkers; w++)
        atr_worker_stop(atr_process.workers[w]);
    atr_spawn_stop_all();
    /* The handlers stay installed while the workers drain (closed, the default
     * action would come back: a logrotate SIGUSR1 or a SIGHUP would kill the
     * process and cut the requests in flight); unref'd, they do not keep the
     * loop running. */
    uv_unref((uv_handle_t *)&rt.sig_hup);
    uv_unref((uv_handle_t *)&rt.sig_term);
    uv_unref((uv_handle_t *)&rt.sig_int);
    uv_unref((uv_handle_t *)&rt.sig_usr1);
}

static void reopen_logs(void)
{
    int rc = atr_log_reopen();
    if (rc < 0) {
        /* it keeps writing to the old file; say so where someone will see it */
        ATR_ERROR("error_log: reopen failed: %s", strerror(-rc));
        fprintf(stderr, "atrium: error_log: reopen failed: %s\n", strerror(-rc));
    }
    atr_access_log_reopen_all();
    ATR_NOTICE("log files reopened");
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    switch (signum) {
    case SIGHUP: {
        char err[1024] = "";
        if (rt.stopping)
            ATR_NOTICE("reload ignored: stopping");
        else
            reload(err, sizeof err);
        break;
    }
    case SIGUSR1:
        reopen_logs();
        break;
    default:
        stop_all();
        break;
    }
}

static void on_ticket_timer(uv_timer_t *t)
{
    if (rt.gen)
        atr_tls_tickets_rotate(uv_now(t->loop), rt.gen->conf->tls_ticket_rotate);
}

static int drop_privileges(const char *user)
{
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        ATR_ERROR("user %s: no such user", user);
        return -1;
    }
    if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
        ATR_ERROR("user %s: %s", user, strerror(errno));
        return -1;
    }
    return 0;
}

static int cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static uv_signal_t *const signals[] = { &rt.sig_hup, &rt.sig_term, &rt.sig_int, &rt.sig_usr1 };
static const int signums[] = { SIGHUP, SIGTERM, SIGINT, SIGUSR1 };

static void watch_signals(void)
{
    for (size_t i = 0; i < ATR_ARRAY_SIZE(signals); i++) {
        uv_signal_init(rt.loop, signals[i]);
        uv_signal_start(signals[i], on_signal, signums[i]);
    }
}

static void unwatch_signals(void)
{
    for (size_t i = 0; i < ATR_ARRAY_SIZE(signals); i++)
        uv_close((uv_handle_t *)signals[i], NULL);
    uv_close((uv_handle_t *)&rt.ticket_timer, NULL);
    atr_health_stop();
    atr_heartbeat_stop();
}

static void write_pid_file(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        ATR_ERROR("pid_file %s: %s", path, strerror(errno));
        return;
    }
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
}

/* After the last worker: the generation, the server states, the listener keys. */
static void release_state(void)
{
    atr_stapling_stop();
    atr_gen_unref(rt.gen);
    rt.gen = NULL;
    atr_tls_release();
    atr_resolve_stop();
    atr_overrides_free();
    atr_states_free();
    for (int i = 0; i < rt.nkeys; i++)
        free(rt.keys[i].key);
    free(rt.keys);
}

static int workers_ready(void)
{
    return atomic_load(&atr_process.workers_ready) >= atr_process.nworkers;
}

int atr_runtime_run(atr_conf_t *conf)
{
    char err[1024] = "";
    signal(SIGPIPE, SIG_IGN);
    rt.loop = uv_default_loop();
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    atr_process.start_unix_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
    rt.conf_path = atr_xstrdup(conf->path);
    if (atr_log_open(conf->error_log, conf->error_level) < 0)
        fprintf(stderr, "atrium: error_log %s: cannot open\n", conf->error_log);

    atr_process.nworkers = conf->workers > 0 ? conf->workers : cpu_count();
    atr_process.workers = atr_xcalloc((size_t)atr_process.nworkers, sizeof *atr_process.workers);
    for (int i = 0; i < atr_process.nworkers; i++)
        atr_process.workers[i] = atr_worker_new(i + 1);

    /* Handlers first: a signal that arrives the moment a listener accepts
     * is queued for the loop instead of killing the process. */
    watch_signals();
    const char *user = conf->user ? atr_xstrdup(conf->user) : NULL;
    const char *pid_file = conf->pid_file ? atr_xstrdup(conf->pid_file) : NULL;
    if (user && getuid() == 0) {
        struct passwd *pw = getpwnam(user);
        if (pw == NULL) {
            fprintf(stderr, "atrium: user %s: no such user\n", user);
            if (!atr_log_to_stderr())
                ATR_ERROR("user %s: no such user", user);
            return 1;
        }
        atr_spawn_set_user(pw->pw_uid, pw->pw_gid); /* the children never run as root */
        atr_control_set_owner(pw->pw_uid, pw->pw_gid);
    } else if (user) {
        ATR_WARN("user %s: ignored, atrium was not started as root", user);
    }
    /* The changes a restart keeps (control_state), before the first members
     * are built: the config then overrules what its file changed meanwhile. */
    if (conf->control_state != NULL && atr_overrides_load(conf->control_state, err, sizeof err) < 0)
        ATR_WARN("%s", err);
    err[0] = '\0';
    if (apply(conf, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err); /* FILE:LINE:COL first on the line */
        if (!atr_log_to_stderr())    /* and in the log file, not twice on the terminal */
            ATR_ERROR("%s", err);
        return 1;
    }
    const char *state_path;
    save_changes(&state_path); /* without what the config overruled */
    /* The first staples before the first client (bounded: a responder that
     * does not answer delays the start by at most this, then staples late). */
    atr_stapling_wait_first(rt.loop, ATR_STAPLING_TIMEOUT_MS + 500);
    /* The first DNS answers too (each lookup is bounded: 2 tries of 1 s). */
    atr_resolve_wait_first(rt.loop, 2500);
    if (pid_file) /* before the privilege drop: its directory is often root's */
        write_pid_file(pid_file);
    if (user && getuid() == 0 && drop_privileges(user) < 0)
        return 1;
    for (int i = 0; i < atr_process.nworkers; i++)
        atr_worker_start(atr_process.workers[i]);
    uv_timer_init(rt.loop, &rt.ticket_timer);
    uv_timer_start(&rt.ticket_timer, on_ticket_timer, 60000, 60000);
    uv_unref((uv_handle_t *)&rt.ticket_timer);

    /* "started" means listening: each worker takes its first generation and
     * listeners on its own loop (a few milliseconds; bounded). */
    atr_wait_until(rt.loop, 5000, workers_ready);
    ATR_NOTICE("atrium %s started: %d worker(s), generation %llu", ATR_VERSION,
               atr_process.nworkers, (unsigned long long)rt.gen->id);

    uv_run(rt.loop, UV_RUN_DEFAULT);

    /* The workers drain here; the signal handlers stay installed until they
     * are done (signals that come meanwhile are caught and dropped). */
    for (int i = 0; i < atr_process.nworkers; i++)
        atr_worker_join_free(atr_process.workers[i]);
    unwatch_signals();
    uv_run(rt.loop, UV_RUN_DEFAULT); /* the close callbacks */
    free(atr_process.workers);
    release_state();
    if (pid_file)
        unlink(pid_file);
    free((void *)pid_file);
    free((void *)user);
    free(rt.conf_path);
    uv_loop_close(rt.loop);
    ATR_NOTICE("stopped");
    return 0;
}
