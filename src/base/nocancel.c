/* The four I/O calls on the request path, without pthread cancellation.
 *
 * glibc makes read, write, writev and epoll_wait cancellation points: once a
 * process has a second thread (ours always does, the control loop), every
 * call wraps the system call in __pthread_enable_asynccancel and
 * __pthread_disable_asynccancel, each a locked compare-and-swap on the
 * thread's cancel state. Right after a system call returns, that second one
 * waits for the kernel's stores to drain: perf put about 0.3-0.4 µs per
 * proxied request there, a tenth of Atrium's user time. nginx, single
 * threaded, never pays it.
 *
 * Atrium never cancels a thread (no pthread_cancel anywhere), so the
 * bookkeeping buys nothing. These definitions in the executable take
 * precedence over libc's for libuv and every other library (ELF symbol
 * interposition: the executable comes first in lookup order, and the linker
 * exports a definition that a shared library it links against uses). Each is
 * the plain system call through syscall(), which sets errno and returns -1
 * on failure exactly as the libc wrapper does; EINTR and restarting are the
 * kernel's, unchanged.
 *
 * Left out of sanitizer builds (tools/dev), whose runtimes intercept these
 * calls themselves to check the buffers. No header declares them here: with
 * _FORTIFY_SOURCE, <unistd.h> turns read into an inline checking wrapper. */
#include <stddef.h>
#include <sys/syscall.h>
#include <sys/types.h>

struct iovec;
struct epoll_event;

long syscall(long number, ...);
ssize_t read(int fd, void *buf, size_t n);
ssize_t write(int fd, const void *buf, size_t n);
ssize_t writev(int fd, const struct iovec *iov, int iovcnt);
int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout);

ssize_t read(int fd, void *buf, size_t n)
{
    return syscall(SYS_read, fd, buf, n);
}

ssize_t write(int fd, const void *buf, size_t n)
{
    return syscall(SYS_write, fd, buf, n);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    return syscall(SYS_writev, fd, iov, iovcnt);
}

int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
    return (int)syscall(SYS_epoll_wait, epfd, events, maxevents, timeout);
}
