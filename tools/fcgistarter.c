/* fcgistarter: start a FastCGI application with N children on one listening socket.
 *
 * The options of Apache httpd's fcgistarter (-c -p -i -N), plus -u (a unix socket)
 * and -f (stay in the foreground and supervise the children). Each child follows
 * the FastCGI convention: the listening socket is its fd 0 (FCGI_LISTENSOCK_FILENO),
 * stdout/stderr are inherited, every other fd is closed, and it runs in its own
 * session so that it outlives the terminal (and, without -f, this program).
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000 /* also: a child that lived this long starts over at MIN */
#define STOP_GRACE_MS 5000  /* SIGTERM, then SIGKILL after this */
#define MAX_CHILDREN 1024

typedef struct {
    pid_t pid;            /* 0: not running */
    long long started;    /* monotonic ms */
    long long restart_at; /* when pid == 0: start again at this time */
    long long delay;      /* the backoff for the next death */
} child_t;

static const char usage_text[] =
    "Usage: fcgistarter -c command -p port [-i interface] [-N num] [-f]\n"
    "       fcgistarter -c command -u /path/to/socket [-N num] [-f]\n"
    "  -c command    the FastCGI program (run directly, no shell)\n"
    "  -p port       TCP port to listen on\n"
    "  -i interface  address to bind with -p (default 0.0.0.0)\n"
    "  -u path       listen on a unix socket instead (mode 0660; a stale one is replaced)\n"
    "  -N num        number of children (default 1)\n"
    "  -f            stay in the foreground: restart children that die,\n"
    "                stop them all on SIGTERM/SIGINT\n"
    "  -h            this help\n";

static const int our_signals[] = {SIGCHLD, SIGTERM, SIGINT};
static volatile sig_atomic_t stop_requested;
static sigset_t orig_mask; /* the children get it back */
static sigset_t wait_mask; /* orig_mask with our signals open: used only while waiting */

static _Noreturn void usage_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("fcgistarter: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fputs(usage_text, stderr);
    exit(2);
}

static _Noreturn void listen_error(const char *where, const char *why)
{
    fprintf(stderr, "fcgistarter: cannot listen on %s: %s\n", where, why);
    exit(1);
}

static long parse_num(const char *s, long lo, long hi, const char *what)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        usage_error("invalid %s '%s' (expected %ld..%ld)", what, s, lo, hi);
    return v;
}

/* The delay before restarting c now; the next one doubles, up to BACKOFF_MAX_MS. */
static long long backoff(child_t *c)
{
    long long d = c->delay;

    c->delay = d * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : d * 2;
    return d;
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int listen_tcp(const char *iface, long port)
{
    struct addrinfo hints = {0}, *res, *ai;
    char serv[16], where[300];
    int fd = -1, err = 0, one = 1;

    snprintf(serv, sizeof serv, "%ld", port);
    snprintf(where, sizeof where, strchr(iface, ':') ? "[%s]:%s" : "%s:%s", iface, serv);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if ((err = getaddrinfo(iface, serv, &hints, &res)) != 0)
        listen_error(where, gai_strerror(err));
    for (ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        listen_error(where, strerror(err));
    return fd;
}

/* A socket file nobody accepts on is left over from a dead server: remove it.
 * A live one is in use; anything else is left for bind() to report. */
static int clear_stale(const struct sockaddr_un *sa)
{
    struct stat st;
    int fd, rc, err;

    if (lstat(sa->sun_path, &st) < 0 || !S_ISSOCK(st.st_mode))
        return 0;
    if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
        return errno;
    fcntl(fd, F_SETFL, O_NONBLOCK); /* a live server with a full backlog must not block us */
    rc = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
    err = errno;
    close(fd);
    if (rc == 0 || err != ECONNREFUSED)
        return EADDRINUSE;
    return unlink(sa->sun_path) < 0 ? errno : 0;
}

static int listen_unix(const char *path)
{
    struct sockaddr_un sa = {0};
    mode_t old;
    int fd, rc, err;

    if (strlen(path) >= sizeof sa.sun_path)
        listen_error(path, strerror(ENAMETOOLONG));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);
    if ((err = clear_stale(&sa)) != 0)
        listen_error(path, strerror(err));
    if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
        listen_error(path, strerror(errno));
    old = umask(0117); /* the file is created 0660: no window with a wider mode */
    rc = bind(fd, (const struct sockaddr *)&sa, sizeof sa);
    err = errno;
    umask(old);
    if (rc < 0 || listen(fd, SOMAXCONN) < 0)
        listen_error(path, strerror(rc < 0 ? err : errno));
    return fd;
}

/* In the child: every fd above 2 is closed at exec. /dev/fd lists the open ones;
 * without it, walk the fd table (capped: a huge RLIMIT_NOFILE would cost seconds). */
static void cloexec_above_2(void)
{
    long max = sysconf(_SC_OPEN_MAX);
    DIR *d = opendir("/dev/fd");
    struct dirent *e;

    if (d) {
        while ((e = readdir(d)) != NULL)
            if (atoi(e->d_name) > 2 && atoi(e->d_name) != dirfd(d))
                fcntl(atoi(e->d_name), F_SETFD, FD_CLOEXEC);
        closedir(d);
        return;
    }
    for (long fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
        fcntl((int)fd, F_SETFD, FD_CLOEXEC);
}

static pid_t spawn(const char *cmd, int lfd)
{
    char *argv[] = {(char *)cmd, NULL};
    pid_t pid = fork();

    if (pid != 0)
        return pid; /* the parent, or -1 */
    for (int i = 0; i < 3; i++)
        signal(our_signals[i], SIG_DFL);
    sigprocmask(SIG_SETMASK, &orig_mask, NULL);
    setsid();
    if (dup2(lfd, 0) == 0) {
        cloexec_above_2();
        execv(cmd, argv);
    }
    fprintf(stderr, "fcgistarter: cannot execute %s: %s\n", cmd, strerror(errno));
    _exit(127);
}

/* The child leads its own process group after setsid(): signal the group, so that
 * workers it forked go too; before setsid() there is no group yet. */
static void signal_child(pid_t pid, int sig)
{
    if (kill(-pid, sig) < 0)
        kill(pid, sig);
}

static void start_child(child_t *c, const char *cmd, int lfd, long long t)
{
    c->started = t;
    if ((c->pid = spawn(cmd, lfd)) > 0)
        return;
    c->pid = 0;
    c->restart_at = t + backoff(c);
    fprintf(stderr, "fcgistarter: fork: %s; retrying\n", strerror(errno));
}

/* Collect the dead; unless stopping, schedule their restart. Returns how many run. */
static int reap(child_t *kids, int n, int stopping)
{
    long long t = now_ms();
    int status, alive = 0;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (child_t *c = kids; c < kids + n; c++) {
            if (c->pid != pid)
                continue;
            c->pid = 0;
            if (stopping)
                break;
            if (t - c->started >= BACKOFF_MAX_MS)
                c->delay = BACKOFF_MIN_MS;
            c->restart_at = t + backoff(c);
            fprintf(stderr, "fcgistarter: child %ld %s %d; restarting in %lld ms\n", (long)pid,
                    WIFSIGNALED(status) ? "killed by signal" : "exited with status",
                    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
                    c->restart_at - t);
        }
    }
    for (int i = 0; i < n; i++)
        alive += kids[i].pid > 0;
    return alive;
}

/* Sleep until a signal arrives or until `until` (monotonic ms; < 0: no limit). */
static void wait_signal(long long until)
{
    struct timespec ts, *tp = NULL;

    if (until >= 0) {
        long long left = until - now_ms();
        left = left < 0 ? 0 : left;
        ts.tv_sec = left / 1000;
        ts.tv_nsec = (left % 1000) * 1000000;
        tp = &ts;
    }
    pselect(0, NULL, NULL, NULL, tp, &wait_mask);
}

/* SIGTERM every child; SIGKILL those still there after STOP_GRACE_MS. */
static void stop_all(child_t *kids, int n)
{
    long long deadline = now_ms() + STOP_GRACE_MS;

    for (int i = 0; i < n; i++)
        if (kids[i].pid > 0)
            signal_child(kids[i].pid, SIGTERM);
    while (reap(kids, n, 1) > 0 && now_ms() < deadline)
        wait_signal(deadline);
    for (int i = 0; i < n; i++) {
        if (kids[i].pid > 0) {
            fprintf(stderr, "fcgistarter: child %ld ignored SIGTERM\n", (long)kids[i].pid);
            signal_child(kids[i].pid, SIGKILL);
            waitpid(kids[i].pid, NULL, 0);
        }
    }
}

static void on_signal(int sig)
{
    if (sig != SIGCHLD)
        stop_requested = 1;
}

static void supervise(child_t *kids, int n, const char *cmd, int lfd)
{
    while (!stop_requested) {
        long long t = now_ms(), next = -1;

        for (child_t *c = kids; c < kids + n; c++) {
            if (c->pid == 0 && c->restart_at <= t)
                start_child(c, cmd, lfd, t);
            if (c->pid == 0 && (next < 0 || c->restart_at < next))
                next = c->restart_at;
        }
        wait_signal(next);
        reap(kids, n, 0);
    }
    stop_all(kids, n);
}

int main(int argc, char **argv)
{
    const char *cmd = NULL, *iface = NULL, *path = NULL;
    long port = 0, n = 1;
    int fg = 0, opt, lfd;
    static child_t kids[MAX_CHILDREN];
    struct sigaction sa = {0};

    while ((opt = getopt(argc, argv, "c:p:i:u:N:fh")) != -1) {
        switch (opt) {
        case 'c': cmd = optarg; break;
        case 'p': port = parse_num(optarg, 1, 65535, "port"); break;
        case 'i': iface = optarg; break;
        case 'u': path = optarg; break;
        case 'N': n = parse_num(optarg, 1, MAX_CHILDREN, "number of children"); break;
        case 'f': fg = 1; break;
        case 'h': fputs(usage_text, stdout); return 0;
        default: fputs(usage_text, stderr); return 2;
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    if (!cmd)
        usage_error("-c command is required");
    if ((port != 0) == (path != NULL))
        usage_error("give one of -p port or -u socket");
    if (iface && path)
        usage_error("-i goes with -p, not with -u");
    if (access(cmd, X_OK) < 0) {
        fprintf(stderr, "fcgistarter: cannot execute %s: %s\n", cmd, strerror(errno));
        return 1;
    }
    /* With 0-2 closed the socket could land on 1 or 2 and become the children's stdout. */
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) < 0)
            return 1;
    lfd = path ? listen_unix(path) : listen_tcp(iface ? iface : "0.0.0.0", port);

    /* Our signals stay blocked except inside pselect(): no wakeup can be lost. */
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 3; i++)
        sigaddset(&sa.sa_mask, our_signals[i]);
    sigprocmask(SIG_BLOCK, &sa.sa_mask, &orig_mask);
    wait_mask = orig_mask;
    for (int i = 0; i < 3; i++)
        sigdelset(&wait_mask, our_signals[i]);
    if (!fg) {
        for (int i = 0; i < n; i++) {
            if (spawn(cmd, lfd) < 0) {
                fprintf(stderr, "fcgistarter: fork: %s\n", strerror(errno));
                return 1;
            }
        }
        return 0; /* the children keep running, reparented to init */
    }
    sa.sa_handler = on_signal;
    for (int i = 0; i < 3; i++)
        sigaction(our_signals[i], &sa, NULL);
    for (int i = 0; i < n; i++)
        kids[i].delay = BACKOFF_MIN_MS;
    supervise(kids, (int)n, cmd, lfd);
    if (path)
        unlink(path); /* every server on it is gone */
    return 0;
}
