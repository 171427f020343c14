/* `atrium ctl` (core/ctl_client.h): plain blocking sockets, one command. */
#include "core/ctl_client.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* How long an answer may take: a reload with many certificates or names
 * to resolve takes seconds, not minutes. */
#define CTL_ANSWER_TIMEOUT_S 60

int atr_ctl_main(const char *path, int argc, char **argv)
{
    char line[4096];
    size_t n = 0;
    for (int i = 0; i < argc; i++) {
        int k = snprintf(line + n, sizeof line - n, "%s%s", i ? " " : "", argv[i]);
        if (k < 0 || (size_t)k >= sizeof line - n - 1) {
            fprintf(stderr, "atrium: ctl: command too long\n");
            return 1;
        }
        n += (size_t)k;
    }
    line[n++] = '\n';
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof un.sun_path) {
        fprintf(stderr, "atrium: ctl: socket path too long: %s\n", path);
        return 1;
    }
    strcpy(un.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = { .tv_sec = CTL_ANSWER_TIMEOUT_S };
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
        connect(fd, (struct sockaddr *)&un, sizeof un) < 0) {
        fprintf(stderr, "atrium: ctl: %s: %s (is atrium running with 'control %s;'?)\n", path,
                strerror(errno), path);
        if (fd >= 0)
            close(fd);
        return 1;
    }
    if (write(fd, line, n) != (ssize_t)n) {
        fprintf(stderr, "atrium: ctl: %s: %s\n", path, strerror(errno));
        close(fd);
        return 1;
    }
    char buf[16384];
    ssize_t r;
    int first = 1, refused = 0, any = 0;
    while ((r = read(fd, buf, sizeof buf)) > 0) {
        if (first)
            refused = r >= 7 && memcmp(buf, "error: ", 7) == 0;
        first = 0;
        any = 1;
        fwrite(buf, 1, (size_t)r, refused ? stderr : stdout);
    }
    if (r < 0 || !any) {
        fprintf(stderr, "atrium: ctl: %s: %s\n", path, r < 0 ? strerror(errno) : "no answer");
        refused = 1;
    }
    close(fd);
    return refused;
}
