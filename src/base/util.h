/* Small shared helpers: allocation that aborts on failure, byte-string views,
 * the status codes every state machine returns. No libuv here. */
#ifndef ATR_UTIL_H
#define ATR_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct sockaddr_storage;

/* ATR_ASAN: built with AddressSanitizer (gcc says so one way, clang another).
 * Its allocator replaces malloc, so code that manages memory itself (slabs,
 * malloc_trim) steps aside. */
#if defined(__SANITIZE_ADDRESS__)
#define ATR_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ATR_ASAN 1
#endif
#endif

/* State-machine results (STYLE.md: "a small enum"). */
enum { ATR_OK = 0, ATR_AGAIN = 1, ATR_DONE = 2, ATR_ERROR = -1 };

/* A borrowed view of bytes: never NUL-terminated, never owned. The owner of
 * the bytes says how long the view stays valid. */
typedef struct atr_str {
    const char *p;
    size_t n;
} atr_str_t;

#define ATR_STR(lit) ((atr_str_t){ (lit), sizeof(lit) - 1 })
#define ATR_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ATR_UNUSED(x) ((void)(x))
#define ATR_MIN(a, b) ((a) < (b) ? (a) : (b))
#define ATR_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Allocation of small internal objects: abort the process on failure (one
 * wrapper, STYLE.md). Sizes a client controls are checked before we get here. */
void *atr_xmalloc(size_t n);
void *atr_xcalloc(size_t count, size_t n);
void *atr_xrealloc(void *p, size_t n);
char *atr_xstrdup(const char *s);
char *atr_xstrndup(const char *s, size_t n);

/* Case-insensitive compare of a view with a NUL-terminated lowercase literal. */
static inline int atr_str_ieq(atr_str_t s, const char *lower)
{
    /* inline: header filters call it dozens of times per request, and most
     * calls end at the first byte */
    size_t i;
    for (i = 0; i < s.n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        if (lower[i] == '\0' || c != (unsigned char)lower[i])
            return 0;
    }
    return lower[i] == '\0';
}

/* write(2) until all n bytes are out, EINTR retried. 0, or -1 with errno set
 * (a write of 0 bytes counts as an error). */
int atr_write_all(int fd, const char *p, size_t n);

/* Monotonic clock in milliseconds (for code that has no loop at hand). */
uint64_t atr_now_ms(void);

/* "127.0.0.1:8080" or "[::1]:8080" into out (n >= 64 always fits); returns out. */
char *atr_sockaddr_text(const struct sockaddr_storage *ss, char *out, size_t n);

/* A whole file of at most max bytes into a malloc'ed buffer (*out, NUL
 * after the last byte, *len without it): 0, or a negative errno (-EFBIG). */
int atr_read_file(const char *path, size_t max, char **out, size_t *len);

#endif
