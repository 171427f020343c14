/* src/core/nocancel.c: the plain-syscall read, write, writev and epoll_wait
 * behave as libc's do (results, errno) and are the ones this program calls
 * (the definitions in the executable come first). */
#include "t.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

int main(void)
{
    int fds[2], ep;
    char buf[16];
    struct epoll_event ev = { .events = EPOLLIN }, got[4];
    struct iovec iov[2] = { { "ab", 2 }, { "cde", 3 } };
    volatile int too_many = IOV_MAX + 1; /* hidden from the compiler's bounds checks */

    T_CHECK(__LINE__, pipe2(fds, O_NONBLOCK) == 0, "pipe2: %s", strerror(errno));
    T_CHECK(__LINE__, dlsym(RTLD_NEXT, "read") != (void *)read, "read is libc's");

    /* nothing to read yet: -1 with EAGAIN, as libc returns it */
    errno = 0;
    T_CHECK(__LINE__, read(fds[0], buf, sizeof buf) == -1 && errno == EAGAIN, "errno %d", errno);

    ep = epoll_create1(0);
    ev.data.fd = fds[0];
    T_CHECK(__LINE__, epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &ev) == 0, "epoll_ctl");
    T_CHECK(__LINE__, epoll_wait(ep, got, 4, 0) == 0, "an empty pipe is not readable");

    T_CHECK(__LINE__, write(fds[1], "x", 1) == 1, "write");
    T_CHECK(__LINE__, writev(fds[1], iov, 2) == 5, "writev");
    T_CHECK(__LINE__, epoll_wait(ep, got, 4, 1000) == 1 && got[0].data.fd == fds[0],
            "epoll_wait sees the pipe");
    T_CHECK(__LINE__, read(fds[0], buf, sizeof buf) == 6 && memcmp(buf, "xabcde", 6) == 0,
            "read back");

    /* errors: -1 and errno, never a negative errno as the result */
    errno = 0;
    T_CHECK(__LINE__, write(-1, "x", 1) == -1 && errno == EBADF, "errno %d", errno);
    errno = 0;
    T_CHECK(__LINE__, writev(fds[1], iov, too_many) == -1 && errno == EINVAL, "errno %d", errno);
    errno = 0;
    T_CHECK(__LINE__, epoll_wait(fds[0], got, 4, 0) == -1 && errno == EINVAL, "errno %d", errno);
    close(fds[1]);
    T_CHECK(__LINE__, read(fds[0], buf, sizeof buf) == 0, "end of file");
    close(fds[0]);
    close(ep);
    T_DONE();
}
