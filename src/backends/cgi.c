#include "backends/cgi.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/frame.h"
#include "backends/gateway.h"
#include "base/log.h"
#include "net/hooks.h"

#define KILL_GRACE_MS 2000

/* What encode_head decided for the request, used at spawn time. */
typedef struct cgi_plan {
    char *script;    /* absolute path */
    char *dir;       /* its directory: the script's working directory */
    char **envp;     /* "NAME=VALUE", NULL-terminated; one allocation with the strings */
    char upstream[64];
} cgi_plan_t;

typedef struct atr_cgi_child atr_cgi_child_t;

struct atr_cgi_child {
    pid_t pid;
    atr_cgi_child_t *next;   /* the worker's list of children not yet freed */
    uv_pipe_t in;      /* its stdin: the exchange's sock writes here */
    atr_drain_t err;   /* its stderr, to the error log */
    uv_timer_t kill_timer;
    int handles;       /* open handles; freed when 0 and exited */
    int exited, released, in_closed;
    int lingering;     /* the script exited, processes it left in its group had not */
    atomic_int *slot;
    void (*kick)(void *);
    void *kick_arg;
    uint32_t stderr_logged;
    uint32_t stderr_rate;
    char upstream[64];
};

/* ---- planning (request head still valid) ---- */

static void plan_free(atr_req_t *r)
{
    cgi_plan_t *p = r->backend_data;
    if (p) {
        free(p->script);
        free(p->dir);
        free(p->envp);
        free(p);
    }
    r->backend_data = NULL;
}

/* The script: the first regular file on the path below the route prefix,
 * the rest is PATH_INFO (atr_gateway_walk; the path is normalised, so the
 * walk cannot leave the CGI directory). 0, or the status to answer. */
static int find_script(const char *dir, const char *rest, char *script, size_t cap,
                       size_t *consumed)
{
    int rc = atr_gateway_walk(dir, rest, script, cap, consumed);
    if (rc == 0)
        return access(script, X_OK) == 0 ? 0 : 403;
    if (rc == -ENAMETOOLONG)
        return 414;
    if (rc == 1 || rc == -EACCES || rc == -ENOEXEC)
        return 403; /* a directory (no listings), a closed one, a special file */
    return 404;
}

static char **flat_env(const atr_cgi_env_t *env)
{
    static const char path[] = "PATH=/usr/local/bin:/usr/bin:/bin";
    size_t bytes = sizeof path;
    for (int i = 0; i < env->n; i++)
        bytes += env->name_lens[i] + env->value_lens[i] + 2;
    char **envp = atr_xmalloc((size_t)(env->n + 2) * sizeof *envp + bytes);
    char *s = (char *)(envp + env->n + 2);
    int k = 0;
    /* Nothing of Atrium's own environment goes to a script: only the CGI
     * variables and a fixed PATH. */
    memcpy(s, path, sizeof path);
    envp[k++] = s;
    s += sizeof path;
    for (int i = 0; i < env->n; i++) {
        envp[k++] = s;
        memcpy(s, env->names[i], env->name_lens[i]);
        s += env->name_lens[i];
        *s++ = '=';
        memcpy(s, env->values[i], env->value_lens[i]);
        s += env->value_lens[i];
        *s++ = '\0';
    }
    envp[k] = NULL;
    return envp;
}

static char *encode_head(atr_req_t *r, const atr_http_msg_t *m, enum atr_http_body body,
                         size_t *len)
{
    const char *path = r->norm_path ? r->norm_path : "/";
    size_t pl = strlen(r->route->prefix);
    const char *rest = strlen(path) >= pl ? path + pl : "";
    if (pl > 0 && r->route->prefix[pl - 1] == '/' && rest > path)
        rest--; /* keep the slash: "/cgi-bin/x" -> "/x" */
    char script[4096];
    size_t used = 0;
    (void)body;
    int st = find_script(r->route->cgi_dir, rest, script, sizeof script, &used);
    if (st) {
        r->refuse_status = st;
        return NULL;
    }
    /* SCRIPT_NAME is the URL path up to the script, PATH_INFO the rest. */
    size_t script_url_len = (size_t)(rest - path) + used;
    atr_cgi_input_t in;
    atr_gateway_scratch_t sc;
    memset(&in, 0, sizeof in);
    atr_gateway_conn_vars(r, &in, &sc);
    in.msg = m;
    in.script_name = (atr_str_t){ path, script_url_len };
    in.path_info = (atr_str_t){ path + script_url_len, strlen(path + script_url_len) };
    in.script_filename = script;
    in.document_root = r->route->cgi_dir;
    in.has_body = m->body == ATR_BODY_LENGTH;
    in.content_length = m->content_length;
    in.pass_authorization = 0; /* RFC 3875 §4.1.18: credentials stay with the server */
    atr_cgi_env_t env;
    memset(&env, 0, sizeof env);
    int rc = atr_cgi_env_build(&in, &env);
    if (rc < 0) {
        atr_cgi_env_free(&env);
        r->refuse_status = rc == -2 ? 400 : 431;
        return NULL;
    }
    cgi_plan_t *p = atr_xcalloc(1, sizeof *p);
    p->script = atr_xstrdup(script);
    char *slash = strrchr(script, '/');
    p->dir = atr_xstrndup(script, slash > script ? (size_t)(slash - script) : 1);
    p->envp = flat_env(&env);
    snprintf(p->upstream, sizeof p->upstream, "%s", r->upstream->name);
    atr_cgi_env_free(&env);
    plan_free(r);
    r->backend_data = p;
    /* Nothing is written before the body: the "head" is the spawn. */
    *len = 0;
    return atr_xmalloc(1);
}


/* ---- the child process ----
 *
 * Scripts start with posix_spawn, which glibc implements with
 * clone(CLONE_VM | CLONE_VFORK): the proxy's address space is not copied.
 * uv_spawn forks (libuv 1.44), and fork showed as about 11% of the CPU of a
 * CGI request here (copy_process/dup_mmap, then copy-on-write faults), so we
 * spawn ourselves and reap with a per-worker SIGCHLD watcher that waits for
 * our own pids only (libuv's watcher, for the processes it started, does the
 * same for its pids). */

struct child_list {
    uv_signal_t sigchld;
    int started;
    atr_cgi_child_t *head;
};

static __thread struct child_list children; /* per worker thread */

static void child_maybe_free(atr_cgi_child_t *c)
{
    if (c->handles > 0 || !c->exited || !c->released)
        return;
    for (atr_cgi_child_t **pp = &children.head; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    atr_cgi_child_t *c = h->data;
    c->handles--;
    child_maybe_free(c);
}

static void close_handle(atr_cgi_child_t *c, uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, on_handle_closed);
    (void)c;
}

/* The script and everything of its process group are gone: its slot goes
 * back (cgi_max_procs counts processes, not requests). */
static void group_done(atr_cgi_child_t *c)
{
    c->lingering = 0;
    uv_timer_stop(&c->kill_timer);
    close_handle(c, (uv_handle_t *)&c->kill_timer);
    if (c->slot) {
        atomic_fetch_sub(c->slot, 1);
        c->slot = NULL;
        if (c->kick)
            c->kick(c->kick_arg);
    }
    child_maybe_free(c);
}

static void on_kill_timer(uv_timer_t *t);

/* Called with the script reaped. Its group was sent SIGTERM just before (see
 * on_sigchld): a process it left behind (`cmd &` holding its output open)
 * would hold the response open and run on outside cgi_max_procs. */
static void child_exited(atr_cgi_child_t *c, int wstatus)
{
    c->exited = 1;
    if (WIFSIGNALED(wstatus) && WTERMSIG(wstatus) != SIGTERM && WTERMSIG(wstatus) != SIGKILL)
        ATR_WARN("upstream %s: script died with signal %d", c->upstream, WTERMSIG(wstatus));
    else if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) != 0)
        ATR_DEBUG("upstream %s: script exited with status %d", c->upstream, WEXITSTATUS(wstatus));
    if (kill(-c->pid, 0) == 0) {
        /* Left-overs: they had their SIGTERM; SIGKILL after the grace period.
         * The group id stays theirs while any of them lives. */
        c->lingering = 1;
        uv_timer_start(&c->kill_timer, on_kill_timer, KILL_GRACE_MS, 0);
        return;
    }
    group_done(c);
}

static void on_sigchld(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    atr_cgi_child_t *c = children.head;
    while (c) {
        atr_cgi_child_t *next = c->next; /* child_exited may free c */
        int wstatus = 0;
        siginfo_t si;
        si.si_pid = 0;
        if (!c->exited &&
            (waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 ||
             si.si_pid == c->pid)) {
            /* Exited (not reaped yet, so its group id cannot be reused): stop
             * what it left in its group, then reap. */
            kill(-c->pid, SIGTERM);
            pid_t r = waitpid(c->pid, &wstatus, WNOHANG);
            if (r == c->pid || (r < 0 && errno == ECHILD))
                child_exited(c, r == c->pid ? wstatus : 0);
        }
        c = next;
    }
}

static void watch_children(uv_loop_t *loop)
{
    if (children.started)
        return;
    children.started = 1;
    uv_signal_init(loop, &children.sigchld);
    uv_signal_start(&children.sigchld, on_sigchld, SIGCHLD);
    uv_unref((uv_handle_t *)&children.sigchld); /* it must not keep a stopping worker alive */
}

static void on_stderr(atr_drain_t *d, const char *p, ssize_t n)
{
    atr_cgi_child_t *c = d->pipe.data;
    if (n > 0)
        atr_gateway_log_stderr(c->upstream, "cgi", p, (size_t)n, &c->stderr_logged,
                               c->stderr_rate);
    else
        close_handle(c, (uv_handle_t *)&c->err.pipe);
}

static void on_kill_timer(uv_timer_t *t)
{
    atr_cgi_child_t *c = t->data;
    if (c->lingering) {
        ATR_WARN("upstream %s: processes the script left behind did not stop on SIGTERM: "
                 "SIGKILL", c->upstream);
        kill(-c->pid, SIGKILL);
        group_done(c);
    } else if (!c->exited) {
        ATR_WARN("upstream %s: script did not stop on SIGTERM: SIGKILL", c->upstream);
        kill(-c->pid, SIGKILL);
    }
}

/* posix_spawn the script with pipes for 0, 1, 2; the pipe ends it does not
 * use are close-on-exec. Returns the pid, or -errno. */
static pid_t start_script(const cgi_plan_t *p, int fds[3])
{
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(out, O_CLOEXEC) < 0) {
        int e = -errno;
        close(in[0]);
        close(in[1]);
        return e;
    }
    if (pipe2(err, O_CLOEXEC) < 0) {
        int e = -errno;
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        return e;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t all, none;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    posix_spawn_file_actions_addchdir_np(&fa, p->dir);
    posix_spawnattr_init(&at);
    sigfillset(&all);
    sigemptyset(&none);
    /* Default dispositions (the proxy ignores SIGPIPE), nothing blocked, and
     * a session of its own so a timeout stops whatever the script started. */
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETSIGMASK);
    char *args[] = { p->script, NULL };
    pid_t pid;
    int rc = posix_spawn(&pid, p->script, &fa, &at, args, p->envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    if (rc != 0) {
        close(in[1]);
        close(out[0]);
        close(err[0]);
        return -rc;
    }
    fds[0] = in[1];
    fds[1] = out[0];
    fds[2] = err[0];
    return pid;
}

/* ops->spawn: s is a pipe transport, its handle initialised. */
static int spawn(atr_req_t *r, atr_sock_t *s, void **child, atomic_int *slot,
                 void (*kick)(void *), void *arg)
{
    cgi_plan_t *p = r->backend_data;
    uv_loop_t *loop = s->io.handle.loop;
    int fds[3];
    if (p == NULL)
        return UV_EINVAL;
    watch_children(loop);
    pid_t pid = start_script(p, fds);
    if (pid < 0) {
        ATR_ERROR("upstream %s: cannot start %s: %s", p->upstream, p->script, strerror(-pid));
        return pid;
    }
    atr_cgi_child_t *c = atr_xcalloc(1, sizeof *c);
    snprintf(c->upstream, sizeof c->upstream, "%s", p->upstream);
    c->pid = pid;
    c->stderr_rate = r->wg->gen->conf->stderr_log_rate;
    uv_timer_init(loop, &c->kill_timer);
    atr_sock_open_pipes(s, fds[1], &c->in, fds[0]);
    c->err.on_data = on_stderr;
    atr_drain_start(&c->err, loop, fds[2]);
    c->in.data = c->err.pipe.data = c->kill_timer.data = c;
    c->handles = 3; /* in, err, kill_timer */
    c->slot = slot;
    c->kick = kick;
    c->kick_arg = arg;
    c->next = children.head;
    children.head = c;
    *child = c;
    /* A child that ended before it was on the list is found now. */
    on_sigchld(&children.sigchld, SIGCHLD);
    return 0;
}

static void close_stdin(void *child)
{
    atr_cgi_child_t *c = child;
    if (!c->in_closed) {
        c->in_closed = 1;
        close_handle(c, (uv_handle_t *)&c->in);
    }
}

static void release(void *child)
{
    atr_cgi_child_t *c = child;
    c->released = 1;
    close_stdin(c);
    if (!c->exited) {
        kill(-c->pid, SIGTERM);
        uv_timer_start(&c->kill_timer, on_kill_timer, KILL_GRACE_MS, 0);
    }
    child_maybe_free(c);
}

/* A stopping worker: kill and reap what still runs, and close every handle
 * through our own callback (the worker's final walk closes handles without
 * one, which would leave the child's memory behind). */
static void reap_all(atr_worker_t *w)
{
    (void)w; /* the list is this worker thread's */
    atr_cgi_child_t *c = children.head;
    while (c) {
        atr_cgi_child_t *next = c->next;
        c->released = 1;
        c->handles++; /* hold c while its handles close */
        close_handle(c, (uv_handle_t *)&c->in);
        close_handle(c, (uv_handle_t *)&c->err.pipe);
        if (!c->exited) {
            int wstatus = 0;
            kill(-c->pid, SIGKILL);
            while (waitpid(c->pid, &wstatus, 0) < 0 && errno == EINTR)
                ;
            child_exited(c, wstatus);
        }
        if (c->lingering) {
            kill(-c->pid, SIGKILL);
            group_done(c);
        }
        close_handle(c, (uv_handle_t *)&c->kill_timer);
        c->handles--;
        child_maybe_free(c);
        c = next;
    }
}

const atr_backend_ops_t atr_backend_cgi = {
    .name = "cgi",
    .reuse = 0,
    .needs_length = 1,
    .encode_head = encode_head,
    .frame_body = atr_frame_raw,
    .cgi_response = 1,
    .local_redirect = 1,
    .needs_path = 1,
    .spawn = spawn,
    .spawn_input_done = close_stdin,
    .spawn_release = release,
    .exchange_done = plan_free,
};

void atr_cgi_register(void)
{
    atr_hook_worker_exit(reap_all);
}
