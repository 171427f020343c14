/* Upstreams that run their own application processes (`spawn COMMAND
 * children=N;`, seeds: Apache's fcgistarter, lighttpd's unified process
 * spawning). The control loop owns them: it creates the upstream server's
 * listening socket, starts N children with that socket as fd 0 (the FastCGI
 * convention), restarts a child that dies with a growing backoff, keeps the
 * whole set across a reload that leaves it unchanged, and stops it (SIGTERM,
 * then SIGKILL) when a reload drops it or Atrium stops. */
#include "core/supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define STABLE_MS 10000     /* a child that ran this long restarts at once again */
#define KILL_GRACE_MS 2000

typedef struct supervisor supervisor_t;

typedef struct child {
    uv_process_t proc;
    uv_timer_t restart;
    supervisor_t *sv;
    int running;
    uint64_t started;
    uint64_t backoff;
} child_t;

struct supervisor {
    char *key;               /* upstream, command, children, socket: unchanged = kept */
    char *name;              /* upstream name, for logs */
    char **argv;
    int nchildren;
    child_t *children;
    int fd;                  /* the listening socket the children accept on */
    char *addr;              /* the server address text (a changed TCP set shares the socket) */
    char *unix_path;         /* unlinked when the supervisor ends (if still ours) */
    char *unix_tmp;          /* bound here until the configuration is committed */
    ino_t unix_ino;
    int stopping;
    int handles;             /* open uv handles; freed at 0 once stopping */
    uv_timer_t kill_timer;
    supervisor_t *next;
};

static supervisor_t *all;
static uv_loop_t *loop;
static int run_as;           /* `user`: children run as uid/gid (Atrium started as root) */
static uv_uid_t run_uid;
static uv_gid_t run_gid;

static void start_child(child_t *ch);

static char *make_key(const atr_conf_upstream_t *u)
{
    size_t n = strlen(u->name) + strlen(u->servers[0].text) + 32;
    for (int i = 0; u->spawn_argv[i]; i++)
        n += strlen(u->spawn_argv[i]) + 1;
    char *k = atr_xmalloc(n);
    int off = snprintf(k, n, "%s|%s|%d|", u->name, u->servers[0].text, u->spawn_children);
    for (int i = 0; u->spawn_argv[i]; i++)
        off += snprintf(k + off, n - (size_t)off, "%s ", u->spawn_argv[i]);
    return k;
}

/* A unix socket is bound at PATH.new and renamed onto PATH when the whole
 * configuration is committed (atr_spawn_commit): a reload that fails later
 * leaves the running set's socket file alone. */
static int listen_socket(const atr_conf_server_t *s, char **unix_path, char **unix_tmp)
{
    struct sockaddr_storage addr = s->addr;
    int fd;
    int on = 1;
    if (s->addr.ss_family == AF_UNIX) {
        struct sockaddr_un *un = (struct sockaddr_un *)&addr;
        size_t n = strlen(un->sun_path);
        if (n + 4 >= sizeof un->sun_path)
            return -ENAMETOOLONG;
        *unix_path = atr_xstrdup(un->sun_path);
        memcpy(un->sun_path + n, ".new", 5);
        *unix_tmp = atr_xstrdup(un->sun_path);
        unlink(*unix_tmp); /* a stale one from an earlier attempt */
    }
    fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (s->addr.ss_family != AF_UNIX)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    socklen_t len = s->addr.ss_family == AF_UNIX ? (socklen_t)sizeof(struct sockaddr_un) : s->addrlen;
    if (bind(fd, (const struct sockaddr *)&addr, len) < 0 || listen(fd, 1024) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    if (*unix_tmp) {
        chmod(*unix_tmp, 0660);
        /* Atrium connects to it after dropping privileges */
        if (run_as && chown(*unix_tmp, run_uid, run_gid) < 0)
            ATR_WARN("spawn: chown %s: %s", *unix_tmp, strerror(errno));
    }
    return fd;
}

static void sv_maybe_free(supervisor_t *sv)
{
    if (!sv->stopping || sv->handles > 0)
        return;
    if (sv->fd >= 0)
        close(sv->fd);
    struct stat st;
    /* A changed set bound the same path anew: leave its socket alone. */
    if (sv->unix_tmp)
        unlink(sv->unix_tmp); /* never committed */
    else if (sv->unix_path && stat(sv->unix_path, &st) == 0 && st.st_ino == sv->unix_ino)
        unlink(sv->unix_path);
    ATR_INFO("upstream %s: spawned children stopped", sv->name);
    for (int i = 0; sv->argv[i]; i++)
        free(sv->argv[i]);
    free(sv->argv);
    free(sv->children);
    free(sv->unix_path);
    free(sv->unix_tmp);
    free(sv->addr);
    free(sv->name);
    free(sv->key);
    free(sv);
}

static void on_closed(uv_handle_t *h)
{
    supervisor_t *sv = h->data;
    sv->handles--;
    sv_maybe_free(sv);
}

static void on_restart(uv_timer_t *t)
{
    child_t *ch = (child_t *)((char *)t - offsetof(child_t, restart));
    if (!ch->sv->stopping)
        start_child(ch);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
    child_t *ch = (child_t *)p;
    supervisor_t *sv = ch->sv;
    ch->running = 0;
    uv_close((uv_handle_t *)&ch->proc, on_closed);
    if (sv->stopping) {
        int running = 0;
        for (int i = 0; i < sv->nchildren; i++)
            running += sv->children[i].running;
        if (running == 0)
            uv_close((uv_handle_t *)&sv->kill_timer, on_closed); /* no SIGKILL needed */
        return;
    }
    uint64_t ran = uv_now(loop) - ch->started;
    ch->backoff = ran >= STABLE_MS ? BACKOFF_MIN_MS
                                   : ATR_MIN(ATR_MAX(ch->backoff * 2, BACKOFF_MIN_MS), BACKOFF_MAX_MS);
    ATR_WARN("upstream %s: child %d exited (%s %lld) after %llums; restarting in %llums", sv->name,
             (int)(ch - sv->children), sig ? "signal" : "status", (long long)(sig ? sig : status),
             (unsigned long long)ran, (unsigned long long)ch->backoff);
    uv_timer_start(&ch->restart, on_restart, ch->backoff, 0);
}

static void start_child(child_t *ch)
{
    supervisor_t *sv = ch->sv;
    static char *env[] = { "PATH=/usr/local/bin:/usr/bin:/bin", NULL };
    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_INHERIT_FD;
    stdio[0].data.fd = sv->fd;
    stdio[1].flags = UV_IGNORE;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;
    uv_process_options_t o;
    memset(&o, 0, sizeof o);
    o.file = sv->argv[0];
    o.args = sv->argv;
    o.env = env;
    o.exit_cb = on_exit_cb;
    o.stdio = stdio;
    o.stdio_count = 3;
    o.flags = UV_PROCESS_DETACHED; /* its own group: stopping it stops what it started */
    if (run_as) {
        /* as `user`, like Atrium after its privilege drop (which can then stop it) */
        o.flags |= UV_PROCESS_SETUID | UV_PROCESS_SETGID;
        o.uid = run_uid;
        o.gid = run_gid;
    }
    ch->started = uv_now(loop);
    int rc = uv_spawn(loop, &ch->proc, &o);
    if (rc < 0) {
        ATR_ERROR("upstream %s: cannot start %s: %s", sv->name, sv->argv[0], uv_strerror(rc));
        uv_close((uv_handle_t *)&ch->proc, on_closed);
        ch->backoff = ATR_MIN(ATR_MAX(ch->backoff * 2, BACKOFF_MIN_MS), BACKOFF_MAX_MS);
        uv_timer_start(&ch->restart, on_restart, ch->backoff, 0);
    } else {
        ch->running = 1;
    }
    sv->handles++; /* the process handle (closed in on_exit_cb or above) */
}

/* A running TCP set on the same address: a changed set takes over its socket
 * (binding it again would fail while the old children still hold it). */
static int shared_tcp_socket(const atr_conf_server_t *s)
{
    if (s->addr.ss_family == AF_UNIX)
        return -1;
    for (supervisor_t *sv = all; sv; sv = sv->next)
        if (!sv->stopping && strcmp(sv->addr, s->text) == 0)
            return fcntl(sv->fd, F_DUPFD_CLOEXEC, 0);
    return -1;
}

static supervisor_t *sv_start(const atr_conf_upstream_t *u, char *key, char *err, size_t errlen)
{
    char *unix_path = NULL, *unix_tmp = NULL;
    int fd = shared_tcp_socket(&u->servers[0]);
    if (fd < 0)
        fd = listen_socket(&u->servers[0], &unix_path, &unix_tmp);
    if (fd < 0) {
        snprintf(err, errlen, "%s:%d:%d: spawn: cannot listen on %s: %s", u->spawn_pos.file,
                 u->spawn_pos.line, u->spawn_pos.col, u->servers[0].text, strerror(-fd));
        if (unix_tmp)
            unlink(unix_tmp);
        free(unix_path);
        free(unix_tmp);
        return NULL;
    }
    supervisor_t *sv = atr_xcalloc(1, sizeof *sv);
    sv->key = key;
    sv->name = atr_xstrdup(u->name);
    sv->addr = atr_xstrdup(u->servers[0].text);
    sv->fd = fd;
    sv->unix_path = unix_path;
    sv->unix_tmp = unix_tmp;
    int argc = 0;
    while (u->spawn_argv[argc])
        argc++;
    sv->argv = atr_xcalloc((size_t)argc + 1, sizeof *sv->argv);
    for (int i = 0; i < argc; i++)
        sv->argv[i] = atr_xstrdup(u->spawn_argv[i]);
    sv->nchildren = u->spawn_children;
    sv->children = atr_xcalloc((size_t)sv->nchildren, sizeof *sv->children);
    uv_timer_init(loop, &sv->kill_timer);
    sv->kill_timer.data = sv;
    sv->handles = 1;
    for (int i = 0; i < sv->nchildren; i++) {
        child_t *ch = &sv->children[i];
        ch->sv = sv;
        uv_timer_init(loop, &ch->restart);
        ch->restart.data = sv;
        ch->proc.data = sv;
        sv->handles++;
        start_child(ch);
    }
    ATR_NOTICE("upstream %s: started %d x %s on %s", sv->name, sv->nchildren, sv->argv[0],
               u->servers[0].text);
    return sv;
}

static void on_kill(uv_timer_t *t)
{
    supervisor_t *sv = t->data;
    for (int i = 0; i < sv->nchildren; i++)
        if (sv->children[i].running && kill(-sv->children[i].proc.pid, SIGKILL) < 0)
            ATR_WARN("upstream %s: cannot kill child %d: %s", sv->name,
                     (int)sv->children[i].proc.pid, strerror(errno));
}

static void sv_stop(supervisor_t *sv)
{
    int running = 0;
    sv->stopping = 1;
    for (int i = 0; i < sv->nchildren; i++) {
        child_t *ch = &sv->children[i];
        uv_timer_stop(&ch->restart);
        uv_close((uv_handle_t *)&ch->restart, on_closed);
        if (ch->running) {
            if (kill(-ch->proc.pid, SIGTERM) < 0)
                ATR_WARN("upstream %s: cannot stop child %d: %s", sv->name, (int)ch->proc.pid,
                         strerror(errno));
            running++;
        }
    }
    if (running)
        uv_timer_start(&sv->kill_timer, on_kill, KILL_GRACE_MS, 0);
    else
        uv_close((uv_handle_t *)&sv->kill_timer, on_closed);
}

int atr_spawn_apply(uv_loop_t *l, const atr_conf_t *conf, char *err, size_t errlen)
{
    loop = l;
    for (int i = 0; i < conf->nupstreams; i++) {
        const atr_conf_upstream_t *u = &conf->upstreams[i];
        if (u->spawn_argv == NULL)
            continue;
        char *key = make_key(u);
        supervisor_t *sv = all;
        while (sv && strcmp(sv->key, key) != 0)
            sv = sv->next;
        if (sv) {
            free(key); /* unchanged: the running children stay */
            continue;
        }
        sv = sv_start(u, key, err, errlen);
        if (sv == NULL) {
            free(key);
            return -1;
        }
        sv->next = all;
        all = sv;
    }
    return 0;
}

void atr_spawn_commit(void)
{
    for (supervisor_t *sv = all; sv; sv = sv->next) {
        if (sv->unix_tmp == NULL)
            continue;
        struct stat st;
        if (rename(sv->unix_tmp, sv->unix_path) < 0)
            ATR_ERROR("upstream %s: rename %s: %s", sv->name, sv->unix_tmp, strerror(errno));
        else if (stat(sv->unix_path, &st) == 0)
            sv->unix_ino = st.st_ino;
        free(sv->unix_tmp);
        sv->unix_tmp = NULL;
    }
}

void atr_spawn_set_user(uv_uid_t uid, uv_gid_t gid)
{
    run_as = 1;
    run_uid = uid;
    run_gid = gid;
}

static int wanted(const supervisor_t *sv, const atr_conf_t *conf)
{
    for (int i = 0; conf && i < conf->nupstreams; i++) {
        if (conf->upstreams[i].spawn_argv == NULL)
            continue;
        char *key = make_key(&conf->upstreams[i]);
        int same = strcmp(key, sv->key) == 0;
        free(key);
        if (same)
            return 1;
    }
    return 0;
}

void atr_spawn_prune(const atr_conf_t *conf)
{
    supervisor_t **pp = &all;
    while (*pp) {
        supervisor_t *sv = *pp;
        if (wanted(sv, conf)) {
            pp = &sv->next;
            continue;
        }
        *pp = sv->next;
        sv_stop(sv);
    }
}

void atr_spawn_stop_all(void)
{
    while (all) {
        supervisor_t *sv = all;
        all = sv->next;
        sv_stop(sv);
    }
}
